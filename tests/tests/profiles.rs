//! The admin reads of profiles on both engines: `GET /v1/users/{userId}` and `GET /v1/users`, over events
//! stored with `tern_domain::ingest::accept` (what the tracking routes call).

use axum::body::Body;
use http::{Request, StatusCode, header};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tern_domain::CreatedWorkspace;
use tern_domain::ingest::{Event, accept};
use tern_tests::{TestEngine, TestResponse, basic_auth, bearer_auth, on_both_engines};

const START: &str = "2026-03-01T09:00:00Z";

/// An event of `kind` at `seconds` after the start, with the given Segment fields.
fn event(kind: &str, message_id: &str, seconds: i64, fields: Value) -> Event {
    let at = START.parse::<Timestamp>().expect("a timestamp") + SignedDuration::from_secs(seconds);
    let mut value = json!({
        "messageId": message_id,
        "type": kind,
        "timestamp": at.to_string(),
        "receivedAt": at.to_string(),
    });
    let object = value.as_object_mut().expect("an object");
    object.extend(fields.as_object().expect("fields are an object").clone());
    serde_json::from_value(value).expect("a valid event")
}

async fn store(engine: &TestEngine, created: &CreatedWorkspace, events: Vec<Event>) {
    accept(engine.ports(), &created.workspace.id, events)
        .await
        .expect("events are stored");
}

async fn get(engine: &TestEngine, path: &str, authorization: Option<String>) -> TestResponse {
    let mut request = Request::get(path);
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    engine
        .send(request.body(Body::empty()).expect("a valid request"))
        .await
}

async fn admin_get(engine: &TestEngine, created: &CreatedWorkspace, path: &str) -> TestResponse {
    get(engine, path, Some(bearer_auth(created.admin_key.expose()))).await
}

fn message_ids(events: &Value) -> Vec<&str> {
    events
        .as_array()
        .expect("an array of events")
        .iter()
        .map(|event| event["messageId"].as_str().expect("a message id"))
        .collect()
}

async fn a_user_shows_traits_identities_groups_and_history(engine: TestEngine) {
    let created = engine.workspace().await;
    store(
        &engine,
        &created,
        vec![
            event("page", "p1", 1, json!({"anonymousId": "anon-1", "name": "Pricing", "context": {"timezone": "Asia/Kolkata", "ip": "203.0.113.9", "locale": "en-IN"}})),
            event("identify", "i0", 2, json!({"anonymousId": "anon-1", "traits": {"referrer": "newsletter", "plan": "trial"}})),
        ],
    )
    .await;
    store(
        &engine,
        &created,
        vec![
            event("identify", "i1", 10, json!({"userId": "user 1/a", "anonymousId": "anon-1", "traits": {"email": "ada@example.com", "plan": "pro", "seats": 3}})),
            event("group", "g1", 11, json!({"userId": "user 1/a", "groupId": "acme", "traits": {"name": "Acme Inc", "industry": "Rockets"}})),
            event("track", "t1", 12, json!({"anonymousId": "anon-1", "event": "Order Completed", "properties": {"total": 42.5}})),
        ],
    )
    .await;

    let response = admin_get(&engine, &created, "/v1/users/user%201%2Fa").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let user = response.json();
    assert_eq!(user["userId"], "user 1/a");
    assert_eq!(
        user["traits"],
        json!({"email": "ada@example.com", "plan": "pro", "seats": 3, "referrer": "newsletter"})
    );
    assert_eq!(
        user["identities"],
        json!({"userId": "user 1/a", "anonymousIds": ["anon-1"]})
    );
    assert_eq!(
        user["groups"],
        json!([{"groupId": "acme", "traits": {"name": "Acme Inc", "industry": "Rockets"}}])
    );
    assert_eq!(user["timezone"], "Asia/Kolkata");
    assert_eq!(
        user["context"],
        json!({"timezone": "Asia/Kolkata", "ip": "203.0.113.9", "locale": "en-IN"})
    );
    assert_eq!(user["firstSeen"], "2026-03-01T09:00:01Z");
    assert_eq!(user["lastSeen"], "2026-03-01T09:00:12Z");
    assert_eq!(
        message_ids(&user["recentEvents"]),
        vec!["t1", "g1", "i1", "i0", "p1"]
    );
    assert_eq!(user["recentEvents"][0]["properties"]["total"], 42.5);
}

async fn an_unknown_user_is_a_404_problem(engine: TestEngine) {
    let created = engine.workspace().await;
    let response = admin_get(&engine, &created, "/v1/users/nobody").await;
    assert_eq!(
        response.status,
        StatusCode::NOT_FOUND,
        "{}",
        response.text()
    );
    assert_eq!(
        response.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(response.json()["code"], "not_found");
}

async fn users_are_paged_with_a_cursor_and_filtered_by_trait(engine: TestEngine) {
    let created = engine.workspace().await;
    let events = (0..12)
        .map(|i| {
            let plan = if i % 4 == 0 { "pro" } else { "free" };
            event(
                "identify",
                &format!("m{i}"),
                i,
                json!({"userId": format!("user-{i:02}"), "traits": {"plan": plan, "vip": i == 5}}),
            )
        })
        .collect();
    store(&engine, &created, events).await;

    let mut seen = Vec::new();
    let mut path = "/v1/users?limit=5".to_string();
    loop {
        let response = admin_get(&engine, &created, &path).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let page = response.json();
        let users = page["users"].as_array().expect("users");
        assert!(users.len() <= 5);
        seen.extend(
            users
                .iter()
                .map(|u| u["userId"].as_str().unwrap().to_string()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/v1/users?limit=5&cursor={cursor}"),
            None => break,
        }
    }
    seen.sort();
    let expected: Vec<String> = (0..12).map(|i| format!("user-{i:02}")).collect();
    assert_eq!(seen, expected);

    let response = admin_get(&engine, &created, "/v1/users?trait=plan:pro").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let mut pro: Vec<String> = response.json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userId"].as_str().unwrap().to_string())
        .collect();
    pro.sort();
    assert_eq!(pro, vec!["user-00", "user-04", "user-08"]);

    let response = admin_get(&engine, &created, "/v1/users?trait=vip%3Atrue").await;
    let page = response.json();
    assert_eq!(page["users"].as_array().unwrap().len(), 1);
    assert_eq!(page["users"][0]["userId"], "user-05");
    assert_eq!(
        page["users"][0]["traits"],
        json!({"plan": "free", "vip": true})
    );
    assert_eq!(page["nextCursor"], Value::Null);
}

async fn bad_list_parameters_are_named(engine: TestEngine) {
    let created = engine.workspace().await;
    let cases = [
        ("/v1/users?limit=0", "limit"),
        ("/v1/users?limit=101", "limit"),
        ("/v1/users?limit=many", "limit"),
        ("/v1/users?cursor=not-a-cursor", "cursor"),
        ("/v1/users?trait=plan", "trait"),
        ("/v1/users?sort=name", "sort"),
    ];
    for (path, field) in cases {
        let response = admin_get(&engine, &created, path).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            response.text()
        );
        assert_eq!(response.json()["field"], field, "{path}");
    }
}

async fn admin_reads_need_the_admin_key_of_the_workspace(engine: TestEngine) {
    let ours = engine.workspace().await;
    let theirs = engine.workspace().await;
    store(
        &engine,
        &theirs,
        vec![event(
            "identify",
            "m1",
            1,
            json!({"userId": "shared-id", "traits": {"secret": "theirs"}}),
        )],
    )
    .await;
    let response = get(&engine, "/v1/users/shared-id", None).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let response = get(
        &engine,
        "/v1/users",
        Some(bearer_auth(theirs.write_key.expose())),
    )
    .await;
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        response.text()
    );
    let response = get(
        &engine,
        "/v1/users",
        Some(basic_auth(theirs.write_key.expose())),
    )
    .await;
    assert_eq!(
        response.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        response.text()
    );

    let response = admin_get(&engine, &ours, "/v1/users/shared-id").await;
    assert_eq!(
        response.status,
        StatusCode::NOT_FOUND,
        "another workspace's user stays hidden"
    );
    let response = admin_get(&engine, &ours, "/v1/users").await;
    assert_eq!(response.json()["users"], json!([]));
    let response = admin_get(&engine, &theirs, "/v1/users/shared-id").await;
    assert_eq!(response.json()["traits"]["secret"], "theirs");
}

on_both_engines!(
    a_user_shows_traits_identities_groups_and_history,
    an_unknown_user_is_a_404_problem,
    users_are_paged_with_a_cursor_and_filtered_by_trait,
    bad_list_parameters_are_named,
    admin_reads_need_the_admin_key_of_the_workspace
);
