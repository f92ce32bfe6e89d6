//! The mail contract against this engine, and the SMTP relay, which only this engine has.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tern_contract::mail::{MailHarness, multipart_message};
use tern_embedded::mail::Outbox;
use tern_ports::{Mail, OutgoingEmail, PortError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

struct OutboxHarness {
    outbox: Outbox,
    _dir: tempfile::TempDir,
}

async fn harness() -> Box<OutboxHarness> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let outbox = Outbox::new(dir.path().join("outbox"), None).expect("Outbox::new");
    Box::new(OutboxHarness { outbox, _dir: dir })
}

impl MailHarness for OutboxHarness {
    fn mail(&self) -> &dyn Mail {
        &self.outbox
    }

    fn sender(&self) -> &str {
        "tern@example.com"
    }

    async fn delivered(&self, provider_id: &str) -> Option<Bytes> {
        match tokio::fs::read(self.outbox.message_path(provider_id)).await {
            Ok(raw) => Some(Bytes::from(raw)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => panic!("reading the outbox message {provider_id}: {error}"),
        }
    }
}

tern_contract::mail_contract!(harness());

fn email(to: &str) -> OutgoingEmail {
    OutgoingEmail {
        from: "tern@example.com".into(),
        to: vec![to.to_string()],
        raw: multipart_message("tern@example.com", to),
        configuration_set: Some("ignored-locally".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_lists_messages_oldest_first() {
    let harness = harness().await;
    let mut ids = Vec::new();
    for recipient in ["a@example.com", "b@example.com", "c@example.com"] {
        ids.push(
            harness
                .outbox
                .send(email(recipient))
                .await
                .expect("send")
                .provider_id,
        );
    }
    let listed = harness.outbox.list_outbox().expect("list_outbox");
    let expected: Vec<_> = ids
        .iter()
        .map(|id| harness.outbox.message_path(id))
        .collect();
    assert_eq!(listed, expected);
}

/// What the fake relay saw of one message.
#[derive(Debug, Clone, Default)]
struct Relayed {
    mail_from: String,
    rcpt_to: Vec<String>,
    data: Vec<u8>,
}

/// A minimal SMTP server on a free loopback port that answers `final_reply` to the end of DATA and
/// records what it was sent.
async fn fake_relay(final_reply: &'static str) -> (String, Arc<Mutex<Vec<Relayed>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("smtp://{}", listener.local_addr().expect("address"));
    let relayed = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&relayed);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move { serve_smtp(socket, final_reply, &record).await });
        }
    });
    (url, relayed)
}

async fn serve_smtp(
    socket: tokio::net::TcpStream,
    final_reply: &str,
    record: &Mutex<Vec<Relayed>>,
) -> std::io::Result<()> {
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::new(reader);
    let mut message = Relayed::default();
    writer.write_all(b"220 fake.test ESMTP\r\n").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_string();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 fake.test\r\n",
            "MAIL" => {
                message.mail_from = command;
                b"250 2.1.0 ok\r\n"
            }
            "RCPT" => {
                message.rcpt_to.push(command);
                b"250 2.1.5 ok\r\n"
            }
            "DATA" => {
                writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                message.data = read_data(&mut reader).await?;
                record
                    .lock()
                    .expect("record")
                    .push(std::mem::take(&mut message));
                writer.write_all(final_reply.as_bytes()).await?;
                writer.write_all(b"\r\n").await?;
                continue;
            }
            "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
            "QUIT" => {
                writer.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 unknown command\r\n",
        };
        writer.write_all(reply).await?;
    }
}

/// The DATA section up to the lone `.` line, with dot-stuffing undone.
async fn read_data(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 || line == b".\r\n" {
            return Ok(data);
        }
        let unstuffed = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(unstuffed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_receives_the_raw_message_and_the_outbox_keeps_it() {
    let (url, relayed) = fake_relay("250 2.0.0 queued as 42").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::new(dir.path().to_path_buf(), Some(&url)).expect("outbox");
    let email = email("ada@example.com");

    let sent = outbox
        .send(email.clone())
        .await
        .expect("send through the relay");

    let relayed = relayed.lock().expect("relayed").clone();
    assert_eq!(relayed.len(), 1, "one message relayed: {relayed:?}");
    assert_eq!(relayed[0].mail_from, "MAIL FROM:<tern@example.com>");
    assert_eq!(
        relayed[0].rcpt_to,
        vec!["RCPT TO:<ada@example.com>".to_string()]
    );
    // lettre ends DATA with `<CRLF>.<CRLF>` even after a message that already ends in CRLF, so the relay
    // sees one more (insignificant) empty line at the end; everything before it must be byte for byte.
    assert_eq!(
        String::from_utf8_lossy(relayed[0].data.trim_ascii_end()),
        String::from_utf8_lossy(email.raw.trim_ascii_end())
    );
    assert!(
        relayed[0].data.starts_with(&email.raw),
        "the relayed message starts with the raw message"
    );
    assert_eq!(
        outbox.list_outbox().expect("list"),
        vec![outbox.message_path(&sent.provider_id)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_answering_4xx_is_throttled_and_nothing_lands_in_the_outbox() {
    let (url, relayed) = fake_relay("451 4.7.1 try again later").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::new(dir.path().to_path_buf(), Some(&url)).expect("outbox");

    let result = outbox.send(email("ada@example.com")).await;

    assert!(
        matches!(&result, Err(PortError::Throttled(message)) if message.contains("451")),
        "got {result:?}"
    );
    assert_eq!(
        relayed.lock().expect("relayed").len(),
        1,
        "the relay did see the message"
    );
    assert_eq!(
        outbox.list_outbox().expect("list"),
        Vec::<std::path::PathBuf>::new()
    );
    let leftovers = std::fs::read_dir(dir.path()).expect("read outbox").count();
    assert_eq!(leftovers, 0, "no partial file is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_answering_5xx_is_rejected() {
    let (url, _relayed) = fake_relay("554 5.7.1 message refused").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::new(dir.path().to_path_buf(), Some(&url)).expect("outbox");

    let result = outbox.send(email("ada@example.com")).await;

    assert!(
        matches!(&result, Err(PortError::Rejected(message)) if message.contains("554")),
        "got {result:?}"
    );
    assert_eq!(
        outbox.list_outbox().expect("list"),
        Vec::<std::path::PathBuf>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_relay_is_unavailable() {
    // A port that was free a moment ago and has no listener now.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox =
        Outbox::new(dir.path().to_path_buf(), Some(&format!("smtp://{address}"))).expect("outbox");

    let result = outbox.send(email("ada@example.com")).await;

    assert!(
        matches!(&result, Err(PortError::Unavailable(message)) if message.contains(&address.to_string()) && !message.contains('\n')),
        "got {result:?}"
    );
}
