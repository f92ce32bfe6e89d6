//! The event lake's file format: accepted events as Parquet files under Hive-style partitions.
//!
//! ```text
//! lake/events/workspace=<id>/dt=<YYYY-MM-DD>/hour=<HH>/<uuid v7>-<digest>.parquet
//! ```
//!
//! Pure: no I/O. The lake writer (`tern-app`'s `lake` queue handler) groups events by [`Partition`], encodes
//! each group with [`encode_events`] and stores it under [`Partition::object_key`]. The Glue table in
//! `infra/template.yaml` and `docs/lake.md` describe the same columns as [`COLUMNS`]; change them together.
//!
//! The low-level Parquet writer is used on purpose: the Arrow stack would double the build time of every
//! function for twenty flat columns.

mod columns;
mod encode;
mod partition;
mod read;

pub use columns::{COLUMNS, Column, ColumnKind};
pub use encode::{CONTENT_TYPE, LakeError, encode_events};
pub use partition::{EVENTS_PREFIX, Partition, file_name, partition_prefix};
pub use read::read_message_ids;
