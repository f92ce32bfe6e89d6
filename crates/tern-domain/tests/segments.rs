//! Segments on the embedded adapters: stored definitions (versions, validation), real-time evaluation
//! through the `segments` queue, time-based exits through the due index, the published changes, and the
//! sharded member index.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use tern_domain::DomainError;
use tern_domain::ingest::{Event, accept};
use tern_domain::layout;
use tern_domain::segments::SegmentDefinition;
use tern_domain::segments::membership::{SEGMENT_CHANGES_QUEUE, member_count, members};
use tern_domain::segments::realtime::{
    Evaluated, SEGMENTS_QUEUE, SegmentBatch, SegmentEvent, evaluate_message, tick,
};
use tern_domain::segments::store::{
    SegmentError, create_segment, delete_segment, get_segment, get_segment_version, list_segments,
    load_index, update_segment,
};
use tern_embedded::Db;
use tern_embedded::queue::SqliteQueue;
use tern_embedded::table::SqliteTable;

use async_trait::async_trait;
use tern_ports::{
    OutMessage, PortError, PortResult, Ports, Queue, QueueSpec, Received, VirtualClock,
};

const WS: &str = "ws_seg";
const START: &str = "2026-03-01T09:00:00Z";

/// The embedded queue, which can be told to refuse the next send to `segment-changes`.
struct FlakyQueue {
    inner: SqliteQueue,
    refuse_next_change: AtomicBool,
}

#[async_trait]
impl Queue for FlakyQueue {
    async fn declare(&self, spec: &QueueSpec) -> PortResult<()> {
        self.inner.declare(spec).await
    }
    async fn send_batch(&self, queue: &str, messages: Vec<OutMessage>) -> PortResult<()> {
        if queue == SEGMENT_CHANGES_QUEUE && self.refuse_next_change.swap(false, Ordering::SeqCst) {
            return Err(PortError::Unavailable("injected failure".into()));
        }
        self.inner.send_batch(queue, messages).await
    }
    async fn receive(&self, queue: &str, max: u32, wait: Duration) -> PortResult<Vec<Received>> {
        self.inner.receive(queue, max, wait).await
    }
    async fn delete(&self, queue: &str, receipt: &str) -> PortResult<()> {
        self.inner.delete(queue, receipt).await
    }
    async fn change_visibility(
        &self,
        queue: &str,
        receipt: &str,
        timeout: Duration,
    ) -> PortResult<()> {
        self.inner.change_visibility(queue, receipt, timeout).await
    }
}

struct Setup {
    ports: Ports,
    queue: Arc<FlakyQueue>,
    clock: Arc<VirtualClock>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::in_memory().unwrap();
    let clock = Arc::new(VirtualClock::new(START.parse().unwrap()));
    let table = Arc::new(
        SqliteTable::new(db.clone())
            .unwrap()
            .with_clock(clock.clone()),
    );
    let queue = Arc::new(FlakyQueue {
        inner: SqliteQueue::new(db.clone()).unwrap(),
        refuse_next_change: AtomicBool::new(false),
    });
    for name in ["lake", SEGMENTS_QUEUE, SEGMENT_CHANGES_QUEUE] {
        queue
            .declare(&QueueSpec {
                name: name.into(),
                visibility_timeout: Duration::from_secs(30),
                dead_letter: None,
            })
            .await
            .unwrap();
    }
    let ports = common::embedded_ports(dir.path(), db, table, queue.clone(), clock.clone());
    Setup {
        ports,
        queue,
        clock,
        _dir: dir,
    }
}

fn definition(condition: Value) -> SegmentDefinition {
    SegmentDefinition::from_value(&json!({"name": "test", "condition": condition})).unwrap()
}

impl Setup {
    fn now(&self) -> Timestamp {
        use tern_ports::Clock;
        self.clock.now()
    }

    async fn create(&self, id: &str, condition: Value) {
        create_segment(&self.ports, WS, id, definition(condition))
            .await
            .unwrap();
    }

    /// Accepts events as ingestion does, then hands them to segments.
    /// Accepts events as the tracking API does, which publishes them for segment evaluation.
    async fn ingest(&self, events: Vec<Event>) {
        accept(&self.ports, WS, events).await.unwrap();
    }

    /// Every message waiting on `queue`, deleted.
    async fn take(&self, queue: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let received = self.queue.receive(queue, 10, Duration::ZERO).await.unwrap();
            if received.is_empty() {
                return bodies;
            }
            for message in received {
                self.queue.delete(queue, &message.receipt).await.unwrap();
                bodies.push(message.body);
            }
        }
    }

    /// Evaluates every waiting `segments` message (each `times` times, as a redelivery would) and returns
    /// the changes published, as `(type, segment, user)`.
    async fn evaluate_waiting(&self, times: usize) -> Vec<(String, String, String)> {
        for body in self.take(SEGMENTS_QUEUE).await {
            let batch = SegmentBatch::parse(&body).unwrap();
            for _ in 0..times {
                evaluate_message(&self.ports, &batch).await.unwrap();
            }
        }
        self.changes().await
    }

    async fn changes(&self) -> Vec<(String, String, String)> {
        self.take(SEGMENT_CHANGES_QUEUE)
            .await
            .iter()
            .map(|body| {
                let change: Value = serde_json::from_str(body).unwrap();
                assert_eq!(change["workspaceId"], WS);
                assert!(change["at"].as_str().unwrap().parse::<Timestamp>().is_ok());
                let text = |name: &str| change[name].as_str().unwrap().to_string();
                (text("type"), text("segmentId"), text("userId"))
            })
            .collect()
    }

    async fn member_ids(&self, segment: &str) -> BTreeSet<String> {
        let page = members(self.ports.table.as_ref(), WS, segment, None, 1000)
            .await
            .unwrap();
        page.members.into_iter().map(|m| m.user_id).collect()
    }

    async fn count(&self, segment: &str) -> u64 {
        member_count(self.ports.table.as_ref(), WS, segment)
            .await
            .unwrap()
    }
}

fn event(setup: &Setup, kind: &str, message_id: &str, fields: Value) -> Event {
    let at = setup.now().to_string();
    let mut value =
        json!({"messageId": message_id, "type": kind, "timestamp": at, "receivedAt": at});
    value
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    serde_json::from_value(value).unwrap()
}

fn change(kind: &str, segment: &str, user: &str) -> (String, String, String) {
    (format!("segment.{kind}"), segment.into(), user.into())
}

fn invalid_paths(error: SegmentError) -> Vec<String> {
    match error {
        SegmentError::Invalid(errors) => errors.into_iter().map(|e| e.path).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn definitions_are_versioned_and_validated_as_a_set() {
    let setup = setup().await;
    let ports = &setup.ports;
    setup
        .create(
            "pro",
            json!({"trait": "plan", "op": "equals", "value": "pro"}),
        )
        .await;
    let first = get_segment(ports.table.as_ref(), WS, "pro").await.unwrap();
    assert_eq!(first.version, 1);

    setup.clock.advance(SignedDuration::from_secs(60));
    let edited = definition(json!({"trait": "plan", "op": "in", "value": ["pro", "team"]}));
    let second = update_segment(ports, WS, "pro", edited.clone())
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at > first.updated_at);
    let latest = get_segment(ports.table.as_ref(), WS, "pro").await.unwrap();
    assert_eq!((latest.version, &latest.definition), (2, &edited));
    let kept = get_segment_version(ports.table.as_ref(), WS, "pro", 1)
        .await
        .unwrap();
    assert_eq!(kept.definition, first.definition);

    let taken = create_segment(ports, WS, "pro", edited.clone()).await;
    assert!(matches!(
        taken,
        Err(SegmentError::Domain(DomainError::Conflict(_)))
    ));
    let bad_id = create_segment(ports, WS, "a b", edited.clone())
        .await
        .unwrap_err();
    assert_eq!(invalid_paths(bad_id), ["id"]);
    let unknown = create_segment(ports, WS, "fans", definition(json!({"segment": "nobody"})))
        .await
        .unwrap_err();
    assert_eq!(invalid_paths(unknown), ["segments.fans.condition.segment"]);

    setup.create("fans", json!({"segment": "pro"})).await;
    let cycle = update_segment(ports, WS, "pro", definition(json!({"segment": "fans"})))
        .await
        .unwrap_err();
    assert!(!invalid_paths(cycle).is_empty());
    let referenced = delete_segment(ports, WS, "pro").await.unwrap_err();
    assert_eq!(
        invalid_paths(referenced),
        ["segments.fans.condition.segment"]
    );
    let missing = update_segment(ports, WS, "nobody", edited).await;
    assert!(matches!(
        missing,
        Err(SegmentError::Domain(DomainError::NotFound(_)))
    ));

    delete_segment(ports, WS, "fans").await.unwrap();
    let ids: Vec<String> = list_segments(ports.table.as_ref(), WS)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["pro"]);
    assert!(matches!(
        get_segment(ports.table.as_ref(), WS, "fans").await,
        Err(DomainError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_index_is_cached_for_a_few_seconds_and_refreshed_by_local_writes() {
    let setup = setup().await;
    let ports = &setup.ports;
    assert!(load_index(ports, WS).await.unwrap().is_empty());
    setup.create("everyone", json!({"everyone": true})).await;
    // This process's write is seen at once.
    assert_eq!(load_index(ports, WS).await.unwrap().len(), 1);
    // A change made elsewhere (here: straight in the table) is seen once the cache expires.
    ports
        .table
        .delete(&layout::segment_key(WS, "everyone"), None)
        .await
        .unwrap();
    assert_eq!(load_index(ports, WS).await.unwrap().len(), 1);
    setup.clock.advance(SignedDuration::from_secs(6));
    assert!(load_index(ports, WS).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_workspace_without_segments_sends_nothing_to_evaluate() {
    let setup = setup().await;
    let identify = event(
        &setup,
        "identify",
        "i1",
        json!({"userId": "u1", "traits": {"plan": "pro"}}),
    );
    setup.ingest(vec![identify]).await;
    assert!(setup.take(SEGMENTS_QUEUE).await.is_empty());
}

#[tokio::test]
async fn users_enter_and_exit_as_events_arrive_and_windows_pass() {
    let setup = setup().await;
    setup
        .create(
            "pro",
            json!({"trait": "plan", "op": "equals", "value": "pro"}),
        )
        .await;
    setup
        .create(
            "buyers",
            json!({"performed": {"event": "Order Completed", "count": {"atLeast": 2}, "within": "1h"}}),
        )
        .await;
    setup
        .create(
            "pro-buyers",
            json!({"all": [{"segment": "pro"}, {"segment": "buyers"}]}),
        )
        .await;

    let identify = |id: &str, plan: &str| {
        event(
            &setup,
            "identify",
            id,
            json!({"userId": "u1", "traits": {"plan": plan}}),
        )
    };
    setup.ingest(vec![identify("i1", "pro")]).await;
    // Redelivered twice: still one message per change.
    assert_eq!(
        setup.evaluate_waiting(3).await,
        [change("entered", "pro", "u1")]
    );

    let order = |id: &str| {
        event(
            &setup,
            "track",
            id,
            json!({"userId": "u1", "event": "Order Completed"}),
        )
    };
    setup.ingest(vec![order("o1")]).await;
    // A redelivery of the first order must not count it twice.
    assert_eq!(setup.evaluate_waiting(2).await, []);
    setup.clock.advance(SignedDuration::from_mins(10));
    setup.ingest(vec![order("o2")]).await;
    let mut entered = setup.evaluate_waiting(2).await;
    entered.sort();
    assert_eq!(
        entered,
        [
            change("entered", "buyers", "u1"),
            change("entered", "pro-buyers", "u1")
        ]
    );
    assert_eq!(setup.count("buyers").await, 1);

    setup.clock.advance(SignedDuration::from_mins(5));
    setup.ingest(vec![identify("i2", "free")]).await;
    let mut exited = setup.evaluate_waiting(1).await;
    exited.sort();
    assert_eq!(
        exited,
        [
            change("exited", "pro", "u1"),
            change("exited", "pro-buyers", "u1")
        ]
    );
    assert_eq!(setup.count("pro").await, 0);
    assert!(setup.member_ids("pro").await.is_empty());

    // Nothing is due yet: the first order is still inside the hour.
    let ws_now = setup.now();
    assert_eq!(
        tick(&setup.ports, WS, ws_now).await.unwrap(),
        Evaluated::default(),
        "no user is due yet, so none is visited"
    );
    assert_eq!(setup.changes().await, []);

    // An hour after the first order (plus its minute bucket), the window holds one order.
    setup.clock.advance(SignedDuration::from_mins(47));
    let visited = tick(&setup.ports, WS, setup.now()).await.unwrap();
    assert_eq!((visited.users, visited.exited), (1, 1));
    assert_eq!(setup.changes().await, [change("exited", "buyers", "u1")]);
    assert_eq!(setup.count("buyers").await, 0);
    // The user is filed under no further check (one order left, no window can change that alone).
    assert_eq!(
        tick(
            &setup.ports,
            WS,
            setup.now() + SignedDuration::from_hours(24 * 400)
        )
        .await
        .unwrap(),
        Evaluated::default()
    );
    assert_eq!(setup.changes().await, []);
}

#[tokio::test]
async fn concurrent_batches_for_one_user_lose_no_update() {
    let setup = setup().await;
    setup
        .create(
            "twice",
            json!({"performed": {"event": "Login", "count": {"atLeast": 2}}}),
        )
        .await;
    let batch = |id: &str| SegmentBatch {
        id: id.into(),
        workspace_id: WS.into(),
        events: vec![SegmentEvent {
            message_id: id.into(),
            kind: tern_domain::ingest::EventKind::Track,
            user_id: "u1".into(),
            event: Some("Login".into()),
            name: None,
            properties: Default::default(),
            traits: Default::default(),
            timestamp: setup.now(),
        }],
    };
    let (a, b) = (batch("b1"), batch("b2"));
    let (first, second) = tokio::join!(
        evaluate_message(&setup.ports, &a),
        evaluate_message(&setup.ports, &b)
    );
    first.unwrap();
    second.unwrap();
    assert_eq!(setup.changes().await, [change("entered", "twice", "u1")]);
    assert_eq!(
        setup.member_ids("twice").await,
        BTreeSet::from(["u1".to_string()])
    );
}

#[tokio::test]
async fn members_are_read_across_shards_with_a_cursor_and_counted() {
    let setup = setup().await;
    setup.create("all", json!({"everyone": true})).await;
    let events: Vec<SegmentEvent> = (0..90)
        .map(|i| SegmentEvent {
            message_id: format!("m{i}"),
            kind: tern_domain::ingest::EventKind::Identify,
            user_id: format!("user-{i}"),
            event: None,
            name: None,
            properties: Default::default(),
            traits: Default::default(),
            timestamp: setup.now(),
        })
        .collect();
    let batch = SegmentBatch {
        id: "b1".into(),
        workspace_id: WS.into(),
        events,
    };
    let evaluated = evaluate_message(&setup.ports, &batch).await.unwrap();
    assert_eq!((evaluated.users, evaluated.entered), (90, 90));
    assert_eq!(setup.changes().await.len(), 90);
    assert_eq!(setup.count("all").await, 90);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = members(setup.ports.table.as_ref(), WS, "all", cursor.as_deref(), 7)
            .await
            .unwrap();
        assert!(page.members.len() <= 7);
        pages += 1;
        seen.extend(page.members.into_iter().map(|m| m.user_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(pages >= 13, "{pages}");
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a member was listed twice");
    let expected: BTreeSet<String> = (0..90).map(|i| format!("user-{i}")).collect();
    assert_eq!(unique, expected);
    let shards: BTreeSet<u8> = expected
        .iter()
        .map(|u| layout::segment_member_shard(u))
        .collect();
    assert!(shards.len() > 10, "{}", shards.len());

    let forged = members(
        setup.ports.table.as_ref(),
        WS,
        "all",
        Some("not-a-cursor"),
        7,
    )
    .await;
    assert!(matches!(forged, Err(DomainError::Invalid { field, .. }) if field == "cursor"));
}

#[tokio::test]
async fn a_change_whose_message_could_not_be_sent_is_published_by_the_retry_once() {
    let setup = setup().await;
    setup.create("everyone", json!({"everyone": true})).await;
    let identify = event(&setup, "identify", "i1", json!({"userId": "u1"}));
    setup.ingest(vec![identify]).await;
    let body = setup.take(SEGMENTS_QUEUE).await.pop().unwrap();
    let batch = SegmentBatch::parse(&body).unwrap();

    setup.queue.refuse_next_change.store(true, Ordering::SeqCst);
    let failed = evaluate_message(&setup.ports, &batch).await;
    assert!(matches!(
        failed,
        Err(DomainError::Port(PortError::Unavailable(_)))
    ));
    assert_eq!(setup.changes().await, []);
    // The state was written (the batch is applied), and the member index already holds the user.
    assert_eq!(setup.count("everyone").await, 1);

    // The message comes back: the pending change is published, the batch is not applied again.
    evaluate_message(&setup.ports, &batch).await.unwrap();
    evaluate_message(&setup.ports, &batch).await.unwrap();
    assert_eq!(setup.changes().await, [change("entered", "everyone", "u1")]);
    assert_eq!(setup.count("everyone").await, 1);
}
