//! Snapshot files shared by the snapshot tests: `UPDATE_SNAPSHOTS=1` rewrites
//! them; review the diff before committing it.

use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Compares `actual` with the snapshot `file` (or rewrites it), noting a mismatch.
pub fn check_snapshot(file: &Path, actual: &serde_json::Value, mismatches: &mut Vec<String>) {
    let actual = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(file, &actual).unwrap();
        return;
    }
    match std::fs::read_to_string(file) {
        Ok(expected) if expected == actual => {}
        Ok(_) => mismatches.push(format!("{} differs; got:\n{actual}", file.display())),
        Err(_) => mismatches.push(format!("{} is missing (run with UPDATE_SNAPSHOTS=1)", file.display())),
    }
}
