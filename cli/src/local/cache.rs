//! The local task-output cache: one small JSON document per cache key, holding
//! the outputs (blobs by their content-addressed path or S3 URI). Whether an
//! entry's blobs can still be read is the blob store's question
//! (`Blobs::hold_all`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use updraft_core::proto::core::{Literal, LiteralMap};

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

    pub fn get(&self, key: &str) -> Option<BTreeMap<String, Literal>> {
        let text = std::fs::read_to_string(self.entry(key)).ok()?;
        let outputs: LiteralMap = serde_json::from_str(&text).ok()?;
        Some(outputs.values)
    }

    /// Writes atomically (temporary file, then rename): a reader sees the old
    /// entry or the new one.
    pub fn put(&self, key: &str, outputs: &BTreeMap<String, Literal>) -> std::io::Result<()> {
        let document = serde_json::to_vec(&LiteralMap { values: outputs.clone() }).map_err(std::io::Error::other)?;
        // Unique per call: map items with equal inputs share a key and may finish together.
        static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = self.tmp.join(format!("{key}.{}.{n}.json", std::process::id()));
        std::fs::write(&staging, document)?;
        std::fs::rename(&staging, self.entry(key))
    }
}
