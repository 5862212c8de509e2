//! Translations of `.py` specs, reused while nothing they were made from changed.
//!
//! Translating a Python spec imports it, and with it whatever its tasks import at
//! the top (pandas, scikit-learn, …): most of a second for a run whose every task
//! is cached. The translating worker reports the source files the translation was
//! made from — the spec file, every module imported from the code directory, the
//! SDK's own modules — and an entry keeps them with their digests, next to the
//! interpreter (its resolved path, size and modification time) and the code
//! directory. A lookup recomputes the digests; any difference, a different
//! interpreter or code directory, or an unreadable entry is a miss, and the spec is
//! translated again. `UPDRAFT_TRANSLATION_CACHE=off` turns the cache off.
//!
//! Not seen: what the spec reads other than its modules (a data file, an
//! environment variable of its own); `UPDRAFT_TRANSLATION_CACHE=off`, or touching
//! the spec file, translates again.
//!
//! Entries live in `<home>/translations/<digest>.json`, one per spec path,
//! interpreter and code directory, written atomically (a temporary file renamed).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use updraft_engine::home::Home;
use updraft_engine::python::WorkerKey;

/// A translation and what it was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    interpreter: Stamp,
    code_dir: String,
    /// Each source file with the SHA-256 of its bytes.
    files: Vec<(String, String)>,
    document: serde_json::Value,
    locations: HashMap<String, String>,
}

/// An interpreter as found on disk: replacing it (a new venv, an upgrade) changes this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stamp {
    path: String,
    len: u64,
    modified_ns: u128,
}

/// A translation found in the cache.
pub struct Reused {
    pub document: serde_json::Value,
    pub locations: HashMap<String, String>,
}

fn enabled() -> bool {
    std::env::var("UPDRAFT_TRANSLATION_CACHE").map_or(true, |v| v != "off" && v != "0")
}

/// `python` as a file: a path as given, a bare name found on `PATH`; links resolved.
fn interpreter_stamp(python: &str) -> Option<Stamp> {
    let found = if python.contains('/') {
        PathBuf::from(python)
    } else {
        std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(python)).find(|p| p.is_file())?
    };
    let path = found.canonicalize().ok()?;
    let metadata = path.metadata().ok()?;
    let modified_ns = metadata.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    Some(Stamp { path: path.display().to_string(), len: metadata.len(), modified_ns })
}

fn digest_of(file: &Path) -> Option<String> {
    updraft_aws::files::file_sha256(file).ok()
}

/// The entry's file for a spec path and interpreter.
fn entry_path(dir: &Path, spec: &Path, key: &WorkerKey) -> PathBuf {
    let spec = spec.canonicalize().unwrap_or_else(|_| spec.to_path_buf());
    let name = Sha256::digest(format!("{}\0{}\0{}", spec.display(), key.python, key.code_dir));
    dir.join(format!("{}.json", &hex::encode(name)[..32]))
}

/// The cached translation of `spec`, if nothing it was made from changed.
pub fn lookup(spec: &Path, key: &WorkerKey) -> Option<Reused> {
    if !enabled() {
        return None;
    }
    lookup_in(&translations_dir()?, spec, key)
}

/// `<home>/translations`; reading it creates nothing (a `validate` leaves no home behind).
fn translations_dir() -> Option<PathBuf> {
    Some(Home::root_from_env().ok()?.join("translations"))
}

fn lookup_in(dir: &Path, spec: &Path, key: &WorkerKey) -> Option<Reused> {
    let entry: Entry = serde_json::from_slice(&std::fs::read(entry_path(dir, spec, key)).ok()?).ok()?;
    let current = entry.interpreter == interpreter_stamp(&key.python)?
        && entry.code_dir == key.code_dir
        && entry.files.iter().all(|(file, digest)| digest_of(Path::new(file)).as_ref() == Some(digest));
    current.then_some(Reused { document: entry.document, locations: entry.locations })
}

/// Keeps a fresh translation of `spec` made from `depends`. Best effort: a
/// translation that cannot be kept is made again next time.
pub fn store(
    spec: &Path,
    key: &WorkerKey,
    depends: &[String],
    document: &serde_json::Value,
    locations: &HashMap<String, String>,
) {
    if !enabled() || depends.is_empty() {
        return;
    }
    if let Some(dir) = translations_dir() {
        store_in(&dir, spec, key, depends, document, locations);
    }
}

fn store_in(
    dir: &Path,
    spec: &Path,
    key: &WorkerKey,
    depends: &[String],
    document: &serde_json::Value,
    locations: &HashMap<String, String>,
) {
    let Some(interpreter) = interpreter_stamp(&key.python) else { return };
    let files: Option<Vec<(String, String)>> =
        depends.iter().map(|file| Some((file.clone(), digest_of(Path::new(file))?))).collect();
    let Some(files) = files else { return };
    let entry = Entry {
        interpreter,
        code_dir: key.code_dir.clone(),
        files,
        document: document.clone(),
        locations: locations.clone(),
    };
    let path = entry_path(dir, spec, key);
    let Ok(bytes) = serde_json::to_vec(&entry) else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    // Renamed into place in the same directory: a reader sees the old entry or the new one.
    let temporary = dir.join(format!(".{}-{}.tmp", std::process::id(), next_suffix()));
    if std::fs::write(&temporary, &bytes).is_ok() && std::fs::rename(&temporary, &path).is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
}

/// Tells apart the temporary files of concurrent writers in one process.
fn next_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_reused_until_a_file_it_was_made_from_changes() {
        let dir = std::env::temp_dir().join(format!("updraft-translations-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let entries = dir.join("home/translations");
        let lookup = |spec: &Path, key: &WorkerKey| lookup_in(&entries, spec, key);
        let store = |spec: &Path, key: &WorkerKey, depends: &[String], document: &serde_json::Value| {
            store_in(&entries, spec, key, depends, document, &HashMap::new())
        };
        let spec = dir.join("flow.py");
        let helper = dir.join("helper.py");
        std::fs::write(&spec, "import helper\n").unwrap();
        std::fs::write(&helper, "N = 1\n").unwrap();
        let key = WorkerKey {
            python: "sh".into(),
            code_dir: dir.display().to_string(),
            env: Vec::new(),
            kind: updraft_engine::python::WorkerKind::Sdk,
        };
        let depends = vec![spec.display().to_string(), helper.display().to_string()];
        let document = serde_json::json!({"workflows": {}});
        assert!(lookup(&spec, &key).is_none(), "nothing stored yet");
        store(&spec, &key, &depends, &document);
        assert_eq!(lookup(&spec, &key).map(|r| r.document), Some(document.clone()));
        std::fs::write(&helper, "N = 2\n").unwrap();
        assert!(lookup(&spec, &key).is_none(), "an imported module changed");
        store(&spec, &key, &depends, &document);
        assert!(lookup(&spec, &key).is_some());
        let other = WorkerKey { code_dir: "/elsewhere".into(), ..key.clone() };
        assert!(lookup(&spec, &other).is_none(), "another code directory is another entry");
        std::fs::remove_file(&helper).unwrap();
        assert!(lookup(&spec, &key).is_none(), "a file it was made from is gone");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
