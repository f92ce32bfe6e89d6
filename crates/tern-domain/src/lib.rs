//! Tern's pure domain: workspaces and keys, data layout above the table port, and the business rules.
//!
//! This crate reaches storage only through `tern_ports`; it never depends on SQLite, an AWS SDK or an
//! HTTP framework, so every rule here runs the same on both engines.

pub mod delivery;
pub mod error;
pub mod imports;
pub mod ingest;
pub mod layout;
pub mod profile;
pub mod secret;
pub mod segments;
mod stored;
pub mod subscriptions;
pub mod suppressions;
pub mod templates;
pub mod tracking;
pub mod workspace;

pub use error::{DomainError, DomainResult};
pub use workspace::{
    CreatedWorkspace, KeyGrant, KeyKind, PlaintextKey, Workspace, authenticate, create_workspace,
    get_workspace, list_workspaces,
};
