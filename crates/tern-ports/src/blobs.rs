//! The blobs port: S3's object model (keys with `/`-separated prefixes), including large objects.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::PortResult;

/// A stream of chunks of one object, for objects too large to hold in memory.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: String,
    pub size: u64,
}

/// One page of a listing, in key order. `cursor` is `Some` when more keys may follow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlobPage {
    pub blobs: Vec<BlobMeta>,
    pub cursor: Option<String>,
}

/// Where and how a client uploads an object directly (a presigned S3 PUT on AWS, the local server on the
/// embedded engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTarget {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

#[async_trait]
pub trait Blobs: Send + Sync {
    async fn put(&self, key: &str, body: Bytes, content_type: Option<&str>) -> PortResult<()>;

    /// The whole object, or `None` when absent.
    async fn get(&self, key: &str) -> PortResult<Option<Bytes>>;

    async fn delete(&self, key: &str) -> PortResult<()>;

    /// Keys under `prefix`, in key order, `limit` at most per page.
    async fn list(&self, prefix: &str, cursor: Option<String>, limit: u32) -> PortResult<BlobPage>;

    /// Writes an object of any size from a stream (multipart on S3) and returns its size.
    async fn put_stream(&self, key: &str, body: ByteStream, content_type: Option<&str>) -> PortResult<u64>;

    /// Reads an object of any size as a stream, or `None` when absent.
    async fn get_stream(&self, key: &str) -> PortResult<Option<ByteStream>>;

    /// A target a client can PUT the object to without holding Tern's credentials, valid for `expires`.
    async fn upload_target(&self, key: &str, expires: Duration) -> PortResult<UploadTarget>;
}
