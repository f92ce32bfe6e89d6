//! Stored segment definitions: create, update (versioned), read, list, delete, and the index of a
//! workspace's active segments, cached in-process for a few seconds.
//!
//! Every save keeps its version as an immutable item and replaces the segment's current item, which holds
//! the latest version (see `layout.rs`). A save is validated alone (`SegmentDefinition`) and together with
//! the workspace's other segments (`SegmentIndex::build`: references must exist and form no cycle), so the
//! stored set always indexes.

use std::sync::{Arc, LazyLock, Mutex, Weak};

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tern_ports::table::VERSION;
use tern_ports::{Condition, Item, PortError, Ports, Query, Table, TransactOp};
use thiserror::Error;

use super::{DefinitionError, SegmentDefinition, SegmentIndex};
use crate::stored::{corrupt, required_s, required_time};
use crate::{DomainError, DomainResult, layout};

/// How long a workspace's index is reused before the definitions are read again. Writes made by this
/// process invalidate it at once; other processes see them within this time.
pub const INDEX_TTL: SignedDuration = SignedDuration::from_secs(5);
/// The longest segment id.
pub const MAX_SEGMENT_ID_CHARS: usize = 64;

mod attr {
    pub const SEGMENT_ID: &str = "segment_id";
    pub const DEFINITION: &str = "definition";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
}

/// A stored segment: its latest definition and version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSegment {
    pub id: String,
    /// 1 for the first save; each update adds one.
    pub version: i64,
    pub definition: SegmentDefinition,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Why a segment could not be saved or deleted.
#[derive(Debug, Error)]
pub enum SegmentError {
    /// The definition, or the set of segments it would make, breaks a rule; every error names its path.
    #[error("{}", join_errors(.0))]
    Invalid(Vec<DefinitionError>),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<PortError> for SegmentError {
    fn from(error: PortError) -> Self {
        SegmentError::Domain(error.into())
    }
}

fn join_errors(errors: &[DefinitionError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("; ")
}

/// A segment id is 1 to 64 ASCII letters, digits, `-`, `_` or `.`: it appears in URLs, keys and other
/// segments' `segment` conditions.
pub fn validate_segment_id(id: &str) -> Result<(), DefinitionError> {
    let reason = if id.is_empty() {
        "must not be empty".to_string()
    } else if id.chars().count() > MAX_SEGMENT_ID_CHARS {
        format!("must be at most {MAX_SEGMENT_ID_CHARS} characters")
    } else if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        format!("{bad:?} is not allowed: use letters, digits, '-', '_' and '.'")
    } else {
        return Ok(());
    };
    Err(DefinitionError::new("id", reason))
}

/// Saves a new segment (version 1). `Conflict` when the id is taken.
pub async fn create_segment(
    ports: &Ports,
    workspace_id: &str,
    segment_id: &str,
    definition: SegmentDefinition,
) -> Result<StoredSegment, SegmentError> {
    validate_segment_id(segment_id).map_err(|error| SegmentError::Invalid(vec![error]))?;
    let table = ports.table.as_ref();
    let mut segments = list_segments(table, workspace_id).await?;
    if segments.iter().any(|segment| segment.id == segment_id) {
        return Err(DomainError::Conflict(format!("segment {segment_id} already exists")).into());
    }
    let now = ports.clock.now();
    let stored = StoredSegment {
        id: segment_id.to_string(),
        version: 1,
        definition,
        created_at: now,
        updated_at: now,
    };
    segments.push(stored.clone());
    check_set(&segments)?;
    save(table, workspace_id, &stored, Condition::NotExists).await?;
    invalidate_index(ports, workspace_id);
    Ok(stored)
}

/// Saves a new version of an existing segment. `NotFound` when it does not exist; `Conflict` when another
/// save of it happened since it was read.
pub async fn update_segment(
    ports: &Ports,
    workspace_id: &str,
    segment_id: &str,
    definition: SegmentDefinition,
) -> Result<StoredSegment, SegmentError> {
    let table = ports.table.as_ref();
    let mut segments = list_segments(table, workspace_id).await?;
    let Some(current) = segments.iter_mut().find(|segment| segment.id == segment_id) else {
        return Err(not_found(segment_id).into());
    };
    let previous_version = current.version;
    current.version += 1;
    current.definition = definition;
    current.updated_at = ports.clock.now();
    let stored = current.clone();
    check_set(&segments)?;
    save(
        table,
        workspace_id,
        &stored,
        Condition::VersionMatches(previous_version),
    )
    .await?;
    invalidate_index(ports, workspace_id);
    Ok(stored)
}

/// The latest version of a segment.
pub async fn get_segment(
    table: &dyn Table,
    workspace_id: &str,
    segment_id: &str,
) -> DomainResult<StoredSegment> {
    let item = table
        .get(&layout::segment_key(workspace_id, segment_id))
        .await?
        .ok_or_else(|| not_found(segment_id))?;
    segment_of(&item)
}

/// One saved version of a segment.
pub async fn get_segment_version(
    table: &dyn Table,
    workspace_id: &str,
    segment_id: &str,
    version: i64,
) -> DomainResult<StoredSegment> {
    let item = table
        .get(&layout::segment_version_key(
            workspace_id,
            segment_id,
            version,
        ))
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("segment {segment_id} version {version}")))?;
    segment_of(&item)
}

/// Every segment of the workspace (latest versions), by id.
pub async fn list_segments(
    table: &dyn Table,
    workspace_id: &str,
) -> DomainResult<Vec<StoredSegment>> {
    let mut segments = Vec::new();
    let mut cursor = None;
    loop {
        let page = table
            .query(
                Query::new(layout::workspace_pk(workspace_id))
                    .prefix(layout::SEGMENT_SK_PREFIX)
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            segments.push(segment_of(item)?);
        }
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(segments);
        }
    }
}

/// Deletes a segment (its saved versions stay). Refused while another segment references it.
pub async fn delete_segment(
    ports: &Ports,
    workspace_id: &str,
    segment_id: &str,
) -> Result<(), SegmentError> {
    let table = ports.table.as_ref();
    let mut segments = list_segments(table, workspace_id).await?;
    let before = segments.len();
    segments.retain(|segment| segment.id != segment_id);
    if segments.len() == before {
        return Err(not_found(segment_id).into());
    }
    check_set(&segments)?;
    let key = layout::segment_key(workspace_id, segment_id);
    match table.delete(&key, Some(Condition::Exists)).await {
        Ok(_) => {}
        Err(PortError::ConditionFailed) => return Err(not_found(segment_id).into()),
        Err(error) => return Err(error.into()),
    }
    invalidate_index(ports, workspace_id);
    Ok(())
}

fn not_found(segment_id: &str) -> DomainError {
    DomainError::NotFound(format!("segment {segment_id}"))
}

/// Indexes a whole set of segments, which is what saving one must keep possible.
fn check_set(segments: &[StoredSegment]) -> Result<SegmentIndex, SegmentError> {
    let pairs: Vec<(String, SegmentDefinition)> = segments
        .iter()
        .map(|segment| (segment.id.clone(), segment.definition.clone()))
        .collect();
    SegmentIndex::build(&pairs).map_err(SegmentError::Invalid)
}

/// Writes the version item and the current item together; `current_condition` guards the current item.
async fn save(
    table: &dyn Table,
    workspace_id: &str,
    segment: &StoredSegment,
    current_condition: Condition,
) -> Result<(), SegmentError> {
    let current = item_of(&layout::segment_key(workspace_id, &segment.id), segment)?;
    let version = item_of(
        &layout::segment_version_key(workspace_id, &segment.id, segment.version),
        segment,
    )?;
    let ops = vec![
        TransactOp::Put {
            item: current,
            condition: Some(current_condition),
        },
        TransactOp::Put {
            item: version,
            condition: Some(Condition::NotExists),
        },
    ];
    match table.transact_write(ops).await {
        Ok(()) => Ok(()),
        Err(PortError::TransactionCanceled { .. }) => Err(DomainError::Conflict(format!(
            "segment {} was saved by someone else meanwhile; read it again and retry",
            segment.id
        ))
        .into()),
        Err(error) => Err(error.into()),
    }
}

fn item_of(key: &tern_ports::Key, segment: &StoredSegment) -> DomainResult<Item> {
    let definition = serde_json::to_string(&segment.definition.to_value())
        .map_err(|e| DomainError::invalid("definition", format!("cannot be serialized: {e}")))?;
    Ok(Item::new(key)
        .with(attr::SEGMENT_ID, segment.id.as_str())
        .with(VERSION, segment.version)
        .with(attr::DEFINITION, definition)
        .with(attr::CREATED_AT, segment.created_at.to_string())
        .with(attr::UPDATED_AT, segment.updated_at.to_string()))
}

fn segment_of(item: &Item) -> DomainResult<StoredSegment> {
    let text = required_s(item, attr::DEFINITION)?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| corrupt(item, &format!("has a definition that is not JSON: {e}")))?;
    let definition = SegmentDefinition::from_value(&value).map_err(|errors| {
        corrupt(
            item,
            &format!("has an invalid definition: {}", join_errors(&errors)),
        )
    })?;
    Ok(StoredSegment {
        id: required_s(item, attr::SEGMENT_ID)?.to_string(),
        version: item
            .get_i64(VERSION)
            .ok_or_else(|| corrupt(item, "lacks the number attribute \"version\""))?,
        definition,
        created_at: required_time(item, attr::CREATED_AT)?,
        updated_at: required_time(item, attr::UPDATED_AT)?,
    })
}

/// One cached index. The table is held weakly: while the entry lives, no other table can take its address,
/// so an entry never answers for another engine (tests run many in one process).
struct CachedIndex {
    table: Weak<dyn Table>,
    workspace_id: String,
    loaded_at: Timestamp,
    index: Arc<SegmentIndex>,
}

impl CachedIndex {
    fn answers(&self, ports: &Ports, workspace_id: &str, now: Timestamp) -> bool {
        self.is_for(ports, workspace_id)
            && self.loaded_at <= now
            && now < self.loaded_at + INDEX_TTL
    }

    fn is_for(&self, ports: &Ports, workspace_id: &str) -> bool {
        self.workspace_id == workspace_id
            && self.table.strong_count() > 0
            && std::ptr::addr_eq(self.table.as_ptr(), Arc::as_ptr(&ports.table))
    }
}

static INDEX_CACHE: LazyLock<Mutex<Vec<CachedIndex>>> = LazyLock::new(|| Mutex::new(Vec::new()));

fn cache() -> std::sync::MutexGuard<'static, Vec<CachedIndex>> {
    // A panic while holding the lock leaves only a cache behind; keep using it.
    INDEX_CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The index of the workspace's active segments, read from the stored definitions at most every
/// [`INDEX_TTL`] (by the clock port) per process.
pub async fn load_index(ports: &Ports, workspace_id: &str) -> DomainResult<Arc<SegmentIndex>> {
    let now = ports.clock.now();
    if let Some(hit) = cache()
        .iter()
        .find(|entry| entry.answers(ports, workspace_id, now))
    {
        return Ok(hit.index.clone());
    }
    let segments = list_segments(ports.table.as_ref(), workspace_id).await?;
    let index = Arc::new(match check_set(&segments) {
        Ok(index) => index,
        Err(error) => {
            return Err(DomainError::Corrupt(format!(
                "the stored segments of workspace {workspace_id} do not index: {error}"
            )));
        }
    });
    let mut entries = cache();
    entries.retain(|entry| entry.table.strong_count() > 0 && !entry.is_for(ports, workspace_id));
    entries.push(CachedIndex {
        table: Arc::downgrade(&ports.table),
        workspace_id: workspace_id.to_string(),
        loaded_at: now,
        index: index.clone(),
    });
    Ok(index)
}

/// Forgets the cached index of a workspace, after this process changed its segments.
pub fn invalidate_index(ports: &Ports, workspace_id: &str) {
    cache().retain(|entry| !entry.is_for(ports, workspace_id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_ids_are_checked() {
        assert!(validate_segment_id("recent-big_spenders.v2").is_ok());
        assert_eq!(
            validate_segment_id("").unwrap_err().reason,
            "must not be empty"
        );
        let error = validate_segment_id("a#b").unwrap_err();
        assert_eq!(error.path, "id");
        assert!(error.reason.contains("'#'"), "{}", error.reason);
        assert!(validate_segment_id(&"x".repeat(65)).is_err());
        assert!(validate_segment_id(&"x".repeat(64)).is_ok());
    }
}
