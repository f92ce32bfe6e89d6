//! The suppression list: addresses a workspace never emails, whatever the subscriptions say.
//!
//! An address is normalized (trimmed, lower-cased) before it is stored or looked up, so `Ada@Example.com`
//! and `ada@example.com` are one entry. Each entry records why (`bounce`, `complaint`, `unsubscribe`,
//! `manual`) and when; suppressing an address again replaces its reason and time. The items are described
//! in [`crate::layout`]: one partition per address for the sender's check, listed through `gsi1`.

use email_address::{EmailAddress, Options};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tern_ports::table::{GSI1_PK, GSI1_SK};
use tern_ports::{Cursor, Item, Query, Table};

use crate::stored::{corrupt, required_s, required_time};
use crate::{DomainError, DomainResult, layout};

/// The largest page of suppressions.
pub const MAX_PAGE_SIZE: u32 = 100;

mod attr {
    pub const ADDRESS: &str = "address";
    pub const REASON: &str = "reason";
    pub const SUPPRESSED_AT: &str = "suppressed_at";
}

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// A hard bounce: the address does not exist.
    Bounce,
    /// The recipient marked a message as spam.
    Complaint,
    /// The recipient unsubscribed from everything.
    Unsubscribe,
    /// An administrator added it.
    Manual,
}

/// One suppressed address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suppression {
    pub address: String,
    pub reason: Reason,
    pub suppressed_at: Timestamp,
}

/// A page of suppressions, by address; `next_cursor` is `Some` when more may follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionPage {
    pub suppressions: Vec<Suppression>,
    pub next_cursor: Option<String>,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Bounce => "bounce",
            Reason::Complaint => "complaint",
            Reason::Unsubscribe => "unsubscribe",
            Reason::Manual => "manual",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Reason::Bounce,
            Reason::Complaint,
            Reason::Unsubscribe,
            Reason::Manual,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == text)
    }
}

/// The form an address is stored and looked up in: trimmed and lower-cased, checked to be a plain address
/// (no display name). `field` names the input in the error.
pub fn normalize_address(field: &str, address: &str) -> DomainResult<String> {
    let normalized = address.trim().to_lowercase();
    EmailAddress::parse_with_options(&normalized, Options::default().without_display_text())
        .map_err(|error| {
            DomainError::invalid(
                field,
                format!("{address:?} is not an email address ({error})"),
            )
        })?;
    Ok(normalized)
}

/// Suppresses `address` for `reason` as of `at` (replacing an earlier entry for it); returns the entry.
pub async fn suppress(
    table: &dyn Table,
    workspace_id: &str,
    address: &str,
    reason: Reason,
    at: Timestamp,
) -> DomainResult<Suppression> {
    let address = normalize_address("address", address)?;
    let item = Item::new(&layout::suppression_key(workspace_id, &address))
        .with(GSI1_PK, layout::suppressions_gsi1_pk(workspace_id))
        .with(GSI1_SK, address.as_str())
        .with(attr::ADDRESS, address.as_str())
        .with(attr::REASON, reason.as_str())
        .with(attr::SUPPRESSED_AT, at.to_string());
    table.put(item, None).await?;
    Ok(Suppression {
        address,
        reason,
        suppressed_at: at,
    })
}

/// The entry for `address`, when it is suppressed.
pub async fn get_suppression(
    table: &dyn Table,
    workspace_id: &str,
    address: &str,
) -> DomainResult<Option<Suppression>> {
    let address = normalize_address("address", address)?;
    table
        .get(&layout::suppression_key(workspace_id, &address))
        .await?
        .map(|item| suppression_from_item(&item))
        .transpose()
}

/// Whether the workspace must not email `address`.
pub async fn is_suppressed(
    table: &dyn Table,
    workspace_id: &str,
    address: &str,
) -> DomainResult<bool> {
    Ok(get_suppression(table, workspace_id, address)
        .await?
        .is_some())
}

/// A page of at most `limit` suppressions (1 to [`MAX_PAGE_SIZE`]) after `cursor`, by address.
pub async fn list_suppressions(
    table: &dyn Table,
    workspace_id: &str,
    cursor: Option<&str>,
    limit: u32,
) -> DomainResult<SuppressionPage> {
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(DomainError::invalid(
            "limit",
            format!("must be from 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let query = Query::on_gsi1(layout::suppressions_gsi1_pk(workspace_id))
        .limit(limit)
        .after(cursor.map(|cursor| Cursor(cursor.to_string())));
    let page = table.query(query).await?;
    Ok(SuppressionPage {
        suppressions: page
            .items
            .iter()
            .map(suppression_from_item)
            .collect::<DomainResult<_>>()?,
        next_cursor: page.cursor.map(|cursor| cursor.0),
    })
}

/// Lets the workspace email `address` again; returns the removed entry, `DomainError::NotFound` when the
/// address was not suppressed.
pub async fn remove_suppression(
    table: &dyn Table,
    workspace_id: &str,
    address: &str,
) -> DomainResult<Suppression> {
    let address = normalize_address("address", address)?;
    table
        .delete(&layout::suppression_key(workspace_id, &address), None)
        .await?
        .map(|item| suppression_from_item(&item))
        .transpose()?
        .ok_or_else(|| DomainError::NotFound(format!("suppressed address {address:?}")))
}

fn suppression_from_item(item: &Item) -> DomainResult<Suppression> {
    let reason = required_s(item, attr::REASON)?;
    Ok(Suppression {
        address: required_s(item, attr::ADDRESS)?.to_string(),
        reason: Reason::parse(reason)
            .ok_or_else(|| corrupt(item, &format!("has an unknown reason {reason:?}")))?,
        suppressed_at: required_time(item, attr::SUPPRESSED_AT)?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tern_embedded::Db;
    use tern_embedded::table::SqliteTable;

    use super::*;

    fn table() -> Arc<dyn Table> {
        Arc::new(SqliteTable::new(Db::in_memory().unwrap()).unwrap())
    }

    fn at() -> Timestamp {
        "2026-03-01T09:00:00Z".parse().unwrap()
    }

    #[tokio::test]
    async fn addresses_are_suppressed_case_insensitively_and_removed() {
        let table = table();
        let table = table.as_ref();
        let entry = suppress(table, "ws", " Ada@Example.COM ", Reason::Bounce, at())
            .await
            .unwrap();
        assert_eq!(entry.address, "ada@example.com");
        assert!(is_suppressed(table, "ws", "ada@example.com").await.unwrap());
        assert!(is_suppressed(table, "ws", "ADA@example.com").await.unwrap());
        assert!(
            !is_suppressed(table, "other", "ada@example.com")
                .await
                .unwrap()
        );
        let removed = remove_suppression(table, "ws", "Ada@example.com")
            .await
            .unwrap();
        assert_eq!(removed, entry);
        assert!(!is_suppressed(table, "ws", "ada@example.com").await.unwrap());
        assert!(matches!(
            remove_suppression(table, "ws", "ada@example.com").await,
            Err(DomainError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn the_list_is_paged_by_address() {
        let table = table();
        let table = table.as_ref();
        for address in ["c@example.com", "a@example.com", "b@example.com"] {
            suppress(table, "ws", address, Reason::Manual, at())
                .await
                .unwrap();
        }
        let first = list_suppressions(table, "ws", None, 2).await.unwrap();
        let cursor = first.next_cursor.clone().expect("a cursor");
        let second = list_suppressions(table, "ws", Some(&cursor), 2)
            .await
            .unwrap();
        let addresses: Vec<String> = first
            .suppressions
            .iter()
            .chain(&second.suppressions)
            .map(|s| s.address.clone())
            .collect();
        assert_eq!(
            addresses,
            ["a@example.com", "b@example.com", "c@example.com"]
        );
    }

    #[tokio::test]
    async fn a_malformed_address_is_named() {
        let table = table();
        let error = suppress(table.as_ref(), "ws", "not an address", Reason::Manual, at())
            .await
            .unwrap_err();
        assert!(matches!(error, DomainError::Invalid { field, .. } if field == "address"));
    }
}
