//! The one SQLite database (WAL) that holds the embedded engine's table, queue and workflow state.
//!
//! Three connections share a database file: the writing one, behind a mutex, which commits the writes
//! that arrive together in one transaction ([`Db::write`]); a reading one, for reads while a write is
//! under way ([`Db::read`]); and one on a background thread that copies committed pages from the WAL into
//! the database file (a checkpoint), which SQLite would otherwise do inside a writer's commit.
//! `synchronous = NORMAL` in WAL mode: a commit is in the operating system's hands when it returns, so
//! what was answered survives the process being killed; only a power loss may undo the latest commits.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::Duration;

use rusqlite::{CachedStatement, Connection};
use tern_ports::{PortError, PortResult};

/// Prepared statements kept per connection. The adapters' fixed statements plus the shapes of table
/// queries stay well under this, so no statement is parsed twice in a steady state.
const STATEMENT_CACHE_CAPACITY: usize = 256;

/// How often the background checkpoint copies committed pages from the WAL into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
/// WAL pages at which a committing writer checkpoints by itself (and again at every commit until the WAL
/// starts again), fsyncs included: only reached should the background checkpoints, which start the WAL
/// again at a third of this, stop keeping up. SQLite's default of 1000 pages would put that work in the
/// writers' path.
const WRITER_CHECKPOINT_PAGES: u32 = 24_576;
/// The size the WAL file is cut back to when it starts again after a burst made it larger. Well above
/// the size at which the background checkpoint starts it again, so that in a steady state the file keeps
/// its blocks and a write reuses them instead of the filesystem allocating them anew.
const WAL_SIZE_LIMIT: i64 = 256 * 1024 * 1024;
/// Pages the writing connection keeps in memory (negative: KiB, SQLite's convention), allocated as used.
/// Its cache survives its own commits, so a hot profile or index page is read from the file once. The
/// other connections keep SQLite's default: a reading connection drops its whole cache whenever another
/// one committed, and a large cache would only be freed again at every read.
const WRITER_CACHE_KIB: i64 = -262_144;
/// Reads of the database file through a memory map instead of a system call per page.
const MMAP_BYTES: i64 = 1 << 30;

/// A write waiting for the next commit. Handed the connection inside the shared transaction, it runs
/// and returns how to answer its caller once the commit is known (`None` if it panicked); handed an error
/// instead, it answers its caller with that error without running.
type WriteJob = Box<dyn FnOnce(Result<&Connection, PortError>) -> Option<Ran> + Send>;

/// A write that ran inside the shared transaction.
struct Ran {
    succeeded: bool,
    /// Answers the caller: with the write's own result, or with the commit's error when it failed.
    answer: Box<dyn FnOnce(Option<PortError>) + Send>,
}

/// A shared handle on the database. SQLite serializes writers anyway; one writing connection, used by one
/// thread of its own for [`Db::write`] (and behind a mutex for the rest), keeps every write ordered and
/// the async runtime free.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    /// Hands writes to the writing thread, which commits what waits together (see [`Db::write`]); the
    /// thread stops when the last handle is dropped.
    writes: mpsc::Sender<WriteJob>,
    /// Writes handed over and not yet taken into a transaction.
    pending: Arc<AtomicUsize>,
    /// A second connection for reads of a database file, so that reads run beside writes (in WAL mode a
    /// reader sees every committed transaction without waiting for the writer). `None` in memory, where a
    /// second connection would open another database.
    reader: Option<Arc<Mutex<Connection>>>,
    /// Held by whoever checkpoints: SQLite lets one checkpoint run at a time and refuses a second one
    /// at once, so [`Db::flush`] waits here for a background checkpoint under way to finish.
    checkpointing: Arc<Mutex<()>>,
    /// Keeps the background checkpoint running; it stops when the last handle is dropped.
    _checkpoints: Option<Arc<mpsc::Sender<()>>>,
}

impl Db {
    /// Opens (creating if needed) the database file in WAL mode.
    pub fn open(path: &Path) -> PortResult<Self> {
        let writer = writer(open_file(path)?)?;
        let reader = reader(open_file(path)?)?;
        let db = Self::with_writer(writer)?;
        let checkpoints = start_checkpoints(
            open_file(path)?,
            Arc::clone(&db.conn),
            Arc::clone(&db.checkpointing),
        )?;
        Ok(Self {
            reader: Some(Arc::new(Mutex::new(reader))),
            _checkpoints: Some(Arc::new(checkpoints)),
            ..db
        })
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> PortResult<Self> {
        let conn = Connection::open_in_memory().map_err(sqlite_error)?;
        Self::with_writer(writer(conn)?)
    }

    fn with_writer(conn: Connection) -> PortResult<Self> {
        let conn = Arc::new(Mutex::new(conn));
        let pending = Arc::new(AtomicUsize::new(0));
        let writes = start_writer(Arc::clone(&conn), Arc::clone(&pending))?;
        Ok(Self {
            conn,
            writes,
            pending,
            reader: None,
            checkpointing: Arc::new(Mutex::new(())),
            _checkpoints: None,
        })
    }

    /// Copies the whole write-ahead log into the database file and empties it, so that a stopped
    /// engine is one self-contained file that can be copied or backed up. Waits for a background
    /// checkpoint under way, and for reads in progress, to finish.
    pub async fn flush(&self) -> PortResult<()> {
        let (conn, checkpointing) = (Arc::clone(&self.conn), Arc::clone(&self.checkpointing));
        tokio::task::spawn_blocking(move || {
            let _alone = lock(&checkpointing);
            let conn = lock(&conn);
            let busy: i64 = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
                .map_err(sqlite_error)?;
            if busy != 0 {
                return Err(PortError::Throttled(
                    "the write-ahead log could not be emptied: another process is using the database"
                        .into(),
                ));
            }
            Ok(())
        })
        .await
        .map_err(|e| PortError::Other(format!("database task failed: {e}")))?
    }

    /// Runs `work` inside a write transaction on a blocking thread, and returns its result once that
    /// transaction is committed. Writes that arrive while a commit is under way are committed together
    /// in the next transaction, and no write is answered before the commit that makes it durable;
    /// committing several at once writes the pages they share (index interior pages, the newest pages
    /// of the `ttl` index) once.
    ///
    /// `work` must check before it writes: an error returned before its first change leaves the other
    /// writes of the transaction untouched, while an error after a change rolls back the writes
    /// committed with it too (they are answered with an error). Only a failing database should cause
    /// the latter. `work` must not begin or end transactions itself.
    pub async fn write<T, F>(&self, work: F) -> PortResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> PortResult<T> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let conn = match conn {
                Ok(conn) => conn,
                Err(error) => {
                    // The caller may have stopped waiting; then there is no one to tell.
                    let _ = answer.send(Err(error));
                    return None;
                }
            };
            let result = work(conn);
            Some(Ran {
                succeeded: result.is_ok(),
                answer: Box::new(move |commit_error| {
                    // A failed write keeps its own error, whatever became of the transaction.
                    let _ = answer.send(match (result, commit_error) {
                        (Ok(_), Some(error)) => Err(error),
                        (result, _) => result,
                    });
                }),
            })
        });
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.writes
            .send(job)
            .map_err(|_| PortError::Other("the database writer has stopped".into()))?;
        answered.await.map_err(|_| {
            PortError::Other("a database write stopped before answering (it panicked)".into())
        })?
    }

    /// Runs `work`, which only reads, on a blocking thread. It runs on the writing connection when that
    /// is free, whose page cache stays warm across its own commits, and otherwise on the reading
    /// connection, beside the write under way (that connection's cache is emptied by every write made
    /// elsewhere, so it is the second choice).
    pub async fn read<T, F>(&self, work: F) -> PortResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> PortResult<T> + Send + 'static,
    {
        let (conn, reader) = (Arc::clone(&self.conn), self.reader.clone());
        tokio::task::spawn_blocking(move || {
            let poisoned = |_| PortError::Other("database lock poisoned".into());
            let mut guard = match (conn.try_lock(), &reader) {
                (Ok(guard), _) => guard,
                (Err(TryLockError::WouldBlock), Some(reader)) => reader.lock().map_err(poisoned)?,
                (Err(TryLockError::WouldBlock), None) => conn.lock().map_err(poisoned)?,
                (Err(TryLockError::Poisoned(error)), _) => return Err(poisoned(error)),
            };
            work(&mut guard)
        })
        .await
        .map_err(|e| PortError::Other(format!("database task failed: {e}")))?
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

/// Starts the thread that commits writes: it waits for one, takes the connection, and commits that write
/// with every other one waiting by then, in one transaction unless one of them fails part-way. A thread
/// of its own, rather than a blocking task per write, keeps writes from piling up threads that only wait
/// for the connection.
fn start_writer(
    conn: Arc<Mutex<Connection>>,
    pending: Arc<AtomicUsize>,
) -> PortResult<mpsc::Sender<WriteJob>> {
    let (writes, waiting) = mpsc::channel::<WriteJob>();
    std::thread::Builder::new()
        .name("tern-db-writer".into())
        .spawn(move || {
            while let Ok(first) = waiting.recv() {
                // A panic inside a write poisons the lock; the connection itself is sound once any
                // transaction the panic left open is rolled back, which `commit_together` does first.
                let conn = lock(&conn);
                let jobs: Vec<WriteJob> =
                    std::iter::once(first).chain(waiting.try_iter()).collect();
                pending.fetch_sub(jobs.len(), Ordering::SeqCst);
                commit_together(&conn, jobs);
            }
        })
        .map_err(|e| PortError::Other(format!("cannot start the database writer: {e}")))?;
    Ok(writes)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a shared transaction ended without its commit.
enum Stopped {
    /// The database failed (it is busy, or cannot write): every write not yet committed gets the error.
    Database(PortError),
    /// A write failed after writing part of itself; the transaction was rolled back, and the writes that
    /// come after it go on in a new one.
    PartlyWritten,
}

/// Runs `jobs` in as few immediate transactions as possible, commits, and answers each job.
fn commit_together(conn: &Connection, jobs: Vec<WriteJob>) {
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let mut ran = Vec::new();
        let outcome = run_and_commit(conn, &mut jobs, &mut ran);
        if outcome.is_err() && !conn.is_autocommit() {
            // Best effort: the error reported is the one that stopped the transaction.
            let _ = run(conn, "ROLLBACK");
        }
        let (error, go_on) = match outcome {
            Ok(()) => (None, true),
            // The database cannot take writes now; the writes still waiting would fail alike.
            Err(Stopped::Database(error)) => (Some(error), false),
            Err(Stopped::PartlyWritten) => (
                Some(PortError::Other(
                    "this write was rolled back with another one that failed part-way; nothing of \
                     it was stored"
                        .into(),
                )),
                true,
            ),
        };
        for job in ran {
            (job.answer)(error.clone());
        }
        if let (Some(error), false) = (&error, go_on) {
            jobs.by_ref().for_each(|job| drop(job(Err(error.clone()))));
        }
    }
}

/// Runs jobs in one transaction until they are all done or one fails part-way, then commits. A job that
/// fails before writing anything (the rule for every write: check, then write) is answered with its own
/// error and leaves the others untouched, so no savepoint is needed — a savepoint would copy every page a
/// write touches into its journal.
fn run_and_commit(
    conn: &Connection,
    jobs: &mut impl Iterator<Item = WriteJob>,
    ran: &mut Vec<Ran>,
) -> Result<(), Stopped> {
    if !conn.is_autocommit() {
        // A panic inside `call` may have left a transaction open.
        run(conn, "ROLLBACK").map_err(Stopped::Database)?;
    }
    run(conn, "BEGIN IMMEDIATE").map_err(Stopped::Database)?;
    for job in jobs {
        let changes_before = conn.total_changes();
        // A panicking job drops its answer, so its caller learns of the failure; the others go on.
        let finished = catch_unwind(AssertUnwindSafe(|| job(Ok(conn))))
            .ok()
            .flatten();
        let wrote_nothing = conn.total_changes() == changes_before;
        match finished {
            Some(job) if job.succeeded => ran.push(job),
            Some(job) if wrote_nothing => (job.answer)(None),
            None if wrote_nothing => {}
            failed => {
                if let Some(job) = failed {
                    (job.answer)(None);
                }
                return Err(Stopped::PartlyWritten);
            }
        }
    }
    run(conn, "COMMIT").map_err(Stopped::Database)
}

fn run(conn: &Connection, sql: &str) -> PortResult<()> {
    cached(conn, sql)?.execute([]).map_err(sqlite_error)?;
    Ok(())
}

fn open_file(path: &Path) -> PortResult<Connection> {
    Connection::open(path).map_err(|e| {
        PortError::Unavailable(format!("cannot open database {}: {e}", path.display()))
    })
}

/// The writing connection, in WAL mode. A new database gets 8 KiB pages (an existing one keeps its own):
/// each write touches one page per item in most places anyway, and with 8 KiB pages events and profiles
/// fit in their b-tree cells and the indexes are shallower, which measured faster than 4 or 16 KiB.
fn writer(conn: Connection) -> PortResult<Connection> {
    conn.execute_batch(
        "PRAGMA page_size = 8192;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(sqlite_error)?;
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
        .map_err(sqlite_error)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .map_err(sqlite_error)?;
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)
        .map_err(sqlite_error)?;
    memory_mapped(&conn)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(conn)
}

fn memory_mapped(conn: &Connection) -> PortResult<()> {
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)
        .map_err(sqlite_error)
}

/// The reading connection: refuses writes, so that only `Db::write` and `Db::call` change the database.
fn reader(conn: Connection) -> PortResult<Connection> {
    conn.execute_batch(
        "PRAGMA query_only = ON;
         PRAGMA busy_timeout = 5000;",
    )
    .map_err(sqlite_error)?;
    memory_mapped(&conn)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(conn)
}

/// Runs passive checkpoints on `conn`, its own connection, in a thread of its own, until the returned
/// sender is dropped. A passive checkpoint never blocks readers or the writer: it copies what has been
/// committed so far.
fn start_checkpoints(
    conn: Connection,
    writer: Arc<Mutex<Connection>>,
    checkpointing: Arc<Mutex<()>>,
) -> PortResult<mpsc::Sender<()>> {
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sqlite_error)?;
    let checkpointer = Checkpointer { conn, writer };
    let (keep_running, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("tern-db-checkpoint".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_INTERVAL) {
                // A flush under way does this round's work.
                let _alone = match checkpointing.try_lock() {
                    Ok(alone) => alone,
                    Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(TryLockError::WouldBlock) => continue,
                };
                if let Err(error) = checkpointer.checkpoint() {
                    tracing::debug!(%error, "background checkpoint failed; the next one retries");
                }
            }
        })
        .map_err(|e| PortError::Other(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(keep_running)
}

/// WAL pages (64 MiB of 8 KiB pages) after which the background checkpoint lets the WAL start again from
/// its beginning. Each time holds writes back for the last pages of the copy (tens of milliseconds under
/// heavy load), so not too often; a longer WAL also lets one copy serve many writes of a page.
const RESTART_AFTER_PAGES: i64 = 8_192;
/// Pages committed during a catching-up round few enough to copy while writes are held back.
const FEW_PAGES: i64 = 256;
/// Catching-up rounds before writes are held back anyway, should the writer outpace the checkpoint.
const MAX_CATCH_UP_ROUNDS: usize = 8;

/// The background checkpoint's connection, and the writing one, held for the last few pages of a WAL that
/// is to start again.
struct Checkpointer {
    conn: Connection,
    writer: Arc<Mutex<Connection>>,
}

impl Checkpointer {
    /// Copies what is committed. A WAL only starts again from its beginning (instead of growing) when a
    /// write begins after a checkpoint copied all of it and no read uses it, which a checkpoint beside a
    /// busy writer never sees: so past [`RESTART_AFTER_PAGES`], rounds follow until one copies only a few
    /// pages (or [`MAX_CATCH_UP_ROUNDS`] have run), and one last round copies what is left with writes
    /// held back.
    fn checkpoint(&self) -> PortResult<()> {
        let mut in_wal = self.round()?;
        if in_wal < RESTART_AFTER_PAGES {
            return Ok(());
        }
        for _ in 0..MAX_CATCH_UP_ROUNDS {
            let now_in_wal = self.round()?;
            let committed_meanwhile = now_in_wal - in_wal;
            in_wal = now_in_wal;
            if committed_meanwhile < 0 {
                // A write began after a complete copy: the WAL has started again already.
                return Ok(());
            }
            if committed_meanwhile <= FEW_PAGES {
                break;
            }
        }
        // A restarting checkpoint also waits for reads of the WAL to end, so that the next write
        // can start it again (a read still using the WAL would prevent that).
        let _writes_held = lock(&self.writer);
        self.conn
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
            .map_err(sqlite_error)
    }

    /// One passive checkpoint; returns how many pages the WAL holds.
    fn round(&self) -> PortResult<i64> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
            .map_err(sqlite_error)
    }
}

/// The connection's prepared statement for `sql`: parsed on first use, then reused.
pub fn cached<'c>(conn: &'c Connection, sql: &str) -> PortResult<CachedStatement<'c>> {
    conn.prepare_cached(sql).map_err(sqlite_error)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with a table of numbers, and the connection held until the returned sender sends (or
    /// is dropped), so that writes queue up and are committed together.
    async fn held_database() -> (Db, mpsc::Sender<()>) {
        let db = Db::in_memory().expect("in-memory database");
        db.call_blocking(|conn| {
            conn.execute_batch("CREATE TABLE numbers (n INTEGER PRIMARY KEY)")
                .map_err(sqlite_error)
        })
        .expect("schema");
        let (release, released) = mpsc::channel::<()>();
        let holder = db.clone();
        let (held, is_held) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            holder.call_blocking(|_| {
                let _ = held.send(());
                let _ = released.recv();
                Ok(())
            })
        });
        is_held.await.expect("the connection is held");
        (db, release)
    }

    fn insert(n: i64) -> impl FnOnce(&Connection) -> PortResult<i64> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO numbers (n) VALUES (?1)", [n])
                .map_err(sqlite_error)?;
            Ok(n)
        }
    }

    fn spawn_write(
        db: &Db,
        work: impl FnOnce(&Connection) -> PortResult<i64> + Send + 'static,
    ) -> tokio::task::JoinHandle<PortResult<i64>> {
        let db = db.clone();
        tokio::spawn(async move { db.write(work).await })
    }

    async fn wait_until_queued(db: &Db, writes: usize) {
        while db.pending.load(Ordering::SeqCst) < writes {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn stored(db: &Db) -> Vec<i64> {
        db.call(|conn| {
            let mut select = conn
                .prepare("SELECT n FROM numbers ORDER BY n")
                .map_err(sqlite_error)?;
            let numbers = select
                .query_map([], |row| row.get(0))
                .map_err(sqlite_error)?
                .collect::<Result<Vec<i64>, _>>()
                .map_err(sqlite_error)?;
            Ok(numbers)
        })
        .await
        .expect("select")
    }

    #[tokio::test]
    async fn writes_queued_together_are_committed_together_and_a_refused_one_changes_nothing() {
        let (db, release) = held_database().await;
        let first = spawn_write(&db, insert(1));
        wait_until_queued(&db, 1).await;
        let refused = spawn_write(&db, |_conn: &Connection| {
            Err(PortError::Invalid("refused before writing".into()))
        });
        wait_until_queued(&db, 2).await;
        let third = spawn_write(&db, insert(3));
        wait_until_queued(&db, 3).await;
        release.send(()).expect("release the connection");

        assert_eq!(first.await.unwrap(), Ok(1));
        assert_eq!(
            refused.await.unwrap(),
            Err(PortError::Invalid("refused before writing".into()))
        );
        assert_eq!(third.await.unwrap(), Ok(3));
        assert_eq!(stored(&db).await, [1, 3]);
    }

    #[tokio::test]
    async fn a_write_failing_part_way_is_rolled_back_with_the_writes_before_it_in_its_transaction()
    {
        let (db, release) = held_database().await;
        let before = spawn_write(&db, insert(1));
        wait_until_queued(&db, 1).await;
        let part_way = spawn_write(&db, |conn: &Connection| {
            insert(2)(conn)?;
            Err(PortError::Other("failed after writing".into()))
        });
        wait_until_queued(&db, 2).await;
        let after = spawn_write(&db, insert(3));
        wait_until_queued(&db, 3).await;
        release.send(()).expect("release the connection");

        assert!(
            matches!(before.await.unwrap(), Err(PortError::Other(why)) if why.contains("rolled back")),
            "the write before it was not committed, and says so"
        );
        assert_eq!(
            part_way.await.unwrap(),
            Err(PortError::Other("failed after writing".into()))
        );
        assert_eq!(after.await.unwrap(), Ok(3));
        assert_eq!(stored(&db).await, [3]);
    }

    #[tokio::test]
    async fn a_panicking_write_is_answered_with_an_error_and_the_others_are_committed() {
        let (db, release) = held_database().await;
        let first = spawn_write(&db, insert(1));
        wait_until_queued(&db, 1).await;
        let panicking = spawn_write(&db, |_conn: &Connection| -> PortResult<i64> {
            panic!("a bug")
        });
        wait_until_queued(&db, 2).await;
        let third = spawn_write(&db, insert(3));
        wait_until_queued(&db, 3).await;
        release.send(()).expect("release the connection");

        assert_eq!(first.await.unwrap(), Ok(1));
        assert!(
            matches!(panicking.await.unwrap(), Err(PortError::Other(why)) if why.contains("panicked"))
        );
        assert_eq!(third.await.unwrap(), Ok(3));
        assert_eq!(stored(&db).await, [1, 3]);
    }

    #[tokio::test]
    async fn flush_leaves_the_whole_database_in_its_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("tern.db");
        let db = Db::open(&path).expect("open");
        db.write(|conn| {
            conn.execute_batch("CREATE TABLE numbers (n INTEGER PRIMARY KEY)")
                .map_err(sqlite_error)?;
            (0..500).try_for_each(|n| insert(n)(conn).map(drop))
        })
        .await
        .expect("write");
        db.flush().await.expect("flush");
        let wal = std::fs::metadata(dir.path().join("tern.db-wal")).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the write-ahead log is empty");
        drop(db);
        let reopened = Connection::open(&path).expect("reopen");
        let count: i64 = reopened
            .query_row("SELECT count(*) FROM numbers", [], |row| row.get(0))
            .expect("count");
        assert_eq!(count, 500);
    }

    #[tokio::test]
    async fn a_file_database_is_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("tern.db");
        let db = Db::open(&path).expect("open");
        db.write(|conn| {
            conn.execute_batch("CREATE TABLE numbers (n INTEGER PRIMARY KEY)")
                .map_err(sqlite_error)
        })
        .await
        .expect("schema");
        db.write(|conn| (0..2000).try_for_each(|n| insert(n)(conn).map(drop)))
            .await
            .expect("insert");
        // Only a checkpoint writes pages into the database file, and writers leave it to the background.
        let file_size = || std::fs::metadata(&path).map_or(0, |m| m.len());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while file_size() < 16 * 1024 && std::time::Instant::now() < deadline {
            tokio::time::sleep(CHECKPOINT_INTERVAL).await;
        }
        assert!(
            file_size() >= 16 * 1024,
            "{} bytes in the file",
            file_size()
        );
    }
}
