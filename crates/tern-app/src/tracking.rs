//! Segment's HTTP Tracking API: `POST /v1/identify|track|page|screen|group|alias` (one message) and
//! `POST /v1/batch` (`/v1/import` is the same), so that Segment's and RudderStack's libraries work by
//! pointing their host at Tern. `docs/tracking-api.md` describes the API for its callers.
//!
//! A request goes: write key (HTTP Basic user name, checked before the body is read) → body, read with a
//! cap and gunzipped when `Content-Encoding: gzip` → [`tern_domain::ingest::parse_call`] /
//! [`tern_domain::ingest::parse_batch`] → write key from the body when no header carried one →
//! [`tern_domain::ingest::accept`].
//!
//! The answers follow what Segment's libraries act on, their status code: 200 `{"success":true}`; 400 for
//! what a retry cannot fix (oversize, malformed JSON, rejected messages — valid messages of the same batch
//! are stored all the same); 401 without a valid write key; 5xx when storage fails, so that the libraries
//! retry and nothing accepted is lost.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use axum::{Json, Router};
use flate2::read::MultiGzDecoder;
use futures::StreamExt;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tern_domain::ingest::parse::MAX_BATCH_BYTES;
use tern_domain::ingest::{EventKind, ParseError, Parsed, Rejected, RequestInfo};
use tern_domain::{DomainError, KeyGrant};
use tern_ports::PortError;

use crate::AppState;
use crate::auth::{BASIC_CHALLENGE, basic_user, grant_for_write_key};
use crate::problem::{ApiError, FieldError};

/// The most bytes read off the wire for one request. These routes read their body themselves rather than
/// through an extractor bound by the router's `DefaultBodyLimit`, so that an oversize body is answered
/// 400 `batch_too_large` as Segment does, not 413. It is larger than [`MAX_BATCH_BYTES`] because a gzip body
/// of incompressible data is a little larger than its content.
pub const MAX_RAW_BODY_BYTES: usize = 2 * MAX_BATCH_BYTES;
/// The most per-field faults listed in one answer; a batch of broken messages must not make a huge answer.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// Which body a route reads.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Call(EventKind),
    Batch,
}

/// The routes: each call under its name and under the one-letter path that Segment's browser library
/// (analytics.js) posts to (`/v1/t`, `/v1/i`…, and `/v1/b` for its batching mode).
pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for kind in EventKind::ALL {
        let name = kind.as_str();
        let short = &name[..1];
        router = router
            .route(&format!("/v1/{name}"), ingest_route(Shape::Call(kind)))
            .route(&format!("/v1/{short}"), ingest_route(Shape::Call(kind)));
    }
    router
        .route("/v1/batch", ingest_route(Shape::Batch))
        .route("/v1/b", ingest_route(Shape::Batch))
        .route("/v1/import", ingest_route(Shape::Batch))
        .layer(middleware::map_response(allow_any_origin))
}

fn ingest_route(shape: Shape) -> MethodRouter<AppState> {
    post(move |State(state): State<AppState>, request: Request| ingest(state, request, shape))
        .options(preflight)
}

/// Browsers post events from any site: the answers may be read by any origin. A write key only adds
/// events, and web pages carry it in plain sight anyway, as with Segment.
async fn allow_any_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// The CORS preflight of a browser that sends JSON or an `Authorization` header.
async fn preflight() -> impl IntoResponse {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type, content-encoding",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
}

async fn ingest(state: AppState, request: Request, shape: Shape) -> Result<Json<Value>, ApiError> {
    let (parts, body) = request.into_parts();
    // A key in the header is checked before the body is read: strangers cost no parsing.
    let header_grant = match header_write_key(&parts.headers)? {
        Some(key) => Some(write_grant(&state, &key).await?),
        None => None,
    };
    let body = read_body(&parts.headers, body).await?;
    let request_info = RequestInfo {
        received_at: state.ports.clock.now(),
        client_ip: client_ip(&parts).map(|ip| ip.to_string()),
    };
    let parsed = match shape {
        Shape::Call(kind) => tern_domain::ingest::parse_call(kind, &body, &request_info),
        Shape::Batch => tern_domain::ingest::parse_batch(&body, &request_info),
    }
    .map_err(parse_problem)?;
    let grant = match header_grant {
        Some(grant) => grant,
        None => body_grant(&state, parsed.write_key.as_deref()).await?,
    };
    tracing::Span::current().record("workspace_id", grant.workspace_id.as_str());
    store(&state, &grant.workspace_id, parsed).await
}

/// The write key of `Authorization: Basic`, if the request has an `Authorization` header.
fn header_write_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    basic_user(headers).map_err(|error| ApiError::unauthorized(BASIC_CHALLENGE, error.to_string()))
}

async fn body_grant(state: &AppState, write_key: Option<&str>) -> Result<KeyGrant, ApiError> {
    let key = write_key.ok_or_else(|| {
        ApiError::unauthorized(
            BASIC_CHALLENGE,
            "a write key is required: send it as the HTTP Basic user name or as writeKey in the body",
        )
    })?;
    write_grant(state, key).await
}

/// Authenticates a write key. Any other key is answered 401 like an unknown one: for Segment's libraries a
/// key that cannot send events is simply not a write key.
async fn write_grant(state: &AppState, key: &str) -> Result<KeyGrant, ApiError> {
    grant_for_write_key(state, key).await.map_err(|error| {
        if error.status == StatusCode::FORBIDDEN {
            ApiError::unauthorized(
                BASIC_CHALLENGE,
                "the key is not a write key: send the workspace's write key (an admin key cannot send events)",
            )
        } else {
            error
        }
    })
}

/// How the body is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match text.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!(
                "Content-Encoding `{text}` is not supported: send the body as is or gzip-compressed"
            ),
        )
        .with_field("Content-Encoding")),
    }
}

/// The body as the parser reads it: decompressed, and never more than [`MAX_BATCH_BYTES`] + 1 bytes once
/// decompressed, whatever the client sent (a gzip bomb stops there).
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let encoding = content_encoding(headers)?;
    let raw = read_capped(body, MAX_RAW_BODY_BYTES).await?;
    match encoding {
        Encoding::Identity => Ok(raw),
        Encoding::Gzip => gunzip_capped(&raw, MAX_BATCH_BYTES),
    }
}

async fn read_capped(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("the request body could not be read: {error}"),
            )
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(batch_too_large(limit, "as sent"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn gunzip_capped(raw: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut decoded = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(raw)
        .take(cap)
        .read_to_end(&mut decoded)
        .map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_gzip",
                format!("the body is not valid gzip data: {error}"),
            )
            .with_field("Content-Encoding")
        })?;
    if decoded.len() > limit {
        return Err(batch_too_large(limit, "once decompressed"));
    }
    Ok(decoded)
}

fn batch_too_large(limit: usize, stage: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "batch_too_large",
        format!(
            "the request body is more than {limit} bytes {stage}; the limit is {MAX_BATCH_BYTES} bytes per request (after decompression)"
        ),
    )
}

/// The client's address: the first `X-Forwarded-For` entry (set by API Gateway and by proxies), else the
/// peer address when the server recorded it.
fn client_ip(parts: &Parts) -> Option<IpAddr> {
    forwarded_for(&parts.headers).or_else(|| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip())
    })
}

fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    value.split(',').next()?.trim().parse().ok()
}

fn parse_problem(error: ParseError) -> ApiError {
    let message = error.to_string();
    match error {
        ParseError::BatchTooLarge { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "batch_too_large", message)
        }
        ParseError::EventTooLarge { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "event_too_large", message)
        }
        ParseError::MalformedJson { .. } | ParseError::NotAnObject { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
        }
        ParseError::Invalid { field, message } => ApiError::invalid(field, message),
    }
}

async fn store(
    state: &AppState,
    workspace_id: &str,
    parsed: Parsed,
) -> Result<Json<Value>, ApiError> {
    let Parsed {
        events, rejected, ..
    } = parsed;
    let valid = events.len();
    if !events.is_empty() {
        let accepted = tern_domain::ingest::accept(&state.ports, workspace_id, events)
            .await
            .map_err(storage_failure)?;
        tracing::info!(
            stored = accepted.stored,
            duplicates = accepted.duplicates,
            rejected = rejected.len(),
            "events accepted"
        );
    }
    if rejected.is_empty() {
        Ok(Json(json!({"success": true})))
    } else {
        Err(rejected_problem(valid, rejected))
    }
}

/// The answer when some messages were rejected: 400, so that no library resends them, with every fault
/// (up to [`MAX_REPORTED_ERRORS`]) in `errors`. The valid messages of the request are stored regardless.
fn rejected_problem(valid: usize, rejected: Vec<Rejected>) -> ApiError {
    let total = rejected.len();
    let mut message = if valid == 0 {
        "no message was accepted; errors lists why".to_string()
    } else {
        format!(
            "{valid} valid messages were accepted; the others were rejected and errors lists why"
        )
    };
    if total > MAX_REPORTED_ERRORS {
        message.push_str(&format!(
            " (the first {MAX_REPORTED_ERRORS} of {total} faults are listed)"
        ));
    }
    let errors = rejected
        .into_iter()
        .take(MAX_REPORTED_ERRORS)
        .map(|Rejected { field, message }| FieldError { field, message })
        .collect();
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_messages", message).with_errors(errors)
}

/// Maps a failure to store events. Only a rule broken by the input is a 400; anything else is the
/// server's trouble and answers 5xx, which Segment's libraries retry, so that valid events are not lost.
fn storage_failure(error: DomainError) -> ApiError {
    match error {
        DomainError::Invalid { .. } => error.into(),
        DomainError::Conflict(_)
        | DomainError::Port(
            PortError::Throttled(_)
            | PortError::ConditionFailed
            | PortError::TransactionCanceled { .. },
        ) => {
            tracing::warn!(error = %error, "storing events met contention; the client will retry");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the events could not be stored right now; retry shortly",
            )
        }
        other => ApiError::internal(&other),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use axum::body::to_bytes;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use tern_domain::CreatedWorkspace;
    use tern_embedded::Db;
    use tern_embedded::blobs::DirBlobs;
    use tern_embedded::mail::Outbox;
    use tern_embedded::queue::SqliteQueue;
    use tern_embedded::table::SqliteTable;
    use tern_embedded::workflows::{EmbeddedWorkflows, NoTasks};
    use tern_ports::{Ports, VirtualClock};
    use tower::ServiceExt;

    use super::*;
    use crate::AppConfig;

    struct Setup {
        state: AppState,
        created: CreatedWorkspace,
        _dir: tempfile::TempDir,
    }

    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::in_memory().unwrap();
        let clock = Arc::new(VirtualClock::new("2026-03-01T09:00:00Z".parse().unwrap()));
        let ports = Ports {
            table: Arc::new(SqliteTable::new(db.clone()).unwrap()),
            queue: Arc::new(SqliteQueue::new(db.clone()).unwrap()),
            blobs: Arc::new(
                DirBlobs::new(
                    dir.path().join("blobs"),
                    "http://127.0.0.1:3000".into(),
                    vec![7; 32],
                )
                .unwrap(),
            ),
            mail: Arc::new(Outbox::new(dir.path().join("outbox"), None).unwrap()),
            workflows: Arc::new(
                EmbeddedWorkflows::new(db, clock.clone(), Arc::new(NoTasks)).unwrap(),
            ),
            clock,
        };
        let created =
            tern_domain::create_workspace(ports.table.as_ref(), ports.clock.as_ref(), "Acme")
                .await
                .unwrap();
        Setup {
            state: AppState::new(ports, AppConfig::default()),
            created,
            _dir: dir,
        }
    }

    fn basic(key: &str) -> String {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
        format!("Basic {encoded}")
    }

    fn post(path: &str, authorization: Option<&str>, body: impl Into<Body>) -> Request {
        let mut builder =
            http::Request::post(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(authorization) = authorization {
            builder = builder.header(header::AUTHORIZATION, authorization);
        }
        builder.body(body.into()).unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn gzipped(path: &str, authorization: &str, body: &[u8]) -> Request {
        let mut request = post(path, Some(authorization), gzip(body));
        request
            .headers_mut()
            .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        request
    }

    async fn answer(setup: &Setup, request: Request) -> (StatusCode, HeaderMap, Value) {
        let response = crate::router(setup.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
        (status, headers, json)
    }

    /// A batch whose every message breaks a rule: it is answered without storing anything.
    const ALL_REJECTED: &str =
        r#"{"batch":[{"type":"track","userId":"u1"},{"type":"login","userId":"u1"}]}"#;

    #[tokio::test]
    async fn a_request_without_any_write_key_is_401() {
        let setup = setup().await;
        let (status, headers, body) = answer(
            &setup,
            post("/v1/track", None, r#"{"userId":"u1","event":"Signed Up"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], BASIC_CHALLENGE);
        assert_eq!(body["code"], "unauthorized");
        assert!(body["message"].as_str().unwrap().contains("writeKey"));
    }

    #[tokio::test]
    async fn unknown_and_admin_keys_are_401_from_the_header_or_the_body() {
        let setup = setup().await;
        let admin = setup.created.admin_key.expose().to_string();
        let requests = [
            post("/v1/batch", Some(&basic("tw_unknown")), ALL_REJECTED),
            post("/v1/batch", Some(&basic(&admin)), ALL_REJECTED),
            post("/v1/batch", Some(&format!("Bearer {admin}")), ALL_REJECTED),
            post(
                "/v1/identify",
                None,
                r#"{"userId":"u1","writeKey":"tw_unknown"}"#.to_string(),
            ),
            post(
                "/v1/identify",
                None,
                format!(r#"{{"userId":"u1","writeKey":"{admin}"}}"#),
            ),
        ];
        for request in requests {
            let (status, _, body) = answer(&setup, request).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["code"], "unauthorized");
        }
    }

    #[tokio::test]
    async fn an_admin_key_is_told_it_is_not_a_write_key() {
        let setup = setup().await;
        let admin = setup.created.admin_key.expose().to_string();
        let (_, _, body) = answer(
            &setup,
            post("/v1/batch", Some(&basic(&admin)), ALL_REJECTED),
        )
        .await;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("not a write key")
        );
    }

    #[tokio::test]
    async fn rejected_messages_are_listed_by_field() {
        let setup = setup().await;
        let key = basic(setup.created.write_key.expose());
        for path in ["/v1/batch", "/v1/import"] {
            let (status, headers, body) =
                answer(&setup, post(path, Some(&key), ALL_REJECTED)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(
                headers[header::CONTENT_TYPE],
                crate::problem::PROBLEM_CONTENT_TYPE
            );
            assert_eq!(body["code"], "invalid_messages");
            let fields: Vec<&str> = body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|error| error["field"].as_str().unwrap())
                .collect();
            assert_eq!(fields, vec!["batch[0].event", "batch[1].type"]);
        }
    }

    #[tokio::test]
    async fn the_write_key_may_come_in_the_body() {
        let setup = setup().await;
        let body = format!(
            r#"{{"writeKey":"{}","batch":[{{"type":"group","userId":"u1"}}]}}"#,
            setup.created.write_key.expose()
        );
        let (status, _, body) = answer(&setup, post("/v1/batch", None, body)).await;
        // Authenticated: the answer is about the message, not the key.
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["field"], "batch[0].groupId");
    }

    #[tokio::test]
    async fn malformed_json_is_400_naming_line_and_column() {
        let setup = setup().await;
        let key = basic(setup.created.write_key.expose());
        let body = "{\"batch\": [\n  {\"type\": \"track\" \"userId\": \"u1\"}\n]}";
        let (status, _, answer_body) = answer(&setup, post("/v1/batch", Some(&key), body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer_body["code"], "invalid_json");
        let message = answer_body["message"].as_str().unwrap();
        assert!(
            message.starts_with("malformed JSON at line 2, column 20"),
            "{message}"
        );
        // Without a key in the header, the body cannot even name one: still a 400 about the JSON.
        let (status, _, answer_body) = answer(&setup, post("/v1/track", None, "{")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer_body["code"], "invalid_json");
    }

    #[tokio::test]
    async fn gzip_bodies_are_decoded() {
        let setup = setup().await;
        let key = basic(setup.created.write_key.expose());
        let (status, _, body) =
            answer(&setup, gzipped("/v1/batch", &key, ALL_REJECTED.as_bytes())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "invalid_messages");
        assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_gzip_bomb_stops_at_the_batch_limit() {
        let setup = setup().await;
        let key = basic(setup.created.write_key.expose());
        // 50 MB of spaces compress to about 50 KB; reading stops one byte past the limit.
        let bomb = vec![b' '; 50 * 1024 * 1024];
        let (status, _, body) = answer(&setup, gzipped("/v1/batch", &key, &bomb)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "batch_too_large");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("once decompressed")
        );
    }

    #[tokio::test]
    async fn a_body_that_is_not_gzip_is_400() {
        let setup = setup().await;
        let key = basic(setup.created.write_key.expose());
        let mut request = post("/v1/batch", Some(&key), ALL_REJECTED);
        request
            .headers_mut()
            .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        let (status, _, body) = answer(&setup, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "invalid_gzip");
    }

    #[tokio::test]
    async fn other_encodings_are_415() {
        let setup = setup().await;
        let key = basic(setup.created.write_key.expose());
        let mut request = post("/v1/batch", Some(&key), ALL_REJECTED);
        request
            .headers_mut()
            .insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        let (status, _, body) = answer(&setup, request).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(body["field"], "Content-Encoding");
    }

    #[tokio::test]
    async fn an_oversize_body_is_400_not_413() {
        let setup = setup().await;
        let key = basic(setup.created.write_key.expose());
        for size in [600 * 1024, 3 * MAX_RAW_BODY_BYTES] {
            let filler = "x".repeat(size);
            let body = format!(r#"{{"batch":[],"padding":"{filler}"}}"#);
            let (status, _, answer_body) =
                answer(&setup, post("/v1/batch", Some(&key), body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{size}");
            assert_eq!(answer_body["code"], "batch_too_large");
            assert!(
                answer_body["message"]
                    .as_str()
                    .unwrap()
                    .contains(&MAX_BATCH_BYTES.to_string())
            );
        }
    }

    #[tokio::test]
    async fn an_oversize_single_call_is_400_event_too_large() {
        let setup = setup().await;
        let key = basic(setup.created.write_key.expose());
        let filler = "x".repeat(40 * 1024);
        let body = format!(r#"{{"userId":"u1","event":"Big","properties":{{"blob":"{filler}"}}}}"#);
        let (status, _, answer_body) = answer(&setup, post("/v1/track", Some(&key), body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer_body["code"], "event_too_large");
    }

    #[tokio::test]
    async fn the_browser_library_paths_and_cors_are_served() {
        let setup = setup().await;
        let body = format!(
            r#"{{"writeKey":"{}","batch":[{{"type":"group","userId":"u1"}}]}}"#,
            setup.created.write_key.expose()
        );
        let mut request = post("/v1/b", None, body);
        request
            .headers_mut()
            .insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        let (status, headers, body) = answer(&setup, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["errors"][0]["field"], "batch[0].groupId");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");

        let (status, _, body) = answer(&setup, post("/v1/t", None, r#"{"userId":"u1"}"#)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

        let preflight = http::Request::options("/v1/track")
            .header(header::ORIGIN, "https://shop.example.com")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .unwrap();
        let response = crate::router(setup.state.clone())
            .oneshot(preflight)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let allowed = &response.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS];
        assert!(allowed.to_str().unwrap().contains("authorization"));
        assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }

    #[tokio::test]
    async fn only_post_is_served() {
        let setup = setup().await;
        let request = http::Request::get("/v1/track").body(Body::empty()).unwrap();
        let (status, _, _) = answer(&setup, request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn the_client_ip_is_the_first_forwarded_entry_else_the_peer() {
        let parts = |forwarded: Option<&str>, peer: Option<&str>| {
            let mut request = http::Request::post("/v1/track").body(()).unwrap();
            if let Some(forwarded) = forwarded {
                request
                    .headers_mut()
                    .insert("x-forwarded-for", forwarded.parse().unwrap());
            }
            if let Some(peer) = peer {
                let address: SocketAddr = peer.parse().unwrap();
                request.extensions_mut().insert(ConnectInfo(address));
            }
            request.into_parts().0
        };
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_ip(&parts(
                Some("203.0.113.7, 10.0.0.1"),
                Some("127.0.0.1:5000")
            )),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            client_ip(&parts(Some(" 2001:db8::1 "), None)),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            client_ip(&parts(Some("unknown"), Some("127.0.0.1:5000"))),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(client_ip(&parts(None, None)), None);
    }

    #[test]
    fn storage_failures_are_5xx_so_that_clients_retry() {
        let cases: Vec<(DomainError, StatusCode)> = vec![
            (
                PortError::Throttled("slow".into()).into(),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                PortError::TransactionCanceled { failed: vec![0] }.into(),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                DomainError::Conflict("raced".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                PortError::Unavailable("down".into()).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                PortError::Invalid("too big".into()).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                PortError::NotFound("queue".into()).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                DomainError::Corrupt("x".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                DomainError::invalid("batch[0].userId", "bad"),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (error, status) in cases {
            let described = error.to_string();
            assert_eq!(storage_failure(error).status, status, "{described}");
        }
    }

    #[test]
    fn the_errors_listed_are_capped() {
        let rejected: Vec<Rejected> = (0..MAX_REPORTED_ERRORS + 5)
            .map(|index| Rejected {
                field: format!("batch[{index}].userId"),
                message: "userId or anonymousId is required".into(),
            })
            .collect();
        let error = rejected_problem(3, rejected);
        assert_eq!(error.errors.len(), MAX_REPORTED_ERRORS);
        assert!(
            error
                .message
                .contains(&format!("of {}", MAX_REPORTED_ERRORS + 5))
        );
        assert!(error.message.starts_with("3 valid messages were accepted"));
    }
}
