//! The type language of specs (`int`, `list<float>`, `file<csv>`, `optional<string>`,
//! `{struct: {...}}`, `{dataframe: {columns: {...}}}`) and the rules for which
//! value may flow into which input.

use crate::proto::core::{
    Column, DataFrameType, DirectoryType, Field, FileType, ListType, LiteralType, MapType, OptionalType, SimpleType,
    StructType, literal_type::Type,
};
use serde_json::Value;
use std::fmt::Write;

pub fn simple(t: SimpleType) -> LiteralType {
    LiteralType { r#type: Some(Type::Simple(t as i32)) }
}

pub fn list_of(element: LiteralType) -> LiteralType {
    LiteralType { r#type: Some(Type::List(Box::new(ListType { element: Some(Box::new(element)) }))) }
}

pub fn map_of(value: LiteralType) -> LiteralType {
    LiteralType { r#type: Some(Type::Map(Box::new(MapType { value: Some(Box::new(value)) }))) }
}

pub fn optional_of(inner: LiteralType) -> LiteralType {
    if is_optional(&inner) {
        return inner;
    }
    LiteralType { r#type: Some(Type::Optional(Box::new(OptionalType { inner: Some(Box::new(inner)) }))) }
}

pub fn file(format: &str) -> LiteralType {
    LiteralType { r#type: Some(Type::File(FileType { format: format.to_string() })) }
}

pub fn directory() -> LiteralType {
    LiteralType { r#type: Some(Type::Directory(DirectoryType {})) }
}

/// The structural view of a type, with the proto's boxes and Options taken away.
pub enum Kind<'a> {
    Simple(SimpleType),
    List(&'a LiteralType),
    Map(&'a LiteralType),
    Struct(&'a StructType),
    File(&'a FileType),
    Directory,
    DataFrame(&'a DataFrameType),
    Optional(&'a LiteralType),
    Unknown,
}

static UNKNOWN: LiteralType = LiteralType { r#type: None };

pub fn kind(t: &LiteralType) -> Kind<'_> {
    match &t.r#type {
        Some(Type::Simple(s)) => SimpleType::try_from(*s).map(Kind::Simple).unwrap_or(Kind::Unknown),
        Some(Type::List(l)) => Kind::List(l.element.as_deref().unwrap_or(&UNKNOWN)),
        Some(Type::Map(m)) => Kind::Map(m.value.as_deref().unwrap_or(&UNKNOWN)),
        Some(Type::Struct(s)) => Kind::Struct(s),
        Some(Type::File(f)) => Kind::File(f),
        Some(Type::Directory(_)) => Kind::Directory,
        Some(Type::Dataframe(d)) => Kind::DataFrame(d),
        Some(Type::Optional(o)) => Kind::Optional(o.inner.as_deref().unwrap_or(&UNKNOWN)),
        None => Kind::Unknown,
    }
}

pub fn is_optional(t: &LiteralType) -> bool {
    matches!(kind(t), Kind::Optional(_))
}

/// The element type when `t` is a list.
pub fn list_element(t: &LiteralType) -> Option<&LiteralType> {
    match kind(t) {
        Kind::List(e) => Some(e),
        _ => None,
    }
}

/// A simple type as specs write it: `int`, `float`, ...
pub fn simple_name(t: SimpleType) -> &'static str {
    match t {
        SimpleType::Integer => "int",
        SimpleType::Float => "float",
        SimpleType::String => "string",
        SimpleType::Boolean => "bool",
        SimpleType::Datetime => "datetime",
        SimpleType::Duration => "duration",
        SimpleType::Unspecified => "?",
    }
}

fn simple_from_name(name: &str) -> Option<SimpleType> {
    Some(match name {
        "int" | "integer" => SimpleType::Integer,
        "float" => SimpleType::Float,
        "str" | "string" => SimpleType::String,
        "bool" | "boolean" => SimpleType::Boolean,
        "datetime" => SimpleType::Datetime,
        "duration" => SimpleType::Duration,
        _ => return None,
    })
}

/// Renders a type in the spec's own syntax.
pub fn display(t: &LiteralType) -> String {
    let mut out = String::new();
    write_type(&mut out, t);
    out
}

fn write_type(out: &mut String, t: &LiteralType) {
    match kind(t) {
        Kind::Simple(s) => out.push_str(simple_name(s)),
        Kind::List(e) => {
            out.push_str("list<");
            write_type(out, e);
            out.push('>');
        }
        Kind::Map(v) => {
            out.push_str("map<");
            write_type(out, v);
            out.push('>');
        }
        Kind::Optional(i) => {
            out.push_str("optional<");
            write_type(out, i);
            out.push('>');
        }
        Kind::Struct(s) => {
            out.push_str("struct{");
            for (i, f) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}: ", f.name);
                write_type(out, f.r#type.as_ref().unwrap_or(&UNKNOWN));
            }
            out.push('}');
        }
        Kind::File(f) if f.format.is_empty() => out.push_str("file"),
        Kind::File(f) => {
            let _ = write!(out, "file<{}>", f.format);
        }
        Kind::Directory => out.push_str("directory"),
        Kind::DataFrame(d) => {
            out.push_str("dataframe");
            if !d.format.is_empty() {
                let _ = write!(out, "<{}>", d.format);
            }
            if !d.columns.is_empty() {
                out.push('{');
                for (i, c) in d.columns.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let column_type = SimpleType::try_from(c.r#type).unwrap_or(SimpleType::Unspecified);
                    let _ = write!(out, "{}: {}", c.name, simple_name(column_type));
                }
                out.push('}');
            }
        }
        Kind::Unknown => out.push('?'),
    }
}

const TYPE_HINT: &str = "types are int, float, string, bool, datetime, duration, file, file<csv>, \
directory, dataframe, list<T>, map<T>, optional<T> (or T?), {struct: {field: T}}, \
{dataframe: {format: csv, columns: {name: T}}}";

/// How deeply types may nest (`list<list<...>>`, structs in structs): every
/// reader of values and types walks them recursively.
pub const MAX_TYPE_DEPTH: usize = 32;

fn too_deep() -> String {
    format!("the type nests more than {MAX_TYPE_DEPTH} levels deep, the limit; use a file for deeply nested data")
}

/// Parses a type as written in a spec: a string expression or a mapping.
pub fn parse(value: &Value) -> Result<LiteralType, String> {
    parse_nested(value, 0)
}

fn parse_nested(value: &Value, depth: usize) -> Result<LiteralType, String> {
    if depth >= MAX_TYPE_DEPTH {
        return Err(too_deep());
    }
    let parse = |inner: &Value| parse_nested(inner, depth + 1);
    match value {
        Value::String(text) => parse_expr(text, depth),
        Value::Object(map) if map.len() == 1 => {
            let (key, inner) = map.iter().next().expect("one entry");
            match key.as_str() {
                "list" => Ok(list_of(parse(inner)?)),
                "map" => Ok(map_of(parse(inner)?)),
                "optional" => Ok(optional_of(parse(inner)?)),
                "struct" => parse_struct(inner, depth),
                "file" => match inner {
                    Value::Object(o) => Ok(file(o.get("format").and_then(Value::as_str).unwrap_or(""))),
                    Value::String(format) => Ok(file(format)),
                    _ => Err(format!("file type takes {{format: csv}}, found {inner}")),
                },
                "dataframe" => parse_dataframe(inner),
                other => Err(format!("unknown type \"{other}\"; {TYPE_HINT}")),
            }
        }
        other => Err(format!("cannot read type {other}; {TYPE_HINT}")),
    }
}

fn parse_struct(fields: &Value, depth: usize) -> Result<LiteralType, String> {
    let Value::Object(fields) = fields else {
        return Err(format!("struct takes a mapping of field names to types, found {fields}"));
    };
    if fields.is_empty() {
        return Err("a struct needs at least one field".into());
    }
    let fields = fields
        .iter()
        .map(|(name, t)| {
            parse_nested(t, depth + 1)
                .map(|t| Field { name: name.clone(), r#type: Some(t) })
                .map_err(|e| format!("field \"{name}\": {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LiteralType { r#type: Some(Type::Struct(StructType { fields })) })
}

fn parse_dataframe(spec: &Value) -> Result<LiteralType, String> {
    let Value::Object(spec) = spec else {
        return Err(format!("dataframe takes {{format: csv, columns: {{name: type}}}}, found {spec}"));
    };
    let mut frame = DataFrameType::default();
    for (key, value) in spec {
        match (key.as_str(), value) {
            ("format", Value::String(f)) => frame.format = check_format(f)?,
            ("columns", Value::Object(columns)) => {
                for (name, t) in columns {
                    let Some(Kind::Simple(s)) = parse(t).ok().as_ref().map(kind) else {
                        return Err(format!(
                            "column \"{name}\" has type {t}; columns hold int, float, string, bool, datetime or duration"
                        ));
                    };
                    frame.columns.push(Column { name: name.clone(), r#type: s as i32 });
                }
            }
            _ => return Err(format!("dataframe takes format and columns, found \"{key}\": {value}")),
        }
    }
    Ok(LiteralType { r#type: Some(Type::Dataframe(frame)) })
}

fn check_format(format: &str) -> Result<String, String> {
    if format.is_empty() || !format.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
        return Err(format!("\"{format}\" is not a valid format; use a file extension such as csv, parquet, json"));
    }
    Ok(format.to_ascii_lowercase())
}

fn parse_expr(text: &str, depth: usize) -> Result<LiteralType, String> {
    let mut parser = TypeParser { text, pos: 0, depth };
    let t = parser.parse_type()?;
    parser.skip_ws();
    if parser.pos != text.len() {
        return Err(format!("unexpected \"{}\" in type \"{text}\"; {TYPE_HINT}", &text[parser.pos..]));
    }
    Ok(t)
}

struct TypeParser<'a> {
    text: &'a str,
    pos: usize,
    /// Types entered so far, bounded by MAX_TYPE_DEPTH.
    depth: usize,
}

impl TypeParser<'_> {
    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(' ') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.text[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len());
        self.pos += len;
        &self.text[start..start + len]
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) { Ok(()) } else { Err(format!("expected '{c}' in type \"{}\"", self.text)) }
    }

    fn parse_type(&mut self) -> Result<LiteralType, String> {
        self.depth += 1;
        if self.depth > MAX_TYPE_DEPTH {
            return Err(too_deep());
        }
        let t = self.parse_one();
        self.depth -= 1;
        t
    }

    fn parse_one(&mut self) -> Result<LiteralType, String> {
        let name = self.word().to_ascii_lowercase();
        let t = match name.as_str() {
            "list" => {
                self.expect('<')?;
                let e = self.parse_type()?;
                self.expect('>')?;
                list_of(e)
            }
            "map" | "dict" => {
                self.expect('<')?;
                let mut v = self.parse_type()?;
                if self.eat(',') {
                    if !matches!(kind(&v), Kind::Simple(SimpleType::String)) {
                        return Err(format!("map keys are always strings, in type \"{}\"", self.text));
                    }
                    v = self.parse_type()?;
                }
                self.expect('>')?;
                map_of(v)
            }
            "optional" => {
                self.expect('<')?;
                let i = self.parse_type()?;
                self.expect('>')?;
                optional_of(i)
            }
            "file" => {
                let mut format = String::new();
                if self.eat('<') {
                    format = check_format(self.word())?;
                    self.expect('>')?;
                }
                file(&format)
            }
            "dataframe" => {
                let mut frame = DataFrameType::default();
                if self.eat('<') {
                    frame.format = check_format(self.word())?;
                    self.expect('>')?;
                }
                LiteralType { r#type: Some(Type::Dataframe(frame)) }
            }
            "directory" | "dir" => directory(),
            "" => return Err(format!("missing type in \"{}\"; {TYPE_HINT}", self.text)),
            other => match simple_from_name(other) {
                Some(s) => simple(s),
                None => return Err(format!("unknown type \"{other}\"; {TYPE_HINT}")),
            },
        };
        if self.eat('?') { Ok(optional_of(t)) } else { Ok(t) }
    }
}

/// Why a value of one type cannot flow into an input of another.
pub fn check_assignable(from: &LiteralType, to: &LiteralType) -> Result<(), String> {
    let mismatch = || Err(format!("{} cannot be passed as {}", display(from), display(to)));
    match (kind(from), kind(to)) {
        (_, Kind::Unknown) | (Kind::Unknown, _) => mismatch(),
        (Kind::Optional(f), Kind::Optional(t)) => check_assignable(f, t),
        (_, Kind::Optional(t)) => check_assignable(from, t),
        (Kind::Optional(_), _) => Err(format!(
            "{} may be absent but the input requires {}; make the input optional<...> or pass a value that is always set",
            display(from),
            display(to)
        )),
        (Kind::Simple(a), Kind::Simple(b)) if a == b => Ok(()),
        (Kind::List(a), Kind::List(b)) | (Kind::Map(a), Kind::Map(b)) => {
            check_assignable(a, b).map_err(|e| format!("{} cannot be passed as {}: {e}", display(from), display(to)))
        }
        (Kind::Struct(a), Kind::Struct(b)) => {
            for field in &b.fields {
                let Some(source) = a.fields.iter().find(|f| f.name == field.name) else {
                    return Err(format!("{} lacks field \"{}\" that {} has", display(from), field.name, display(to)));
                };
                check_assignable(source.r#type.as_ref().unwrap_or(&UNKNOWN), field.r#type.as_ref().unwrap_or(&UNKNOWN))
                    .map_err(|e| format!("field \"{}\": {e}", field.name))?;
            }
            if a.fields.len() != b.fields.len() {
                return Err(format!("{} has fields that {} does not declare", display(from), display(to)));
            }
            Ok(())
        }
        (Kind::File(a), Kind::File(b)) => {
            if a.format.is_empty() || b.format.is_empty() || a.format == b.format {
                Ok(())
            } else {
                mismatch()
            }
        }
        (Kind::Directory, Kind::Directory) => Ok(()),
        (Kind::DataFrame(a), Kind::DataFrame(b)) => {
            if !a.format.is_empty() && !b.format.is_empty() && a.format != b.format {
                return mismatch();
            }
            if a.columns.is_empty() {
                // An untyped frame is checked against the consumer's columns at run time.
                return Ok(());
            }
            for column in &b.columns {
                match a.columns.iter().find(|c| c.name == column.name) {
                    None => {
                        return Err(format!(
                            "column \"{}\" that the input needs is not among the columns of {}",
                            column.name,
                            display(from)
                        ));
                    }
                    Some(c) if c.r#type != column.r#type => {
                        let name = |t: i32| simple_name(SimpleType::try_from(t).unwrap_or(SimpleType::Unspecified));
                        return Err(format!(
                            "column \"{}\" is {} upstream but the input needs {}",
                            column.name,
                            name(c.r#type),
                            name(column.r#type)
                        ));
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        }
        _ => mismatch(),
    }
}

/// Whether values of the two types can be compared in a branch condition, and with which operators.
pub fn comparable(a: &LiteralType, b: &LiteralType, ordering: bool) -> Result<(), String> {
    let strip = |t| match kind(t) {
        Kind::Optional(i) => kind(i),
        k => k,
    };
    use SimpleType::*;
    match (strip(a), strip(b)) {
        (Kind::Simple(Integer | Float), Kind::Simple(Integer | Float)) => Ok(()),
        (Kind::Simple(x), Kind::Simple(y)) if x == y && (!ordering || x != Boolean) => Ok(()),
        (Kind::Simple(Boolean), Kind::Simple(Boolean)) => {
            Err("booleans can only be compared with == and !=".to_string())
        }
        _ => Err(format!(
            "{} and {} cannot be compared; conditions compare numbers, strings, booleans, datetimes or durations",
            display(a),
            display(b)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(text: &str) -> LiteralType {
        parse(&json!(text)).unwrap()
    }

    #[test]
    fn expressions_round_trip_through_display() {
        for text in ["int", "list<map<float>>", "optional<file<csv>>", "dataframe<parquet>", "directory", "list<int>"] {
            assert_eq!(display(&t(text)), text);
        }
        assert_eq!(display(&t("int?")), "optional<int>");
        assert_eq!(display(&t("map<string, int>")), "map<int>");
    }

    #[test]
    fn mapping_forms_parse() {
        let s = parse(&json!({"struct": {"lr": "float", "layers": "list<int>"}})).unwrap();
        assert_eq!(display(&s), "struct{lr: float, layers: list<int>}");
        let d = parse(&json!({"dataframe": {"format": "csv", "columns": {"age": "int", "bmi": "float"}}})).unwrap();
        assert_eq!(display(&d), "dataframe<csv>{age: int, bmi: float}");
    }

    #[test]
    fn bad_types_are_named() {
        assert!(parse(&json!("integr")).unwrap_err().contains("unknown type \"integr\""));
        assert!(parse(&json!("list<int")).unwrap_err().contains("expected '>'"));
        assert!(parse(&json!("map<int, float>")).unwrap_err().contains("keys are always strings"));
        assert!(parse(&json!({"dataframe": {"columns": {"a": "list<int>"}}})).unwrap_err().contains("column \"a\""));
    }

    #[test]
    fn deep_nesting_is_refused_with_the_limit() {
        let deep = format!("{}int{}", "list<".repeat(5000), ">".repeat(5000));
        assert!(parse(&json!(deep)).unwrap_err().contains("more than 32 levels"));
        let mut mapping = json!("int");
        for _ in 0..100 {
            mapping = json!({"list": mapping});
        }
        assert!(parse(&mapping).unwrap_err().contains("more than 32 levels"));
        let ok = format!("{}int{}", "list<".repeat(31), ">".repeat(31));
        assert!(parse(&json!(ok)).is_ok());
    }

    #[test]
    fn assignability_rules() {
        assert!(check_assignable(&t("int"), &t("int")).is_ok());
        assert!(check_assignable(&t("float"), &t("int")).is_err());
        assert!(check_assignable(&t("list<int>"), &t("int")).is_err());
        assert!(check_assignable(&t("int"), &t("optional<int>")).is_ok());
        assert!(check_assignable(&t("optional<int>"), &t("int")).unwrap_err().contains("may be absent"));
        assert!(check_assignable(&t("file<csv>"), &t("file")).is_ok());
        assert!(check_assignable(&t("file<csv>"), &t("file<parquet>")).is_err());
        let wide = parse(&json!({"dataframe": {"columns": {"age": "int", "bmi": "float"}}})).unwrap();
        let narrow = parse(&json!({"dataframe": {"columns": {"bmi": "float"}}})).unwrap();
        let wrong = parse(&json!({"dataframe": {"columns": {"bmi": "string"}}})).unwrap();
        assert!(check_assignable(&wide, &narrow).is_ok());
        assert!(check_assignable(&narrow, &wide).unwrap_err().contains("column \"age\""));
        assert!(check_assignable(&wide, &wrong).unwrap_err().contains("column \"bmi\" is float upstream"));
    }

    #[test]
    fn comparability() {
        assert!(comparable(&t("int"), &t("float"), true).is_ok());
        assert!(comparable(&t("string"), &t("string"), true).is_ok());
        assert!(comparable(&t("bool"), &t("bool"), false).is_ok());
        assert!(comparable(&t("bool"), &t("bool"), true).is_err());
        assert!(comparable(&t("list<int>"), &t("int"), false).is_err());
        assert!(comparable(&t("string"), &t("int"), false).is_err());
    }
}
