//! `GET /health` as API Gateway (HTTP API, payload 2.0) delivers it: the shared fixture in `events/` goes
//! through the same conversion `lambda_http::run` applies to every invocation.

use std::path::PathBuf;

use http::StatusCode;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent, Service};
use serde_json::{Value, json};
use tower::ServiceExt;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

fn health_event() -> LambdaRequest {
    serde_json::from_str(&fixture("apigw-v2-health.json"))
        .expect("the fixture is an API Gateway event")
}

fn expected_health() -> Value {
    json!({"status": "ok", "service": "tern", "version": env!("CARGO_PKG_VERSION")})
}

#[tokio::test]
async fn the_fixture_is_read_as_an_http_api_v2_request() {
    let event = health_event();
    assert!(
        matches!(event, LambdaRequest::ApiGatewayV2(_)),
        "read as {event:?}"
    );

    let request = lambda_http::Request::from(event);
    assert_eq!(request.method(), http::Method::GET);
    assert_eq!(request.uri().path(), "/health");
}

#[tokio::test]
async fn the_router_answers_the_converted_request_with_ok_and_the_health_body() {
    let request = lambda_http::Request::from(health_event());

    let response = tern_app::health::routes::<()>()
        .oneshot(request)
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        expected_health()
    );
}

/// The whole invocation as the runtime performs it — event in, the JSON API Gateway receives out — through
/// the adapter `lambda_http::run` wraps the router in.
#[tokio::test]
async fn the_invocation_returns_an_api_gateway_response_with_the_health_body() {
    let mut adapter = lambda_http::Adapter::from(tern_app::health::routes::<()>());

    let response = adapter
        .call(LambdaEvent::new(health_event(), Context::default()))
        .await
        .unwrap();

    let response = serde_json::to_value(response).unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(
        response["headers"]["content-type"], "application/json",
        "{response}"
    );
    assert_eq!(response["isBase64Encoded"], false, "{response}");
    let body = response["body"].as_str().expect("a text body");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        expected_health()
    );
}
