//! The domain's errors. Each variant says which kind of failure it is, so that hosts map it to a response
//! (an HTTP problem, a failed queue message) without reading its text.

use tern_ports::PortError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DomainError {
    /// The caller's input breaks a rule; `field` names the offending input (a JSON path or parameter name).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The write conflicts with what is stored (a duplicate, a stale version).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data does not have the shape the domain wrote; the message names the item and attribute.
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl DomainError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
