//! The queue consumer: handled messages are deleted, failed ones come back and end in the dead-letter queue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tern_app::queues::Batching;
use tern_app::{AppState, BatchOutcome, QueueHandler};
use tern_local::worker::{BatchReport, process_batch};
use tern_local::{Engine, EngineOptions, ServeOptions, Server};
use tern_ports::{DeadLetter, OutMessage, PortResult, Queue, QueueSpec, Received};
use tokio::sync::Notify;

/// Short enough that a failed message is back within a test, long enough that a batch never outlives it.
const VISIBILITY: Duration = Duration::from_millis(300);
const MAX_RECEIVES: u32 = 2;

/// Fails every message whose body starts with `fail`, and records every body it sees.
struct Recorder {
    queue: String,
    seen: Mutex<Vec<String>>,
    handled: Notify,
}

impl Recorder {
    fn new(queue: &str) -> Self {
        Self {
            queue: queue.to_string(),
            seen: Mutex::default(),
            handled: Notify::new(),
        }
    }

    /// Waits until at least `count` messages were handled.
    async fn wait_for(&self, count: usize) {
        while self.seen.lock().unwrap().len() < count {
            self.handled.notified().await;
        }
    }
}

#[async_trait]
impl QueueHandler for Recorder {
    fn queue(&self) -> &str {
        &self.queue
    }

    async fn handle(&self, _state: &AppState, messages: Vec<Received>) -> BatchOutcome {
        self.seen
            .lock()
            .unwrap()
            .extend(messages.iter().map(|m| m.body.clone()));
        // A stored permit: the waiter sees it even when it starts waiting after this call.
        self.handled.notify_one();
        BatchOutcome::failed(
            messages
                .into_iter()
                .filter(|m| m.body.starts_with("fail"))
                .map(|m| m.id),
        )
    }
}

async fn engine_with_test_queue(dir: &std::path::Path, name: &str) -> Engine {
    let engine = Engine::open(dir, EngineOptions::default()).await.unwrap();
    let spec = QueueSpec {
        name: name.to_string(),
        visibility_timeout: VISIBILITY,
        dead_letter: Some(DeadLetter {
            queue: format!("{name}-dlq"),
            max_receives: MAX_RECEIVES,
        }),
    };
    engine.ports().queue.declare(&spec).await.unwrap();
    engine
}

fn bodies(messages: &[Received]) -> Vec<&str> {
    let mut bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    bodies.sort_unstable();
    bodies
}

#[tokio::test]
async fn succeeded_messages_are_deleted_and_failed_ones_come_back_then_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_test_queue(dir.path(), "work").await;
    let queue = engine.ports().queue.clone();
    let handler = Recorder::new("work");
    let messages = ["ok-1", "fail-1", "ok-2"].map(OutMessage::new).to_vec();
    queue.send_batch("work", messages).await.unwrap();

    let report = process_batch(&engine.app_state(), &handler, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        report,
        BatchReport {
            received: 3,
            deleted: 2,
            failed: 1
        }
    );

    // Only the failed message reappears, once its visibility timeout is over.
    let again = queue.receive("work", 10, VISIBILITY * 4).await.unwrap();
    assert_eq!(bodies(&again), vec!["fail-1"]);
    assert_eq!(again[0].receive_count, 2);

    // Its second receive was the last allowed: the next receive moves it to the dead-letter queue.
    let after_limit = queue.receive("work", 10, VISIBILITY * 4).await.unwrap();
    assert!(after_limit.is_empty(), "{after_limit:?}");
    let dead = queue.receive("work-dlq", 10, Duration::ZERO).await.unwrap();
    assert_eq!(bodies(&dead), vec!["fail-1"]);
}

#[tokio::test]
async fn an_empty_queue_gives_an_empty_report() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_test_queue(dir.path(), "idle").await;
    let handler = Recorder::new("idle");
    let report = process_batch(&engine.app_state(), &handler, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report, BatchReport::default());
    assert!(handler.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_server_runs_a_consumer_per_handler_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_test_queue(dir.path(), "served").await;
    let queue = engine.ports().queue.clone();
    let handler = Arc::new(Recorder::new("served"));
    let options = ServeOptions {
        handlers: vec![handler.clone()],
        receive_wait: Duration::from_millis(100),
        ..ServeOptions::default()
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(engine.clone(), async move {
        stopped.await.ok();
    }));

    queue
        .send_batch("served", ["a", "b"].map(OutMessage::new).to_vec())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), handler.wait_for(2))
        .await
        .expect("the consumer never handled the messages");
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    let mut seen = handler.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, vec!["a", "b"]);
    // Deleted, not merely invisible: nothing reappears after the visibility timeout.
    let leftovers = queue.receive("served", 10, VISIBILITY * 3).await.unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Asks for large batches and records every batch it is handed; every message succeeds.
struct Batcher {
    queue: String,
    batching: Batching,
    batches: Mutex<Vec<Vec<String>>>,
}

impl Batcher {
    fn new(queue: &str, max_messages: usize, window: Duration) -> Self {
        Self {
            queue: queue.to_string(),
            batching: Batching {
                max_messages,
                window,
            },
            batches: Mutex::default(),
        }
    }

    /// Each batch's bodies, sorted.
    fn batches(&self) -> Vec<Vec<String>> {
        let mut batches = self.batches.lock().unwrap().clone();
        for batch in &mut batches {
            batch.sort();
        }
        batches
    }
}

#[async_trait]
impl QueueHandler for Batcher {
    fn queue(&self) -> &str {
        &self.queue
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    async fn handle(&self, _state: &AppState, messages: Vec<Received>) -> BatchOutcome {
        self.batches
            .lock()
            .unwrap()
            .push(messages.into_iter().map(|m| m.body).collect());
        BatchOutcome::all_succeeded()
    }
}

/// A queue whose visibility timeout outlasts every batching window below, unless a test says otherwise.
async fn engine_with_queue(
    dir: &std::path::Path,
    name: &str,
    visibility_timeout: Duration,
    max_receives: u32,
) -> Engine {
    let engine = Engine::open(dir, EngineOptions::default()).await.unwrap();
    let spec = QueueSpec {
        name: name.to_string(),
        visibility_timeout,
        dead_letter: Some(DeadLetter {
            queue: format!("{name}-dlq"),
            max_receives,
        }),
    };
    engine.ports().queue.declare(&spec).await.unwrap();
    engine
}

const LONG_VISIBILITY: Duration = Duration::from_secs(60);

fn numbered(count: usize) -> Vec<OutMessage> {
    (0..count)
        .map(|i| OutMessage::new(format!("m-{i:02}")))
        .collect()
}

fn numbered_bodies(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("m-{i:02}")).collect()
}

#[tokio::test]
async fn a_batching_handler_gets_what_arrived_within_its_window_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_queue(dir.path(), "windowed", LONG_VISIBILITY, 5).await;
    let queue = engine.ports().queue.clone();
    queue.send_batch("windowed", numbered(25)).await.unwrap();
    // Far more than arrived: only the window can close the batch.
    let handler = Batcher::new("windowed", 1000, Duration::from_millis(300));

    let report = process_batch(&engine.app_state(), &handler, Duration::from_secs(1))
        .await
        .unwrap();

    assert_eq!(
        report,
        BatchReport {
            received: 25,
            deleted: 25,
            failed: 0
        }
    );
    assert_eq!(handler.batches(), vec![numbered_bodies(25)]);
}

#[tokio::test]
async fn a_batch_is_handed_over_when_it_reaches_the_handlers_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_queue(dir.path(), "bounded", LONG_VISIBILITY, 5).await;
    let queue = engine.ports().queue.clone();
    queue.send_batch("bounded", numbered(25)).await.unwrap();
    let handler = Batcher::new("bounded", 12, Duration::from_secs(20));

    for _ in 0..2 {
        let report = process_batch(&engine.app_state(), &handler, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(report.received, 12);
        assert_eq!(report.deleted, 12);
    }
    let sizes: Vec<usize> = handler.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![12, 12]);
    let remaining = queue.receive("bounded", 10, Duration::ZERO).await.unwrap();
    assert_eq!(remaining.len(), 1);
}

#[tokio::test]
async fn a_message_that_reappears_within_the_window_is_handed_over_once() {
    let dir = tempfile::tempdir().unwrap();
    // A visibility timeout shorter than the window: the messages come back while the batch is open.
    let engine = engine_with_queue(dir.path(), "reappearing", VISIBILITY, 20).await;
    let queue = engine.ports().queue.clone();
    queue.send_batch("reappearing", numbered(2)).await.unwrap();
    let handler = Batcher::new("reappearing", 1000, VISIBILITY * 3);

    let report = process_batch(&engine.app_state(), &handler, Duration::from_secs(1))
        .await
        .unwrap();

    assert_eq!(handler.batches(), vec![numbered_bodies(2)]);
    // The newest receipt of each was kept, so the deletes took.
    assert_eq!(report.deleted, 2);
    let leftovers = queue
        .receive("reappearing", 10, VISIBILITY * 3)
        .await
        .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn draining_closes_each_batch_when_the_queue_is_empty_instead_of_after_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_queue(dir.path(), "drained", LONG_VISIBILITY, 5).await;
    let queue = engine.ports().queue.clone();
    queue.send_batch("drained", numbered(25)).await.unwrap();
    let handler = Batcher::new("drained", 20, Duration::from_secs(20));

    let handled = tern_local::worker::drain(&engine.app_state(), &handler)
        .await
        .unwrap();

    assert_eq!(handled, 25);
    let sizes: Vec<usize> = handler.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![20, 5]);
}

/// The engine's queue, telling a test when a receive has returned messages and counting deletes.
struct Watched {
    inner: Arc<dyn Queue>,
    received: Notify,
    deletes: Mutex<usize>,
}

#[async_trait]
impl Queue for Watched {
    async fn declare(&self, spec: &QueueSpec) -> PortResult<()> {
        self.inner.declare(spec).await
    }

    async fn send_batch(&self, queue: &str, messages: Vec<OutMessage>) -> PortResult<()> {
        self.inner.send_batch(queue, messages).await
    }

    async fn receive(&self, queue: &str, max: u32, wait: Duration) -> PortResult<Vec<Received>> {
        let received = self.inner.receive(queue, max, wait).await?;
        if !received.is_empty() {
            self.received.notify_one();
        }
        Ok(received)
    }

    async fn delete(&self, queue: &str, receipt: &str) -> PortResult<()> {
        self.inner.delete(queue, receipt).await?;
        *self.deletes.lock().unwrap() += 1;
        Ok(())
    }

    async fn change_visibility(
        &self,
        queue: &str,
        receipt: &str,
        timeout: Duration,
    ) -> PortResult<()> {
        self.inner.change_visibility(queue, receipt, timeout).await
    }
}

#[tokio::test]
async fn a_stopping_consumer_hands_over_the_batch_it_holds_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_queue(dir.path(), "held", LONG_VISIBILITY, 5).await;
    let watched = Arc::new(Watched {
        inner: engine.ports().queue.clone(),
        received: Notify::new(),
        deletes: Mutex::new(0),
    });
    let mut state = engine.app_state();
    state.ports.queue = watched.clone();
    watched.send_batch("held", numbered(3)).await.unwrap();
    // A window far longer than the test: only the shutdown can close this batch.
    let handler = Arc::new(Batcher::new("held", 1000, Duration::from_secs(50)));

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consumer = tokio::spawn(tern_local::worker::run_consumer(
        state,
        handler.clone(),
        Duration::from_millis(100),
        stopped,
    ));
    tokio::time::timeout(Duration::from_secs(10), watched.received.notified())
        .await
        .expect("the consumer never received the messages");
    assert!(
        handler.batches().is_empty(),
        "handed over before the window"
    );

    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(10), consumer)
        .await
        .expect("the consumer kept the batch instead of handing it over at shutdown")
        .unwrap();

    assert_eq!(handler.batches(), vec![numbered_bodies(3)]);
    assert_eq!(*watched.deletes.lock().unwrap(), 3);
}
