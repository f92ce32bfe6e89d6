use thiserror::Error;

/// One error type for every port, so that callers map failures the same way whatever the engine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortError {
    /// A conditional write's condition did not hold.
    #[error("condition failed")]
    ConditionFailed,
    /// A transactional write was cancelled; `failed` lists the indexes of the operations whose condition failed.
    #[error("transaction cancelled: conditions failed at {failed:?}")]
    TransactionCanceled { failed: Vec<usize> },
    /// The named thing does not exist (queue, execution, task token, blob…).
    #[error("not found: {0}")]
    NotFound(String),
    /// The named thing exists already and cannot be created again in a different shape.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The service asked us to slow down; retrying later is right.
    #[error("throttled: {0}")]
    Throttled(String),
    /// The service refused this request for good (a rejected email, an invalid state machine definition…).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The caller asked for something the port does not allow (too many items, an empty batch key…).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The engine cannot be reached or is not configured; the message names what is missing.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

pub type PortResult<T> = Result<T, PortError>;
