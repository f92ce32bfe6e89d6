//! The queue consumer: handled messages are deleted, failed ones come back and end in the dead-letter queue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tern_app::{AppState, BatchOutcome, QueueHandler};
use tern_local::worker::{BatchReport, process_batch};
use tern_local::{Engine, EngineOptions, ServeOptions, Server};
use tern_ports::{DeadLetter, OutMessage, QueueSpec, Received};
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
