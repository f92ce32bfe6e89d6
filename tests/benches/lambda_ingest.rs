//! CPU time per event in the Lambda handler path of `POST /v1/batch`.
//!
//! Each iteration does what one Lambda invocation does: deserialize the API Gateway (HTTP API, payload 2.0)
//! event from JSON, convert it with `lambda_http`, run Tern's router over the AWS adapters, and serialize
//! the response. The AWS side is the moto server `cargo xtask bench` starts (`TERN_TEST_AWS_ENDPOINT`), a
//! separate process, so its work is not counted: the figure is this process's user + system CPU time
//! (`/proc/self/stat`) divided by the events accepted, on a current-thread runtime as in Lambda.
//!
//! `cargo xtask bench` runs it; alone: `cargo bench -p tern-tests --bench lambda_ingest [-- BATCHES]`.

use std::time::Instant;

use serde_json::json;
use tern_lambda::lambda_http::{self, request::LambdaRequest};
use tern_tests::{TestEngine, basic_auth};
use tower::ServiceExt;

const EVENTS_PER_BATCH: usize = 100;
const DEFAULT_BATCHES: usize = 40;

/// This process's CPU time so far (user + system), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat format") + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // Linux reports in USER_HZ, which is 100 on every mainstream configuration.
    ticks / 100.0
}

fn api_gateway_event(batch: usize, authorization: &str) -> String {
    let sent_at = jiff::Timestamp::now().to_string();
    let events: Vec<serde_json::Value> = (0..EVENTS_PER_BATCH)
        .map(|i| {
            let n = batch * EVENTS_PER_BATCH + i;
            json!({
                "type": "track", "messageId": format!("lambda-bench-{n}"), "userId": format!("user-{}", n % 500),
                "event": "Product Viewed", "timestamp": sent_at,
                "properties": {"product_id": format!("p-{}", n % 97), "price": 19.99, "currency": "EUR"},
                "context": {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0", "locale": "en-GB", "timezone": "Europe/Berlin"},
            })
        })
        .collect();
    let body = json!({"batch": events, "sentAt": sent_at}).to_string();
    json!({
        "version": "2.0", "routeKey": "POST /v1/batch", "rawPath": "/v1/batch", "rawQueryString": "",
        "headers": {"authorization": authorization, "content-type": "application/json", "host": "api.example.com",
                    "x-forwarded-for": "203.0.113.7"},
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "api.example.com",
            "http": {"method": "POST", "path": "/v1/batch", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "bench"},
            "requestId": format!("bench-{batch}"), "routeKey": "POST /v1/batch", "stage": "$default",
            "time": "23/Nov/2026:10:15:30 +0000", "timeEpoch": 1795688130000u64},
        "body": body, "isBase64Encoded": false
    })
    .to_string()
}

fn main() {
    // Warnings and errors only, as JSON lines, so that a failing invocation shows why.
    // SAFETY: the process has no other thread yet.
    unsafe { std::env::set_var("RUST_LOG", "warn") };
    tern_lambda::init_tracing();
    let batches = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_BATCHES);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let engine = TestEngine::aws().await;
        let workspace = engine.workspace().await;
        let authorization = basic_auth(workspace.write_key.expose());
        let events: Vec<String> = (0..=batches).map(|b| api_gateway_event(b, &authorization)).collect();
        let router = tern_app::router(engine.state.clone());

        let run = |event: &String| {
            let router = router.clone();
            let event = event.clone();
            async move {
                let request: LambdaRequest = serde_json::from_str(&event).expect("an API Gateway event");
                let response = router
                    .oneshot(lambda_http::Request::from(request))
                    .await
                    .expect("the router never fails");
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
                assert!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&body));
            }
        };
        // The first invocation warms connections and caches, as a cold start would; it is not counted.
        run(&events[0]).await;
        let (cpu_before, wall_before) = (cpu_seconds(), Instant::now());
        for event in &events[1..] {
            run(event).await;
        }
        let cpu = cpu_seconds() - cpu_before;
        let wall = wall_before.elapsed().as_secs_f64();
        let accepted = (batches * EVENTS_PER_BATCH) as f64;
        println!(
            "lambda ingest path: {accepted} events in {batches} API Gateway events of {EVENTS_PER_BATCH}: \
             {:.1} CPU µs per event ({:.3} s CPU, {:.2} s wall against moto)",
            cpu / accepted * 1e6,
            cpu,
            wall
        );
    });
}
