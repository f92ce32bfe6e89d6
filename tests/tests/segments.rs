//! Segments on both engines: accepted events go through the `segments` queue and its registered handler,
//! memberships land in the sharded member index, and each change is published once on `segment-changes`,
//! even when a `segments` message is delivered again; the admin API saves versioned definitions, a save is
//! backfilled over existing users through the `segment-backfill` queue, and the scheduled tick re-evaluates
//! memberships whose windows expire.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tern_domain::ingest::{Event, accept};
use tern_domain::segments::SegmentDefinition;
use tern_domain::segments::backfill::SEGMENT_BACKFILL_QUEUE;
use tern_domain::segments::membership::{SEGMENT_CHANGES_QUEUE, member_count, members};
use tern_domain::segments::realtime::{SEGMENTS_QUEUE, tick};
use tern_domain::segments::store::create_segment;
use tern_ports::OutMessage;
use tern_tests::{TestEngine, TestResponse, bearer_auth, on_both_engines};

fn identify(message_id: &str, user_id: &str, plan: &str) -> Event {
    let now = jiff::Timestamp::now().to_string();
    serde_json::from_value(json!({
        "messageId": message_id,
        "type": "identify",
        "userId": user_id,
        "traits": {"plan": plan},
        "timestamp": now,
        "receivedAt": now,
    }))
    .expect("a valid event")
}

/// Every message waiting on `queue`, deleted.
async fn take(engine: &TestEngine, queue: &str) -> Vec<String> {
    let port = &engine.ports().queue;
    let mut bodies = Vec::new();
    loop {
        let received = port
            .receive(queue, 10, Duration::ZERO)
            .await
            .expect("receive");
        if received.is_empty() {
            return bodies;
        }
        for message in received {
            port.delete(queue, &message.receipt).await.expect("delete");
            bodies.push(message.body);
        }
    }
}

/// The published changes, as `(type, segment, user)`, sorted.
async fn changes(engine: &TestEngine, workspace_id: &str) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = take(engine, SEGMENT_CHANGES_QUEUE)
        .await
        .iter()
        .map(|body| {
            let change: Value = serde_json::from_str(body).expect("a JSON change");
            assert_eq!(change["workspaceId"], workspace_id);
            let text = |name: &str| change[name].as_str().expect(name).to_string();
            (text("type"), text("segmentId"), text("userId"))
        })
        .collect();
    found.sort();
    found
}

fn change(kind: &str, segment: &str, user: &str) -> (String, String, String) {
    (format!("segment.{kind}"), segment.into(), user.into())
}

async fn events_move_users_in_and_out_of_segments_once_per_change(engine: TestEngine) {
    let created = engine.workspace().await;
    let ws = created.workspace.id.as_str();
    let ports = engine.ports();
    let pro = SegmentDefinition::from_value(
        &json!({"name": "Pro", "condition": {"trait": "plan", "op": "equals", "value": "pro"}}),
    )
    .expect("a valid definition");
    create_segment(ports, ws, "pro", pro)
        .await
        .expect("the segment is saved");

    let events = vec![
        identify("i1", "u1", "pro"),
        identify("i2", "u2", "pro"),
        identify("i3", "u3", "free"),
    ];
    // Accepting the events publishes them for segment evaluation.
    accept(ports, ws, events).await.expect("accepted");
    // The message is delivered three times, one after the other (moto does not isolate concurrent
    // conditional writes as DynamoDB does; concurrency is covered by the domain's tests).
    let bodies = take(&engine, SEGMENTS_QUEUE).await;
    assert_eq!(bodies.len(), 1);
    for _ in 0..3 {
        ports
            .queue
            .send_batch(SEGMENTS_QUEUE, vec![OutMessage::new(bodies[0].clone())])
            .await
            .expect("delivered");
        assert_eq!(engine.drain(SEGMENTS_QUEUE).await, 1);
    }
    assert_eq!(
        changes(&engine, ws).await,
        [
            change("entered", "pro", "u1"),
            change("entered", "pro", "u2")
        ]
    );
    let table = ports.table.as_ref();
    assert_eq!(member_count(table, ws, "pro").await.expect("count"), 2);
    let page = members(table, ws, "pro", None, 100).await.expect("members");
    let ids: BTreeSet<String> = page.members.into_iter().map(|m| m.user_id).collect();
    assert_eq!(ids, BTreeSet::from(["u1".to_string(), "u2".to_string()]));

    let downgrade = vec![identify("i4", "u1", "free")];
    accept(ports, ws, downgrade).await.expect("accepted");
    engine.drain(SEGMENTS_QUEUE).await;
    assert_eq!(changes(&engine, ws).await, [change("exited", "pro", "u1")]);
    assert_eq!(member_count(table, ws, "pro").await.expect("count"), 1);
}

fn track(message_id: &str, user_id: &str, event: &str, at: jiff::Timestamp) -> Event {
    serde_json::from_value(json!({
        "messageId": message_id,
        "type": "track",
        "userId": user_id,
        "event": event,
        "timestamp": at.to_string(),
        "receivedAt": at.to_string(),
    }))
    .expect("a valid event")
}

/// Sends an admin request with an optional body (JSON unless `content_type` says otherwise).
async fn admin(
    engine: &TestEngine,
    key: &str,
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
) -> TestResponse {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", bearer_auth(key));
    let request = match body {
        Some((content_type, body)) => builder
            .header("content-type", content_type)
            .body(Body::from(body)),
        None => builder.body(Body::empty()),
    };
    engine.send(request.expect("a request")).await
}

fn json_body(value: Value) -> Option<(&'static str, String)> {
    Some(("application/json", value.to_string()))
}

async fn segments_are_saved_versioned_read_and_deleted_over_the_admin_api(engine: TestEngine) {
    let created = engine.workspace().await;
    let key = created.admin_key.expose();
    let pro = json!({"id": "pro", "name": "Pro",
        "condition": {"trait": "plan", "op": "equals", "value": "pro"}});
    let response = admin(&engine, key, "POST", "/v1/segments", json_body(pro.clone())).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let body = response.json();
    assert_eq!(body["id"], "pro");
    assert_eq!(body["version"], 1);
    assert_eq!(body["condition"], pro["condition"]);
    assert_eq!(body["backfill"]["status"], "running");
    let again = admin(&engine, key, "POST", "/v1/segments", json_body(pro)).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());

    let yaml = "id: everyone\nname: Everyone\ncondition:\n  everyone: true\n".to_string();
    let response = admin(
        &engine,
        key,
        "POST",
        "/v1/segments",
        Some(("application/yaml", yaml)),
    )
    .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    assert_eq!(response.json()["condition"], json!({"everyone": true}));

    let invalid = json!({"name": "Broken", "condition": {"all": [
        {"performed": {"event": "Order Completed", "within": "30 days"}},
        {"segment": "missing"},
        {"any": []}]}});
    let response = admin(&engine, key, "POST", "/v1/segments", json_body(invalid)).await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.text()
    );
    let fields: Vec<String> = response.json()["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|error| error["field"].as_str().expect("a field").to_string())
        .collect();
    assert_eq!(
        fields,
        ["condition.all[0].performed.within", "condition.all[2].any"]
    );
    let unknown_reference = json!({"name": "Ref", "condition": {"segment": "missing"}});
    let response = admin(
        &engine,
        key,
        "POST",
        "/v1/segments",
        json_body(unknown_reference),
    )
    .await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.text()
    );
    assert!(response.text().contains("missing"), "{}", response.text());

    let listed = admin(&engine, key, "GET", "/v1/segments", None)
        .await
        .json();
    let mut ids: Vec<&str> = listed["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|segment| segment["id"].as_str().expect("an id"))
        .collect();
    ids.sort();
    assert_eq!(ids, ["everyone", "pro"]);

    let edit = json!({"name": "Pro or team",
        "condition": {"trait": "plan", "op": "in", "value": ["pro", "team"]}});
    let response = admin(&engine, key, "PUT", "/v1/segments/pro", json_body(edit)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["version"], 2);
    let current = admin(&engine, key, "GET", "/v1/segments/pro", None)
        .await
        .json();
    assert_eq!(
        (current["name"].clone(), current["version"].clone()),
        (json!("Pro or team"), json!(2))
    );
    assert_eq!(current["backfill"]["version"], 2);
    let first = admin(&engine, key, "GET", "/v1/segments/pro/versions/1", None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.json()["name"], "Pro");
    for missing in [
        "/v1/segments/pro/versions/3",
        "/v1/segments/nope",
        "/v1/segments/nope/members",
        "/v1/segments/nope/count",
    ] {
        let response = admin(&engine, key, "GET", missing, None).await;
        assert_eq!(
            response.status,
            StatusCode::NOT_FOUND,
            "{missing}: {}",
            response.text()
        );
    }
    let bad_version = admin(&engine, key, "GET", "/v1/segments/pro/versions/zero", None).await;
    assert_eq!(bad_version.status, StatusCode::BAD_REQUEST);

    let deleted = admin(&engine, key, "DELETE", "/v1/segments/pro", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    let gone = admin(&engine, key, "GET", "/v1/segments/pro", None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let gone = admin(&engine, key, "DELETE", "/v1/segments/pro", None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

async fn a_new_segment_is_backfilled_over_existing_users_with_their_past_events(
    engine: TestEngine,
) {
    let created = engine.workspace().await;
    let ws = created.workspace.id.as_str();
    let key = created.admin_key.expose();
    let ports = engine.ports();
    let now = jiff::Timestamp::now();
    let day = jiff::SignedDuration::from_hours(24);
    let events = vec![
        identify("i1", "u1", "pro"),
        identify("i2", "u2", "free"),
        identify("i3", "u3", "pro"),
        track("t1", "u1", "Order Completed", now - day * 3),
        track("t2", "u1", "Order Completed", now - day),
        track("t3", "u3", "Order Completed", now - day * 2),
        // Outside the window: it counts for nobody.
        track("t4", "u2", "Order Completed", now - day * 40),
    ];
    accept(ports, ws, events).await.expect("accepted");

    let buyers = json!({"id": "buyers", "name": "Repeat buyers", "condition": {"performed": {
        "event": "Order Completed", "count": {"atLeast": 2}, "within": "30d"}}});
    let response = admin(&engine, key, "POST", "/v1/segments", json_body(buyers)).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    assert!(engine.drain(SEGMENT_BACKFILL_QUEUE).await >= 1);

    let segment = admin(&engine, key, "GET", "/v1/segments/buyers", None)
        .await
        .json();
    assert_eq!(segment["backfill"]["status"], "done", "{segment}");
    assert_eq!(segment["backfill"]["usersEvaluated"], 3);
    assert!(segment["backfill"]["finishedAt"].is_string(), "{segment}");
    let count = admin(&engine, key, "GET", "/v1/segments/buyers/count", None)
        .await
        .json();
    assert_eq!(count["count"], 1);
    let page = admin(
        &engine,
        key,
        "GET",
        "/v1/segments/buyers/members?limit=10",
        None,
    )
    .await
    .json();
    assert_eq!(page["members"][0]["userId"], "u1", "{page}");
    assert_eq!(page["members"].as_array().expect("members").len(), 1);
    assert_eq!(
        changes(&engine, ws).await,
        [change("entered", "buyers", "u1")]
    );
    let user = admin(&engine, key, "GET", "/v1/users/u1", None)
        .await
        .json();
    assert_eq!(user["segments"], json!(["buyers"]));
    let user = admin(&engine, key, "GET", "/v1/users/u2", None)
        .await
        .json();
    assert_eq!(user["segments"], json!([]));

    // An edit re-evaluates everyone from the counters kept: u1's two orders are not counted again.
    let once = json!({"name": "One-time buyers", "condition": {"performed": {
        "event": "Order Completed", "count": {"exactly": 1}, "within": "30d"}}});
    let response = admin(&engine, key, "PUT", "/v1/segments/buyers", json_body(once)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    engine.drain(SEGMENT_BACKFILL_QUEUE).await;
    assert_eq!(
        changes(&engine, ws).await,
        [
            change("entered", "buyers", "u3"),
            change("exited", "buyers", "u1")
        ]
    );
    let count = admin(&engine, key, "GET", "/v1/segments/buyers/count", None)
        .await
        .json();
    assert_eq!(count["count"], 1);
    let segment = admin(&engine, key, "GET", "/v1/segments/buyers", None)
        .await
        .json();
    assert_eq!(
        (
            segment["backfill"]["status"].clone(),
            segment["backfill"]["version"].clone()
        ),
        (json!("done"), json!(2))
    );

    let preview =
        json!({"name": "Pro", "condition": {"trait": "plan", "op": "equals", "value": "pro"}});
    let response = admin(
        &engine,
        key,
        "POST",
        "/v1/segments/preview",
        json_body(preview),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let preview = response.json();
    assert_eq!(preview["count"], 2);
    let mut sample: Vec<&str> = preview["sample"]
        .as_array()
        .expect("a sample")
        .iter()
        .map(|id| id.as_str().expect("an id"))
        .collect();
    sample.sort();
    assert_eq!(sample, ["u1", "u3"]);
    assert_eq!(
        (preview["usersScanned"].clone(), preview["complete"].clone()),
        (json!(3), json!(true))
    );
    let with_events =
        json!({"name": "Any order", "condition": {"performed": {"event": "Order Completed"}}});
    let preview = admin(
        &engine,
        key,
        "POST",
        "/v1/segments/preview",
        json_body(with_events),
    )
    .await
    .json();
    assert_eq!(preview["count"], 3, "{preview}");
    // A preview saves nothing.
    let listed = admin(&engine, key, "GET", "/v1/segments", None)
        .await
        .json();
    assert_eq!(listed["segments"].as_array().expect("segments").len(), 1);
}

async fn a_window_that_passes_is_noticed_by_the_scheduled_tick(engine: TestEngine) {
    let created = engine.workspace().await;
    let ws = created.workspace.id.as_str();
    let key = created.admin_key.expose();
    let ports = engine.ports();
    let now = jiff::Timestamp::now();
    accept(
        ports,
        ws,
        vec![identify("i1", "u1", "pro"), track("t1", "u1", "Login", now)],
    )
    .await
    .expect("accepted");
    let recent = json!({"id": "recent", "name": "Logged in this hour",
        "condition": {"performed": {"event": "Login", "within": "1h"}}});
    let response = admin(&engine, key, "POST", "/v1/segments", json_body(recent)).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    engine.drain(SEGMENT_BACKFILL_QUEUE).await;
    assert_eq!(
        changes(&engine, ws).await,
        [change("entered", "recent", "u1")]
    );

    let early = tick(ports, ws, now + jiff::SignedDuration::from_mins(30))
        .await
        .expect("a tick");
    assert_eq!(early.users, 0);
    let late = tick(ports, ws, now + jiff::SignedDuration::from_hours(2))
        .await
        .expect("a tick");
    assert_eq!((late.users, late.exited), (1, 1));
    assert_eq!(
        changes(&engine, ws).await,
        [change("exited", "recent", "u1")]
    );
    let count = admin(&engine, key, "GET", "/v1/segments/recent/count", None)
        .await
        .json();
    assert_eq!(count["count"], 0);
}

on_both_engines!(
    events_move_users_in_and_out_of_segments_once_per_change,
    segments_are_saved_versioned_read_and_deleted_over_the_admin_api,
    a_new_segment_is_backfilled_over_existing_users_with_their_past_events,
    a_window_that_passes_is_noticed_by_the_scheduled_tick
);
