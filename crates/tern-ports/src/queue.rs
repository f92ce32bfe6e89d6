//! The queue port: SQS's standard-queue model (at-least-once, visibility timeout, dead-letter queue).
//!
//! Queues are named logically (`send`, `lake`, …); each adapter maps the name to its own resource.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{PortError, PortResult};

/// SQS's limit on one SendMessageBatch; the adapters chunk larger sends.
pub const MAX_SEND_BATCH: usize = 10;
/// SQS's limit on one ReceiveMessage.
pub const MAX_RECEIVE: u32 = 10;
/// SQS's longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// SQS's longest visibility timeout.
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// SQS's longest long-poll; longer waits are shortened to it.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// SQS's limit on message attributes.
pub const MAX_ATTRIBUTES: usize = 10;

/// How a queue behaves. On AWS the SAM template declares it; the embedded engine and the tests declare it
/// through `Queue::declare`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    pub visibility_timeout: Duration,
    pub dead_letter: Option<DeadLetter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The queue that receives a message after `max_receives` receives without a delete.
    pub queue: String,
    pub max_receives: u32,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutMessage {
    pub body: String,
    /// Invisible for this long after sending (SQS allows up to 15 minutes).
    pub delay: Duration,
    pub attributes: BTreeMap<String, String>,
}

impl OutMessage {
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A received message. `receipt` identifies this receive for delete and visibility changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    pub receipt: String,
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    pub attributes: BTreeMap<String, String>,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Creates the queue (and its dead-letter queue) if needed; idempotent.
    async fn declare(&self, spec: &QueueSpec) -> PortResult<()>;

    /// Sends any number of messages; the adapter chunks them to 10 and retries entries the service refuses
    /// for a transient reason.
    async fn send_batch(&self, queue: &str, messages: Vec<OutMessage>) -> PortResult<()>;

    /// Receives up to `max` (≤ 10) messages, waiting up to `wait` for the first one. A message received more
    /// times than its dead-letter policy allows is moved to the dead-letter queue instead of being returned.
    async fn receive(&self, queue: &str, max: u32, wait: Duration) -> PortResult<Vec<Received>>;

    /// Deletes a received message: it has been handled.
    async fn delete(&self, queue: &str, receipt: &str) -> PortResult<()>;

    /// Makes a received message visible again after `timeout` (zero: at once) — a retry with backoff.
    async fn change_visibility(
        &self,
        queue: &str,
        receipt: &str,
        timeout: Duration,
    ) -> PortResult<()>;
}

/// SQS's rules for one message, which both engines check for the whole batch before any of it is sent or
/// stored. `index` is the message's place in the batch, which the error reports.
pub fn validate_message(queue: &str, index: usize, message: &OutMessage) -> PortResult<()> {
    let refuse = |why: String| {
        Err(PortError::Invalid(format!(
            "message {index} to queue {queue}: {why}"
        )))
    };
    if message.body.is_empty() {
        return refuse("the body is empty".into());
    }
    if message.delay > MAX_DELAY {
        return refuse(format!("delay {:?} exceeds {MAX_DELAY:?}", message.delay));
    }
    if message.attributes.len() > MAX_ATTRIBUTES {
        return refuse(format!(
            "{} attributes exceed the limit of {MAX_ATTRIBUTES}",
            message.attributes.len()
        ));
    }
    if let Some((name, _)) = message
        .attributes
        .iter()
        .find(|(name, value)| name.is_empty() || value.is_empty())
    {
        return refuse(format!("attribute {name:?} has an empty name or value"));
    }
    Ok(())
}

/// How many messages one receive may ask for: 1 to [`MAX_RECEIVE`].
pub fn validate_receive_max(max: u32) -> PortResult<()> {
    if !(1..=MAX_RECEIVE).contains(&max) {
        return Err(PortError::Invalid(format!(
            "receive asks for {max} messages; it must be 1 to {MAX_RECEIVE}"
        )));
    }
    Ok(())
}

/// A received message's new visibility timeout: at most [`MAX_VISIBILITY_TIMEOUT`].
pub fn validate_visibility_timeout(queue: &str, timeout: Duration) -> PortResult<()> {
    if timeout > MAX_VISIBILITY_TIMEOUT {
        return Err(PortError::Invalid(format!(
            "visibility timeout {timeout:?} for queue {queue} exceeds {MAX_VISIBILITY_TIMEOUT:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(message: &OutMessage) -> String {
        match validate_message("send", 3, message) {
            Err(PortError::Invalid(why)) => why,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_message_passes() {
        let message = OutMessage::new("hello").delayed(MAX_DELAY);
        assert_eq!(validate_message("send", 0, &message), Ok(()));
    }

    #[test]
    fn each_broken_rule_is_named_with_the_message_and_queue() {
        assert_eq!(
            refusal(&OutMessage::new("")),
            "message 3 to queue send: the body is empty"
        );
        let late = OutMessage::new("late").delayed(MAX_DELAY + Duration::from_secs(1));
        assert!(refusal(&late).contains("delay"));
        let mut crowded = OutMessage::new("x");
        crowded.attributes = (0..=MAX_ATTRIBUTES)
            .map(|i| (format!("a{i}"), "v".to_string()))
            .collect();
        assert!(refusal(&crowded).contains("11 attributes exceed the limit of 10"));
        let mut blank = OutMessage::new("x");
        blank.attributes.insert("name".into(), String::new());
        assert!(refusal(&blank).contains("attribute \"name\" has an empty name or value"));
    }

    #[test]
    fn receive_and_visibility_limits_follow_sqs() {
        assert!(matches!(
            validate_receive_max(0),
            Err(PortError::Invalid(_))
        ));
        assert_eq!(validate_receive_max(MAX_RECEIVE), Ok(()));
        assert!(matches!(
            validate_receive_max(MAX_RECEIVE + 1),
            Err(PortError::Invalid(_))
        ));
        assert_eq!(
            validate_visibility_timeout("send", MAX_VISIBILITY_TIMEOUT),
            Ok(())
        );
        assert!(matches!(
            validate_visibility_timeout("send", MAX_VISIBILITY_TIMEOUT + Duration::from_secs(1)),
            Err(PortError::Invalid(why)) if why.contains("send")
        ));
    }
}
