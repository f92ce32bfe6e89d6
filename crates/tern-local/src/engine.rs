//! The embedded engine assembled from one data directory:
//!
//! ```text
//! <data_dir>/tern.db    the table, the queues and the workflow executions (one SQLite file, WAL)
//! <data_dir>/blobs/     the blob store, with S3's key layout
//! <data_dir>/outbox/    every email sent, as an .eml file
//! <data_dir>/secret     the signing secret (upload tokens), created on first start, mode 0600
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tern_app::queues::queue_specs;
use tern_app::{AppConfig, AppState};
use tern_embedded::Db;
use tern_embedded::blobs::DirBlobs;
use tern_embedded::mail::Outbox;
use tern_embedded::queue::SqliteQueue;
use tern_embedded::table::SqliteTable;
use tern_embedded::workflows::EmbeddedWorkflows;
use tern_ports::{Clock, Ports, Queue, SystemClock};

use crate::error::LocalError;
use crate::secret;
use crate::tasks;

pub const DATABASE_FILE: &str = "tern.db";
pub const BLOBS_DIR: &str = "blobs";
pub const OUTBOX_DIR: &str = "outbox";
pub const SECRET_FILE: &str = "secret";

/// How to open the engine.
#[derive(Clone)]
pub struct EngineOptions {
    /// Where clients reach the local server; blob upload targets point there.
    pub public_url: String,
    /// An SMTP server (`smtp://host:port`) that receives a copy of every email, e.g. a local mail catcher.
    pub smtp_relay: Option<String>,
    pub clock: Arc<dyn Clock>,
    pub app: AppConfig,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:3000".to_string(),
            smtp_relay: None,
            clock: Arc::new(SystemClock),
            app: AppConfig::default(),
        }
    }
}

/// Every port on local storage, plus what the local host drives itself (workflow timers, upload acceptance).
#[derive(Clone)]
pub struct Engine {
    data_dir: PathBuf,
    db: Db,
    ports: Ports,
    blobs: Arc<DirBlobs>,
    workflows: Arc<EmbeddedWorkflows>,
    app: AppConfig,
}

impl Engine {
    /// Opens the engine on `data_dir`, creating the directory and its contents on first use, and declares
    /// Tern's queues.
    pub async fn open(data_dir: &Path, options: EngineOptions) -> Result<Engine, LocalError> {
        create_dir(data_dir)?;
        let signing_secret = secret::load_or_create(&data_dir.join(SECRET_FILE))?;
        let db = Db::open(&data_dir.join(DATABASE_FILE)).map_err(LocalError::engine("database"))?;

        let table = Arc::new(SqliteTable::new(db.clone()).map_err(LocalError::engine("table"))?);
        let queue = Arc::new(SqliteQueue::new(db.clone()).map_err(LocalError::engine("queue"))?);
        let blobs = Arc::new(
            DirBlobs::new(
                data_dir.join(BLOBS_DIR),
                options.public_url.clone(),
                signing_secret,
            )
            .map_err(LocalError::engine("blob store"))?,
        );
        let mail = Arc::new(
            Outbox::new(data_dir.join(OUTBOX_DIR), options.smtp_relay.as_deref())
                .map_err(LocalError::engine("outbox"))?,
        );
        let workflows = Arc::new(
            EmbeddedWorkflows::new(
                db.clone(),
                Arc::clone(&options.clock),
                tasks::task_runner(queue.clone()),
            )
            .map_err(LocalError::engine("workflows"))?,
        );

        for spec in queue_specs() {
            queue
                .declare(&spec)
                .await
                .map_err(LocalError::engine("queues"))?;
        }

        let ports = Ports {
            table,
            queue,
            blobs: blobs.clone(),
            mail,
            workflows: workflows.clone(),
            clock: options.clock,
        };
        Ok(Engine {
            data_dir: data_dir.to_path_buf(),
            db,
            ports,
            blobs,
            workflows,
            app: options.app,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// What the handlers receive.
    pub fn app_state(&self) -> AppState {
        AppState::new(self.ports.clone(), self.app.clone())
    }

    pub fn blobs(&self) -> &Arc<DirBlobs> {
        &self.blobs
    }

    pub fn workflows(&self) -> &Arc<EmbeddedWorkflows> {
        &self.workflows
    }

    /// Folds the write-ahead log into the database file, so that a stopped engine is one self-contained
    /// file that can be copied or backed up.
    pub async fn flush(&self) -> Result<(), LocalError> {
        self.db
            .flush()
            .await
            .map_err(LocalError::engine("database"))
    }
}

fn create_dir(path: &Path) -> Result<(), LocalError> {
    std::fs::create_dir_all(path).map_err(|source| LocalError::DataDir {
        path: path.to_path_buf(),
        source,
    })
}
