//! Ingestion: Segment's tracking calls turned into accepted events, stored as profiles, a hot copy of recent
//! events and lake batches.

pub mod event;

pub use event::{Event, EventKind, LakeBatch, Subject};
pub mod parse;
pub use parse::{ParseError, Parsed, Rejected, RequestInfo, parse_batch, parse_call};
pub mod store;

pub use store::{Accepted, accept};
