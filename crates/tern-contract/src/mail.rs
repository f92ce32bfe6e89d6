//! The mail port's contract cases.
//!
//! The cases take a [`MailHarness`]: besides the port, they need an address the engine lets them send
//! from (SES only sends from verified identities) and a way to see what the engine handed over (the outbox
//! on the embedded engine, what the emulated SES recorded on AWS).

use std::future::Future;

use bytes::Bytes;
use tern_ports::{Mail, OutgoingEmail, PortError};

/// What the mail cases need from an engine.
pub trait MailHarness: Send + Sync {
    /// The port under test.
    fn mail(&self) -> &dyn Mail;

    /// An address the engine accepts as a sender.
    fn sender(&self) -> &str;

    /// The raw message the engine recorded under `provider_id`, or `None` when it recorded none.
    fn delivered(&self, provider_id: &str) -> impl Future<Output = Option<Bytes>> + Send;
}

/// A well-formed multipart/alternative message (text and HTML), unique per call.
pub fn multipart_message(from: &str, to: &str) -> Bytes {
    let id = crate::unique_name("msg");
    let boundary = format!("tern-boundary-{id}");
    format!(
        "From: Tern <{from}>\r\n\
         To: <{to}>\r\n\
         Subject: Welcome aboard\r\n\
         Message-ID: <{id}@contract.tern.test>\r\n\
         Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 7bit\r\n\
         \r\n\
         Hello Ada, welcome aboard.\r\n\
         --{boundary}\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Transfer-Encoding: 7bit\r\n\
         \r\n\
         <p>Hello Ada, <b>welcome aboard</b>.</p>\r\n\
         --{boundary}--\r\n"
    )
    .into()
}

const RECIPIENT: &str = "ada@example.com";

fn email_to(harness_sender: &str, to: Vec<String>) -> OutgoingEmail {
    OutgoingEmail {
        from: harness_sender.to_string(),
        raw: multipart_message(harness_sender, to.first().map_or(RECIPIENT, String::as_str)),
        to,
        configuration_set: None,
    }
}

pub async fn multipart_message_is_sent_and_recorded_verbatim<H: MailHarness>(harness: &H) {
    let email = email_to(harness.sender(), vec![RECIPIENT.to_string()]);
    let sent = harness.mail().send(email.clone()).await.expect("send");
    assert!(
        !sent.provider_id.trim().is_empty(),
        "the provider id must not be empty"
    );
    let delivered = harness.delivered(&sent.provider_id).await;
    assert_eq!(
        delivered,
        Some(email.raw),
        "the engine must hand over the message byte for byte"
    );
}

pub async fn every_message_gets_its_own_provider_id<H: MailHarness>(harness: &H) {
    let first = email_to(harness.sender(), vec![RECIPIENT.to_string()]);
    let second = email_to(
        harness.sender(),
        vec!["grace@example.com".to_string(), RECIPIENT.to_string()],
    );
    let first_sent = harness
        .mail()
        .send(first.clone())
        .await
        .expect("send first");
    let second_sent = harness
        .mail()
        .send(second.clone())
        .await
        .expect("send second");
    assert_ne!(first_sent.provider_id, second_sent.provider_id);
    assert_eq!(
        harness.delivered(&first_sent.provider_id).await,
        Some(first.raw)
    );
    assert_eq!(
        harness.delivered(&second_sent.provider_id).await,
        Some(second.raw)
    );
}

pub async fn malformed_recipient_is_invalid<H: MailHarness>(harness: &H) {
    for recipient in ["not-an-address", "two@@example.com", ""] {
        let email = email_to(harness.sender(), vec![recipient.to_string()]);
        let result = harness.mail().send(email).await;
        assert!(
            matches!(&result, Err(PortError::Invalid(message)) if message.starts_with("to")),
            "recipient {recipient:?} must be Invalid with a message that starts with the field path `to`, got {result:?}"
        );
    }
}

pub async fn missing_recipients_are_invalid<H: MailHarness>(harness: &H) {
    let email = email_to(harness.sender(), Vec::new());
    let result = harness.mail().send(email).await;
    assert!(
        matches!(&result, Err(PortError::Invalid(message)) if message.starts_with("to")),
        "a message without recipients must be Invalid naming `to`, got {result:?}"
    );
}

pub async fn malformed_sender_is_invalid<H: MailHarness>(harness: &H) {
    let mut email = email_to(harness.sender(), vec![RECIPIENT.to_string()]);
    email.from = "tern at example dot com".to_string();
    let result = harness.mail().send(email).await;
    assert!(
        matches!(&result, Err(PortError::Invalid(message)) if message.starts_with("from")),
        "a malformed sender must be Invalid with a message that starts with the field path `from`, got {result:?}"
    );
}

/// Expands every mail case into a `#[tokio::test]` against the harness `$factory` (an async expression
/// whose value dereferences to a [`MailHarness`]).
#[macro_export]
macro_rules! mail_contract {
    ($factory:expr) => {
        $crate::mail_contract!(@cases $factory;
            multipart_message_is_sent_and_recorded_verbatim,
            every_message_gets_its_own_provider_id,
            malformed_recipient_is_invalid,
            missing_recipients_are_invalid,
            malformed_sender_is_invalid,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $factory.await;
                $crate::mail::$case(&*harness).await;
            }
        )*
    };
}
