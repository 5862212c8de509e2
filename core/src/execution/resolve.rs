//! Turning a node's bindings into concrete input values.

use crate::literal;
use crate::proto::core::{
    Binding, BindingData, Literal, LiteralList, LiteralMap, OutputReference, binding_data, literal::Value as LV,
};
use std::collections::BTreeMap;

/// The values a binding can refer to: the workflow's inputs and the outputs of
/// nodes that have finished.
pub trait Values {
    fn workflow_input(&self, name: &str) -> Option<&Literal>;
    fn node_output(&self, node_id: &str, var: &str) -> Option<&Literal>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("workflow input \"{0}\" has no value")]
    MissingInput(String),
    #[error("output \"{var}\" of node \"{node_id}\" is not available (did the node run?)")]
    MissingOutput { node_id: String, var: String },
    #[error("binding of \"{0}\" is empty")]
    Empty(String),
}

pub fn resolve(binding: &BindingData, values: &impl Values) -> Result<Literal, ResolveError> {
    match &binding.value {
        Some(binding_data::Value::Literal(l)) => Ok(l.clone()),
        Some(binding_data::Value::WorkflowInput(name)) => workflow_input(name, values),
        Some(binding_data::Value::Promise(p)) => node_output(p, values),
        Some(binding_data::Value::Collection(c)) => Ok(Literal {
            value: Some(LV::List(LiteralList {
                values: c.bindings.iter().map(|b| resolve(b, values)).collect::<Result<_, _>>()?,
                omitted: 0,
            })),
        }),
        Some(binding_data::Value::Map(m)) => Ok(Literal {
            value: Some(LV::Map(LiteralMap {
                values: m
                    .bindings
                    .iter()
                    .map(|(k, b)| resolve(b, values).map(|l| (k.clone(), l)))
                    .collect::<Result<_, _>>()?,
            })),
        }),
        None => Err(ResolveError::Empty(String::new())),
    }
}

/// The value of a workflow input, or why there is none.
pub fn workflow_input(name: &str, values: &impl Values) -> Result<Literal, ResolveError> {
    values.workflow_input(name).cloned().ok_or_else(|| ResolveError::MissingInput(name.to_string()))
}

/// The value of an upstream node's output, or why there is none.
pub fn node_output(reference: &OutputReference, values: &impl Values) -> Result<Literal, ResolveError> {
    values
        .node_output(&reference.node_id, &reference.var)
        .cloned()
        .ok_or_else(|| ResolveError::MissingOutput { node_id: reference.node_id.clone(), var: reference.var.clone() })
}

/// The inputs of a node: its bindings, then the target's defaults for inputs
/// left unbound, then `none` for unbound optional inputs.
pub fn resolve_inputs(
    bindings: &[Binding],
    defaults: &BTreeMap<String, Literal>,
    optional: impl IntoIterator<Item = String>,
    values: &impl Values,
) -> Result<BTreeMap<String, Literal>, ResolveError> {
    let mut inputs = BTreeMap::new();
    for b in bindings {
        let data = b.binding.as_ref().ok_or_else(|| ResolveError::Empty(b.var.clone()))?;
        inputs.insert(b.var.clone(), resolve(data, values)?);
    }
    for (name, value) in defaults {
        inputs.entry(name.clone()).or_insert_with(|| value.clone());
    }
    for name in optional {
        inputs.entry(name).or_insert_with(literal::none);
    }
    Ok(inputs)
}

/// A simple [`Values`] over maps, for executors and tests.
#[derive(Debug, Default, Clone)]
pub struct ValueMap {
    pub inputs: BTreeMap<String, Literal>,
    pub outputs: std::collections::HashMap<String, BTreeMap<String, Literal>>,
}

impl Values for ValueMap {
    fn workflow_input(&self, name: &str) -> Option<&Literal> {
        self.inputs.get(name)
    }
    fn node_output(&self, node_id: &str, var: &str) -> Option<&Literal> {
        self.outputs.get(node_id)?.get(var)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::core::BindingCollection;

    #[test]
    fn resolves_references_collections_defaults_and_optionals() {
        let mut values = ValueMap::default();
        values.inputs.insert("seed".into(), literal::integer(7));
        values.outputs.insert("a".into(), [("y".to_string(), literal::integer(1))].into());
        values.outputs.insert("b".into(), [("y".to_string(), literal::integer(2))].into());
        let promise = |node: &str| BindingData {
            value: Some(binding_data::Value::Promise(OutputReference { node_id: node.into(), var: "y".into() })),
        };
        let bindings = vec![
            Binding {
                var: "seed".into(),
                binding: Some(BindingData { value: Some(binding_data::Value::WorkflowInput("seed".into())) }),
            },
            Binding {
                var: "all".into(),
                binding: Some(BindingData {
                    value: Some(binding_data::Value::Collection(BindingCollection {
                        bindings: vec![promise("a"), promise("b")],
                    })),
                }),
            },
        ];
        let defaults = [("rate".to_string(), literal::float(0.1))].into();
        let inputs = resolve_inputs(&bindings, &defaults, ["note".to_string()], &values).unwrap();
        assert_eq!(inputs["seed"], literal::integer(7));
        assert_eq!(inputs["all"], literal::list(vec![literal::integer(1), literal::integer(2)]));
        assert_eq!(inputs["rate"], literal::float(0.1));
        assert_eq!(inputs["note"], literal::none());

        let missing = vec![Binding { var: "x".into(), binding: Some(promise("c")) }];
        assert_eq!(
            resolve_inputs(&missing, &BTreeMap::new(), [], &values),
            Err(ResolveError::MissingOutput { node_id: "c".into(), var: "y".into() })
        );
    }
}
