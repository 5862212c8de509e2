//! Map nodes: one task run per element of the mapped lists, and the gathering
//! of the item outputs into lists under a minimum success ratio.

use crate::literal;
use crate::proto::core::{Literal, literal::Value as LV};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    #[error("mapped input \"{0}\" is not a list")]
    NotAList(String),
    #[error("mapped inputs have different lengths: {0}")]
    LengthMismatch(String),
    #[error("{succeeded} of {total} items succeeded, below the required ratio {min_success_ratio}")]
    TooManyFailures { succeeded: usize, total: usize, min_success_ratio: f64 },
}

/// The inputs of each item: element i of every mapped list, the other inputs whole.
pub fn split_items(
    inputs: &BTreeMap<String, Literal>,
    mapped: &[String],
) -> Result<Vec<BTreeMap<String, Literal>>, MapError> {
    let mut lists = Vec::with_capacity(mapped.len());
    for name in mapped {
        match inputs.get(name).and_then(|l| l.value.as_ref()) {
            Some(LV::List(list)) => lists.push((name, &list.values)),
            _ => return Err(MapError::NotAList(name.clone())),
        }
    }
    let len = lists.first().map_or(0, |(_, l)| l.len());
    if lists.iter().any(|(_, l)| l.len() != len) {
        let lengths: Vec<String> = lists.iter().map(|(n, l)| format!("{n} has {}", l.len())).collect();
        return Err(MapError::LengthMismatch(lengths.join(", ")));
    }
    Ok((0..len)
        .map(|i| {
            let mut item: BTreeMap<String, Literal> =
                inputs.iter().filter(|(k, _)| !mapped.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
            for (name, list) in &lists {
                item.insert((*name).clone(), list[i].clone());
            }
            item
        })
        .collect())
}

/// Gathers item outputs (`None` for a failed item) into one list per output.
/// Failed items become `none` when the ratio allows failures.
pub fn gather(
    items: &[Option<BTreeMap<String, Literal>>],
    outputs: &[String],
    min_success_ratio: f64,
) -> Result<BTreeMap<String, Literal>, MapError> {
    let total = items.len();
    let succeeded = items.iter().filter(|i| i.is_some()).count();
    // An empty map succeeds: there was nothing to fail.
    if total > 0 && (succeeded as f64) < min_success_ratio * total as f64 - 1e-9 {
        return Err(MapError::TooManyFailures { succeeded, total, min_success_ratio });
    }
    Ok(outputs
        .iter()
        .map(|name| {
            let values = items
                .iter()
                .map(|item| item.as_ref().and_then(|o| o.get(name)).cloned().unwrap_or_else(literal::none))
                .collect();
            (name.clone(), literal::list(values))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::literal::{integer, list, none};

    #[test]
    fn splits_mapped_lists_and_passes_the_rest_whole() {
        let inputs: BTreeMap<String, Literal> =
            [("x".to_string(), list(vec![integer(1), integer(2)])), ("scale".to_string(), integer(10))].into();
        let items = split_items(&inputs, &["x".to_string()]).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1]["x"], integer(2));
        assert_eq!(items[1]["scale"], integer(10));
    }

    #[test]
    fn mismatched_lengths_are_refused() {
        let inputs: BTreeMap<String, Literal> =
            [("a".to_string(), list(vec![integer(1)])), ("b".to_string(), list(vec![]))].into();
        assert!(matches!(split_items(&inputs, &["a".to_string(), "b".to_string()]), Err(MapError::LengthMismatch(_))));
    }

    #[test]
    fn gathers_under_the_success_ratio() {
        let ok = |v| Some([("y".to_string(), integer(v))].into());
        let items = vec![ok(1), None, ok(3), ok(4)];
        let out = gather(&items, &["y".to_string()], 0.75).unwrap();
        assert_eq!(out["y"], list(vec![integer(1), none(), integer(3), integer(4)]));
        assert!(matches!(
            gather(&items, &["y".to_string()], 1.0),
            Err(MapError::TooManyFailures { succeeded: 3, total: 4, .. })
        ));
        assert!(gather(&[], &["y".to_string()], 1.0).unwrap()["y"] == list(vec![]));
    }
}
