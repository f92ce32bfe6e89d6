//! The mail contract against this engine.
//!
//! moto records every message SES accepted; `/moto-api/data.json` lists them (`ses.RawMessage`, with the
//! message id and the raw data), which is how the cases see what was handed over.

use bytes::Bytes;
use tern_aws::mail::{SesMail, verify_identity};
use tern_contract::mail::{MailHarness, multipart_message};
use tern_ports::{Mail, OutgoingEmail, PortError};
use tokio::sync::OnceCell;

static SENDER: OnceCell<String> = OnceCell::const_new();

/// A sender verified once per test binary.
async fn verified_sender() -> &'static str {
    SENDER
        .get_or_init(|| async {
            let config = crate::moto_config().await;
            let sender = format!("{}@example.com", tern_contract::unique_name("tern-sender"));
            verify_identity(&config, &sender)
                .await
                .expect("verify the contract sender");
            sender
        })
        .await
}

struct SesHarness {
    mail: SesMail,
    sender: &'static str,
    endpoint: String,
    http: reqwest::Client,
}

async fn harness() -> Box<SesHarness> {
    let sender = verified_sender().await;
    let config = crate::moto_config().await;
    Box::new(SesHarness {
        mail: SesMail::new(&config),
        sender,
        endpoint: tern_contract::moto::endpoint()
            .trim_end_matches('/')
            .to_string(),
        http: reqwest::Client::new(),
    })
}

impl SesHarness {
    /// moto's model dump reads every S3 key's `status`, which by default "restores" the key on first read
    /// and then looks up its bucket — and multipart parts have none, so after any multipart upload the dump
    /// fails with NoSuchBucket. Freezing the restore simulation (which Tern never uses) keeps the dump
    /// working; it is set before every read because anyone may reset moto meanwhile.
    async fn keep_s3_keys_out_of_the_dump(&self) {
        let url = format!("{}/moto-api/state-manager/set-transition", self.endpoint);
        let frozen = serde_json::json!({
            "model_name": "s3::keyrestore",
            "transition": { "progression": "manual", "times": 1_000_000_000u64 },
        });
        let response = self
            .http
            .post(&url)
            .json(&frozen)
            .send()
            .await
            .expect("moto's state manager");
        assert!(
            response.status().is_success(),
            "POST {url} answered {}",
            response.status()
        );
    }
}

impl MailHarness for SesHarness {
    fn mail(&self) -> &dyn Mail {
        &self.mail
    }

    fn sender(&self) -> &str {
        self.sender
    }

    async fn delivered(&self, provider_id: &str) -> Option<Bytes> {
        self.keep_s3_keys_out_of_the_dump().await;
        let url = format!("{}/moto-api/data.json", self.endpoint);
        let response = self.http.get(&url).send().await.expect("moto's model data");
        assert!(
            response.status().is_success(),
            "GET {url} answered {}",
            response.status()
        );
        let data: serde_json::Value = response.json().await.expect("moto's model data is JSON");
        let messages = data["ses"]["RawMessage"].as_array()?;
        messages
            .iter()
            .find(|message| message["id"] == provider_id)
            .and_then(|message| message["raw_data"].as_str())
            .map(|raw| Bytes::copy_from_slice(raw.as_bytes()))
    }
}

tern_contract::mail_contract!(harness());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_sender_is_rejected() {
    let config = crate::moto_config().await;
    let sender = format!(
        "{}@example.com",
        tern_contract::unique_name("tern-unverified")
    );
    let email = OutgoingEmail {
        from: sender.clone(),
        to: vec!["ada@example.com".into()],
        raw: multipart_message(&sender, "ada@example.com"),
        configuration_set: None,
    };
    let result = SesMail::new(&config).send(email).await;
    assert!(
        matches!(&result, Err(PortError::Rejected(message)) if message.contains(&sender)),
        "got {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_identity_is_idempotent() {
    let config = crate::moto_config().await;
    let sender = format!("{}@example.com", tern_contract::unique_name("tern-twice"));
    verify_identity(&config, &sender)
        .await
        .expect("first verification");
    verify_identity(&config, &sender)
        .await
        .expect("second verification of the same identity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_unavailable_in_one_line() {
    let config = crate::unreachable_config().await;
    let email = OutgoingEmail {
        from: "tern@example.com".into(),
        to: vec!["ada@example.com".into()],
        raw: multipart_message("tern@example.com", "ada@example.com"),
        configuration_set: None,
    };
    let result = SesMail::new(&config).send(email).await;
    assert!(
        matches!(&result, Err(PortError::Unavailable(message)) if !message.contains('\n')),
        "got {result:?}"
    );
}
