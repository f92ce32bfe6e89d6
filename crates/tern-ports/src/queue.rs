//! The queue port: SQS's standard-queue model (at-least-once, visibility timeout, dead-letter queue).
//!
//! Queues are named logically (`send`, `lake`, …); each adapter maps the name to its own resource.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::PortResult;

/// SQS's limit on one SendMessageBatch; the adapters chunk larger sends.
pub const MAX_SEND_BATCH: usize = 10;
/// SQS's limit on one ReceiveMessage.
pub const MAX_RECEIVE: u32 = 10;

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
        Self { body: body.into(), ..Self::default() }
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
    async fn change_visibility(&self, queue: &str, receipt: &str, timeout: Duration) -> PortResult<()>;
}
