//! The JSONPath subset the States Language needs: `$`, `$.a.b`, `$.a[0]`, `$['a b']`, and the context
//! object's `$$.Execution.Name`. Wildcards, slices, filters and recursive descent select several values,
//! which the states this interpreter runs never need; they are refused when the definition is parsed.

use std::fmt;

use serde_json::{Map, Value};

/// What a path starts from: the state's input (`$`) or the context object (`$$`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Input,
    Context,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

/// A parsed path that selects at most one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    text: String,
    root: Root,
    steps: Vec<Step>,
}

impl Path {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Path, String> {
        let (root, rest) = if let Some(rest) = text.strip_prefix("$$") {
            (Root::Context, rest)
        } else if let Some(rest) = text.strip_prefix('$') {
            (Root::Input, rest)
        } else {
            return Err(format!("`{text}` is not a path: a path starts with `$`"));
        };
        let steps = parse_steps(rest)
            .map_err(|reason| format!("`{text}` is not a supported path: {reason}"))?;
        Ok(Path {
            text: text.to_string(),
            root,
            steps,
        })
    }

    /// The path `$`: the whole input.
    pub fn whole() -> Path {
        Path {
            text: "$".into(),
            root: Root::Input,
            steps: Vec::new(),
        }
    }

    pub fn root(&self) -> Root {
        self.root
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value this path selects, if there is one.
    pub fn select<'a>(&self, input: &'a Value, context: &'a Value) -> Option<&'a Value> {
        let mut current = match self.root {
            Root::Input => input,
            Root::Context => context,
        };
        for step in &self.steps {
            current = match (step, current) {
                (Step::Field(name), Value::Object(map)) => map.get(name)?,
                (Step::Index(index), Value::Array(items)) => items.get(*index)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// Writes `value` at this path inside `target` (ResultPath's semantics): missing objects on the way are
    /// created, and anything else in the way is an error.
    pub fn assign(&self, target: Value, value: Value) -> Result<Value, String> {
        if self.root == Root::Context {
            return Err(format!(
                "`{}` points into the context object, which cannot be written",
                self.text
            ));
        }
        let mut target = target;
        let Some((last, leading)) = self.steps.split_last() else {
            return Ok(value);
        };
        let mut slot = &mut target;
        for step in leading {
            slot = descend_creating(slot, step).ok_or_else(|| self.unassignable())?;
        }
        if slot.is_null() && matches!(last, Step::Field(_)) {
            *slot = Value::Object(Map::new());
        }
        match (last, slot) {
            (Step::Field(name), Value::Object(map)) => {
                map.insert(name.clone(), value);
            }
            (Step::Index(index), Value::Array(items)) if *index < items.len() => {
                items[*index] = value
            }
            _ => return Err(self.unassignable()),
        }
        Ok(target)
    }

    fn unassignable(&self) -> String {
        format!(
            "cannot write at `{}`: a value on the way is neither an object nor an existing array item",
            self.text
        )
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn descend_creating<'a>(slot: &'a mut Value, step: &Step) -> Option<&'a mut Value> {
    match step {
        Step::Field(name) => {
            if slot.is_null() {
                *slot = Value::Object(Map::new());
            }
            let map = slot.as_object_mut()?;
            Some(map.entry(name.clone()).or_insert(Value::Null))
        }
        Step::Index(index) => slot.as_array_mut()?.get_mut(*index),
    }
}

fn parse_steps(mut rest: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after_dot) = rest.strip_prefix('.') {
            if after_dot.starts_with('.') {
                return Err("recursive descent (`..`) is not supported".into());
            }
            let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
            let name = &after_dot[..end];
            if name.is_empty() {
                return Err("a `.` must be followed by a field name".into());
            }
            if name == "*" {
                return Err("wildcards are not supported".into());
            }
            steps.push(Step::Field(name.to_string()));
            rest = &after_dot[end..];
        } else if let Some(after_bracket) = rest.strip_prefix('[') {
            let (step, remaining) = parse_bracket(after_bracket)?;
            steps.push(step);
            rest = remaining;
        } else {
            return Err(format!("unexpected `{rest}`"));
        }
    }
    Ok(steps)
}

fn parse_bracket(text: &str) -> Result<(Step, &str), String> {
    for quote in ['\'', '"'] {
        if let Some(quoted) = text.strip_prefix(quote) {
            let end = quoted
                .find(quote)
                .ok_or("an unterminated quoted field name")?;
            let remaining = quoted[end + 1..]
                .strip_prefix(']')
                .ok_or("a quoted field name must be followed by `]`")?;
            return Ok((Step::Field(quoted[..end].to_string()), remaining));
        }
    }
    let end = text.find(']').ok_or("an unterminated `[`")?;
    let inside = text[..end].trim();
    let index = inside.parse::<usize>().map_err(|_| {
        format!("`[{inside}]` is not supported: only a single array index like `[0]` is")
    })?;
    Ok((Step::Index(index), &text[end + 1..]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn select(path: &str, input: &Value) -> Option<Value> {
        let context = json!({"Execution": {"Name": "run-1"}});
        Path::parse(path).unwrap().select(input, &context).cloned()
    }

    #[test]
    fn selects_fields_indexes_and_the_context() {
        let input = json!({"a": {"b": [10, {"c": "deep"}]}, "odd key": 1});
        assert_eq!(select("$", &input), Some(input.clone()));
        assert_eq!(select("$.a.b[0]", &input), Some(json!(10)));
        assert_eq!(select("$.a.b[1].c", &input), Some(json!("deep")));
        assert_eq!(select("$['odd key']", &input), Some(json!(1)));
        assert_eq!(select("$.a['b'][1]['c']", &input), Some(json!("deep")));
        assert_eq!(select("$$.Execution.Name", &input), Some(json!("run-1")));
    }

    #[test]
    fn a_missing_value_selects_nothing() {
        let input = json!({"a": [1]});
        assert_eq!(select("$.b", &input), None);
        assert_eq!(select("$.a[3]", &input), None);
        assert_eq!(select("$.a.b", &input), None);
    }

    #[test]
    fn refuses_what_selects_many_values() {
        for text in [
            "$..a",
            "$.a[*]",
            "$.*",
            "$.a[?(@.b)]",
            "$.a[1:2]",
            "a.b",
            "$a",
            "$.",
            "$['a",
        ] {
            assert!(Path::parse(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn assigns_creating_missing_objects() {
        let path = Path::parse("$.result.detail").unwrap();
        let written = path.assign(json!({"keep": true}), json!(5)).unwrap();
        assert_eq!(written, json!({"keep": true, "result": {"detail": 5}}));
        assert_eq!(
            Path::whole().assign(json!({"a": 1}), json!("all")).unwrap(),
            json!("all")
        );
    }

    #[test]
    fn assign_refuses_to_write_through_a_scalar() {
        let path = Path::parse("$.a.b").unwrap();
        assert!(path.assign(json!({"a": 3}), json!(1)).is_err());
        assert!(
            Path::parse("$$.Execution")
                .unwrap()
                .assign(json!({}), json!(1))
                .is_err()
        );
    }
}
