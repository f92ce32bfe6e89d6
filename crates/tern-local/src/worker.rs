//! The background loops of the local host: one consumer per queue handler, and the workflow timer.
//!
//! A consumer does what Lambda's SQS integration does on AWS: receive a batch, hand it to the handler,
//! delete the messages that succeeded, and leave the failed ones to reappear after the visibility timeout
//! (and to move to the dead-letter queue after the maximum receives).

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tern_app::{AppState, BatchOutcome, QueueHandler};
use tern_embedded::workflows::EmbeddedWorkflows;
use tern_ports::PortResult;
use tern_ports::queue::MAX_RECEIVE;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// How long a consumer pauses after the queue itself failed, so that a broken database is not hammered.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// What one batch came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub received: usize,
    pub deleted: usize,
    pub failed: usize,
}

/// Receives one batch for `handler` (waiting up to `wait` for the first message), handles it and deletes
/// the messages that succeeded.
pub async fn process_batch(
    state: &AppState,
    handler: &dyn QueueHandler,
    wait: Duration,
) -> PortResult<BatchReport> {
    let queue_name = handler.queue();
    let queue = state.ports.queue.as_ref();
    let messages = queue.receive(queue_name, MAX_RECEIVE, wait).await?;
    if messages.is_empty() {
        return Ok(BatchReport::default());
    }
    let receipts: Vec<(String, String)> = messages
        .iter()
        .map(|m| (m.id.clone(), m.receipt.clone()))
        .collect();
    let outcome = handle_guarded(state, handler, messages).await;
    let failed: HashSet<&str> = outcome.failed.iter().map(String::as_str).collect();

    let mut report = BatchReport {
        received: receipts.len(),
        ..BatchReport::default()
    };
    for (id, receipt) in &receipts {
        if failed.contains(id.as_str()) {
            report.failed += 1;
            tracing::warn!(queue = queue_name, message_id = %id, "message failed; it will be retried");
            continue;
        }
        match queue.delete(queue_name, receipt).await {
            Ok(()) => report.deleted += 1,
            // The message was handled; it comes back after the visibility timeout and, handlers being
            // idempotent, is handled again without harm.
            Err(error) => {
                tracing::warn!(queue = queue_name, message_id = %id, %error, "cannot delete a handled message")
            }
        }
    }
    Ok(report)
}

/// Runs the handler; a panic fails the whole batch instead of killing the consumer.
async fn handle_guarded(
    state: &AppState,
    handler: &dyn QueueHandler,
    messages: Vec<tern_ports::Received>,
) -> BatchOutcome {
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    match AssertUnwindSafe(handler.handle(state, messages))
        .catch_unwind()
        .await
    {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::error!(
                queue = handler.queue(),
                "queue handler panicked; the batch will be retried"
            );
            BatchOutcome::failed(ids)
        }
    }
}

/// Consumes `handler`'s queue until `stop` turns true. A batch in progress is finished first.
pub async fn run_consumer(
    state: AppState,
    handler: Arc<dyn QueueHandler>,
    wait: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(queue = handler.queue(), "queue consumer started");
    while !*stop.borrow() {
        match process_batch(&state, handler.as_ref(), wait).await {
            Ok(report) if report.received > 0 => {
                tracing::debug!(queue = handler.queue(), ?report, "batch handled");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(queue = handler.queue(), %error, "cannot receive");
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(ERROR_BACKOFF) => {}
                }
            }
        }
    }
    tracing::info!(queue = handler.queue(), "queue consumer stopped");
}

/// Advances the workflow executions that are due, every `every`, until `stop` turns true.
pub async fn run_workflow_timer(
    workflows: Arc<EmbeddedWorkflows>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            _ = ticker.tick() => match workflows.run_due().await {
                Ok(0) => {}
                Ok(steps) => tracing::debug!(steps, "workflow steps ran"),
                Err(error) => tracing::warn!(%error, "cannot advance workflows"),
            },
        }
    }
}
