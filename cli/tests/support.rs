use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root (the workspace), where examples/ and tests/data/ live.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ sits in the workspace").to_path_buf()
}

pub fn updraft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("the updraft binary starts")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file with this extension under a directory of the repository, sorted.
pub fn files_under(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        walk(&repo_root().join(dir)).into_iter().filter(|p| p.extension().is_some_and(|e| e == extension)).collect();
    files.sort();
    files
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("directory exists") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
