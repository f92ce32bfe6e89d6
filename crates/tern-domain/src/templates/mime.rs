//! The MIME message a sender hands to the mail port: multipart/alternative, text then HTML, UTF-8, with
//! the one-click unsubscribe headers.

use jiff::Timestamp;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::url::URL;

use super::model::{Mailbox, is_header_name};
use super::render::RenderedEmail;

/// What the sender adds around a rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The recipient's address.
    pub to: String,
    /// `id@domain`, with or without angle brackets.
    pub message_id: String,
    pub date: Timestamp,
    /// The one-click unsubscribe endpoint (RFC 8058), also the first `List-Unsubscribe` entry.
    pub list_unsubscribe_https: String,
    /// `mailto:unsubscribe+token@example.com`, the second entry when given.
    pub list_unsubscribe_mailto: Option<String>,
    /// More headers (`X-Tern-Message`, a configuration set's…).
    pub headers: Vec<(String, String)>,
}

/// Why a message cannot be built from what the sender gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MimeError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: &str, reason: impl Into<String>) -> MimeError {
    MimeError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Headers the builder writes itself; an extra header must not repeat them.
const OWN_HEADERS: &[&str] = &[
    "from",
    "to",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

/// Builds the RFC 5322 message: From, To, Reply-To, Subject (RFC 2047 when not ASCII), Date, Message-ID,
/// `List-Unsubscribe: <https…>, <mailto:…>`, `List-Unsubscribe-Post: List-Unsubscribe=One-Click`, the
/// extra headers, and a multipart/alternative body of the text and HTML parts.
pub fn build_mime(email: &RenderedEmail, envelope: &Envelope) -> Result<Vec<u8>, MimeError> {
    check_envelope(envelope)?;
    let message_id = envelope
        .message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let mut unsubscribe = vec![envelope.list_unsubscribe_https.as_str()];
    unsubscribe.extend(envelope.list_unsubscribe_mailto.as_deref());
    let mut builder = MessageBuilder::new()
        .from(address(&email.from))
        .to(envelope.to.as_str())
        .subject(email.subject.as_str())
        .date(Date::new(envelope.date.as_second()))
        .message_id(MessageId::new(message_id))
        .header("List-Unsubscribe", URL::from(unsubscribe.as_slice()))
        .header(
            "List-Unsubscribe-Post",
            Raw::new("List-Unsubscribe=One-Click"),
        );
    if let Some(reply_to) = &email.reply_to {
        builder = builder.reply_to(address(reply_to));
    }
    for (name, value) in &envelope.headers {
        builder = builder.header(name.as_str(), Raw::new(value.as_str()));
    }
    let builder = builder
        .text_body(email.text.as_str())
        .html_body(email.html.as_str());
    let mut out = Vec::with_capacity(email.html.len() + email.text.len() + 2048);
    builder.serialize(&mut out);
    Ok(out)
}

fn address(mailbox: &Mailbox) -> Address<'_> {
    Address::new_address(mailbox.name.as_deref(), mailbox.address.as_str())
}

fn check_envelope(envelope: &Envelope) -> Result<(), MimeError> {
    if !email_address::EmailAddress::is_valid(&envelope.to) {
        return Err(invalid(
            "to",
            format!("{:?} is not an email address", envelope.to),
        ));
    }
    let id = envelope
        .message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    if !id.contains('@') || id.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
        return Err(invalid("messageId", "must look like id@domain"));
    }
    if !envelope.list_unsubscribe_https.starts_with("https://")
        || has_unsafe_url_characters(&envelope.list_unsubscribe_https)
    {
        return Err(invalid("listUnsubscribeHttps", "must be an https URL"));
    }
    if let Some(mailto) = &envelope.list_unsubscribe_mailto
        && (!mailto.starts_with("mailto:") || has_unsafe_url_characters(mailto))
    {
        return Err(invalid("listUnsubscribeMailto", "must be a mailto: URL"));
    }
    for (name, value) in &envelope.headers {
        if !is_header_name(name) || OWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid(
                &format!("headers.{name}"),
                "is not a header the sender may add",
            ));
        }
        if value.contains(['\r', '\n']) || !value.is_ascii() {
            return Err(invalid(
                &format!("headers.{name}"),
                "must be one line of ASCII",
            ));
        }
    }
    Ok(())
}

/// Characters that would break out of `<…>` in a header.
fn has_unsafe_url_characters(url: &str) -> bool {
    url.contains(|c: char| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == ',')
}
