//! Segment backfills on the embedded adapters: a saved segment is evaluated over the existing users page
//! by page through the `segment-backfill` queue; a redelivered message resumes and publishes nothing
//! twice, and a message of a replaced backfill does nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tern_domain::ingest::{Event, accept};
use tern_domain::segments::SegmentDefinition;
use tern_domain::segments::backfill::{
    BACKFILL_PAGE, BackfillMessage, BackfillStatus, SEGMENT_BACKFILL_QUEUE, StepOutcome,
    backfill_progress, run_backfill_step, start_backfill,
};
use tern_domain::segments::membership::{SEGMENT_CHANGES_QUEUE, member_count};
use tern_domain::segments::realtime::SEGMENTS_QUEUE;
use tern_domain::segments::store::{create_segment, update_segment};
use tern_embedded::Db;
use tern_embedded::queue::SqliteQueue;
use tern_embedded::table::SqliteTable;
use tern_ports::{Ports, Queue, QueueSpec, VirtualClock};

const WS: &str = "ws_backfill";
const START: &str = "2026-03-01T09:00:00Z";

async fn ports(dir: &std::path::Path) -> Ports {
    let db = Db::in_memory().unwrap();
    let clock = Arc::new(VirtualClock::new(START.parse().unwrap()));
    let queue = Arc::new(SqliteQueue::new(db.clone()).unwrap());
    for name in [
        "lake",
        SEGMENTS_QUEUE,
        SEGMENT_CHANGES_QUEUE,
        SEGMENT_BACKFILL_QUEUE,
    ] {
        queue
            .declare(&QueueSpec {
                name: name.into(),
                visibility_timeout: Duration::from_secs(30),
                dead_letter: None,
            })
            .await
            .unwrap();
    }
    let table = Arc::new(
        SqliteTable::new(db.clone())
            .unwrap()
            .with_clock(clock.clone()),
    );
    common::embedded_ports(dir, db, table, queue, clock)
}

fn identify(user: usize) -> Event {
    let plan = if user.is_multiple_of(3) {
        "pro"
    } else {
        "free"
    };
    serde_json::from_value(json!({
        "messageId": format!("i{user}"), "type": "identify", "userId": format!("u{user:03}"),
        "traits": {"plan": plan}, "timestamp": START, "receivedAt": START,
    }))
    .unwrap()
}

fn plan_is(plan: &str) -> SegmentDefinition {
    SegmentDefinition::from_value(&json!({"name": plan,
        "condition": {"trait": "plan", "op": "equals", "value": plan}}))
    .unwrap()
}

/// Every message waiting on `queue`, deleted.
async fn take(ports: &Ports, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let received = ports
            .queue
            .receive(queue, 10, Duration::ZERO)
            .await
            .unwrap();
        if received.is_empty() {
            return bodies;
        }
        for message in received {
            ports.queue.delete(queue, &message.receipt).await.unwrap();
            bodies.push(message.body);
        }
    }
}

#[tokio::test]
async fn a_backfill_walks_every_user_in_pages_and_a_redelivery_resumes_without_repeating_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ports = ports(dir.path()).await;
    let users = 250;
    accept(&ports, WS, (0..users).map(identify).collect())
        .await
        .unwrap();
    let pro_users = (0..users).filter(|user| user.is_multiple_of(3)).count() as u64;
    create_segment(&ports, WS, "pro", plan_is("pro"))
        .await
        .unwrap();
    start_backfill(&ports, WS, "pro", 1).await.unwrap();

    let mut steps = 0;
    let mut redelivered = false;
    loop {
        let bodies = take(&ports, SEGMENT_BACKFILL_QUEUE).await;
        if bodies.is_empty() {
            break;
        }
        for body in bodies {
            let message = BackfillMessage::parse(&body).unwrap();
            let outcome = run_backfill_step(&ports, &message).await.unwrap();
            steps += 1;
            if !redelivered {
                // The first message comes back (its delete was lost): it resumes after the first page.
                redelivered = true;
                assert_eq!(
                    outcome,
                    StepOutcome::Evaluated {
                        users: BACKFILL_PAGE as usize,
                        more: true
                    }
                );
                let again = run_backfill_step(&ports, &message).await.unwrap();
                assert_eq!(
                    again,
                    StepOutcome::Evaluated {
                        users: BACKFILL_PAGE as usize,
                        more: true
                    }
                );
                let progress = backfill_progress(ports.table.as_ref(), WS, "pro")
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(progress.users_evaluated, 2 * u64::from(BACKFILL_PAGE));
            }
        }
        assert!(steps < 20, "the backfill does not end");
    }
    let progress = backfill_progress(ports.table.as_ref(), WS, "pro")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(progress.status, BackfillStatus::Done);
    assert_eq!(progress.users_evaluated, users as u64);
    assert!(progress.finished_at.is_some());
    assert_eq!(
        member_count(ports.table.as_ref(), WS, "pro").await.unwrap(),
        pro_users
    );
    // Two messages for the pages after the first were in flight; one of them did the work.
    let changes = take(&ports, SEGMENT_CHANGES_QUEUE).await;
    assert_eq!(changes.len() as u64, pro_users);
}

#[tokio::test]
async fn a_message_of_a_replaced_backfill_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ports = ports(dir.path()).await;
    accept(&ports, WS, (0..5).map(identify).collect())
        .await
        .unwrap();
    create_segment(&ports, WS, "plan", plan_is("pro"))
        .await
        .unwrap();
    start_backfill(&ports, WS, "plan", 1).await.unwrap();
    let first = take(&ports, SEGMENT_BACKFILL_QUEUE).await;
    update_segment(&ports, WS, "plan", plan_is("free"))
        .await
        .unwrap();
    start_backfill(&ports, WS, "plan", 2).await.unwrap();

    let stale = BackfillMessage::parse(&first[0]).unwrap();
    assert_eq!(stale.version, 1);
    assert_eq!(
        run_backfill_step(&ports, &stale).await.unwrap(),
        StepOutcome::Skipped
    );
    assert_eq!(
        member_count(ports.table.as_ref(), WS, "plan")
            .await
            .unwrap(),
        0
    );

    let current = take(&ports, SEGMENT_BACKFILL_QUEUE).await;
    let message = BackfillMessage::parse(&current[0]).unwrap();
    assert_eq!(
        run_backfill_step(&ports, &message).await.unwrap(),
        StepOutcome::Evaluated {
            users: 5,
            more: false
        }
    );
    // Users 1, 2 and 4 are on the free plan.
    assert_eq!(
        member_count(ports.table.as_ref(), WS, "plan")
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        run_backfill_step(&ports, &message).await.unwrap(),
        StepOutcome::Skipped
    );
}
