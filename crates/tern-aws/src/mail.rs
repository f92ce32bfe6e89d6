//! The AWS mail adapter: SES v2 `SendEmail` with the raw MIME message.
//!
//! Addresses are checked before SES is called, with the same rules as the embedded outbox, so that both
//! engines refuse a malformed address the same way (`PortError::Invalid`, field path first).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use email_address::{EmailAddress, Options};
use tern_ports::{Mail, OutgoingEmail, PortError, PortResult, SentEmail};

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
        validate_addresses(&email)?;
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
    if matches!(
        error,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    ) {
        return PortError::Unavailable(format!("SES cannot be reached: {}", one_line(&error)));
    }
    let code = error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .unwrap_or_default();
    let message = error
        .as_service_error()
        .and_then(ProvideErrorMetadata::message)
        .unwrap_or_default();
    match code {
        "TooManyRequestsException"
        | "LimitExceededException"
        | "Throttling"
        | "ThrottlingException" => PortError::Throttled(format!("SES: {code}: {message}")),
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

/// The error and its causes on one line, as logs and problem responses want them.
fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    DisplayErrorContext(error)
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn validate_addresses(email: &OutgoingEmail) -> PortResult<()> {
    validate_address("from", &email.from)?;
    if email.to.is_empty() {
        return Err(PortError::Invalid(
            "to: at least one recipient is required".into(),
        ));
    }
    email
        .to
        .iter()
        .enumerate()
        .try_for_each(|(index, recipient)| validate_address(&format!("to[{index}]"), recipient))
}

/// A plain address (no display name): the envelope takes nothing else.
fn validate_address(field: &str, value: &str) -> PortResult<()> {
    EmailAddress::parse_with_options(value, Options::default().without_display_text())
        .map(|_| ())
        .map_err(|error| {
            PortError::Invalid(format!(
                "{field}: {value:?} is not an email address ({error})"
            ))
        })
}
