//! Branch conditions as written in specs:
//! `$score.accuracy >= 0.8 and ($inputs.force == true or $inputs.env != "prod")`.
//!
//! Grammar (lowest precedence first):
//! `or := and ("or" and)*`, `and := atom ("and" atom)*`,
//! `atom := "(" or ")" | operand OP operand`, `OP := == != > >= < <=`,
//! `operand := $reference | number | "string" | 'string' | true | false`.

use crate::proto::core::{ComparisonOperator, LogicalOperator};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `$inputs.x` or `$node.output`, without the `$`.
    Reference(String),
    Literal(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare { op: ComparisonOperator, left: Operand, right: Operand },
    Logical { op: LogicalOperator, left: Box<Condition>, right: Box<Condition> },
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Reference(String),
    Literal(Value),
    Compare(ComparisonOperator),
    And,
    Or,
    Open,
    Close,
}

/// A token as a condition writes it, for messages (`>`, `and`, `$fit.score`, `0.5`).
impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let operator = |op: &ComparisonOperator| match op {
            ComparisonOperator::Eq => "==",
            ComparisonOperator::Ne => "!=",
            ComparisonOperator::Gt => ">",
            ComparisonOperator::Gte => ">=",
            ComparisonOperator::Lt => "<",
            ComparisonOperator::Lte => "<=",
            ComparisonOperator::Unspecified => "?",
        };
        match self {
            Token::Reference(r) => write!(f, "\"${r}\""),
            Token::Literal(v) => write!(f, "{v}"),
            Token::Compare(op) => write!(f, "\"{}\"", operator(op)),
            Token::And => write!(f, "\"and\""),
            Token::Or => write!(f, "\"or\""),
            Token::Open => write!(f, "\"(\""),
            Token::Close => write!(f, "\")\""),
        }
    }
}

/// The most comparisons one condition may hold. Conditions are trees that every
/// reader walks recursively, so their size is bounded; a longer rule belongs in a task.
pub const MAX_COMPARISONS: usize = 100;
/// How deeply parentheses may nest in a condition.
pub const MAX_PARENTHESES_DEPTH: usize = 16;

pub fn parse(text: &str) -> Result<Condition, String> {
    let tokens = tokenize(text)?;
    let comparisons = tokens.iter().filter(|t| matches!(t, Token::Compare(_))).count();
    if comparisons > MAX_COMPARISONS {
        return Err(format!(
            "the condition has {comparisons} comparisons; the limit is {MAX_COMPARISONS} (compute the decision in a task and branch on its output)"
        ));
    }
    let mut depth = 0usize;
    for token in &tokens {
        match token {
            Token::Open => depth += 1,
            Token::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_PARENTHESES_DEPTH {
            return Err(format!("parentheses nest more than {MAX_PARENTHESES_DEPTH} deep, the limit"));
        }
    }
    let mut parser = Parser { tokens, pos: 0 };
    let condition = parser.or()?;
    if parser.pos < parser.tokens.len() {
        return Err(format!("unexpected {} after a complete condition", parser.tokens[parser.pos]));
    }
    Ok(condition)
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    while i < chars.len() {
        let c = chars[i];
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match c {
            ' ' | '\t' | '\n' => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '$' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && word_char(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Reference(chars[start..i].iter().collect()));
            }
            '"' | '\'' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != c {
                    i += 1;
                }
                if i == chars.len() {
                    return Err(format!("unterminated string starting at character {start}"));
                }
                tokens.push(Token::Literal(Value::String(chars[start..i].iter().collect())));
                i += 1;
            }
            '=' | '!' | '<' | '>' => {
                let (op, len) = match two.as_str() {
                    "==" => (ComparisonOperator::Eq, 2),
                    "!=" => (ComparisonOperator::Ne, 2),
                    ">=" => (ComparisonOperator::Gte, 2),
                    "<=" => (ComparisonOperator::Lte, 2),
                    _ if c == '>' => (ComparisonOperator::Gt, 1),
                    _ if c == '<' => (ComparisonOperator::Lt, 1),
                    _ => return Err(format!("unknown operator \"{two}\"; use ==, !=, >, >=, < or <=")),
                };
                tokens.push(Token::Compare(op));
                i += len;
            }
            _ if word_char(c) => {
                let start = i;
                while i < chars.len() && word_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                tokens.push(match word.as_str() {
                    "and" | "AND" => Token::And,
                    "or" | "OR" => Token::Or,
                    "true" => Token::Literal(Value::Bool(true)),
                    "false" => Token::Literal(Value::Bool(false)),
                    _ => match serde_json::from_str::<serde_json::Number>(&word) {
                        Ok(n) => Token::Literal(Value::Number(n)),
                        Err(_) => {
                            return Err(format!(
                                "\"{word}\" is neither a number nor a reference; write references as $node.output or $inputs.name and quote strings"
                            ));
                        }
                    },
                });
            }
            _ => return Err(format!("unexpected character '{c}'")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            let right = self.and()?;
            left = Condition::Logical { op: LogicalOperator::Or, left: Box::new(left), right: Box::new(right) };
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.atom()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            let right = self.atom()?;
            left = Condition::Logical { op: LogicalOperator::And, left: Box::new(left), right: Box::new(right) };
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Condition, String> {
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let inner = self.or()?;
            if self.peek() != Some(&Token::Close) {
                return Err("missing ')'".into());
            }
            self.pos += 1;
            return Ok(inner);
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Token::Compare(op)) => *op,
            _ => return Err("expected a comparison such as $node.output >= 0.5".into()),
        };
        self.pos += 1;
        let right = self.operand()?;
        Ok(Condition::Compare { op, left, right })
    }

    fn operand(&mut self) -> Result<Operand, String> {
        let token = self.peek().cloned();
        self.pos += 1;
        match token {
            Some(Token::Reference(r)) => Ok(Operand::Reference(r)),
            Some(Token::Literal(v)) => Ok(Operand::Literal(v)),
            Some(other) => Err(format!("expected a value or $reference, found {other}")),
            None => Err("the condition ends too early".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_comparisons_with_precedence() {
        let c = parse("$score.accuracy >= 0.8 and $inputs.env == 'prod' or $inputs.force == true").unwrap();
        let Condition::Logical { op: LogicalOperator::Or, left, .. } = c else { panic!("or at the top: {c:?}") };
        assert!(matches!(*left, Condition::Logical { op: LogicalOperator::And, .. }));
        assert_eq!(
            parse("$a.b < 3").unwrap(),
            Condition::Compare {
                op: ComparisonOperator::Lt,
                left: Operand::Reference("a.b".into()),
                right: Operand::Literal(json!(3))
            }
        );
    }

    #[test]
    fn reports_malformed_conditions() {
        assert!(parse("$a.b >= ").unwrap_err().contains("ends too early"));
        assert!(parse("$a.b => 1").unwrap_err().contains("unknown operator"));
        // Tokens are named as written, not as the parser's types.
        assert_eq!(parse("$a.b > > 1").unwrap_err(), "expected a value or $reference, found \">\"");
        assert_eq!(parse("$a.b > 1 $c.d").unwrap_err(), "unexpected \"$c.d\" after a complete condition");
        assert!(parse("accuracy > 1").unwrap_err().contains("neither a number nor a reference"));
        assert!(parse("($a.b > 1").unwrap_err().contains("missing ')'"));
        assert!(parse("$a.b").unwrap_err().contains("expected a comparison"));
    }

    #[test]
    fn huge_conditions_are_refused_with_the_limit() {
        let flat = vec!["$a.b > 1"; 2000].join(" and ");
        assert!(parse(&flat).unwrap_err().contains("2000 comparisons; the limit is 100"));
        let nested = format!("{}$a.b > 1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&nested).unwrap_err().contains("nest more than 16 deep"));
        assert!(parse(&vec!["$a.b > 1"; 100].join(" or ")).is_ok());
    }
}
