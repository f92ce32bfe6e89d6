//! The workflow tables and every statement on them. Each function runs in one SQLite transaction (or one
//! statement), so a crash leaves an execution either before or after a step, never halfway.

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use tern_ports::{PortError, PortResult};

use crate::db::sqlite_error;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS workflow_state_machines (
    name TEXT PRIMARY KEY,
    latest_version INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS workflow_versions (
    machine TEXT NOT NULL REFERENCES workflow_state_machines (name),
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (machine, version)
) STRICT;
CREATE TABLE IF NOT EXISTS workflow_executions (
    id TEXT PRIMARY KEY,
    machine TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    cause TEXT,
    -- tern_asl::ExecutionState as JSON, while the execution runs.
    cursor TEXT,
    -- The task in flight: its dispatch id (the token, for token tasks) and tern_asl::TaskCall as JSON.
    task_id TEXT,
    task TEXT,
    task_dispatched INTEGER NOT NULL DEFAULT 0,
    -- When run_due should look at the execution again; NULL while it waits for a task token.
    wake_at_ms INTEGER,
    -- The execution's own TimeoutSeconds, if its definition has one.
    deadline_ms INTEGER,
    started_ms INTEGER NOT NULL,
    stopped_ms INTEGER,
    -- Bumped by every write, so that a step computed from a stale row is not applied.
    revision INTEGER NOT NULL DEFAULT 0,
    UNIQUE (machine, name),
    FOREIGN KEY (machine, version) REFERENCES workflow_versions (machine, version)
) STRICT;
CREATE INDEX IF NOT EXISTS workflow_executions_due ON workflow_executions (wake_at_ms) WHERE wake_at_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS workflow_task_tokens (
    token TEXT PRIMARY KEY,
    execution TEXT NOT NULL REFERENCES workflow_executions (id),
    state TEXT NOT NULL,
    issued_ms INTEGER NOT NULL,
    -- NULL while a task waits on the token; then completed, timed_out or closed.
    closed TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS workflow_task_tokens_open ON workflow_task_tokens (execution) WHERE closed IS NULL;
";

pub const RUNNING: &str = "RUNNING";

/// One execution as stored.
#[derive(Debug, Clone)]
pub struct ExecutionRow {
    pub id: String,
    pub machine: String,
    pub version: i64,
    pub name: String,
    pub status: String,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub cursor: Option<String>,
    pub task_id: Option<String>,
    pub task: Option<String>,
    pub task_dispatched: bool,
    pub wake_at_ms: Option<i64>,
    pub deadline_ms: Option<i64>,
    pub started_ms: i64,
    pub stopped_ms: Option<i64>,
    pub revision: i64,
}

const EXECUTION_COLUMNS: &str = "id, machine, version, name, status, input, output, error, cause, cursor, task_id, \
     task, task_dispatched, wake_at_ms, deadline_ms, started_ms, stopped_ms, revision";

fn execution_from(row: &Row<'_>) -> rusqlite::Result<ExecutionRow> {
    Ok(ExecutionRow {
        id: row.get(0)?,
        machine: row.get(1)?,
        version: row.get(2)?,
        name: row.get(3)?,
        status: row.get(4)?,
        input: row.get(5)?,
        output: row.get(6)?,
        error: row.get(7)?,
        cause: row.get(8)?,
        cursor: row.get(9)?,
        task_id: row.get(10)?,
        task: row.get(11)?,
        task_dispatched: row.get(12)?,
        wake_at_ms: row.get(13)?,
        deadline_ms: row.get(14)?,
        started_ms: row.get(15)?,
        stopped_ms: row.get(16)?,
        revision: row.get(17)?,
    })
}

/// Records a new version of `machine` unless `definition` is the latest version's already, and returns the
/// version number.
pub fn publish(
    conn: &mut Connection,
    machine: &str,
    definition: &str,
    now_ms: i64,
) -> PortResult<i64> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let latest: Option<(i64, String)> = tx
        .query_row(
            "SELECT v.version, v.definition FROM workflow_state_machines m
             JOIN workflow_versions v ON v.machine = m.name AND v.version = m.latest_version
             WHERE m.name = ?1",
            [machine],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(sqlite_error)?;
    let version = match latest {
        Some((version, latest_definition)) if latest_definition == definition => {
            return Ok(version);
        }
        Some((version, _)) => version + 1,
        None => 1,
    };
    tx.execute(
        "INSERT INTO workflow_state_machines (name, latest_version, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (name) DO UPDATE SET latest_version = excluded.latest_version, updated_ms = excluded.updated_ms",
        params![machine, version, now_ms],
    )
    .map_err(sqlite_error)?;
    tx.execute(
        "INSERT INTO workflow_versions (machine, version, definition, created_ms) VALUES (?1, ?2, ?3, ?4)",
        params![machine, version, definition, now_ms],
    )
    .map_err(sqlite_error)?;
    tx.commit().map_err(sqlite_error)?;
    Ok(version)
}

pub fn latest_version(conn: &Connection, machine: &str) -> PortResult<Option<i64>> {
    conn.query_row(
        "SELECT latest_version FROM workflow_state_machines WHERE name = ?1",
        [machine],
        |row| row.get(0),
    )
    .optional()
    .map_err(sqlite_error)
}

pub fn definition(conn: &Connection, machine: &str, version: i64) -> PortResult<Option<String>> {
    conn.query_row(
        "SELECT definition FROM workflow_versions WHERE machine = ?1 AND version = ?2",
        params![machine, version],
        |row| row.get(0),
    )
    .optional()
    .map_err(sqlite_error)
}

/// A new execution, as `start` records it.
pub struct NewExecution {
    pub id: String,
    pub machine: String,
    pub version: i64,
    pub name: String,
    pub input: String,
    pub cursor: String,
    pub deadline_ms: Option<i64>,
    pub now_ms: i64,
}

/// Inserts the execution unless its machine has one of that name; returns the id of the execution that
/// holds the name and whether it was created now.
pub fn insert_execution(conn: &mut Connection, new: &NewExecution) -> PortResult<(String, bool)> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let existing: Option<String> = tx
        .query_row(
            "SELECT id FROM workflow_executions WHERE machine = ?1 AND name = ?2",
            params![new.machine, new.name],
            |row| row.get(0),
        )
        .optional()
        .map_err(sqlite_error)?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    tx.execute(
        "INSERT INTO workflow_executions (id, machine, version, name, status, input, cursor, wake_at_ms, deadline_ms, started_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8)",
        params![new.id, new.machine, new.version, new.name, RUNNING, new.input, new.cursor, new.now_ms, new.deadline_ms],
    )
    .map_err(sqlite_error)?;
    tx.commit().map_err(sqlite_error)?;
    Ok((new.id.clone(), true))
}

pub fn load_execution(conn: &Connection, id: &str) -> PortResult<Option<ExecutionRow>> {
    conn.query_row(
        &format!("SELECT {EXECUTION_COLUMNS} FROM workflow_executions WHERE id = ?1"),
        [id],
        execution_from,
    )
    .optional()
    .map_err(sqlite_error)
}

/// The running executions whose wake time has come, earliest first.
pub fn due_executions(conn: &Connection, now_ms: i64, limit: usize) -> PortResult<Vec<String>> {
    let mut statement = conn
        .prepare(
            "SELECT id FROM workflow_executions WHERE wake_at_ms IS NOT NULL AND wake_at_ms <= ?1
             ORDER BY wake_at_ms LIMIT ?2",
        )
        .map_err(sqlite_error)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let ids = statement
        .query_map(params![now_ms, limit], |row| row.get(0))
        .map_err(sqlite_error)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(sqlite_error)?;
    Ok(ids)
}

/// A task to record as in flight.
pub struct NewTask {
    pub id: String,
    pub call: String,
    pub token: Option<String>,
    pub state: String,
}

/// How a step changes a running execution.
pub enum Write {
    /// The execution goes on: a new cursor, perhaps a task in flight, and when to look again.
    Continue {
        cursor: String,
        task: Option<NewTask>,
        wake_at_ms: Option<i64>,
    },
    /// The execution is over.
    End {
        status: &'static str,
        output: Option<String>,
        error: Option<String>,
        cause: Option<String>,
    },
}

/// Applies `write` if the execution is still at `revision`; returns whether it was applied. Any task
/// token still open is closed with `close_tokens_as` (a timed-out task, or the execution's end).
pub fn write_step(
    conn: &mut Connection,
    id: &str,
    revision: i64,
    write: &Write,
    close_tokens_as: Option<&str>,
    now_ms: i64,
) -> PortResult<bool> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let changed = match write {
        Write::Continue { cursor, task, wake_at_ms } => tx.execute(
            "UPDATE workflow_executions SET cursor = ?3, task_id = ?4, task = ?5, task_dispatched = 0, wake_at_ms = ?6,
                 revision = revision + 1
             WHERE id = ?1 AND revision = ?2 AND status = 'RUNNING'",
            params![
                id,
                revision,
                cursor,
                task.as_ref().map(|task| &task.id),
                task.as_ref().map(|task| &task.call),
                wake_at_ms
            ],
        ),
        Write::End { status, output, error, cause } => tx.execute(
            "UPDATE workflow_executions SET status = ?3, output = ?4, error = ?5, cause = ?6, stopped_ms = ?7,
                 cursor = NULL, task_id = NULL, task = NULL, task_dispatched = 0, wake_at_ms = NULL,
                 revision = revision + 1
             WHERE id = ?1 AND revision = ?2 AND status = 'RUNNING'",
            params![id, revision, status, output, error, cause, now_ms],
        ),
    }
    .map_err(sqlite_error)?;
    if changed == 0 {
        return Ok(false);
    }
    let close_as = match write {
        Write::End { .. } => Some(close_tokens_as.unwrap_or("closed")),
        Write::Continue { .. } => close_tokens_as,
    };
    if let Some(reason) = close_as {
        close_open_tokens(&tx, id, reason)?;
    }
    if let Write::Continue {
        task:
            Some(NewTask {
                token: Some(token),
                state,
                ..
            }),
        ..
    } = write
    {
        tx.execute(
            "INSERT INTO workflow_task_tokens (token, execution, state, issued_ms) VALUES (?1, ?2, ?3, ?4)",
            params![token, id, state, now_ms],
        )
        .map_err(sqlite_error)?;
    }
    tx.commit().map_err(sqlite_error)?;
    Ok(true)
}

fn close_open_tokens(conn: &Connection, execution: &str, reason: &str) -> PortResult<()> {
    conn.execute(
        "UPDATE workflow_task_tokens SET closed = ?2 WHERE execution = ?1 AND closed IS NULL",
        params![execution, reason],
    )
    .map_err(sqlite_error)?;
    Ok(())
}

/// Marks a token task as handed out: from now on only its token (or its deadline) moves the execution.
pub fn mark_dispatched(
    conn: &Connection,
    id: &str,
    task_id: &str,
    wake_at_ms: Option<i64>,
) -> PortResult<bool> {
    let changed = conn
        .execute(
            "UPDATE workflow_executions SET task_dispatched = 1, wake_at_ms = ?3, revision = revision + 1
             WHERE id = ?1 AND task_id = ?2 AND status = 'RUNNING'",
            params![id, task_id, wake_at_ms],
        )
        .map_err(sqlite_error)?;
    Ok(changed == 1)
}

/// Records the outcome of the task in flight (identified by `task_id`): the new cursor, and due at once.
/// Returns whether the task was still in flight.
pub fn record_outcome(
    conn: &mut Connection,
    id: &str,
    task_id: &str,
    cursor: &str,
    close_tokens_as: Option<&str>,
    now_ms: i64,
) -> PortResult<bool> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let changed = tx
        .execute(
            "UPDATE workflow_executions SET cursor = ?3, task_id = NULL, task = NULL, task_dispatched = 0, wake_at_ms = ?4,
                 revision = revision + 1
             WHERE id = ?1 AND task_id = ?2 AND status = 'RUNNING'",
            params![id, task_id, cursor, now_ms],
        )
        .map_err(sqlite_error)?;
    if changed == 1
        && let Some(reason) = close_tokens_as
    {
        close_open_tokens(&tx, id, reason)?;
    }
    tx.commit().map_err(sqlite_error)?;
    Ok(changed == 1)
}

/// Why a task token could not be completed.
pub enum TokenRefusal {
    /// No task was ever given this token.
    Unknown,
    /// The task is over: `completed`, `timed_out` or `closed` (its execution ended).
    Closed(String),
}

/// Completes the task waiting on `token`: `advance` turns the execution's cursor into the one that records
/// the task's outcome; the execution becomes due at once and the token is closed.
pub fn complete_token(
    conn: &mut Connection,
    token: &str,
    advance: impl FnOnce(&str) -> PortResult<String>,
    now_ms: i64,
) -> PortResult<Result<(), TokenRefusal>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let found: Option<(String, Option<String>)> = tx
        .query_row(
            "SELECT execution, closed FROM workflow_task_tokens WHERE token = ?1",
            [token],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(sqlite_error)?;
    let execution = match found {
        None => return Ok(Err(TokenRefusal::Unknown)),
        Some((_, Some(closed))) => return Ok(Err(TokenRefusal::Closed(closed))),
        Some((execution, None)) => execution,
    };
    let cursor: Option<String> = tx
        .query_row(
            "SELECT cursor FROM workflow_executions WHERE id = ?1 AND task_id = ?2 AND status = 'RUNNING'",
            params![execution, token],
            |row| row.get(0),
        )
        .optional()
        .map_err(sqlite_error)?
        .flatten();
    let Some(cursor) = cursor else {
        // The token is open but its execution no longer waits on it: close it for good.
        close_token(&tx, token, "closed")?;
        tx.commit().map_err(sqlite_error)?;
        return Ok(Err(TokenRefusal::Closed("closed".into())));
    };
    let advanced = advance(&cursor)?;
    tx.execute(
        "UPDATE workflow_executions SET cursor = ?2, task_id = NULL, task = NULL, task_dispatched = 0, wake_at_ms = ?3,
             revision = revision + 1
         WHERE id = ?1",
        params![execution, advanced, now_ms],
    )
    .map_err(sqlite_error)?;
    close_token(&tx, token, "completed")?;
    tx.commit().map_err(sqlite_error)?;
    Ok(Ok(()))
}

fn close_token(conn: &Connection, token: &str, reason: &str) -> PortResult<()> {
    conn.execute(
        "UPDATE workflow_task_tokens SET closed = ?2 WHERE token = ?1",
        params![token, reason],
    )
    .map_err(sqlite_error)?;
    Ok(())
}

/// Stops a running execution; returns false when no execution has that id.
pub fn stop(
    conn: &mut Connection,
    id: &str,
    error: Option<&str>,
    cause: Option<&str>,
    now_ms: i64,
) -> PortResult<bool> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let exists: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM workflow_executions WHERE id = ?1)",
            [id],
            |row| row.get(0),
        )
        .map_err(sqlite_error)?;
    if !exists {
        return Ok(false);
    }
    let changed = tx
        .execute(
            "UPDATE workflow_executions SET status = 'ABORTED', error = ?2, cause = ?3, stopped_ms = ?4,
                 cursor = NULL, task_id = NULL, task = NULL, task_dispatched = 0, wake_at_ms = NULL,
                 revision = revision + 1
             WHERE id = ?1 AND status = 'RUNNING'",
            params![id, error, cause, now_ms],
        )
        .map_err(sqlite_error)?;
    if changed == 1 {
        close_open_tokens(&tx, id, "closed")?;
    }
    tx.commit().map_err(sqlite_error)?;
    Ok(true)
}

/// Turns stored JSON back into a value, naming what was being read if the database holds garbage.
pub fn decode<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> PortResult<T> {
    serde_json::from_str(text)
        .map_err(|e| PortError::Other(format!("stored {what} is not valid: {e}")))
}
