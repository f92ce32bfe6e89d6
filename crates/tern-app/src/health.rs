//! `GET /health`: answers without touching any port, so it tells whether the function is deployed and
//! reachable — not whether its dependencies are.

use axum::{Json, Router, routing::get};
use serde::Serialize;

/// The body of a healthy answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub service: &'static str,
    pub version: &'static str,
}

impl Health {
    /// The answer this build gives: its own crate version, so a deploy can be checked from outside.
    pub const CURRENT: Health = Health {
        status: "ok",
        service: "tern",
        version: env!("CARGO_PKG_VERSION"),
    };
}

/// The health routes, generic over the state so they merge into any application router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/health", get(health))
}

async fn health() -> Json<Health> {
    Json(Health::CURRENT)
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use http::{Request, StatusCode, header};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn get_health_answers_ok_with_service_and_version() {
        let response = routes::<()>()
            .oneshot(Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "ok", "service": "tern", "version": env!("CARGO_PKG_VERSION")})
        );
    }

    #[tokio::test]
    async fn other_methods_on_health_are_refused() {
        let response = routes::<()>()
            .oneshot(Request::post("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();

        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
