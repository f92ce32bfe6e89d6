//! The mail port: hand over one fully built MIME message.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::PortResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The envelope sender (also in the `From:` header of `raw`).
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The complete RFC 5322 message, headers and body.
    pub raw: Bytes,
    /// The SES configuration set that routes delivery events back to Tern; ignored by the embedded engine.
    pub configuration_set: Option<String>,
}

/// What the mail service said when it accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentEmail {
    /// The provider's message id (SES's `MessageId`, or the outbox file name).
    pub provider_id: String,
}

#[async_trait]
pub trait Mail: Send + Sync {
    /// Sends the message. `PortError::Throttled` means try again later; `PortError::Rejected` is permanent.
    async fn send(&self, email: OutgoingEmail) -> PortResult<SentEmail>;
}
