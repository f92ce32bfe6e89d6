//! One accepted event: a Segment message after validation and clock-skew correction.
//!
//! This is the shape every later stage reads: the table's hot copy, the lake queue's messages, the lake's
//! Parquet columns, and (later) segment evaluation. It is serialized as JSON with Segment's field names, so
//! that a lake message or a stored event reads like what the client sent.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The Segment call an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Identify,
        EventKind::Track,
        EventKind::Page,
        EventKind::Screen,
        EventKind::Group,
        EventKind::Alias,
    ];

    /// The name Segment uses in a batch's `type` field and in its endpoint path.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Identify => "identify",
            EventKind::Track => "track",
            EventKind::Page => "page",
            EventKind::Screen => "screen",
            EventKind::Group => "group",
            EventKind::Alias => "alias",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// An accepted event. Optional fields are absent from the JSON when empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The client's `messageId` (or one Tern assigned when the client sent none): the dedupe key.
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// `track`: the event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// `page` / `screen`: the page or screen name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `page`: the category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `group`: the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// `alias`: the identity being merged into `user_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_id: Option<String>,
    /// `identify` (user traits) and `group` (account traits).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub traits: Map<String, Value>,
    /// `track`, `page`, `screen`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    /// Segment's `context` object as sent (ip, userAgent, locale, timezone, library…), with `ip` filled from
    /// the request when the client sent none.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
    /// `integrations` as sent; kept for the lake.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub integrations: Map<String, Value>,
    /// When the event happened, corrected for the client's clock skew (Segment's rule:
    /// `receivedAt - (sentAt - originalTimestamp)`), or `receivedAt` when the client sent no timestamp.
    pub timestamp: Timestamp,
    /// The client's own `timestamp`, uncorrected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_timestamp: Option<Timestamp>,
    /// When the client sent the request, by its clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    /// When Tern received the request, by Tern's clock.
    pub received_at: Timestamp,
}

impl Event {
    /// The user this event is about: the user id when known, else the anonymous id. Validation guarantees
    /// that one of them is present.
    pub fn subject(&self) -> Subject<'_> {
        match (&self.user_id, &self.anonymous_id) {
            (Some(user_id), _) => Subject::User(user_id),
            (None, Some(anonymous_id)) => Subject::Anonymous(anonymous_id),
            (None, None) => Subject::Anonymous(""),
        }
    }

    /// The IANA timezone the client reported in `context.timezone`, if any.
    pub fn context_timezone(&self) -> Option<&str> {
        self.context.get("timezone").and_then(Value::as_str)
    }
}

/// Who an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    User(&'a str),
    Anonymous(&'a str),
}

/// The body of one message on the `lake` queue: accepted events of one workspace, in arrival order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LakeBatch {
    pub workspace_id: String,
    pub events: Vec<Event>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_serializes_with_segment_field_names_and_round_trips() {
        let event = Event {
            message_id: "m-1".into(),
            kind: EventKind::Track,
            user_id: Some("u1".into()),
            anonymous_id: None,
            event: Some("Order Completed".into()),
            name: None,
            category: None,
            group_id: None,
            previous_id: None,
            traits: Map::new(),
            properties: serde_json::json!({"total": 12.5})
                .as_object()
                .unwrap()
                .clone(),
            context: Map::new(),
            integrations: Map::new(),
            timestamp: "2026-01-02T03:04:05Z".parse().unwrap(),
            original_timestamp: None,
            sent_at: None,
            received_at: "2026-01-02T03:04:06Z".parse().unwrap(),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "track");
        assert_eq!(json["messageId"], "m-1");
        assert_eq!(json["userId"], "u1");
        assert!(json.get("anonymousId").is_none());
        assert!(json.get("traits").is_none());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.subject(), Subject::User("u1"));
    }

    #[test]
    fn kinds_parse_from_their_segment_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("Track"), None);
    }
}
