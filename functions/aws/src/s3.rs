//! Task data in S3: files up and down with their sha256 computed on the way
//! (so a digest never costs a second read of a large file), multipart uploads
//! for large files, directories as key prefixes that keep their structure.
//!
//! Digests are `sha256:<hex>` of the bytes; a directory's is the sha256 of its
//! manifest (`updraft_core::cache_key::directory_digest`), as in the local blob store.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use updraft_core::execution::contract::{digest_hex, digest_string};

/// Files up to this size go in one PutObject; larger ones in parts of this size.
/// 16 MiB keeps a 200 MiB file at 13 parts and a 160 GiB file under S3's 10,000.
pub const PART_SIZE: usize = 16 * 1024 * 1024;
/// Parts in flight at once: enough to fill a Batch container's network, bounded memory.
const PARTS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    pub fn parse(uri: &str) -> Result<S3Uri, String> {
        let rest = uri.strip_prefix("s3://").ok_or_else(|| format!("{uri:?} is not an s3://bucket/key URI"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{uri:?} names no bucket"));
        }
        Ok(S3Uri { bucket: bucket.to_string(), key: key.to_string() })
    }

    /// This URI with `name` appended to its key (a prefix gets a `/` first if it lacks one).
    pub fn join(&self, name: &str) -> S3Uri {
        let key = if self.key.is_empty() || self.key.ends_with('/') {
            format!("{}{name}", self.key)
        } else {
            format!("{}/{name}", self.key)
        };
        S3Uri { bucket: self.bucket.clone(), key }
    }
}

impl std::fmt::Display for S3Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{action} {uri}: {message}")]
    S3 { action: &'static str, uri: String, message: String, retryable: bool },
    #[error("{path}: {source}")]
    Local { path: PathBuf, source: std::io::Error },
    #[error("{uri} has digest {found}, but {expected} was recorded: the data changed or is corrupt")]
    DigestMismatch { uri: String, expected: String, found: String },
    /// A reference that names no object (`s3:///key`): the document holding it is wrong.
    #[error("{0}")]
    BadUri(String),
}

impl DataError {
    /// Whether trying again could help (throttling, a dropped connection), as
    /// opposed to a missing object or a denied request.
    pub fn is_retryable(&self) -> bool {
        match self {
            DataError::S3 { retryable, .. } => *retryable,
            DataError::Local { .. } | DataError::DigestMismatch { .. } | DataError::BadUri(_) => false,
        }
    }
}

/// The port's view: whether the same call could succeed later, and the message.
impl From<DataError> for updraft_core::ports::PortError {
    fn from(e: DataError) -> Self {
        if e.is_retryable() {
            updraft_core::ports::PortError::Transient(e.to_string())
        } else {
            updraft_core::ports::PortError::Permanent(e.to_string())
        }
    }
}

fn s3_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    action: &'static str,
    uri: &S3Uri,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> DataError {
    let uri = uri.to_string();
    move |e| {
        let retryable = crate::sdk_error::is_retryable(&e);
        DataError::S3 { action, uri, message: crate::sdk_error::describe(&e), retryable }
    }
}

fn local(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Local { path: path.to_path_buf(), source }
}

/// A finished hash as records write digests (`sha256:<hex>`).
pub fn hasher_digest(hasher: Sha256) -> String {
    digest_string(&hex::encode(hasher.finalize()))
}

fn hex_of(digest: &str) -> String {
    digest_hex(digest).unwrap_or(digest).to_string()
}

/// Uploads a file; returns its digest and size. Large files go in parts, and a
/// failed multipart upload is aborted so it leaves no billed fragments.
pub async fn upload_file(s3: &Client, path: &Path, to: &S3Uri) -> Result<(String, u64), DataError> {
    let mut file = tokio::fs::File::open(path).await.map_err(local(path))?;
    let size = file.metadata().await.map_err(local(path))?.len();
    if size as usize <= PART_SIZE {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes).await.map_err(local(path))?;
        let digest = hasher_digest(Sha256::new_with_prefix(&bytes));
        s3.put_object()
            .bucket(&to.bucket)
            .key(&to.key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(s3_error("PutObject", to))?;
        return Ok((digest, size));
    }
    let upload = s3
        .create_multipart_upload()
        .bucket(&to.bucket)
        .key(&to.key)
        .send()
        .await
        .map_err(s3_error("CreateMultipartUpload", to))?;
    let upload_id = upload.upload_id.unwrap_or_default();
    match upload_parts(s3, &mut file, path, to, &upload_id).await {
        Ok((digest, parts)) => {
            s3.complete_multipart_upload()
                .bucket(&to.bucket)
                .key(&to.key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(s3_error("CompleteMultipartUpload", to))?;
            Ok((digest, size))
        }
        Err(e) => {
            let _ = s3.abort_multipart_upload().bucket(&to.bucket).key(&to.key).upload_id(&upload_id).send().await;
            Err(e)
        }
    }
}

async fn upload_parts(
    s3: &Client,
    file: &mut tokio::fs::File,
    path: &Path,
    to: &S3Uri,
    upload_id: &str,
) -> Result<(String, Vec<CompletedPart>), DataError> {
    let mut hasher = Sha256::new();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut parts = Vec::new();
    let mut number = 0;
    loop {
        let mut part = Vec::with_capacity(PART_SIZE);
        (&mut *file).take(PART_SIZE as u64).read_to_end(&mut part).await.map_err(local(path))?;
        if part.is_empty() {
            break;
        }
        hasher.update(&part);
        number += 1;
        if in_flight.len() >= PARTS_IN_FLIGHT
            && let Some(done) = in_flight.join_next().await
        {
            parts.push(done.expect("part upload task does not panic")?);
        }
        let request = s3
            .upload_part()
            .bucket(&to.bucket)
            .key(&to.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(part));
        let uri = to.clone();
        in_flight.spawn(async move {
            let out = request.send().await.map_err(s3_error("UploadPart", &uri))?;
            Ok::<_, DataError>(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag).build())
        });
    }
    while let Some(done) = in_flight.join_next().await {
        parts.push(done.expect("part upload task does not panic")?);
    }
    parts.sort_by_key(|p| p.part_number);
    Ok((hasher_digest(hasher), parts))
}

/// Downloads an object to a file (parent directories created); returns its digest.
/// With `expected`, a different digest is an error and the file is removed.
pub async fn download_file(
    s3: &Client,
    from: &S3Uri,
    path: &Path,
    expected: Option<&str>,
) -> Result<String, DataError> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(local(parent))?;
    }
    let object =
        s3.get_object().bucket(&from.bucket).key(&from.key).send().await.map_err(s3_error("GetObject", from))?;
    let mut body = object.body;
    let mut file = tokio::fs::File::create(path).await.map_err(local(path))?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| DataError::S3 {
            action: "GetObject",
            uri: from.to_string(),
            message: e.to_string(),
            retryable: true,
        })?;
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(local(path))?;
    }
    file.flush().await.map_err(local(path))?;
    let digest = hasher_digest(hasher);
    if let Some(expected) = expected.filter(|e| !e.is_empty())
        && expected != digest
    {
        let _ = tokio::fs::remove_file(path).await;
        return Err(DataError::DigestMismatch { uri: from.to_string(), expected: expected.into(), found: digest });
    }
    Ok(digest)
}

/// Every key under a prefix (which is treated as a directory: `prefix/`).
pub async fn list_prefix(s3: &Client, prefix: &S3Uri) -> Result<Vec<String>, DataError> {
    let dir = prefix.join("");
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(&dir.bucket)
            .prefix(&dir.key)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(s3_error("ListObjectsV2", &dir))?;
        keys.extend(page.contents.unwrap_or_default().into_iter().filter_map(|o| o.key));
        match page.next_continuation_token {
            Some(next) => token = Some(next),
            None => return Ok(keys),
        }
    }
}

/// Downloads every object under a prefix into `dir`, keeping the relative
/// paths; returns the directory's digest. With `expected`, a different digest
/// is an error (the tree is left for the caller to discard).
pub async fn download_dir(s3: &Client, from: &S3Uri, dir: &Path, expected: Option<&str>) -> Result<String, DataError> {
    let base = from.join("").key;
    tokio::fs::create_dir_all(dir).await.map_err(local(dir))?;
    let mut manifest = Vec::new();
    for key in list_prefix(s3, from).await? {
        let relative = &key[base.len()..];
        if relative.is_empty() || relative.split('/').any(|part| part == ".." || part == ".") {
            continue; // A key that would escape the directory is not data of it.
        }
        let object = S3Uri { bucket: from.bucket.clone(), key: key.clone() };
        let digest = download_file(s3, &object, &dir.join(relative), None).await?;
        manifest.push((relative.to_string(), hex_of(&digest)));
    }
    let digest = digest_string(&updraft_core::cache_key::directory_digest(manifest));
    if let Some(expected) = expected.filter(|e| !e.is_empty())
        && expected != digest
    {
        return Err(DataError::DigestMismatch { uri: from.to_string(), expected: expected.into(), found: digest });
    }
    Ok(digest)
}

/// Uploads a directory tree under a prefix; returns the manifest digest and total size.
pub async fn upload_dir(s3: &Client, dir: &Path, to: &S3Uri) -> Result<(String, u64), DataError> {
    // The same walk as the local store's digests: links followed to files only, special files refused.
    let files = crate::files::walk_files(dir).map_err(local(dir))?;
    let mut manifest = Vec::new();
    let mut total = 0;
    for (relative, path) in files {
        let (digest, size) = upload_file(s3, &path, &to.join(&relative)).await?;
        total += size;
        manifest.push((relative, hex_of(&digest)));
    }
    Ok((digest_string(&updraft_core::cache_key::directory_digest(manifest)), total))
}

pub async fn get_bytes(s3: &Client, from: &S3Uri) -> Result<Vec<u8>, DataError> {
    get_object_bytes(s3, from, None).await
}

/// Bytes `start..end` (end exclusive) of an object: one request for one line of a larger file.
pub async fn get_range(s3: &Client, from: &S3Uri, start: u64, end: u64) -> Result<Vec<u8>, DataError> {
    if end <= start {
        return Ok(Vec::new());
    }
    get_object_bytes(s3, from, Some(format!("bytes={start}-{}", end - 1))).await
}

async fn get_object_bytes(s3: &Client, from: &S3Uri, range: Option<String>) -> Result<Vec<u8>, DataError> {
    let object = s3
        .get_object()
        .bucket(&from.bucket)
        .key(&from.key)
        .set_range(range)
        .send()
        .await
        .map_err(s3_error("GetObject", from))?;
    let bytes = object.body.collect().await.map_err(|e| DataError::S3 {
        action: "GetObject",
        uri: from.to_string(),
        message: e.to_string(),
        retryable: true,
    })?;
    Ok(bytes.to_vec())
}

pub async fn put_bytes(s3: &Client, to: &S3Uri, bytes: Vec<u8>, content_type: &str) -> Result<(), DataError> {
    s3.put_object()
        .bucket(&to.bucket)
        .key(&to.key)
        .content_type(content_type)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .map_err(s3_error("PutObject", to))?;
    Ok(())
}

/// Whether the bucket exists and these credentials may use it; the error says which not.
pub async fn check_bucket(s3: &Client, bucket: &str) -> Result<(), DataError> {
    let uri = S3Uri { bucket: bucket.to_string(), key: String::new() };
    s3.head_bucket().bucket(bucket).send().await.map_err(s3_error("HeadBucket", &uri))?;
    Ok(())
}

pub async fn delete(s3: &Client, uri: &S3Uri) -> Result<(), DataError> {
    s3.delete_object().bucket(&uri.bucket).key(&uri.key).send().await.map_err(s3_error("DeleteObject", uri))?;
    Ok(())
}

pub async fn exists(s3: &Client, uri: &S3Uri) -> Result<bool, DataError> {
    match s3.head_object().bucket(&uri.bucket).key(&uri.key).send().await {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(false),
        Err(e) => Err(s3_error("HeadObject", uri)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_parse_and_join() {
        let uri = S3Uri::parse("s3://data/runs/x").unwrap();
        assert_eq!((uri.bucket.as_str(), uri.key.as_str()), ("data", "runs/x"));
        assert_eq!(uri.join("outputs.json").to_string(), "s3://data/runs/x/outputs.json");
        assert_eq!(S3Uri::parse("s3://data/p/").unwrap().join("a").key, "p/a");
        assert_eq!(S3Uri::parse("s3://data").unwrap().join("a").key, "a");
        assert!(S3Uri::parse("https://x/y").unwrap_err().contains("not an s3://"));
        assert!(S3Uri::parse("s3:///k").is_err());
    }
}
