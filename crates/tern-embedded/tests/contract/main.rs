//! Every port's contract suite against this crate's adapters.

mod blobs;
mod mail;
mod queue;
mod table;
mod workflows;
