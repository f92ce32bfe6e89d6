//! Subscription groups, users' states in them, and the suppression list, on both engines.

use http::StatusCode;
use serde_json::json;
use tern_domain::CreatedWorkspace;
use tern_domain::subscriptions::is_subscribed;
use tern_domain::suppressions::is_suppressed;
use tern_tests::{TestEngine, TestResponse, admin_json, on_both_engines};

async fn create_group(engine: &TestEngine, created: &CreatedWorkspace, id: &str, kind: &str) {
    let response = admin_json(
        engine,
        created,
        "POST",
        "/v1/subscription-groups",
        Some(json!({"id": id, "name": format!("Group {id}"), "channel": "email", "type": kind})),
    )
    .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
}

/// The user's effective state per group id, from `GET /v1/users/{userId}/subscriptions`.
async fn states(
    engine: &TestEngine,
    created: &CreatedWorkspace,
    user: &str,
) -> Vec<(String, String)> {
    let response = admin_json(
        engine,
        created,
        "GET",
        &format!("/v1/users/{user}/subscriptions"),
        None,
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()["subscriptions"]
        .as_array()
        .expect("a list of subscriptions")
        .iter()
        .map(|entry| {
            (
                entry["groupId"].as_str().expect("a group id").to_string(),
                entry["state"].as_str().expect("a state").to_string(),
            )
        })
        .collect()
}

async fn set_state(
    engine: &TestEngine,
    created: &CreatedWorkspace,
    user: &str,
    group: &str,
    state: &str,
) -> TestResponse {
    admin_json(
        engine,
        created,
        "PUT",
        &format!("/v1/users/{user}/subscriptions/{group}"),
        Some(json!({"state": state})),
    )
    .await
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(group, state)| (group.to_string(), state.to_string()))
        .collect()
}

async fn opt_in_and_opt_out_groups_move_between_states(engine: TestEngine) {
    let created = engine.workspace().await;
    let workspace = created.workspace.id.clone();
    let table = engine.ports().table.clone();
    create_group(&engine, &created, "beta", "optIn").await;
    create_group(&engine, &created, "news", "optOut").await;

    assert_eq!(
        states(&engine, &created, "u1").await,
        pairs(&[("beta", "unsubscribed"), ("news", "subscribed")]),
        "the defaults of each type"
    );
    assert!(
        is_subscribed(table.as_ref(), &workspace, "u1", "news")
            .await
            .unwrap()
    );
    assert!(
        !is_subscribed(table.as_ref(), &workspace, "u1", "beta")
            .await
            .unwrap()
    );

    let response = set_state(&engine, &created, "u1", "beta", "subscribed").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["lastChange"]["source"], "api");
    set_state(&engine, &created, "u1", "news", "unsubscribed").await;
    assert_eq!(
        states(&engine, &created, "u1").await,
        pairs(&[("beta", "subscribed"), ("news", "unsubscribed")])
    );
    assert!(
        is_subscribed(table.as_ref(), &workspace, "u1", "beta")
            .await
            .unwrap()
    );
    assert!(
        !is_subscribed(table.as_ref(), &workspace, "u1", "news")
            .await
            .unwrap()
    );

    set_state(&engine, &created, "u1", "beta", "unsubscribed").await;
    set_state(&engine, &created, "u1", "news", "subscribed").await;
    assert_eq!(
        states(&engine, &created, "u1").await,
        pairs(&[("beta", "unsubscribed"), ("news", "subscribed")])
    );
    assert_eq!(
        states(&engine, &created, "u2").await,
        pairs(&[("beta", "unsubscribed"), ("news", "subscribed")]),
        "another user keeps the defaults"
    );

    let bad = set_state(&engine, &created, "u1", "news", "maybe").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["field"], "state");
    let unknown = set_state(&engine, &created, "u1", "nope", "subscribed").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

async fn groups_are_created_read_updated_and_deleted(engine: TestEngine) {
    let created = engine.workspace().await;
    create_group(&engine, &created, "news", "optOut").await;
    let duplicate = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/subscription-groups",
        Some(json!({"id": "news", "name": "Again", "channel": "email", "type": "optIn"})),
    )
    .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    let bad = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/subscription-groups",
        Some(json!({"id": "sms", "name": "SMS", "channel": "sms", "type": "optIn"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["field"], "channel");

    let updated = admin_json(
        &engine,
        &created,
        "PUT",
        "/v1/subscription-groups/news",
        Some(json!({"name": "Newsletter", "channel": "email", "type": "optIn"})),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
    let one = admin_json(
        &engine,
        &created,
        "GET",
        "/v1/subscription-groups/news",
        None,
    )
    .await;
    assert_eq!(one.json()["name"], "Newsletter");
    assert_eq!(one.json()["type"], "optIn");
    let listed = admin_json(&engine, &created, "GET", "/v1/subscription-groups", None).await;
    assert_eq!(listed.json()["groups"].as_array().map(Vec::len), Some(1));

    let deleted = admin_json(
        &engine,
        &created,
        "DELETE",
        "/v1/subscription-groups/news",
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = admin_json(
        &engine,
        &created,
        "GET",
        "/v1/subscription-groups/news",
        None,
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

async fn suppressions_are_added_listed_and_removed(engine: TestEngine) {
    let created = engine.workspace().await;
    let workspace = created.workspace.id.clone();
    let table = engine.ports().table.clone();
    for (address, reason) in [
        ("Bounced@Example.com", Some("bounce")),
        ("angry@example.com", Some("complaint")),
        ("ops@example.com", None),
    ] {
        let mut body = json!({"address": address});
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        let response = admin_json(&engine, &created, "POST", "/v1/suppressions", Some(body)).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    }
    assert!(
        is_suppressed(table.as_ref(), &workspace, "bounced@example.com")
            .await
            .unwrap()
    );

    let first = admin_json(&engine, &created, "GET", "/v1/suppressions?limit=2", None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let first = first.json();
    let cursor = first["nextCursor"].as_str().expect("a next cursor");
    let second = admin_json(
        &engine,
        &created,
        "GET",
        &format!("/v1/suppressions?limit=2&cursor={cursor}"),
        None,
    )
    .await
    .json();
    let listed: Vec<(String, String)> = first["suppressions"]
        .as_array()
        .into_iter()
        .chain(second["suppressions"].as_array())
        .flatten()
        .map(|entry| {
            (
                entry["address"].as_str().expect("an address").to_string(),
                entry["reason"].as_str().expect("a reason").to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        pairs(&[
            ("angry@example.com", "complaint"),
            ("bounced@example.com", "bounce"),
            ("ops@example.com", "manual"),
        ])
    );

    let removed = admin_json(
        &engine,
        &created,
        "DELETE",
        "/v1/suppressions/BOUNCED@example.com",
        None,
    )
    .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text());
    assert!(
        !is_suppressed(table.as_ref(), &workspace, "bounced@example.com")
            .await
            .unwrap()
    );
    let again = admin_json(
        &engine,
        &created,
        "DELETE",
        "/v1/suppressions/bounced@example.com",
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    let bad = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/suppressions",
        Some(json!({"address": "ops@example.com", "reason": "spite"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["field"], "reason");
    let malformed = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/suppressions",
        Some(json!({"address": "nobody"})),
    )
    .await;
    assert_eq!(malformed.json()["field"], "address");
}

on_both_engines!(
    opt_in_and_opt_out_groups_move_between_states,
    groups_are_created_read_updated_and_deleted,
    suppressions_are_added_listed_and_removed
);
