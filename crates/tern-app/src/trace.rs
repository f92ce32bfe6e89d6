//! One span per request, carrying the request id and — once a key is authenticated — the workspace id, so
//! that every log line a request causes can be traced to both.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tracing::Instrument;

/// The header that carries a request's id, taken from the caller (or a proxy) when present.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The longest caller-given request id kept; a longer one is replaced, so logs stay bounded.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Runs the request inside its span, logs its outcome, and echoes the request id in the answer.
pub async fn request_span(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN)
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        workspace_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis(),
            "answered"
        )
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
