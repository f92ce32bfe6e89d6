//! The harness itself, on both engines: a workspace's keys work through the router, and draining an empty
//! queue handles nothing.

use axum::body::Body;
use http::{Request, StatusCode};
use tern_tests::{TestEngine, bearer_auth, on_both_engines};

async fn a_new_workspace_answers_to_its_admin_key(engine: TestEngine) {
    let created = engine.workspace().await;
    let request = Request::get("/v1/workspace")
        .header("authorization", bearer_auth(created.admin_key.expose()))
        .body(Body::empty())
        .unwrap();
    let response = engine.send(request).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["id"], created.workspace.id.as_str());
}

async fn draining_an_empty_queue_handles_nothing(engine: TestEngine) {
    for handler in tern_app::queue_handlers() {
        assert_eq!(
            engine.drain(handler.queue()).await,
            0,
            "{}",
            handler.queue()
        );
    }
}

on_both_engines!(
    a_new_workspace_answers_to_its_admin_key,
    draining_an_empty_queue_handles_nothing
);
