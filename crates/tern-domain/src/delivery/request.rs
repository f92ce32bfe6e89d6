//! The message on the `send` queue, and the deterministic id that makes every send happen at most once.
//!
//! Whatever produces a send (a journey's email node, a broadcast, the API) builds a [`SendRequest`]; the
//! sender parses it back with [`SendRequest::from_json`], which names the field of every error.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::ingest::parse::MAX_ID_BYTES;

/// The longest id Tern itself hands out or accepts for its own objects (workspaces, templates, journeys…).
pub const MAX_OBJECT_ID_CHARS: usize = 128;

/// The prefix of every message id.
pub const MESSAGE_ID_PREFIX: &str = "msg_";

/// What made a message: a journey node, a broadcast, or an API call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SendSource {
    #[serde(rename_all = "camelCase")]
    Journey {
        journey_id: String,
        version: u32,
        node_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Broadcast { broadcast_id: String },
    #[serde(rename_all = "camelCase")]
    Api { request_id: String },
}

/// One message to send, as it travels on the `send` queue (JSON, camelCase).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    pub message_id: String,
    pub workspace_id: String,
    pub user_id: String,
    pub template_id: String,
    pub template_version: u32,
    /// `None` is a transactional message: no subscription group, no unsubscribe check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_group_id: Option<String>,
    pub source: SendSource,
    /// Tells apart repeated sends of the same source to the same user (a journey re-entered, a recurring
    /// broadcast): part of the message id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub variables: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
}

/// Why a send request was refused: the field (a JSON path) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RequestError {
    pub field: String,
    pub reason: String,
}

impl RequestError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The id of the message that `source` sends to `user_id` in `workspace_id` with version `template_version`
/// of its template, for the given `occurrence`: `msg_` and 32 hex characters (128 bits of SHA-256). The same
/// inputs always give the same id, so a redelivered request finds the record of its first attempt. Fields
/// are length-prefixed before hashing so that no two different inputs can be spelled alike.
pub fn message_id(
    workspace_id: &str,
    source: &SendSource,
    template_version: u32,
    user_id: &str,
    occurrence: Option<&str>,
) -> String {
    let mut hasher = Sha256::new();
    let mut field = |value: &[u8]| {
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value);
    };
    field(b"tern-message-v1");
    field(workspace_id.as_bytes());
    match source {
        SendSource::Journey {
            journey_id,
            version,
            node_id,
        } => {
            field(b"journey");
            field(journey_id.as_bytes());
            field(&version.to_be_bytes());
            field(node_id.as_bytes());
        }
        SendSource::Broadcast { broadcast_id } => {
            field(b"broadcast");
            field(broadcast_id.as_bytes());
        }
        SendSource::Api { request_id } => {
            field(b"api");
            field(request_id.as_bytes());
        }
    }
    field(&template_version.to_be_bytes());
    field(user_id.as_bytes());
    match occurrence {
        Some(occurrence) => field(occurrence.as_bytes()),
        None => field(b"\0none"),
    }
    let digest = hasher.finalize();
    format!("{MESSAGE_ID_PREFIX}{}", hex::encode(&digest[..16]))
}

/// Whether `id` has the shape [`message_id`] gives.
pub fn is_message_id(id: &str) -> bool {
    id.strip_prefix(MESSAGE_ID_PREFIX).is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Checks an id Tern hands out for its own objects: 1 to 128 characters of `[A-Za-z0-9_.:-]`.
pub fn check_object_id(field: &str, id: &str) -> Result<(), RequestError> {
    if id.is_empty() {
        return Err(RequestError::new(field, "must not be empty"));
    }
    if id.chars().count() > MAX_OBJECT_ID_CHARS {
        return Err(RequestError::new(
            field,
            format!("must be at most {MAX_OBJECT_ID_CHARS} characters"),
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(RequestError::new(
            field,
            format!("contains {bad:?}; ids use only letters, digits, '_', '-', '.' and ':'"),
        ));
    }
    Ok(())
}

/// Checks a user id as ingestion accepts it (any text up to 512 bytes) minus control characters, which
/// have no place in a key or a header.
pub fn check_user_id(field: &str, id: &str) -> Result<(), RequestError> {
    if id.is_empty() {
        return Err(RequestError::new(field, "must not be empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(RequestError::new(
            field,
            format!("must be at most {MAX_ID_BYTES} bytes"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(RequestError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl SendRequest {
    /// A request with its message id derived from the other fields.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        workspace_id: impl Into<String>,
        user_id: impl Into<String>,
        template_id: impl Into<String>,
        template_version: u32,
        subscription_group_id: Option<String>,
        source: SendSource,
        occurrence: Option<String>,
    ) -> Self {
        let workspace_id = workspace_id.into();
        let user_id = user_id.into();
        let message_id = message_id(
            &workspace_id,
            &source,
            template_version,
            &user_id,
            occurrence.as_deref(),
        );
        Self {
            message_id,
            workspace_id,
            user_id,
            template_id: template_id.into(),
            template_version,
            subscription_group_id,
            source,
            occurrence,
            variables: Map::new(),
            not_before: None,
        }
    }

    /// A transactional message ignores subscriptions (and, unless a rule says otherwise, caps and quiet
    /// hours).
    pub fn is_transactional(&self) -> bool {
        self.subscription_group_id.is_none()
    }

    /// The request as it goes on the queue.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Parses a queue message body.
    pub fn from_slice(body: &[u8]) -> Result<Self, RequestError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|error| RequestError::new("(body)", format!("is not JSON: {error}")))?;
        Self::from_json(&value)
    }

    /// Parses and validates a request; the message id must be the one derived from the other fields, so a
    /// producer cannot make two ids for one message.
    pub fn from_json(value: &Value) -> Result<Self, RequestError> {
        let object = value
            .as_object()
            .ok_or_else(|| RequestError::new("(body)", "must be a JSON object"))?;
        let fields = Fields::new(object, "");
        fields.deny_unknown(&[
            "messageId",
            "workspaceId",
            "userId",
            "templateId",
            "templateVersion",
            "subscriptionGroupId",
            "source",
            "occurrence",
            "variables",
            "notBefore",
        ])?;
        let workspace_id = fields.object_id("workspaceId")?;
        let user_id = fields.required_str("userId")?;
        check_user_id("userId", &user_id)?;
        let template_id = fields.object_id("templateId")?;
        let template_version = fields.version("templateVersion")?;
        let subscription_group_id = fields.optional_object_id("subscriptionGroupId")?;
        let source = parse_source(object.get("source"))?;
        let occurrence = fields.occurrence("occurrence")?;
        let variables = match object.get("variables") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(variables)) => variables.clone(),
            Some(_) => return Err(RequestError::new("variables", "must be an object")),
        };
        let not_before = fields.optional_timestamp("notBefore")?;
        let message_id = fields.required_str("messageId")?;
        let expected = self::message_id(
            &workspace_id,
            &source,
            template_version,
            &user_id,
            occurrence.as_deref(),
        );
        if message_id != expected {
            return Err(RequestError::new(
                "messageId",
                "is not the id derived from workspaceId, source, templateVersion, userId and occurrence",
            ));
        }
        Ok(Self {
            message_id,
            workspace_id,
            user_id,
            template_id,
            template_version,
            subscription_group_id,
            source,
            occurrence,
            variables,
            not_before,
        })
    }
}

fn parse_source(value: Option<&Value>) -> Result<SendSource, RequestError> {
    let object = match value {
        Some(Value::Object(object)) => object,
        None | Some(Value::Null) => return Err(RequestError::new("source", "is required")),
        Some(_) => return Err(RequestError::new("source", "must be an object")),
    };
    let fields = Fields::new(object, "source.");
    let kind = fields.required_str("kind")?;
    match kind.as_str() {
        "journey" => {
            fields.deny_unknown(&["kind", "journeyId", "version", "nodeId"])?;
            Ok(SendSource::Journey {
                journey_id: fields.object_id("journeyId")?,
                version: fields.version("version")?,
                node_id: fields.object_id("nodeId")?,
            })
        }
        "broadcast" => {
            fields.deny_unknown(&["kind", "broadcastId"])?;
            Ok(SendSource::Broadcast {
                broadcast_id: fields.object_id("broadcastId")?,
            })
        }
        "api" => {
            fields.deny_unknown(&["kind", "requestId"])?;
            Ok(SendSource::Api {
                request_id: fields.object_id("requestId")?,
            })
        }
        other => Err(RequestError::new(
            "source.kind",
            format!("is {other:?}; expected \"journey\", \"broadcast\" or \"api\""),
        )),
    }
}

/// Reads the fields of one JSON object, naming each by its path in errors.
struct Fields<'j> {
    object: &'j Map<String, Value>,
    prefix: &'static str,
}

impl<'j> Fields<'j> {
    fn new(object: &'j Map<String, Value>, prefix: &'static str) -> Self {
        Self { object, prefix }
    }

    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn deny_unknown(&self, known: &[&str]) -> Result<(), RequestError> {
        match self
            .object
            .keys()
            .find(|key| !known.contains(&key.as_str()))
        {
            Some(key) => Err(RequestError::new(self.path(key), "is not a known field")),
            None => Ok(()),
        }
    }

    fn optional_str(&self, name: &str) -> Result<Option<String>, RequestError> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(RequestError::new(self.path(name), "must be a string")),
        }
    }

    fn required_str(&self, name: &str) -> Result<String, RequestError> {
        self.optional_str(name)?
            .ok_or_else(|| RequestError::new(self.path(name), "is required"))
    }

    fn object_id(&self, name: &str) -> Result<String, RequestError> {
        let id = self.required_str(name)?;
        check_object_id(&self.path(name), &id)?;
        Ok(id)
    }

    fn optional_object_id(&self, name: &str) -> Result<Option<String>, RequestError> {
        let id = self.optional_str(name)?;
        if let Some(id) = &id {
            check_object_id(&self.path(name), id)?;
        }
        Ok(id)
    }

    fn version(&self, name: &str) -> Result<u32, RequestError> {
        let value = self
            .object
            .get(name)
            .ok_or_else(|| RequestError::new(self.path(name), "is required"))?;
        value
            .as_u64()
            .and_then(|version| u32::try_from(version).ok())
            .filter(|version| *version >= 1)
            .ok_or_else(|| RequestError::new(self.path(name), "must be a whole number from 1"))
    }

    /// An occurrence is a short id or a non-negative whole number (kept as its decimal text).
    fn occurrence(&self, name: &str) -> Result<Option<String>, RequestError> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => {
                number.as_u64().map(|n| Some(n.to_string())).ok_or_else(|| {
                    RequestError::new(self.path(name), "must be a non-negative whole number")
                })
            }
            Some(Value::String(text)) => {
                check_object_id(&self.path(name), text)?;
                Ok(Some(text.clone()))
            }
            Some(_) => Err(RequestError::new(
                self.path(name),
                "must be a string or a whole number",
            )),
        }
    }

    fn optional_timestamp(&self, name: &str) -> Result<Option<Timestamp>, RequestError> {
        let Some(text) = self.optional_str(name)? else {
            return Ok(None);
        };
        text.parse::<Timestamp>().map(Some).map_err(|error| {
            RequestError::new(
                self.path(name),
                format!("must be an RFC 3339 timestamp with an offset: {error}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn journey() -> SendSource {
        SendSource::Journey {
            journey_id: "jr_welcome".into(),
            version: 3,
            node_id: "email-1".into(),
        }
    }

    fn request() -> SendRequest {
        let mut request = SendRequest::new(
            "ws_abc",
            "user-42",
            "tpl_welcome",
            2,
            Some("newsletter".into()),
            journey(),
            Some("1".into()),
        );
        request.variables.insert("coupon".into(), json!("SAVE10"));
        request.not_before = Some("2026-11-23T18:00:00Z".parse().unwrap());
        request
    }

    #[test]
    fn the_message_id_is_deterministic_and_depends_on_every_input() {
        let id = message_id("ws_abc", &journey(), 2, "user-42", Some("1"));
        assert_eq!(
            id,
            message_id("ws_abc", &journey(), 2, "user-42", Some("1"))
        );
        assert!(is_message_id(&id), "{id}");
        let others = [
            message_id("ws_abd", &journey(), 2, "user-42", Some("1")),
            message_id("ws_abc", &journey(), 3, "user-42", Some("1")),
            message_id("ws_abc", &journey(), 2, "user-43", Some("1")),
            message_id("ws_abc", &journey(), 2, "user-42", Some("2")),
            message_id("ws_abc", &journey(), 2, "user-42", None),
            message_id(
                "ws_abc",
                &SendSource::Journey {
                    journey_id: "jr_welcome".into(),
                    version: 4,
                    node_id: "email-1".into(),
                },
                2,
                "user-42",
                Some("1"),
            ),
            message_id(
                "ws_abc",
                &SendSource::Broadcast {
                    broadcast_id: "jr_welcome".into(),
                },
                2,
                "user-42",
                Some("1"),
            ),
        ];
        for other in others {
            assert_ne!(other, id);
        }
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let api = |request_id: &str| SendSource::Api {
            request_id: request_id.into(),
        };
        assert_ne!(
            message_id("ws_a", &api("bc"), 1, "u", None),
            message_id("ws_ab", &api("c"), 1, "u", None)
        );
    }

    #[test]
    fn a_request_round_trips_through_json() {
        let request = request();
        let json = request.to_json();
        assert_eq!(json["source"]["kind"], "journey");
        assert_eq!(json["source"]["journeyId"], "jr_welcome");
        assert_eq!(json["subscriptionGroupId"], "newsletter");
        assert_eq!(json["notBefore"], "2026-11-23T18:00:00Z");
        assert_eq!(SendRequest::from_json(&json).unwrap(), request);
        let bytes = serde_json::to_vec(&json).unwrap();
        assert_eq!(SendRequest::from_slice(&bytes).unwrap(), request);
    }

    #[test]
    fn a_transactional_request_has_no_group() {
        let request = SendRequest::new(
            "ws_abc",
            "u1",
            "tpl_reset",
            1,
            None,
            SendSource::Api {
                request_id: "req_1".into(),
            },
            None,
        );
        assert!(request.is_transactional());
        let json = request.to_json();
        assert!(json.get("subscriptionGroupId").is_none());
        assert_eq!(SendRequest::from_json(&json).unwrap(), request);
    }

    #[test]
    fn a_numeric_occurrence_is_read_as_its_decimal_text() {
        let mut json = request().to_json();
        json["occurrence"] = json!(1);
        assert_eq!(
            SendRequest::from_json(&json).unwrap().occurrence.as_deref(),
            Some("1")
        );
    }

    fn error_for(change: impl FnOnce(&mut Value)) -> RequestError {
        let mut json = request().to_json();
        change(&mut json);
        SendRequest::from_json(&json).unwrap_err()
    }

    type Change = Box<dyn FnOnce(&mut Value)>;

    #[test]
    fn errors_name_the_field() {
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|j| j["workspaceId"] = json!("")), "workspaceId"),
            (Box::new(|j| j["templateId"] = json!("a b")), "templateId"),
            (
                Box::new(|j| j["templateId"] = json!("x".repeat(129))),
                "templateId",
            ),
            (
                Box::new(|j| j["templateVersion"] = json!(0)),
                "templateVersion",
            ),
            (
                Box::new(|j| j["templateVersion"] = json!("2")),
                "templateVersion",
            ),
            (Box::new(|j| j["userId"] = json!("a\nb")), "userId"),
            (Box::new(|j| j["userId"] = json!("x".repeat(513))), "userId"),
            (
                Box::new(|j| j["subscriptionGroupId"] = json!(7)),
                "subscriptionGroupId",
            ),
            (
                Box::new(|j| j["source"]["kind"] = json!("sms")),
                "source.kind",
            ),
            (
                Box::new(|j| j["source"]["nodeId"] = json!(null)),
                "source.nodeId",
            ),
            (
                Box::new(|j| j["source"]["extra"] = json!(1)),
                "source.extra",
            ),
            (Box::new(|j| j["occurrence"] = json!(-1)), "occurrence"),
            (Box::new(|j| j["variables"] = json!([1])), "variables"),
            (
                Box::new(|j| j["notBefore"] = json!("tomorrow")),
                "notBefore",
            ),
            (Box::new(|j| j["surprise"] = json!(true)), "surprise"),
            (
                Box::new(|j| j["messageId"] = json!("msg_0000")),
                "messageId",
            ),
            (
                Box::new(|j| j["userId"] = json!("someone-else")),
                "messageId",
            ),
        ];
        for (change, field) in cases {
            let error = error_for(change);
            assert_eq!(error.field, field, "{error}");
        }
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        assert_eq!(SendRequest::from_slice(b"[1]").unwrap_err().field, "(body)");
        assert_eq!(SendRequest::from_slice(b"{").unwrap_err().field, "(body)");
    }
}
