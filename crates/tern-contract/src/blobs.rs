//! The blobs port's contract cases.
//!
//! The cases take a [`BlobsHarness`] rather than the port alone: checking an upload target needs a client
//! that PUTs to it, and how that PUT reaches the engine differs (a real HTTP request to S3, the local
//! server's hand-over to the blob directory on the embedded engine).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tern_ports::{BlobMeta, Blobs, ByteStream, UploadTarget};

/// What the blobs cases need from an engine.
pub trait BlobsHarness: Send + Sync {
    /// The port under test.
    fn blobs(&self) -> &dyn Blobs;

    /// Sends `body` to `target` the way a client holding only the target would, and returns the HTTP
    /// status the engine answered with; `Err` describes a failure to make the request at all.
    fn upload(
        &self,
        target: &UploadTarget,
        body: Bytes,
    ) -> impl Future<Output = Result<u16, String>> + Send;
}

/// The size of the large object: more than two S3 multipart parts (8 MiB each), so the last part is short.
pub const LARGE_OBJECT_SIZE: usize = 20 * 1024 * 1024 + 12_345;
/// The size of each chunk the large object is streamed in.
const LARGE_OBJECT_CHUNK: usize = 256 * 1024;

/// A prefix no other case uses, so that every case can share one bucket (or directory).
fn unique_prefix(case: &str) -> String {
    format!("{}/", crate::unique_name(case))
}

pub async fn put_then_get_returns_the_same_bytes<H: BlobsHarness>(harness: &H) {
    let blobs = harness.blobs();
    let key = format!(
        "{}lake/events/workspace=w1/dt=2026-01-01/x.parquet",
        unique_prefix("blobs-roundtrip")
    );
    let body = Bytes::from_static(b"PAR1 not really parquet \x00\xff bytes");
    blobs
        .put(&key, body.clone(), Some("application/octet-stream"))
        .await
        .expect("put");
    let read = blobs.get(&key).await.expect("get");
    assert_eq!(read, Some(body));
}

pub async fn get_of_an_absent_key_is_none<H: BlobsHarness>(harness: &H) {
    let blobs = harness.blobs();
    let key = format!("{}never-written.json", unique_prefix("blobs-absent"));
    assert_eq!(blobs.get(&key).await.expect("get"), None);
    assert!(
        blobs.get_stream(&key).await.expect("get_stream").is_none(),
        "get_stream of an absent key must be None"
    );
}

pub async fn put_overwrites_an_existing_object<H: BlobsHarness>(harness: &H) {
    let blobs = harness.blobs();
    let key = format!("{}manifest.json", unique_prefix("blobs-overwrite"));
    blobs
        .put(
            &key,
            Bytes::from_static(b"first, and longer than the second"),
            None,
        )
        .await
        .expect("first put");
    blobs
        .put(&key, Bytes::from_static(b"second"), None)
        .await
        .expect("second put");
    assert_eq!(
        blobs.get(&key).await.expect("get"),
        Some(Bytes::from_static(b"second"))
    );
}

pub async fn delete_removes_the_object_and_is_idempotent<H: BlobsHarness>(harness: &H) {
    let blobs = harness.blobs();
    let prefix = unique_prefix("blobs-delete");
    let key = format!("{prefix}doomed.txt");
    let neighbour = format!("{prefix}kept.txt");
    blobs
        .put(&key, Bytes::from_static(b"bye"), Some("text/plain"))
        .await
        .expect("put");
    blobs
        .put(&neighbour, Bytes::from_static(b"stay"), Some("text/plain"))
        .await
        .expect("put neighbour");

    blobs.delete(&key).await.expect("delete");
    assert_eq!(blobs.get(&key).await.expect("get"), None);
    blobs
        .delete(&key)
        .await
        .expect("deleting an absent key succeeds, as on S3");

    assert_eq!(
        blobs.get(&neighbour).await.expect("get neighbour"),
        Some(Bytes::from_static(b"stay"))
    );
    let page = blobs.list(&prefix, None, 10).await.expect("list");
    assert_eq!(keys_of(&page.blobs), vec![neighbour]);
}

pub async fn list_walks_a_prefix_in_key_order_with_a_cursor<H: BlobsHarness>(harness: &H) {
    let blobs = harness.blobs();
    let base = unique_prefix("blobs-list");
    let prefix = format!("{base}lake/events/");
    // Written out of order, with nested "directories" and names that sort around `/`, so that an engine
    // that lists directory by directory rather than by key would show it.
    let names = [
        "b/2.parquet",
        "a.txt",
        "b/1.parquet",
        "a/z.json",
        "c",
        "a-b",
        "b0",
    ];
    for (i, name) in names.iter().enumerate() {
        let body = Bytes::from(vec![b'x'; i + 1]);
        blobs
            .put(&format!("{prefix}{name}"), body, None)
            .await
            .expect("put");
    }
    // Keys that must not show up: a sibling prefix that shares the first letters, and the parent.
    blobs
        .put(
            &format!("{base}lake/events-old/a.txt"),
            Bytes::from_static(b"no"),
            None,
        )
        .await
        .expect("put sibling");
    blobs
        .put(
            &format!("{base}lake/top.txt"),
            Bytes::from_static(b"no"),
            None,
        )
        .await
        .expect("put parent");

    let mut expected: Vec<String> = names.iter().map(|name| format!("{prefix}{name}")).collect();
    expected.sort();

    let mut listed = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = blobs.list(&prefix, cursor, 3).await.expect("list");
        pages += 1;
        assert!(
            page.blobs.len() <= 3,
            "a page holds at most `limit` blobs, got {}",
            page.blobs.len()
        );
        listed.extend(page.blobs);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(
            pages <= 4,
            "7 keys at 3 per page must not take more than 3 pages (+1 empty)"
        );
    }
    assert_eq!(keys_of(&listed), expected);
    for meta in &listed {
        let name = meta
            .key
            .strip_prefix(&prefix)
            .expect("listed key carries the prefix");
        let written = names
            .iter()
            .position(|n| *n == name)
            .expect("listed key was written");
        assert_eq!(meta.size, written as u64 + 1, "size of {}", meta.key);
    }

    let partial = blobs
        .list(&format!("{prefix}b"), None, 10)
        .await
        .expect("list b");
    assert_eq!(
        keys_of(&partial.blobs),
        vec![
            format!("{prefix}b/1.parquet"),
            format!("{prefix}b/2.parquet"),
            format!("{prefix}b0")
        ],
        "a prefix need not end at a `/`"
    );
    assert_eq!(partial.cursor, None);

    let nothing = blobs
        .list(&format!("{base}nothing-here/"), None, 10)
        .await
        .expect("list empty");
    assert_eq!(nothing.blobs, Vec::new());
    assert_eq!(nothing.cursor, None);
}

pub async fn large_object_streams_in_and_out<H: BlobsHarness>(harness: &H) {
    let blobs = harness.blobs();
    let key = format!("{}audience/manifest.bin", unique_prefix("blobs-large"));
    let written = blobs
        .put_stream(
            &key,
            generated_stream(LARGE_OBJECT_SIZE),
            Some("application/octet-stream"),
        )
        .await
        .expect("put_stream");
    assert_eq!(written, LARGE_OBJECT_SIZE as u64);

    let stream = blobs
        .get_stream(&key)
        .await
        .expect("get_stream")
        .expect("the object exists");
    let (size, digest) = digest_stream(stream).await;
    assert_eq!(size, LARGE_OBJECT_SIZE as u64);
    assert_eq!(
        digest,
        generated_digest(LARGE_OBJECT_SIZE),
        "the object read back differs from the one written"
    );

    let listed = blobs.list(&key, None, 10).await.expect("list");
    assert_eq!(
        listed.blobs,
        vec![BlobMeta {
            key: key.clone(),
            size: LARGE_OBJECT_SIZE as u64
        }]
    );
}

pub async fn small_object_streams_in_and_out<H: BlobsHarness>(harness: &H) {
    let blobs = harness.blobs();
    let key = format!("{}small.bin", unique_prefix("blobs-small-stream"));
    let chunks: Vec<std::io::Result<Bytes>> = vec![
        Ok(Bytes::from_static(b"one,")),
        Ok(Bytes::new()),
        Ok(Bytes::from_static(b"two")),
    ];
    let written = blobs
        .put_stream(&key, futures::stream::iter(chunks).boxed(), None)
        .await
        .expect("put_stream");
    assert_eq!(written, 7);
    assert_eq!(
        blobs.get(&key).await.expect("get"),
        Some(Bytes::from_static(b"one,two"))
    );
}

pub async fn failing_stream_leaves_no_object<H: BlobsHarness>(harness: &H) {
    let blobs = harness.blobs();
    let prefix = unique_prefix("blobs-failed-stream");
    let key = format!("{prefix}broken.bin");
    let chunks: Vec<std::io::Result<Bytes>> = vec![
        Ok(Bytes::from(vec![7u8; 1024])),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let result = blobs
        .put_stream(&key, futures::stream::iter(chunks).boxed(), None)
        .await;
    assert!(
        result.is_err(),
        "a body that fails must fail the put, got {result:?}"
    );
    assert_eq!(
        blobs.get(&key).await.expect("get"),
        None,
        "half an object must never become visible"
    );
    let page = blobs.list(&prefix, None, 10).await.expect("list");
    assert_eq!(
        page.blobs,
        Vec::new(),
        "no partial or temporary object may be listed"
    );
}

pub async fn upload_target_accepts_a_put<H: BlobsHarness>(harness: &H) {
    let blobs = harness.blobs();
    let key = format!("{}uploads/import.csv", unique_prefix("blobs-upload"));
    let target = blobs
        .upload_target(&key, Duration::from_secs(600))
        .await
        .expect("upload_target");
    assert_eq!(target.method, "PUT");
    assert!(
        target.url.starts_with("http"),
        "the target is a URL, got {}",
        target.url
    );

    let body = Bytes::from_static(b"email,name\nada@example.com,Ada\n");
    let status = harness
        .upload(&target, body.clone())
        .await
        .expect("upload request");
    assert!(
        (200..300).contains(&status),
        "the upload was answered with {status}"
    );
    assert_eq!(blobs.get(&key).await.expect("get"), Some(body));
}

pub async fn keys_that_escape_are_invalid<H: BlobsHarness>(harness: &H) {
    let blobs = harness.blobs();
    for key in [
        "",
        "/absolute/key",
        "a/../../etc/passwd",
        "a//b",
        "a/./b",
        "trailing/",
    ] {
        let result = blobs.put(key, Bytes::from_static(b"x"), None).await;
        assert!(
            matches!(result, Err(tern_ports::PortError::Invalid(_))),
            "put of {key:?} must be Invalid, got {result:?}"
        );
    }
}

fn keys_of(blobs: &[BlobMeta]) -> Vec<String> {
    blobs.iter().map(|meta| meta.key.clone()).collect()
}

/// The `index`-th byte of the generated object: not constant, and not periodic at any chunk or part size.
fn generated_byte(index: usize) -> u8 {
    (index.wrapping_mul(31) ^ (index >> 11)) as u8
}

fn generated_chunk(offset: usize, len: usize) -> Bytes {
    (offset..offset + len)
        .map(generated_byte)
        .collect::<Vec<u8>>()
        .into()
}

/// The generated object as a stream, produced chunk by chunk so it is never whole in memory.
pub fn generated_stream(size: usize) -> ByteStream {
    futures::stream::unfold(0usize, move |offset| async move {
        (offset < size).then(|| {
            let len = LARGE_OBJECT_CHUNK.min(size - offset);
            (Ok(generated_chunk(offset, len)), offset + len)
        })
    })
    .boxed()
}

fn generated_digest(size: usize) -> Vec<u8> {
    let mut hasher = Sha256::new();
    let mut offset = 0;
    while offset < size {
        let len = LARGE_OBJECT_CHUNK.min(size - offset);
        hasher.update(generated_chunk(offset, len));
        offset += len;
    }
    hasher.finalize().to_vec()
}

async fn digest_stream(mut stream: ByteStream) -> (u64, Vec<u8>) {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("reading the object stream");
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (size, hasher.finalize().to_vec())
}

/// Expands every blobs case into a `#[tokio::test]` against the harness `$factory` (an async expression
/// whose value dereferences to a [`BlobsHarness`]).
#[macro_export]
macro_rules! blobs_contract {
    ($factory:expr) => {
        $crate::blobs_contract!(@cases $factory;
            put_then_get_returns_the_same_bytes,
            get_of_an_absent_key_is_none,
            put_overwrites_an_existing_object,
            delete_removes_the_object_and_is_idempotent,
            list_walks_a_prefix_in_key_order_with_a_cursor,
            large_object_streams_in_and_out,
            small_object_streams_in_and_out,
            failing_stream_leaves_no_object,
            upload_target_accepts_a_put,
            keys_that_escape_are_invalid,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $factory.await;
                $crate::blobs::$case(&*harness).await;
            }
        )*
    };
}
