//! Evaluating branch conditions on run-time values.

use super::resolve::{ResolveError, Values};
use crate::proto::core::{
    BooleanExpression, ComparisonOperator, Literal, LogicalOperator, Operand, boolean_expression, literal::Value as LV,
    operand,
};
use std::cmp::Ordering;

pub fn evaluate(expression: &BooleanExpression, values: &impl Values) -> Result<bool, ResolveError> {
    match &expression.expr {
        Some(boolean_expression::Expr::Conjunction(c)) => {
            let left = c.left.as_deref().map(|l| evaluate(l, values)).transpose()?.unwrap_or(false);
            // Short-circuit like people expect: the right side may refer to a skipped value.
            match LogicalOperator::try_from(c.operator) {
                Ok(LogicalOperator::And) if !left => Ok(false),
                Ok(LogicalOperator::Or) if left => Ok(true),
                _ => c.right.as_deref().map(|r| evaluate(r, values)).transpose().map(|r| r.unwrap_or(false)),
            }
        }
        Some(boolean_expression::Expr::Comparison(c)) => {
            let left = operand_value(c.left.as_ref(), values)?;
            let right = operand_value(c.right.as_ref(), values)?;
            let ordering = compare(&left, &right);
            let op = ComparisonOperator::try_from(c.operator).unwrap_or(ComparisonOperator::Unspecified);
            Ok(match (op, ordering) {
                (ComparisonOperator::Eq, o) => o == Some(Ordering::Equal),
                (ComparisonOperator::Ne, o) => o != Some(Ordering::Equal),
                (ComparisonOperator::Gt, Some(o)) => o == Ordering::Greater,
                (ComparisonOperator::Gte, Some(o)) => o != Ordering::Less,
                (ComparisonOperator::Lt, Some(o)) => o == Ordering::Less,
                (ComparisonOperator::Lte, Some(o)) => o != Ordering::Greater,
                // Absent values and NaN satisfy no ordering.
                _ => false,
            })
        }
        None => Ok(false),
    }
}

fn operand_value(operand: Option<&Operand>, values: &impl Values) -> Result<Literal, ResolveError> {
    match operand.and_then(|o| o.value.as_ref()) {
        Some(operand::Value::Literal(l)) => Ok(l.clone()),
        Some(operand::Value::WorkflowInput(name)) => super::resolve::workflow_input(name, values),
        Some(operand::Value::Promise(p)) => super::resolve::node_output(p, values),
        None => Err(ResolveError::Empty("condition operand".into())),
    }
}

/// Orders two scalars; `None` when they cannot be ordered (absent, NaN, different kinds).
pub fn compare(a: &Literal, b: &Literal) -> Option<Ordering> {
    match (&a.value, &b.value) {
        (Some(LV::Integer(x)), Some(LV::Integer(y))) => Some(x.cmp(y)),
        (Some(LV::Integer(x)), Some(LV::Float(y))) => (*x as f64).partial_cmp(y),
        (Some(LV::Float(x)), Some(LV::Integer(y))) => x.partial_cmp(&(*y as f64)),
        (Some(LV::Float(x)), Some(LV::Float(y))) => x.partial_cmp(y),
        (Some(LV::String(x)), Some(LV::String(y))) => Some(x.cmp(y)),
        (Some(LV::Boolean(x)), Some(LV::Boolean(y))) => Some(x.cmp(y)),
        (Some(LV::Datetime(x)), Some(LV::Datetime(y))) => Some((x.seconds, x.nanos).cmp(&(y.seconds, y.nanos))),
        (Some(LV::Duration(x)), Some(LV::Duration(y))) => Some((x.seconds, x.nanos).cmp(&(y.seconds, y.nanos))),
        (Some(LV::None(_)), Some(LV::None(_))) => Some(Ordering::Equal),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{Options, compile_text};
    use crate::execution::resolve::ValueMap;
    use crate::literal;
    use crate::proto::core::node;
    use crate::spec::Format;

    fn condition(text: &str) -> BooleanExpression {
        let spec = format!(
            r#"
tasks:
  t: {{image: x, command: [t], outputs: {{score: float, label: string}}}}
workflows:
  w:
    inputs: {{threshold: int, force: bool}}
    nodes:
      t: {{task: t}}
      b:
        branch:
          cases:
            - if: {text}
              then: {{task: t}}
"#
        );
        let compiled = compile_text(&spec, Format::Yaml, &Options::default()).unwrap();
        let node = compiled.workflows[0].template.as_ref().unwrap().nodes.iter().find(|n| n.id == "b").unwrap().clone();
        let Some(node::Target::Branch(b)) = node.target else { panic!("a branch") };
        b.cases[0].condition.clone().unwrap()
    }

    fn values() -> ValueMap {
        let mut v = ValueMap::default();
        v.inputs.insert("threshold".into(), literal::integer(3));
        v.inputs.insert("force".into(), literal::boolean(false));
        v.outputs.insert(
            "t".into(),
            [("score".to_string(), literal::float(3.5)), ("label".to_string(), literal::string("cat"))].into(),
        );
        v
    }

    #[test]
    fn comparisons_mix_ints_and_floats() {
        assert!(evaluate(&condition("$t.score > $inputs.threshold"), &values()).unwrap());
        assert!(!evaluate(&condition("$t.score <= 3"), &values()).unwrap());
        assert!(evaluate(&condition("$t.label == 'cat'"), &values()).unwrap());
        assert!(evaluate(&condition("$t.label != \"dog\""), &values()).unwrap());
    }

    #[test]
    fn logical_operators_short_circuit() {
        assert!(evaluate(&condition("$inputs.force == true or $t.score >= 3.5"), &values()).unwrap());
        assert!(!evaluate(&condition("$inputs.force == true and $t.score >= 3.5"), &values()).unwrap());
        assert!(
            evaluate(&condition("($inputs.force == false or $t.score < 0) and $t.label == 'cat'"), &values()).unwrap()
        );
    }
}
