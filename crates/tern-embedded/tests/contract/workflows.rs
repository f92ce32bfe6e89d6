//! The workflows contract against this engine: the interpreter on a fresh database file, its SQS tasks
//! delivered to the embedded queue, and time on a virtual clock that the harness moves.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use tempfile::TempDir;
use tern_contract::workflows::WorkflowHarness;
use tern_embedded::Db;
use tern_embedded::queue::SqliteQueue;
use tern_embedded::workflows::{EmbeddedWorkflows, NoTasks, QueueTaskRunner};
use tern_ports::{Queue, VirtualClock, Workflows};

/// How many `run_due` rounds `settle` allows before it declares the engine unable to settle.
const MAX_SETTLE_ROUNDS: usize = 1_000;

struct EmbeddedHarness {
    workflows: EmbeddedWorkflows,
    queue: Arc<SqliteQueue>,
    clock: Arc<VirtualClock>,
    _dir: TempDir,
}

#[async_trait]
impl WorkflowHarness for EmbeddedHarness {
    fn workflows(&self) -> &dyn Workflows {
        &self.workflows
    }

    fn queue(&self) -> &dyn Queue {
        self.queue.as_ref()
    }

    async fn queue_url(&self, name: &str) -> String {
        // Only the last path segment names the queue, as with a real SQS URL.
        format!("http://localhost/000000000000/{name}")
    }

    async fn settle(&self) {
        for _ in 0..MAX_SETTLE_ROUNDS {
            if self.workflows.run_due().await.expect("run_due") == 0 {
                return;
            }
        }
        panic!("the engine still had due steps after {MAX_SETTLE_ROUNDS} rounds");
    }

    async fn advance(&self, seconds: u64) {
        let seconds = i64::try_from(seconds).expect("a small number of seconds");
        self.clock.advance(SignedDuration::from_secs(seconds));
        self.settle().await;
    }

    fn role_arn(&self) -> Option<String> {
        None
    }
}

async fn fresh_harness() -> Box<EmbeddedHarness> {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let db = Db::open(&dir.path().join("tern.db")).expect("open the database");
    let queue = Arc::new(SqliteQueue::new(db.clone()).expect("create the queue tables"));
    let clock = Arc::new(VirtualClock::new(Timestamp::now()));
    let tasks = Arc::new(QueueTaskRunner::new(queue.clone(), Arc::new(NoTasks)));
    let workflows =
        EmbeddedWorkflows::new(db, clock.clone(), tasks).expect("create the workflow tables");
    Box::new(EmbeddedHarness {
        workflows,
        queue,
        clock,
        _dir: dir,
    })
}

tern_contract::workflows_contract!(fresh_harness());
