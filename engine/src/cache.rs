//! The local task-output cache: one small JSON document per cache key, holding
//! the outputs (blobs by their content-addressed path or S3 URI). Whether an
//! entry's blobs can still be read is the blob store's question
//! (`Blobs::hold_all`).

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
        static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = self.tmp.join(format!("{key}.{}.{n}.json", std::process::id()));
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
