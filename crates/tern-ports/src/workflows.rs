//! The workflows port: Step Functions' model of state machines, versions, executions and task tokens.
//! Definitions are Amazon States Language (JSONPath dialect); the embedded engine interprets the same text.

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;

use crate::error::PortResult;

#[derive(Debug, Clone, PartialEq)]
pub struct StateMachineSpec {
    pub name: String,
    /// The ASL document as JSON.
    pub definition: Value,
    /// The IAM role Step Functions assumes; the embedded engine ignores it.
    pub role_arn: Option<String>,
}

/// The identifiers of a published state machine version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedVersion {
    /// The state machine (its ARN on AWS).
    pub state_machine: String,
    /// The version just published, usable as a start target (its version ARN on AWS).
    pub version: String,
}

/// The result of starting an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub execution: String,
    /// False when an execution with this name existed already and that one is returned.
    pub created: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionDescription {
    pub execution: String,
    pub name: String,
    pub status: ExecutionStatus,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub started_at: Timestamp,
    pub stopped_at: Option<Timestamp>,
}

#[async_trait]
pub trait Workflows: Send + Sync {
    /// Creates the state machine or updates its definition, and publishes a new version.
    async fn publish(&self, spec: &StateMachineSpec) -> PortResult<PublishedVersion>;

    /// Starts an execution of a state machine or version under `name`. Starting a name that exists returns
    /// that execution (`created: false`) and never runs a second one.
    async fn start(&self, target: &str, name: &str, input: Value) -> PortResult<Started>;

    /// Stops a running execution (status `Aborted`); stopping a finished one changes nothing.
    async fn stop(
        &self,
        execution: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> PortResult<()>;

    /// Completes the task waiting on `token` with `output`.
    async fn send_task_success(&self, token: &str, output: Value) -> PortResult<()>;

    /// Fails the task waiting on `token`.
    async fn send_task_failure(&self, token: &str, error: &str, cause: &str) -> PortResult<()>;

    async fn describe(&self, execution: &str) -> PortResult<ExecutionDescription>;
}
