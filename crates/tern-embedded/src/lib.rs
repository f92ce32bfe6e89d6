//! The embedded engine: every port on one SQLite file (WAL), a blob directory with S3's key layout, an
//! outbox of `.eml` files (optionally relayed over SMTP) and an in-process, durable ASL interpreter.

pub mod blobs;
pub mod db;
pub mod mail;
pub mod queue;
pub mod table;
pub mod workflows;

pub use db::Db;
