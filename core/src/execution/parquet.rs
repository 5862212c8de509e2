//! A Parquet output's columns, checked against the declared dataframe schema.
//!
//! Only the footer is read: its `FileMetaData` (Thrift compact protocol) starts
//! with the schema, a depth-first list of elements in which a group says how
//! many children follow. The top-level columns are the root's children. This
//! is the little of the format a check needs, so no Parquet library (and no
//! Arrow) is linked into `updraft exec`.
//!
//! Reference: apache/parquet-format, `parquet.thrift`; the Thrift compact
//! protocol specification.

use crate::proto::core::{Column, SimpleType};
use crate::types::simple_name;

/// What a top-level column holds, as far as Updraft's column types go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetColumn {
    pub name: String,
    pub holds: Holds,
    /// The physical type and annotation, for messages: `INT64, TIMESTAMP`.
    pub described: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    Int,
    Float,
    String,
    Bool,
    DateTime,
    /// A group: a struct, list or map column.
    Nested,
    /// Anything without an Updraft column type (decimal, time of day, raw bytes).
    Other,
}

/// The footer's length field and magic: the last 8 bytes of a Parquet file.
pub fn footer_length(tail: [u8; 8]) -> Result<usize, String> {
    if &tail[4..] != b"PAR1" {
        return Err("it does not end with the Parquet magic PAR1".into());
    }
    Ok(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize)
}

/// The top-level columns of a file whose serialized `FileMetaData` is `footer`.
pub fn top_level_columns(footer: &[u8]) -> Result<Vec<ParquetColumn>, String> {
    let mut reader = Reader { bytes: footer, at: 0 };
    let elements = reader.file_schema().map_err(|e| format!("its footer cannot be read: {e}"))?;
    let Some((root, rest)) = elements.split_first() else {
        return Err("its footer holds no schema".into());
    };
    let mut columns = Vec::new();
    let mut i = 0;
    for _ in 0..root.num_children {
        let element = rest.get(i).ok_or("its schema ends before the root's children do")?;
        columns.push(element.column());
        i = skip_subtree(rest, i)?;
    }
    Ok(columns)
}

/// Every declared column present with a compatible type; extra columns are fine,
/// as for CSV. The error names each problem.
pub fn check_columns(name: &str, found: &[ParquetColumn], declared: &[Column]) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut missing = Vec::new();
    for column in declared {
        let want = SimpleType::try_from(column.r#type).unwrap_or_default();
        match found.iter().find(|f| f.name == column.name) {
            None => missing.push(column.name.as_str()),
            Some(f) if !compatible(want, f.holds) => problems.push(format!(
                "column \"{}\" is declared {}, but the file holds {}",
                column.name,
                simple_name(want),
                f.described
            )),
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        let present: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        problems.insert(
            0,
            format!("lacks declared column(s) {}; its schema has: {}", missing.join(", "), present.join(", ")),
        );
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("dataframe \"{name}\" {}", problems.join("; "))) }
}

fn compatible(want: SimpleType, holds: Holds) -> bool {
    matches!(
        (want, holds),
        (SimpleType::Integer, Holds::Int)
            | (SimpleType::Float, Holds::Float)
            | (SimpleType::String, Holds::String)
            | (SimpleType::Boolean, Holds::Bool)
            | (SimpleType::Datetime, Holds::DateTime)
            // Arrow writes durations as plain INT64 (the unit lives in its own metadata).
            | (SimpleType::Duration, Holds::Int)
    )
}

/// The index after element `i` and all its descendants (iterative: a hostile
/// footer may nest groups deeper than the stack).
fn skip_subtree(elements: &[SchemaElement], i: usize) -> Result<usize, String> {
    let (mut pending, mut next) = (1usize, i);
    while pending > 0 {
        let element = elements.get(next).ok_or("its schema ends inside a group")?;
        pending = pending - 1 + element.num_children as usize;
        next += 1;
    }
    Ok(next)
}

/// The fields of parquet.thrift's `SchemaElement` that a column check needs.
#[derive(Debug, Default)]
struct SchemaElement {
    name: String,
    physical: Option<i32>,
    num_children: u32,
    converted: Option<i32>,
    /// The field id of the `LogicalType` union member that is set.
    logical: Option<i16>,
}

impl SchemaElement {
    fn column(&self) -> ParquetColumn {
        const PHYSICAL: [&str; 8] =
            ["BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"];
        // LogicalType members: 1 STRING, 4 ENUM, 5 DECIMAL, 6 DATE, 7 TIME, 8 TIMESTAMP, 12 JSON, 14 UUID.
        // ConvertedType: 0 UTF8, 4 ENUM, 5 DECIMAL, 6 DATE, 7/8 TIME, 9/10 TIMESTAMP, 19 JSON, 21 INTERVAL.
        let (logical, converted) = (self.logical.unwrap_or(-1), self.converted.unwrap_or(-1));
        let annotation = match (logical, converted) {
            (1, _) | (-1, 0) => "STRING",
            (4, _) | (-1, 4) => "ENUM",
            (5, _) | (-1, 5) => "DECIMAL",
            (6, _) | (-1, 6) => "DATE",
            (7, _) | (-1, 7 | 8) => "TIME",
            (8, _) | (-1, 9 | 10) => "TIMESTAMP",
            (12, _) | (-1, 19) => "JSON",
            (14, _) => "UUID",
            (-1, 21) => "INTERVAL",
            (-1, -1) => "",
            _ => "annotated",
        };
        let holds = match (self.physical, annotation) {
            (None, _) => Holds::Nested,
            (Some(_), "DECIMAL" | "TIME" | "INTERVAL" | "annotated") => Holds::Other,
            (Some(1 | 2), "DATE" | "TIMESTAMP") | (Some(3), _) => Holds::DateTime,
            (Some(0), _) => Holds::Bool,
            (Some(1 | 2), _) => Holds::Int,
            (Some(4 | 5), _) => Holds::Float,
            (Some(6 | 7), "STRING" | "ENUM" | "JSON" | "UUID") => Holds::String,
            (Some(_), _) => Holds::Other,
        };
        let physical = match self.physical {
            None => "a nested group".to_string(),
            Some(p) => PHYSICAL.get(p as usize).copied().unwrap_or("an unknown physical type").to_string(),
        };
        let described = if annotation.is_empty() || self.physical.is_none() {
            physical
        } else {
            format!("{physical}, {annotation}")
        };
        ParquetColumn { name: self.name.clone(), holds, described }
    }
}

/// Thrift compact protocol types.
const STOP: u8 = 0;
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;
const UUID: u8 = 13;

/// Nesting deeper than this is not a real footer; the bound keeps a hostile one
/// from exhausting the stack.
const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("it ends early")?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or("it ends early")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint runs past 64 bits".into())
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, String> {
        i32::try_from(self.zigzag()?).map_err(|_| "an i32 out of range".to_string())
    }

    /// The next field's (id, type) of the struct being read; `None` at its end.
    fn field(&mut self, last_id: &mut i16) -> Result<Option<(i16, u8)>, String> {
        let header = self.byte()?;
        let kind = header & 0x0f;
        if kind == STOP {
            return Ok(None);
        }
        let delta = (header >> 4) as i16;
        *last_id = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| "a field id out of range")?
        } else {
            last_id.checked_add(delta).ok_or("a field id out of range")?
        };
        Ok(Some((*last_id, kind)))
    }

    /// A list or set header: (element type, count), the count bounded by what is left.
    fn list_header(&mut self) -> Result<(u8, usize), String> {
        let header = self.byte()?;
        let size = match header >> 4 {
            15 => self.varint()? as usize,
            small => small as usize,
        };
        if size > self.bytes.len() - self.at {
            return Err("a list longer than the footer".into());
        }
        Ok((header & 0x0f, size))
    }

    fn skip(&mut self, kind: u8, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("nesting too deep".into());
        }
        match kind {
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            BYTE => self.take(1).map(drop),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.take(8).map(drop),
            UUID => self.take(16).map(drop),
            BINARY => {
                let n = self.varint()? as usize;
                self.take(n).map(drop)
            }
            LIST | SET => {
                let (element, size) = self.list_header()?;
                for _ in 0..size {
                    self.skip_element(element, depth + 1)?;
                }
                Ok(())
            }
            MAP => {
                let size = self.varint()? as usize;
                if size == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                for _ in 0..size {
                    self.skip_element(kinds >> 4, depth + 1)?;
                    self.skip_element(kinds & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            STRUCT => {
                let mut last = 0;
                while let Some((_, kind)) = self.field(&mut last)? {
                    self.skip(kind, depth + 1)?;
                }
                Ok(())
            }
            other => Err(format!("unknown Thrift type {other}")),
        }
    }

    /// Inside lists and maps a bool is a whole byte, not part of a field header.
    fn skip_element(&mut self, kind: u8, depth: usize) -> Result<(), String> {
        if kind == BOOL_TRUE || kind == BOOL_FALSE { self.take(1).map(drop) } else { self.skip(kind, depth) }
    }

    /// `FileMetaData`: field 2 is the schema; everything after it is left unread.
    fn file_schema(&mut self) -> Result<Vec<SchemaElement>, String> {
        let mut last = 0;
        while let Some((id, kind)) = self.field(&mut last)? {
            if id == 2 && kind == LIST {
                let (element, size) = self.list_header()?;
                if element != STRUCT {
                    return Err("the schema is not a list of elements".into());
                }
                return (0..size).map(|_| self.schema_element()).collect();
            }
            self.skip(kind, 0)?;
        }
        Err("it has no schema field".into())
    }

    fn schema_element(&mut self) -> Result<SchemaElement, String> {
        let mut element = SchemaElement::default();
        let mut last = 0;
        while let Some((id, kind)) = self.field(&mut last)? {
            match (id, kind) {
                (1, I32) => element.physical = Some(self.i32()?),
                (4, BINARY) => {
                    let n = self.varint()? as usize;
                    element.name = String::from_utf8_lossy(self.take(n)?).into_owned();
                }
                (5, I32) => {
                    element.num_children = u32::try_from(self.i32()?).map_err(|_| "a negative number of children")?;
                }
                (6, I32) => element.converted = Some(self.i32()?),
                (10, STRUCT) => {
                    // A union: the one member set, then STOP.
                    let mut member_last = 0;
                    if let Some((member, member_kind)) = self.field(&mut member_last)? {
                        element.logical = Some(member);
                        self.skip(member_kind, 1)?;
                        if self.field(&mut member_last)?.is_some() {
                            return Err("a logical type with two members".into());
                        }
                    }
                }
                _ => self.skip(kind, 1)?,
            }
        }
        Ok(element)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by pyarrow 26 (`tests/data/parquet/make.py`): every column type
    /// it has, a struct and a list among them.
    const TYPED: &[u8] = include_bytes!("../../../tests/data/parquet/typed.parquet");
    /// The same writer with format version 1.0, no dictionary, no statistics.
    const LEGACY: &[u8] = include_bytes!("../../../tests/data/parquet/legacy.parquet");

    fn footer(file: &[u8]) -> &[u8] {
        let tail: [u8; 8] = file[file.len() - 8..].try_into().unwrap();
        let length = footer_length(tail).unwrap();
        &file[file.len() - 8 - length..file.len() - 8]
    }

    fn columns(file: &[u8]) -> Vec<(String, Holds)> {
        top_level_columns(footer(file)).unwrap().into_iter().map(|c| (c.name, c.holds)).collect()
    }

    fn declared(pairs: &[(&str, SimpleType)]) -> Vec<Column> {
        pairs.iter().map(|(name, t)| Column { name: name.to_string(), r#type: *t as i32 }).collect()
    }

    #[test]
    fn top_level_columns_are_read_with_what_they_hold() {
        use Holds::*;
        let expected = [
            ("id", Int),
            ("small", Int),
            ("score", Float),
            ("ratio", Float),
            ("name", String),
            ("flag", Bool),
            ("at", DateTime),
            ("day", DateTime),
            ("took", Int),
            ("point", Nested),
            ("tags", Nested),
            ("after", Int),
        ];
        let found = columns(TYPED);
        assert_eq!(found, expected.map(|(n, h)| (n.to_string(), h)), "children of groups are skipped");
        assert_eq!(columns(LEGACY), [("id".into(), Int), ("score".into(), Float), ("name".into(), String)]);
    }

    #[test]
    fn declared_columns_must_be_present_with_compatible_types() {
        use SimpleType::*;
        let found = top_level_columns(footer(TYPED)).unwrap();
        let fine =
            declared(&[("id", Integer), ("score", Float), ("name", String), ("at", Datetime), ("took", Duration)]);
        assert_eq!(check_columns("table", &found, &fine), Ok(()));

        let err = check_columns("table", &found, &declared(&[("id", Float), ("age", Integer), ("point", String)]))
            .unwrap_err();
        assert!(
            err.starts_with("dataframe \"table\" lacks declared column(s) age; its schema has: id, small"),
            "{err}"
        );
        assert!(err.contains("column \"id\" is declared float, but the file holds INT64"), "{err}");
        assert!(err.contains("column \"point\" is declared string, but the file holds a nested group"), "{err}");
        let err = check_columns("t", &found, &declared(&[("at", Integer)])).unwrap_err();
        assert!(err.contains("the file holds INT64, TIMESTAMP"), "{err}");
    }

    #[test]
    fn damaged_footers_are_errors_not_panics() {
        assert!(footer_length(*b"\0\0\0\0PAR2").is_err());
        let good = footer(TYPED);
        // Every truncation, and every single-byte corruption, either reads or fails cleanly.
        for end in 0..good.len() {
            let _ = top_level_columns(&good[..end]);
        }
        for i in 0..good.len() {
            let mut bad = good.to_vec();
            bad[i] ^= 0xff;
            let _ = top_level_columns(&bad);
        }
        assert!(top_level_columns(&[]).is_err());
        // A list header claiming more elements than there are bytes.
        assert!(
            top_level_columns(&[0x29, 0xfc, 0xff, 0xff, 0xff, 0x0f]).unwrap_err().contains("longer than the footer")
        );
    }
}
