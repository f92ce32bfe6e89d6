//! The segment evaluator: the `segments` queue's handler. Each message holds accepted events of one
//! workspace (`tern_domain::segments::realtime::SegmentBatch`); evaluating it updates each user's segment
//! state, the member index, and publishes the membership changes on the `segment-changes` queue (which
//! journeys will consume; until then nothing reads it and messages wait there).
//!
//! Evaluation is safe to repeat for a message (the user's state remembers the batches it applied), so a
//! message that fails simply comes back.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tern_domain::segments::realtime::{SEGMENTS_QUEUE, SegmentBatch, evaluate_message};
use tern_ports::Received;

use crate::AppState;
use crate::queues::{BatchOutcome, Batching, QueueHandler};

/// Up to 50 messages gathered for up to 1 s: evaluation is latency-sensitive (journeys start from its
/// changes), so batches stay small; the window is far below the 30 s visibility timeout.
pub const SEGMENTS_BATCHING: Batching = Batching {
    max_messages: 50,
    window: Duration::from_secs(1),
};

/// How many messages of a batch are evaluated at the same time.
const CONCURRENT_MESSAGES: usize = 4;

/// The `segments` queue's handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct SegmentEvaluator;

#[async_trait]
impl QueueHandler for SegmentEvaluator {
    fn queue(&self) -> &str {
        SEGMENTS_QUEUE
    }

    fn batching(&self) -> Batching {
        SEGMENTS_BATCHING
    }

    async fn handle(&self, state: &AppState, messages: Vec<Received>) -> BatchOutcome {
        let failed: Vec<Option<String>> =
            futures::stream::iter(messages)
                .map(|message| async move {
                    (!evaluate_one(state, &message).await).then_some(message.id)
                })
                .buffer_unordered(CONCURRENT_MESSAGES)
                .collect()
                .await;
        BatchOutcome::failed(failed.into_iter().flatten())
    }
}

/// Evaluates one message; false when it should come back (or, malformed, reach the dead-letter queue).
async fn evaluate_one(state: &AppState, message: &Received) -> bool {
    let batch = match SegmentBatch::parse(&message.body) {
        Ok(batch) => batch,
        Err(reason) => {
            tracing::error!(queue = SEGMENTS_QUEUE, message_id = %message.id, %reason,
                "malformed segments message; it will reach the dead-letter queue");
            return false;
        }
    };
    match evaluate_message(&state.ports, &batch).await {
        Ok(evaluated) => {
            tracing::debug!(queue = SEGMENTS_QUEUE, message_id = %message.id,
                workspace_id = %batch.workspace_id, users = evaluated.users,
                entered = evaluated.entered, exited = evaluated.exited, "segments evaluated");
            true
        }
        Err(error) => {
            tracing::error!(queue = SEGMENTS_QUEUE, message_id = %message.id,
                workspace_id = %batch.workspace_id, %error,
                "cannot evaluate segments; the message will be retried");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;
    use tern_domain::segments::SegmentDefinition;
    use tern_domain::segments::membership::member_count;
    use tern_domain::segments::store::create_segment;
    use tern_embedded::Db;
    use tern_embedded::blobs::DirBlobs;
    use tern_embedded::mail::Outbox;
    use tern_embedded::queue::SqliteQueue;
    use tern_embedded::table::SqliteTable;
    use tern_embedded::workflows::{EmbeddedWorkflows, NoTasks};
    use tern_ports::{Ports, VirtualClock};

    use super::*;
    use crate::AppConfig;

    async fn state(dir: &std::path::Path) -> AppState {
        let db = Db::in_memory().unwrap();
        let clock = Arc::new(VirtualClock::new("2026-03-01T09:00:00Z".parse().unwrap()));
        let queue = Arc::new(SqliteQueue::new(db.clone()).unwrap());
        for spec in crate::queues::queue_specs() {
            tern_ports::Queue::declare(queue.as_ref(), &spec)
                .await
                .unwrap();
        }
        let ports = Ports {
            table: Arc::new(SqliteTable::new(db.clone()).unwrap()),
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
            workflows: Arc::new(
                EmbeddedWorkflows::new(db, clock.clone(), Arc::new(NoTasks)).unwrap(),
            ),
            clock,
        };
        AppState::new(ports, AppConfig::default())
    }

    fn received(id: &str, body: String) -> Received {
        Received {
            id: id.into(),
            receipt: format!("r-{id}"),
            body,
            receive_count: 1,
            attributes: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn a_malformed_message_fails_alone_and_the_others_are_evaluated() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let everyone =
            SegmentDefinition::from_value(&json!({"name": "All", "condition": {"everyone": true}}))
                .unwrap();
        create_segment(&state.ports, "ws_1", "all", everyone)
            .await
            .unwrap();
        let batch = |id: &str, user: &str| {
            json!({"id": id, "workspaceId": "ws_1", "events": [{
                "messageId": id, "type": "identify", "userId": user,
                "timestamp": "2026-03-01T09:00:00Z"}]})
            .to_string()
        };
        let messages = vec![
            received("q1", batch("b1", "u1")),
            received("q2", "{not json".into()),
            received("q3", batch("b2", "u2")),
        ];
        let outcome = SegmentEvaluator.handle(&state, messages).await;
        assert_eq!(outcome.failed, ["q2"]);
        let count = member_count(state.ports.table.as_ref(), "ws_1", "all")
            .await
            .unwrap();
        assert_eq!(count, 2);
    }
}
