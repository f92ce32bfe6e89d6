//! The Lambda path, from the shared fixtures in `events/`: an API Gateway (HTTP API 2.0) event carrying a
//! gzipped, base64-encoded `/v1/batch` goes through `lambda_http`'s conversion into the router, and an SQS event
//! of the lake queue goes through `tern_lambda::handle_queue_event` into the lake writer — on both engines' ports.

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::Value;
use tern_lambda::aws_lambda_events::sqs::SqsEvent;
use tern_lambda::lambda_http::{self, request::LambdaRequest};
use tern_tests::{TestEngine, bearer_auth, fixture, handler_for, on_both_engines};
use tower::ServiceExt;

/// A fixture's text with `${NAME}` placeholders replaced.
fn fixture_with(name: &str, substitutions: &[(&str, &str)]) -> String {
    let mut text = String::from_utf8(fixture(name)).expect("fixtures are UTF-8");
    for (placeholder, value) in substitutions {
        text = text.replace(&format!("${{{placeholder}}}"), value);
    }
    text
}

async fn a_gzipped_api_gateway_batch_is_accepted(engine: TestEngine) {
    let workspace = engine.workspace().await;
    let basic = tern_tests::basic_auth(workspace.write_key.expose());
    let credentials = basic.trim_start_matches("Basic ");
    let event = fixture_with(
        "apigw-v2-batch-gzip.json",
        &[("WRITE_KEY_BASIC", credentials)],
    );
    let request: LambdaRequest = serde_json::from_str(&event).expect("an API Gateway v2 event");

    let response = tern_app::router(engine.state.clone())
        .oneshot(lambda_http::Request::from(request))
        .await
        .expect("the router never fails");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        serde_json::json!({"success": true})
    );

    let user = engine
        .send(
            Request::get("/v1/users/lambda-user-1")
                .header("authorization", bearer_auth(workspace.admin_key.expose()))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(user.status, StatusCode::OK, "{}", user.text());
    let user = user.json();
    assert_eq!(user["traits"]["email"], "ada@example.com");
    assert_eq!(user["context"]["ip"], "198.51.100.23");
    let names: Vec<&str> = user["recentEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["event"].as_str())
        .collect();
    assert_eq!(names, ["Report Exported"]);
}

async fn an_sqs_lake_event_writes_parquet_and_reports_the_malformed_record(engine: TestEngine) {
    let workspace = engine.workspace().await;
    let event = fixture_with(
        "sqs-lake-batch.json",
        &[("WORKSPACE_ID", workspace.workspace.id.as_str())],
    );
    let event: SqsEvent = serde_json::from_str(&event).expect("an SQS event");

    let handler = handler_for("lake");
    let response = tern_lambda::handle_queue_event(&engine.state, handler.as_ref(), event)
        .await
        .expect("the event is readable");
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c02"]);

    let prefix = format!(
        "lake/events/workspace={}/dt=2026-11-20/hour=09/",
        workspace.workspace.id.as_str()
    );
    let page = engine
        .ports()
        .blobs
        .list(&prefix, None, 10)
        .await
        .expect("list the partition");
    assert_eq!(page.blobs.len(), 1, "one file for the partition: {page:?}");
    let object = engine
        .ports()
        .blobs
        .get(&page.blobs[0].key)
        .await
        .unwrap()
        .expect("the listed object exists");
    let mut ids = tern_lake::read_message_ids(object).expect("a Parquet file");
    ids.sort();
    assert_eq!(ids, ["sqs-fixture-1", "sqs-fixture-2"]);
}

on_both_engines!(
    a_gzipped_api_gateway_batch_is_accepted,
    an_sqs_lake_event_writes_parquet_and_reports_the_malformed_record
);
