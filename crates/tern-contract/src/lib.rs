//! The contract suites: the cases every adapter of a port must pass, run against both engines.
//!
//! Each module holds the cases of one port as plain async functions, and a macro that expands them into one
//! `#[tokio::test]` per case for a given adapter factory. An adapter crate's test binary calls the macro
//! once per port, so the same cases run against the embedded engine and against AWS (through moto).
//!
//! A factory is an async expression whose value dereferences (`&*value`) to the port under test; it may
//! carry guards (a temporary directory) that must live as long as the case.

pub mod blobs;
pub mod mail;
pub mod moto;
pub mod queue;
pub mod table;
pub mod workflows;

/// A name no other case (or earlier run against the same moto server) has used.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}
