//! What the domain's integration tests share: the embedded engine's ports around a given table and queue.

use std::path::Path;
use std::sync::Arc;

use tern_embedded::Db;
use tern_embedded::blobs::DirBlobs;
use tern_embedded::mail::Outbox;
use tern_embedded::workflows::{EmbeddedWorkflows, NoTasks};
use tern_ports::{Clock, Ports, Queue, Table};

/// The ports of an embedded engine on `db`, with the test's own table and queue (often wrapped to inject
/// failures), and blobs and an outbox under `dir`.
pub fn embedded_ports(
    dir: &Path,
    db: Db,
    table: Arc<dyn Table>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
) -> Ports {
    Ports {
        table,
        queue,
        blobs: Arc::new(
            DirBlobs::new(
                dir.join("blobs"),
                "http://127.0.0.1:3000".into(),
                vec![7; 32],
            )
            .unwrap(),
        ),
        mail: Arc::new(Outbox::new(dir.join("outbox"), None).unwrap()),
        workflows: Arc::new(EmbeddedWorkflows::new(db, clock.clone(), Arc::new(NoTasks)).unwrap()),
        clock,
    }
}
