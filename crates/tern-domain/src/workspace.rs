//! Workspaces and their API keys.
//!
//! A workspace is one tenant: its own profiles, events, segments and journeys. It is reached with two kinds
//! of key, both created with the workspace and shown in plaintext exactly once:
//! - a write key (`tw_…`) for ingestion, sent Segment-style as the HTTP Basic user name;
//! - an admin key (`ta_…`) for everything else, sent as `Authorization: Bearer <key>`.
//!
//! Keys are stored only as their SHA-256, as the partition key of one item per key (see [`crate::layout`]).

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tern_ports::table::{GSI1_PK, GSI1_SK};
use tern_ports::{Clock, Condition, Item, PortError, Query, Table, TransactOp};

use crate::error::{DomainError, DomainResult};
use crate::layout;
use crate::secret::{random_alphanumeric, random_lowercase, sha256_hex};
use crate::stored::{corrupt, required_s, required_time};

/// Random characters after the `ws_` prefix of a workspace id (≈ 83 bits: ids only need to be unique).
const WORKSPACE_ID_RANDOM_CHARS: usize = 16;
/// Random characters after a key's prefix: 32 of `[A-Za-z0-9]` ≈ 190 bits, well above the 128 a secret needs.
const KEY_RANDOM_CHARS: usize = 32;
/// The longest workspace name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest presented key worth looking up; anything longer is not a Tern key.
const MAX_PRESENTED_KEY_LEN: usize = 256;

const ATTR_WORKSPACE_ID: &str = "workspace_id";
const ATTR_NAME: &str = "name";
const ATTR_CREATED_AT: &str = "created_at";
const ATTR_KIND: &str = "kind";
const ATTR_ENTITY: &str = "entity";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

/// What a key lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Send events (ingestion) to one workspace.
    Write,
    /// Administer one workspace.
    Admin,
}

impl KeyKind {
    pub const ALL: [KeyKind; 2] = [KeyKind::Write, KeyKind::Admin];

    /// The recognizable start of every key of this kind, so that a leaked key can be identified (and secret
    /// scanners can match it) and a key pasted in the wrong place is rejected without a lookup.
    pub const fn prefix(self) -> &'static str {
        match self {
            KeyKind::Write => "tw_",
            KeyKind::Admin => "ta_",
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            KeyKind::Write => "write",
            KeyKind::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        KeyKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The kind a presented key claims by its prefix.
    fn claimed_by(presented: &str) -> Option<Self> {
        KeyKind::ALL
            .into_iter()
            .find(|kind| presented.starts_with(kind.prefix()))
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key in plaintext, as handed out once at creation. Its `Debug` form hides the secret part, so that a
/// logged struct never leaks it.
#[derive(Clone, PartialEq, Eq)]
pub struct PlaintextKey(String);

impl PlaintextKey {
    fn generate(kind: KeyKind) -> Self {
        Self(format!(
            "{}{}",
            kind.prefix(),
            random_alphanumeric(KEY_RANDOM_CHARS)
        ))
    }

    /// The key itself, to show to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> String {
        sha256_hex(&self.0)
    }
}

impl fmt::Debug for PlaintextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = KeyKind::claimed_by(&self.0).map_or("", KeyKind::prefix);
        write!(f, "PlaintextKey({prefix}<redacted>)")
    }
}

/// A new workspace with the plaintext of its keys, which are not retrievable afterwards.
#[derive(Debug, Clone)]
pub struct CreatedWorkspace {
    pub workspace: Workspace,
    pub write_key: PlaintextKey,
    pub admin_key: PlaintextKey,
}

/// What an authenticated key grants: one kind of access to one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    pub workspace_id: String,
    pub kind: KeyKind,
}

/// Creates a workspace named `name` with a fresh write key and admin key.
///
/// The workspace item and both key items are written in one transaction, each only if absent, so a workspace
/// never exists without its keys and a key never overwrites another.
pub async fn create_workspace(
    table: &dyn Table,
    clock: &dyn Clock,
    name: &str,
) -> DomainResult<CreatedWorkspace> {
    let name = validate_name(name)?;
    let workspace = Workspace {
        id: format!("ws_{}", random_lowercase(WORKSPACE_ID_RANDOM_CHARS)),
        name,
        created_at: clock.now(),
    };
    let write_key = PlaintextKey::generate(KeyKind::Write);
    let admin_key = PlaintextKey::generate(KeyKind::Admin);

    let ops = vec![
        put_if_absent(workspace_item(&workspace)),
        put_if_absent(key_item(&workspace, KeyKind::Write, &write_key)),
        put_if_absent(key_item(&workspace, KeyKind::Admin, &admin_key)),
    ];
    table
        .transact_write(ops)
        .await
        .map_err(|error| match error {
            PortError::TransactionCanceled { .. } => DomainError::Conflict(
                "a generated workspace id or key exists already; try again".into(),
            ),
            other => DomainError::Port(other),
        })?;
    Ok(CreatedWorkspace {
        workspace,
        write_key,
        admin_key,
    })
}

/// The workspace with this id, if any.
pub async fn get_workspace(
    table: &dyn Table,
    workspace_id: &str,
) -> DomainResult<Option<Workspace>> {
    let item = table.get(&layout::workspace_key(workspace_id)).await?;
    item.as_ref().map(workspace_from_item).transpose()
}

/// Every workspace, oldest first.
pub async fn list_workspaces(table: &dyn Table) -> DomainResult<Vec<Workspace>> {
    let mut workspaces = Vec::new();
    let mut cursor = None;
    loop {
        let page = table
            .query(Query::on_gsi1(layout::WORKSPACES_GSI1_PK).after(cursor))
            .await?;
        for item in &page.items {
            workspaces.push(workspace_from_item(item)?);
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(workspaces),
        }
    }
}

/// Finds what `presented` grants, or `None` when it is not a live key.
///
/// The key is looked up by its SHA-256 instead of being compared with stored keys, and that is why no
/// constant-time comparison is needed: the time a lookup takes can depend only on the hash of the attacker's
/// own guess, and learning how far that hash matches a stored one reveals nothing about the stored key (a
/// hash cannot be steered towards a chosen prefix without inverting SHA-256). With ≈ 190 random bits per key,
/// guessing is out of reach as well.
pub async fn authenticate(table: &dyn Table, presented: &str) -> DomainResult<Option<KeyGrant>> {
    // Anything that is not shaped like one of our keys cannot match; rejecting it here saves a read.
    if presented.len() > MAX_PRESENTED_KEY_LEN || KeyKind::claimed_by(presented).is_none() {
        return Ok(None);
    }
    let key = layout::api_key_key(&sha256_hex(presented));
    let Some(item) = table.get(&key).await? else {
        return Ok(None);
    };
    let workspace_id = required_s(&item, ATTR_WORKSPACE_ID)?.to_string();
    let kind_text = required_s(&item, ATTR_KIND)?;
    let kind = KeyKind::parse(kind_text)
        .ok_or_else(|| corrupt(&item, &format!("has an unknown kind {kind_text:?}")))?;
    Ok(Some(KeyGrant { workspace_id, kind }))
}

fn validate_name(name: &str) -> DomainResult<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(DomainError::invalid(
            "name",
            "a workspace name must not be empty",
        ));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(DomainError::invalid(
            "name",
            format!("a workspace name has at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "name",
            "a workspace name must not contain control characters",
        ));
    }
    Ok(trimmed.to_string())
}

fn put_if_absent(item: Item) -> TransactOp {
    TransactOp::Put {
        item,
        condition: Some(Condition::NotExists),
    }
}

fn workspace_item(workspace: &Workspace) -> Item {
    Item::new(&layout::workspace_key(&workspace.id))
        .with(ATTR_ENTITY, "workspace")
        .with(ATTR_WORKSPACE_ID, workspace.id.as_str())
        .with(ATTR_NAME, workspace.name.as_str())
        .with(ATTR_CREATED_AT, workspace.created_at.to_string())
        .with(GSI1_PK, layout::WORKSPACES_GSI1_PK)
        .with(
            GSI1_SK,
            layout::workspace_gsi1_sk(workspace.created_at, &workspace.id),
        )
}

fn key_item(workspace: &Workspace, kind: KeyKind, key: &PlaintextKey) -> Item {
    Item::new(&layout::api_key_key(&key.hash()))
        .with(ATTR_ENTITY, "api_key")
        .with(ATTR_WORKSPACE_ID, workspace.id.as_str())
        .with(ATTR_KIND, kind.as_str())
        .with(ATTR_CREATED_AT, workspace.created_at.to_string())
}

fn workspace_from_item(item: &Item) -> DomainResult<Workspace> {
    Ok(Workspace {
        id: required_s(item, ATTR_WORKSPACE_ID)?.to_string(),
        name: required_s(item, ATTR_NAME)?.to_string(),
        created_at: required_time(item, ATTR_CREATED_AT)?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jiff::SignedDuration;
    use tern_embedded::Db;
    use tern_embedded::table::SqliteTable;
    use tern_ports::VirtualClock;

    use super::*;

    fn table() -> Arc<dyn Table> {
        Arc::new(SqliteTable::new(Db::in_memory().unwrap()).unwrap())
    }

    fn clock() -> VirtualClock {
        VirtualClock::new("2026-03-01T09:00:00Z".parse().unwrap())
    }

    #[tokio::test]
    async fn created_keys_have_their_prefix_and_enough_randomness() {
        let table = table();
        let created = create_workspace(table.as_ref(), &clock(), "Acme")
            .await
            .unwrap();
        let write = created.write_key.expose();
        let admin = created.admin_key.expose();
        assert!(write.starts_with("tw_"), "{write}");
        assert!(admin.starts_with("ta_"), "{admin}");
        for key in [write, admin] {
            let random = &key[3..];
            assert_eq!(random.len(), KEY_RANDOM_CHARS);
            assert!(random.chars().all(|c| c.is_ascii_alphanumeric()));
            // 62^32 possibilities: log2 ≈ 190.5 bits.
            assert!((random.len() as f64) * 62f64.log2() >= 128.0);
        }
        assert_ne!(write[3..], admin[3..]);
        assert!(created.workspace.id.starts_with("ws_"));
        assert_eq!(created.workspace.id.len(), 3 + WORKSPACE_ID_RANDOM_CHARS);
        assert_eq!(created.workspace.name, "Acme");
        assert_eq!(created.workspace.created_at, clock().now());
    }

    #[tokio::test]
    async fn each_key_authenticates_as_its_kind_for_its_workspace() {
        let table = table();
        let created = create_workspace(table.as_ref(), &clock(), "Acme")
            .await
            .unwrap();
        let write = authenticate(table.as_ref(), created.write_key.expose())
            .await
            .unwrap();
        let admin = authenticate(table.as_ref(), created.admin_key.expose())
            .await
            .unwrap();
        assert_eq!(
            write,
            Some(KeyGrant {
                workspace_id: created.workspace.id.clone(),
                kind: KeyKind::Write
            })
        );
        assert_eq!(
            admin,
            Some(KeyGrant {
                workspace_id: created.workspace.id.clone(),
                kind: KeyKind::Admin
            })
        );
    }

    #[tokio::test]
    async fn unknown_malformed_and_altered_keys_do_not_authenticate() {
        let table = table();
        let created = create_workspace(table.as_ref(), &clock(), "Acme")
            .await
            .unwrap();
        let mut altered = created.admin_key.expose().to_string();
        let last = altered.pop().unwrap();
        altered.push(if last == 'a' { 'b' } else { 'a' });
        let too_long = format!("ta_{}", "x".repeat(1000));
        let strangers = [
            "",
            "ta_",
            "tw_nope",
            "Bearer x",
            "ws_abc",
            too_long.as_str(),
            altered.as_str(),
        ];
        for presented in strangers {
            assert_eq!(
                authenticate(table.as_ref(), presented).await.unwrap(),
                None,
                "{presented:?}"
            );
        }
    }

    #[tokio::test]
    async fn only_hashes_of_keys_are_stored() {
        let table = table();
        let created = create_workspace(table.as_ref(), &clock(), "Acme")
            .await
            .unwrap();
        for key in [&created.write_key, &created.admin_key] {
            let stored = table
                .get(&layout::api_key_key(&sha256_hex(key.expose())))
                .await
                .unwrap()
                .unwrap();
            let serialized = serde_json::to_string(&stored).unwrap();
            assert!(
                !serialized.contains(key.expose()),
                "plaintext stored: {serialized}"
            );
            assert!(
                !serialized.contains(&key.expose()[3..]),
                "secret part stored: {serialized}"
            );
        }
        let debug = format!("{created:?}");
        assert!(
            !debug.contains(&created.admin_key.expose()[3..]),
            "Debug leaks the key: {debug}"
        );
        assert!(debug.contains("ta_<redacted>"), "{debug}");
    }

    #[tokio::test]
    async fn workspaces_are_listed_oldest_first_and_read_back_by_id() {
        let table = table();
        let clock = clock();
        let first = create_workspace(table.as_ref(), &clock, "First")
            .await
            .unwrap()
            .workspace;
        clock.advance(SignedDuration::from_secs(5));
        let second = create_workspace(table.as_ref(), &clock, "Second")
            .await
            .unwrap()
            .workspace;
        assert_eq!(
            list_workspaces(table.as_ref()).await.unwrap(),
            vec![first.clone(), second]
        );
        assert_eq!(
            get_workspace(table.as_ref(), &first.id).await.unwrap(),
            Some(first)
        );
        assert_eq!(
            get_workspace(table.as_ref(), "ws_missing").await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn list_is_empty_before_any_workspace() {
        assert!(list_workspaces(table().as_ref()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn invalid_names_are_refused_with_the_field_named() {
        let table = table();
        let long = "n".repeat(MAX_NAME_CHARS + 1);
        for name in ["", "   ", "bad\nname", long.as_str()] {
            let error = create_workspace(table.as_ref(), &clock(), name)
                .await
                .unwrap_err();
            assert!(
                matches!(&error, DomainError::Invalid { field, .. } if field == "name"),
                "{name:?}: {error}"
            );
        }
        assert!(
            list_workspaces(table.as_ref()).await.unwrap().is_empty(),
            "nothing written"
        );
        let trimmed = create_workspace(table.as_ref(), &clock(), "  Spaced  ")
            .await
            .unwrap();
        assert_eq!(trimmed.workspace.name, "Spaced");
    }

    #[tokio::test]
    async fn a_key_item_of_unknown_kind_is_reported_as_corrupt() {
        let table = table();
        let presented = "ta_corruptcorruptcorruptcorruptcorr";
        let item = Item::new(&layout::api_key_key(&sha256_hex(presented)))
            .with(ATTR_WORKSPACE_ID, "ws_x")
            .with(ATTR_KIND, "superuser");
        table.put(item, None).await.unwrap();
        let error = authenticate(table.as_ref(), presented).await.unwrap_err();
        assert!(
            matches!(error, DomainError::Corrupt(ref m) if m.contains("superuser")),
            "{error}"
        );
    }
}
