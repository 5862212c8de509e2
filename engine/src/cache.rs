//! The local task-output cache: one small JSON document per cache key, holding
//! the outputs (blobs by their content-addressed path or S3 URI). Whether an
//! entry's blobs can still be read is the blob store's question
//! (`Blobs::hold_all`). Entries stored for a task ([`LocalCache::put_for_task`])
//! are also indexed by its project, domain, name and cache version
//! (`cache/by-task/…/<key>`, empty files), so `updraft cache list|delete` finds them.

use std::path::PathBuf;
use updraft_core::execution::node::Outputs;
use updraft_core::ports::{CacheStore, PortError};
use updraft_core::proto::core::LiteralMap;

pub struct LocalCache {
    dir: PathBuf,
    tmp: PathBuf,
}

impl LocalCache {
    pub fn new(dir: PathBuf, tmp: PathBuf) -> LocalCache {
        LocalCache { dir, tmp }
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Where a task's entries are indexed: `by-task/<project>/<domain>/<name>/<cache version>/`.
    fn index(&self, task: &TaskOwner) -> PathBuf {
        let part = |s: &str| if s.is_empty() { "_".to_string() } else { s.replace(['/', '\\'], "_") };
        self.dir
            .join("by-task")
            .join(part(&task.project))
            .join(part(&task.domain))
            .join(part(&task.name))
            .join(part(&task.cache_version))
    }

    /// Stores the outputs under `key` and indexes the entry under its task.
    pub async fn put_for_task(&self, key: &str, task: &TaskOwner, outputs: &Outputs) -> Result<(), PortError> {
        self.put(key, outputs).await?;
        let index = self.index(task);
        let failed = |e: std::io::Error| PortError::Permanent(format!("cache index of {}: {e}", task.name));
        std::fs::create_dir_all(&index).map_err(failed)?;
        std::fs::write(index.join(key), b"").map_err(failed)
    }

    /// The entries indexed for tasks named `name` (any project, domain and cache
    /// version unless given), newest first; an index left by a deleted entry is skipped.
    pub fn entries_of(&self, name: &str, filter: &TaskFilter) -> Vec<LocalEntry> {
        let mut found = Vec::new();
        let by_task = self.dir.join("by-task");
        for (project, domain, version_dir) in task_dirs(&by_task, name) {
            let version = version_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if !filter.matches(&project, &domain, &version) {
                continue;
            }
            for marker in std::fs::read_dir(&version_dir).into_iter().flatten().filter_map(Result::ok) {
                let key = marker.file_name().to_string_lossy().into_owned();
                if !self.entry(&key).exists() {
                    continue;
                }
                let stored = marker.metadata().and_then(|m| m.modified()).ok();
                found.push(LocalEntry {
                    key,
                    project: project.clone(),
                    domain: domain.clone(),
                    cache_version: version.clone(),
                    stored,
                });
            }
        }
        found.sort_by(|a, b| b.stored.cmp(&a.stored).then_with(|| a.key.cmp(&b.key)));
        found
    }

    /// Deletes the entries `entries_of` lists (and their index); how many.
    pub fn delete_entries(&self, name: &str, filter: &TaskFilter) -> std::io::Result<usize> {
        let entries = self.entries_of(name, filter);
        for entry in &entries {
            match std::fs::remove_file(self.entry(&entry.key)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        for (project, domain, version_dir) in task_dirs(&self.dir.join("by-task"), name) {
            let version = version_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if filter.matches(&project, &domain, &version) {
                std::fs::remove_dir_all(&version_dir)?;
            }
        }
        Ok(entries.len())
    }
}

/// Whose entry an indexed cache entry is.
#[derive(Debug, Clone, Default)]
pub struct TaskOwner {
    pub project: String,
    pub domain: String,
    pub name: String,
    pub cache_version: String,
}

/// Which of a task name's entries `updraft cache list|delete` means (`None`: any).
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub project: Option<String>,
    pub domain: Option<String>,
    pub cache_version: Option<String>,
}

impl TaskFilter {
    fn matches(&self, project: &str, domain: &str, version: &str) -> bool {
        let is = |want: &Option<String>, have: &str| want.as_ref().is_none_or(|w| w == have);
        is(&self.project, project) && is(&self.domain, domain) && is(&self.cache_version, version)
    }
}

/// One indexed cache entry.
#[derive(Debug, Clone)]
pub struct LocalEntry {
    pub key: String,
    pub project: String,
    pub domain: String,
    pub cache_version: String,
    pub stored: Option<std::time::SystemTime>,
}

/// `(project, domain, <version dir>)` for every indexed cache version of tasks named `name`.
fn task_dirs(by_task: &std::path::Path, name: &str) -> Vec<(String, String, PathBuf)> {
    let list = |dir: &std::path::Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok).map(|e| e.path()).collect()
    };
    let file_name = |p: &PathBuf| p.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut found = Vec::new();
    for project in list(by_task) {
        for domain in list(&project) {
            let task = domain.join(name);
            for version in list(&task) {
                found.push((file_name(&project), file_name(&domain), version));
            }
        }
    }
    found
}

impl CacheStore for LocalCache {
    /// An entry that cannot be read or parsed is a miss.
    async fn get(&self, key: &str) -> Result<Option<Outputs>, PortError> {
        let Ok(text) = std::fs::read_to_string(self.entry(key)) else { return Ok(None) };
        Ok(serde_json::from_str::<LiteralMap>(&text).ok().map(|outputs| outputs.values))
    }

    /// Writes atomically (temporary file, then rename): a reader sees the old
    /// entry or the new one.
    async fn put(&self, key: &str, outputs: &Outputs) -> Result<(), PortError> {
        let failed = |e: std::io::Error| PortError::Permanent(format!("cache entry {key}: {e}"));
        let document = serde_json::to_vec(&LiteralMap { values: outputs.clone() }).expect("literals serialize");
        // Unique per call: map items with equal inputs share a key and may finish together.
        let staging = crate::home::staging_path(&self.tmp, &format!("{key}.json"));
        std::fs::write(&staging, document).map_err(failed)?;
        std::fs::rename(&staging, self.entry(key)).map_err(failed)
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        match std::fs::remove_file(self.entry(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(PortError::Permanent(format!("cache entry {key}: {e}")))
            }
            _ => Ok(()),
        }
    }
}
