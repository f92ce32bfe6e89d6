//! The AWS workflows adapter: Step Functions (standard workflows).
//!
//! State machines are addressed by name in [`StateMachineSpec`]; the adapter finds a name's ARN once
//! (ListStateMachines) and caches it. Executions are named idempotently: `start` looks the derived
//! execution ARN up first, so starting a name that exists returns it with `created: false` whatever its
//! status and input, and never starts a second one.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::config::http::HttpResponse;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::types::ExecutionStatus as SfnStatus;
use jiff::Timestamp;
use serde_json::Value;
use tern_ports::{
    ExecutionDescription, ExecutionStatus, PortError, PortResult, PublishedVersion, Started,
    StateMachineSpec, Workflows,
};

use crate::error::{code_and_message, is_throttling, is_unreachable, one_line};

/// The workflows port on Step Functions.
pub struct SfnWorkflows {
    client: Client,
    /// The role state machines run as, unless a spec names its own.
    role_arn: Option<String>,
    /// State machine name → ARN, filled as names are found or created.
    arns: RwLock<HashMap<String, String>>,
}

impl SfnWorkflows {
    pub fn new(config: &SdkConfig, role_arn: Option<String>) -> SfnWorkflows {
        SfnWorkflows {
            client: Client::new(config),
            role_arn,
            arns: RwLock::new(HashMap::new()),
        }
    }

    fn cached_arn(&self, name: &str) -> Option<String> {
        // A poisoned lock still holds a valid map: entries are inserted whole.
        let arns = self
            .arns
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        arns.get(name).cloned()
    }

    fn remember_arn(&self, name: &str, arn: &str) {
        let mut arns = self
            .arns
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        arns.insert(name.to_string(), arn.to_string());
    }

    fn forget_arn(&self, name: &str) {
        let mut arns = self
            .arns
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        arns.remove(name);
    }

    /// The ARN of the state machine called `name`, if there is one.
    async fn find_state_machine(&self, name: &str) -> PortResult<Option<String>> {
        if let Some(arn) = self.cached_arn(name) {
            return Ok(Some(arn));
        }
        let mut pages = self.client.list_state_machines().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sfn_failure("list state machines", e).port)?;
            if let Some(found) = page
                .state_machines()
                .iter()
                .find(|machine| machine.name() == name)
            {
                self.remember_arn(name, found.state_machine_arn());
                return Ok(Some(found.state_machine_arn().to_string()));
            }
        }
        Ok(None)
    }

    async fn create(
        &self,
        name: &str,
        definition: &str,
        role: &str,
    ) -> Result<PublishedVersion, SfnFailure> {
        let created = self
            .client
            .create_state_machine()
            .name(name)
            .definition(definition)
            .role_arn(role)
            .publish(true)
            .send()
            .await
            .map_err(|e| sfn_failure(&format!("create state machine {name}"), e))?;
        let state_machine = created.state_machine_arn().to_string();
        self.remember_arn(name, &state_machine);
        let version = published_version(name, created.state_machine_version_arn())?;
        Ok(PublishedVersion {
            state_machine,
            version,
        })
    }

    async fn update(
        &self,
        name: &str,
        arn: &str,
        definition: &str,
        role: &str,
    ) -> Result<PublishedVersion, SfnFailure> {
        let updated = self
            .client
            .update_state_machine()
            .state_machine_arn(arn)
            .definition(definition)
            .role_arn(role)
            .publish(true)
            .send()
            .await
            .map_err(|e| sfn_failure(&format!("update state machine {name}"), e))?;
        let version = published_version(name, updated.state_machine_version_arn())?;
        Ok(PublishedVersion {
            state_machine: arn.to_string(),
            version,
        })
    }

    async fn describe_output(&self, execution: &str) -> PortResult<DescribeExecutionOutput> {
        self.client
            .describe_execution()
            .execution_arn(execution)
            .send()
            .await
            .map_err(|e| {
                let failure = sfn_failure(&format!("describe execution {execution}"), e);
                match failure.code.as_str() {
                    "ExecutionDoesNotExist" => {
                        PortError::NotFound(format!("execution `{execution}`"))
                    }
                    "InvalidArn" => PortError::Invalid(format!(
                        "`{execution}` is not an execution ARN: {}",
                        failure.message
                    )),
                    _ => failure.port,
                }
            })
    }
}

#[async_trait]
impl Workflows for SfnWorkflows {
    async fn publish(&self, spec: &StateMachineSpec) -> PortResult<PublishedVersion> {
        let role = spec
            .role_arn
            .clone()
            .or_else(|| self.role_arn.clone())
            .ok_or_else(|| PortError::Invalid("a Step Functions role ARN is required".into()))?;
        let definition = spec.definition.to_string();
        if let Some(arn) = self.find_state_machine(&spec.name).await? {
            match self.update(&spec.name, &arn, &definition, &role).await {
                Ok(published) => return Ok(published),
                // Deleted since its ARN was cached: create it again below.
                Err(failure) if failure.code == "StateMachineDoesNotExist" => {
                    self.forget_arn(&spec.name)
                }
                Err(failure) => return Err(failure.into_publish_error()),
            }
        }
        match self.create(&spec.name, &definition, &role).await {
            Ok(published) => Ok(published),
            // Created concurrently by someone else: publish on top of theirs.
            Err(failure) if failure.code == "StateMachineAlreadyExists" => {
                let arn = self.find_state_machine(&spec.name).await?.ok_or_else(|| {
                    PortError::Other(format!(
                        "state machine {} exists but is not listed",
                        spec.name
                    ))
                })?;
                self.update(&spec.name, &arn, &definition, &role)
                    .await
                    .map_err(SfnFailure::into_publish_error)
            }
            Err(failure) => Err(failure.into_publish_error()),
        }
    }

    async fn start(&self, target: &str, name: &str, input: Value) -> PortResult<Started> {
        let execution = execution_arn(target, name)?;
        match self.describe_output(&execution).await {
            Ok(_) => {
                return Ok(Started {
                    execution,
                    created: false,
                });
            }
            Err(PortError::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
        let started = self
            .client
            .start_execution()
            .state_machine_arn(target)
            .name(name)
            .input(input.to_string())
            .send()
            .await;
        match started {
            Ok(started) => Ok(Started {
                execution: started.execution_arn().to_string(),
                created: true,
            }),
            Err(error) => {
                let failure = sfn_failure(&format!("start execution {name} of {target}"), error);
                match failure.code.as_str() {
                    // Started concurrently under the same name.
                    "ExecutionAlreadyExists" => Ok(Started {
                        execution,
                        created: false,
                    }),
                    "StateMachineDoesNotExist" | "StateMachineDeleting" => {
                        Err(PortError::NotFound(format!("state machine `{target}`")))
                    }
                    "InvalidName"
                    | "InvalidExecutionInput"
                    | "InvalidArn"
                    | "ValidationException" => Err(PortError::Invalid(format!(
                        "cannot start {name} on {target}: {}",
                        failure.message
                    ))),
                    _ => Err(failure.port),
                }
            }
        }
    }

    async fn stop(
        &self,
        execution: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> PortResult<()> {
        // Stopping a finished execution must change nothing, whatever the service would make of it.
        if self.describe_output(execution).await?.status() != &SfnStatus::Running {
            return Ok(());
        }
        let stopped = self
            .client
            .stop_execution()
            .execution_arn(execution)
            .set_error(error.map(str::to_string))
            .set_cause(cause.map(str::to_string))
            .send()
            .await;
        stopped.map(|_| ()).map_err(|e| {
            let failure = sfn_failure(&format!("stop execution {execution}"), e);
            match failure.code.as_str() {
                "ExecutionDoesNotExist" => PortError::NotFound(format!("execution `{execution}`")),
                _ => failure.port,
            }
        })
    }

    async fn send_task_success(&self, token: &str, output: Value) -> PortResult<()> {
        let sent = self
            .client
            .send_task_success()
            .task_token(token)
            .output(output.to_string())
            .send()
            .await;
        sent.map(|_| ())
            .map_err(|e| token_error(sfn_failure("send task success", e)))
    }

    async fn send_task_failure(&self, token: &str, error: &str, cause: &str) -> PortResult<()> {
        let sent = self
            .client
            .send_task_failure()
            .task_token(token)
            .error(error)
            .cause(cause)
            .send()
            .await;
        sent.map(|_| ())
            .map_err(|e| token_error(sfn_failure("send task failure", e)))
    }

    async fn describe(&self, execution: &str) -> PortResult<ExecutionDescription> {
        let described = self.describe_output(execution).await?;
        description(execution, &described)
    }
}

/// The execution ARN Step Functions gives `name` when it is started on `target`: the state machine's ARN
/// with `execution` for `stateMachine`, without a version or alias qualifier.
fn execution_arn(target: &str, name: &str) -> PortResult<String> {
    let parts: Vec<&str> = target.split(':').collect();
    match parts.as_slice() {
        [
            "arn",
            partition,
            "states",
            region,
            account,
            "stateMachine",
            machine,
            ..,
        ] => Ok(format!(
            "arn:{partition}:states:{region}:{account}:execution:{machine}:{name}"
        )),
        _ => Err(PortError::Invalid(format!(
            "`{target}` is not a state machine ARN"
        ))),
    }
}

fn published_version(name: &str, version: Option<&str>) -> Result<String, SfnFailure> {
    version.map(str::to_string).ok_or_else(|| SfnFailure {
        code: String::new(),
        message: String::new(),
        client_error: false,
        port: PortError::Other(format!(
            "Step Functions published state machine {name} without a version ARN"
        )),
    })
}

fn description(
    execution: &str,
    described: &DescribeExecutionOutput,
) -> PortResult<ExecutionDescription> {
    let status = match described.status() {
        SfnStatus::Running | SfnStatus::PendingRedrive => ExecutionStatus::Running,
        SfnStatus::Succeeded => ExecutionStatus::Succeeded,
        SfnStatus::Failed => ExecutionStatus::Failed,
        SfnStatus::TimedOut => ExecutionStatus::TimedOut,
        SfnStatus::Aborted => ExecutionStatus::Aborted,
        other => {
            return Err(PortError::Other(format!(
                "execution {execution} has an unknown status {other:?}"
            )));
        }
    };
    let json = |text: Option<&str>, what: &str| -> PortResult<Option<Value>> {
        text.map(|text| {
            serde_json::from_str(text).map_err(|e| {
                PortError::Other(format!(
                    "the {what} of execution {execution} is not JSON: {e}"
                ))
            })
        })
        .transpose()
    };
    Ok(ExecutionDescription {
        execution: described.execution_arn().to_string(),
        name: described
            .name()
            .map(str::to_string)
            .unwrap_or_else(|| execution_name(execution)),
        status,
        input: json(described.input(), "input")?.unwrap_or(Value::Null),
        output: json(described.output(), "output")?,
        error: described.error().map(str::to_string),
        cause: described.cause().map(str::to_string),
        started_at: timestamp(described.start_date())?,
        stopped_at: described.stop_date().map(timestamp).transpose()?,
    })
}

/// The name part of an execution ARN (its last segment).
fn execution_name(execution: &str) -> String {
    execution
        .rsplit(':')
        .next()
        .unwrap_or(execution)
        .to_string()
}

fn timestamp(date: &aws_smithy_types::DateTime) -> PortResult<Timestamp> {
    let nanos = i32::try_from(date.subsec_nanos()).unwrap_or(0);
    Timestamp::new(date.secs(), nanos)
        .map_err(|e| PortError::Other(format!("Step Functions returned time {date}: {e}")))
}

/// A Step Functions error: its code and message (empty when the service gave none), whether it was the
/// caller's fault (HTTP 4xx), and the mapping every operation shares.
struct SfnFailure {
    code: String,
    message: String,
    client_error: bool,
    port: PortError,
}

impl SfnFailure {
    /// Definitions, names and roles are checked when publishing; every refusal of the caller's request is
    /// final. (moto answers an invalid definition with a 400 that carries no error code.)
    fn into_publish_error(self) -> PortError {
        match self.port {
            PortError::Unavailable(_) | PortError::Throttled(_) => self.port,
            _ if self.client_error => {
                let code = if self.code.is_empty() {
                    "refused"
                } else {
                    self.code.as_str()
                };
                PortError::Rejected(format!("Step Functions {code}: {}", self.message))
            }
            _ => self.port,
        }
    }
}

fn sfn_failure<E>(doing: &str, error: SdkError<E, HttpResponse>) -> SfnFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (code, message) = code_and_message(&error);
    let (code, message) = (code.to_string(), message.to_string());
    let client_error = error
        .raw_response()
        .is_some_and(|response| response.status().is_client_error());
    let port = match code.as_str() {
        _ if is_unreachable(&error) => PortError::Unavailable(format!(
            "Step Functions cannot be reached ({doing}): {}",
            one_line(&error)
        )),
        code if is_throttling(code) => {
            PortError::Throttled(format!("Step Functions is throttling ({doing}): {message}"))
        }
        "AccessDeniedException" | "UnrecognizedClientException" | "InvalidSignatureException" => {
            PortError::Rejected(format!(
                "Step Functions refused to {doing}: {code}: {message}"
            ))
        }
        _ => PortError::Other(format!(
            "Step Functions failed to {doing}: {}",
            one_line(&error)
        )),
    };
    SfnFailure {
        code,
        message,
        client_error,
        port,
    }
}

/// Task token errors: a token no task waits on is not found; a task that timed out or closed refuses it.
fn token_error(failure: SfnFailure) -> PortError {
    match failure.code.as_str() {
        "InvalidToken" | "TaskDoesNotExist" => {
            PortError::NotFound(format!("no task waits on this token: {}", failure.message))
        }
        "TaskTimedOut" => PortError::Rejected(format!(
            "the task of this token is closed: {}",
            failure.message
        )),
        "InvalidOutput" | "ValidationException" => PortError::Invalid(failure.message),
        _ => failure.port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_arns_follow_the_state_machine_arn() {
        let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:journey";
        let expected = "arn:aws:states:us-east-1:123456789012:execution:journey:user-1";
        assert_eq!(execution_arn(machine, "user-1").unwrap(), expected);
        assert_eq!(
            execution_arn(&format!("{machine}:7"), "user-1").unwrap(),
            expected
        );
        assert_eq!(
            execution_arn(&format!("{machine}:live"), "user-1").unwrap(),
            expected
        );
        assert!(matches!(
            execution_arn("journey", "user-1"),
            Err(PortError::Invalid(_))
        ));
    }
}
