//! The blobs contract against this engine.
//!
//! All cases share one bucket per test binary (created once); each case writes under its own prefix.

use bytes::Bytes;
use tern_aws::blobs::{S3Blobs, create_bucket};
use tern_contract::blobs::BlobsHarness;
use tern_ports::{Blobs, PortError, UploadTarget};
use tokio::sync::OnceCell;

static BUCKET: OnceCell<String> = OnceCell::const_new();

async fn shared_bucket() -> &'static str {
    BUCKET
        .get_or_init(|| async {
            let config = crate::moto_config().await;
            let bucket = tern_contract::unique_name("tern-contract-blobs");
            create_bucket(&config, &bucket)
                .await
                .expect("create the contract bucket");
            bucket
        })
        .await
}

struct S3Harness {
    blobs: S3Blobs,
    http: reqwest::Client,
}

async fn harness() -> Box<S3Harness> {
    let bucket = shared_bucket().await;
    let config = crate::moto_config().await;
    Box::new(S3Harness {
        blobs: S3Blobs::new(&config, bucket),
        http: reqwest::Client::new(),
    })
}

impl BlobsHarness for S3Harness {
    fn blobs(&self) -> &dyn Blobs {
        &self.blobs
    }

    /// A plain HTTP PUT to the presigned URL, as a browser or `curl -T` would send it.
    async fn upload(&self, target: &UploadTarget, body: Bytes) -> Result<u16, String> {
        let method = reqwest::Method::from_bytes(target.method.as_bytes())
            .map_err(|error| error.to_string())?;
        let mut request = self.http.request(method, &target.url).body(body);
        for (name, value) in &target.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|error| error.to_string())?;
        Ok(response.status().as_u16())
    }
}

tern_contract::blobs_contract!(harness());

// A tampered presigned URL is not checked here: moto accepts presigned URLs without verifying their
// signatures, so only the embedded engine's contract tests that case.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_bucket_is_idempotent() {
    let config = crate::moto_config().await;
    let bucket = tern_contract::unique_name("tern-contract-create");
    create_bucket(&config, &bucket).await.expect("first create");
    create_bucket(&config, &bucket)
        .await
        .expect("second create of the same bucket");
    let blobs = S3Blobs::new(&config, &bucket);
    blobs
        .put("k", Bytes::from_static(b"v"), None)
        .await
        .expect("put into the new bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_not_found_and_named() {
    let config = crate::moto_config().await;
    let bucket = tern_contract::unique_name("tern-contract-missing");
    let blobs = S3Blobs::new(&config, &bucket);
    for result in [
        blobs.get("k").await.map(|_| ()),
        blobs.put("k", Bytes::new(), None).await,
    ] {
        assert!(
            matches!(&result, Err(PortError::NotFound(message)) if message.contains(&bucket)),
            "expected NotFound naming {bucket}, got {result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_unavailable_in_one_line() {
    let config = crate::unreachable_config().await;
    let result = S3Blobs::new(&config, "any-bucket").get("k").await;
    assert!(
        matches!(&result, Err(PortError::Unavailable(message)) if !message.contains('\n')),
        "got {result:?}"
    );
}
