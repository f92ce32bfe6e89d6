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

/// How many messages a handler receives at once, as the batch size and batching window of Lambda's SQS
/// event source: a batch is handed over when it holds `max_messages`, or `window` after its first message
/// arrived, whichever comes first. The SAM template gives the handler's function the same two settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub max_messages: usize,
    /// Zero: hand over whatever one receive returns. It must stay well below [`VISIBILITY_TIMEOUT`], or
    /// the first messages of a batch reappear before it is handled.
    pub window: Duration,
}

impl Batching {
    /// Lambda's default for an SQS event source: up to 10 messages, no window.
    pub const DEFAULT: Batching = Batching {
        max_messages: 10,
        window: Duration::ZERO,
    };
}

impl Default for Batching {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[async_trait]
pub trait QueueHandler: Send + Sync {
    /// The logical queue this handler consumes (`send`, `lake`, …).
    fn queue(&self) -> &str;

    /// How the host batches this handler's messages; [`Batching::DEFAULT`] unless the handler gains from
    /// larger batches.
    fn batching(&self) -> Batching {
        Batching::DEFAULT
    }

    /// Handles one batch (at most [`Batching::max_messages`]) and reports which messages failed.
    async fn handle(&self, state: &AppState, messages: Vec<Received>) -> BatchOutcome;
}

/// Every queue handler Tern runs, one per queue; hosts start a consumer for each.
pub fn queue_handlers() -> Vec<Arc<dyn QueueHandler>> {
    vec![
        Arc::new(crate::lake::LakeWriter),
        Arc::new(crate::imports::ImportHandler::default()),
        Arc::new(crate::segments::SegmentEvaluator),
        Arc::new(crate::segments::SegmentBackfill),
        // One line per handler.
    ]
}

/// The queues Tern uses. On AWS the SAM template declares the same
/// queues with the same policy; the local engine and the tests declare them from [`queue_specs`].
pub const QUEUES: &[&str] = &[
    "send",
    "lake",
    "imports",
    "segments",
    "segment-changes",
    "segment-backfill",
];
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

/// The handler registered for `queue`, if any.
pub fn handler_for(queue: &str) -> Option<Arc<dyn QueueHandler>> {
    queue_handlers()
        .into_iter()
        .find(|handler| handler.queue() == queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batching_window_leaves_most_of_the_visibility_timeout_to_the_handler() {
        for handler in queue_handlers() {
            let batching = handler.batching();
            assert!(
                batching.window * 2 < VISIBILITY_TIMEOUT,
                "{}",
                handler.queue()
            );
            assert!(batching.max_messages >= 1, "{}", handler.queue());
        }
    }

    #[test]
    fn every_handler_consumes_a_declared_queue_and_no_queue_has_two() {
        let mut consumed: Vec<&str> = Vec::new();
        let handlers = queue_handlers();
        for handler in &handlers {
            assert!(QUEUES.contains(&handler.queue()), "{}", handler.queue());
            assert!(!consumed.contains(&handler.queue()), "{}", handler.queue());
            consumed.push(handler.queue());
        }
    }
}
