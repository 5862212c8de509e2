//! The Python SDK's source, carried inside the `updraft` binary: `updraft exec`
//! writes it next to a bundle's code and puts it on `PYTHONPATH`, so a Python
//! SDK task runs in any image that has Python and the task's own dependencies,
//! with the SDK of the very `updraft` that runs it; a local run's script worker
//! (`crate::python`) starts from it, so YAML script tasks need no SDK installed.

/// (file name under `updraft/`, contents); a test keeps it equal to the SDK's directory.
pub const FILES: &[(&str, &str)] = &[
    ("__init__.py", include_str!("../../sdk/python/src/updraft/__init__.py")),
    ("__main__.py", include_str!("../../sdk/python/src/updraft/__main__.py")),
    ("_core.py", include_str!("../../sdk/python/src/updraft/_core.py")),
    ("_run.py", include_str!("../../sdk/python/src/updraft/_run.py")),
    ("_scripts.py", include_str!("../../sdk/python/src/updraft/_scripts.py")),
    ("_source.py", include_str!("../../sdk/python/src/updraft/_source.py")),
    ("_spec.py", include_str!("../../sdk/python/src/updraft/_spec.py")),
    ("_types.py", include_str!("../../sdk/python/src/updraft/_types.py")),
    ("_worker.py", include_str!("../../sdk/python/src/updraft/_worker.py")),
    ("py.typed", include_str!("../../sdk/python/src/updraft/py.typed")),
    ("task.py", include_str!("../../sdk/python/src/updraft/task.py")),
];

/// Writes the package as `<dir>/updraft/…`; `dir` is then a `PYTHONPATH` entry.
pub fn write_to(dir: &std::path::Path) -> std::io::Result<()> {
    let package = dir.join("updraft");
    std::fs::create_dir_all(&package)?;
    for (name, text) in FILES {
        std::fs::write(package.join(name), text)?;
    }
    Ok(())
}

/// The package written once under `root/python-sdk/<hash of its files>/` (a
/// `PYTHONPATH` entry): an existing copy is reused, a new one appears whole
/// (written aside, then renamed), so concurrent runs never see half of one.
pub fn materialized(root: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    FILES.hash(&mut hasher);
    let dir = root.join("python-sdk").join(format!("{:016x}", hasher.finish()));
    if dir.join("updraft").is_dir() {
        return Ok(dir);
    }
    let aside = root.join("python-sdk").join(format!(".{:016x}.{}", hasher.finish(), std::process::id()));
    write_to(&aside)?;
    match std::fs::rename(&aside, &dir) {
        Ok(()) => Ok(dir),
        // Another run put its (identical) copy there first.
        Err(_) if dir.join("updraft").is_dir() => {
            let _ = std::fs::remove_dir_all(&aside);
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_of_the_sdk_package_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python/src/updraft");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "__pycache__")
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = super::FILES.iter().map(|(name, _)| *name).collect();
        assert_eq!(on_disk, embedded, "add the SDK's new files to embedded_sdk::FILES");
    }
}
