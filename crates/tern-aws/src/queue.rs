//! The AWS queue adapter: SQS standard queues.
//!
//! Logical queue names resolve to queue URLs through the map given to [`SqsQueue::new`] (what the SAM
//! template outputs), else through one GetQueueUrl per name, cached. SQS counts time in whole seconds:
//! delays, visibility timeouts and waits are rounded up to the next second.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use tern_ports::queue::{
    MAX_SEND_BATCH, MAX_WAIT, OutMessage, QueueSpec, Received, validate_message,
    validate_receive_max, validate_visibility_timeout,
};
use tern_ports::{PortError, PortResult, Queue};

use crate::error::{collapse_whitespace, error_chain, is_throttling, is_unreachable};
/// How many times one batch entry is sent before a transient failure is reported.
const MAX_SEND_ATTEMPTS: u32 = 4;
/// The pause before the first resend of failed entries; it doubles with each attempt.
const FIRST_RESEND_BACKOFF: Duration = Duration::from_millis(100);

/// The queue port on SQS.
pub struct SqsQueue {
    client: Client,
    /// Where requests go, for error messages.
    endpoint: String,
    /// Logical name → queue URL: the map given at construction, plus every URL resolved or created since.
    urls: RwLock<HashMap<String, String>>,
}

impl SqsQueue {
    pub fn new(config: &SdkConfig, queue_urls: HashMap<String, String>) -> SqsQueue {
        let endpoint = config
            .endpoint_url()
            .unwrap_or("the regional SQS endpoint")
            .to_string();
        SqsQueue {
            client: Client::new(config),
            endpoint,
            urls: RwLock::new(queue_urls),
        }
    }

    fn cached_url(&self, queue: &str) -> Option<String> {
        // A poisoned lock still holds a valid map: entries are inserted whole.
        let urls = self
            .urls
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        urls.get(queue).cloned()
    }

    fn remember_url(&self, queue: &str, url: &str) {
        let mut urls = self
            .urls
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        urls.insert(queue.to_string(), url.to_string());
    }

    async fn url(&self, queue: &str) -> PortResult<String> {
        if let Some(url) = self.cached_url(queue) {
            return Ok(url);
        }
        let output = self
            .client
            .get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .map_err(|e| self.sqs_error("GetQueueUrl", queue, e))?;
        let url = output
            .queue_url()
            .ok_or_else(|| missing("GetQueueUrl", queue, "a queue URL"))?;
        self.remember_url(queue, url);
        Ok(url.to_string())
    }

    async fn create_queue(
        &self,
        queue: &str,
        attributes: HashMap<QueueAttributeName, String>,
    ) -> PortResult<String> {
        let output = self
            .client
            .create_queue()
            .queue_name(queue)
            .set_attributes((!attributes.is_empty()).then_some(attributes))
            .send()
            .await
            .map_err(|e| self.sqs_error("CreateQueue", queue, e))?;
        let url = output
            .queue_url()
            .ok_or_else(|| missing("CreateQueue", queue, "a queue URL"))?;
        self.remember_url(queue, url);
        Ok(url.to_string())
    }

    async fn queue_arn(&self, queue: &str, url: &str) -> PortResult<String> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| self.sqs_error("GetQueueAttributes", queue, e))?;
        output
            .attributes()
            .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| missing("GetQueueAttributes", queue, "the queue ARN"))
    }

    /// Sends one chunk of at most 10, resending entries that failed for a transient reason.
    async fn send_chunk(
        &self,
        queue: &str,
        url: &str,
        mut pending: Vec<SendMessageBatchRequestEntry>,
    ) -> PortResult<()> {
        let mut refused: Vec<BatchResultErrorEntry> = Vec::new();
        let mut attempt = 1;
        loop {
            let output = self
                .client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(pending.clone()))
                .send()
                .await
                .map_err(|e| self.sqs_error("SendMessageBatch", queue, e))?;
            let (sender_faults, transient): (Vec<_>, Vec<_>) = output
                .failed()
                .iter()
                .cloned()
                .partition(BatchResultErrorEntry::sender_fault);
            refused.extend(sender_faults);
            if transient.is_empty() {
                break;
            }
            if attempt >= MAX_SEND_ATTEMPTS {
                return Err(PortError::Throttled(format!(
                    "SQS did not accept {} message(s) to queue {queue} after {attempt} attempts: {}",
                    transient.len(),
                    describe_failures(&transient)
                )));
            }
            pending.retain(|entry| transient.iter().any(|failure| failure.id() == entry.id()));
            tokio::time::sleep(FIRST_RESEND_BACKOFF * 2u32.pow(attempt - 1)).await;
            attempt += 1;
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(PortError::Invalid(format!(
                "SQS refused {} message(s) to queue {queue}: {}",
                refused.len(),
                describe_failures(&refused)
            )))
        }
    }

    /// Maps an SDK failure to the port error, naming the operation and the queue on one line.
    fn sqs_error<E, R>(&self, operation: &str, queue: &str, error: SdkError<E, R>) -> PortError
    where
        E: ProvideErrorMetadata + Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        if is_unreachable(&error) {
            return PortError::Unavailable(format!(
                "SQS cannot be reached at {} ({operation} on queue {queue}): {}",
                self.endpoint,
                error_chain(&error)
            ));
        }
        match &error {
            SdkError::ServiceError(service) => classify(
                operation,
                queue,
                service.err().code().unwrap_or("unknown"),
                service.err().message().unwrap_or("no message"),
            ),
            _ => PortError::Other(format!(
                "SQS {operation} on queue {queue}: {}",
                error_chain(&error)
            )),
        }
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn declare(&self, spec: &QueueSpec) -> PortResult<()> {
        let mut attributes = HashMap::from([(
            QueueAttributeName::VisibilityTimeout,
            whole_seconds(spec.visibility_timeout).to_string(),
        )]);
        if let Some(dead_letter) = &spec.dead_letter {
            // The dead-letter queue must exist first: the redrive policy names its ARN.
            let dead_letter_url = self
                .create_queue(&dead_letter.queue, HashMap::new())
                .await?;
            let dead_letter_arn = self.queue_arn(&dead_letter.queue, &dead_letter_url).await?;
            let policy = serde_json::json!({
                "deadLetterTargetArn": dead_letter_arn,
                "maxReceiveCount": dead_letter.max_receives,
            });
            attributes.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        self.create_queue(&spec.name, attributes).await?;
        Ok(())
    }

    async fn send_batch(&self, queue: &str, messages: Vec<OutMessage>) -> PortResult<()> {
        let entries = messages
            .iter()
            .enumerate()
            .map(|(index, message)| batch_entry(queue, index, message))
            .collect::<PortResult<Vec<_>>>()?;
        if entries.is_empty() {
            return Ok(());
        }
        let url = self.url(queue).await?;
        for chunk in entries.chunks(MAX_SEND_BATCH) {
            self.send_chunk(queue, &url, chunk.to_vec()).await?;
        }
        Ok(())
    }

    async fn receive(&self, queue: &str, max: u32, wait: Duration) -> PortResult<Vec<Received>> {
        validate_receive_max(max)?;
        let url = self.url(queue).await?;
        let output = self
            .client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(whole_seconds(wait.min(MAX_WAIT)))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| self.sqs_error("ReceiveMessage", queue, e))?;
        output
            .messages()
            .iter()
            .map(|message| received(queue, message))
            .collect()
    }

    async fn delete(&self, queue: &str, receipt: &str) -> PortResult<()> {
        let url = self.url(queue).await?;
        self.client
            .delete_message()
            .queue_url(&url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| self.sqs_error("DeleteMessage", queue, e))?;
        Ok(())
    }

    async fn change_visibility(
        &self,
        queue: &str,
        receipt: &str,
        timeout: Duration,
    ) -> PortResult<()> {
        validate_visibility_timeout(queue, timeout)?;
        let url = self.url(queue).await?;
        self.client
            .change_message_visibility()
            .queue_url(&url)
            .receipt_handle(receipt)
            .visibility_timeout(whole_seconds(timeout))
            .send()
            .await
            .map_err(|e| self.sqs_error("ChangeMessageVisibility", queue, e))?;
        Ok(())
    }
}

/// SQS counts in whole seconds; rounding up never makes a delay or a timeout shorter than asked.
fn whole_seconds(duration: Duration) -> i32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

/// One batch entry, checked against SQS's rules (the port's) so that a bad message refuses the whole batch before any
/// of it is sent. The entry id is the message's index in the batch, which error messages report.
fn batch_entry(
    queue: &str,
    index: usize,
    message: &OutMessage,
) -> PortResult<SendMessageBatchRequestEntry> {
    validate_message(queue, index, message)?;
    let attributes = message
        .attributes
        .iter()
        .map(|(name, value)| {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build();
            Ok((name.clone(), value.map_err(|e| build_error(queue, e))?))
        })
        .collect::<PortResult<HashMap<_, _>>>()?;
    SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(&message.body)
        .delay_seconds(whole_seconds(message.delay))
        .set_message_attributes((!attributes.is_empty()).then_some(attributes))
        .build()
        .map_err(|e| build_error(queue, e))
}

/// A received SQS message as the port sees it. Only string-valued message attributes are part of the
/// port's model; binary ones are left out.
fn received(queue: &str, message: &Message) -> PortResult<Received> {
    let id = message
        .message_id()
        .ok_or_else(|| missing("ReceiveMessage", queue, "a message id"))?;
    let receipt = message
        .receipt_handle()
        .ok_or_else(|| missing("ReceiveMessage", queue, "a receipt handle"))?;
    let receive_count = message
        .attributes()
        .and_then(|attributes| attributes.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|count| count.parse().ok())
        .ok_or_else(|| missing("ReceiveMessage", queue, "a receive count"))?;
    let attributes: BTreeMap<String, String> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_string())))
        .collect();
    Ok(Received {
        id: id.to_string(),
        receipt: receipt.to_string(),
        body: message.body().unwrap_or_default().to_string(),
        receive_count,
        attributes,
    })
}

/// The port error for an SQS error code. Codes come either bare (`QueueDoesNotExist`) or in SQS's older
/// query form (`AWS.SimpleQueueService.NonExistentQueue`), depending on the endpoint.
fn classify(operation: &str, queue: &str, code: &str, message: &str) -> PortError {
    let detail = collapse_whitespace(&format!(
        "SQS {operation} on queue {queue}: {code}: {message}"
    ));
    match code.trim_start_matches("AWS.SimpleQueueService.") {
        "NonExistentQueue" | "QueueDoesNotExist" => PortError::NotFound(format!("queue {queue}")),
        "QueueAlreadyExists" | "QueueNameExists" => PortError::AlreadyExists(format!(
            "queue {queue} exists with another visibility timeout or dead-letter policy ({detail})"
        )),
        "ReceiptHandleIsInvalid" | "MessageNotInflight" => {
            PortError::NotFound(format!("receipt: {detail}"))
        }
        code if is_throttling(code)
            || matches!(
                code,
                "RequestThrottled" | "KMS.ThrottlingException" | "QueueDeletedRecently"
            ) =>
        {
            PortError::Throttled(detail)
        }
        "InvalidParameterValue"
        | "InvalidAttributeName"
        | "InvalidAttributeValue"
        | "MissingParameter"
        | "InvalidMessageContents"
        | "InvalidAddress"
        | "UnsupportedOperation"
        | "BatchRequestTooLong"
        | "TooManyEntriesInBatchRequest"
        | "EmptyBatchRequest"
        | "InvalidBatchEntryId"
        | "BatchEntryIdsNotDistinct" => PortError::Invalid(detail),
        "AccessDenied" | "AccessDeniedException" | "InvalidSecurity" | "OverLimit" => {
            PortError::Rejected(detail)
        }
        "InternalError" | "InternalFailure" | "ServiceUnavailable" => {
            PortError::Unavailable(detail)
        }
        _ => PortError::Other(detail),
    }
}

fn describe_failures(failures: &[BatchResultErrorEntry]) -> String {
    let described: Vec<String> = failures
        .iter()
        .map(|failure| {
            format!(
                "message {}: {}: {}",
                failure.id(),
                failure.code(),
                failure.message().unwrap_or("")
            )
        })
        .collect();
    collapse_whitespace(&described.join("; "))
}

fn missing(operation: &str, queue: &str, what: &str) -> PortError {
    PortError::Other(format!(
        "SQS {operation} on queue {queue} returned no {what}"
    ))
}

fn build_error(queue: &str, error: BuildError) -> PortError {
    PortError::Invalid(format!(
        "a message to queue {queue} cannot be built: {error}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_rounds_up() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2500)), 3);
    }

    #[test]
    fn both_spellings_of_a_missing_queue_are_not_found() {
        for code in [
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ] {
            let error = classify(
                "ReceiveMessage",
                "send",
                code,
                "The specified queue does not exist.",
            );
            assert_eq!(error, PortError::NotFound("queue send".into()));
        }
    }

    #[test]
    fn throttling_is_throttled_and_names_the_queue() {
        let error = classify("SendMessageBatch", "lake", "RequestThrottled", "slow down");
        assert!(
            matches!(&error, PortError::Throttled(why) if why.contains("lake") && why.contains("slow down"))
        );
    }

    #[test]
    fn unknown_codes_keep_code_and_message_on_one_line() {
        let error = classify("DeleteMessage", "send", "Mystery", "first\nsecond");
        assert_eq!(
            error,
            PortError::Other("SQS DeleteMessage on queue send: Mystery: first second".into())
        );
    }

    #[test]
    fn a_bad_message_refuses_the_batch_before_sending() {
        let late = OutMessage::new("late").delayed(Duration::from_secs(901));
        assert!(
            matches!(batch_entry("send", 3, &late), Err(PortError::Invalid(why)) if why.contains("message 3"))
        );
        let fine = OutMessage::new("fine").delayed(Duration::from_millis(1500));
        let entry = batch_entry("send", 0, &fine).expect("a valid entry");
        assert_eq!(entry.delay_seconds(), Some(2));
    }
}
