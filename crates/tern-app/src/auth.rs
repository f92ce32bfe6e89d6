//! Who is calling: the admin key from `Authorization: Bearer <key>`, the write key from HTTP Basic (the key
//! as user name, Segment-style). Ingestion also accepts a `writeKey` field in the body; it reads the body
//! itself and calls [`grant_for_write_key`].
//!
//! Every failure here is a problem answer (401 without a usable key, 403 for a key of the wrong kind); no
//! header content can make a handler panic.

use axum::extract::FromRequestParts;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::request::Parts;
use http::{HeaderMap, header};
use tern_domain::{KeyGrant, KeyKind};

use crate::AppState;
use crate::problem::ApiError;

const BEARER_CHALLENGE: &str = "Bearer";
/// The challenge of a 401 for a missing or unusable write key.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"tern\"";

/// A request made with a valid admin key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAuth(pub KeyGrant);

/// A request made with a valid write key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteAuth(pub KeyGrant);

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |message: &str| ApiError::unauthorized(BEARER_CHALLENGE, message);
        let key = bearer_token(&parts.headers)
            .map_err(|e| unauthorized(&e.to_string()))?
            .ok_or_else(|| {
                unauthorized("an admin key is required: send Authorization: Bearer <admin key>")
            })?;
        let grant = grant_for(state, key, KeyKind::Admin, BEARER_CHALLENGE).await?;
        tracing::Span::current().record("workspace_id", grant.workspace_id.as_str());
        Ok(AdminAuth(grant))
    }
}

impl FromRequestParts<AppState> for WriteAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |message: &str| ApiError::unauthorized(BASIC_CHALLENGE, message);
        let key = basic_user(&parts.headers)
            .map_err(|e| unauthorized(&e.to_string()))?
            .ok_or_else(|| {
                unauthorized("a write key is required: send it as the HTTP Basic user name")
            })?;
        let grant = grant_for_write_key(state, &key).await?;
        tracing::Span::current().record("workspace_id", grant.workspace_id.as_str());
        Ok(WriteAuth(grant))
    }
}

/// Authenticates a write key found anywhere in the request (a header or a body's `writeKey`).
pub async fn grant_for_write_key(state: &AppState, key: &str) -> Result<KeyGrant, ApiError> {
    grant_for(state, key, KeyKind::Write, BASIC_CHALLENGE).await
}

async fn grant_for(
    state: &AppState,
    key: &str,
    wanted: KeyKind,
    challenge: &'static str,
) -> Result<KeyGrant, ApiError> {
    let grant = tern_domain::authenticate(state.ports.table.as_ref(), key)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized(challenge, format!("the {wanted} key is not valid"))
        })?;
    if grant.kind != wanted {
        return Err(ApiError::forbidden(format!(
            "this endpoint needs a {wanted} key; a {} key was sent",
            grant.kind
        )));
    }
    Ok(grant)
}

/// Why an `Authorization` header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the Authorization header is not valid text")]
    NotText,
    #[error("the Authorization header must use the {expected} scheme")]
    WrongScheme { expected: &'static str },
    #[error("the Authorization header carries no credentials")]
    Empty,
    #[error("the Basic credentials are not valid base64 text")]
    BadBasic,
}

/// The token of `Authorization: Bearer <token>`; `None` when there is no `Authorization` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, HeaderError> {
    credentials(headers, "Bearer")
}

/// The user name of `Authorization: Basic base64(user:password)`; `None` when there is no header.
pub fn basic_user(headers: &HeaderMap) -> Result<Option<String>, HeaderError> {
    let Some(encoded) = credentials(headers, "Basic")? else {
        return Ok(None);
    };
    let decoded = STANDARD
        .decode(encoded)
        .map_err(|_| HeaderError::BadBasic)?;
    let text = String::from_utf8(decoded).map_err(|_| HeaderError::BadBasic)?;
    // Segment's libraries send `writeKey:` (an empty password); anything after the colon is ignored.
    let user = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
    if user.is_empty() {
        return Err(HeaderError::Empty);
    }
    Ok(Some(user.to_string()))
}

/// The credentials after `scheme` (compared case-insensitively, as RFC 9110 says).
fn credentials<'h>(
    headers: &'h HeaderMap,
    scheme: &'static str,
) -> Result<Option<&'h str>, HeaderError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| HeaderError::NotText)?.trim();
    let (given_scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !given_scheme.eq_ignore_ascii_case(scheme) {
        return Err(HeaderError::WrongScheme { expected: scheme });
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(HeaderError::Empty);
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with_authorization(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(value).unwrap(),
        );
        headers
    }

    #[test]
    fn bearer_tokens_are_read_with_any_scheme_case() {
        assert_eq!(
            bearer_token(&with_authorization(b"Bearer ta_abc")),
            Ok(Some("ta_abc"))
        );
        assert_eq!(
            bearer_token(&with_authorization(b"bearer   ta_abc ")),
            Ok(Some("ta_abc"))
        );
        assert_eq!(bearer_token(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn malformed_bearer_headers_are_errors() {
        assert_eq!(
            bearer_token(&with_authorization(b"Bearer")),
            Err(HeaderError::Empty)
        );
        assert_eq!(
            bearer_token(&with_authorization(b"Bearer   ")),
            Err(HeaderError::Empty)
        );
        assert_eq!(
            bearer_token(&with_authorization(b"Basic dHdfYTo=")),
            Err(HeaderError::WrongScheme { expected: "Bearer" })
        );
        assert_eq!(
            bearer_token(&with_authorization(b"Bearer \xff\xfe")),
            Err(HeaderError::NotText)
        );
    }

    #[test]
    fn basic_user_is_the_part_before_the_colon() {
        let encoded = |text: &str| format!("Basic {}", STANDARD.encode(text));
        let read = |text: &str| basic_user(&with_authorization(encoded(text).as_bytes()));
        assert_eq!(read("tw_key:"), Ok(Some("tw_key".to_string())));
        assert_eq!(
            read("tw_key:ignored:password"),
            Ok(Some("tw_key".to_string()))
        );
        assert_eq!(read("tw_key"), Ok(Some("tw_key".to_string())));
        assert_eq!(read(":password"), Err(HeaderError::Empty));
        assert_eq!(basic_user(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn malformed_basic_headers_are_errors() {
        assert_eq!(
            basic_user(&with_authorization(b"Basic !!!")),
            Err(HeaderError::BadBasic)
        );
        let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':']));
        assert_eq!(
            basic_user(&with_authorization(not_utf8.as_bytes())),
            Err(HeaderError::BadBasic)
        );
        assert_eq!(
            basic_user(&with_authorization(b"Bearer ta_x")),
            Err(HeaderError::WrongScheme { expected: "Basic" })
        );
    }
}
