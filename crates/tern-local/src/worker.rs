//! The background loops of the local host: one consumer per queue handler, and the workflow timer.
//!
//! A consumer does what Lambda's SQS integration does on AWS: gather a batch as the handler asks (up to its
//! maximum size, for up to its batching window), hand it to the handler in one call, delete the messages
//! that succeeded, and leave the failed ones to reappear after the visibility timeout (and to move to the
//! dead-letter queue after the maximum receives).

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tern_app::{AppState, BatchOutcome, QueueHandler};
use tern_embedded::workflows::EmbeddedWorkflows;
use tern_ports::PortResult;
use tern_ports::queue::MAX_RECEIVE;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// How long a consumer pauses after the queue itself failed, so that a broken database is not hammered.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// What one batch came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub received: usize,
    pub deleted: usize,
    pub failed: usize,
}

/// The most payload one batch holds, as Lambda caps an SQS batch at 6 MB: it bounds a large batch's memory.
pub const MAX_BATCH_BYTES: usize = 6 * 1024 * 1024;

/// Within a batching window, a receive waits at most the consumer's `wait` (so that shutdown is noticed
/// as quickly as when idle) and at least this long (so that a zero `wait` polls instead of spinning).
const MIN_WINDOW_POLL: Duration = Duration::from_millis(100);

/// When a batch being gathered is handed over (besides being full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// When this much time has passed since its first message arrived, as SQS's batching window.
    After(Duration),
    /// As soon as a receive finds no visible message.
    WhenEmpty,
}

/// Gathers one batch for `handler` as its [`tern_app::queues::Batching`] asks (waiting up to `wait` for
/// the first message), handles it in one call and deletes the messages that succeeded.
pub async fn process_batch(
    state: &AppState,
    handler: &dyn QueueHandler,
    wait: Duration,
) -> PortResult<BatchReport> {
    let (_never, running) = watch::channel(false);
    process_batch_until(state, handler, wait, &running).await
}

/// [`process_batch`], except that the batch is handed over early once `stop` turns true: what the
/// consumer holds at shutdown is handled and deleted, not left to reappear later.
pub async fn process_batch_until(
    state: &AppState,
    handler: &dyn QueueHandler,
    wait: Duration,
    stop: &watch::Receiver<bool>,
) -> PortResult<BatchReport> {
    let close = Close::After(handler.batching().window);
    let messages = gather(state, handler, wait, close, stop).await?;
    Ok(handle_and_delete(state, handler, messages).await)
}

/// Handles `handler`'s queue until no message is visible, in batches as large as the handler asks but
/// closed as soon as the queue has nothing more to give instead of after the window; returns how many
/// messages were handled (failed ones included). For tests and tools that need the queue worked off now.
pub async fn drain(state: &AppState, handler: &dyn QueueHandler) -> PortResult<usize> {
    let mut handled = 0;
    loop {
        match sweep(state, handler).await?.received {
            0 => return Ok(handled),
            received => handled += received,
        }
    }
}

/// One batch of what is visible now, without waiting: closed when full or when the queue is empty.
async fn sweep(state: &AppState, handler: &dyn QueueHandler) -> PortResult<BatchReport> {
    let (_never, running) = watch::channel(false);
    let messages = gather(state, handler, Duration::ZERO, Close::WhenEmpty, &running).await?;
    Ok(handle_and_delete(state, handler, messages).await)
}

/// Receives until the batch holds the handler's `max_messages` or [`MAX_BATCH_BYTES`], or `close` says
/// it is complete. Once `stop` turns true the batch closes as soon as nothing more is waiting, so that
/// shutdown hands over what is held and what was sent just before. Empty when nothing arrived within
/// `wait`.
async fn gather(
    state: &AppState,
    handler: &dyn QueueHandler,
    wait: Duration,
    mut close: Close,
    stop: &watch::Receiver<bool>,
) -> PortResult<Vec<tern_ports::Received>> {
    let queue_name = handler.queue();
    let queue = state.ports.queue.as_ref();
    let max_messages = handler.batching().max_messages.max(1);
    let mut batch = Gathered::default();
    batch.add(
        queue
            .receive(queue_name, receive_size(max_messages, 0), wait)
            .await?,
    );
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let opened = Instant::now();
    while batch.len() < max_messages && batch.bytes < MAX_BATCH_BYTES {
        if *stop.borrow() {
            close = Close::WhenEmpty;
        }
        let poll = match close {
            Close::WhenEmpty => Duration::ZERO,
            Close::After(window) => match window.checked_sub(opened.elapsed()) {
                Some(remaining) if !remaining.is_zero() => remaining.min(wait.max(MIN_WINDOW_POLL)),
                _ => break,
            },
        };
        match queue
            .receive(queue_name, receive_size(max_messages, batch.len()), poll)
            .await
        {
            Ok(more) if more.is_empty() && close == Close::WhenEmpty => break,
            Ok(more) => batch.add(more),
            // What is held is handled now; the receive is retried with the next batch.
            Err(error) => {
                tracing::warn!(queue = queue_name, %error, "cannot receive; handling the batch gathered so far");
                break;
            }
        }
    }
    Ok(batch.messages)
}

/// How many messages the next receive asks for: what the batch still lacks, at most one receive's worth.
fn receive_size(max_messages: usize, held: usize) -> u32 {
    let lacking = max_messages.saturating_sub(held).max(1);
    u32::try_from(lacking)
        .unwrap_or(MAX_RECEIVE)
        .min(MAX_RECEIVE)
}

/// The messages of a batch being gathered, each once: a message that reappears while the batch is open
/// (its visibility timeout shorter than the window) replaces its earlier copy, whose receipt is stale.
#[derive(Default)]
struct Gathered {
    messages: Vec<tern_ports::Received>,
    positions: HashMap<String, usize>,
    bytes: usize,
}

impl Gathered {
    fn add(&mut self, received: Vec<tern_ports::Received>) {
        for message in received {
            self.bytes += message.body.len();
            match self.positions.get(&message.id) {
                Some(&position) => self.messages[position] = message,
                None => {
                    self.positions
                        .insert(message.id.clone(), self.messages.len());
                    self.messages.push(message);
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.messages.len()
    }

    fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// Hands `messages` to the handler in one call and deletes the ones that succeeded.
async fn handle_and_delete(
    state: &AppState,
    handler: &dyn QueueHandler,
    messages: Vec<tern_ports::Received>,
) -> BatchReport {
    if messages.is_empty() {
        return BatchReport::default();
    }
    let queue_name = handler.queue();
    let queue = state.ports.queue.as_ref();
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
    report
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

/// Consumes `handler`'s queue until `stop` turns true. The batch being gathered is then handed over at
/// once, with what is already waiting on the queue (up to one batch), and handled and deleted before the
/// consumer returns: events sent just before `tern up` stops are in the lake after it.
pub async fn run_consumer(
    state: AppState,
    handler: Arc<dyn QueueHandler>,
    wait: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(queue = handler.queue(), "queue consumer started");
    while !*stop.borrow() {
        match process_batch_until(&state, handler.as_ref(), wait, &stop).await {
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
    match sweep(&state, handler.as_ref()).await {
        Ok(report) if report.received > 0 => {
            tracing::debug!(queue = handler.queue(), ?report, "last batch handled");
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(queue = handler.queue(), %error, "cannot receive the last batch")
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

/// How often the embedded engine visits the users whose segment memberships may have changed with time (the
/// schedule that an EventBridge rule runs every minute on AWS).
pub const SEGMENT_TICK: Duration = Duration::from_secs(30);

/// Re-evaluates, every `every`, the segment memberships that are due in every workspace, until `stop`
/// turns true.
pub async fn run_segment_timer(state: AppState, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            _ = ticker.tick() => {
                let now = state.ports.clock.now();
                match tern_domain::segments::realtime::tick_all(&state.ports, now).await {
                    Ok(evaluated) if evaluated.users > 0 => tracing::debug!(
                        users = evaluated.users, entered = evaluated.entered,
                        exited = evaluated.exited, "due segment memberships re-evaluated"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "cannot re-evaluate due segment memberships"),
                }
            }
        }
    }
}
