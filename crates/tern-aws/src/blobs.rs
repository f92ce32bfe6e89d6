//! The AWS blobs adapter: S3.
//!
//! Large objects are written as multipart uploads of 8 MiB parts, so a writer holds at most one part in
//! memory. A multipart upload that fails is aborted; one whose writer is cancelled midway is left to the
//! bucket's `AbortIncompleteMultipartUpload` lifecycle rule.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{
    BucketLocationConstraint, ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart,
    CreateBucketConfiguration,
};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tern_ports::blobs::{validate_key, validate_list_limit, validate_prefix};
use tern_ports::{BlobMeta, BlobPage, Blobs, ByteStream, PortError, PortResult, UploadTarget};

use crate::error::{code_and_message, is_throttling, is_unreachable, one_line};

/// The size of every multipart part but the last (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's own region default: buckets there take no location constraint.
const DEFAULT_REGION: &str = "us-east-1";

/// The blobs port on one S3 bucket.
#[derive(Clone)]
pub struct S3Blobs {
    client: Client,
    bucket: String,
}

impl S3Blobs {
    /// An adapter for `bucket`; path-style addressing when `config` carries an endpoint override (moto and
    /// other S3 emulators do not resolve bucket subdomains).
    pub fn new(config: &SdkConfig, bucket: impl Into<String>) -> S3Blobs {
        S3Blobs {
            client: client_for(config),
            bucket: bucket.into(),
        }
    }

    /// The bucket this adapter reads and writes.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Reads `body` to its end in parts and writes them as one multipart upload; `first_part` is what the
    /// caller already read.
    async fn put_multipart(
        &self,
        key: &str,
        first_part: BytesMut,
        body: ByteStream,
        content_type: Option<&str>,
    ) -> PortResult<u64> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_string))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|error| {
                self.error(&format!("starting the multipart upload of {key:?}"), error)
            })?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| {
                PortError::Other(format!(
                    "S3 started a multipart upload of {key:?} without an id"
                ))
            })?
            .to_string();

        match self.upload_parts(key, &upload_id, first_part, body).await {
            Ok((parts, size)) => {
                self.complete_multipart(key, &upload_id, parts).await?;
                Ok(size)
            }
            Err(error) => {
                self.abort_multipart(key, &upload_id).await;
                Err(error)
            }
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        mut buffer: BytesMut,
        mut body: ByteStream,
    ) -> PortResult<(Vec<CompletedPart>, u64)> {
        let mut parts = Vec::new();
        let mut size = 0u64;
        let mut ended = false;
        loop {
            while buffer.len() >= PART_SIZE || (ended && !buffer.is_empty()) {
                let part = buffer.split_to(buffer.len().min(PART_SIZE)).freeze();
                size += part.len() as u64;
                let number = i32::try_from(parts.len() + 1).map_err(|_| {
                    PortError::Invalid(format!("blob {key:?} needs more parts than S3 allows"))
                })?;
                parts.push(self.upload_part(key, upload_id, number, part).await?);
            }
            if ended {
                return Ok((parts, size));
            }
            ended = fill_part(&mut body, &mut buffer, key).await?;
        }
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        part: Bytes,
    ) -> PortResult<CompletedPart> {
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(S3Body::from(part))
            .send()
            .await
            .map_err(|error| self.error(&format!("uploading part {number} of {key:?}"), error))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(uploaded.e_tag().map(str::to_string))
            .set_checksum_crc32(uploaded.checksum_crc32().map(str::to_string))
            .build())
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> PortResult<()> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|error| {
                self.error(
                    &format!("completing the multipart upload of {key:?}"),
                    error,
                )
            })?;
        Ok(())
    }

    /// Best effort: the upload already failed, and that failure is what the caller must see.
    async fn abort_multipart(&self, key: &str, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(error) = aborted {
            tracing::warn!(
                bucket = %self.bucket,
                key,
                upload_id,
                error = %DisplayErrorContext(&error),
                "cannot abort a failed multipart upload; the bucket's lifecycle rule will"
            );
        }
    }

    fn error<E>(
        &self,
        doing: &str,
        error: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> PortError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        s3_error(&self.bucket, doing, error)
    }
}

#[async_trait]
impl Blobs for S3Blobs {
    async fn put(&self, key: &str, body: Bytes, content_type: Option<&str>) -> PortResult<()> {
        validate_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_string))
            .body(S3Body::from(body))
            .send()
            .await
            .map_err(|error| self.error(&format!("writing {key:?}"), error))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> PortResult<Option<Bytes>> {
        let Some(body) = self.get_stream(key).await? else {
            return Ok(None);
        };
        let mut bytes = BytesMut::new();
        let mut body = body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| {
                PortError::Other(format!("reading blob {key:?} from S3: {error}"))
            })?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes.freeze()))
    }

    async fn delete(&self, key: &str) -> PortResult<()> {
        validate_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| self.error(&format!("deleting {key:?}"), error))?;
        Ok(())
    }

    async fn list(&self, prefix: &str, cursor: Option<String>, limit: u32) -> PortResult<BlobPage> {
        validate_prefix(prefix)?;
        let limit = validate_list_limit(limit)?;
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(limit as i32)
            .set_continuation_token(cursor)
            .send()
            .await
            .map_err(|error| self.error(&format!("listing {prefix:?}"), error))?;
        let blobs = listed
            .contents()
            .iter()
            .filter_map(|object| {
                let size = u64::try_from(object.size().unwrap_or(0)).unwrap_or(0);
                object.key().map(|key| BlobMeta {
                    key: key.to_string(),
                    size,
                })
            })
            .collect();
        let cursor = match listed.is_truncated() {
            Some(true) => listed.next_continuation_token().map(str::to_string),
            _ => None,
        };
        Ok(BlobPage { blobs, cursor })
    }

    async fn put_stream(
        &self,
        key: &str,
        mut body: ByteStream,
        content_type: Option<&str>,
    ) -> PortResult<u64> {
        validate_key(key)?;
        let mut first_part = BytesMut::new();
        let ended = fill_part(&mut body, &mut first_part, key).await?;
        if ended {
            // Smaller than one part: a multipart upload would only add two requests.
            let size = first_part.len() as u64;
            self.put(key, first_part.freeze(), content_type).await?;
            return Ok(size);
        }
        self.put_multipart(key, first_part, body, content_type)
            .await
    }

    async fn get_stream(&self, key: &str) -> PortResult<Option<ByteStream>> {
        validate_key(key)?;
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let object = match response {
            Ok(object) => object,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_no_such_key()) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(self.error(&format!("reading {key:?}"), error)),
        };
        let chunks = futures::stream::unfold(object.body, |mut body| async move {
            let chunk = body.next().await?;
            Some((chunk.map_err(std::io::Error::other), body))
        });
        Ok(Some(chunks.boxed()))
    }

    async fn upload_target(&self, key: &str, expires: Duration) -> PortResult<UploadTarget> {
        validate_key(key)?;
        let presigning = PresigningConfig::expires_in(expires).map_err(|error| {
            PortError::Invalid(format!("an upload target for blob {key:?}: {error}"))
        })?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|error| self.error(&format!("presigning an upload of {key:?}"), error))?;
        Ok(UploadTarget {
            method: request.method().to_string(),
            url: request.uri().to_string(),
            headers: request
                .headers()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        })
    }
}

/// Creates `bucket` unless this account already owns it (for tests and local development; deployed
/// stacks create their buckets in the template).
pub async fn create_bucket(config: &SdkConfig, bucket: &str) -> PortResult<()> {
    let client = client_for(config);
    let region = config
        .region()
        .map_or(DEFAULT_REGION, |region| region.as_ref());
    let mut request = client.create_bucket().bucket(bucket);
    if region != DEFAULT_REGION {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_bucket_already_owned_by_you()) =>
        {
            Ok(())
        }
        Err(error) => Err(s3_error(
            bucket,
            &format!("creating bucket {bucket:?}"),
            error,
        )),
    }
}

fn client_for(config: &SdkConfig) -> Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    Client::from_conf(s3_config)
}

/// Reads from `body` until `buffer` holds a whole part; `true` when the body ended first.
async fn fill_part(body: &mut ByteStream, buffer: &mut BytesMut, key: &str) -> PortResult<bool> {
    while buffer.len() < PART_SIZE {
        match body.next().await {
            Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
            Some(Err(error)) => {
                return Err(PortError::Other(format!(
                    "the body of blob {key:?} failed: {error}"
                )));
            }
            None => return Ok(true),
        }
    }
    Ok(false)
}

fn s3_error<E>(
    bucket: &str,
    doing: &str,
    error: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if is_unreachable(&error) {
        return PortError::Unavailable(format!(
            "S3 cannot be reached ({doing}): {}",
            one_line(&error)
        ));
    }
    let (code, message) = code_and_message(&error);
    match code {
        "NoSuchBucket" => PortError::NotFound(format!("bucket {bucket}")),
        code if is_throttling(code) || matches!(code, "SlowDown" | "ServiceUnavailable") => {
            PortError::Throttled(format!("S3 is throttling ({doing}): {message}"))
        }
        "AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
            PortError::Rejected(format!(
                "S3 refused {doing} in bucket {bucket}: {code}: {message}"
            ))
        }
        "InvalidBucketName" | "KeyTooLongError" | "EntityTooLarge" | "EntityTooSmall"
        | "InvalidArgument" => PortError::Invalid(format!("S3 refused {doing}: {code}: {message}")),
        _ => PortError::Other(format!(
            "S3 failed {doing} in bucket {bucket}: {}",
            one_line(&error)
        )),
    }
}
