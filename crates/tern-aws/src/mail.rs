//! The AWS mail adapter: SES v2 `SendEmail` with the raw MIME message.
//!
//! Addresses are checked before SES is called, with the port's rules that the embedded outbox applies too,
//! so that both engines refuse a malformed address the same way (`PortError::Invalid`, field path first).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use tern_ports::mail::checked_envelope;
use tern_ports::{Mail, OutgoingEmail, PortError, PortResult, SentEmail};

use crate::error::{code_and_message, is_throttling, is_unreachable, one_line};

/// The mail port on SES v2.
#[derive(Clone)]
pub struct SesMail {
    client: Client,
}

impl SesMail {
    pub fn new(config: &SdkConfig) -> SesMail {
        SesMail {
            client: Client::new(config),
        }
    }
}

#[async_trait]
impl Mail for SesMail {
    async fn send(&self, email: OutgoingEmail) -> PortResult<SentEmail> {
        checked_envelope(&email, |_| Ok(()))?;
        let raw = RawMessage::builder()
            .data(Blob::new(email.raw.to_vec()))
            .build()
            .map_err(|error| PortError::Invalid(format!("raw: {error}")))?;
        let sent = self
            .client
            .send_email()
            .from_email_address(&email.from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(email.to.clone()))
                    .build(),
            )
            .content(EmailContent::builder().raw(raw).build())
            .set_configuration_set_name(email.configuration_set.clone())
            .send()
            .await
            .map_err(ses_error)?;
        let provider_id = sent
            .message_id()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                PortError::Other("SES accepted the message without a message id".into())
            })?;
        Ok(SentEmail {
            provider_id: provider_id.to_string(),
        })
    }
}

/// Creates the email identity `email` unless it exists (for tests and local development against moto,
/// which refuses unverified senders; real identities are verified through DNS or the SES console).
pub async fn verify_identity(config: &SdkConfig, email: &str) -> PortResult<()> {
    let created = Client::new(config)
        .create_email_identity()
        .email_identity(email)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(error) => Err(ses_error(error)),
    }
}

fn ses_error<E>(error: SdkError<E, aws_sdk_sesv2::config::http::HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if is_unreachable(&error) {
        return PortError::Unavailable(format!("SES cannot be reached: {}", one_line(&error)));
    }
    let (code, message) = code_and_message(&error);
    match code {
        code if is_throttling(code) || code == "LimitExceededException" => {
            PortError::Throttled(format!("SES: {code}: {message}"))
        }
        "MessageRejected"
        | "MailFromDomainNotVerifiedException"
        | "AccountSuspendedException"
        | "SendingPausedException" => PortError::Rejected(format!("SES: {code}: {message}")),
        "BadRequestException" | "InvalidParameterValue" => {
            PortError::Invalid(format!("SES: {code}: {message}"))
        }
        "NotFoundException" => PortError::NotFound(format!("SES: {message}")),
        _ => PortError::Other(format!("SES failed: {}", one_line(&error))),
    }
}
