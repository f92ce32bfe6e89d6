//! One data row of an import: mapped to the identity and traits of a profile, or to the reason it cannot be.
//!
//! Identity rule: the user id column when the row has a value there; otherwise the email (trimmed and
//! lowercased, so that `Ann@Example.com` and `ann@example.com` are one user); otherwise only the anonymous
//! id. A row with none of the three is an error. The email is also always set as the trait `email`, as
//! written.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::cells;
use super::columns::{Column, Columns, EMAIL_TRAIT, Target};
use crate::ingest::{Event, EventKind};

/// The largest row imported, in bytes: Segment's limit on one event, which is what each row becomes.
pub const MAX_ROW_BYTES: usize = 32 * 1024;
/// The `messageId` of an imported row starts with this, so the lake tells imported identifies apart.
pub const MESSAGE_ID_PREFIX: &str = "csv-";

/// A row that was not imported: where and why. `row` counts the header as row 1; `column` is the header
/// of the offending column, when one column is at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RowError {
    pub row: u64,
    pub column: Option<String>,
    pub reason: String,
}

/// What is wrong with a row, before its number is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub column: Option<String>,
    pub reason: String,
}

impl RowProblem {
    pub fn whole_row(reason: impl Into<String>) -> Self {
        Self {
            column: None,
            reason: reason.into(),
        }
    }

    fn in_column(column: &Column, reason: impl Into<String>) -> Self {
        Self {
            column: Some(column.header.clone()),
            reason: reason.into(),
        }
    }

    pub fn at_row(self, row: u64) -> RowError {
        RowError {
            row,
            column: self.column,
            reason: self.reason,
        }
    }
}

/// A good row: who it is about and the traits it sets (an empty cell sets nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub traits: Map<String, Value>,
}

/// Maps the raw cells of one data row (as many as the header has columns).
pub fn map_row(columns: &Columns, cells: &[&[u8]]) -> Result<ProfileRow, RowProblem> {
    if cells.len() != columns.len() {
        return Err(RowProblem::whole_row(format!(
            "the row has {} fields; the header has {}",
            cells.len(),
            columns.len()
        )));
    }
    let mut row = ProfileRow {
        user_id: None,
        anonymous_id: None,
        traits: Map::new(),
    };
    for (column, cell) in columns.columns.iter().zip(cells) {
        let text = std::str::from_utf8(cell)
            .map_err(|_| RowProblem::in_column(column, "the value is not valid UTF-8"))?
            .trim();
        if !text.is_empty() {
            set_cell(&mut row, column, text)?;
        }
    }
    identify(&mut row, columns)?;
    Ok(row)
}

fn set_cell(row: &mut ProfileRow, column: &Column, text: &str) -> Result<(), RowProblem> {
    match &column.target {
        Target::UserId => row.user_id = Some(text.to_string()),
        Target::AnonymousId => row.anonymous_id = Some(text.to_string()),
        Target::Trait(name) if name == EMAIL_TRAIT => {
            if !looks_like_email(text) {
                return Err(RowProblem::in_column(
                    column,
                    format!("{text:?} is not an email address"),
                ));
            }
            row.traits
                .insert(name.clone(), Value::String(text.to_string()));
        }
        Target::Trait(name) => {
            let value = match column.forced {
                Some(kind) => cells::convert(text, kind)
                    .map_err(|why| RowProblem::in_column(column, format!("the value {why}")))?,
                None => cells::infer(text),
            };
            row.traits.insert(name.clone(), value);
        }
    }
    Ok(())
}

fn identify(row: &mut ProfileRow, columns: &Columns) -> Result<(), RowProblem> {
    if row.user_id.is_none()
        && columns.email.is_some()
        && let Some(Value::String(email)) = row.traits.get(EMAIL_TRAIT)
    {
        row.user_id = Some(email.to_lowercase());
    }
    if row.user_id.is_none() && row.anonymous_id.is_none() {
        return Err(RowProblem::whole_row(
            "no identity: the row needs a userId, an email or an anonymousId",
        ));
    }
    Ok(())
}

/// `local@domain`, each part non-empty, no spaces: enough to catch a shifted column or a typo without
/// refusing addresses that mail servers accept.
fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !text.contains(char::is_whitespace)
        }
        None => false,
    }
}

impl ProfileRow {
    /// The row's deterministic `messageId`: a hash of the workspace and the row's normalized content (ids
    /// and typed traits in name order), so that importing the same rows again is deduplicated, wherever
    /// they sit in the file and whatever the order of the columns.
    pub fn message_id(&self, workspace_id: &str) -> String {
        let traits: BTreeMap<&str, &Value> = self
            .traits
            .iter()
            .map(|(name, value)| (name.as_str(), value))
            .collect();
        let canonical = serde_json::json!([workspace_id, self.user_id, self.anonymous_id, traits]);
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        // 128 bits are plenty to keep distinct rows apart, and keep the dedupe keys short.
        format!("{MESSAGE_ID_PREFIX}{}", hex::encode(&digest[..16]))
    }

    /// The `identify` event the row becomes, received at `now`.
    pub fn into_event(self, workspace_id: &str, now: Timestamp) -> Event {
        Event {
            message_id: self.message_id(workspace_id),
            kind: EventKind::Identify,
            user_id: self.user_id,
            anonymous_id: self.anonymous_id,
            event: None,
            name: None,
            category: None,
            group_id: None,
            previous_id: None,
            traits: self.traits,
            properties: Map::new(),
            context: Map::new(),
            integrations: Map::new(),
            timestamp: now,
            original_timestamp: None,
            sent_at: None,
            received_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn columns(header: &[&str]) -> Columns {
        let cells: Vec<&[u8]> = header.iter().map(|cell| cell.as_bytes()).collect();
        Columns::parse(&cells).unwrap()
    }

    fn map(columns: &Columns, row: &[&str]) -> Result<ProfileRow, RowProblem> {
        let cells: Vec<&[u8]> = row.iter().map(|cell| cell.as_bytes()).collect();
        map_row(columns, &cells)
    }

    #[test]
    fn a_good_row_sets_typed_traits_and_skips_empty_cells() {
        let header = columns(&[
            "userId",
            "email",
            "plan",
            "seats",
            "vip",
            "since",
            "zip:string",
            "nick",
        ]);
        let row = map(
            &header,
            &[
                "u1",
                " Ann@Example.com ",
                "pro",
                "12",
                "true",
                "2025-03-04",
                "02134",
                "",
            ],
        )
        .unwrap();
        assert_eq!(row.user_id.as_deref(), Some("u1"));
        assert_eq!(row.anonymous_id, None);
        assert_eq!(
            Value::Object(row.traits),
            json!({"email": "Ann@Example.com", "plan": "pro", "seats": 12, "vip": true,
                   "since": "2025-03-04", "zip": "02134"})
        );
    }

    #[test]
    fn the_email_identifies_a_row_without_a_user_id() {
        let header = columns(&["userId", "email", "anonymousId"]);
        let row = map(&header, &["", "Ann@Example.com", "anon-1"]).unwrap();
        assert_eq!(row.user_id.as_deref(), Some("ann@example.com"));
        assert_eq!(row.anonymous_id.as_deref(), Some("anon-1"));
        assert_eq!(row.traits["email"], json!("Ann@Example.com"));

        let only_anonymous = map(&header, &["", "", "anon-2"]).unwrap();
        assert_eq!(only_anonymous.user_id, None);
        assert_eq!(only_anonymous.anonymous_id.as_deref(), Some("anon-2"));
    }

    #[test]
    fn broken_rows_say_which_column_and_why() {
        let header = columns(&["id", "email", "age:number"]);
        let problem = |row: &[&str]| map(&header, row).unwrap_err();
        assert_eq!(
            problem(&["u1", "a@b.c"]),
            RowProblem::whole_row("the row has 2 fields; the header has 3")
        );
        assert_eq!(
            problem(&["", "", "3"]),
            RowProblem::whole_row(
                "no identity: the row needs a userId, an email or an anonymousId"
            )
        );
        assert_eq!(
            problem(&["u1", "a@b.c", "old"]),
            RowProblem {
                column: Some("age:number".into()),
                reason: "the value \"old\" is not a number".into()
            }
        );
        assert_eq!(
            problem(&["u1", "not-an-address", ""]).column.as_deref(),
            Some("email")
        );
        let bad_utf8: &[&[u8]] = &[b"u1", b"a@b.c", b"\xff"];
        assert_eq!(
            map_row(&header, bad_utf8).unwrap_err(),
            RowProblem {
                column: Some("age:number".into()),
                reason: "the value is not valid UTF-8".into()
            }
        );
    }

    #[test]
    fn the_message_id_depends_on_content_not_on_column_order() {
        let one = map(&columns(&["id", "plan", "seats"]), &["u1", "pro", "3"]).unwrap();
        let reordered = map(&columns(&["seats", "plan", "id"]), &["3", "pro", "u1"]).unwrap();
        let changed = map(&columns(&["id", "plan", "seats"]), &["u1", "pro", "4"]).unwrap();
        assert_eq!(one.message_id("ws_1"), reordered.message_id("ws_1"));
        assert_ne!(one.message_id("ws_1"), changed.message_id("ws_1"));
        assert_ne!(one.message_id("ws_1"), one.message_id("ws_2"));
        assert!(one.message_id("ws_1").starts_with(MESSAGE_ID_PREFIX));
    }

    #[test]
    fn a_row_becomes_an_identify_event() {
        let row = map(&columns(&["id", "plan"]), &["u1", "pro"]).unwrap();
        let id = row.message_id("ws_1");
        let now: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let event = row.into_event("ws_1", now);
        assert_eq!(event.kind, EventKind::Identify);
        assert_eq!(event.message_id, id);
        assert_eq!(event.user_id.as_deref(), Some("u1"));
        assert_eq!(event.traits["plan"], json!("pro"));
        assert_eq!((event.timestamp, event.received_at), (now, now));
    }
}
