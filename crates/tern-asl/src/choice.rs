//! Choice rules: comparisons of one variable against a literal or another path, type tests, and their
//! `And`/`Or`/`Not` combinations.

use std::cmp::Ordering;

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::error::Failure;
use crate::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

impl Relation {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Relation::Equals => ordering == Ordering::Equal,
            Relation::LessThan => ordering == Ordering::Less,
            Relation::GreaterThan => ordering == Ordering::Greater,
            Relation::LessThanEquals => ordering != Ordering::Greater,
            Relation::GreaterThanEquals => ordering != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeTest {
    IsPresent,
    IsNull,
    IsString,
    IsNumeric,
    IsBoolean,
    IsTimestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Compare {
        kind: Kind,
        relation: Relation,
        operand: Operand,
    },
    Matches(String),
    Type {
        test: TypeTest,
        expected: bool,
    },
}

/// One condition of a Choice state.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Test { variable: Path, test: Test },
}

/// A top-level rule: a condition and the state it leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceRule {
    pub condition: Condition,
    pub next: String,
}

const COMPARISONS: [(&str, Kind, Relation); 16] = [
    ("StringEquals", Kind::String, Relation::Equals),
    ("StringLessThan", Kind::String, Relation::LessThan),
    ("StringGreaterThan", Kind::String, Relation::GreaterThan),
    (
        "StringLessThanEquals",
        Kind::String,
        Relation::LessThanEquals,
    ),
    (
        "StringGreaterThanEquals",
        Kind::String,
        Relation::GreaterThanEquals,
    ),
    ("NumericEquals", Kind::Numeric, Relation::Equals),
    ("NumericLessThan", Kind::Numeric, Relation::LessThan),
    ("NumericGreaterThan", Kind::Numeric, Relation::GreaterThan),
    (
        "NumericLessThanEquals",
        Kind::Numeric,
        Relation::LessThanEquals,
    ),
    (
        "NumericGreaterThanEquals",
        Kind::Numeric,
        Relation::GreaterThanEquals,
    ),
    ("BooleanEquals", Kind::Boolean, Relation::Equals),
    ("TimestampEquals", Kind::Timestamp, Relation::Equals),
    ("TimestampLessThan", Kind::Timestamp, Relation::LessThan),
    (
        "TimestampGreaterThan",
        Kind::Timestamp,
        Relation::GreaterThan,
    ),
    (
        "TimestampLessThanEquals",
        Kind::Timestamp,
        Relation::LessThanEquals,
    ),
    (
        "TimestampGreaterThanEquals",
        Kind::Timestamp,
        Relation::GreaterThanEquals,
    ),
];

const TYPE_TESTS: [(&str, TypeTest); 6] = [
    ("IsPresent", TypeTest::IsPresent),
    ("IsNull", TypeTest::IsNull),
    ("IsString", TypeTest::IsString),
    ("IsNumeric", TypeTest::IsNumeric),
    ("IsBoolean", TypeTest::IsBoolean),
    ("IsTimestamp", TypeTest::IsTimestamp),
];

impl ChoiceRule {
    /// Parses a top-level rule, which must name its `Next` state.
    pub fn parse(value: &Value) -> Result<ChoiceRule, String> {
        let map = value.as_object().ok_or("a choice rule must be an object")?;
        let next = match map.get("Next") {
            Some(Value::String(next)) => next.clone(),
            Some(_) => return Err("`Next` must be a string".into()),
            None => return Err("a top-level choice rule needs `Next`".into()),
        };
        let condition = Condition::parse_fields(map)?;
        Ok(ChoiceRule { condition, next })
    }
}

impl Condition {
    fn parse(value: &Value) -> Result<Condition, String> {
        let map = value
            .as_object()
            .ok_or("a nested choice rule must be an object")?;
        if map.contains_key("Next") {
            return Err("only top-level choice rules may have `Next`".into());
        }
        Condition::parse_fields(map)
    }

    fn parse_fields(map: &Map<String, Value>) -> Result<Condition, String> {
        let operators: Vec<&String> = map
            .keys()
            .filter(|key| !matches!(key.as_str(), "Next" | "Comment" | "Variable"))
            .collect();
        let [operator] = operators.as_slice() else {
            return Err(format!(
                "a choice rule needs exactly one operator, found {}",
                if operators.is_empty() {
                    "none".to_string()
                } else {
                    format!("{operators:?}")
                }
            ));
        };
        let operand = &map[operator.as_str()];
        let combined = match operator.as_str() {
            "And" | "Or" => {
                let rules = operand
                    .as_array()
                    .filter(|rules| !rules.is_empty())
                    .ok_or(format!("`{operator}` needs a non-empty array"))?;
                let conditions = rules
                    .iter()
                    .map(Condition::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                Some(if operator.as_str() == "And" {
                    Condition::And(conditions)
                } else {
                    Condition::Or(conditions)
                })
            }
            "Not" => Some(Condition::Not(Box::new(Condition::parse(operand)?))),
            _ => None,
        };
        if let Some(combined) = combined {
            if map.contains_key("Variable") {
                return Err(format!("`{operator}` does not take a `Variable`"));
            }
            return Ok(combined);
        }
        let variable = match map.get("Variable") {
            Some(Value::String(text)) => Path::parse(text)?,
            Some(_) => return Err("`Variable` must be a path string".into()),
            None => return Err(format!("`{operator}` needs a `Variable`")),
        };
        let test = parse_test(operator, operand)?;
        Ok(Condition::Test { variable, test })
    }

    /// Whether the condition holds for `input`. A variable that selects nothing is an error for every test
    /// but `IsPresent`, as in Step Functions.
    pub fn holds(&self, input: &Value, context: &Value) -> Result<bool, Failure> {
        match self {
            Condition::And(all) => {
                for condition in all {
                    if !condition.holds(input, context)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Condition::Or(any) => {
                for condition in any {
                    if condition.holds(input, context)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Condition::Not(inner) => Ok(!inner.holds(input, context)?),
            Condition::Test { variable, test } => {
                let value = variable.select(input, context);
                if let Test::Type {
                    test: TypeTest::IsPresent,
                    expected,
                } = test
                {
                    return Ok(value.is_some() == *expected);
                }
                let value = value.ok_or_else(|| {
                    Failure::runtime(format!(
                        "Invalid path `{variable}`: the choice rule's variable selects nothing"
                    ))
                })?;
                test.holds(value, input, context)
            }
        }
    }
}

fn parse_test(operator: &str, operand: &Value) -> Result<Test, String> {
    if operator == "StringMatches" {
        let pattern = operand
            .as_str()
            .ok_or("`StringMatches` needs a string pattern")?;
        return Ok(Test::Matches(pattern.to_string()));
    }
    if let Some((_, test)) = TYPE_TESTS.iter().find(|(name, _)| *name == operator) {
        let expected = operand
            .as_bool()
            .ok_or(format!("`{operator}` needs true or false"))?;
        return Ok(Test::Type {
            test: *test,
            expected,
        });
    }
    let (name, by_path) = match operator.strip_suffix("Path") {
        Some(name) => (name, true),
        None => (operator, false),
    };
    let (_, kind, relation) = COMPARISONS
        .iter()
        .find(|(candidate, _, _)| *candidate == name)
        .ok_or(format!("`{operator}` is not a choice operator"))?;
    let operand = if by_path {
        Operand::Path(Path::parse(
            operand
                .as_str()
                .ok_or(format!("`{operator}` needs a path string"))?,
        )?)
    } else {
        check_literal(*kind, operator, operand)?;
        Operand::Literal(operand.clone())
    };
    Ok(Test::Compare {
        kind: *kind,
        relation: *relation,
        operand,
    })
}

fn check_literal(kind: Kind, operator: &str, operand: &Value) -> Result<(), String> {
    let fits = match kind {
        Kind::String => operand.is_string(),
        Kind::Numeric => operand.is_number(),
        Kind::Boolean => operand.is_boolean(),
        Kind::Timestamp => operand
            .as_str()
            .is_some_and(|text| text.parse::<Timestamp>().is_ok()),
    };
    if fits {
        Ok(())
    } else {
        Err(format!("`{operator}` cannot compare with {operand}"))
    }
}

impl Test {
    fn holds(&self, value: &Value, input: &Value, context: &Value) -> Result<bool, Failure> {
        Ok(match self {
            Test::Type { test, expected } => type_matches(*test, value) == *expected,
            Test::Matches(pattern) => value
                .as_str()
                .is_some_and(|text| wildcard_matches(pattern, text)),
            Test::Compare {
                kind,
                relation,
                operand,
            } => {
                let other = match operand {
                    Operand::Literal(literal) => literal,
                    Operand::Path(path) => path.select(input, context).ok_or_else(|| {
                        Failure::runtime(format!(
                            "Invalid path `{path}`: the choice rule's operand selects nothing"
                        ))
                    })?,
                };
                compare(*kind, value, other).is_some_and(|ordering| relation.holds(ordering))
            }
        })
    }
}

fn type_matches(test: TypeTest, value: &Value) -> bool {
    match test {
        TypeTest::IsPresent => true,
        TypeTest::IsNull => value.is_null(),
        TypeTest::IsString => value.is_string(),
        TypeTest::IsNumeric => value.is_number(),
        TypeTest::IsBoolean => value.is_boolean(),
        TypeTest::IsTimestamp => as_timestamp(value).is_some(),
    }
}

/// Compares two values of `kind`; values of another type compare as "no relation", so every test is false.
fn compare(kind: Kind, left: &Value, right: &Value) -> Option<Ordering> {
    match kind {
        Kind::String => Some(left.as_str()?.cmp(right.as_str()?)),
        Kind::Numeric => left.as_f64()?.partial_cmp(&right.as_f64()?),
        Kind::Boolean => Some(left.as_bool()?.cmp(&right.as_bool()?)),
        Kind::Timestamp => Some(as_timestamp(left)?.cmp(&as_timestamp(right)?)),
    }
}

fn as_timestamp(value: &Value) -> Option<Timestamp> {
    value.as_str()?.parse().ok()
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` stand for themselves.
fn wildcard_matches(pattern: &str, text: &str) -> bool {
    #[derive(PartialEq)]
    enum Token {
        Any,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => tokens.push(Token::Char(chars.next().unwrap_or('\\'))),
            '*' => tokens.push(Token::Any),
            other => tokens.push(Token::Char(other)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // matched[j]: the tokens so far match text[..j].
    let mut matched = vec![false; text.len() + 1];
    matched[0] = true;
    for token in &tokens {
        let mut next = vec![false; text.len() + 1];
        match token {
            Token::Any => {
                let mut reachable = false;
                for j in 0..=text.len() {
                    reachable |= matched[j];
                    next[j] = reachable;
                }
            }
            Token::Char(expected) => {
                for j in 1..=text.len() {
                    next[j] = matched[j - 1] && text[j - 1] == *expected;
                }
            }
        }
        matched = next;
    }
    matched[text.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn holds(rule: Value, input: Value) -> Result<bool, Failure> {
        let mut rule = rule;
        rule["Next"] = json!("X");
        ChoiceRule::parse(&rule)
            .unwrap()
            .condition
            .holds(&input, &json!({}))
    }

    #[test]
    fn string_comparisons() {
        let input = json!({"s": "banana"});
        assert!(
            holds(
                json!({"Variable": "$.s", "StringEquals": "banana"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.s", "StringLessThan": "cherry"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.s", "StringGreaterThan": "apple"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.s", "StringLessThanEquals": "banana"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.s", "StringGreaterThanEquals": "banana"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            !holds(
                json!({"Variable": "$.s", "StringGreaterThan": "banana"}),
                input
            )
            .unwrap()
        );
    }

    #[test]
    fn numeric_comparisons_treat_integers_and_floats_alike() {
        let input = json!({"n": 3, "m": 3.0, "low": 1});
        assert!(
            holds(
                json!({"Variable": "$.n", "NumericEquals": 3.0}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.n", "NumericEqualsPath": "$.m"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.n", "NumericGreaterThanPath": "$.low"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.n", "NumericLessThan": 3.5}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.n", "NumericLessThanEquals": 3}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.n", "NumericGreaterThanEquals": 3}),
                input.clone()
            )
            .unwrap()
        );
        assert!(!holds(json!({"Variable": "$.n", "NumericGreaterThan": 3}), input).unwrap());
    }

    #[test]
    fn a_value_of_another_type_never_matches() {
        let input = json!({"n": "3"});
        assert!(
            !holds(
                json!({"Variable": "$.n", "NumericEquals": 3}),
                input.clone()
            )
            .unwrap()
        );
        assert!(!holds(json!({"Variable": "$.n", "BooleanEquals": true}), input).unwrap());
    }

    #[test]
    fn boolean_and_timestamp_comparisons() {
        let input =
            json!({"b": true, "t": "2026-01-02T03:04:05Z", "u": "2026-01-02T03:04:05+00:00"});
        assert!(
            holds(
                json!({"Variable": "$.b", "BooleanEquals": true}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.b", "BooleanEqualsPath": "$.b"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.t", "TimestampEqualsPath": "$.u"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.t", "TimestampLessThan": "2026-01-03T00:00:00Z"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.t", "TimestampGreaterThan": "2025-12-31T00:00:00Z"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.t", "TimestampLessThanEquals": "2026-01-02T03:04:05Z"}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            holds(
                json!({"Variable": "$.t", "TimestampGreaterThanEqualsPath": "$.u"}),
                input
            )
            .unwrap()
        );
    }

    #[test]
    fn type_tests() {
        let input = json!({"s": "x", "n": 1.5, "b": false, "z": null, "t": "2026-05-01T00:00:00Z"});
        assert!(holds(json!({"Variable": "$.s", "IsPresent": true}), input.clone()).unwrap());
        assert!(
            holds(
                json!({"Variable": "$.missing", "IsPresent": false}),
                input.clone()
            )
            .unwrap()
        );
        assert!(holds(json!({"Variable": "$.z", "IsNull": true}), input.clone()).unwrap());
        assert!(holds(json!({"Variable": "$.s", "IsString": true}), input.clone()).unwrap());
        assert!(holds(json!({"Variable": "$.n", "IsNumeric": true}), input.clone()).unwrap());
        assert!(holds(json!({"Variable": "$.b", "IsBoolean": true}), input.clone()).unwrap());
        assert!(
            holds(
                json!({"Variable": "$.t", "IsTimestamp": true}),
                input.clone()
            )
            .unwrap()
        );
        assert!(holds(json!({"Variable": "$.s", "IsTimestamp": false}), input).unwrap());
    }

    #[test]
    fn string_matches_wildcards_and_escapes() {
        assert!(wildcard_matches("log-*.txt", "log-2026-01.txt"));
        assert!(wildcard_matches("*", ""));
        assert!(wildcard_matches("a*b*c", "aXXbYc"));
        assert!(!wildcard_matches("a*b", "aXc"));
        assert!(wildcard_matches(r"star\*", "star*"));
        assert!(!wildcard_matches(r"star\*", "starry"));
        assert!(
            holds(
                json!({"Variable": "$.s", "StringMatches": "*@example.com"}),
                json!({"s": "a@example.com"})
            )
            .unwrap()
        );
    }

    #[test]
    fn and_or_not_combine() {
        let input = json!({"n": 5, "s": "vip"});
        let rule = json!({"And": [
            {"Variable": "$.n", "NumericGreaterThan": 1},
            {"Or": [{"Variable": "$.s", "StringEquals": "vip"}, {"Variable": "$.s", "StringEquals": "gold"}]},
            {"Not": {"Variable": "$.n", "NumericEquals": 7}}
        ]});
        assert!(holds(rule.clone(), input).unwrap());
        assert!(!holds(rule, json!({"n": 7, "s": "vip"})).unwrap());
    }

    #[test]
    fn a_missing_variable_is_a_runtime_error() {
        let failure = holds(
            json!({"Variable": "$.nope", "StringEquals": "x"}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(failure.error, "States.Runtime");
    }

    #[test]
    fn parse_errors_explain_themselves() {
        let parse = |rule: Value| ChoiceRule::parse(&rule).unwrap_err();
        assert!(parse(json!({"Variable": "$.a", "StringEquals": "x"})).contains("Next"));
        assert!(
            parse(json!({"Variable": "$.a", "StringEqual": "x", "Next": "N"}))
                .contains("not a choice operator")
        );
        assert!(
            parse(json!({"Variable": "$.a", "NumericEquals": "x", "Next": "N"}))
                .contains("cannot compare")
        );
        assert!(parse(json!({"Variable": "$.a", "Next": "N"})).contains("exactly one operator"));
        assert!(
            parse(json!({"Not": {"Variable": "$.a", "IsNull": true, "Next": "N"}, "Next": "N"}))
                .contains("top-level")
        );
    }
}
