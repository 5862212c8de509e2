//! Code bundles: a spec directory's code shipped with its registration, so a
//! code change needs no image rebuild (Flyte's fast registration, Metaflow's
//! code package).
//!
//! [`pack`] makes a deterministic tar.gz: the same files give the same bytes and
//! so the same digest (entries sorted, mtimes 0, modes 644/755, no owners), which
//! is what lets a registry tell unchanged code from changed code. [`unpack`]
//! trusts nothing in an archive: it checks the digest before reading a byte, and
//! writes only regular files and directories inside the destination.

use flate2::Compression;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The most a bundle may hold before compression: code, not data. Datasets are
/// inputs (files are uploaded by digest at launch).
pub const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;
/// At most this many files in one bundle.
pub const MAX_BUNDLE_FILES: usize = 20_000;
/// Patterns in this file (`.gitignore` syntax), in any directory of the tree, keep files out.
pub const IGNORE_FILE: &str = ".updraftignore";

/// A packed bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    pub files: usize,
    /// Sum of the files' sizes, before compression.
    pub content_bytes: u64,
}

impl Bundle {
    /// Where the bundle lives in the stack's bucket: under its project (whose
    /// tasks alone may read it), named by its digest, so an upload of the same
    /// code is skipped and a key never changes content.
    pub fn key(&self, project: &str) -> String {
        format!(
            "{}sha256/{}.tar.gz",
            updraft_core::project_access::bundles_prefix(project),
            self.digest.trim_start_matches("sha256:")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Io(String),
    #[error(
        "the code in {dir} is {size} bytes in {files} files; a bundle holds at most {limit} bytes and {max_files} files. \
         The largest: {largest}"
    )]
    TooLarge { dir: String, size: u64, files: usize, limit: u64, max_files: usize, largest: String },
    #[error("{path} links to {target}, outside {dir}: only the directory's own files are bundled")]
    LinkOut { path: String, target: String, dir: String },
    #[error(
        "the bundle has digest {found}, but {expected} was registered: it was changed or cut short; nothing of it was run"
    )]
    DigestMismatch { expected: String, found: String },
    #[error("the bundle's entry {entry:?} {why}; nothing outside the code directory was written")]
    Refused { entry: String, why: &'static str },
    #[error("the bundle is not a readable tar.gz: {0}")]
    Corrupt(String),
}

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The files under `dir` a bundle holds: what `.gitignore` files (inside the
/// tree, even outside a git repository), `.updraftignore` files and the
/// repository's `.git/info/exclude` leave, without hidden files and directories
/// (`.git`, `.venv`, `.env`…) and Python's caches; sorted by path.
fn files_of(dir: &Path) -> Result<Vec<(String, PathBuf, u64, bool)>, BundleError> {
    let root = dir.canonicalize().map_err(|e| BundleError::Io(format!("cannot read {}: {e}", dir.display())))?;
    let walk = ignore::WalkBuilder::new(&root)
        .hidden(true)
        .parents(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(true)
        .require_git(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .follow_links(true)
        .filter_entry(|e| e.file_name() != "__pycache__")
        .build();
    let mut files = Vec::new();
    for entry in walk {
        let entry = entry.map_err(|e| BundleError::Io(format!("cannot list {}: {e}", dir.display())))?;
        let path = entry.path();
        let Some(kind) = entry.file_type() else { continue };
        if kind.is_dir() || path.extension().is_some_and(|e| e == "pyc") {
            continue;
        }
        let real = path.canonicalize().map_err(|e| BundleError::Io(format!("cannot read {}: {e}", path.display())))?;
        let relative = path.strip_prefix(&root).expect("the walk stays under its root");
        if !real.starts_with(&root) {
            return Err(BundleError::LinkOut {
                path: relative.display().to_string(),
                target: real.display().to_string(),
                dir: dir.display().to_string(),
            });
        }
        let meta =
            std::fs::metadata(&real).map_err(|e| BundleError::Io(format!("cannot read {}: {e}", path.display())))?;
        if !meta.is_file() {
            continue; // sockets, fifos, devices: not code
        }
        use std::os::unix::fs::PermissionsExt;
        let executable = meta.permissions().mode() & 0o111 != 0;
        let name = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        files.push((name, real, meta.len(), executable));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// Packs `dir` into a deterministic bundle; refuses, before reading any file's
/// bytes, a tree over the limits (naming its largest files) or a link out of it.
pub fn pack(dir: &Path) -> Result<Bundle, BundleError> {
    let files = files_of(dir)?;
    let content_bytes: u64 = files.iter().map(|f| f.2).sum();
    if content_bytes > MAX_BUNDLE_BYTES || files.len() > MAX_BUNDLE_FILES {
        let mut largest: Vec<_> = files.iter().map(|f| (f.2, f.0.as_str())).collect();
        largest.sort_by(|a, b| b.cmp(a));
        let largest = largest.iter().take(5).map(|(size, name)| format!("{name} ({size} bytes)")).collect::<Vec<_>>();
        return Err(BundleError::TooLarge {
            dir: dir.display().to_string(),
            size: content_bytes,
            files: files.len(),
            limit: MAX_BUNDLE_BYTES,
            max_files: MAX_BUNDLE_FILES,
            largest: format!(
                "{}. List what the tasks do not need in {}/{IGNORE_FILE} (.gitignore syntax), \
                 and pass data as file or dataframe inputs",
                largest.join(", "),
                dir.display()
            ),
        });
    }
    let gzip = flate2::GzBuilder::new().mtime(0).write(Vec::new(), Compression::default());
    let mut archive = tar::Builder::new(gzip);
    archive.mode(tar::HeaderMode::Deterministic);
    for (name, real, _, executable) in &files {
        let bytes = std::fs::read(real).map_err(|e| BundleError::Io(format!("cannot read {}: {e}", real.display())))?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(if *executable { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        archive
            .append_data(&mut header, name, bytes.as_slice())
            .map_err(|e| BundleError::Io(format!("cannot add {name}: {e}")))?;
    }
    let gzip = archive.into_inner().map_err(|e| BundleError::Io(e.to_string()))?;
    let bytes = gzip.finish().map_err(|e| BundleError::Io(e.to_string()))?;
    Ok(Bundle { digest: digest_of(&bytes), bytes, files: files.len(), content_bytes })
}

/// What [`unpack`] wrote.
#[derive(Debug, PartialEq)]
pub struct Unpacked {
    pub files: usize,
    pub bytes: u64,
}

/// Unpacks a bundle into `dest` (created; must not exist or be empty) after
/// checking it is the `expected` digest. Only regular files and directories
/// are written, each strictly under `dest`: an absolute path, a `..`, a link of
/// any kind, a device or a fifo refuses the whole bundle, as do more bytes or
/// files than a bundle may hold (a decompression bomb).
pub fn unpack(bytes: &[u8], expected: &str, dest: &Path) -> Result<Unpacked, BundleError> {
    let found = digest_of(bytes);
    if found != expected {
        return Err(BundleError::DigestMismatch { expected: expected.to_string(), found });
    }
    std::fs::create_dir_all(dest).map_err(|e| BundleError::Io(format!("cannot create {}: {e}", dest.display())))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut written = Unpacked { files: 0, bytes: 0 };
    let entries = archive.entries().map_err(|e| BundleError::Corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| BundleError::Corrupt(e.to_string()))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |why| BundleError::Refused { entry: raw.chars().take(200).collect(), why };
        let relative = safe_relative(Path::new(&raw)).ok_or_else(|| refuse("leaves the directory (absolute or ..)"))?;
        let target = dest.join(&relative);
        match entry.header().entry_type() {
            // `./`, as `tar -C dir .` writes it: the directory itself.
            tar::EntryType::Directory if relative.as_os_str().is_empty() => {}
            _ if relative.as_os_str().is_empty() => return Err(refuse("names no path")),
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(|e| BundleError::Io(format!("{}: {e}", target.display())))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                written.files += 1;
                let size = entry.header().size().map_err(|e| BundleError::Corrupt(e.to_string()))?;
                written.bytes += size;
                if written.bytes > MAX_BUNDLE_BYTES || written.files > MAX_BUNDLE_FILES {
                    return Err(refuse("takes the bundle over its size limit"));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| BundleError::Io(format!("{}: {e}", parent.display())))?;
                }
                let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                use std::os::unix::fs::OpenOptionsExt;
                // create_new: never through an existing path (nor a second entry of the same name).
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if executable { 0o755 } else { 0o644 })
                    .open(&target)
                    .map_err(|e| BundleError::Io(format!("{}: {e}", target.display())))?;
                let copied = std::io::copy(&mut (&mut entry).take(size), &mut file)
                    .map_err(|e| BundleError::Corrupt(format!("{raw}: {e}")))?;
                if copied != size {
                    return Err(BundleError::Corrupt(format!("{raw} is cut short")));
                }
            }
            tar::EntryType::Symlink | tar::EntryType::Link => return Err(refuse("is a link (bundles hold files)")),
            _ => return Err(refuse("is a device, fifo or other special file")),
        }
    }
    // Read to the end, so a gzip stream cut short is noticed even after the last entry.
    let mut rest = Vec::new();
    archive.into_inner().read_to_end(&mut rest).map_err(|e| BundleError::Corrupt(e.to_string()))?;
    Ok(written)
}

/// `path` without `.` components, if it stays under the directory it is joined to
/// (empty for the directory itself).
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("updraft-bundle-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A tar.gz with one raw entry, written the way a hostile tool could.
    fn hostile(path: &str, kind: tar::EntryType, link: Option<&str>, body: &[u8]) -> Vec<u8> {
        let gzip = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        let mut archive = tar::Builder::new(gzip);
        let mut header = tar::Header::new_old();
        {
            // Written by hand: the tar crate's setters refuse `..` and absolute paths.
            let old = header.as_old_mut();
            old.name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(link) = link {
                old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
        }
        header.set_entry_type(kind);
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append(&header, body).unwrap();
        archive.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn the_same_files_pack_to_the_same_digest_and_ignored_files_stay_out() {
        let dir = scratch("pack");
        write(&dir.join("train.py"), "print('fit')\n");
        write(&dir.join("lib/util.py"), "X = 1\n");
        write(&dir.join("lib/__pycache__/util.cpython-311.pyc"), "junk");
        write(&dir.join(".env"), "TOKEN=secret");
        write(&dir.join(".git/config"), "[core]");
        write(&dir.join("data/big.csv"), "a,b\n1,2\n");
        write(&dir.join("notes.tmp"), "scratch");
        write(&dir.join(".gitignore"), "*.tmp\n");
        write(&dir.join(IGNORE_FILE), "data/\n");
        let first = pack(&dir).unwrap();
        // Touching a file (new mtime) changes nothing; changing a line changes the digest.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(&dir.join("train.py"), "print('fit')\n");
        assert_eq!(pack(&dir).unwrap().digest, first.digest, "deterministic: mtimes are not recorded");
        assert_eq!(first.files, 2, "only train.py and lib/util.py");

        let out = dir.join("unpacked");
        let unpacked = unpack(&first.bytes, &first.digest, &out).unwrap();
        assert_eq!(unpacked, Unpacked { files: 2, bytes: 19 });
        assert_eq!(std::fs::read_to_string(out.join("lib/util.py")).unwrap(), "X = 1\n");
        assert!(!out.join(".env").exists() && !out.join("data").exists() && !out.join("notes.tmp").exists());

        write(&dir.join("train.py"), "print('fit, changed')\n");
        std::fs::remove_dir_all(&out).unwrap();
        assert_ne!(pack(&dir).unwrap().digest, first.digest);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_tree_over_the_limit_is_refused_naming_its_largest_files() {
        let dir = scratch("large");
        write(&dir.join("train.py"), "");
        let big = std::fs::File::create(dir.join("weights.bin")).unwrap();
        big.set_len(MAX_BUNDLE_BYTES + 1).unwrap();
        let error = pack(&dir).unwrap_err().to_string();
        assert!(error.contains("weights.bin (67108865 bytes)"), "{error}");
        assert!(error.contains(IGNORE_FILE), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_link_out_of_the_tree_is_refused_when_packing() {
        let dir = scratch("linkout");
        write(&dir.join("code/train.py"), "");
        write(&dir.join("outside.txt"), "secret");
        std::os::unix::fs::symlink(dir.join("outside.txt"), dir.join("code/leak.txt")).unwrap();
        let error = pack(&dir.join("code")).unwrap_err();
        assert!(matches!(&error, BundleError::LinkOut { path, .. } if path == "leak.txt"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hostile_archives_are_refused_and_write_nothing_outside() {
        let dir = scratch("hostile");
        let cases: [(&str, Vec<u8>, &str); 5] = [
            ("absolute", hostile("/tmp/updraft-pwned", tar::EntryType::Regular, None, b"x"), "leaves the directory"),
            ("dotdot", hostile("../escaped.txt", tar::EntryType::Regular, None, b"x"), "leaves the directory"),
            ("symlink", hostile("link", tar::EntryType::Symlink, Some("/etc"), b""), "is a link"),
            ("hardlink", hostile("link", tar::EntryType::Link, Some("../x"), b""), "is a link"),
            ("device", hostile("dev", tar::EntryType::Char, None, b""), "is a device"),
        ];
        for (name, bytes, why) in cases {
            let out = dir.join(name).join("code");
            let error = unpack(&bytes, &digest_of(&bytes), &out).unwrap_err().to_string();
            assert!(error.contains(why), "{name}: {error}");
            assert!(!dir.join(name).join("escaped.txt").exists(), "{name}");
            assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "{name}: nothing written");
        }
        assert!(!Path::new("/tmp/updraft-pwned").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_changed_or_truncated_bundle_is_refused_before_or_while_reading() {
        let dir = scratch("corrupt");
        write(&dir.join("code/train.py"), &"print('x')\n".repeat(200));
        let bundle = pack(&dir.join("code")).unwrap();

        let mut tampered = bundle.bytes.clone();
        let middle = tampered.len() / 2;
        tampered[middle] ^= 0xff;
        let error = unpack(&tampered, &bundle.digest, &dir.join("a")).unwrap_err();
        assert!(
            matches!(&error, BundleError::DigestMismatch { expected, found }
                if *expected == bundle.digest && *found == digest_of(&tampered)),
            "{error}"
        );
        assert!(!dir.join("a").exists(), "checked before anything is written");

        // Cut short, with a digest that matches what is there: the gzip stream is incomplete.
        let truncated = &bundle.bytes[..bundle.bytes.len() - 12];
        let error = unpack(truncated, &digest_of(truncated), &dir.join("b")).unwrap_err();
        assert!(matches!(error, BundleError::Corrupt(_)), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
