//! Events per second that `tern_domain::ingest::accept` stores on a file-backed embedded engine.
//!
//! `cargo bench -p tern-embedded --bench accept [-- EVENTS CONCURRENCY USERS]` builds every batch up
//! front (100 events each, random message ids as SDKs make them, realistic properties and context, one
//! event in ten an identify with traits), then runs `accept` on a fresh database in a temporary directory
//! for two shapes of batch: 20 distinct users per batch and 100 (or only `USERS` per batch).
//! `CONCURRENCY` batches are in flight at once (default 1; `tern up` serves several connections). The
//! figures count events stored, with the process's CPU time per event beside them, steadier than wall
//! time on a busy machine; nothing is asserted about time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tern_domain::ingest::{Event, accept};
use tern_embedded::Db;
use tern_embedded::blobs::DirBlobs;
use tern_embedded::mail::Outbox;
use tern_embedded::queue::SqliteQueue;
use tern_embedded::table::SqliteTable;
use tern_embedded::workflows::{EmbeddedWorkflows, NoTasks};
use tern_ports::{Ports, Queue, QueueSpec, SystemClock};

/// The allocator of the `tern` binary, so that the figures are the ones `tern up` gets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS_PER_BATCH: usize = 100;
/// Users the batches draw from; every batch takes a consecutive run of them, so profiles are updated
/// again and again, as on a real site.
const USER_POOL: usize = 5_000;
const DEFAULT_EVENTS: usize = 100_000;
const WORKSPACE: &str = "ws_bench";

/// The embedded engine on a database file in `dir`, with the `lake` queue declared.
async fn file_backed_ports(dir: &std::path::Path) -> Ports {
    let db = Db::open(&dir.join("tern.db")).expect("open the database file");
    let clock = Arc::new(SystemClock);
    let queue = Arc::new(SqliteQueue::new(db.clone()).expect("queue schema"));
    queue
        .declare(&QueueSpec {
            name: "lake".into(),
            visibility_timeout: Duration::from_secs(30),
            dead_letter: None,
        })
        .await
        .expect("declare the lake queue");
    Ports {
        table: Arc::new(SqliteTable::new(db.clone()).expect("table schema")),
        queue,
        blobs: Arc::new(
            DirBlobs::new(
                dir.join("blobs"),
                "http://127.0.0.1:3000".into(),
                vec![7; 32],
            )
            .expect("blob directory"),
        ),
        mail: Arc::new(Outbox::new(dir.join("outbox"), None).expect("outbox")),
        workflows: Arc::new(
            EmbeddedWorkflows::new(db, clock.clone(), Arc::new(NoTasks)).expect("workflow schema"),
        ),
        clock,
    }
}

/// Event `n` of a batch whose users are `first_user .. first_user + users`.
fn event(n: usize, position: usize, first_user: usize, users: usize) -> Event {
    let now = jiff::Timestamp::now().to_string();
    // Random, as SDKs make them, so dedupe markers land all over the table.
    let message_id = uuid::Uuid::new_v4().to_string();
    let user = format!("user-{}", (first_user + position % users) % USER_POOL);
    let context = json!({
        "ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (X11; Linux x86_64)", "locale": "en-GB",
        "timezone": "Europe/Berlin", "library": {"name": "analytics-node", "version": "3.1.0"},
    });
    let value = if n.is_multiple_of(10) {
        json!({
            "type": "identify", "messageId": message_id, "userId": user,
            "traits": {"plan": "pro", "seats": n % 50, "email": format!("{user}@example.com")},
            "context": context, "timestamp": now, "receivedAt": now,
        })
    } else {
        json!({
            "type": "track", "messageId": message_id, "userId": user, "event": "Product Viewed",
            "properties": {
                "product_id": format!("p-{}", n % 997), "price": 19.99, "currency": "EUR",
                "position": position,
            },
            "context": context, "timestamp": now, "receivedAt": now,
        })
    };
    serde_json::from_value(value).expect("a valid event")
}

fn batches(events: usize, users_per_batch: usize) -> Vec<Vec<Event>> {
    (0..events.div_ceil(EVENTS_PER_BATCH))
        .map(|batch| {
            let first_user = batch * users_per_batch;
            (0..EVENTS_PER_BATCH)
                .map(|position| {
                    let n = batch * EVENTS_PER_BATCH + position;
                    event(n, position, first_user, users_per_batch)
                })
                .collect()
        })
        .collect()
}

/// Runs every batch through `accept` with `concurrency` in flight.
async fn run(users_per_batch: usize, events: usize, concurrency: usize) -> Throughput {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ports = Arc::new(file_backed_ports(dir.path()).await);
    let batches = Arc::new(std::sync::Mutex::new(
        batches(events, users_per_batch).into_iter(),
    ));
    let stored = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let cpu_before = cpu_used().unwrap_or_default();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (ports, batches, stored) = (ports.clone(), batches.clone(), stored.clone());
            tokio::spawn(async move {
                loop {
                    let next = batches.lock().expect("batch list").next();
                    let Some(batch) = next else { return };
                    let accepted = accept(&ports, WORKSPACE, batch)
                        .await
                        .expect("accept stores the batch");
                    stored.fetch_add(accepted.stored, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a bench worker panicked");
    }
    let elapsed = started.elapsed();
    let stored = stored.load(Ordering::Relaxed);
    assert_eq!(stored, events.div_ceil(EVENTS_PER_BATCH) * EVENTS_PER_BATCH);
    Throughput {
        per_second: stored as f64 / elapsed.as_secs_f64(),
        cpu_per_thousand: cpu_used().map(|cpu| (cpu - cpu_before) * 1000 / stored as u32),
    }
}

struct Throughput {
    per_second: f64,
    /// Process CPU time (user and system) per thousand events: steadier than wall time on a busy machine.
    cpu_per_thousand: Option<Duration>,
}

/// CPU time this process used so far, from `/proc/self/stat` (Linux; `None` elsewhere).
fn cpu_used() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the parenthesized command name; utime and stime are the 12th and 13th of them.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports in USER_HZ, 100 per second on every Linux platform Tern runs on.
    Some(Duration::from_millis(ticks * 10))
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let events = args.first().copied().unwrap_or(DEFAULT_EVENTS);
    let concurrency = args.get(1).copied().unwrap_or(1).max(1);
    let shapes = match args.get(2) {
        Some(&users_per_batch) => vec![users_per_batch.clamp(1, EVENTS_PER_BATCH)],
        None => vec![20, 100],
    };
    for users_per_batch in shapes {
        let throughput = run(users_per_batch, events, concurrency).await;
        let cpu = throughput
            .cpu_per_thousand
            .map(|cpu| format!(", {:.1} ms CPU per 1000 events", cpu.as_secs_f64() * 1e3))
            .unwrap_or_default();
        println!(
            "accept: {events} events, {EVENTS_PER_BATCH} a batch from {users_per_batch} users, \
             {concurrency} in flight: {:.0} events/s{cpu}",
            throughput.per_second
        );
    }
}
