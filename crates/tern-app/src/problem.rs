//! The one mapping from errors to HTTP answers: a problem body (`application/problem+json`) with the status,
//! a machine-readable code, the offending field when there is one, and a message for people.
//!
//! Internal failures are logged here with their detail and answered with a generic message, so that storage
//! errors never leak to callers.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, Uri, header};
use serde::{Deserialize, Serialize};
use tern_domain::DomainError;
use tern_ports::PortError;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The JSON body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemBody {
    pub status: u16,
    pub code: String,
    pub field: Option<String>,
    pub message: String,
    /// One entry per faulty input when a request had several (the messages of a batch); absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One faulty input of a request: its JSON path and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An error on its way to becoming an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
    /// The `WWW-Authenticate` challenge a 401 carries, naming the scheme the caller should use.
    pub challenge: Option<&'static str>,
    /// The faulty inputs, when there are several.
    pub errors: Vec<FieldError>,
}

/// A version number from a path (`…/versions/{n}`): a whole number from 1.
pub fn parse_version(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|number| *number >= 1)
        .ok_or_else(|| {
            ApiError::invalid(
                "version",
                format!("a version is a whole number from 1, not {text:?}"),
            )
        })
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            field: None,
            message: message.into(),
            challenge: None,
            errors: Vec::new(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn unauthorized(challenge: &'static str, message: impl Into<String>) -> Self {
        Self {
            challenge: Some(challenge),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message).with_field(field)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A failure the caller cannot fix: the detail goes to the log, the caller gets a generic message.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    pub fn body(&self) -> ProblemBody {
        ProblemBody {
            status: self.status.as_u16(),
            code: self.code.to_string(),
            field: self.field.clone(),
            message: self.message.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid { field, message } => ApiError::invalid(field, message),
            DomainError::NotFound(what) => ApiError::not_found(format!("not found: {what}")),
            DomainError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            DomainError::Corrupt(_) => ApiError::internal(&error),
            DomainError::Port(port) => port.into(),
        }
    }
}

impl From<PortError> for ApiError {
    fn from(error: PortError) -> Self {
        match error {
            PortError::ConditionFailed | PortError::TransactionCanceled { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the data changed while the request ran; retry it",
            ),
            PortError::NotFound(what) => ApiError::not_found(format!("not found: {what}")),
            PortError::AlreadyExists(what) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("already exists: {what}"),
            ),
            PortError::Invalid(message) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
            }
            PortError::Rejected(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", message)
            }
            PortError::Throttled(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "throttled",
                "the service is busy; retry shortly",
            ),
            PortError::Unavailable(_) | PortError::Other(_) => ApiError::internal(&error),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid_json",
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

/// The answer for a path no route serves.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// The answer for a known path asked with a method it does not serve.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn parts(error: ApiError) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn an_error_becomes_a_problem_body_with_its_content_type() {
        let (status, headers, body) = parts(ApiError::invalid("name", "must not be empty")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert_eq!(
            body,
            serde_json::json!({"status": 400, "code": "invalid", "field": "name", "message": "must not be empty"})
        );
    }

    #[tokio::test]
    async fn several_faults_are_listed_in_errors() {
        let error = ApiError::new(StatusCode::BAD_REQUEST, "invalid_messages", "2 rejected")
            .with_errors(vec![FieldError {
                field: "batch[1].userId".into(),
                message: "is required".into(),
            }]);
        let (_, _, body) = parts(error).await;
        assert_eq!(
            body["errors"],
            serde_json::json!([{"field": "batch[1].userId", "message": "is required"}])
        );
        let (_, _, body) = parts(ApiError::not_found("x")).await;
        assert!(body.get("errors").is_none());
    }

    #[tokio::test]
    async fn unauthorized_carries_its_challenge() {
        let (status, headers, body) =
            parts(ApiError::unauthorized("Bearer", "missing admin key")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(body["field"], serde_json::Value::Null);
        assert_eq!(body["code"], "unauthorized");
    }

    #[tokio::test]
    async fn internal_failures_do_not_leak_their_detail() {
        let error: ApiError =
            PortError::Other("sqlite: disk I/O error at /secret/path".into()).into();
        let (status, _, body) = parts(error).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal");
        assert!(!body["message"].as_str().unwrap().contains("/secret/path"));
    }

    #[test]
    fn domain_and_port_errors_map_to_their_statuses() {
        let cases: Vec<(ApiError, StatusCode, &str)> = vec![
            (
                DomainError::invalid("name", "bad").into(),
                StatusCode::BAD_REQUEST,
                "invalid",
            ),
            (
                DomainError::NotFound("segment s1".into()).into(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                DomainError::Conflict("dup".into()).into(),
                StatusCode::CONFLICT,
                "conflict",
            ),
            (
                DomainError::Corrupt("x".into()).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
            (
                PortError::ConditionFailed.into(),
                StatusCode::CONFLICT,
                "conflict",
            ),
            (
                PortError::Throttled("slow".into()).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "throttled",
            ),
            (
                PortError::Rejected("no".into()).into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "rejected",
            ),
            (
                DomainError::Port(PortError::Invalid("x".into())).into(),
                StatusCode::BAD_REQUEST,
                "invalid",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!((error.status, error.code), (status, code), "{error:?}");
        }
    }
}
