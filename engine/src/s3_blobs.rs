//! A local run's blob store in S3 (`updraft run --blob-store s3://bucket/prefix`).
//!
//! The same content addressing as the disk store: files at
//! `<prefix>/sha256/<hex>`, directories under `<prefix>/dirs/<hex>/` with a
//! `<prefix>/dirs/<hex>.complete` marker written after their last file. So
//! outputs land where a deployed stack or a teammate can read them, an output
//! that is already there is not uploaded again, and a directory cut short by a
//! crash is never taken for a whole one.

use aws_sdk_s3::Client;
use std::path::Path;
use updraft_aws::files::{dir_sha256, file_sha256};
use updraft_aws::s3::{self, DataError, S3Uri};
use updraft_core::execution::contract::digest_string;
use updraft_core::ports::{self, PortError, StoredBlob};

pub struct S3BlobStore {
    client: Client,
    root: S3Uri,
}

impl S3BlobStore {
    /// Checks that the bucket can be used before any task runs.
    pub async fn open(client: Client, root: S3Uri) -> Result<S3BlobStore, DataError> {
        s3::check_bucket(&client, &root.bucket).await?;
        Ok(S3BlobStore { client, root })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Uploads a file under its digest unless it is there already; returns the digest and where it is.
    pub async fn put_file(&self, path: &Path) -> Result<(String, S3Uri), DataError> {
        let hex = file_sha256(path).map_err(|source| DataError::Local { path: path.into(), source })?;
        let digest = digest_string(&hex);
        let to = self.root.join(&format!("sha256/{hex}"));
        if !s3::exists(&self.client, &to).await? {
            let (uploaded, _) = s3::upload_file(&self.client, path, &to).await?;
            if uploaded != digest {
                let _ = s3::delete(&self.client, &to).await;
                return Err(changed(&to, &digest, uploaded));
            }
        }
        Ok((digest, to))
    }

    /// Uploads a directory tree under its digest, then its completion marker.
    pub async fn put_dir(&self, path: &Path) -> Result<(String, S3Uri), DataError> {
        let hex = dir_sha256(path).map_err(|source| DataError::Local { path: path.into(), source })?;
        let digest = digest_string(&hex);
        let to = self.root.join(&format!("dirs/{hex}"));
        let marker = completion_marker(&to);
        if !s3::exists(&self.client, &marker).await? {
            let (uploaded, _) = s3::upload_dir(&self.client, path, &to).await?;
            if uploaded != digest {
                for key in s3::list_prefix(&self.client, &to).await.unwrap_or_default() {
                    let _ = s3::delete(&self.client, &S3Uri { bucket: to.bucket.clone(), key }).await;
                }
                return Err(changed(&to, &digest, uploaded));
            }
            s3::put_bytes(&self.client, &marker, Vec::new(), "application/octet-stream").await?;
        }
        Ok((digest, to))
    }

    /// Whether a stored file, or a whole stored directory, is at `uri`.
    pub async fn has_object(&self, uri: &str, is_dir: bool) -> Result<bool, DataError> {
        let Ok(uri) = S3Uri::parse(uri) else { return Ok(false) };
        let probe = if is_dir { completion_marker(&uri) } else { uri };
        s3::exists(&self.client, &probe).await
    }
}

impl ports::BlobStore for S3BlobStore {
    async fn put(&self, path: &Path, is_dir: bool) -> Result<StoredBlob, PortError> {
        let (digest, at) = if is_dir { self.put_dir(path).await? } else { self.put_file(path).await? };
        Ok(StoredBlob { digest, uri: at.to_string() })
    }

    /// Presence only: digests are checked when the data is downloaded.
    async fn holds(&self, uri: &str, _digest: &str, is_dir: bool) -> bool {
        self.has_object(uri, is_dir).await.unwrap_or(false)
    }
}

fn completion_marker(dir: &S3Uri) -> S3Uri {
    S3Uri { bucket: dir.bucket.clone(), key: format!("{}.complete", dir.key.trim_end_matches('/')) }
}

/// What was uploaded is not what was digested a moment before: something
/// changed the output in between. What was uploaded is removed again, so a
/// content address never holds other content.
fn changed(uri: &S3Uri, digested: &str, uploaded: String) -> DataError {
    DataError::DigestMismatch { uri: uri.to_string(), expected: digested.to_string(), found: uploaded }
}
