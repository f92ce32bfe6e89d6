//! The one SQLite database (WAL) that holds the embedded engine's table, queue and workflow state.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tern_ports::{PortError, PortResult};

/// A shared handle on the database. SQLite serializes writers anyway; one connection behind a mutex, used
/// from blocking threads, keeps every write ordered and the async runtime free.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) the database file in WAL mode.
    pub fn open(path: &Path) -> PortResult<Self> {
        let conn = Connection::open(path).map_err(|e| {
            PortError::Unavailable(format!("cannot open database {}: {e}", path.display()))
        })?;
        Self::configure(conn)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> PortResult<Self> {
        let conn = Connection::open_in_memory().map_err(sqlite_error)?;
        Self::configure(conn)
    }

    fn configure(conn: Connection) -> PortResult<Self> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(sqlite_error)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `work` with the connection on a blocking thread.
    pub async fn call<T, F>(&self, work: F) -> PortResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> PortResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| PortError::Other("database lock poisoned".into()))?;
            work(&mut guard)
        })
        .await
        .map_err(|e| PortError::Other(format!("database task failed: {e}")))?
    }

    /// Runs `work` with the connection on the current thread (for setup code and migrations).
    pub fn call_blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> PortResult<T>,
    ) -> PortResult<T> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| PortError::Other("database lock poisoned".into()))?;
        work(&mut guard)
    }
}

/// Maps an SQLite failure to the port error; a busy database is a throttle, the rest is unexpected.
pub fn sqlite_error(error: rusqlite::Error) -> PortError {
    match &error {
        rusqlite::Error::SqliteFailure(code, _)
            if code.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            PortError::Throttled(error.to_string())
        }
        _ => PortError::Other(format!("sqlite: {error}")),
    }
}
