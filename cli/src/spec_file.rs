//! Reading spec files from disk and reporting their problems with the file name.

use std::path::{Path, PathBuf};
use updraft_core::compile::{self, Compiled, Options};
use updraft_core::spec::Format;

/// Why a spec file could not be used; `Display` gives every problem, each
/// prefixed with the file, as `error: FILE: PATH: MESSAGE` plus a hint line.
#[derive(Debug)]
pub struct SpecFileError {
    pub path: PathBuf,
    pub problems: Vec<String>,
}

impl std::fmt::Display for SpecFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {}: {problem}", self.path.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecFileError {}

/// Refuses absurdly large specs while reading them (docs/spec.md, "Limits").
const MAX_SPEC_BYTES: u64 = 64 * 1024 * 1024;

pub fn load(path: &Path, options: &Options) -> Result<Compiled, SpecFileError> {
    let fail = |problem: String| SpecFileError { path: path.to_path_buf(), problems: vec![problem] };
    let text = updraft_aws::files::read_text_limited(path, MAX_SPEC_BYTES, "specs are limited to").map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => "check the path",
            std::io::ErrorKind::InvalidData => "a spec is UTF-8 text of at most 64 MiB",
            _ => "give the path of a spec file (YAML, or JSON ending in .json)",
        };
        fail(format!("cannot read: {e}\n  hint: {hint}"))
    })?;
    let format = Format::from_file_name(&path.to_string_lossy());
    compile::compile_text(&text, format, options).map_err(|diagnostics| SpecFileError {
        path: path.to_path_buf(),
        problems: diagnostics.iter().map(ToString::to_string).collect(),
    })
}
