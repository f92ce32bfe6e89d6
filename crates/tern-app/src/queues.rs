//! Queue handlers: the code behind each queue, written once and driven by either host — the local worker
//! loop (`tern-local`) or an SQS-triggered Lambda function (`tern-lambda`).
//!
//! Delivery is at least once: a handler may see a message again after a crash or a failed delete, so every
//! handler must be idempotent. It reports the ids of the messages it could not handle; the host deletes the
//! others and leaves those to come back after the visibility timeout (and to the dead-letter queue after the
//! queue's maximum receives), which is SQS's partial batch response.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tern_ports::{DeadLetter, QueueSpec, Received};

use crate::AppState;

/// What became of a batch: the ids (`Received::id`) of the messages that failed. The rest succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub failed: Vec<String>,
}

impl BatchOutcome {
    pub fn all_succeeded() -> Self {
        Self::default()
    }

    pub fn failed(ids: impl IntoIterator<Item = String>) -> Self {
        Self {
            failed: ids.into_iter().collect(),
        }
    }
}

#[async_trait]
pub trait QueueHandler: Send + Sync {
    /// The logical queue this handler consumes (`send`, `lake`, …).
    fn queue(&self) -> &str;

    /// Handles one batch (at most 10 messages) and reports which messages failed.
    async fn handle(&self, state: &AppState, messages: Vec<Received>) -> BatchOutcome;
}

/// Every queue handler Tern runs, one per queue; hosts start a consumer for each.
///
/// Empty for now: the queues exist (the local engine declares `send` and `lake`), and their handlers — the
/// sender and the lake writer — register here as they are written.
pub fn queue_handlers() -> Vec<Arc<dyn QueueHandler>> {
    Vec::new()
}

/// The queues Tern uses. On AWS the SAM template declares the same
/// queues with the same policy; the local engine and the tests declare them from [`queue_specs`].
pub const QUEUES: &[&str] = &["send", "lake"];
/// A message received this many times without being deleted moves to its queue's dead-letter queue.
pub const MAX_RECEIVES: u32 = 5;
/// How long a received message stays invisible before it may be received again.
pub const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

/// The dead-letter queue of `queue`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}-dlq")
}

/// The declaration of each of [`QUEUES`].
pub fn queue_specs() -> Vec<QueueSpec> {
    QUEUES
        .iter()
        .map(|name| QueueSpec {
            name: (*name).to_string(),
            visibility_timeout: VISIBILITY_TIMEOUT,
            dead_letter: Some(DeadLetter {
                queue: dead_letter_queue(name),
                max_receives: MAX_RECEIVES,
            }),
        })
        .collect()
}
