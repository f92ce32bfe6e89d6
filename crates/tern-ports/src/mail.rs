//! The mail port: hand over one fully built MIME message.

use async_trait::async_trait;
use bytes::Bytes;

use email_address::{EmailAddress, Options};

use crate::error::{PortError, PortResult};

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

/// Checks the envelope of `email` the same way on both engines: a plain `from` (no display name), at least
/// one recipient, each a plain address. Errors are `PortError::Invalid` with the field path first (`from`,
/// `to[1]`), as the HTTP problem mapping expects. `convert` turns each checked address into what the engine
/// sends with; a refusal it gives is reported like a malformed address.
pub fn checked_envelope<T>(
    email: &OutgoingEmail,
    mut convert: impl FnMut(EmailAddress) -> Result<T, String>,
) -> PortResult<(T, Vec<T>)> {
    let from = checked_address("from", &email.from, &mut convert)?;
    if email.to.is_empty() {
        return Err(PortError::Invalid(
            "to: at least one recipient is required".into(),
        ));
    }
    let to = email
        .to
        .iter()
        .enumerate()
        .map(|(index, recipient)| checked_address(&format!("to[{index}]"), recipient, &mut convert))
        .collect::<PortResult<Vec<_>>>()?;
    Ok((from, to))
}

fn checked_address<T>(
    field: &str,
    value: &str,
    convert: &mut impl FnMut(EmailAddress) -> Result<T, String>,
) -> PortResult<T> {
    let invalid = |why: String| {
        PortError::Invalid(format!(
            "{field}: {value:?} is not an email address ({why})"
        ))
    };
    let checked =
        EmailAddress::parse_with_options(value, Options::default().without_display_text())
            .map_err(|error| invalid(error.to_string()))?;
    convert(checked).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(from: &str, to: &[&str]) -> OutgoingEmail {
        OutgoingEmail {
            from: from.into(),
            to: to.iter().map(|to| to.to_string()).collect(),
            raw: Bytes::new(),
            configuration_set: None,
        }
    }

    fn check(email: &OutgoingEmail) -> PortResult<()> {
        checked_envelope(email, |_| Ok(())).map(|_| ())
    }

    #[test]
    fn plain_addresses_pass() {
        assert_eq!(
            check(&email(
                "tern@example.com",
                &["ada@example.com", "bob@example.org"]
            )),
            Ok(())
        );
    }

    #[test]
    fn refusals_name_the_field_first() {
        let cases = [
            (
                email("Tern <tern@example.com>", &["ada@example.com"]),
                "from: ",
            ),
            (
                email("tern@example.com", &[]),
                "to: at least one recipient is required",
            ),
            (
                email("tern@example.com", &["ada@example.com", "not an address"]),
                "to[1]: ",
            ),
        ];
        for (email, start) in cases {
            let result = check(&email);
            assert!(
                matches!(&result, Err(PortError::Invalid(why)) if why.starts_with(start)),
                "{email:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn a_conversion_refusal_is_a_malformed_address() {
        let result = checked_envelope(
            &email("tern@example.com", &["ada@example.com"]),
            |address| {
                if address.domain() == "example.com" && address.local_part() == "ada" {
                    Err("no".to_string())
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(
            result.map(|_| ()),
            Err(PortError::Invalid(
                "to[0]: \"ada@example.com\" is not an email address (no)".into()
            ))
        );
    }
}
