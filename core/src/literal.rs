//! Typed values: reading them from spec/CLI/JSON against a declared type, and
//! showing them to people.

use crate::proto::core::{
    Blob, Literal, LiteralList, LiteralMap, LiteralType, NoneValue, SimpleType, literal::Value as LV,
};
use crate::quantity::{check_duration, format_duration, parse_duration};
use crate::types::{Kind, display, kind};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;

pub fn integer(v: i64) -> Literal {
    Literal { value: Some(LV::Integer(v)) }
}

pub fn float(v: f64) -> Literal {
    Literal { value: Some(LV::Float(v)) }
}

pub fn string(v: impl Into<String>) -> Literal {
    Literal { value: Some(LV::String(v.into())) }
}

pub fn boolean(v: bool) -> Literal {
    Literal { value: Some(LV::Boolean(v)) }
}

pub fn none() -> Literal {
    Literal { value: Some(LV::None(NoneValue {})) }
}

pub fn list(values: Vec<Literal>) -> Literal {
    Literal { value: Some(LV::List(LiteralList { values, omitted: 0 })) }
}

pub fn datetime(value: chrono::DateTime<chrono::Utc>) -> Literal {
    Literal {
        value: Some(LV::Datetime(crate::proto::Timestamp {
            seconds: value.timestamp(),
            nanos: value.timestamp_subsec_nanos() as i32,
        })),
    }
}

pub fn duration(value: std::time::Duration) -> Literal {
    Literal {
        value: Some(LV::Duration(crate::proto::Duration {
            seconds: value.as_secs() as i64,
            nanos: value.subsec_nanos() as i32,
        })),
    }
}

fn blob_of(uri: &str, format: &str) -> Blob {
    Blob { uri: uri.to_string(), format: format.to_string(), digest: String::new() }
}

/// Reads a JSON/YAML value as a literal of type `t`. An int is accepted for a
/// float; everything else must match.
pub fn from_json(value: &Value, t: &LiteralType) -> Result<Literal, String> {
    let wrong = || Err(format!("expected {}, found {}", display(t), describe(value)));
    Ok(match (kind(t), value) {
        (Kind::Optional(_), Value::Null) => none(),
        (Kind::Optional(inner), v) => from_json(v, inner)?,
        (Kind::Simple(SimpleType::Integer), Value::Number(n)) => match n.as_i64() {
            Some(i) => integer(i),
            None if n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() >= 9.2e18) => {
                return Err(int_out_of_range(n));
            }
            None => return wrong(),
        },
        (Kind::Simple(SimpleType::Float), Value::Number(n)) => float(n.as_f64().unwrap_or(f64::NAN)),
        (Kind::Simple(SimpleType::String), Value::String(s)) => string(s.clone()),
        (Kind::Simple(SimpleType::Boolean), Value::Bool(b)) => boolean(*b),
        (Kind::Simple(SimpleType::Datetime), Value::String(s)) => datetime(parse_datetime(s)?),
        (Kind::Simple(SimpleType::Duration), Value::String(s)) => duration(parse_duration(s)?),
        (Kind::Simple(SimpleType::Duration), Value::Number(n)) if n.as_u64().is_some() => {
            duration(check_duration(std::time::Duration::from_secs(n.as_u64().unwrap_or_default()))?)
        }
        (Kind::List(element), Value::Array(items)) => list(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| from_json(item, element).map_err(|e| format!("item {i}: {e}")))
                .collect::<Result<_, _>>()?,
        ),
        (Kind::Map(value_type), Value::Object(entries)) => Literal {
            value: Some(LV::Map(LiteralMap {
                values: entries
                    .iter()
                    .map(|(k, v)| {
                        from_json(v, value_type).map(|l| (k.clone(), l)).map_err(|e| format!("key \"{k}\": {e}"))
                    })
                    .collect::<Result<_, _>>()?,
            })),
        },
        (Kind::Struct(schema), Value::Object(entries)) => {
            let mut fields = BTreeMap::new();
            for field in &schema.fields {
                let field_type = field.r#type.clone().unwrap_or_default();
                let field_value = entries.get(&field.name).unwrap_or(&Value::Null);
                if field_value.is_null() && !matches!(kind(&field_type), Kind::Optional(_)) {
                    return Err(format!("field \"{}\" is missing", field.name));
                }
                let literal =
                    from_json(field_value, &field_type).map_err(|e| format!("field \"{}\": {e}", field.name))?;
                fields.insert(field.name.clone(), literal);
            }
            if let Some(extra) = entries.keys().find(|k| !schema.fields.iter().any(|f| &f.name == *k)) {
                return Err(format!("field \"{extra}\" is not part of {}", display(t)));
            }
            Literal { value: Some(LV::Struct(LiteralMap { values: fields })) }
        }
        (Kind::File(f), Value::String(uri)) => Literal { value: Some(LV::File(blob_of(uri, &f.format))) },
        (Kind::Directory, Value::String(uri)) => Literal { value: Some(LV::Directory(blob_of(uri, ""))) },
        (Kind::DataFrame(d), Value::String(uri)) => {
            let format = if d.format.is_empty() { guess_format(uri) } else { d.format.clone() };
            Literal { value: Some(LV::Dataframe(blob_of(uri, &format))) }
        }
        (Kind::File(_) | Kind::Directory | Kind::DataFrame(_), Value::Object(o)) if o.contains_key("uri") => {
            from_blob_json(o, t)?
        }
        _ => return wrong(),
    })
}

fn from_blob_json(o: &Map<String, Value>, t: &LiteralType) -> Result<Literal, String> {
    let field = |name: &str| o.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    let blob = Blob { uri: field("uri"), format: field("format"), digest: field("digest") };
    Ok(Literal {
        value: Some(match kind(t) {
            Kind::File(_) => LV::File(blob),
            Kind::Directory => LV::Directory(blob),
            Kind::DataFrame(_) => LV::Dataframe(blob),
            _ => return Err(format!("expected {}, found a blob", display(t))),
        }),
    })
}

fn guess_format(uri: &str) -> String {
    match uri.rsplit_once('.') {
        Some((_, ext)) if ext.eq_ignore_ascii_case("parquet") => "parquet".into(),
        _ => "csv".into(),
    }
}

/// Reads a value typed on a command line (`--input seed=7`): scalars as written,
/// lists, maps and structs as JSON, files and directories as paths or URIs.
pub fn from_cli(text: &str, t: &LiteralType) -> Result<Literal, String> {
    let as_json = |text: &str| -> Result<Literal, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("expected {} as JSON: {e}", display(t)))?;
        from_json(&value, t)
    };
    match kind(t) {
        Kind::Optional(_) if text == "null" || text.is_empty() => Ok(none()),
        Kind::Optional(inner) => from_cli(text, inner),
        Kind::Simple(SimpleType::Integer) => text.trim().parse::<i64>().map(integer).map_err(|e| match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                format!("int {} is too large: ints range from {} to {}", text.trim(), i64::MIN, i64::MAX)
            }
            _ => format!("expected int, found \"{text}\""),
        }),
        Kind::Simple(SimpleType::Float) => match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(float(v)),
            _ => Err(format!("expected float, found \"{text}\"")),
        },
        Kind::Simple(SimpleType::Boolean) => match text.trim() {
            "true" | "True" | "1" | "yes" => Ok(boolean(true)),
            "false" | "False" | "0" | "no" => Ok(boolean(false)),
            _ => Err(format!("expected bool (true or false), found \"{text}\"")),
        },
        Kind::Simple(SimpleType::String) => Ok(string(text)),
        Kind::Simple(SimpleType::Datetime) => parse_datetime(text).map(datetime),
        Kind::Simple(SimpleType::Duration) => parse_duration(text).map(duration),
        Kind::File(_) | Kind::Directory | Kind::DataFrame(_) => from_json(&Value::String(text.to_string()), t),
        _ => as_json(text),
    }
}

fn int_out_of_range(n: &Number) -> String {
    format!("int {n} is too large: ints range from {} to {}", i64::MIN, i64::MAX)
}

/// RFC 3339 (`2026-11-23T03:00:00Z`) or a plain date (`2026-11-23`, midnight UTC).
pub fn parse_datetime(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(format!("expected a datetime such as 2026-11-23T03:00:00Z or 2026-11-23, found \"{text}\""))
}

/// A short description of a JSON value for error messages.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    let kind = match value {
        Value::Null => return "nothing (null)".into(),
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    };
    if text.len() > 60 {
        format!("{kind} {}…", &text[..text.floor_char_boundary(57)])
    } else {
        format!("{kind} {text}")
    }
}

/// Checks that a literal (e.g. a task's output) has type `t`; the message names what was found.
pub fn check_type(literal: &Literal, t: &LiteralType) -> Result<(), String> {
    let wrong = || Err(format!("expected {}, found {}", display(t), describe(&to_json(literal))));
    match (kind(t), &literal.value) {
        (Kind::Optional(_), Some(LV::None(_))) => Ok(()),
        (Kind::Optional(inner), _) => check_type(literal, inner),
        (Kind::Simple(SimpleType::Integer), Some(LV::Integer(_)))
        | (Kind::Simple(SimpleType::Float), Some(LV::Float(_)))
        | (Kind::Simple(SimpleType::String), Some(LV::String(_)))
        | (Kind::Simple(SimpleType::Boolean), Some(LV::Boolean(_)))
        | (Kind::Simple(SimpleType::Datetime), Some(LV::Datetime(_)))
        | (Kind::Simple(SimpleType::Duration), Some(LV::Duration(_)))
        | (Kind::File(_), Some(LV::File(_)))
        | (Kind::Directory, Some(LV::Directory(_)))
        | (Kind::DataFrame(_), Some(LV::Dataframe(_))) => Ok(()),
        (Kind::List(_), Some(LV::List(items))) if items.omitted > 0 => Err(format!(
            "expected {}, found a summary of a list ({} elements shown, {} omitted): read the whole value from \
             the node's outputs (GET /v1/executions/{{project}}/{{domain}}/{{name}}/nodes/{{node}}/outputs)",
            display(t),
            items.values.len(),
            items.omitted
        )),
        (Kind::List(element), Some(LV::List(items))) => {
            for (i, item) in items.values.iter().enumerate() {
                check_type(item, element).map_err(|e| format!("item {i}: {e}"))?;
            }
            Ok(())
        }
        (Kind::Map(value_type), Some(LV::Map(m))) => {
            for (k, v) in &m.values {
                check_type(v, value_type).map_err(|e| format!("key \"{k}\": {e}"))?;
            }
            Ok(())
        }
        (Kind::Struct(schema), Some(LV::Struct(fields))) => {
            for field in &schema.fields {
                let field_type = field.r#type.clone().unwrap_or_default();
                match fields.values.get(&field.name) {
                    Some(v) => check_type(v, &field_type).map_err(|e| format!("field \"{}\": {e}", field.name))?,
                    None if crate::types::is_optional(&field_type) => {}
                    None => return Err(format!("field \"{}\" is missing", field.name)),
                }
            }
            Ok(())
        }
        _ => wrong(),
    }
}

/// The most elements of a list an answer of the API shows (`LiteralList::omitted`).
pub const SUMMARY_ELEMENTS: usize = 1_000;

/// `literal` as an API answer shows it: every list longer than
/// [`SUMMARY_ELEMENTS`], at any depth, cut to its first ones and saying how
/// many it omits, so no answer grows with a map's width.
pub fn summarised(literal: &mut Literal) {
    match &mut literal.value {
        Some(LV::List(list)) => {
            if list.values.len() > SUMMARY_ELEMENTS {
                list.omitted += (list.values.len() - SUMMARY_ELEMENTS) as u64;
                list.values.truncate(SUMMARY_ELEMENTS);
            }
            list.values.iter_mut().for_each(summarised);
        }
        Some(LV::Map(map) | LV::Struct(map)) => map.values.values_mut().for_each(summarised),
        _ => {}
    }
}

/// How many list elements `literal` omits, at any depth (0: it is whole).
pub fn omitted(literal: &Literal) -> u64 {
    match &literal.value {
        Some(LV::List(list)) => list.omitted + list.values.iter().map(omitted).sum::<u64>(),
        Some(LV::Map(map) | LV::Struct(map)) => map.values.values().map(omitted).sum(),
        _ => 0,
    }
}

/// A value as plain JSON, for people and for the task contract's inputs document.
/// Files, directories and dataframes become their URI/path.
pub fn to_json(literal: &Literal) -> Value {
    match &literal.value {
        None | Some(LV::None(_)) => Value::Null,
        Some(LV::Integer(i)) => Value::from(*i),
        Some(LV::Float(f)) => Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
        Some(LV::String(s)) => Value::String(s.clone()),
        Some(LV::Boolean(b)) => Value::Bool(*b),
        Some(LV::Datetime(ts)) => Value::String(
            chrono::DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                .unwrap_or_default(),
        ),
        Some(LV::Duration(d)) => {
            Value::String(format_duration(std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)))
        }
        Some(LV::List(l)) => Value::Array(l.values.iter().map(to_json).collect()),
        Some(LV::Map(m)) | Some(LV::Struct(m)) => {
            Value::Object(m.values.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        Some(LV::File(b)) | Some(LV::Directory(b)) | Some(LV::Dataframe(b)) => Value::String(b.uri.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_summary_keeps_the_first_thousand_elements_at_every_depth_and_counts_the_rest() {
        let long = |n: i64| list((0..n).map(integer).collect());
        let mut value = list(vec![long(1_500), long(3)]);
        summarised(&mut value);
        let Some(LV::List(outer)) = &value.value else { panic!() };
        assert_eq!((outer.values.len(), outer.omitted), (2, 0), "a short list stays whole");
        let Some(LV::List(inner)) = &outer.values[0].value else { panic!() };
        assert_eq!((inner.values.len(), inner.omitted, &inner.values[999]), (1_000, 500, &integer(999)));
        assert_eq!(omitted(&value), 500);
        assert!(check_type(&value, &t("list<list<int>>")).unwrap_err().contains("1000 elements shown, 500 omitted"));
    }

    fn t(text: &str) -> LiteralType {
        crate::types::parse(&json!(text)).unwrap()
    }

    #[test]
    fn json_values_follow_the_declared_type() {
        assert_eq!(from_json(&json!(7), &t("int")), Ok(integer(7)));
        assert_eq!(from_json(&json!(7), &t("float")), Ok(float(7.0)));
        assert!(from_json(&json!(0.5), &t("int")).unwrap_err().contains("expected int, found float 0.5"));
        assert!(from_json(&json!([1, "x"]), &t("list<int>")).unwrap_err().contains("item 1: expected int"));
        assert_eq!(from_json(&json!(null), &t("int?")), Ok(none()));
        let frame = from_json(&json!("data/pima.csv"), &t("dataframe")).unwrap();
        assert_eq!(to_json(&frame), json!("data/pima.csv"));
    }

    #[test]
    fn cli_values_are_parsed_by_type() {
        assert_eq!(from_cli("7", &t("int")), Ok(integer(7)));
        assert!(from_cli("abc", &t("int")).unwrap_err().contains("expected int, found \"abc\""));
        assert_eq!(from_cli("[1,2]", &t("list<int>")), Ok(list(vec![integer(1), integer(2)])));
        assert_eq!(from_cli("hello world", &t("string")), Ok(string("hello world")));
        assert_eq!(to_json(&from_cli("2026-11-23", &t("datetime")).unwrap()), json!("2026-11-23T00:00:00Z"));
        assert_eq!(to_json(&from_cli("1h30m", &t("duration")).unwrap()), json!("1h30m"));
    }

    #[test]
    fn out_of_range_numbers_are_too_large_with_the_range() {
        for value in [json!(9223372036854775808u64), json!(1e20), json!(-1e19)] {
            let error = from_json(&value, &t("int")).unwrap_err();
            assert!(error.contains("too large") && error.contains("9223372036854775807"), "{value}: {error}");
        }
        let error = from_cli("9223372036854775808", &t("int")).unwrap_err();
        assert!(error.contains("too large") && error.contains("9223372036854775807"), "{error}");
        assert!(from_json(&json!(1e300), &t("duration")).is_err());
        assert!(from_json(&json!(u64::MAX), &t("duration")).unwrap_err().contains("too large"));
        assert!(from_cli("999999999999999d", &t("duration")).unwrap_err().contains("too large"));
    }

    #[test]
    fn check_type_names_the_mismatch() {
        assert!(check_type(&integer(1), &t("int")).is_ok());
        assert!(check_type(&string("x"), &t("float")).unwrap_err().contains("expected float, found string \"x\""));
        assert!(check_type(&list(vec![integer(1), string("a")]), &t("list<int>")).unwrap_err().contains("item 1"));
    }
}
