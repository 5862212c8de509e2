//! Where local runs keep their state: `$UPDRAFT_HOME`, or `~/.updraft`.
//!
//! ```text
//! updraft.db                 executions and node executions (SQLite)
//! blobs/sha256/<hex>         files and dataframes by content digest
//! blobs/dirs/<hex>/          directories by manifest digest
//! blobs/links/…/<hex>        one task-facing copy per content, hard-linked into run directories
//! cache/<key>.json           cached task outputs by cache key
//! translations/<key>.json    reused translations of `.py` specs (`crate::translations`)
//! runs/<execution>/<node>/   per-node working directory, inputs.json, outputs/, logs
//! ```

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn from_env() -> std::io::Result<Home> {
        Home::at(Home::root_from_env()?)
    }

    /// Where the home is (`UPDRAFT_HOME`, else `~/.updraft`), creating nothing.
    pub fn root_from_env() -> std::io::Result<PathBuf> {
        match std::env::var_os("UPDRAFT_HOME") {
            Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
            _ => {
                let home = std::env::var_os("HOME").ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "neither UPDRAFT_HOME nor HOME is set")
                })?;
                Ok(PathBuf::from(home).join(".updraft"))
            }
        }
    }

    /// Creates the layout under `root`; errors name the path and the variable that chose it.
    pub fn at(root: PathBuf) -> std::io::Result<Home> {
        let named = |path: &std::path::Path, e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot use {} as the Updraft home (UPDRAFT_HOME, default ~/.updraft): {e}\n  \
                     hint: set UPDRAFT_HOME to a writable directory",
                    path.display()
                ),
            )
        };
        for dir in ["blobs/sha256", "blobs/dirs", "cache", "runs", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(|e| named(&path, e))?;
        }
        let root = root.canonicalize().map_err(|e| named(&root, e))?;
        Ok(Home { root })
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("updraft.db")
    }

    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Scratch space on the same file system as the blobs, so that renames are atomic.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn node_dir(&self, execution_id: &str, node_path: &str) -> PathBuf {
        // Node paths hold '/' (subworkflows) and '[i]' (map items): both are fine in a path.
        self.root.join("runs").join(execution_id).join(node_path)
    }
}

/// A name under `tmp` (the home's scratch space) that no other write of this process,
/// or of another process, is using: `<pid>-<n>-<name>`. What is written there and then
/// renamed into place appears whole or not at all.
pub fn staging_path(tmp: &std::path::Path, name: &str) -> PathBuf {
    static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tmp.join(format!("{}-{n}-{name}", std::process::id()))
}
