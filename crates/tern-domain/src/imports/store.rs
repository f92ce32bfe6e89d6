//! The import record: one item per import (status, counts, times) and one item per kept row error, in the
//! workspace's partition (see [`crate::layout`]).
//!
//! Every write to the record after its creation is conditioned on its `version` and bumps it, so that two
//! runs of the same import (a redelivered message while the first run still works) cannot interleave: the
//! later one takes over and the earlier one stops at its next checkpoint.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tern_ports::table::VERSION;
use tern_ports::{
    AttrValue, Condition, Cursor, Item, OutMessage, PortError, Ports, Query, Table, Update,
    UploadTarget, WriteOp,
};

use super::rows::RowError;
use crate::error::{DomainError, DomainResult};
use crate::layout;
use crate::secret::random_lowercase;
use crate::stored::{corrupt, optional_time, required_s, required_time};

/// The logical queue import runs are requested on.
pub const IMPORTS_QUEUE: &str = "imports";
/// Every import id starts with this.
pub const IMPORT_ID_PREFIX: &str = "imp_";
/// Random characters after the prefix (≈ 103 bits).
const IMPORT_ID_RANDOM_CHARS: usize = 20;
/// How long the upload target handed out with a new import stays valid.
pub const UPLOAD_EXPIRY: Duration = Duration::from_secs(60 * 60);
/// The longest file name recorded with an import, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;
/// Row errors kept per import; later broken rows are still counted in `failed`. This bounds what a file
/// of garbage can write to the table.
pub const MAX_KEPT_ROW_ERRORS: u64 = 10_000;
/// The most row errors one page of [`list_row_errors`] returns.
pub const MAX_ERRORS_PAGE: u32 = 1000;

/// Where an import stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// Created; the file is to be uploaded to the upload target, then the import started.
    AwaitingUpload,
    /// Started; a worker will pick it up.
    Queued,
    /// A worker is reading the file.
    Running,
    /// Every row was read: good rows imported, broken rows reported.
    Completed,
    /// The file could not be imported at all (no header, a broken header, the file gone); `failure` says why.
    Failed,
}

impl ImportStatus {
    pub const ALL: [ImportStatus; 5] = [
        ImportStatus::AwaitingUpload,
        ImportStatus::Queued,
        ImportStatus::Running,
        ImportStatus::Completed,
        ImportStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::AwaitingUpload => "awaiting_upload",
            ImportStatus::Queued => "queued",
            ImportStatus::Running => "running",
            ImportStatus::Completed => "completed",
            ImportStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        ImportStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Completed or failed: nothing will change any more.
    pub fn is_finished(self) -> bool {
        matches!(self, ImportStatus::Completed | ImportStatus::Failed)
    }
}

/// How far an import got. Rows count data rows (not the header).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportCounts {
    /// Data rows read so far.
    pub rows_read: u64,
    /// Rows that changed a profile (stored as new identify events).
    pub imported: u64,
    /// Good rows already imported before (same content), which changed nothing.
    pub unchanged: u64,
    /// Broken rows, skipped and reported.
    pub failed: u64,
    /// Bytes of the file read so far.
    pub bytes_read: u64,
    /// The uploaded file's size, known once the import is started.
    pub file_size: Option<u64>,
}

/// One import, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Import {
    pub id: String,
    #[serde(skip)]
    pub workspace_id: String,
    pub status: ImportStatus,
    pub file_name: Option<String>,
    pub counts: ImportCounts,
    pub created_at: Timestamp,
    pub queued_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// Why a failed import failed.
    pub failure: Option<String>,
    /// Row errors stored so far (at most [`MAX_KEPT_ROW_ERRORS`]).
    #[serde(skip)]
    pub errors_kept: u64,
    /// The optimistic-concurrency version of the record.
    #[serde(skip)]
    pub version: i64,
}

/// A new import and where to upload its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedImport {
    pub import: Import,
    pub upload: UploadTarget,
}

/// The body of a message on [`IMPORTS_QUEUE`]: run (or resume) this import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportMessage {
    pub workspace_id: String,
    pub import_id: String,
}

/// One page of row errors, in row order; `cursor` is `Some` when more may follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowErrorPage {
    pub errors: Vec<RowError>,
    pub cursor: Option<Cursor>,
}

const ATTR_ENTITY: &str = "entity";
const ATTR_IMPORT_ID: &str = "import_id";
const ATTR_STATUS: &str = "status";
const ATTR_FILE_NAME: &str = "file_name";
const ATTR_CREATED_AT: &str = "created_at";
const ATTR_QUEUED_AT: &str = "queued_at";
const ATTR_STARTED_AT: &str = "started_at";
const ATTR_FINISHED_AT: &str = "finished_at";
const ATTR_UPDATED_AT: &str = "updated_at";
const ATTR_FAILURE: &str = "failure";
const ATTR_ROWS_READ: &str = "rows_read";
const ATTR_IMPORTED: &str = "imported";
const ATTR_UNCHANGED: &str = "unchanged";
const ATTR_FAILED: &str = "failed";
const ATTR_BYTES_READ: &str = "bytes_read";
const ATTR_FILE_SIZE: &str = "file_size";
const ATTR_ERRORS_KEPT: &str = "errors_kept";
const ATTR_ROW: &str = "row";
const ATTR_COLUMN: &str = "column";
const ATTR_REASON: &str = "reason";

/// The blob key the file of an import is uploaded to.
pub fn upload_key(workspace_id: &str, import_id: &str) -> String {
    format!("imports/{workspace_id}/{import_id}.csv")
}

/// True for text shaped like an id [`create_import`] hands out; anything else names no import.
pub fn is_import_id(text: &str) -> bool {
    text.strip_prefix(IMPORT_ID_PREFIX).is_some_and(|random| {
        random.len() == IMPORT_ID_RANDOM_CHARS
            && random
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Creates an import awaiting its upload, and the target to upload the file to (valid for an hour).
pub async fn create_import(
    ports: &Ports,
    workspace_id: &str,
    file_name: Option<&str>,
) -> DomainResult<CreatedImport> {
    let file_name = file_name.map(validate_file_name).transpose()?;
    let now = ports.clock.now();
    let import = Import {
        id: format!(
            "{IMPORT_ID_PREFIX}{}",
            random_lowercase(IMPORT_ID_RANDOM_CHARS)
        ),
        workspace_id: workspace_id.to_string(),
        status: ImportStatus::AwaitingUpload,
        file_name,
        counts: ImportCounts::default(),
        created_at: now,
        queued_at: None,
        started_at: None,
        finished_at: None,
        updated_at: now,
        failure: None,
        errors_kept: 0,
        version: 1,
    };
    ports
        .table
        .put(import_item(&import), Some(Condition::NotExists))
        .await
        .map_err(|error| match error {
            PortError::ConditionFailed => {
                DomainError::Conflict("a generated import id exists already; try again".into())
            }
            other => other.into(),
        })?;
    let upload = ports
        .blobs
        .upload_target(&upload_key(workspace_id, &import.id), UPLOAD_EXPIRY)
        .await?;
    Ok(CreatedImport { import, upload })
}

/// The import with this id in this workspace, if any.
pub async fn get_import(
    table: &dyn Table,
    workspace_id: &str,
    import_id: &str,
) -> DomainResult<Option<Import>> {
    if !is_import_id(import_id) {
        return Ok(None);
    }
    let item = table
        .get(&layout::import_key(workspace_id, import_id))
        .await?;
    item.as_ref()
        .map(|item| import_from_item(workspace_id, item))
        .transpose()
}

/// Starts an uploaded import: checks that the file is there, requests a run on [`IMPORTS_QUEUE`] and
/// marks the import `queued`.
///
/// Conflict when the import was started before or nothing was uploaded. The message is sent before the
/// status changes, so that a failure in between leaves the import startable again; a run that finds the
/// import still awaiting its upload leaves the message for later (see [`super::run_import`]).
pub async fn start_import(
    ports: &Ports,
    workspace_id: &str,
    import_id: &str,
) -> DomainResult<Import> {
    let import = get_import(ports.table.as_ref(), workspace_id, import_id)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("import {import_id}")))?;
    if import.status != ImportStatus::AwaitingUpload {
        return Err(already_started(&import));
    }
    let file_size = uploaded_size(ports, workspace_id, import_id)
        .await?
        .ok_or_else(|| {
            DomainError::Conflict(format!(
                "nothing was uploaded for import {import_id}: upload the file to the import's upload URL first"
            ))
        })?;
    let message = ImportMessage {
        workspace_id: workspace_id.to_string(),
        import_id: import_id.to_string(),
    };
    let body = serde_json::to_string(&message)
        .map_err(|error| DomainError::Corrupt(format!("an import message: {error}")))?;
    ports
        .queue
        .send_batch(IMPORTS_QUEUE, vec![OutMessage::new(body)])
        .await?;

    let now = ports.clock.now();
    let update = Update::new()
        .set(ATTR_STATUS, ImportStatus::Queued.as_str())
        .set(ATTR_QUEUED_AT, now.to_string())
        .set(ATTR_FILE_SIZE, AttrValue::N(file_size.into()));
    match write(ports.table.as_ref(), &import, update, now).await {
        Ok(stored) => Ok(stored),
        Err(DomainError::Port(PortError::ConditionFailed)) => {
            let current = get_import(ports.table.as_ref(), workspace_id, import_id).await?;
            Err(current.map_or_else(
                || DomainError::NotFound(format!("import {import_id}")),
                |current| already_started(&current),
            ))
        }
        Err(other) => Err(other),
    }
}

fn already_started(import: &Import) -> DomainError {
    DomainError::Conflict(format!(
        "import {} was already started (it is {})",
        import.id,
        import.status.as_str()
    ))
}

/// The size of the uploaded file, or `None` when nothing was uploaded.
async fn uploaded_size(
    ports: &Ports,
    workspace_id: &str,
    import_id: &str,
) -> DomainResult<Option<u64>> {
    let key = upload_key(workspace_id, import_id);
    let page = ports.blobs.list(&key, None, 1).await?;
    Ok(page
        .blobs
        .into_iter()
        .find(|blob| blob.key == key)
        .map(|blob| blob.size))
}

/// One page of an import's row errors in row order, from `cursor` (a page's `cursor`) on.
pub async fn list_row_errors(
    table: &dyn Table,
    workspace_id: &str,
    import_id: &str,
    cursor: Option<Cursor>,
    limit: u32,
) -> DomainResult<RowErrorPage> {
    if !(1..=MAX_ERRORS_PAGE).contains(&limit) {
        return Err(DomainError::invalid(
            "limit",
            format!("must be 1 to {MAX_ERRORS_PAGE}, not {limit}"),
        ));
    }
    let query = Query::new(layout::workspace_pk(workspace_id))
        .prefix(layout::import_errors_sk_prefix(import_id))
        .limit(limit)
        .after(cursor);
    let page = table.query(query).await.map_err(|error| match error {
        PortError::Invalid(message) => DomainError::invalid("cursor", message),
        other => other.into(),
    })?;
    let errors = page
        .items
        .iter()
        .map(row_error_from_item)
        .collect::<DomainResult<Vec<_>>>()?;
    Ok(RowErrorPage {
        errors,
        cursor: page.cursor,
    })
}

/// Stores row errors (idempotently: a row's error has one key, so writing it again changes nothing).
pub(super) async fn put_row_errors(
    table: &dyn Table,
    workspace_id: &str,
    import_id: &str,
    errors: &[RowError],
) -> DomainResult<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let ops = errors
        .iter()
        .map(|error| WriteOp::Put(row_error_item(workspace_id, import_id, error)))
        .collect();
    Ok(table.batch_write(ops).await?)
}

/// Applies `update` to the record if it is still at `import.version`, bumping the version and the update
/// time; returns the record as stored afterwards. `PortError::ConditionFailed` when another writer got there
/// first.
pub(super) async fn write(
    table: &dyn Table,
    import: &Import,
    update: Update,
    now: Timestamp,
) -> DomainResult<Import> {
    let update = update
        .set(VERSION, import.version + 1)
        .set(ATTR_UPDATED_AT, now.to_string());
    let stored = table
        .update(
            &layout::import_key(&import.workspace_id, &import.id),
            update,
            Some(Condition::VersionMatches(import.version)),
        )
        .await?;
    import_from_item(&import.workspace_id, &stored)
}

/// The update that records `counts` and the number of kept row errors.
pub(super) fn progress_update(counts: &ImportCounts, errors_kept: u64) -> Update {
    Update::new()
        .set(ATTR_ROWS_READ, AttrValue::N(counts.rows_read.into()))
        .set(ATTR_IMPORTED, AttrValue::N(counts.imported.into()))
        .set(ATTR_UNCHANGED, AttrValue::N(counts.unchanged.into()))
        .set(ATTR_FAILED, AttrValue::N(counts.failed.into()))
        .set(ATTR_BYTES_READ, AttrValue::N(counts.bytes_read.into()))
        .set(ATTR_ERRORS_KEPT, AttrValue::N(errors_kept.into()))
}

/// The update that moves an import to `status` (and stamps the time that status records).
pub(super) fn status_update(status: ImportStatus, now: Timestamp) -> Update {
    let update = Update::new().set(ATTR_STATUS, status.as_str());
    match status {
        ImportStatus::Running => update.set_if_absent(ATTR_STARTED_AT, now.to_string()),
        ImportStatus::Completed | ImportStatus::Failed => {
            update.set(ATTR_FINISHED_AT, now.to_string())
        }
        ImportStatus::AwaitingUpload | ImportStatus::Queued => update,
    }
}

/// The update that ends an import as failed, saying why.
pub(super) fn failure_update(reason: &str, now: Timestamp) -> Update {
    let mut update = status_update(ImportStatus::Failed, now);
    update.set.push((ATTR_FAILURE.to_string(), reason.into()));
    update
}

fn validate_file_name(name: &str) -> DomainResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid(
            "fileName",
            "must not be empty when given",
        ));
    }
    if name.chars().count() > MAX_FILE_NAME_CHARS {
        return Err(DomainError::invalid(
            "fileName",
            format!("has at most {MAX_FILE_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "fileName",
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

fn import_item(import: &Import) -> Item {
    let mut item = Item::new(&layout::import_key(&import.workspace_id, &import.id))
        .with(ATTR_ENTITY, "import")
        .with(ATTR_IMPORT_ID, import.id.as_str())
        .with(ATTR_STATUS, import.status.as_str())
        .with(ATTR_CREATED_AT, import.created_at.to_string())
        .with(ATTR_UPDATED_AT, import.updated_at.to_string())
        .with(VERSION, import.version);
    if let Some(name) = &import.file_name {
        item.set(ATTR_FILE_NAME, name.as_str());
    }
    for (name, value) in progress_update(&import.counts, import.errors_kept).set {
        item.set(&name, value);
    }
    item
}

fn import_from_item(workspace_id: &str, item: &Item) -> DomainResult<Import> {
    let status_text = required_s(item, ATTR_STATUS)?;
    let status = ImportStatus::parse(status_text)
        .ok_or_else(|| corrupt(item, &format!("has an unknown status {status_text:?}")))?;
    Ok(Import {
        id: required_s(item, ATTR_IMPORT_ID)?.to_string(),
        workspace_id: workspace_id.to_string(),
        status,
        file_name: item.get_s(ATTR_FILE_NAME).map(str::to_string),
        counts: ImportCounts {
            rows_read: count(item, ATTR_ROWS_READ)?,
            imported: count(item, ATTR_IMPORTED)?,
            unchanged: count(item, ATTR_UNCHANGED)?,
            failed: count(item, ATTR_FAILED)?,
            bytes_read: count(item, ATTR_BYTES_READ)?,
            file_size: item
                .get(ATTR_FILE_SIZE)
                .map(|_| count(item, ATTR_FILE_SIZE))
                .transpose()?,
        },
        created_at: required_time(item, ATTR_CREATED_AT)?,
        queued_at: optional_time(item, ATTR_QUEUED_AT)?,
        started_at: optional_time(item, ATTR_STARTED_AT)?,
        finished_at: optional_time(item, ATTR_FINISHED_AT)?,
        updated_at: required_time(item, ATTR_UPDATED_AT)?,
        failure: item.get_s(ATTR_FAILURE).map(str::to_string),
        errors_kept: count(item, ATTR_ERRORS_KEPT)?,
        version: item.get_i64(VERSION).unwrap_or(0),
    })
}

fn row_error_item(workspace_id: &str, import_id: &str, error: &RowError) -> Item {
    let mut item = Item::new(&layout::import_error_key(
        workspace_id,
        import_id,
        error.row,
    ))
    .with(ATTR_ENTITY, "import_row_error")
    .with(ATTR_ROW, AttrValue::N(error.row.into()))
    .with(ATTR_REASON, error.reason.as_str());
    if let Some(column) = &error.column {
        item.set(ATTR_COLUMN, column.as_str());
    }
    item
}

fn row_error_from_item(item: &Item) -> DomainResult<RowError> {
    Ok(RowError {
        row: count(item, ATTR_ROW)?,
        column: item.get_s(ATTR_COLUMN).map(str::to_string),
        reason: required_s(item, ATTR_REASON)?.to_string(),
    })
}

/// A non-negative count; absent counts as 0 (records written before the attribute existed).
fn count(item: &Item, name: &str) -> DomainResult<u64> {
    match item.get(name) {
        None => Ok(0),
        Some(AttrValue::N(number)) => number
            .as_str()
            .parse()
            .map_err(|_| corrupt(item, &format!("has a {name} that is not a count: {number}"))),
        Some(_) => Err(corrupt(item, &format!("has a {name} that is not a number"))),
    }
}
