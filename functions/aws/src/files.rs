//! Reading files that users and tasks hand us without trusting what they are.
//!
//! A named pipe blocks the reader in the kernel until a writer comes (deaf to
//! Ctrl-C), a device such as `/dev/zero` never ends, and a symlinked directory can
//! loop. So every path is opened without blocking, checked to be a regular file
//! before a byte is read, and read with a size limit; directory walks follow
//! links to regular files only.

use sha2::{Digest, Sha256};
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a path holds, as the error messages name it.
pub fn describe(metadata: &Metadata) -> &'static str {
    let t = metadata.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "a special file"
    }
}

fn not_regular(path: &Path, metadata: &Metadata) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is {}, not a regular file; give a file's path", path.display(), describe(metadata)),
    )
}

/// Opens a regular file for reading (following symlinks). A named pipe, device
/// or socket is refused before anything is read, and opening never blocks.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(not_regular(path, &metadata));
    }
    Ok(file)
}

/// Reads a whole regular file as UTF-8 text of at most `limit` bytes; `what`
/// names the limit in the error (e.g. "specs are limited to").
pub fn read_text_limited(path: &Path, limit: u64, what: &str) -> io::Result<String> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {limit} bytes; {what} {limit} bytes", path.display()),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not UTF-8 text: invalid byte at offset {}", path.display(), e.utf8_error().valid_up_to()),
        )
    })
}

/// What a walk may find: a directory, or data (a regular file, or a link to one).
pub enum Entry {
    Directory,
    File,
}

/// Classifies a path for data walks without following links to directories
/// (they could loop) and refusing special files.
pub fn entry(path: &Path) -> io::Result<Entry> {
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.is_dir() {
        return Ok(Entry::Directory);
    }
    let target = if metadata.file_type().is_symlink() { std::fs::metadata(path)? } else { metadata };
    if target.is_file() {
        Ok(Entry::File)
    } else if target.is_dir() {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is a symbolic link to a directory; links are followed to files only", path.display()),
        ))
    } else {
        Err(not_regular(path, &target))
    }
}

/// Every data file under `root` (relative path, absolute path), in no particular order.
pub fn walk_files(root: &Path) -> io::Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for item in std::fs::read_dir(&dir)? {
            let path = item?.path();
            match entry(&path)? {
                Entry::Directory => pending.push(path),
                Entry::File => {
                    let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
                    out.push((relative, path));
                }
            }
        }
    }
    Ok(out)
}

/// The sha256 of a regular file's content, in hex; pipes and devices are refused.
pub fn file_sha256(path: &Path) -> io::Result<String> {
    sha256_copying(path, io::sink())
}

/// Reads a regular file once, writing it to `sink` and hashing it on the way;
/// returns the sha256 in hex (so a copy is verified by the same read that makes it).
pub fn sha256_copying(path: &Path, mut sink: impl io::Write) -> io::Result<String> {
    let mut file = open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        sink.write_all(&buffer[..n])?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The directory's content digest (`updraft_core::cache_key::directory_digest`).
pub fn dir_sha256(path: &Path) -> io::Result<String> {
    dir_sha256_each(path, |_, file| file_sha256(file))
}

/// The directory's content digest, with each file's hex digest from `per_file`
/// (given the file's relative and absolute path): so a copy of the tree can be
/// made and digested by the same walk.
pub fn dir_sha256_each(path: &Path, mut per_file: impl FnMut(&str, &Path) -> io::Result<String>) -> io::Result<String> {
    let mut entries = Vec::new();
    for (relative, file) in walk_files(path)? {
        let hex = per_file(&relative, &file)?;
        entries.push((relative, hex));
    }
    Ok(updraft_core::cache_key::directory_digest(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("updraft-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn pipes_and_devices_are_refused_without_blocking() {
        let dir = scratch("special");
        let fifo = dir.join("pipe");
        mkfifo(&fifo);
        let error = open_regular(&fifo).unwrap_err().to_string();
        assert!(error.contains("is a named pipe, not a regular file"), "{error}");
        let error = read_text_limited(Path::new("/dev/zero"), 10, "specs are limited to").unwrap_err().to_string();
        assert!(error.contains("is a device"), "{error}");
        std::fs::create_dir(dir.join("tree")).unwrap();
        mkfifo(&dir.join("tree/pipe"));
        let error = walk_files(&dir.join("tree")).err().unwrap().to_string();
        assert!(error.contains("named pipe"), "{error}");
    }

    #[test]
    fn limits_and_encoding_are_checked_while_reading() {
        let dir = scratch("limits");
        std::fs::write(dir.join("big"), "x".repeat(11)).unwrap();
        let error = read_text_limited(&dir.join("big"), 10, "specs are limited to").unwrap_err().to_string();
        assert!(error.contains("larger than 10 bytes; specs are limited to 10 bytes"), "{error}");
        std::fs::write(dir.join("latin1"), b"ab\xe9c").unwrap();
        let error = read_text_limited(&dir.join("latin1"), 10, "").unwrap_err().to_string();
        assert!(error.contains("invalid byte at offset 2"), "{error}");
        assert_eq!(read_text_limited(&dir.join("big"), 11, "").unwrap(), "x".repeat(11));
    }

    #[test]
    fn walks_follow_links_to_files_but_not_to_directories() {
        let dir = scratch("links");
        std::fs::create_dir_all(dir.join("tree/sub")).unwrap();
        std::fs::write(dir.join("data"), "d").unwrap();
        std::fs::write(dir.join("tree/sub/a"), "a").unwrap();
        std::os::unix::fs::symlink(dir.join("data"), dir.join("tree/link")).unwrap();
        let mut found: Vec<String> = walk_files(&dir.join("tree")).unwrap().into_iter().map(|(r, _)| r).collect();
        found.sort();
        assert_eq!(found, ["link", "sub/a"]);
        std::os::unix::fs::symlink(dir.join("tree"), dir.join("tree/sub/loop")).unwrap();
        let error = walk_files(&dir.join("tree")).err().unwrap().to_string();
        assert!(error.contains("symbolic link to a directory"), "{error}");
    }
}
