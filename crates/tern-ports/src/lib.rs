//! The ports: the only way Tern's domain reaches storage, queues, files, mail, workflows and time.
//!
//! Each trait here has exactly two adapters — AWS (`tern-aws`) and embedded (`tern-embedded`) — and one
//! contract suite (`tern-contract`) that both must pass. This crate must never depend on an AWS SDK, a
//! Lambda runtime, SQLite or an HTTP server: `cargo tree -p tern-ports` proves it.

pub mod blobs;
pub mod clock;
pub mod error;
pub mod mail;
pub mod queue;
pub mod table;
pub mod workflows;

pub use blobs::{BlobMeta, BlobPage, Blobs, ByteStream, UploadTarget};
pub use clock::{Clock, SystemClock, VirtualClock};
pub use error::{PortError, PortResult};
pub use mail::{Mail, OutgoingEmail, SentEmail};
pub use queue::{DeadLetter, OutMessage, Queue, QueueSpec, Received};
pub use table::{
    AttrValue, Condition, Cursor, Index, Item, Key, Number, Page, Query, SortCondition, Table,
    TransactOp, Update, WriteOp,
};
pub use workflows::{
    ExecutionDescription, ExecutionStatus, PublishedVersion, Started, StateMachineSpec, Workflows,
};

/// The ports bundled, as every handler receives them.
#[derive(Clone)]
pub struct Ports {
    pub table: std::sync::Arc<dyn Table>,
    pub queue: std::sync::Arc<dyn Queue>,
    pub blobs: std::sync::Arc<dyn Blobs>,
    pub mail: std::sync::Arc<dyn Mail>,
    pub workflows: std::sync::Arc<dyn Workflows>,
    pub clock: std::sync::Arc<dyn Clock>,
}
