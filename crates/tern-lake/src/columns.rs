//! The columns of the `events` table, in file order, and how each is read from an [`Event`].
//!
//! The names follow Segment's warehouse schema (snake_case). Objects (`properties`, `traits`, `context`,
//! `integrations`) are stored as JSON text, since their keys differ per event; the context fields that
//! queries filter on most are also broken out as columns of their own.

use jiff::Timestamp;
use serde_json::{Map, Value};
use tern_domain::ingest::Event;

/// One column of the `events` table.
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
}

/// A column's type, and how its value is read from an event.
pub enum ColumnKind {
    /// A UTF-8 string every event has.
    Text(fn(&Event) -> &str),
    /// A UTF-8 string, null when the event has none.
    OptionalText(fn(&Event) -> Option<&str>),
    /// A JSON object as UTF-8 text, null when the object is empty.
    Json(fn(&Event) -> &Map<String, Value>),
    /// An instant (milliseconds since the epoch, UTC) every event has.
    Time(fn(&Event) -> Timestamp),
    /// An instant, null when the event has none.
    OptionalTime(fn(&Event) -> Option<Timestamp>),
}

impl Column {
    /// Whether every row has a value.
    pub fn is_required(&self) -> bool {
        matches!(self.kind, ColumnKind::Text(_) | ColumnKind::Time(_))
    }

    /// The column's type as Glue and Athena name it.
    pub fn glue_type(&self) -> &'static str {
        match self.kind {
            ColumnKind::Text(_) | ColumnKind::OptionalText(_) | ColumnKind::Json(_) => "string",
            ColumnKind::Time(_) | ColumnKind::OptionalTime(_) => "timestamp",
        }
    }

    /// The column's declaration in a Parquet message type.
    pub(crate) fn parquet_declaration(&self) -> String {
        let repetition = if self.is_required() {
            "REQUIRED"
        } else {
            "OPTIONAL"
        };
        let physical = match self.kind {
            ColumnKind::Text(_) | ColumnKind::OptionalText(_) | ColumnKind::Json(_) => "BYTE_ARRAY",
            ColumnKind::Time(_) | ColumnKind::OptionalTime(_) => "INT64",
        };
        let logical = match self.kind {
            // JSON is kept as plain STRING: every reader (Athena, DuckDB without its json extension,
            // pandas) reads it as text, and JSON functions accept text.
            ColumnKind::Text(_) | ColumnKind::OptionalText(_) | ColumnKind::Json(_) => "STRING",
            ColumnKind::Time(_) | ColumnKind::OptionalTime(_) => "TIMESTAMP(MILLIS,true)",
        };
        format!("{repetition} {physical} {} ({logical});", self.name)
    }
}

/// A string field of `context`, when it is a string.
fn context_text<'e>(event: &'e Event, field: &str) -> Option<&'e str> {
    event.context.get(field).and_then(Value::as_str)
}

/// Every column, in the order they are written.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "message_id",
        kind: ColumnKind::Text(|e| &e.message_id),
    },
    Column {
        name: "type",
        kind: ColumnKind::Text(|e| e.kind.as_str()),
    },
    Column {
        name: "user_id",
        kind: ColumnKind::OptionalText(|e| e.user_id.as_deref()),
    },
    Column {
        name: "anonymous_id",
        kind: ColumnKind::OptionalText(|e| e.anonymous_id.as_deref()),
    },
    Column {
        name: "event",
        kind: ColumnKind::OptionalText(|e| e.event.as_deref()),
    },
    Column {
        name: "name",
        kind: ColumnKind::OptionalText(|e| e.name.as_deref()),
    },
    Column {
        name: "category",
        kind: ColumnKind::OptionalText(|e| e.category.as_deref()),
    },
    Column {
        name: "group_id",
        kind: ColumnKind::OptionalText(|e| e.group_id.as_deref()),
    },
    Column {
        name: "previous_id",
        kind: ColumnKind::OptionalText(|e| e.previous_id.as_deref()),
    },
    Column {
        name: "timestamp",
        kind: ColumnKind::Time(|e| e.timestamp),
    },
    Column {
        name: "received_at",
        kind: ColumnKind::Time(|e| e.received_at),
    },
    Column {
        name: "sent_at",
        kind: ColumnKind::OptionalTime(|e| e.sent_at),
    },
    Column {
        name: "original_timestamp",
        kind: ColumnKind::OptionalTime(|e| e.original_timestamp),
    },
    Column {
        name: "properties",
        kind: ColumnKind::Json(|e| &e.properties),
    },
    Column {
        name: "traits",
        kind: ColumnKind::Json(|e| &e.traits),
    },
    Column {
        name: "context",
        kind: ColumnKind::Json(|e| &e.context),
    },
    Column {
        name: "context_ip",
        kind: ColumnKind::OptionalText(|e| context_text(e, "ip")),
    },
    Column {
        name: "context_user_agent",
        kind: ColumnKind::OptionalText(|e| context_text(e, "userAgent")),
    },
    Column {
        name: "context_locale",
        kind: ColumnKind::OptionalText(|e| context_text(e, "locale")),
    },
    Column {
        name: "context_timezone",
        kind: ColumnKind::OptionalText(|e| context_text(e, "timezone")),
    },
    Column {
        name: "integrations",
        kind: ColumnKind::Json(|e| &e.integrations),
    },
];
