//! The queue contract against this engine.

use std::collections::HashMap;
use std::time::Duration;

use tern_aws::queue::SqsQueue;
use tern_ports::{PortError, Queue};

async fn sqs_queue() -> Box<SqsQueue> {
    let config = crate::moto_config().await;
    Box::new(SqsQueue::new(&config, HashMap::new()))
}

tern_contract::queue_contract!(sqs_queue());

/// Nothing listens on the discard port: the adapter reports the endpoint as unavailable, on one line.
#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    let endpoint = crate::UNREACHABLE_ENDPOINT;
    let config = crate::unreachable_config().await;
    let queue = SqsQueue::new(&config, HashMap::new());

    let error = queue
        .receive("orders", 1, Duration::ZERO)
        .await
        .expect_err("nothing listens there");
    let PortError::Unavailable(message) = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(
        message.contains(endpoint),
        "the message names the endpoint: {message}"
    );
    assert!(
        message.contains("orders"),
        "the message names the queue: {message}"
    );
    assert!(
        !message.contains('\n'),
        "the message is one line: {message}"
    );
}
