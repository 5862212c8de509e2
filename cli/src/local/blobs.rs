//! Where a local run keeps what its tasks write. By default a content-addressed
//! store on the local disk: outputs are moved in under their sha256, so equal
//! data is stored once and a cache hit can hand out the same path again. With
//! `--blob-store s3://…`, the same addressing in S3 (`super::s3_blobs`).

use super::s3_blobs::S3BlobStore;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use updraft_core::proto::core::Literal;
use updraft_functions::s3::DataError;

pub const DIGEST_PREFIX: &str = "sha256:";

pub enum Blobs {
    Disk(BlobStore),
    S3(S3BlobStore),
}

impl Blobs {
    /// Stores a checked output (a file, or a directory tree); returns its digest and URI.
    pub async fn put(&self, path: &Path, is_dir: bool) -> Result<(String, String), DataError> {
        match self {
            Blobs::Disk(disk) => {
                let stored = if is_dir { disk.put_dir(path) } else { disk.put_file(path) };
                let (digest, at) = stored.map_err(|source| DataError::Local { path: path.into(), source })?;
                Ok((digest, at.display().to_string()))
            }
            Blobs::S3(s3) => {
                let (digest, at) = if is_dir { s3.put_dir(path).await? } else { s3.put_file(path).await? };
                Ok((digest, at.to_string()))
            }
        }
    }

    /// Whether this run can read every blob that (cached) values name: local
    /// paths that exist, and S3 objects when the store is S3. A cache entry
    /// that fails this is a miss, never a broken run.
    pub async fn hold_all(&self, values: &BTreeMap<String, Literal>) -> bool {
        for value in values.values() {
            let mut value = value.clone();
            let mut found = Vec::new();
            crate::data::collect_blobs(&mut value, &mut found);
            for (blob, is_dir) in found {
                let readable = match (self, blob.uri.starts_with("s3://")) {
                    (_, false) => Path::new(&blob.uri).exists(),
                    (Blobs::S3(s3), true) => s3.holds(&blob.uri, is_dir).await.unwrap_or(false),
                    (Blobs::Disk(_), true) => false,
                };
                if !readable {
                    return false;
                }
            }
        }
        true
    }

    /// The inputs as a task on this machine sees them: blobs in S3 downloaded under `dir`.
    pub async fn localize(
        &self,
        inputs: &BTreeMap<String, Literal>,
        dir: &Path,
    ) -> Result<BTreeMap<String, Literal>, DataError> {
        let mut local = inputs.clone();
        if let Blobs::S3(s3) = self {
            crate::data::download_inputs(s3.client(), &mut local, dir).await?;
        }
        Ok(local)
    }
}

pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    pub fn new(root: PathBuf, tmp: PathBuf) -> BlobStore {
        BlobStore { root, tmp }
    }

    /// Moves (or copies, across file systems) a file into the store; returns its
    /// digest and stored path.
    pub fn put_file(&self, path: &Path) -> io::Result<(String, PathBuf)> {
        let hex = file_sha256(path)?;
        let target = self.root.join("sha256").join(&hex);
        if !target.exists() {
            place(path, &target, &self.tmp)?;
        }
        Ok((format!("{DIGEST_PREFIX}{hex}"), target))
    }

    /// Stores a directory tree under the digest of its manifest.
    pub fn put_dir(&self, path: &Path) -> io::Result<(String, PathBuf)> {
        let hex = dir_sha256(path)?;
        let target = self.root.join("dirs").join(&hex);
        if !target.exists() {
            place(path, &target, &self.tmp)?;
        }
        Ok((format!("{DIGEST_PREFIX}{hex}"), target))
    }
}

/// Renames into place, or copies to a temporary name and renames, so that a
/// reader never sees half a blob.
fn place(from: &Path, to: &Path, tmp: &Path) -> io::Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    // Unique per call: two map items may store the same content at the same moment.
    static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = to.file_name().unwrap_or_default().to_string_lossy();
    let staging = tmp.join(format!("{}-{n}-{name}", std::process::id()));
    copy_recursively(from, &staging)?;
    match std::fs::rename(&staging, to) {
        Ok(()) => Ok(()),
        Err(_) if to.exists() => {
            // Someone stored the same content first.
            let _ = remove(&staging);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn remove(path: &Path) -> io::Result<()> {
    if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }
}

pub fn copy_recursively(from: &Path, to: &Path) -> io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_recursively(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

pub fn file_sha256(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The directory's content digest (`updraft_core::cache_key::directory_digest`).
pub fn dir_sha256(path: &Path) -> io::Result<String> {
    let mut entries = Vec::new();
    collect(path, path, &mut entries)?;
    Ok(updraft_core::cache_key::directory_digest(entries))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            out.push((relative, file_sha256(&path)?));
        }
    }
    Ok(())
}
