//! The SQS batch contract over the shared fixture `events/sqs-send-batch.json`.

use std::path::PathBuf;

use aws_lambda_events::sqs::SqsEvent;
use serde_json::{Value, json};
use tern_lambda::{
    RecordError, SqsEventError, UnreadableRecord, handle_sqs_event, received_messages,
    sqs_batch_response,
};
use tern_ports::Received;

const FIRST: &str = "0d2c7a4e-5b1f-4c39-9f0e-2a6b8d3e1c01";
const SECOND: &str = "6f1e9b2d-8c4a-4e7b-a1d3-5c9e0f2b7a02";

fn fixture_json() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/sqs-send-batch.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn event(json: Value) -> SqsEvent {
    serde_json::from_value(json).expect("an SQS event")
}

#[test]
fn records_become_received_messages_with_their_receive_count_and_attributes() {
    let batch = received_messages(event(fixture_json())).unwrap();

    assert!(batch.unreadable.is_empty(), "{:?}", batch.unreadable);
    assert_eq!(
        batch.messages,
        vec![
            Received {
                id: FIRST.into(),
                receipt: "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a-first".into(),
                body: r#"{"message_id":"bc_01:v1:send:user-1:0"}"#.into(),
                receive_count: 1,
                attributes: [("workspace".to_string(), "ws_demo".to_string())].into(),
            },
            Received {
                id: SECOND.into(),
                receipt: "AQEBzWwaftRI0KuVm4tP+/7q1rGgNqicHq-second".into(),
                body: r#"{"message_id":"bc_01:v1:send:user-2:0"}"#.into(),
                receive_count: 4,
                attributes: Default::default(),
            },
        ]
    );
}

#[test]
fn a_record_without_a_usable_receive_count_is_unreadable_not_dropped() {
    let mut json = fixture_json();
    json["Records"][0]["attributes"]["ApproximateReceiveCount"] = json!("many");
    json["Records"][1]["attributes"]
        .as_object_mut()
        .unwrap()
        .remove("ApproximateReceiveCount");

    let batch = received_messages(event(json)).unwrap();

    assert!(batch.messages.is_empty());
    assert_eq!(
        batch.unreadable,
        vec![
            UnreadableRecord {
                message_id: FIRST.into(),
                reason: RecordError::BadReceiveCount("many".into())
            },
            UnreadableRecord {
                message_id: SECOND.into(),
                reason: RecordError::MissingField("ApproximateReceiveCount"),
            },
        ]
    );
}

#[test]
fn a_record_without_a_message_id_fails_the_whole_batch() {
    let mut json = fixture_json();
    json["Records"][1]
        .as_object_mut()
        .unwrap()
        .remove("messageId");

    assert_eq!(
        received_messages(event(json)).unwrap_err(),
        SqsEventError::MissingMessageId { index: 1 }
    );
}

#[test]
fn the_batch_response_lists_the_failed_ids_as_lambda_expects() {
    let response = serde_json::to_value(sqs_batch_response([SECOND])).unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": SECOND}]})
    );

    let empty = serde_json::to_value(sqs_batch_response(Vec::<String>::new())).unwrap();
    assert_eq!(empty, json!({"batchItemFailures": []}));
}

#[tokio::test]
async fn the_handler_failures_and_the_unreadable_records_are_reported() {
    let mut json = fixture_json();
    json["Records"].as_array_mut().unwrap().push(json!({
        "messageId": "third", "receiptHandle": "r3", "attributes": {"ApproximateReceiveCount": "1"}
    }));
    let mut handed = Vec::new();

    let response = handle_sqs_event(event(json), |messages| {
        handed = messages.iter().map(|message| message.id.clone()).collect();
        async { vec![FIRST.to_string()] }
    })
    .await
    .unwrap();

    assert_eq!(handed, vec![FIRST.to_string(), SECOND.to_string()]);
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["third", FIRST]);
}

#[tokio::test]
async fn a_batch_with_nothing_readable_does_not_reach_the_handler() {
    let mut json = fixture_json();
    json["Records"].as_array_mut().unwrap().truncate(1);
    json["Records"][0].as_object_mut().unwrap().remove("body");
    let mut called = false;

    let response = handle_sqs_event(event(json), |_| {
        called = true;
        async { Vec::new() }
    })
    .await
    .unwrap();

    assert!(!called);
    assert_eq!(
        serde_json::to_value(response).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": FIRST}]})
    );
}
