//! The blobs port: S3's object model (keys with `/`-separated prefixes), including large objects.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::{PortError, PortResult};

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
    async fn put_stream(
        &self,
        key: &str,
        body: ByteStream,
        content_type: Option<&str>,
    ) -> PortResult<u64>;

    /// Reads an object of any size as a stream, or `None` when absent.
    async fn get_stream(&self, key: &str) -> PortResult<Option<ByteStream>>;

    /// A target a client can PUT the object to without holding Tern's credentials, valid for `expires`.
    async fn upload_target(&self, key: &str, expires: Duration) -> PortResult<UploadTarget>;
}

/// S3's limit on a key's length, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// S3's limit on one page of a listing; larger limits are shortened to it.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// The key rules both engines enforce, so that a key that works on AWS works locally and the other way
/// round: no empty key, none longer than S3 allows, no absolute key, no empty, `.` or `..` segment, no NUL
/// or backslash.
pub fn validate_key(key: &str) -> PortResult<()> {
    if key.is_empty() {
        return Err(PortError::Invalid("a blob key must not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid_key(
            key,
            &format!("is longer than {MAX_KEY_BYTES} bytes"),
        ));
    }
    check_characters(key)?;
    key.split('/')
        .try_for_each(|segment| check_segment(key, segment))
}

/// A listing prefix follows the key rules, except that its last segment may be partial (or empty).
pub fn validate_prefix(prefix: &str) -> PortResult<()> {
    check_characters(prefix)?;
    match prefix.rsplit_once('/') {
        Some((dirs, _partial)) => dirs
            .split('/')
            .try_for_each(|segment| check_segment(prefix, segment)),
        None => Ok(()),
    }
}

/// The page size a listing asked for `limit` gets: at least 1, at most [`MAX_LIST_LIMIT`].
pub fn validate_list_limit(limit: u32) -> PortResult<u32> {
    if limit == 0 {
        return Err(PortError::Invalid(
            "a blob listing's limit must be at least 1".into(),
        ));
    }
    Ok(limit.min(MAX_LIST_LIMIT))
}

/// The error for a key an engine refuses; `why` completes the sentence "blob key … ".
pub fn invalid_key(key: &str, why: &str) -> PortError {
    PortError::Invalid(format!("blob key {key:?} {why}"))
}

fn check_characters(key: &str) -> PortResult<()> {
    if key.starts_with('/') {
        return Err(invalid_key(key, "is absolute"));
    }
    if key.contains('\0') {
        return Err(invalid_key(key, "contains a NUL character"));
    }
    if key.contains('\\') {
        return Err(invalid_key(key, "contains a backslash"));
    }
    Ok(())
}

fn check_segment(key: &str, segment: &str) -> PortResult<()> {
    match segment {
        "" => Err(invalid_key(key, "has an empty segment")),
        "." | ".." => Err(invalid_key(key, "has a `.` or `..` segment")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_escape_or_collide_are_invalid_and_named() {
        for key in [
            "",
            "../escape",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "nul\0byte",
            "back\\slash",
            "trailing/",
        ] {
            let result = validate_key(key);
            assert!(
                matches!(&result, Err(PortError::Invalid(message)) if key.is_empty() || message.contains(&format!("{key:?}"))),
                "{key:?} gave {result:?}"
            );
        }
        let too_long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(
            validate_key(&too_long),
            Err(PortError::Invalid(_))
        ));
    }

    #[test]
    fn ordinary_keys_are_valid() {
        for key in [
            "a",
            "lake/events/workspace=w1/dt=2026-01-01/x.parquet",
            "a.b/c-d_e",
            &"k".repeat(MAX_KEY_BYTES),
        ] {
            assert_eq!(validate_key(key), Ok(()), "{key:?}");
        }
    }

    #[test]
    fn a_prefix_may_end_in_a_partial_or_empty_segment() {
        for prefix in ["", "a", "a/", "a/b", "lake/events/work"] {
            assert_eq!(validate_prefix(prefix), Ok(()), "{prefix:?}");
        }
        for prefix in ["../", "/a", "a//b", "a/../b", "nul\0"] {
            assert!(
                matches!(validate_prefix(prefix), Err(PortError::Invalid(_))),
                "{prefix:?}"
            );
        }
    }

    #[test]
    fn a_listing_limit_is_at_least_one_and_at_most_a_page() {
        assert!(matches!(validate_list_limit(0), Err(PortError::Invalid(_))));
        assert_eq!(validate_list_limit(10), Ok(10));
        assert_eq!(validate_list_limit(5000), Ok(MAX_LIST_LIMIT));
    }
}
