//! Events per second that `tern up` accepts and persists on `POST /v1/batch`, 100 events a batch.
//!
//! `cargo bench -p tern-cli --bench ingest [-- EVENTS CONNECTIONS]` starts the release `tern` binary on a
//! fresh data directory on a loopback port, builds every batch up front (distinct message ids, users drawn
//! from a fixed pool, realistic properties and context), then posts them over keep-alive connections and
//! reports throughput and request latency. An answer of 200 means the events are in the table and on the
//! lake queue, so the figure is accepted *and* persisted. The load is bounded in count; nothing here asserts
//! a time.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

const EVENTS_PER_BATCH: usize = 100;
const USERS: usize = 5_000;
const DEFAULT_EVENTS: usize = 200_000;
const DEFAULT_CONNECTIONS: usize = 8;

struct Server {
    child: Child,
    base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _exited = self.child.wait();
    }
}

fn tern(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tern"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn");
    command
}

fn write_key(data_dir: &Path) -> String {
    let output = tern(data_dir)
        .args(["workspace", "create", "bench", "--json"])
        .output()
        .expect("run tern workspace create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("workspace create --json prints JSON");
    created["write_key"]
        .as_str()
        .expect("the JSON carries write_key")
        .to_string()
}

fn start(data_dir: &Path) -> Server {
    let mut child = tern(data_dir)
        .args(["up", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start tern up");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base_url = loop {
        let line = lines
            .next()
            .expect("tern up prints where it listens")
            .expect("read tern up's output");
        if let Some(url) = line.strip_prefix("Listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep reading stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, base_url }
}

fn batch_body(batch: usize) -> Vec<u8> {
    let sent_at = jiff::Timestamp::now().to_string();
    let events: Vec<serde_json::Value> = (0..EVENTS_PER_BATCH)
        .map(|i| {
            let n = batch * EVENTS_PER_BATCH + i;
            let user = format!("user-{}", n * 7919 % USERS);
            json!({
                "type": "track",
                "messageId": format!("bench-{n}"),
                "userId": user,
                "event": "Product Viewed",
                "properties": {"product_id": format!("p-{}", n % 997), "price": 19.99, "currency": "EUR", "position": i},
                "context": {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (X11; Linux x86_64)", "locale": "en-GB",
                            "timezone": "Europe/Berlin", "library": {"name": "analytics-node", "version": "3.1.0"}},
                "timestamp": sent_at,
            })
        })
        .collect();
    serde_json::to_vec(&json!({"batch": events, "sentAt": sent_at})).expect("serialize a batch")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let events = args.first().copied().unwrap_or(DEFAULT_EVENTS);
    let connections = args.get(1).copied().unwrap_or(DEFAULT_CONNECTIONS);
    let batches = events.div_ceil(EVENTS_PER_BATCH);

    let data_dir = tempfile::tempdir().expect("temporary data directory");
    let key = write_key(data_dir.path());
    let server = start(data_dir.path());
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..batches).map(batch_body).collect());
    let url = format!("{}/v1/batch", server.base_url);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("HTTP client");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, key, bodies, next) = (
                client.clone(),
                url.clone(),
                key.clone(),
                bodies.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(body) = bodies.get(index) else {
                        return latencies;
                    };
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .basic_auth(&key, Some(""))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("the server answers");
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    assert!(status.is_success(), "batch {index}: {status} {text}");
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("a load worker panicked"));
    }
    let elapsed = started.elapsed();
    latencies.sort();

    let accepted = batches * EVENTS_PER_BATCH;
    println!(
        "ingest: {accepted} events in {batches} batches of {EVENTS_PER_BATCH} over {connections} connections: \
         {:.2} s, {:.0} events/s; request latency p50 {:.1} ms, p99 {:.1} ms",
        elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    drop(server);
}
