//! Keeping a home's size in check (docs/storage.md, "The local home"): deleting
//! executions, and collecting the blobs that no execution and no cache entry names.
//!
//! What is safe: a blob named by an execution's or a node's record, or by a cache
//! entry, is kept; everything else in the store is content nobody can reach. The
//! task-facing copies under `blobs/links/` are kept while a run directory links them. A run
//! in flight records its outputs only when each node ends, so while one runs,
//! blobs changed in the last [`IN_FLIGHT_GRACE`] are kept too.

use crate::home::Home;
use crate::runner;
use crate::store::{Store, StoreError};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use updraft_core::proto::core::WorkflowPhase;

/// Blobs this recent are kept while a run is in flight: it may have stored them
/// without recording them yet.
pub const IN_FLIGHT_GRACE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no execution named {0} on this machine\n  hint: updraft executions list shows them")]
    NotFound(String),
    #[error("execution {0} is running (its updraft process is alive)\n  hint: updraft executions abort {0} first")]
    Running(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CleanupError + '_ {
    move |source| CleanupError::Io { path: path.to_path_buf(), source }
}

/// What deleting executions removed.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    pub executions: Vec<String>,
    /// Bytes of their run directories (logs, inputs documents, copies); the blobs
    /// they alone named are `updraft gc`'s.
    pub bytes: u64,
}

/// Deletes the executions' records and run directories. Every name is checked
/// first (it exists, no live process runs it), so a refusal deletes nothing.
pub fn delete_executions(home: &Home, store: &Store, names: &[String]) -> Result<Deleted, CleanupError> {
    let running: Vec<(String, String)> = store.running()?;
    for name in names {
        let Some((execution, _)) = store.get(name)? else { return Err(CleanupError::NotFound(name.clone())) };
        let live = running.iter().any(|(n, r)| n == name && runner::is_alive(r));
        if live && execution.phase == WorkflowPhase::WorkflowRunning as i32 {
            return Err(CleanupError::Running(name.clone()));
        }
    }
    let mut deleted = Deleted::default();
    for name in names {
        // The records first: a directory left by a failure here is an orphan `gc` removes.
        store.delete_execution(name)?;
        let dir = home.root().join("runs").join(name);
        deleted.bytes += remove_tree(&dir)?;
        deleted.executions.push(name.clone());
    }
    Ok(deleted)
}

/// What a collection found (and, unless a dry run, removed).
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Collected {
    /// Stored files and directories no record or cache entry names.
    pub blobs: usize,
    /// Run directories whose execution is gone, and staging leftovers.
    pub leftovers: usize,
    /// Bytes those held (a blob still linked from a remaining run directory frees
    /// its bytes when that directory goes).
    pub bytes: u64,
    /// Unnamed blobs kept because a run is in flight and they are recent.
    pub kept_recent: usize,
    pub dry_run: bool,
}

/// Removes what nothing references: blobs under `blobs/`, run directories
/// without an execution, and staging files under `tmp/`.
pub fn collect_garbage(home: &Home, store: &Store, dry_run: bool) -> Result<Collected, CleanupError> {
    let blobs = home.blobs();
    let mut named = BTreeSet::new();
    for record in store.all_records()? {
        blob_entries_in(&record, &blobs, &mut named);
    }
    let cache = home.cache();
    for entry in read_dir(&cache)? {
        if let Ok(text) = std::fs::read_to_string(&entry) {
            blob_entries_in(&text, &blobs, &mut named);
        }
    }
    let in_flight = store.running()?.iter().any(|(_, r)| runner::is_alive(r));
    let recent = |path: &Path| {
        let changed = std::fs::symlink_metadata(path)
            .map(|m| SystemTime::UNIX_EPOCH + Duration::from_secs(m.ctime().max(0) as u64))
            .unwrap_or(SystemTime::now());
        SystemTime::now().duration_since(changed).unwrap_or_default() < IN_FLIGHT_GRACE
    };
    let mut collected = Collected { dry_run, ..Collected::default() };
    // A stored blob is garbage when no record names it; a task-facing copy (`links/`,
    // `crate::blobs`), made again when needed, when no run directory links it.
    let stored = ["sha256", "dirs"].map(|kind| (blobs.join(kind), false));
    let copies = ["sha256", "dirs"].map(|kind| (blobs.join("links").join(kind), true));
    for (dir, is_copy) in stored.into_iter().chain(copies) {
        for path in read_dir(&dir)? {
            let needed = if is_copy { linked_from_elsewhere(&path) } else { named.contains(&path) };
            if needed {
                continue;
            }
            if in_flight && recent(&path) {
                collected.kept_recent += 1;
                continue;
            }
            collected.blobs += 1;
            collected.bytes += if dry_run { tree_bytes(&path) } else { remove_tree(&path)? };
        }
    }
    let mut leftovers: Vec<PathBuf> = Vec::new();
    for run_dir in read_dir(&home.root().join("runs"))? {
        let name = run_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if store.get(&name)?.is_none() {
            leftovers.push(run_dir);
        }
    }
    // Staging files of a run that died mid-write; a live run's are recent.
    leftovers.extend(read_dir(&home.tmp())?.into_iter().filter(|p| !(in_flight && recent(p))));
    for path in leftovers {
        collected.leftovers += 1;
        collected.bytes += if dry_run { tree_bytes(&path) } else { remove_tree(&path)? };
    }
    Ok(collected)
}

/// The store entries (`blobs/sha256/<hex>`, `blobs/dirs/<hex>`) a JSON document names
/// in any string: a literal's URI, or a path inside a stored directory.
fn blob_entries_in(json: &str, blobs: &Path, into: &mut BTreeSet<PathBuf>) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else { return };
    let mut stack = vec![&value];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(text) => {
                let Ok(rest) = Path::new(text).strip_prefix(blobs) else { continue };
                let mut parts = rest.components();
                if let (Some(kind), Some(entry)) = (parts.next(), parts.next()) {
                    into.insert(blobs.join(kind).join(entry));
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(fields) => stack.extend(fields.values()),
            _ => {}
        }
    }
}

/// Whether a file, or any file of a tree, has another hard link (a run directory's input).
fn linked_from_elsewhere(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return false };
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).into_iter().flatten().filter_map(Result::ok);
        entries.map(|e| e.path()).any(|p| linked_from_elsewhere(&p))
    } else {
        meta.nlink() > 1
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, CleanupError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.filter_map(|e| e.ok().map(|e| e.path())).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(dir)(e)),
    }
}

/// Bytes a tree's removal frees: its files' sizes, except files still linked elsewhere.
fn tree_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).into_iter().flatten().filter_map(Result::ok);
        entries.map(|e| tree_bytes(&e.path())).sum()
    } else if meta.nlink() <= 1 {
        meta.len()
    } else {
        0
    }
}

/// Removes a file or tree (read-only files included: their directories are
/// writable); the bytes that freed.
fn remove_tree(path: &Path) -> Result<u64, CleanupError> {
    let bytes = tree_bytes(path);
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => Err(e),
    };
    removed.map_err(io(path))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_entries_are_found_in_any_string_of_a_record() {
        let blobs = Path::new("/h/blobs");
        let record = r#"{"outputs": {"values": {"m": {"file": {"uri": "/h/blobs/sha256/ab"}}},
            "list": ["/h/blobs/dirs/cd/inner/file.csv", "/elsewhere/blobs/sha256/ef", "/h/blobs"]}}"#;
        let mut named = BTreeSet::new();
        blob_entries_in(record, blobs, &mut named);
        let expected: BTreeSet<PathBuf> = [blobs.join("sha256/ab"), blobs.join("dirs/cd")].into();
        assert_eq!(named, expected);
    }
}
