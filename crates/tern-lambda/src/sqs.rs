//! The SQS batch contract of Lambda: an `SqsEvent` in, the ids of the messages that failed out
//! (`batchItemFailures`), so that only those are redelivered and, after the queue's `maxReceiveCount`,
//! moved to its dead-letter queue. This needs `FunctionResponseTypes: [ReportBatchItemFailures]` on the
//! event source in the template.

use std::collections::BTreeMap;
use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tern_ports::Received;
use thiserror::Error;

/// The system attribute SQS counts receives in.
const RECEIVE_COUNT: &str = "ApproximateReceiveCount";

/// The event as the queue handlers see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SqsBatch {
    pub messages: Vec<Received>,
    /// Records that carry an id but cannot be read as a message. They are reported as failures rather than
    /// dropped, so they reach the dead-letter queue where someone can look at them.
    pub unreadable: Vec<UnreadableRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRecord {
    pub message_id: String,
    pub reason: RecordError,
}

/// Why one record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("the record has no {0}")]
    MissingField(&'static str),
    #[error("the record's ApproximateReceiveCount `{0}` is not a positive number")]
    BadReceiveCount(String),
}

/// Why the whole event cannot be handled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SqsEventError {
    /// Without an id a record cannot be reported as failed, so only failing the whole batch keeps it.
    #[error("SQS record {index} has no messageId; failing the batch so that it is redelivered")]
    MissingMessageId { index: usize },
}

/// Reads an event's records into queue messages, with the receive count from `ApproximateReceiveCount`
/// and the string-valued message attributes.
pub fn received_messages(event: SqsEvent) -> Result<SqsBatch, SqsEventError> {
    let mut batch = SqsBatch::default();
    for (index, record) in event.records.into_iter().enumerate() {
        let message_id = record
            .message_id
            .clone()
            .ok_or(SqsEventError::MissingMessageId { index })?;
        match received(message_id.clone(), record) {
            Ok(message) => batch.messages.push(message),
            Err(reason) => batch
                .unreadable
                .push(UnreadableRecord { message_id, reason }),
        }
    }
    Ok(batch)
}

fn received(id: String, record: SqsMessage) -> Result<Received, RecordError> {
    let receipt = record
        .receipt_handle
        .ok_or(RecordError::MissingField("receiptHandle"))?;
    let body = record.body.ok_or(RecordError::MissingField("body"))?;
    let receive_count = receive_count(record.attributes.get(RECEIVE_COUNT))?;
    let attributes: BTreeMap<String, String> = record
        .message_attributes
        .into_iter()
        .filter_map(|(name, attribute)| attribute.string_value.map(|value| (name, value)))
        .collect();
    Ok(Received {
        id,
        receipt,
        body,
        receive_count,
        attributes,
    })
}

fn receive_count(raw: Option<&String>) -> Result<u32, RecordError> {
    let raw = raw.ok_or(RecordError::MissingField(RECEIVE_COUNT))?;
    raw.parse::<u32>()
        .ok()
        .filter(|count| *count > 0)
        .ok_or_else(|| RecordError::BadReceiveCount(raw.clone()))
}

/// The response that asks Lambda to redeliver exactly these messages (an empty list: the batch succeeded).
pub fn sqs_batch_response<I, S>(failed_message_ids: I) -> SqsBatchResponse
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed_message_ids);
    response
}

/// Hands the event's readable messages to `handle_batch` as one batch (the shape of
/// `tern_app::QueueHandler::handle`) and reports as failures the ids it returns plus the unreadable records,
/// each logged with its id.
pub async fn handle_sqs_event<F, Fut>(
    event: SqsEvent,
    handle_batch: F,
) -> Result<SqsBatchResponse, SqsEventError>
where
    F: FnOnce(Vec<Received>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let batch = received_messages(event)?;
    let mut failed = Vec::new();
    for record in batch.unreadable {
        tracing::error!(message_id = %record.message_id, reason = %record.reason, "unreadable SQS record");
        failed.push(record.message_id);
    }
    if !batch.messages.is_empty() {
        let handler_failed = handle_batch(batch.messages).await;
        for message_id in &handler_failed {
            tracing::warn!(%message_id, "message handling failed; it will be redelivered");
        }
        failed.extend(handler_failed);
    }
    Ok(sqs_batch_response(failed))
}
