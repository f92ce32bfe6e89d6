//! Real-time segments on both engines: accepted events go through the `segments` queue and its registered
//! handler, memberships land in the sharded member index, and each change is published once on
//! `segment-changes`, even when a `segments` message is delivered again.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tern_domain::ingest::{Event, accept};
use tern_domain::segments::SegmentDefinition;
use tern_domain::segments::membership::{SEGMENT_CHANGES_QUEUE, member_count, members};
use tern_domain::segments::realtime::SEGMENTS_QUEUE;
use tern_domain::segments::store::create_segment;
use tern_ports::OutMessage;
use tern_tests::{TestEngine, on_both_engines};

fn identify(message_id: &str, user_id: &str, plan: &str) -> Event {
    let now = jiff::Timestamp::now().to_string();
    serde_json::from_value(json!({
        "messageId": message_id,
        "type": "identify",
        "userId": user_id,
        "traits": {"plan": plan},
        "timestamp": now,
        "receivedAt": now,
    }))
    .expect("a valid event")
}

/// Every message waiting on `queue`, deleted.
async fn take(engine: &TestEngine, queue: &str) -> Vec<String> {
    let port = &engine.ports().queue;
    let mut bodies = Vec::new();
    loop {
        let received = port
            .receive(queue, 10, Duration::ZERO)
            .await
            .expect("receive");
        if received.is_empty() {
            return bodies;
        }
        for message in received {
            port.delete(queue, &message.receipt).await.expect("delete");
            bodies.push(message.body);
        }
    }
}

/// The published changes, as `(type, segment, user)`, sorted.
async fn changes(engine: &TestEngine, workspace_id: &str) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = take(engine, SEGMENT_CHANGES_QUEUE)
        .await
        .iter()
        .map(|body| {
            let change: Value = serde_json::from_str(body).expect("a JSON change");
            assert_eq!(change["workspaceId"], workspace_id);
            let text = |name: &str| change[name].as_str().expect(name).to_string();
            (text("type"), text("segmentId"), text("userId"))
        })
        .collect();
    found.sort();
    found
}

fn change(kind: &str, segment: &str, user: &str) -> (String, String, String) {
    (format!("segment.{kind}"), segment.into(), user.into())
}

async fn events_move_users_in_and_out_of_segments_once_per_change(engine: TestEngine) {
    let created = engine.workspace().await;
    let ws = created.workspace.id.as_str();
    let ports = engine.ports();
    let pro = SegmentDefinition::from_value(
        &json!({"name": "Pro", "condition": {"trait": "plan", "op": "equals", "value": "pro"}}),
    )
    .expect("a valid definition");
    create_segment(ports, ws, "pro", pro)
        .await
        .expect("the segment is saved");

    let events = vec![
        identify("i1", "u1", "pro"),
        identify("i2", "u2", "pro"),
        identify("i3", "u3", "free"),
    ];
    // Accepting the events publishes them for segment evaluation.
    accept(ports, ws, events).await.expect("accepted");
    // The message is delivered three times, one after the other (moto does not isolate concurrent
    // conditional writes as DynamoDB does; concurrency is covered by the domain's tests).
    let bodies = take(&engine, SEGMENTS_QUEUE).await;
    assert_eq!(bodies.len(), 1);
    for _ in 0..3 {
        ports
            .queue
            .send_batch(SEGMENTS_QUEUE, vec![OutMessage::new(bodies[0].clone())])
            .await
            .expect("delivered");
        assert_eq!(engine.drain(SEGMENTS_QUEUE).await, 1);
    }
    assert_eq!(
        changes(&engine, ws).await,
        [
            change("entered", "pro", "u1"),
            change("entered", "pro", "u2")
        ]
    );
    let table = ports.table.as_ref();
    assert_eq!(member_count(table, ws, "pro").await.expect("count"), 2);
    let page = members(table, ws, "pro", None, 100).await.expect("members");
    let ids: BTreeSet<String> = page.members.into_iter().map(|m| m.user_id).collect();
    assert_eq!(ids, BTreeSet::from(["u1".to_string(), "u2".to_string()]));

    let downgrade = vec![identify("i4", "u1", "free")];
    accept(ports, ws, downgrade).await.expect("accepted");
    engine.drain(SEGMENTS_QUEUE).await;
    assert_eq!(changes(&engine, ws).await, [change("exited", "pro", "u1")]);
    assert_eq!(member_count(table, ws, "pro").await.expect("count"), 1);
}

on_both_engines!(events_move_users_in_and_out_of_segments_once_per_change);
