//! Segment's tracking calls read from their JSON bodies: validation, clock-skew correction and limits.
//!
//! Pure: the caller gives the (decompressed) body and what it knows of the request (when it arrived, from
//! which address); it gets back the accepted [`Event`]s, the messages it [`Rejected`] with the field at fault,
//! and the body's `writeKey`. A problem with the request as a whole (too large, not JSON, not an object) is a
//! [`ParseError`] instead, and nothing of that body is accepted.
//!
//! Rules, as Segment applies them:
//! - every message needs a `userId` or an `anonymousId` (text, or a number turned into text as Segment's
//!   libraries do); `track` needs `event`, `group` needs `groupId`, `alias` needs `previousId` and `userId`;
//! - a batch item's `type` names one of the six calls; a single call's kind comes from its path;
//! - `messageId` is kept, or one is assigned when the client sent none;
//! - timestamps are RFC 3339 text; the event time is corrected for the client's clock skew:
//!   `timestamp = receivedAt - (sentAt - originalTimestamp)` when the client sent both, the client's time as is
//!   when it sent no `sentAt`, and `receivedAt` when it sent no time at all;
//! - a batch's own `sentAt`, `context` and `integrations` apply to every item; an item's own keys win;
//! - `context.ip` is the request's client address when the client sent none.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Event, EventKind};

/// The largest message, measured on its raw JSON: a single call's body or one item of a batch. Segment
/// documents 32 KB; its libraries check 32 000 or 32 768 bytes, so counting in KiB lets all of them through.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// The largest request body, after decompression (Segment documents 500 KB per batch).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// The longest id kept (`userId`, `anonymousId`, `messageId`, `groupId`, `previousId`): ids become parts of
/// table keys, whose length both engines bound.
pub const MAX_ID_BYTES: usize = 512;

/// What the host knows of the request that carried the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// When the request arrived, by Tern's clock: every event's `receivedAt`.
    pub received_at: Timestamp,
    /// The client's address, put in `context.ip` when the client sent none.
    pub client_ip: Option<String>,
}

/// A message left out, with the JSON path of the field at fault (`batch[3].userId`, or `userId` for a
/// single call) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub field: String,
    pub message: String,
}

/// A body read: the events to store, the messages left out, and the `writeKey` the body carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub events: Vec<Event>,
    pub rejected: Vec<Rejected>,
    pub write_key: Option<String>,
}

/// Why a whole body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "the request body is {size} bytes after decompression; the limit is {limit} bytes per request"
    )]
    BatchTooLarge { size: usize, limit: usize },
    #[error("the message is {size} bytes; the limit is {limit} bytes per message")]
    EventTooLarge { size: usize, limit: usize },
    #[error("malformed JSON at line {line}, column {column}: {reason}")]
    MalformedJson {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("the body must be {expected}")]
    NotAnObject { expected: &'static str },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

const SINGLE_SHAPE: &str = "a JSON object (one Segment message)";
const BATCH_SHAPE: &str = "a JSON object with a `batch` array of Segment messages";

/// Reads the body of a single call (`/v1/track`, `/v1/identify`…); `kind` comes from the path, so a `type`
/// in the body is ignored.
pub fn parse_call(
    kind: EventKind,
    body: &[u8],
    request: &RequestInfo,
) -> Result<Parsed, ParseError> {
    check_request_size(body)?;
    if body.len() > MAX_EVENT_BYTES {
        return Err(ParseError::EventTooLarge {
            size: body.len(),
            limit: MAX_EVENT_BYTES,
        });
    }
    let mut fields: Map<String, Value> = parse_object(body, SINGLE_SHAPE)?;
    let write_key = write_key(fields.remove("writeKey"))?;
    let (events, rejected) = match read_message(kind, fields, "", &Shared::default(), request) {
        Ok(event) => (vec![event], Vec::new()),
        Err(rejected) => (Vec::new(), rejected),
    };
    Ok(Parsed {
        events,
        rejected,
        write_key,
    })
}

/// Reads the body of `/v1/batch` (and `/v1/import`): `{"batch": [...], "sentAt", "context",
/// "integrations", "writeKey"}`. Each item is checked on its own; a bad item never spoils the others.
pub fn parse_batch(body: &[u8], request: &RequestInfo) -> Result<Parsed, ParseError> {
    check_request_size(body)?;
    let envelope: BTreeMap<String, &RawValue> = parse_object(body, BATCH_SHAPE)?;
    let write_key = write_key(envelope_value(&envelope, "writeKey"))?;
    let shared = Shared {
        sent_at: envelope_timestamp(&envelope, "sentAt")?,
        context: envelope_object(&envelope, "context")?,
        integrations: envelope_object(&envelope, "integrations")?,
    };
    let items = batch_items(&envelope)?;
    let mut events = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match read_batch_item(index, item, &shared, request) {
            Ok(event) => events.push(event),
            Err(reasons) => rejected.extend(reasons),
        }
    }
    Ok(Parsed {
        events,
        rejected,
        write_key,
    })
}

fn check_request_size(body: &[u8]) -> Result<(), ParseError> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(ParseError::BatchTooLarge {
            size: body.len(),
            limit: MAX_BATCH_BYTES,
        });
    }
    Ok(())
}

/// Parses a body that must be a JSON object. Every value type accepts any JSON, so a data error can only
/// mean that the body is not an object; syntax errors name their position.
fn parse_object<'a, T: serde::Deserialize<'a>>(
    body: &'a [u8],
    expected: &'static str,
) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ParseError::NotAnObject { expected },
        _ => malformed(&error),
    })
}

fn malformed(error: &serde_json::Error) -> ParseError {
    let (line, column) = (error.line(), error.column());
    let text = error.to_string();
    // serde_json appends the position to its reason; it is reported in its own words instead.
    let suffix = format!(" at line {line} column {column}");
    let reason = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
    ParseError::MalformedJson {
        line,
        column,
        reason,
    }
}

fn write_key(value: Option<Value>) -> Result<Option<String>, ParseError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(key)) if key.is_empty() => Ok(None),
        Some(Value::String(key)) => Ok(Some(key)),
        Some(_) => Err(ParseError::Invalid {
            field: "writeKey".into(),
            message: "must be a string".into(),
        }),
    }
}

/// An envelope member as a value; members were validated as JSON when the envelope was parsed.
fn envelope_value(envelope: &BTreeMap<String, &RawValue>, name: &str) -> Option<Value> {
    envelope
        .get(name)
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
}

fn envelope_timestamp(
    envelope: &BTreeMap<String, &RawValue>,
    name: &str,
) -> Result<Option<Timestamp>, ParseError> {
    read_timestamp(envelope_value(envelope, name)).map_err(|message| ParseError::Invalid {
        field: name.into(),
        message,
    })
}

fn envelope_object(
    envelope: &BTreeMap<String, &RawValue>,
    name: &str,
) -> Result<Map<String, Value>, ParseError> {
    read_object(envelope_value(envelope, name)).map_err(|message| ParseError::Invalid {
        field: name.into(),
        message,
    })
}

fn batch_items<'a>(
    envelope: &BTreeMap<String, &'a RawValue>,
) -> Result<Vec<&'a RawValue>, ParseError> {
    let invalid = |message: &str| ParseError::Invalid {
        field: "batch".into(),
        message: message.into(),
    };
    let raw = envelope
        .get("batch")
        .filter(|raw| raw.get() != "null")
        .ok_or_else(|| invalid("is required: an array of Segment messages"))?;
    serde_json::from_str(raw.get()).map_err(|_| invalid("must be an array of Segment messages"))
}

/// What a batch gives every item that lacks its own.
#[derive(Debug, Default)]
struct Shared {
    sent_at: Option<Timestamp>,
    context: Map<String, Value>,
    integrations: Map<String, Value>,
}

fn read_batch_item(
    index: usize,
    raw: &RawValue,
    shared: &Shared,
    request: &RequestInfo,
) -> Result<Event, Vec<Rejected>> {
    let path = format!("batch[{index}]");
    let reject = |field: String, message: String| vec![Rejected { field, message }];
    let size = raw.get().len();
    if size > MAX_EVENT_BYTES {
        let message = ParseError::EventTooLarge {
            size,
            limit: MAX_EVENT_BYTES,
        };
        return Err(reject(path, message.to_string()));
    }
    let Ok(mut fields) = serde_json::from_str::<Map<String, Value>>(raw.get()) else {
        return Err(reject(path, format!("must be {SINGLE_SHAPE}")));
    };
    let kind = match fields.remove("type") {
        Some(Value::String(name)) => EventKind::parse(&name),
        _ => None,
    };
    let Some(kind) = kind else {
        let names: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
        let message = format!("is required and must be one of {}", names.join(", "));
        return Err(reject(join(&path, "type"), message));
    };
    read_message(kind, fields, &path, shared, request)
}

/// Checks one message and builds its event; every field at fault is reported, not only the first.
fn read_message(
    kind: EventKind,
    values: Map<String, Value>,
    path: &str,
    shared: &Shared,
    request: &RequestInfo,
) -> Result<Event, Vec<Rejected>> {
    let mut fields = Fields {
        path,
        values,
        rejected: Vec::new(),
    };
    let user_id = fields.id("userId");
    let anonymous_id = fields.id("anonymousId");
    let message_id = fields.id("messageId");
    let mut event_name = None;
    let (mut name, mut category, mut group_id, mut previous_id) = (None, None, None, None);
    let (mut traits, mut properties) = (Map::new(), Map::new());
    match kind {
        EventKind::Identify => traits = fields.object("traits"),
        EventKind::Track => {
            event_name = fields.text("event");
            if event_name.is_none() {
                fields.reject_if_clean("event", "is required for a track call");
            }
            properties = fields.object("properties");
        }
        EventKind::Page | EventKind::Screen => {
            name = fields.text("name");
            category = fields.text("category");
            properties = fields.object("properties");
        }
        EventKind::Group => {
            group_id = fields.id("groupId");
            if group_id.is_none() {
                fields.reject_if_clean("groupId", "is required for a group call");
            }
            traits = fields.object("traits");
        }
        EventKind::Alias => {
            previous_id = fields.id("previousId");
            if previous_id.is_none() {
                fields.reject_if_clean("previousId", "is required for an alias call");
            }
            if user_id.is_none() {
                fields.reject_if_clean("userId", "is required for an alias call");
            }
        }
    }
    if user_id.is_none() && anonymous_id.is_none() {
        fields.reject_if_clean("userId", "userId or anonymousId is required");
    }
    let context = fields.context(shared, request);
    let integrations = merged(fields.object("integrations"), &shared.integrations);
    let original_timestamp = fields.client_time();
    let own_sent_at = fields.timestamp("sentAt");
    let sent_at = own_sent_at.or(shared.sent_at);
    let timestamp = fields.corrected(original_timestamp, sent_at, request.received_at);
    if !fields.rejected.is_empty() {
        return Err(fields.rejected);
    }
    Ok(Event {
        message_id: message_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        kind,
        user_id,
        anonymous_id,
        event: event_name,
        name,
        category,
        group_id,
        previous_id,
        traits,
        properties,
        context,
        integrations,
        timestamp,
        original_timestamp,
        sent_at,
        received_at: request.received_at,
    })
}

/// A message's members, taken out one by one, and the faults found so far.
struct Fields<'p> {
    path: &'p str,
    values: Map<String, Value>,
    rejected: Vec<Rejected>,
}

impl Fields<'_> {
    fn reject(&mut self, name: &str, message: impl Into<String>) {
        self.rejected.push(Rejected {
            field: join(self.path, name),
            message: message.into(),
        });
    }

    /// Reports a missing field unless that field was already reported (present but of the wrong shape).
    fn reject_if_clean(&mut self, name: &str, message: &str) {
        let field = join(self.path, name);
        if !self.rejected.iter().any(|rejected| rejected.field == field) {
            self.reject(name, message);
        }
    }

    /// An identifier: text, or a number written as text (Segment's libraries accept numeric ids). Blank text
    /// and `null` count as absent.
    fn id(&mut self, name: &str) -> Option<String> {
        let id = match self.values.remove(name) {
            None | Some(Value::Null) => return None,
            Some(Value::String(text)) => text,
            Some(Value::Number(number)) => number.to_string(),
            Some(_) => {
                self.reject(name, "must be a string or a number");
                return None;
            }
        };
        if id.trim().is_empty() {
            return None;
        }
        if id.len() > MAX_ID_BYTES {
            let message = format!(
                "is {} bytes; ids may be at most {MAX_ID_BYTES} bytes",
                id.len()
            );
            self.reject(name, message);
            return None;
        }
        Some(id)
    }

    /// Optional text; blank text counts as absent.
    fn text(&mut self, name: &str) -> Option<String> {
        match self.values.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.trim().is_empty() => None,
            Some(Value::String(text)) => Some(text),
            Some(_) => {
                self.reject(name, "must be a string");
                None
            }
        }
    }

    /// An optional object; `null` counts as empty.
    fn object(&mut self, name: &str) -> Map<String, Value> {
        read_object(self.values.remove(name)).unwrap_or_else(|message| {
            self.reject(name, message);
            Map::new()
        })
    }

    fn timestamp(&mut self, name: &str) -> Option<Timestamp> {
        read_timestamp(self.values.remove(name)).unwrap_or_else(|message| {
            self.reject(name, message);
            None
        })
    }

    /// The event time by the client's clock: `originalTimestamp` (what RudderStack's libraries send), else
    /// `timestamp` (what Segment's send). Both are checked when both are present.
    fn client_time(&mut self) -> Option<Timestamp> {
        let original = self.timestamp("originalTimestamp");
        let timestamp = self.timestamp("timestamp");
        original.or(timestamp)
    }

    /// Segment's clock-skew correction: the delay between the event and the send, by the client's clock,
    /// is taken back from the time Tern received the request.
    fn corrected(
        &mut self,
        original: Option<Timestamp>,
        sent_at: Option<Timestamp>,
        received_at: Timestamp,
    ) -> Timestamp {
        match (original, sent_at) {
            (None, _) => received_at,
            (Some(original), None) => original,
            (Some(original), Some(sent_at)) => received_at
                .checked_sub(sent_at.duration_since(original))
                .unwrap_or_else(|_| {
                    self.reject(
                        "timestamp",
                        "is out of range once corrected for the gap to sentAt",
                    );
                    received_at
                }),
        }
    }

    /// The message's context over the batch's, with the client's address when the client sent none.
    fn context(&mut self, shared: &Shared, request: &RequestInfo) -> Map<String, Value> {
        let mut context = merged(self.object("context"), &shared.context);
        let has_ip = context.get("ip").is_some_and(|ip| !ip.is_null());
        if let (false, Some(ip)) = (has_ip, &request.client_ip) {
            context.insert("ip".into(), Value::String(ip.clone()));
        }
        context
    }
}

/// `own` with every top-level key of `shared` it lacks.
fn merged(mut own: Map<String, Value>, shared: &Map<String, Value>) -> Map<String, Value> {
    for (key, value) in shared {
        if !own.contains_key(key) {
            own.insert(key.clone(), value.clone());
        }
    }
    own
}

fn read_object(value: Option<Value>) -> Result<Map<String, Value>, String> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(object)) => Ok(object),
        Some(_) => Err("must be an object".into()),
    }
}

fn read_timestamp(value: Option<Value>) -> Result<Option<Timestamp>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => text.parse::<Timestamp>().map(Some).map_err(|error| {
            format!("must be an RFC 3339 timestamp such as 2026-03-01T09:00:00.000Z: {error}")
        }),
        Some(_) => Err("must be an RFC 3339 timestamp text".into()),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RECEIVED_AT: &str = "2026-03-01T09:00:00Z";

    fn request() -> RequestInfo {
        RequestInfo {
            received_at: RECEIVED_AT.parse().unwrap(),
            client_ip: Some("203.0.113.7".into()),
        }
    }

    fn call(kind: EventKind, body: Value) -> Parsed {
        parse_call(kind, body.to_string().as_bytes(), &request()).unwrap()
    }

    fn batch(body: Value) -> Parsed {
        parse_batch(body.to_string().as_bytes(), &request()).unwrap()
    }

    fn only_event(parsed: Parsed) -> Event {
        assert_eq!(parsed.rejected, vec![], "nothing should be rejected");
        assert_eq!(parsed.events.len(), 1);
        parsed.events.into_iter().next().unwrap()
    }

    fn fields(parsed: &Parsed) -> Vec<&str> {
        parsed.rejected.iter().map(|r| r.field.as_str()).collect()
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_single_track_call_becomes_one_event() {
        let parsed = call(
            EventKind::Track,
            json!({
                "userId": "u1", "event": "Order Completed", "messageId": "m-1",
                "properties": {"total": 12.5}, "context": {"locale": "en-GB"},
                "integrations": {"All": true}, "writeKey": "tw_key",
            }),
        );
        assert_eq!(parsed.write_key.as_deref(), Some("tw_key"));
        let event = only_event(parsed);
        assert_eq!(event.kind, EventKind::Track);
        assert_eq!(event.message_id, "m-1");
        assert_eq!(event.user_id.as_deref(), Some("u1"));
        assert_eq!(event.event.as_deref(), Some("Order Completed"));
        assert_eq!(event.properties["total"], json!(12.5));
        assert_eq!(event.context["locale"], "en-GB");
        assert_eq!(event.integrations["All"], true);
        assert_eq!(event.received_at, ts(RECEIVED_AT));
    }

    #[test]
    fn the_path_decides_the_kind_of_a_single_call() {
        let event = only_event(call(
            EventKind::Page,
            json!({"type": "track", "anonymousId": "a1", "name": "Pricing", "category": "Docs"}),
        ));
        assert_eq!(event.kind, EventKind::Page);
        assert_eq!(event.name.as_deref(), Some("Pricing"));
        assert_eq!(event.category.as_deref(), Some("Docs"));
    }

    #[test]
    fn a_user_id_or_an_anonymous_id_is_required() {
        let parsed = call(EventKind::Identify, json!({"traits": {"plan": "pro"}}));
        assert_eq!(parsed.events, vec![]);
        assert_eq!(parsed.rejected[0].field, "userId");
        assert!(parsed.rejected[0].message.contains("anonymousId"));

        let parsed = call(
            EventKind::Identify,
            json!({"userId": "  ", "anonymousId": ""}),
        );
        assert_eq!(fields(&parsed), vec!["userId"]);

        let event = only_event(call(
            EventKind::Identify,
            json!({"userId": "", "anonymousId": "a1"}),
        ));
        assert_eq!(
            (event.user_id, event.anonymous_id.as_deref()),
            (None, Some("a1"))
        );
    }

    #[test]
    fn numeric_ids_become_text_and_other_types_are_rejected() {
        let event = only_event(call(
            EventKind::Group,
            json!({"userId": 42, "anonymousId": 1.5, "groupId": 7}),
        ));
        assert_eq!(event.user_id.as_deref(), Some("42"));
        assert_eq!(event.anonymous_id.as_deref(), Some("1.5"));
        assert_eq!(event.group_id.as_deref(), Some("7"));

        let parsed = call(
            EventKind::Track,
            json!({"userId": true, "event": "x", "messageId": ["m"]}),
        );
        assert_eq!(fields(&parsed), vec!["userId", "messageId"]);
        assert_eq!(parsed.rejected[0].message, "must be a string or a number");
    }

    #[test]
    fn ids_longer_than_the_limit_are_rejected() {
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let parsed = call(EventKind::Track, json!({"userId": long, "event": "x"}));
        assert_eq!(fields(&parsed), vec!["userId"]);
        assert!(
            parsed.rejected[0]
                .message
                .contains(&MAX_ID_BYTES.to_string())
        );
        let exact = "x".repeat(MAX_ID_BYTES);
        only_event(call(
            EventKind::Track,
            json!({"userId": exact, "event": "x"}),
        ));
    }

    #[test]
    fn each_kind_requires_its_own_fields() {
        let cases = [
            (EventKind::Track, json!({"userId": "u"}), vec!["event"]),
            (
                EventKind::Track,
                json!({"userId": "u", "event": 3}),
                vec!["event"],
            ),
            (EventKind::Group, json!({"userId": "u"}), vec!["groupId"]),
            (EventKind::Alias, json!({"userId": "u"}), vec!["previousId"]),
            (
                EventKind::Alias,
                json!({"previousId": "a", "anonymousId": "a"}),
                vec!["userId"],
            ),
        ];
        for (kind, body, expected) in cases {
            let parsed = call(kind, body.clone());
            assert_eq!(fields(&parsed), expected, "{kind:?} {body}");
            assert!(parsed.events.is_empty());
        }
        let alias = only_event(call(
            EventKind::Alias,
            json!({"userId": "u1", "previousId": "a1"}),
        ));
        assert_eq!(alias.previous_id.as_deref(), Some("a1"));
    }

    #[test]
    fn every_fault_of_a_message_is_reported() {
        let parsed = call(
            EventKind::Track,
            json!({"properties": [], "timestamp": "yesterday", "context": "web"}),
        );
        let mut reported = fields(&parsed);
        reported.sort();
        assert_eq!(
            reported,
            vec!["context", "event", "properties", "timestamp", "userId"]
        );
    }

    #[test]
    fn traits_and_properties_must_be_objects_and_keep_nulls() {
        let event = only_event(call(
            EventKind::Identify,
            json!({"userId": "u", "traits": {"email": "a@example.com", "plan": null}}),
        ));
        assert_eq!(event.traits["plan"], Value::Null);
        assert_eq!(event.traits.len(), 2);

        let parsed = call(EventKind::Identify, json!({"userId": "u", "traits": "vip"}));
        assert_eq!(fields(&parsed), vec!["traits"]);
        assert_eq!(parsed.rejected[0].message, "must be an object");
    }

    #[test]
    fn a_message_id_is_kept_or_assigned() {
        let parsed = batch(json!({"batch": [
            {"type": "track", "userId": "u", "event": "a"},
            {"type": "track", "userId": "u", "event": "b"},
            {"type": "track", "userId": "u", "event": "c", "messageId": "kept"},
        ]}));
        let ids: Vec<&str> = parsed
            .events
            .iter()
            .map(|e| e.message_id.as_str())
            .collect();
        assert!(uuid::Uuid::parse_str(ids[0]).is_ok(), "{}", ids[0]);
        assert!(uuid::Uuid::parse_str(ids[1]).is_ok(), "{}", ids[1]);
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[2], "kept");
    }

    #[test]
    fn batch_items_need_one_of_the_six_types() {
        let parsed = batch(json!({"batch": [
            {"userId": "u", "event": "a"},
            {"type": "Track", "userId": "u", "event": "a"},
            {"type": 1, "userId": "u"},
            {"type": "screen", "userId": "u", "name": "Home"},
        ]}));
        assert_eq!(
            fields(&parsed),
            vec!["batch[0].type", "batch[1].type", "batch[2].type"]
        );
        assert!(parsed.rejected[0].message.contains("identify, track, page"));
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(parsed.events[0].kind, EventKind::Screen);
    }

    #[test]
    fn a_bad_item_is_reported_by_its_path_and_spares_the_others() {
        let parsed = batch(json!({"batch": [
            {"type": "identify", "userId": "u1"},
            {"type": "track", "anonymousId": "a1"},
            "not a message",
            {"type": "alias", "userId": "u1", "previousId": "a1"},
        ]}));
        assert_eq!(fields(&parsed), vec!["batch[1].event", "batch[2]"]);
        let kinds: Vec<EventKind> = parsed.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::Identify, EventKind::Alias]);
    }

    #[test]
    fn invalid_timestamps_are_rejected_with_their_field() {
        let parsed = batch(json!({"batch": [
            {"type": "track", "userId": "u", "event": "a", "timestamp": "2026-03-01 09:00"},
            {"type": "track", "userId": "u", "event": "a", "sentAt": 1700000000},
            {"type": "track", "userId": "u", "event": "a", "originalTimestamp": "soon"},
        ]}));
        assert_eq!(
            fields(&parsed),
            vec![
                "batch[0].timestamp",
                "batch[1].sentAt",
                "batch[2].originalTimestamp"
            ]
        );
        assert!(parsed.rejected[0].message.contains("RFC 3339"));
    }

    #[test]
    fn timestamps_are_corrected_for_clock_skew() {
        // The client's clock is 1 hour behind: it stamped the event 5 s before sending.
        let event = only_event(call(
            EventKind::Track,
            json!({"userId": "u", "event": "e",
                   "timestamp": "2026-03-01T07:59:55Z", "sentAt": "2026-03-01T08:00:00Z"}),
        ));
        assert_eq!(event.timestamp, ts("2026-03-01T08:59:55Z"));
        assert_eq!(event.original_timestamp, Some(ts("2026-03-01T07:59:55Z")));
        assert_eq!(event.sent_at, Some(ts("2026-03-01T08:00:00Z")));
        assert_eq!(event.received_at, ts(RECEIVED_AT));
    }

    #[test]
    fn without_sent_at_the_client_time_is_kept_and_without_any_time_received_at_is_used() {
        let kept = only_event(call(
            EventKind::Track,
            json!({"userId": "u", "event": "e", "timestamp": "2026-02-01T10:00:00+01:00"}),
        ));
        assert_eq!(kept.timestamp, ts("2026-02-01T09:00:00Z"));
        assert_eq!(kept.sent_at, None);

        let received = only_event(call(
            EventKind::Track,
            json!({"userId": "u", "event": "e", "sentAt": "2026-03-01T08:00:00Z"}),
        ));
        assert_eq!(received.timestamp, ts(RECEIVED_AT));
        assert_eq!(received.original_timestamp, None);
    }

    #[test]
    fn the_batch_sent_at_applies_to_items_without_their_own() {
        let parsed = batch(json!({
            "sentAt": "2026-03-01T08:00:00Z",
            "batch": [
                {"type": "track", "userId": "u", "event": "a", "timestamp": "2026-03-01T07:59:00Z"},
                {"type": "track", "userId": "u", "event": "b", "timestamp": "2026-03-01T07:59:00Z",
                 "sentAt": "2026-03-01T07:59:30Z"},
            ],
        }));
        assert_eq!(parsed.rejected, vec![]);
        assert_eq!(parsed.events[0].timestamp, ts("2026-03-01T08:59:00Z"));
        assert_eq!(parsed.events[1].timestamp, ts("2026-03-01T08:59:30Z"));
    }

    #[test]
    fn original_timestamp_is_the_client_time_when_sent() {
        let event = only_event(call(
            EventKind::Track,
            json!({"userId": "u", "event": "e", "originalTimestamp": "2026-03-01T07:59:50Z",
                   "timestamp": "2026-03-01T07:00:00Z", "sentAt": "2026-03-01T08:00:00Z"}),
        ));
        assert_eq!(event.timestamp, ts("2026-03-01T08:59:50Z"));
    }

    #[test]
    fn a_correction_out_of_range_is_rejected() {
        let parsed = call(
            EventKind::Track,
            json!({"userId": "u", "event": "e", "timestamp": "9999-12-01T00:00:00Z",
                   "sentAt": "0001-01-01T00:00:00Z"}),
        );
        assert_eq!(fields(&parsed), vec!["timestamp"]);
    }

    #[test]
    fn the_batch_context_and_integrations_sit_under_each_items_own() {
        let parsed = batch(json!({
            "context": {"library": {"name": "analytics-node"}, "locale": "en-US"},
            "integrations": {"All": false},
            "batch": [
                {"type": "identify", "userId": "u", "context": {"locale": "fr-FR", "timezone": "Europe/Paris"},
                 "integrations": {"All": true}},
                {"type": "identify", "userId": "v"},
            ],
        }));
        let first = &parsed.events[0];
        assert_eq!(first.context["locale"], "fr-FR");
        assert_eq!(first.context["timezone"], "Europe/Paris");
        assert_eq!(first.context["library"]["name"], "analytics-node");
        assert_eq!(first.integrations["All"], true);
        let second = &parsed.events[1];
        assert_eq!(second.context["locale"], "en-US");
        assert_eq!(second.integrations["All"], false);
    }

    #[test]
    fn the_client_ip_fills_context_ip_only_when_the_client_sent_none() {
        let parsed = batch(json!({"batch": [
            {"type": "identify", "userId": "u"},
            {"type": "identify", "userId": "u", "context": {"ip": "198.51.100.1"}},
            {"type": "identify", "userId": "u", "context": {"ip": null}},
        ]}));
        let ips: Vec<&Value> = parsed.events.iter().map(|e| &e.context["ip"]).collect();
        assert_eq!(ips, vec!["203.0.113.7", "198.51.100.1", "203.0.113.7"]);

        let unknown = RequestInfo {
            client_ip: None,
            ..request()
        };
        let parsed = parse_call(EventKind::Identify, br#"{"userId":"u"}"#, &unknown).unwrap();
        assert!(parsed.events[0].context.get("ip").is_none());
    }

    #[test]
    fn an_item_over_the_event_limit_is_rejected_with_its_size_and_the_limit() {
        let big = "x".repeat(MAX_EVENT_BYTES);
        let parsed = batch(json!({"batch": [
            {"type": "track", "userId": "u", "event": "a"},
            {"type": "track", "userId": "u", "event": "b", "properties": {"blob": big}},
        ]}));
        assert_eq!(fields(&parsed), vec!["batch[1]"]);
        let message = &parsed.rejected[0].message;
        assert!(message.contains(&MAX_EVENT_BYTES.to_string()), "{message}");
        assert!(message.contains("bytes"), "{message}");
        assert_eq!(parsed.events.len(), 1);
    }

    #[test]
    fn a_single_call_over_the_event_limit_is_refused() {
        let big = "x".repeat(MAX_EVENT_BYTES);
        let body = json!({"userId": "u", "event": "b", "properties": {"blob": big}}).to_string();
        let error = parse_call(EventKind::Track, body.as_bytes(), &request()).unwrap_err();
        assert_eq!(
            error,
            ParseError::EventTooLarge {
                size: body.len(),
                limit: MAX_EVENT_BYTES
            }
        );
    }

    #[test]
    fn a_body_over_the_batch_limit_is_refused_whole() {
        let item = json!({"type": "track", "userId": "u", "event": "e",
                          "properties": {"blob": "x".repeat(20_000)}});
        let items: Vec<Value> = std::iter::repeat_n(item, 30).collect();
        let body = json!({"batch": items}).to_string();
        assert!(body.len() > MAX_BATCH_BYTES);
        let error = parse_batch(body.as_bytes(), &request()).unwrap_err();
        assert_eq!(
            error,
            ParseError::BatchTooLarge {
                size: body.len(),
                limit: MAX_BATCH_BYTES
            }
        );
        assert!(error.to_string().contains("512000"));
    }

    #[test]
    fn malformed_json_names_its_line_and_column() {
        let body = b"{\"batch\": [\n  {\"type\": \"track\",}\n]}";
        let error = parse_batch(body, &request()).unwrap_err();
        let ParseError::MalformedJson { line, column, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!((*line, *column), (2, 20));
        assert!(
            error
                .to_string()
                .starts_with("malformed JSON at line 2, column 20: "),
            "{error}"
        );

        let error = parse_call(EventKind::Track, b"{\"userId\": \"u\"} x", &request()).unwrap_err();
        assert!(
            matches!(error, ParseError::MalformedJson { line: 1, .. }),
            "{error:?}"
        );
        let error = parse_call(EventKind::Track, b"", &request()).unwrap_err();
        assert!(
            matches!(error, ParseError::MalformedJson { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn bodies_must_be_objects() {
        let error = parse_call(EventKind::Track, b"[1, 2]", &request()).unwrap_err();
        assert_eq!(
            error,
            ParseError::NotAnObject {
                expected: SINGLE_SHAPE
            }
        );
        let error = parse_batch(b"\"batch\"", &request()).unwrap_err();
        assert_eq!(
            error,
            ParseError::NotAnObject {
                expected: BATCH_SHAPE
            }
        );
    }

    #[test]
    fn a_batch_body_needs_a_batch_array() {
        for body in [
            json!({}),
            json!({"batch": null}),
            json!({"batch": {"type": "track"}}),
        ] {
            let error = parse_batch(body.to_string().as_bytes(), &request()).unwrap_err();
            assert!(
                matches!(&error, ParseError::Invalid { field, .. } if field == "batch"),
                "{body}: {error:?}"
            );
        }
        let parsed = batch(json!({"batch": []}));
        assert!(parsed.events.is_empty() && parsed.rejected.is_empty());
    }

    #[test]
    fn request_level_fields_are_checked_as_a_whole() {
        let cases = [
            (json!({"batch": [], "writeKey": 12}), "writeKey"),
            (json!({"batch": [], "sentAt": "now"}), "sentAt"),
            (json!({"batch": [], "context": []}), "context"),
            (json!({"batch": [], "integrations": 1}), "integrations"),
        ];
        for (body, expected) in cases {
            let error = parse_batch(body.to_string().as_bytes(), &request()).unwrap_err();
            assert!(
                matches!(&error, ParseError::Invalid { field, .. } if field == expected),
                "{body}: {error:?}"
            );
        }
        let error =
            parse_call(EventKind::Track, br#"{"writeKey": false}"#, &request()).unwrap_err();
        assert!(matches!(&error, ParseError::Invalid { field, .. } if field == "writeKey"));
    }

    #[test]
    fn the_write_key_of_a_batch_is_returned() {
        let parsed = batch(json!({"batch": [], "writeKey": "tw_abc"}));
        assert_eq!(parsed.write_key.as_deref(), Some("tw_abc"));
        assert_eq!(batch(json!({"batch": [], "writeKey": ""})).write_key, None);
        assert_eq!(batch(json!({"batch": []})).write_key, None);
    }
}
