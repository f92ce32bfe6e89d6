//! Segment's HTTP Tracking API on both engines: every endpoint with its fixture from `events/segment/`, the
//! write key from HTTP Basic or from the body, gzip, 401s, the size limits, malformed JSON, rejected messages
//! reported by field while the valid ones are stored, and dedupe by `messageId`.
//!
//! What is stored is read back with `tern_domain::profile::get_user` (the reader behind `GET /v1/users/{id}`).

use std::io::Write;

use axum::body::Body;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::{Request, StatusCode, header};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tern_domain::CreatedWorkspace;
use tern_domain::ingest::Event;
use tern_tests::{TestEngine, TestResponse, basic_auth, fixture, on_both_engines};

/// Every endpoint with the fixture that exercises it.
const ENDPOINTS: [(&str, &str); 8] = [
    ("identify", "segment/identify.json"),
    ("track", "segment/track.json"),
    ("page", "segment/page.json"),
    ("screen", "segment/screen.json"),
    ("group", "segment/group.json"),
    ("alias", "segment/alias.json"),
    ("batch", "segment/batch.json"),
    ("import", "segment/import.json"),
];

/// The user the single-call fixtures are about, and the one of `batch.json`.
const FIXTURE_USER: &str = "019mr8mf4r";
const BATCH_USER: &str = "97980cfea0067";

fn post(path: &str, authorization: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(authorization) = authorization {
        builder = builder.header(header::AUTHORIZATION, authorization);
    }
    builder.body(body.into()).expect("a valid request")
}

fn write_key(created: &CreatedWorkspace) -> String {
    basic_auth(created.write_key.expose())
}

/// Posts `body` to `/v1/batch` with the workspace's write key in HTTP Basic.
async fn send_batch(
    engine: &TestEngine,
    created: &CreatedWorkspace,
    body: impl Into<Body>,
) -> TestResponse {
    engine
        .send(post("/v1/batch", Some(&write_key(created)), body))
        .await
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("fixtures are JSON")
}

/// The fixture's body with `writeKey` added, as clients that cannot set headers send it.
fn with_body_key(bytes: &[u8], key: &str) -> Vec<u8> {
    let mut body = json_of(bytes);
    body["writeKey"] = json!(key);
    body.to_string().into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// The message ids of a fixture: the body's own for a single call, its items' for a batch.
fn message_ids(body: &Value) -> Vec<String> {
    let messages = match body.get("batch") {
        Some(Value::Array(items)) => items.clone(),
        _ => vec![body.clone()],
    };
    messages
        .iter()
        .map(|message| {
            message["messageId"]
                .as_str()
                .expect("fixtures carry messageIds")
                .to_string()
        })
        .collect()
}

fn assert_success(response: &TestResponse, what: &str) {
    assert_eq!(
        response.status,
        StatusCode::OK,
        "{what}: {}",
        response.text()
    );
    assert_eq!(response.json(), json!({"success": true}), "{what}");
}

fn assert_problem(response: &TestResponse, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(
        response.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body = response.json();
    assert_eq!(body["code"], code, "{body}");
    body
}

fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .expect("an errors array")
        .iter()
        .map(|error| error["field"].as_str().expect("a field").to_string())
        .collect()
}

/// The events stored for `user_id`, newest first.
async fn stored_events(
    engine: &TestEngine,
    created: &CreatedWorkspace,
    user_id: &str,
) -> Vec<Event> {
    tern_domain::profile::get_user(
        engine.ports().table.as_ref(),
        &created.workspace.id,
        user_id,
    )
    .await
    .expect("read the user")
    .unwrap_or_else(|| panic!("user {user_id} was not stored"))
    .recent_events
}

fn stored_ids(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event.message_id.as_str())
        .collect()
}

fn stored<'a>(events: &'a [Event], message_id: &str) -> &'a Event {
    events
        .iter()
        .find(|event| event.message_id == message_id)
        .unwrap_or_else(|| panic!("{message_id} is not among {:?}", stored_ids(events)))
}

async fn every_fixture_is_accepted_with_basic_auth(engine: TestEngine) {
    let created = engine.workspace().await;
    let key = write_key(&created);
    for (endpoint, file) in ENDPOINTS {
        let response = engine
            .send(post(&format!("/v1/{endpoint}"), Some(&key), fixture(file)))
            .await;
        assert_success(&response, endpoint);
    }
    let events = stored_events(&engine, &created, FIXTURE_USER).await;
    for file in ["identify", "track", "screen", "group", "alias"] {
        for id in message_ids(&json_of(&fixture(&format!("segment/{file}.json")))) {
            stored(&events, &id);
        }
    }
    let batch_events = stored_events(&engine, &created, BATCH_USER).await;
    let batch = json_of(&fixture("segment/batch.json"));
    for item in batch["batch"].as_array().unwrap() {
        if item.get("userId").is_some() {
            stored(&batch_events, item["messageId"].as_str().unwrap());
        }
    }
    // Imported history has no sentAt: its times are kept as sent.
    let imported = stored_events(&engine, &created, "legacy-4417").await;
    let order = stored(&imported, "import-2025-legacy-4417-order-A-1009");
    assert_eq!(
        order.timestamp,
        "2025-06-04T09:30:00Z".parse::<Timestamp>().unwrap()
    );
    assert_eq!(order.event.as_deref(), Some("Order Completed"));
}

async fn every_fixture_is_accepted_with_the_write_key_in_the_body(engine: TestEngine) {
    let created = engine.workspace().await;
    for (endpoint, file) in ENDPOINTS {
        let body = with_body_key(&fixture(file), created.write_key.expose());
        let response = engine
            .send(post(&format!("/v1/{endpoint}"), None, body))
            .await;
        assert_success(&response, endpoint);
    }
    let events = stored_events(&engine, &created, FIXTURE_USER).await;
    let track = json_of(&fixture("segment/track.json"));
    let order = stored(&events, track["messageId"].as_str().unwrap());
    assert_eq!(order.properties["orderId"], "50314b8e9bcf000000000000");
}

async fn batch_times_are_corrected_for_clock_skew_and_the_client_ip_is_kept(engine: TestEngine) {
    let created = engine.workspace().await;
    let mut request = post(
        "/v1/batch",
        Some(&write_key(&created)),
        fixture("segment/batch.json"),
    );
    request.headers_mut().insert(
        "x-forwarded-for",
        "198.51.100.23, 10.0.0.8".parse().unwrap(),
    );
    let before = engine.ports().clock.now();
    let response = engine.send(request).await;
    let after = engine.ports().clock.now();
    assert_success(&response, "batch");

    let events = stored_events(&engine, &created, BATCH_USER).await;
    // "Signed Up" was stamped 8.5 s before the batch's sentAt, by the client's clock.
    let signed_up = stored(&events, "node-next-1772213000002-1d5a8e3c");
    let gap = SignedDuration::from_millis(8_500);
    assert!(
        signed_up.timestamp >= before - gap && signed_up.timestamp <= after - gap,
        "{} is not receivedAt - 8.5 s ({before}..{after})",
        signed_up.timestamp
    );
    assert_eq!(signed_up.context["ip"], "198.51.100.23");
    assert_eq!(
        signed_up.context["library"]["name"],
        "@segment/analytics-node"
    );
    let identify = stored(&events, "node-next-1772213000001-7b2c9e4f");
    assert_eq!(
        identify.context["ip"], "203.0.113.42",
        "the client's own ip wins"
    );
}

async fn gzip_bodies_are_accepted(engine: TestEngine) {
    let created = engine.workspace().await;
    let body = fixture("segment/batch.json");
    let mut request = post("/v1/batch", Some(&write_key(&created)), gzip(&body));
    request
        .headers_mut()
        .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
    assert_success(&engine.send(request).await, "gzip batch");
    let events = stored_events(&engine, &created, BATCH_USER).await;
    stored(&events, "node-next-1772213000004-4e8c1a7b");
}

async fn missing_unknown_and_admin_keys_are_401(engine: TestEngine) {
    let created = engine.workspace().await;
    let admin = created.admin_key.expose();
    let body = fixture("segment/track.json");
    let requests = [
        ("no key", post("/v1/track", None, body.clone())),
        (
            "unknown key",
            post("/v1/track", Some(&basic_auth("tw_not_a_key")), body.clone()),
        ),
        (
            "unknown body key",
            post("/v1/track", None, with_body_key(&body, "tw_not_a_key")),
        ),
        (
            "admin key",
            post("/v1/track", Some(&basic_auth(admin)), body.clone()),
        ),
        (
            "admin key in the body",
            post("/v1/track", None, with_body_key(&body, admin)),
        ),
    ];
    for (what, request) in requests {
        let response = engine.send(request).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            response.text()
        );
        assert_eq!(response.json()["code"], "unauthorized", "{what}");
        assert!(
            response.headers.contains_key(header::WWW_AUTHENTICATE),
            "{what}"
        );
    }
    let stored = tern_domain::profile::get_user(
        engine.ports().table.as_ref(),
        &created.workspace.id,
        FIXTURE_USER,
    )
    .await
    .expect("read the user");
    assert!(stored.is_none(), "nothing is stored without a write key");
}

async fn an_oversize_event_is_rejected_and_the_rest_stored(engine: TestEngine) {
    let created = engine.workspace().await;
    let body = json!({"batch": [
        {"type": "track", "userId": "u-big", "event": "Small", "messageId": "small-1"},
        {"type": "track", "userId": "u-big", "event": "Big", "messageId": "big-1",
         "properties": {"blob": "x".repeat(40 * 1024)}},
    ]});
    let response = send_batch(&engine, &created, body.to_string()).await;
    let problem = assert_problem(&response, StatusCode::BAD_REQUEST, "invalid_messages");
    assert_eq!(error_fields(&problem), vec!["batch[1]"]);
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("32768"), "{message}");
    let events = stored_events(&engine, &created, "u-big").await;
    assert_eq!(stored_ids(&events), vec!["small-1"]);
}

async fn an_oversize_batch_is_400_batch_too_large(engine: TestEngine) {
    let created = engine.workspace().await;
    // Twenty 30 KB messages: each within the event limit, together over the 500 KB batch limit.
    let items: Vec<Value> = (0..20)
        .map(|index| {
            json!({"type": "track", "userId": "u-many", "event": "Filler",
                   "messageId": format!("filler-{index}"), "properties": {"blob": "x".repeat(30_000)}})
        })
        .collect();
    let body = json!({ "batch": items }).to_string();
    assert!(body.len() > 600_000);
    let response = send_batch(&engine, &created, body).await;
    let problem = assert_problem(&response, StatusCode::BAD_REQUEST, "batch_too_large");
    assert!(problem["message"].as_str().unwrap().contains("512000"));
    let stored = tern_domain::profile::get_user(
        engine.ports().table.as_ref(),
        &created.workspace.id,
        "u-many",
    )
    .await
    .expect("read the user");
    assert!(stored.is_none(), "a refused batch stores nothing");
}

async fn malformed_json_is_400_naming_line_and_column(engine: TestEngine) {
    let created = engine.workspace().await;
    let body = "{\n  \"batch\": [\n    {\"type\": \"track\", \"userId\": \"u1\", \"event\": \"A\",}\n  ]\n}";
    let response = send_batch(&engine, &created, body).await;
    let problem = assert_problem(&response, StatusCode::BAD_REQUEST, "invalid_json");
    let message = problem["message"].as_str().unwrap();
    assert!(
        message.starts_with("malformed JSON at line 3, column 52"),
        "{message}"
    );
}

async fn rejected_messages_are_reported_by_field(engine: TestEngine) {
    let created = engine.workspace().await;
    let body = json!({"batch": [
        {"type": "identify", "userId": "u-mixed", "traits": {"plan": "pro"}, "messageId": "ok-1"},
        {"type": "track", "event": "No Id", "messageId": "bad-1"},
        {"type": "track", "userId": "u-mixed", "event": "Late", "timestamp": "yesterday"},
        {"type": "purchase", "userId": "u-mixed"},
        {"type": "group", "userId": "u-mixed"},
        {"type": "track", "userId": "u-mixed", "event": "Clicked", "messageId": "ok-2"},
    ]});
    let response = send_batch(&engine, &created, body.to_string()).await;
    let problem = assert_problem(&response, StatusCode::BAD_REQUEST, "invalid_messages");
    assert_eq!(
        error_fields(&problem),
        vec![
            "batch[1].userId",
            "batch[2].timestamp",
            "batch[3].type",
            "batch[4].groupId"
        ]
    );
    let events = stored_events(&engine, &created, "u-mixed").await;
    let mut ids = stored_ids(&events);
    ids.sort();
    assert_eq!(ids, vec!["ok-1", "ok-2"]);
}

async fn the_same_batch_twice_is_stored_once(engine: TestEngine) {
    let created = engine.workspace().await;
    let key = write_key(&created);
    for attempt in ["first", "second"] {
        let response = engine
            .send(post("/v1/batch", Some(&key), fixture("segment/batch.json")))
            .await;
        assert_success(&response, attempt);
    }
    let events = stored_events(&engine, &created, BATCH_USER).await;
    let ids = stored_ids(&events);
    let batch = json_of(&fixture("segment/batch.json"));
    for item in batch["batch"].as_array().unwrap() {
        if item.get("userId").is_some() {
            let id = item["messageId"].as_str().unwrap();
            assert_eq!(
                ids.iter().filter(|stored| **stored == id).count(),
                1,
                "{id}: {ids:?}"
            );
        }
    }
}

on_both_engines!(
    every_fixture_is_accepted_with_basic_auth,
    every_fixture_is_accepted_with_the_write_key_in_the_body,
    batch_times_are_corrected_for_clock_skew_and_the_client_ip_is_kept,
    gzip_bodies_are_accepted,
    missing_unknown_and_admin_keys_are_401,
    an_oversize_event_is_rejected_and_the_rest_stored,
    an_oversize_batch_is_400_batch_too_large,
    malformed_json_is_400_naming_line_and_column,
    rejected_messages_are_reported_by_field,
    the_same_batch_twice_is_stored_once,
);
