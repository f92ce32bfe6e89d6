//! The blobs contract against this engine.
//!
//! An upload target's URL points at the local server, which hands the token and the body to
//! `DirBlobs::accept_upload`; the harness does the same without the HTTP hop, and answers with the status
//! the server would.

use bytes::Bytes;
use futures::StreamExt;
use tern_contract::blobs::BlobsHarness;
use tern_embedded::blobs::DirBlobs;
use tern_ports::{Blobs, PortError, UploadTarget};

struct DirHarness {
    blobs: DirBlobs,
    _dir: tempfile::TempDir,
}

async fn harness() -> Box<DirHarness> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let blobs = DirBlobs::new(
        dir.path().join("blobs"),
        "http://127.0.0.1:8080".into(),
        b"contract-secret".to_vec(),
    )
    .expect("DirBlobs::new");
    Box::new(DirHarness { blobs, _dir: dir })
}

/// The token the local server would take from the path `/_uploads/{token}`.
fn token_of(target: &UploadTarget) -> Result<&str, String> {
    target
        .url
        .split_once("/_uploads/")
        .map(|(_, token)| token)
        .ok_or_else(|| format!("not an upload URL: {}", target.url))
}

impl BlobsHarness for DirHarness {
    fn blobs(&self) -> &dyn Blobs {
        &self.blobs
    }

    async fn upload(&self, target: &UploadTarget, body: Bytes) -> Result<u16, String> {
        if target.method != "PUT" {
            return Ok(405);
        }
        let token = token_of(target)?;
        let body = futures::stream::once(async move { Ok(body) }).boxed();
        match self.blobs.accept_upload(token, body).await {
            Ok(_) => Ok(200),
            Err(PortError::Rejected(_)) => Ok(403),
            Err(PortError::Invalid(_)) => Ok(400),
            Err(error) => Err(error.to_string()),
        }
    }
}

tern_contract::blobs_contract!(harness());

/// Only the embedded engine checks the signature end to end here: moto accepts presigned URLs without
/// verifying their signatures, so the same case against moto would prove nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_upload_token_is_rejected() {
    let harness = harness().await;
    let key = format!(
        "{}/upload.csv",
        tern_contract::unique_name("blobs-tampered")
    );
    let target = harness
        .blobs
        .upload_target(&key, std::time::Duration::from_secs(600))
        .await
        .expect("target");
    let token = token_of(&target).expect("token");
    let (payload, signature) = token.split_once('.').expect("payload.signature");
    // The first character carries six bits of the MAC (the last one also carries padding bits).
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{payload}.{first}{}", &signature[1..]);

    let body = futures::stream::once(async { Ok(Bytes::from_static(b"forged")) }).boxed();
    let result = harness.blobs.accept_upload(&tampered, body).await;
    assert!(
        matches!(result, Err(PortError::Rejected(_))),
        "got {result:?}"
    );
    let status = harness
        .upload(
            &UploadTarget {
                url: target.url.replace(token, &tampered),
                ..target.clone()
            },
            Bytes::from_static(b"x"),
        )
        .await;
    assert_eq!(status, Ok(403));
    assert_eq!(harness.blobs.get(&key).await.expect("get"), None);
}
