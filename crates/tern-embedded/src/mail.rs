//! The embedded mail adapter: an outbox directory of `.eml` files, optionally relayed over SMTP.
//!
//! Every accepted message becomes `<dir>/<provider_id>.eml`, where the provider id is a UUIDv7, so the
//! outbox sorts by time and any mail client opens its files. With a relay configured (`smtp://host:port`,
//! optionally `smtp://user:pass@host:port`; plain SMTP, as local catchers such as Mailpit speak it), the
//! message is also handed to that server, and only a message the relay accepted lands in the outbox.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tern_ports::mail::checked_envelope;
use tern_ports::{Mail, OutgoingEmail, PortError, PortResult, SentEmail};
use tokio::io::AsyncWriteExt;

const SMTP_DEFAULT_PORT: u16 = 25;
/// Messages still being written carry this suffix; only whole messages end in `.eml`.
const PARTIAL_SUFFIX: &str = ".eml.partial";

/// The mail port on an outbox directory.
pub struct Outbox {
    dir: PathBuf,
    relay: Option<Relay>,
}

struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port`, for messages (never the credentials).
    address: String,
}

impl Outbox {
    /// Opens (creating it if needed) the outbox `dir`, relaying to `relay_url` when given.
    pub fn new(dir: PathBuf, relay_url: Option<&str>) -> PortResult<Outbox> {
        let relay = relay_url.map(parse_relay).transpose()?;
        std::fs::create_dir_all(&dir).map_err(|error| {
            PortError::Unavailable(format!(
                "cannot create the outbox directory {}: {error}",
                dir.display()
            ))
        })?;
        Ok(Outbox { dir, relay })
    }

    /// The outbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every message in the outbox, oldest first.
    pub fn list_outbox(&self) -> PortResult<Vec<PathBuf>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|error| self.outbox_error(error))?;
        let mut messages = Vec::new();
        for entry in entries {
            let path = entry.map_err(|error| self.outbox_error(error))?.path();
            if path.extension().is_some_and(|extension| extension == "eml") {
                messages.push(path);
            }
        }
        // UUIDv7 file names sort by creation time.
        messages.sort();
        Ok(messages)
    }

    /// The path of the message with `provider_id`.
    pub fn message_path(&self, provider_id: &str) -> PathBuf {
        self.dir.join(format!("{provider_id}.eml"))
    }

    fn outbox_error(&self, error: std::io::Error) -> PortError {
        PortError::Other(format!("outbox {}: {error}", self.dir.display()))
    }

    async fn write_partial(&self, path: &Path, raw: &[u8]) -> PortResult<()> {
        let mut file = tokio::fs::File::create_new(path)
            .await
            .map_err(|error| self.outbox_error(error))?;
        file.write_all(raw)
            .await
            .map_err(|error| self.outbox_error(error))?;
        file.flush()
            .await
            .map_err(|error| self.outbox_error(error))?;
        file.sync_all()
            .await
            .map_err(|error| self.outbox_error(error))
    }
}

#[async_trait]
impl Mail for Outbox {
    async fn send(&self, email: OutgoingEmail) -> PortResult<SentEmail> {
        let envelope = envelope_of(&email)?;
        let provider_id = uuid::Uuid::now_v7().to_string();
        let partial = PartialFile {
            path: self.dir.join(format!("{provider_id}{PARTIAL_SUFFIX}")),
            finished: false,
        };
        self.write_partial(&partial.path, &email.raw).await?;
        if let Some(relay) = &self.relay {
            relay.send(&envelope, &email.raw).await?;
        }
        tokio::fs::rename(&partial.path, self.message_path(&provider_id))
            .await
            .map_err(|error| self.outbox_error(error))?;
        partial.finish();
        Ok(SentEmail { provider_id })
    }
}

impl Relay {
    async fn send(&self, envelope: &Envelope, raw: &[u8]) -> PortResult<()> {
        match self.transport.send_raw(envelope, raw).await {
            Ok(_) => Ok(()),
            Err(error) => Err(self.error(&error)),
        }
    }

    /// 4xx answers are worth retrying later, 5xx answers are final, anything else means the relay could
    /// not be talked to.
    fn error(&self, error: &lettre::transport::smtp::Error) -> PortError {
        let message = format!(
            "SMTP relay {}: {}",
            self.address,
            one_line(&error.to_string())
        );
        if error.is_transient() {
            PortError::Throttled(message)
        } else if error.is_permanent() {
            PortError::Rejected(message)
        } else {
            PortError::Unavailable(message)
        }
    }
}

/// Removes a message file that was never completed (a failed relay, a cancelled send).
struct PartialFile {
    path: PathBuf,
    finished: bool,
}

impl PartialFile {
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove an unsent outbox message");
        }
    }
}

fn parse_relay(relay_url: &str) -> PortResult<Relay> {
    let invalid =
        |why: &str| PortError::Invalid(format!("SMTP relay URL {:?} {why}", redacted(relay_url)));
    let url =
        url::Url::parse(relay_url).map_err(|error| invalid(&format!("is not a URL: {error}")))?;
    if url.scheme() != "smtp" {
        return Err(invalid("must start with smtp:// (plain SMTP)"));
    }
    let host = url
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| invalid("has no host"))?;
    let port = url.port().unwrap_or(SMTP_DEFAULT_PORT);
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port);
    if !url.username().is_empty() {
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| invalid("has credentials that are not UTF-8"))
        };
        let credentials = Credentials::new(
            decode(url.username())?,
            decode(url.password().unwrap_or(""))?,
        );
        builder = builder.credentials(credentials);
    }
    Ok(Relay {
        transport: builder.build(),
        address: format!("{host}:{port}"),
    })
}

/// The URL without its credentials, fit for an error message.
fn redacted(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((before, after)) => {
            let scheme = before.split_once("://").map_or("", |(scheme, _)| scheme);
            format!("{scheme}://***@{after}")
        }
        None => url.to_string(),
    }
}

/// The SMTP envelope of `email`, refusing anything that is not a plain address (the port's rules, so that
/// both engines refuse the same addresses the same way).
fn envelope_of(email: &OutgoingEmail) -> PortResult<Envelope> {
    let (from, to) = checked_envelope(email, |checked| {
        Address::new(checked.local_part(), checked.domain()).map_err(|error| error.to_string())
    })?;
    Envelope::new(Some(from), to).map_err(|error| PortError::Invalid(format!("to: {error}")))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_are_checked_and_never_echo_passwords() {
        let dir = tempfile::tempdir().expect("tempdir");
        for url in [
            "http://127.0.0.1:25",
            "not a url",
            "smtp://user:hunter2@/",
            "smtps://127.0.0.1",
        ] {
            let result = Outbox::new(dir.path().to_path_buf(), Some(url));
            match result {
                Err(PortError::Invalid(message)) => {
                    assert!(message.contains("SMTP relay URL"), "{message}");
                    assert!(
                        !message.contains("hunter2"),
                        "the password leaked: {message}"
                    );
                }
                Err(other) => panic!("{url:?} gave {other:?}"),
                Ok(_) => panic!("{url:?} was accepted"),
            }
        }
        assert!(
            Outbox::new(
                dir.path().to_path_buf(),
                Some("smtp://user:p%40ss@127.0.0.1:2525")
            )
            .is_ok()
        );
        assert!(Outbox::new(dir.path().to_path_buf(), Some("smtp://localhost")).is_ok());
    }

    fn email_from(from: &str) -> OutgoingEmail {
        OutgoingEmail {
            from: from.into(),
            to: vec!["ada@example.com".into()],
            raw: bytes::Bytes::new(),
            configuration_set: None,
        }
    }

    #[test]
    fn addresses_must_be_plain() {
        assert!(envelope_of(&email_from("tern@example.com")).is_ok());
        for bad in [
            "Tern <tern@example.com>",
            "tern",
            "tern@",
            "@example.com",
            "a b@example.com",
        ] {
            assert!(
                matches!(envelope_of(&email_from(bad)), Err(PortError::Invalid(message)) if message.starts_with("from:")),
                "{bad:?} was accepted"
            );
        }
    }
}
