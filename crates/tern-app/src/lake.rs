//! The lake writer: the `lake` queue's handler, which turns batches of accepted events into Parquet
//! objects under `lake/events/workspace=<id>/dt=<YYYY-MM-DD>/hour=<HH>/` (see `tern-lake` and
//! `docs/lake.md`).
//!
//! It asks for large batches (many queue messages, gathered over a window) and writes ONE object per
//! partition of the whole batch, so that the lake holds few, large files rather than one per request.
//! Delivery is at least once: a message whose events were only partly written fails as a whole and comes
//! back, so the lake may hold an event twice; `message_id` is the key readers deduplicate on.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use tern_domain::ingest::{Event, LakeBatch};
use tern_lake::{CONTENT_TYPE, Partition, encode_events};
use tern_ports::{Blobs, Received};
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::AppState;
use crate::queues::{BatchOutcome, Batching, QueueHandler};

/// The queue the lake writer consumes.
pub const LAKE_QUEUE: &str = "lake";

/// Up to 1000 messages gathered for up to 10 s: at most one object per partition every 10 s under load.
/// The window stays a third of the queue's 30 s visibility timeout, which leaves the write 20 s. The SAM
/// template's `LakeWriterFunction` event source says the same.
pub const LAKE_BATCHING: Batching = Batching {
    max_messages: 1000,
    window: Duration::from_secs(10),
};

/// How many objects are encoded and stored at the same time.
const CONCURRENT_WRITES: usize = 8;

/// The `lake` queue's handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct LakeWriter;

#[async_trait]
impl QueueHandler for LakeWriter {
    fn queue(&self) -> &str {
        LAKE_QUEUE
    }

    fn batching(&self) -> Batching {
        LAKE_BATCHING
    }

    async fn handle(&self, state: &AppState, messages: Vec<Received>) -> BatchOutcome {
        write_to_lake(&state.ports.blobs, messages).await
    }
}

/// Why a message on the `lake` queue is not a lake batch.
#[derive(Debug, Error)]
pub enum LakeMessageError {
    #[error("the body is not a lake batch: {0}")]
    Json(#[from] serde_json::Error),
    #[error("workspaceId is empty")]
    EmptyWorkspace,
}

/// Reads a message body as a [`LakeBatch`].
pub fn parse_lake_message(body: &str) -> Result<LakeBatch, LakeMessageError> {
    let batch: LakeBatch = serde_json::from_str(body)?;
    if batch.workspace_id.trim().is_empty() {
        return Err(LakeMessageError::EmptyWorkspace);
    }
    Ok(batch)
}

/// The events of one partition, and the messages they came from.
#[derive(Default)]
struct Group {
    events: Vec<Event>,
    message_ids: BTreeSet<String>,
    event_ids: HashSet<String>,
}

impl Group {
    /// Adds an event, once per message id: a duplicate within the batch (a message delivered twice)
    /// would only be a duplicate row.
    fn add(&mut self, queue_message_id: &str, event: Event) {
        self.message_ids.insert(queue_message_id.to_string());
        if self.event_ids.insert(event.message_id.clone()) {
            self.events.push(event);
        }
    }
}

/// Writes one object per partition of the batch and fails the messages that were malformed or that have
/// an event in a partition whose object could not be written.
pub async fn write_to_lake(blobs: &Arc<dyn Blobs>, messages: Vec<Received>) -> BatchOutcome {
    let mut failed = BTreeSet::new();
    let mut groups: BTreeMap<Partition, Group> = BTreeMap::new();
    for message in messages {
        match parse_lake_message(&message.body) {
            Ok(batch) => {
                for event in batch.events {
                    let partition = Partition::of(&batch.workspace_id, event.timestamp);
                    groups.entry(partition).or_default().add(&message.id, event);
                }
            }
            Err(reason) => {
                tracing::error!(queue = LAKE_QUEUE, message_id = %message.id, %reason,
                    "malformed lake message; it will reach the dead-letter queue");
                failed.insert(message.id);
            }
        }
    }
    failed.extend(write_groups(blobs, groups).await);
    BatchOutcome::failed(failed)
}

/// Writes every group, a few at a time, and returns the queue message ids of the groups not written.
async fn write_groups(
    blobs: &Arc<dyn Blobs>,
    groups: BTreeMap<Partition, Group>,
) -> BTreeSet<String> {
    let permits = Arc::new(Semaphore::new(CONCURRENT_WRITES));
    let mut unconfirmed: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut writes = JoinSet::new();
    for (index, (partition, group)) in groups.into_iter().enumerate() {
        unconfirmed.insert(index, group.message_ids);
        let (blobs, permits) = (Arc::clone(blobs), Arc::clone(&permits));
        writes.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            (
                index,
                write_object(blobs.as_ref(), &partition, group.events).await,
            )
        });
    }
    while let Some(joined) = writes.join_next().await {
        match joined {
            Ok((index, Ok(()))) => {
                unconfirmed.remove(&index);
            }
            Ok((_, Err(error))) => tracing::error!(queue = LAKE_QUEUE, %error,
                "cannot write a lake object; its messages will be retried"),
            // The group stays unconfirmed, so its messages fail.
            Err(error) => tracing::error!(queue = LAKE_QUEUE, %error, "a lake write panicked"),
        }
    }
    unconfirmed.into_values().flatten().collect()
}

/// Why one lake object was not written.
#[derive(Debug, Error)]
enum WriteError {
    #[error("cannot encode {events} events for {prefix}: {reason}")]
    Encode {
        prefix: String,
        events: usize,
        reason: String,
    },
    #[error("cannot store {key}: {source}")]
    Store {
        key: String,
        source: tern_ports::PortError,
    },
}

/// Encodes `events` (off the async threads: it is CPU work) and stores them as one new object.
async fn write_object(
    blobs: &dyn Blobs,
    partition: &Partition,
    events: Vec<Event>,
) -> Result<(), WriteError> {
    let key = partition.object_key(&events);
    let count = events.len();
    let encode_error = |reason: String| WriteError::Encode {
        prefix: partition.prefix(),
        events: count,
        reason,
    };
    let file = tokio::task::spawn_blocking(move || encode_events(&events))
        .await
        .map_err(|join| encode_error(join.to_string()))?
        .map_err(|error| encode_error(error.to_string()))?;
    let size = file.len();
    blobs
        .put(&key, Bytes::from(file), Some(CONTENT_TYPE))
        .await
        .map_err(|source| WriteError::Store {
            key: key.clone(),
            source,
        })?;
    tracing::info!(queue = LAKE_QUEUE, workspace_id = partition.workspace_id(), %key,
        events = count, bytes = size, "lake object written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tern_embedded::blobs::DirBlobs;
    use tern_ports::{BlobPage, ByteStream, PortError, PortResult, UploadTarget};

    use super::*;

    fn dir_blobs(dir: &std::path::Path) -> Arc<dyn Blobs> {
        Arc::new(
            DirBlobs::new(
                dir.join("blobs"),
                "http://127.0.0.1:3000".into(),
                vec![7; 32],
            )
            .unwrap(),
        )
    }

    /// Refuses to store any key containing `refused`; otherwise the directory store.
    struct Refusing {
        inner: Arc<dyn Blobs>,
        refused: &'static str,
    }

    #[async_trait]
    impl Blobs for Refusing {
        async fn put(&self, key: &str, body: Bytes, content_type: Option<&str>) -> PortResult<()> {
            if key.contains(self.refused) {
                return Err(PortError::Unavailable(
                    "the store is down for this test".into(),
                ));
            }
            self.inner.put(key, body, content_type).await
        }
        async fn get(&self, key: &str) -> PortResult<Option<Bytes>> {
            self.inner.get(key).await
        }
        async fn delete(&self, key: &str) -> PortResult<()> {
            self.inner.delete(key).await
        }
        async fn list(
            &self,
            prefix: &str,
            cursor: Option<String>,
            limit: u32,
        ) -> PortResult<BlobPage> {
            self.inner.list(prefix, cursor, limit).await
        }
        async fn put_stream(
            &self,
            key: &str,
            body: ByteStream,
            content_type: Option<&str>,
        ) -> PortResult<u64> {
            self.inner.put_stream(key, body, content_type).await
        }
        async fn get_stream(&self, key: &str) -> PortResult<Option<ByteStream>> {
            self.inner.get_stream(key).await
        }
        async fn upload_target(&self, key: &str, expires: Duration) -> PortResult<UploadTarget> {
            self.inner.upload_target(key, expires).await
        }
    }

    fn event(message_id: &str, timestamp: &str) -> serde_json::Value {
        serde_json::json!({
            "messageId": message_id, "type": "track", "userId": "u-1", "event": "Clicked",
            "timestamp": timestamp, "receivedAt": timestamp
        })
    }

    fn message(id: &str, workspace_id: &str, events: Vec<serde_json::Value>) -> Received {
        let body = serde_json::json!({"workspaceId": workspace_id, "events": events});
        Received {
            id: id.to_string(),
            receipt: format!("receipt-{id}"),
            body: body.to_string(),
            receive_count: 1,
            attributes: BTreeMap::new(),
        }
    }

    /// Every lake object: its key and the message ids it holds.
    async fn lake_objects(blobs: &Arc<dyn Blobs>) -> Vec<(String, Vec<String>)> {
        let page = blobs
            .list(tern_lake::EVENTS_PREFIX, None, 1000)
            .await
            .unwrap();
        let mut objects = Vec::new();
        for blob in page.blobs {
            let body = blobs.get(&blob.key).await.unwrap().unwrap();
            objects.push((blob.key, tern_lake::read_message_ids(body).unwrap()));
        }
        objects
    }

    fn prefix_of(key: &str) -> &str {
        &key[..=key.rfind('/').unwrap()]
    }

    #[tokio::test]
    async fn a_batch_of_many_messages_becomes_one_object_per_partition() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir_blobs(dir.path());
        let mut messages: Vec<Received> = (0..40)
            .map(|i| {
                message(
                    &format!("q-{i}"),
                    "ws_a",
                    vec![event(&format!("m-{i}"), "2026-01-02T03:04:05Z")],
                )
            })
            .collect();
        messages.push(message(
            "q-late",
            "ws_a",
            vec![event("m-late", "2026-01-02T04:00:00Z")],
        ));
        messages.push(message(
            "q-other",
            "ws_b",
            vec![event("m-other", "2026-01-02T03:30:00Z")],
        ));

        let outcome = write_to_lake(&blobs, messages).await;
        assert_eq!(outcome, BatchOutcome::all_succeeded());

        let objects = lake_objects(&blobs).await;
        let prefixes: Vec<&str> = objects.iter().map(|(key, _)| prefix_of(key)).collect();
        assert_eq!(
            prefixes,
            vec![
                "lake/events/workspace=ws_a/dt=2026-01-02/hour=03/",
                "lake/events/workspace=ws_a/dt=2026-01-02/hour=04/",
                "lake/events/workspace=ws_b/dt=2026-01-02/hour=03/",
            ]
        );
        let expected: Vec<String> = (0..40).map(|i| format!("m-{i}")).collect();
        assert_eq!(objects[0].1, expected);
        assert_eq!(objects[1].1, vec!["m-late"]);
        assert_eq!(objects[2].1, vec!["m-other"]);
    }

    #[tokio::test]
    async fn an_event_delivered_twice_in_one_batch_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir_blobs(dir.path());
        let copy = || vec![event("m-1", "2026-01-02T03:04:05Z")];
        let outcome = write_to_lake(
            &blobs,
            vec![
                message("q-1", "ws_a", copy()),
                message("q-2", "ws_a", copy()),
            ],
        )
        .await;
        assert_eq!(outcome, BatchOutcome::all_succeeded());
        let objects = lake_objects(&blobs).await;
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].1, vec!["m-1"]);
    }

    #[tokio::test]
    async fn malformed_messages_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir_blobs(dir.path());
        let mut not_json = message("q-not-json", "ws_a", vec![]);
        not_json.body = "{not json".into();
        let mut no_workspace = message("q-no-workspace", "ws_a", vec![]);
        no_workspace.body = serde_json::json!({"events": []}).to_string();
        let blank_workspace = message("q-blank", " ", vec![event("m-0", "2026-01-02T03:04:05Z")]);
        let good = message("q-good", "ws_a", vec![event("m-1", "2026-01-02T03:04:05Z")]);

        let outcome =
            write_to_lake(&blobs, vec![not_json, no_workspace, blank_workspace, good]).await;
        let mut failed = outcome.failed.clone();
        failed.sort();
        assert_eq!(failed, vec!["q-blank", "q-no-workspace", "q-not-json"]);
        let objects = lake_objects(&blobs).await;
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].1, vec!["m-1"]);
    }

    #[test]
    fn a_malformed_message_is_explained() {
        let missing = parse_lake_message(r#"{"events": []}"#).unwrap_err();
        assert!(
            missing.to_string().contains("missing field `workspaceId`"),
            "{missing}"
        );
        let blank = parse_lake_message(r#"{"workspaceId": "", "events": []}"#).unwrap_err();
        assert_eq!(blank.to_string(), "workspaceId is empty");
    }

    #[tokio::test]
    async fn a_message_fails_when_any_partition_holding_its_events_was_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let blobs: Arc<dyn Blobs> = Arc::new(Refusing {
            inner: dir_blobs(dir.path()),
            refused: "hour=05",
        });
        let only_hour_4 = message("q-4", "ws_a", vec![event("m-4", "2026-01-02T04:00:00Z")]);
        let both_hours = message(
            "q-both",
            "ws_a",
            vec![
                event("m-4b", "2026-01-02T04:10:00Z"),
                event("m-5", "2026-01-02T05:10:00Z"),
            ],
        );
        let only_hour_5 = message("q-5", "ws_a", vec![event("m-5b", "2026-01-02T05:20:00Z")]);
        let empty = message("q-empty", "ws_a", vec![]);

        let outcome =
            write_to_lake(&blobs, vec![only_hour_4, both_hours, only_hour_5, empty]).await;
        let mut failed = outcome.failed.clone();
        failed.sort();
        assert_eq!(failed, vec!["q-5", "q-both"]);
        let objects = lake_objects(&blobs).await;
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].1, vec!["m-4", "m-4b"]);
    }

    #[test]
    fn the_lambda_event_source_batches_as_the_local_worker_does() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
        let template = std::fs::read_to_string(path).unwrap();
        let start = template
            .find("\n  LakeWriterFunction:\n")
            .expect("the template declares LakeWriterFunction");
        let function = &template[start..];
        let setting = |name: &str| {
            function
                .lines()
                .find_map(|line| line.trim().strip_prefix(name))
                .map(|value| value.trim().to_string())
        };
        assert_eq!(
            setting("BatchSize:"),
            Some(LAKE_BATCHING.max_messages.to_string())
        );
        assert_eq!(
            setting("MaximumBatchingWindowInSeconds:"),
            Some(LAKE_BATCHING.window.as_secs().to_string())
        );
    }
}
