//! The two kinds of failure: a definition that cannot be interpreted, and an error an execution raises.

use std::fmt;

/// Why a state machine definition was refused, naming the state (when the problem is inside one) and the
/// field, so that the author can find it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DefinitionError {
    pub state: Option<String>,
    pub field: String,
    pub message: String,
}

impl DefinitionError {
    pub(crate) fn machine(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            state: None,
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn state(state: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            state: Some(state.to_string()),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            Some(state) => write!(
                f,
                "state `{state}`, field `{}`: {}",
                self.field, self.message
            ),
            None => write!(f, "field `{}`: {}", self.field, self.message),
        }
    }
}

/// The error names the States Language reserves.
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const RUNTIME: &str = "States.Runtime";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
}

/// An error raised while an execution runs: an ASL error name and a human cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }

    pub(crate) fn runtime(cause: impl Into<String>) -> Self {
        Self::new(names::RUNTIME, cause)
    }
}
