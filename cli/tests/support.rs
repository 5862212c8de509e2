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

/// A node's record in the JSON of `updraft run --output json` or `executions get`.
pub fn node<'a>(doc: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"]["nodeId"] == id)
        .unwrap_or_else(|| panic!("node {id} in {doc}"))
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

/// A fresh directory under the temporary directory, removed when dropped unless
/// the test is failing (then it stays for a look). Tests never leave their files
/// behind: a CI machine's disk is not ours to fill.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("updraft-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A scratch directory holding a spec (`spec.yaml`), the test task script and
/// its own UPDRAFT_HOME, so tests never share state.
pub struct Sandbox {
    pub dir: PathBuf,
    _scratch: Scratch,
}

impl Sandbox {
    pub fn new(name: &str, spec: &str) -> Sandbox {
        let scratch = Scratch::new(name);
        let dir = scratch.to_path_buf();
        std::fs::create_dir_all(dir.join("home")).unwrap();
        std::fs::copy(repo_root().join("tests/data/run/step.py"), dir.join("step.py")).unwrap();
        std::fs::write(dir.join("spec.yaml"), spec).unwrap();
        Sandbox { dir, _scratch: scratch }
    }

    /// A sandbox around an example: its whole directory copied in.
    pub fn with_example(name: &str, example: &str) -> Sandbox {
        let source = repo_root().join("examples").join(example);
        let sandbox = Sandbox::new(name, &std::fs::read_to_string(&source).unwrap());
        for entry in std::fs::read_dir(source.parent().unwrap()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, sandbox.dir.join(path.file_name().unwrap())).unwrap();
            }
        }
        sandbox
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
        command.args(args).current_dir(&self.dir).env("UPDRAFT_HOME", self.dir.join("home"));
        command
    }

    pub fn updraft(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the updraft binary starts")
    }
}
