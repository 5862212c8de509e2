//! Where a local run keeps what its tasks write. By default a content-addressed
//! store on the local disk: outputs are moved in under their sha256, so equal
//! data is stored once and a cache hit can hand out the same path again. With
//! `--blob-store s3://…`, the same addressing in S3 (`super::s3_blobs`).

use super::home::staging_path;
use super::s3_blobs::S3BlobStore;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use updraft_aws::files::{dir_sha256, file_sha256};
use updraft_aws::s3::DataError;
use updraft_core::execution::contract::{digest_hex, digest_string};
use updraft_core::ports::{self, PortError, StoredBlob};
use updraft_core::proto::core::Literal;

pub enum Blobs {
    Disk(BlobStore),
    S3(S3BlobStore),
}

impl ports::BlobStore for Blobs {
    async fn put(&self, path: &Path, is_dir: bool) -> Result<StoredBlob, PortError> {
        match self {
            Blobs::Disk(disk) => disk.put(path, is_dir).await,
            Blobs::S3(s3) => s3.put(path, is_dir).await,
        }
    }

    /// Local paths (a run's own inputs, or the disk store's blobs) are re-hashed
    /// whichever store is in use; S3 URIs only an S3 store can reach.
    async fn holds(&self, uri: &str, digest: &str, is_dir: bool) -> bool {
        match (self, uri.starts_with("s3://")) {
            (Blobs::S3(s3), true) => s3.holds(uri, digest, is_dir).await,
            (Blobs::Disk(_), true) => false,
            (_, false) => local_holds(uri, digest, is_dir).await,
        }
    }
}

/// Re-hashes a local blob off the runtime's thread, so Ctrl-C is heard meanwhile.
async fn local_holds(uri: &str, digest: &str, is_dir: bool) -> bool {
    let (path, digest) = (PathBuf::from(uri), digest.to_string());
    tokio::task::spawn_blocking(move || has_digest(&path, is_dir, &digest)).await.unwrap_or(false)
}

impl Blobs {
    /// Whether this run can read every blob that (cached) values name, intact:
    /// local paths whose content still has the recorded digest, and S3 objects
    /// when the store is S3. A cache entry that fails this is a miss, never a
    /// broken run and never data that changed since it was stored.
    pub async fn hold_all(&self, values: &BTreeMap<String, Literal>) -> bool {
        ports::holds_all(self, values).await
    }

    /// The inputs as a task on this machine sees them: every blob under `dir`,
    /// read-only, checked against its digest on the way, so data that changed since
    /// it was recorded is refused. With the disk store, each is a hard link to one
    /// read-only copy per content (`BlobStore::link_verified`), so a home does not
    /// grow by an input's size per node and run; never a link to the store's own
    /// files or to the user's. A copy where the file system refuses links, and with
    /// S3 (downloads).
    pub async fn localize(
        &self,
        inputs: &BTreeMap<String, Literal>,
        dir: &Path,
    ) -> Result<BTreeMap<String, Literal>, DataError> {
        let mut local = inputs.clone();
        if updraft_aws::data::input_blobs(&mut local, dir).is_empty() {
            return Ok(local);
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|source| DataError::Local { path: dir.into(), source })?;
        }
        let store = match self {
            Blobs::S3(s3) => {
                updraft_aws::data::download_inputs(s3.client(), &mut local, dir).await?;
                None
            }
            Blobs::Disk(disk) => Some(disk.clone()),
        };
        // Linking, copying and hashing run off the runtime's thread, so Ctrl-C is heard meanwhile.
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || place_local_inputs(&mut local, &dir, store.as_ref()).map(|()| local))
            .await
            .map_err(|e| DataError::Local { path: PathBuf::new(), source: io::Error::other(e) })?
    }
}

/// Puts every blob that is a local path (not S3, not yet under `dir`) at
/// `dir/<input>[/<i>]/<file name>`, verifying its digest, and points the literal
/// there: linked from `store` (after storing a file from elsewhere), or copied.
fn place_local_inputs(
    inputs: &mut BTreeMap<String, Literal>,
    dir: &Path,
    store: Option<&BlobStore>,
) -> Result<(), DataError> {
    for (blob, is_dir, place) in updraft_aws::data::input_blobs(inputs, dir) {
        let from = PathBuf::from(&blob.uri);
        if blob.uri.starts_with("s3://") || from.starts_with(dir) {
            continue;
        }
        let to = place.join(from.file_name().unwrap_or(std::ffi::OsStr::new("data")));
        let local = |source| DataError::Local { path: from.clone(), source };
        std::fs::create_dir_all(&place).map_err(local)?;
        let found = match store {
            Some(store) => store.link_verified(&from, &to, is_dir, &blob.digest),
            None if is_dir => copy_dir_verified(&from, &to),
            None => copy_file_verified(&from, &to),
        }
        .map_err(local)?;
        let found = digest_string(&found);
        if !blob.digest.is_empty() && found != blob.digest {
            return Err(DataError::DigestMismatch { uri: blob.uri.clone(), expected: blob.digest.clone(), found });
        }
        blob.uri = to.display().to_string();
    }
    Ok(())
}

/// Whether a local blob exists and its content has `digest` (`sha256:…`).
fn has_digest(path: &Path, is_dir: bool, digest: &str) -> bool {
    let found = if is_dir { dir_sha256(path) } else { file_sha256(path) };
    found.is_ok_and(|hex| digest_hex(digest) == Some(hex.as_str()))
}

/// A hard link to a stored (read-only) file, or a read-only copy where links fail
/// (another file system, a full link count).
fn link_or_copy(stored: &Path, to: &Path) -> io::Result<()> {
    if std::fs::hard_link(stored, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(stored, to)?;
    make_read_only(to)
}

/// Copies a regular file, hashing it on the way; the copy is read-only.
fn copy_file_verified(from: &Path, to: &Path) -> io::Result<String> {
    let hex = updraft_aws::files::sha256_copying(from, std::fs::File::create(to)?)?;
    make_read_only(to)?;
    Ok(hex)
}

/// Copies a directory tree (links followed to files only, special files
/// refused); returns its digest. Files are read-only, folders stay removable.
fn copy_dir_verified(from: &Path, to: &Path) -> io::Result<String> {
    std::fs::create_dir_all(to)?;
    updraft_aws::files::dir_sha256_each(from, |relative, path| {
        let target = to.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        copy_file_verified(path, &target)
    })
}

/// Read-only for everyone: a task that tries to append to its input fails
/// instead of changing data (root ignores the mode, hence copies as well).
fn make_read_only(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))
}

#[derive(Clone)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    pub fn new(root: PathBuf, tmp: PathBuf) -> BlobStore {
        BlobStore { root, tmp }
    }

    /// Moves (or copies, across file systems) a file into the store; returns its
    /// digest and stored path. A stored blob whose content no longer has its
    /// digest (changed on disk) is replaced, never kept.
    pub fn put_file(&self, path: &Path) -> io::Result<(String, PathBuf)> {
        let hex = file_sha256(path)?;
        let digest = digest_string(&hex);
        let target = self.root.join("sha256").join(&hex);
        if has_digest(&target, false, &digest) {
            // Stored before (a rerun, an equal output): the task's copy is not kept twice.
            remove(path)?;
        } else {
            place(path, &target, &self.tmp)?;
            make_read_only(&target)?;
        }
        Ok((digest, target))
    }

    /// Puts the blob at `from` (the store's own file, or the user's) at `to` as hard
    /// links to its *task-facing copy*, `links/<sha256|dirs>/<hex>`: one copy per
    /// content, shared by every node and run that reads it, checked against
    /// `digest` before each use and made again from `from` when a task changed it
    /// (a task can `chmod` its input: the links are never to the store's own files,
    /// which stay as their tasks wrote them). Returns the digest found. Without an
    /// expected digest, a plain verified copy.
    fn link_verified(&self, from: &Path, to: &Path, is_dir: bool, digest: &str) -> io::Result<String> {
        let Some(hex) = digest_hex(digest).map(str::to_string) else {
            return if is_dir { copy_dir_verified(from, to) } else { copy_file_verified(from, to) };
        };
        let shared = self.root.join("links").join(if is_dir { "dirs" } else { "sha256" }).join(&hex);
        // One check-and-make at a time in this process: parallel nodes reading the same
        // input would otherwise each replace the copy another has just linked.
        static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _making = MAKING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !has_digest(&shared, is_dir, digest) {
            // Made aside, checked, then renamed into place: a reader never links half a copy.
            let staging = staging_path(&self.tmp, &format!("link-{hex}"));
            let found = if is_dir { copy_dir_verified(from, &staging) } else { copy_file_verified(from, &staging) }?;
            if found != hex {
                let _ = remove(&staging);
                return Ok(found); // the caller reports the mismatch
            }
            std::fs::create_dir_all(shared.parent().expect("under links/"))?;
            if shared.exists() {
                remove(&shared)?; // changed by a task: replaced
            }
            if std::fs::rename(&staging, &shared).is_err() {
                let _ = remove(&staging); // another run put the same content there first
            }
        }
        if !is_dir {
            link_or_copy(&shared, to)?;
            return Ok(hex);
        }
        std::fs::create_dir_all(to)?;
        for (relative, file) in updraft_aws::files::walk_files(&shared)? {
            let target = to.join(&relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            link_or_copy(&file, &target)?;
        }
        Ok(hex)
    }

    /// Stores a directory tree under the digest of its manifest.
    pub fn put_dir(&self, path: &Path) -> io::Result<(String, PathBuf)> {
        let hex = dir_sha256(path)?;
        let digest = digest_string(&hex);
        let target = self.root.join("dirs").join(&hex);
        if has_digest(&target, true, &digest) {
            remove(path)?;
        } else {
            if target.exists() {
                remove(&target)?;
            }
            place(path, &target, &self.tmp)?;
            for (_, file) in updraft_aws::files::walk_files(&target)? {
                make_read_only(&file)?;
            }
        }
        Ok((digest, target))
    }
}

impl ports::BlobStore for BlobStore {
    async fn put(&self, path: &Path, is_dir: bool) -> Result<StoredBlob, PortError> {
        let stored = if is_dir { self.put_dir(path) } else { self.put_file(path) };
        let (digest, at) = stored.map_err(|source| PortError::from(DataError::Local { path: path.into(), source }))?;
        Ok(StoredBlob { digest, uri: at.display().to_string() })
    }

    async fn holds(&self, uri: &str, digest: &str, is_dir: bool) -> bool {
        local_holds(uri, digest, is_dir).await
    }
}

/// Renames into place, or copies to a temporary name and renames, so that a
/// reader never sees half a blob.
fn place(from: &Path, to: &Path, tmp: &Path) -> io::Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    // Unique per call: two map items may store the same content at the same moment.
    let staging = staging_path(tmp, &to.file_name().unwrap_or_default().to_string_lossy());
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
