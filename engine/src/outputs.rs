//! Reading a finished task's outputs directory against its interface: the half
//! of the task contract (docs/task-contract.md) that `updraft run` and
//! `updraft exec` share. Where the data then goes (the local blob store, S3)
//! is each caller's business.

use std::path::Path;
use updraft_aws::files;
use updraft_core::execution::{contract, parquet};
use updraft_core::proto::core::{Blob, Literal, LiteralType, Variable, literal::Value as LV};
use updraft_core::types::{self, Kind, display, kind};

pub enum Output {
    /// An optional output the task did not write.
    Absent,
    Value(Literal),
    /// Data on disk, checked against the declared type, still at its path.
    Blob {
        kind: BlobKind,
        format: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    File,
    Directory,
    DataFrame,
}

/// The literal for stored data of this kind.
pub fn blob_literal(kind: BlobKind, blob: Blob) -> Literal {
    Literal {
        value: Some(match kind {
            BlobKind::File => LV::File(blob),
            BlobKind::Directory => LV::Directory(blob),
            BlobKind::DataFrame => LV::Dataframe(blob),
        }),
    }
}

/// Checks output `var` at `dir/<name>`: present unless optional, a directory
/// exactly where one is declared, values of the declared type, CSV headers
/// holding the declared columns, Parquet schemas holding them with
/// compatible types. Errors name
/// the output, the expected type and what was found.
pub fn check(var: &Variable, dir: &Path) -> Result<Output, String> {
    let t = var.r#type.clone().unwrap_or_default();
    let path = dir.join(&var.name);
    // Not `exists()`, which follows links: a dangling link is "not written", any other
    // link is classified below by what it points to.
    if !path.exists() {
        if types::is_optional(&t) {
            return Ok(Output::Absent);
        }
        return Err(format!(
            "did not write output \"{}\" ({}); expected it at {}",
            var.name,
            display(&t),
            path.display()
        ));
    }
    // A pipe, device or socket would block or never end: refused before any read.
    let is_dir = match files::entry(&path) {
        Ok(files::Entry::Directory) => true,
        Ok(files::Entry::File) => false,
        Err(e) => return Err(format!("output \"{}\" cannot be used: {e}", var.name)),
    };
    if !contract::is_blob(&t) {
        if is_dir {
            return Err(format!(
                "output \"{}\" has the wrong type: expected {}, found a directory",
                var.name,
                display(&t)
            ));
        }
        let limit = contract::MAX_VALUE_OUTPUT_BYTES;
        let text = files::read_text_limited(&path, limit, "value outputs are limited to").map_err(|e| {
            format!("cannot read output \"{}\": {e}; write large data to a file output instead", var.name)
        })?;
        return contract::parse_value_output(&var.name, &text, &t).map(Output::Value);
    }
    if is_dir {
        // Every entry must be data: a pipe deep inside would block whoever stores it.
        files::walk_files(&path).map_err(|e| format!("output \"{}\" cannot be used: {e}", var.name))?;
    }
    check_blob(&var.name, &t, &path, is_dir)
}

/// `is_dir`: what the output path holds, as classified (without following links to directories).
fn check_blob(name: &str, t: &LiteralType, path: &Path, is_dir: bool) -> Result<Output, String> {
    let wrong = |found: &str| format!("output \"{name}\" has the wrong type: expected {}, found {found}", display(t));
    let unreadable = |e: std::io::Error| format!("cannot read output \"{name}\": {e}");
    match kind(t) {
        Kind::Optional(inner) => check_blob(name, inner, path, is_dir),
        Kind::Directory if is_dir => Ok(Output::Blob { kind: BlobKind::Directory, format: String::new() }),
        Kind::Directory => Err(wrong("a file")),
        _ if is_dir => Err(wrong("a directory")),
        Kind::File(f) => Ok(Output::Blob { kind: BlobKind::File, format: f.format.clone() }),
        Kind::DataFrame(d) => {
            let format = if d.format.is_empty() { "csv".to_string() } else { d.format.clone() };
            match format.as_str() {
                "csv" if !d.columns.is_empty() => {
                    contract::check_csv_header(name, &first_line(path).map_err(unreadable)?, &d.columns)?
                }
                "parquet" => {
                    let columns = parquet_columns(path)
                        .map_err(unreadable)?
                        .map_err(|why| wrong(&format!("a file that is not Parquet: {why}")))?;
                    parquet::check_columns(name, &columns, &d.columns)?;
                }
                _ => {}
            }
            Ok(Output::Blob { kind: BlobKind::DataFrame, format })
        }
        _ => Err(wrong("data on disk")),
    }
}

/// Checks data given to a run (a local file, not yet any task's) against its
/// declared type as a task's outputs are checked: a dataframe's declared columns
/// must be in its CSV header or Parquet schema. Lists, maps and optionals are
/// walked; other values were checked when they were read.
pub fn check_given(name: &str, value: &Literal, t: &LiteralType) -> Result<(), String> {
    match (&value.value, kind(t)) {
        (_, Kind::Optional(inner)) => check_given(name, value, inner),
        (Some(LV::Dataframe(b)), Kind::DataFrame(_)) if !b.uri.starts_with("s3://") => {
            check_blob(name, t, Path::new(&b.uri), false).map(|_| ())
        }
        (Some(LV::List(l)), Kind::List(element)) => {
            l.values.iter().enumerate().try_for_each(|(i, v)| check_given(&format!("{name}[{i}]"), v, element))
        }
        (Some(LV::Map(m)), Kind::Map(element)) => {
            m.values.iter().try_for_each(|(k, v)| check_given(&format!("{name}.{k}"), v, element))
        }
        _ => Ok(()),
    }
}

/// The header line of a CSV file, read at most 1 MiB far.
fn first_line(path: &Path) -> std::io::Result<String> {
    use std::io::{BufRead, Read};
    let mut line = Vec::new();
    std::io::BufReader::new(files::open_regular(path)?.take(1 << 20)).read_until(b'\n', &mut line)?;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// The top-level columns from a Parquet file's footer; the inner error says
/// why the file is not Parquet.
fn parquet_columns(path: &Path) -> std::io::Result<Result<Vec<parquet::ParquetColumn>, String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = files::open_regular(path)?;
    let size = file.metadata()?.len();
    let mut head = [0u8; 4];
    if size < 12 || file.read_exact(&mut head).is_err() || &head != b"PAR1" {
        return Ok(Err("it does not start with the Parquet magic PAR1".into()));
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::End(-8))?;
    file.read_exact(&mut tail)?;
    let length = match parquet::footer_length(tail) {
        // Footers hold the schema, kilobytes in practice; 64 MiB bounds what is read.
        Ok(length) if (length as u64) <= size - 12 && length <= 64 << 20 => length,
        Ok(length) => return Ok(Err(format!("its footer length {length} exceeds the file"))),
        Err(why) => return Ok(Err(why)),
    };
    let mut footer = vec![0u8; length];
    file.seek(SeekFrom::End(-8 - length as i64))?;
    file.read_exact(&mut footer)?;
    Ok(parquet::top_level_columns(&footer))
}
