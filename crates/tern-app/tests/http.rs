//! The router driven in-process (`tower::ServiceExt::oneshot`) over the embedded engine.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tern_app::auth::WriteAuth;
use tern_app::{AppConfig, AppState, router};
use tern_domain::CreatedWorkspace;
use tern_embedded::Db;
use tern_embedded::blobs::DirBlobs;
use tern_embedded::mail::Outbox;
use tern_embedded::queue::SqliteQueue;
use tern_embedded::table::SqliteTable;
use tern_embedded::workflows::{EmbeddedWorkflows, NoTasks};
use tern_ports::{Ports, VirtualClock};
use tower::ServiceExt;

fn embedded_state(dir: &Path) -> AppState {
    let db = Db::in_memory().unwrap();
    let clock = Arc::new(VirtualClock::new("2026-03-01T09:00:00Z".parse().unwrap()));
    let ports = Ports {
        table: Arc::new(SqliteTable::new(db.clone()).unwrap()),
        queue: Arc::new(SqliteQueue::new(db.clone()).unwrap()),
        blobs: Arc::new(
            DirBlobs::new(
                dir.join("blobs"),
                "http://127.0.0.1:3000".into(),
                vec![7; 32],
            )
            .unwrap(),
        ),
        mail: Arc::new(Outbox::new(dir.join("outbox"), None).unwrap()),
        workflows: Arc::new(EmbeddedWorkflows::new(db, clock.clone(), Arc::new(NoTasks)).unwrap()),
        clock,
    };
    AppState::new(ports, AppConfig::default())
}

struct Fixture {
    state: AppState,
    created: CreatedWorkspace,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let state = embedded_state(dir.path());
    let ports = &state.ports;
    let created = tern_domain::create_workspace(ports.table.as_ref(), ports.clock.as_ref(), "Acme")
        .await
        .unwrap();
    Fixture {
        state,
        created,
        _dir: dir,
    }
}

async fn call(app: Router, request: Request<Body>) -> (Response<()>, Value) {
    let response = app.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (Response::from_parts(parts, ()), json)
}

fn get_workspace(authorization: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/v1/workspace");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    request.body(Body::empty()).unwrap()
}

fn basic(user: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:")))
}

fn assert_problem(response: &Response<()>, body: &Value, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status, "{body}");
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["code"], code);
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn health_is_served_by_the_application_router() {
    let fixture = fixture().await;
    let request = Request::get("/health").body(Body::empty()).unwrap();
    let (response, body) = call(router(fixture.state), request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn an_admin_key_reads_its_own_workspace() {
    let fixture = fixture().await;
    let bearer = format!("Bearer {}", fixture.created.admin_key.expose());
    let (response, body) = call(router(fixture.state), get_workspace(Some(&bearer))).await;
    assert_eq!(response.status(), StatusCode::OK, "{body}");
    let workspace = &fixture.created.workspace;
    assert_eq!(
        body,
        json!({"id": workspace.id, "name": "Acme", "created_at": "2026-03-01T09:00:00Z"})
    );
}

#[tokio::test]
async fn a_missing_admin_key_is_unauthorized_with_a_bearer_challenge() {
    let fixture = fixture().await;
    let (response, body) = call(router(fixture.state), get_workspace(None)).await;
    assert_problem(&response, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body["field"], Value::Null);
}

#[tokio::test]
async fn unknown_and_malformed_admin_keys_are_unauthorized() {
    let fixture = fixture().await;
    let unknown = format!("Bearer ta_{}", "x".repeat(32));
    let wrong_scheme = basic(fixture.created.admin_key.expose());
    for authorization in [
        unknown.as_str(),
        "Bearer",
        "Bearer garbage",
        wrong_scheme.as_str(),
    ] {
        let (response, body) = call(
            router(fixture.state.clone()),
            get_workspace(Some(authorization)),
        )
        .await;
        assert_problem(&response, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn a_write_key_cannot_administer() {
    let fixture = fixture().await;
    let bearer = format!("Bearer {}", fixture.created.write_key.expose());
    let (response, body) = call(router(fixture.state), get_workspace(Some(&bearer))).await;
    assert_problem(&response, &body, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("admin key"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_with_problems() {
    let fixture = fixture().await;
    let request = Request::get("/v1/nothing-here")
        .body(Body::empty())
        .unwrap();
    let (response, body) = call(router(fixture.state.clone()), request).await;
    assert_problem(&response, &body, StatusCode::NOT_FOUND, "not_found");

    let request = Request::delete("/v1/workspace")
        .body(Body::empty())
        .unwrap();
    let (response, body) = call(router(fixture.state), request).await;
    assert_problem(
        &response,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let fixture = fixture().await;
    let request = Request::get("/health")
        .header("x-request-id", "req-123")
        .body(Body::empty())
        .unwrap();
    let (response, _) = call(router(fixture.state.clone()), request).await;
    assert_eq!(response.headers()["x-request-id"], "req-123");

    let request = Request::get("/health").body(Body::empty()).unwrap();
    let (response, _) = call(router(fixture.state), request).await;
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
}

/// A route guarded like ingestion will be: the write key as the HTTP Basic user name.
fn write_router(state: AppState) -> Router {
    async fn whoami(WriteAuth(grant): WriteAuth) -> String {
        grant.workspace_id
    }
    Router::new()
        .route("/whoami", get(whoami))
        .with_state(state)
}

fn whoami(authorization: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/whoami");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_write_key_in_basic_auth_is_accepted() {
    let fixture = fixture().await;
    let authorization = basic(fixture.created.write_key.expose());
    let response = write_router(fixture.state)
        .oneshot(whoami(Some(&authorization)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    assert_eq!(body, fixture.created.workspace.id.as_bytes());
}

#[tokio::test]
async fn write_routes_refuse_missing_unknown_and_admin_keys() {
    let fixture = fixture().await;
    let (response, body) = call(write_router(fixture.state.clone()), whoami(None)).await;
    assert_problem(&response, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"tern\""
    );

    let unknown = basic(&format!("tw_{}", "y".repeat(32)));
    let (response, body) = call(write_router(fixture.state.clone()), whoami(Some(&unknown))).await;
    assert_problem(&response, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    let admin = basic(fixture.created.admin_key.expose());
    let (response, body) = call(write_router(fixture.state), whoami(Some(&admin))).await;
    assert_problem(&response, &body, StatusCode::FORBIDDEN, "forbidden");
}
