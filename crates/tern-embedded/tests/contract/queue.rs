//! The queue contract against this engine.

use std::ops::Deref;

use tempfile::TempDir;
use tern_embedded::Db;
use tern_embedded::queue::SqliteQueue;

/// A queue on its own database file, which lives as long as the queue.
struct FreshQueue {
    queue: SqliteQueue,
    _dir: TempDir,
}

impl Deref for FreshQueue {
    type Target = SqliteQueue;

    fn deref(&self) -> &SqliteQueue {
        &self.queue
    }
}

async fn fresh_queue() -> FreshQueue {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let db = Db::open(&dir.path().join("tern.db")).expect("open the database");
    let queue = SqliteQueue::new(db).expect("create the queue tables");
    FreshQueue { queue, _dir: dir }
}

tern_contract::queue_contract!(fresh_queue());
