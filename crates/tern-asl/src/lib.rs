//! An interpreter of the Amazon States Language (JSONPath dialect), free of I/O: it steps executions, the
//! embedded engine persists them.
//!
//! [`Machine::parse`] checks a definition and types its states; [`step`] takes an [`ExecutionState`] one
//! transition further. Pass, Task (with Retry, Catch, TimeoutSeconds, HeartbeatSeconds and
//! `.waitForTaskToken`), Choice, Wait, Succeed and Fail states run; Map and Parallel are refused when parsed.

pub mod choice;
mod definition;
mod error;
mod execution;
pub mod intrinsic;
pub mod path;
pub mod payload;

pub use definition::{
    Catcher, ChoiceState, FailState, Filters, Flow, Machine, PassState, Retrier, Seconds, State,
    TaskState, Text, WaitFor, WaitState,
};
pub use error::{DefinitionError, Failure, names};
pub use execution::{
    Context, Deadline, ExecutionState, Phase, TaskCall, TaskOutcome, Transition, error_matches,
    step,
};
