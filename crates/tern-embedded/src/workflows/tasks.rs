//! Where a Task state's `Resource` goes: a [`TaskRunner`]. [`QueueTaskRunner`] implements Step Functions'
//! SQS integration on the queue port and hands every other resource to an inner runner.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tern_ports::{OutMessage, Queue};

/// Step Functions' optimized integration that sends one SQS message.
pub const SQS_SEND_MESSAGE: &str = "arn:aws:states:::sqs:sendMessage";
/// The same, handing the task token out in the message and waiting for it to be completed.
pub const SQS_SEND_MESSAGE_WAIT_FOR_TASK_TOKEN: &str =
    "arn:aws:states:::sqs:sendMessage.waitForTaskToken";

/// The error name Step Functions reports when the SQS integration fails.
const SQS_ERROR: &str = "SQS.AmazonSQSException";

/// A task's failure: an ASL error name (which Retry and Catch match) and a human cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct TaskError {
    pub error: String,
    pub cause: String,
}

impl TaskError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

/// Runs the task a Task state names. For a `….waitForTaskToken` resource `token` is set, the returned value
/// is ignored, and the execution waits for the token to be completed through the workflows port.
#[async_trait]
pub trait TaskRunner: Send + Sync {
    async fn run(
        &self,
        resource: &str,
        input: Value,
        token: Option<&str>,
    ) -> Result<Value, TaskError>;
}

/// A runner that knows no resource: every task fails with `States.TaskFailed`, naming the resource.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTasks;

#[async_trait]
impl TaskRunner for NoTasks {
    async fn run(
        &self,
        resource: &str,
        _input: Value,
        _token: Option<&str>,
    ) -> Result<Value, TaskError> {
        Err(TaskError::new(
            "States.TaskFailed",
            format!("no task runner handles the resource `{resource}`"),
        ))
    }
}

/// Sends `Parameters.MessageBody` to the queue port for the SQS resources, as Step Functions does, so the
/// same definition runs on both engines; the queue is the last path segment of `Parameters.QueueUrl`.
pub struct QueueTaskRunner {
    queue: Arc<dyn Queue>,
    inner: Arc<dyn TaskRunner>,
}

impl QueueTaskRunner {
    pub fn new(queue: Arc<dyn Queue>, inner: Arc<dyn TaskRunner>) -> Self {
        Self { queue, inner }
    }

    async fn send_message(&self, parameters: &Value) -> Result<Value, TaskError> {
        let (queue, message) = message_from(parameters)?;
        self.queue
            .send_batch(&queue, vec![message])
            .await
            .map_err(|error| {
                TaskError::new(
                    SQS_ERROR,
                    format!("sending to queue `{queue}` failed: {error}"),
                )
            })?;
        // The queue port does not report message ids, so the result carries none.
        Ok(json!({}))
    }
}

#[async_trait]
impl TaskRunner for QueueTaskRunner {
    async fn run(
        &self,
        resource: &str,
        input: Value,
        token: Option<&str>,
    ) -> Result<Value, TaskError> {
        match resource {
            SQS_SEND_MESSAGE | SQS_SEND_MESSAGE_WAIT_FOR_TASK_TOKEN => {
                self.send_message(&input).await
            }
            _ => self.inner.run(resource, input, token).await,
        }
    }
}

/// The queue name and message an SQS `sendMessage` task's parameters describe.
fn message_from(parameters: &Value) -> Result<(String, OutMessage), TaskError> {
    let missing = |field: &str| {
        TaskError::new(
            SQS_ERROR,
            format!("the sendMessage parameters need `{field}`"),
        )
    };
    let url = parameters
        .get("QueueUrl")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("QueueUrl"))?;
    let queue = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(url)
        .to_string();
    let body = match parameters.get("MessageBody") {
        Some(Value::String(text)) => text.clone(),
        // Step Functions serializes a JSON message body to its text.
        Some(other) => other.to_string(),
        None => return Err(missing("MessageBody")),
    };
    let delay = match parameters.get("DelaySeconds") {
        None => Duration::ZERO,
        Some(seconds) => Duration::from_secs(seconds.as_u64().ok_or_else(|| {
            TaskError::new(SQS_ERROR, "`DelaySeconds` must be a non-negative integer")
        })?),
    };
    let attributes = message_attributes(parameters.get("MessageAttributes"))?;
    Ok((
        queue,
        OutMessage {
            body,
            delay,
            attributes,
        },
    ))
}

/// SQS message attributes (`{"name": {"DataType": "String", "StringValue": "v"}}`) as the port's string map.
fn message_attributes(attributes: Option<&Value>) -> Result<BTreeMap<String, String>, TaskError> {
    let Some(attributes) = attributes else {
        return Ok(BTreeMap::new());
    };
    let map = attributes
        .as_object()
        .ok_or_else(|| TaskError::new(SQS_ERROR, "`MessageAttributes` must be an object"))?;
    map.iter()
        .map(|(name, attribute)| {
            attribute
                .get("StringValue")
                .and_then(Value::as_str)
                .map(|value| (name.clone(), value.to_string()))
                .ok_or_else(|| {
                    TaskError::new(
                        SQS_ERROR,
                        format!("message attribute `{name}` needs a `StringValue`"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_the_last_segment_of_its_url() {
        let (queue, message) = message_from(&json!({
            "QueueUrl": "http://127.0.0.1:5055/123456789012/tern-send",
            "MessageBody": {"token": "t"},
            "DelaySeconds": 5,
            "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "email"}}
        }))
        .unwrap();
        assert_eq!(queue, "tern-send");
        assert_eq!(message.body, r#"{"token":"t"}"#);
        assert_eq!(message.delay, Duration::from_secs(5));
        assert_eq!(
            message.attributes,
            BTreeMap::from([("kind".to_string(), "email".to_string())])
        );
        let (queue, message) =
            message_from(&json!({"QueueUrl": "plain", "MessageBody": "text"})).unwrap();
        assert_eq!((queue.as_str(), message.body.as_str()), ("plain", "text"));
    }

    #[test]
    fn missing_parameters_fail_the_task() {
        let error = message_from(&json!({"MessageBody": "x"})).unwrap_err();
        assert_eq!(error.error, "SQS.AmazonSQSException");
        assert!(error.cause.contains("QueueUrl"));
        assert!(
            message_from(&json!({"QueueUrl": "q"}))
                .unwrap_err()
                .cause
                .contains("MessageBody")
        );
    }
}
