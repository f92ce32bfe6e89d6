//! The official tracking SDKs, unchanged but for their host, against the local server: Segment's
//! `@segment/analytics-node` and RudderStack's `@rudderstack/rudder-sdk-node` (which gzips its batches).
//! `cargo xtask test` installs both and exports `TERN_TEST_NODE_MODULES`; without it these tests fail with a
//! message saying so.

use std::path::PathBuf;
use std::process::Command;

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::Value;
use tern_tests::{TestEngine, bearer_auth};

const NODE_MODULES_ENV: &str = "TERN_TEST_NODE_MODULES";

fn send_events(sdk: &str, base_url: &str, write_key: &str, user_id: &str) {
    let node_modules = std::env::var(NODE_MODULES_ENV).unwrap_or_else(|_| {
        panic!("{NODE_MODULES_ENV} is not set: run `cargo xtask test`, which installs the tracking SDKs")
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk/send-events.cjs");
    let output = Command::new("node")
        .arg(script)
        .args([sdk, base_url, write_key, user_id])
        .env(NODE_MODULES_ENV, node_modules)
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "{sdk} SDK run failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn user(engine: &TestEngine, admin_key: &str, user_id: &str) -> Value {
    let request = Request::get(format!("/v1/users/{user_id}"))
        .header("authorization", bearer_auth(admin_key))
        .body(Body::empty())
        .unwrap();
    let response = engine.send(request).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()
}

fn event_names(user: &Value) -> Vec<String> {
    user["recentEvents"]
        .as_array()
        .expect("recentEvents is a list")
        .iter()
        .map(|event| {
            let kind = event["type"].as_str().unwrap_or_default();
            let name = event["event"]
                .as_str()
                .or(event["name"].as_str())
                .unwrap_or_default();
            format!("{kind}:{name}")
        })
        .collect()
}

async fn the_sdk_delivers_every_call(sdk: &str) {
    let engine = TestEngine::embedded().await;
    let workspace = engine.workspace().await;
    let base_url = engine
        .base_url
        .clone()
        .expect("the embedded engine serves on loopback");
    let user_id = format!("{sdk}-user");
    let write_key = workspace.write_key.expose().to_string();
    let sdk_name = sdk.to_string();
    let (url, key, id) = (base_url.clone(), write_key.clone(), user_id.clone());
    tokio::task::spawn_blocking(move || send_events(&sdk_name, &url, &key, &id))
        .await
        .expect("the SDK run finished");

    let user = user(&engine, workspace.admin_key.expose(), &user_id).await;
    assert_eq!(user["traits"]["email"], format!("{user_id}@example.com"));
    assert_eq!(user["traits"]["plan"], "pro");
    let anonymous_ids = user["identities"]["anonymousIds"]
        .as_array()
        .expect("anonymousIds");
    assert!(
        anonymous_ids.contains(&Value::from(format!("{user_id}-anon"))),
        "{anonymous_ids:?}"
    );
    let names = event_names(&user);
    for expected in [
        "track:Pricing Viewed",
        "identify:",
        "track:Order Completed",
        "page:Pricing",
        "group:",
        "screen:Home",
        "alias:",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(user["groups"][0]["groupId"], format!("{user_id}-company"));
    assert_eq!(user["groups"][0]["traits"]["employees"], 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_analytics_node_delivers_every_call() {
    the_sdk_delivers_every_call("segment").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rudderstack_node_sdk_delivers_every_call_gzipped() {
    the_sdk_delivers_every_call("rudderstack").await;
}
