//! The embedded blobs adapter: a directory with exactly S3's key layout.
//!
//! Key `lake/events/workspace=w1/dt=2026-01-01/x.parquet` is the file
//! `<root>/lake/events/workspace=w1/dt=2026-01-01/x.parquet`, so the lake can be read by DuckDB with the same
//! Hive paths as on S3, or synced to a bucket as it is. Every write goes to a temporary file in the target's
//! directory and is renamed into place, so a reader sees the old object or the new one, never half of one.
//!
//! Two things S3 has and a directory does not: content types are not stored (they only matter to HTTP
//! clients of S3), and a key cannot be both an object and the "directory" of other keys (`a` and `a/b`);
//! writing the second of those is `PortError::Invalid`.
//!
//! Upload targets point at the local server (`PUT {upload_base_url}/_uploads/{token}`), which hands the
//! token and body to [`DirBlobs::accept_upload`]. The token carries the key and an expiry and is signed
//! with HMAC-SHA256, like a presigned S3 URL.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tern_ports::blobs::{invalid_key, validate_list_limit};
use tern_ports::{BlobMeta, BlobPage, Blobs, ByteStream, PortError, PortResult, UploadTarget};
use tokio::io::AsyncWriteExt;

/// Names starting with this are writes in progress; no key may contain a segment starting with it.
const TEMP_PREFIX: &str = ".tern-tmp.";
/// The size of the chunks `get_stream` reads.
const READ_CHUNK: usize = 64 * 1024;
/// S3's limit, kept here too so that an upload target that works locally works on AWS.
const MAX_UPLOAD_EXPIRY: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Most file systems refuse longer file names.
const MAX_SEGMENT_BYTES: usize = 255;
/// Separates upload-token signatures from any other use of the same secret.
const UPLOAD_TOKEN_CONTEXT: &[u8] = b"tern blob upload v1\n";

type HmacSha256 = Hmac<Sha256>;

/// The blobs port on a local directory.
pub struct DirBlobs {
    root: PathBuf,
    upload_base_url: String,
    signing_secret: Vec<u8>,
}

impl DirBlobs {
    /// Opens (creating it if needed) the blob directory `root`. Upload targets point at
    /// `{upload_base_url}/_uploads/{token}`, with tokens signed by `signing_secret`.
    pub fn new(
        root: PathBuf,
        upload_base_url: String,
        signing_secret: Vec<u8>,
    ) -> PortResult<DirBlobs> {
        if signing_secret.is_empty() {
            return Err(PortError::Invalid(
                "the blob upload signing secret must not be empty".into(),
            ));
        }
        if upload_base_url.trim().is_empty() {
            return Err(PortError::Invalid(
                "the blob upload base URL must not be empty".into(),
            ));
        }
        std::fs::create_dir_all(&root).map_err(|error| {
            PortError::Unavailable(format!(
                "cannot create the blob directory {}: {error}",
                root.display()
            ))
        })?;
        Ok(DirBlobs {
            root,
            upload_base_url: upload_base_url.trim_end_matches('/').to_string(),
            signing_secret,
        })
    }

    /// The directory the blobs live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `body` to the key an upload token (from [`Blobs::upload_target`]) was issued for, after
    /// checking its signature and expiry; returns the object's size. A forged, altered or expired token is
    /// `PortError::Rejected`.
    pub async fn accept_upload(&self, token: &str, body: ByteStream) -> PortResult<u64> {
        let key = self.verify_upload_token(token, SystemTime::now())?;
        self.write_object(&key, body).await
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn upload_token(&self, key: &str, expires_at: SystemTime) -> PortResult<String> {
        let payload = format!("{}:{key}", unix_millis(expires_at));
        let signature = self.upload_mac(payload.as_bytes())?.finalize().into_bytes();
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// The key `token` grants an upload to, if it was signed with this adapter's secret and is not
    /// expired at `now`.
    fn verify_upload_token(&self, token: &str, now: SystemTime) -> PortResult<String> {
        let malformed = || PortError::Rejected("the upload token is malformed".into());
        let (payload, signature) = token.split_once('.').ok_or_else(malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed())?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
        // `verify_slice` compares in constant time.
        self.upload_mac(&payload)?
            .verify_slice(&signature)
            .map_err(|_| PortError::Rejected("the upload token's signature is not valid".into()))?;

        let payload = String::from_utf8(payload).map_err(|_| malformed())?;
        let (expires_at, key) = payload.split_once(':').ok_or_else(malformed)?;
        let expires_at: u64 = expires_at.parse().map_err(|_| malformed())?;
        if unix_millis(now) >= expires_at {
            return Err(PortError::Rejected(format!(
                "the upload token for blob {key:?} has expired"
            )));
        }
        validate_key(key)?;
        Ok(key.to_string())
    }

    fn upload_mac(&self, payload: &[u8]) -> PortResult<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(&self.signing_secret).map_err(|error| {
            PortError::Invalid(format!("the blob upload signing secret: {error}"))
        })?;
        mac.update(UPLOAD_TOKEN_CONTEXT);
        mac.update(payload);
        Ok(mac)
    }

    /// Streams `body` into a temporary file next to the object and renames it into place.
    async fn write_object(&self, key: &str, mut body: ByteStream) -> PortResult<u64> {
        validate_key(key)?;
        let path = self.path_of(key);
        let dir = path.parent().unwrap_or(&self.root);
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|error| write_error(key, error))?;

        let temp =
            TempFile::new(dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple())));
        let mut file = tokio::fs::File::create_new(&temp.path)
            .await
            .map_err(|error| write_error(key, error))?;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| {
                PortError::Other(format!(
                    "the body of blob {key:?} failed after {size} bytes: {error}"
                ))
            })?;
            file.write_all(&chunk)
                .await
                .map_err(|error| write_error(key, error))?;
            size += chunk.len() as u64;
        }
        file.flush()
            .await
            .map_err(|error| write_error(key, error))?;
        // Durable before visible: after a crash, the key holds the old object or the whole new one.
        file.sync_all()
            .await
            .map_err(|error| write_error(key, error))?;
        drop(file);
        tokio::fs::rename(&temp.path, &path)
            .await
            .map_err(|error| write_error(key, error))?;
        temp.keep();
        Ok(size)
    }

    async fn list_sorted(
        &self,
        prefix: &str,
        after: Option<String>,
        limit: u32,
    ) -> PortResult<BlobPage> {
        validate_prefix(prefix)?;
        let limit = validate_list_limit(limit)? as usize;
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let listed = tokio::task::spawn_blocking(move || {
            // One more than a page, to know whether another page follows.
            let mut listing = Listing {
                prefix: &prefix,
                after: after.as_deref(),
                wanted: limit + 1,
                found: Vec::new(),
            };
            listing.walk(&root, "").map(|()| listing.found)
        })
        .await
        .map_err(|error| PortError::Other(format!("listing blobs stopped: {error}")))?
        .map_err(|error| {
            PortError::Other(format!(
                "cannot list the blob directory {}: {error}",
                self.root.display()
            ))
        })?;
        Ok(page_of(listed, limit))
    }
}

#[async_trait]
impl Blobs for DirBlobs {
    async fn put(&self, key: &str, body: Bytes, _content_type: Option<&str>) -> PortResult<()> {
        self.write_object(key, futures::stream::once(async move { Ok(body) }).boxed())
            .await
            .map(|_| ())
    }

    async fn get(&self, key: &str) -> PortResult<Option<Bytes>> {
        validate_key(key)?;
        match tokio::fs::read(self.path_of(key)).await {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(error) if is_absent(&error) => Ok(None),
            Err(error) => Err(read_error(key, error)),
        }
    }

    async fn delete(&self, key: &str) -> PortResult<()> {
        validate_key(key)?;
        // Empty directories are left behind: removing them could race with a write creating its
        // temporary file there.
        match tokio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => Ok(()),
            Err(error) if is_absent(&error) => Ok(()),
            Err(error) => Err(write_error(key, error)),
        }
    }

    async fn list(&self, prefix: &str, cursor: Option<String>, limit: u32) -> PortResult<BlobPage> {
        self.list_sorted(prefix, cursor, limit).await
    }

    async fn put_stream(
        &self,
        key: &str,
        body: ByteStream,
        _content_type: Option<&str>,
    ) -> PortResult<u64> {
        self.write_object(key, body).await
    }

    async fn get_stream(&self, key: &str) -> PortResult<Option<ByteStream>> {
        validate_key(key)?;
        match tokio::fs::File::open(self.path_of(key)).await {
            Ok(file) => Ok(Some(
                tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK).boxed(),
            )),
            Err(error) if is_absent(&error) => Ok(None),
            Err(error) => Err(read_error(key, error)),
        }
    }

    async fn upload_target(&self, key: &str, expires: Duration) -> PortResult<UploadTarget> {
        validate_key(key)?;
        if expires > MAX_UPLOAD_EXPIRY {
            return Err(PortError::Invalid(format!(
                "an upload target for blob {key:?} may be valid for 7 days at most, not {}s",
                expires.as_secs()
            )));
        }
        let token = self.upload_token(key, SystemTime::now() + expires)?;
        Ok(UploadTarget {
            method: "PUT".to_string(),
            url: format!("{}/_uploads/{token}", self.upload_base_url),
            headers: Vec::new(),
        })
    }
}

/// A walk of the blob directory that yields keys in S3's order (byte order of the whole key).
///
/// Entries of one directory are visited in the order of their key, with `/` appended to directories:
/// every key under `a/` then sorts exactly where `a/` does among its siblings (`a-b` < `a.txt` < `a/…` <
/// `a0`), so a depth-first walk meets keys in global order and can stop after one page.
struct Listing<'a> {
    prefix: &'a str,
    after: Option<&'a str>,
    wanted: usize,
    found: Vec<BlobMeta>,
}

impl Listing<'_> {
    fn walk(&mut self, dir: &Path, dir_key: &str) -> io::Result<()> {
        for child in sorted_children(dir, dir_key)? {
            if self.found.len() >= self.wanted {
                return Ok(());
            }
            if child.is_dir {
                if self.may_hold_wanted_keys(&child.key) {
                    self.walk(&dir.join(&child.name), &child.key)?;
                }
            } else if child.key.starts_with(self.prefix)
                && self.after.is_none_or(|after| child.key.as_str() > after)
            {
                match std::fs::metadata(dir.join(&child.name)) {
                    Ok(metadata) => self.found.push(BlobMeta {
                        key: child.key,
                        size: metadata.len(),
                    }),
                    // Deleted since the directory was read.
                    Err(error) if is_absent(&error) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }

    /// Whether a directory whose keys all start with `dir_key` (ending in `/`) can hold a key of this page.
    fn may_hold_wanted_keys(&self, dir_key: &str) -> bool {
        let overlaps_prefix = dir_key.starts_with(self.prefix) || self.prefix.starts_with(dir_key);
        // Every key under `dir_key` sorts before `after` when `dir_key` does and is not a prefix of it.
        let entirely_before_cursor = self
            .after
            .is_some_and(|after| dir_key < after && !after.starts_with(dir_key));
        overlaps_prefix && !entirely_before_cursor
    }
}

struct Child {
    /// The key of the file, or the key prefix of the directory (ending in `/`).
    key: String,
    name: String,
    is_dir: bool,
}

fn sorted_children(dir: &Path, dir_key: &str) -> io::Result<Vec<Child>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if is_absent(&error) => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry?;
        // A name that is not UTF-8 or is a write in progress is not a key this adapter wrote.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            children.push(Child {
                key: format!("{dir_key}{name}/"),
                name,
                is_dir: true,
            });
        } else if file_type.is_file() {
            children.push(Child {
                key: format!("{dir_key}{name}"),
                name,
                is_dir: false,
            });
        }
    }
    children.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(children)
}

fn page_of(mut found: Vec<BlobMeta>, limit: usize) -> BlobPage {
    if found.len() > limit {
        found.truncate(limit);
        let cursor = found.last().map(|meta| meta.key.clone());
        BlobPage {
            blobs: found,
            cursor,
        }
    } else {
        BlobPage {
            blobs: found,
            cursor: None,
        }
    }
}

/// Refuses keys that could leave the root or that a directory cannot hold: the port's key rules, and no
/// segment that is a write in progress or longer than a file name may be.
fn validate_key(key: &str) -> PortResult<()> {
    tern_ports::blobs::validate_key(key)?;
    key.split('/')
        .try_for_each(|segment| check_file_name(key, segment))
}

/// The port's prefix rules, and the directory's for every segment but the last, partial one.
fn validate_prefix(prefix: &str) -> PortResult<()> {
    tern_ports::blobs::validate_prefix(prefix)?;
    match prefix.rsplit_once('/') {
        Some((dirs, _partial)) => dirs
            .split('/')
            .try_for_each(|segment| check_file_name(prefix, segment)),
        None => Ok(()),
    }
}

fn check_file_name(key: &str, segment: &str) -> PortResult<()> {
    if segment.starts_with(TEMP_PREFIX) {
        return Err(invalid_key(
            key,
            &format!("uses the reserved name {TEMP_PREFIX}"),
        ));
    }
    if segment.len() > MAX_SEGMENT_BYTES {
        return Err(invalid_key(
            key,
            &format!("has a segment longer than {MAX_SEGMENT_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Errors that mean "no such object": the file is missing, or a path component is not a directory, or
/// the key names a directory (a prefix of other keys, not an object).
fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory
    )
}

fn write_error(key: &str, error: io::Error) -> PortError {
    match error.kind() {
        io::ErrorKind::NotADirectory
        | io::ErrorKind::IsADirectory
        | io::ErrorKind::DirectoryNotEmpty
        | io::ErrorKind::AlreadyExists => PortError::Invalid(format!(
            "blob key {key:?} collides with another key: a blob directory cannot hold both `a` and `a/…` ({error})"
        )),
        _ => PortError::Other(format!("cannot write blob {key:?}: {error}")),
    }
}

fn read_error(key: &str, error: io::Error) -> PortError {
    PortError::Other(format!("cannot read blob {key:?}: {error}"))
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// A temporary file that is removed when dropped unless kept: a failed or cancelled write leaves nothing.
struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl TempFile {
    fn new(path: PathBuf) -> TempFile {
        TempFile { path, kept: false }
    }

    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.path)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove an unfinished blob write");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(dir: &tempfile::TempDir) -> DirBlobs {
        DirBlobs::new(
            dir.path().join("blobs"),
            "http://127.0.0.1:8080/".into(),
            b"secret".to_vec(),
        )
        .expect("new")
    }

    fn token_of(target: &UploadTarget) -> &str {
        target
            .url
            .rsplit_once("/_uploads/")
            .map(|(_, token)| token)
            .expect("upload URL")
    }

    fn body(bytes: &'static [u8]) -> ByteStream {
        futures::stream::once(async move { Ok(Bytes::from_static(bytes)) }).boxed()
    }

    #[tokio::test]
    async fn keys_map_to_the_same_paths_as_on_s3() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = blobs(&dir);
        let key = "lake/events/workspace=w1/dt=2026-01-01/x.parquet";
        blobs
            .put(key, Bytes::from_static(b"PAR1"), None)
            .await
            .expect("put");
        let on_disk =
            std::fs::read(dir.path().join("blobs").join(key)).expect("file at the key's path");
        assert_eq!(on_disk, b"PAR1");
    }

    #[tokio::test]
    async fn upload_target_points_at_the_local_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = blobs(&dir)
            .upload_target("imports/a.csv", Duration::from_secs(60))
            .await
            .expect("target");
        assert_eq!(target.method, "PUT");
        assert!(
            target.url.starts_with("http://127.0.0.1:8080/_uploads/"),
            "{}",
            target.url
        );
        assert!(target.headers.is_empty());
        let token = token_of(&target);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
            "the token is URL-safe: {token}"
        );
    }

    #[tokio::test]
    async fn upload_tokens_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = blobs(&dir);
        let target = blobs
            .upload_target("imports/a.csv", Duration::from_secs(60))
            .await
            .expect("target");
        let token = token_of(&target);
        let later = SystemTime::now() + Duration::from_secs(61);
        assert_eq!(
            blobs.verify_upload_token(token, SystemTime::now()),
            Ok("imports/a.csv".to_string())
        );
        assert!(
            matches!(blobs.verify_upload_token(token, later), Err(PortError::Rejected(message)) if message.contains("expired"))
        );
    }

    #[tokio::test]
    async fn tampered_or_foreign_tokens_are_rejected_and_write_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = blobs(&dir);
        let target = blobs
            .upload_target("imports/a.csv", Duration::from_secs(60))
            .await
            .expect("target");
        let token = token_of(&target);
        let (payload, signature) = token.split_once('.').expect("two parts");

        let other_key = URL_SAFE_NO_PAD.encode(format!(
            "{}:imports/b.csv",
            unix_millis(SystemTime::now()) + 60_000
        ));
        let longer_expiry = URL_SAFE_NO_PAD.encode(format!("{}:imports/a.csv", u64::MAX));
        let mut flipped = signature.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        let other_secret = DirBlobs::new(
            dir.path().join("other"),
            "http://x".into(),
            b"another".to_vec(),
        )
        .expect("new");
        let foreign = other_secret
            .upload_target("imports/a.csv", Duration::from_secs(60))
            .await
            .expect("target");

        let forged = [
            format!("{other_key}.{signature}"),
            format!("{longer_expiry}.{signature}"),
            format!("{payload}.{flipped}"),
            payload.to_string(),
            "..".to_string(),
            String::new(),
            token_of(&foreign).to_string(),
        ];
        for token in &forged {
            let result = blobs.accept_upload(token, body(b"evil")).await;
            assert!(
                matches!(result, Err(PortError::Rejected(_))),
                "token {token:?} gave {result:?}"
            );
        }
        assert_eq!(blobs.get("imports/a.csv").await.expect("get"), None);
        assert_eq!(blobs.get("imports/b.csv").await.expect("get"), None);

        assert_eq!(blobs.accept_upload(token, body(b"good")).await, Ok(4));
        assert_eq!(
            blobs.get("imports/a.csv").await.expect("get"),
            Some(Bytes::from_static(b"good"))
        );
    }

    #[tokio::test]
    async fn invalid_keys_name_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = blobs(&dir);
        for key in [
            "../escape",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "nul\0byte",
            "a/.tern-tmp.x",
        ] {
            let result = blobs.get(key).await;
            assert!(
                matches!(&result, Err(PortError::Invalid(message)) if message.contains(&format!("{key:?}"))),
                "{key:?} gave {result:?}"
            );
        }
        assert!(matches!(
            blobs.list("../", None, 10).await,
            Err(PortError::Invalid(_))
        ));
        assert!(matches!(
            blobs.list("", None, 0).await,
            Err(PortError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn an_object_cannot_also_be_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = blobs(&dir);
        blobs
            .put("a", Bytes::from_static(b"file"), None)
            .await
            .expect("put a");
        let nested = blobs.put("a/b", Bytes::from_static(b"x"), None).await;
        assert!(matches!(nested, Err(PortError::Invalid(message)) if message.contains("\"a/b\"")));
        assert_eq!(blobs.get("a/b").await.expect("get a/b"), None);
        assert_eq!(
            blobs.get("a").await.expect("get a"),
            Some(Bytes::from_static(b"file"))
        );
    }

    #[tokio::test]
    async fn temporary_files_are_not_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = blobs(&dir);
        blobs
            .put("p/kept", Bytes::from_static(b"1"), None)
            .await
            .expect("put");
        std::fs::write(
            dir.path()
                .join("blobs/p")
                .join(format!("{TEMP_PREFIX}crashed")),
            b"half",
        )
        .expect("write");
        let page = blobs.list("p/", None, 10).await.expect("list");
        assert_eq!(
            page.blobs,
            vec![BlobMeta {
                key: "p/kept".into(),
                size: 1
            }]
        );
    }
}
