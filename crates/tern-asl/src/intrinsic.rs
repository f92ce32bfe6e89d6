//! Intrinsic functions, usable as the value of a `.$` field: `States.Format('Hi {}', $.name)`,
//! `States.StringToJson`, `States.JsonToString`, `States.Array`, `States.ArrayLength`, `States.ArrayGetItem`
//! and `States.MathAdd`. `States.UUID` and `States.Hash*` are left out: the first is not deterministic, which
//! a replayable interpreter must be, and no definition needs the others yet.

use serde_json::Value;

use crate::error::{Failure, names};
use crate::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayLength,
    ArrayGetItem,
    MathAdd,
}

impl Function {
    fn named(name: &str) -> Option<Function> {
        Some(match name {
            "States.Format" => Function::Format,
            "States.StringToJson" => Function::StringToJson,
            "States.JsonToString" => Function::JsonToString,
            "States.Array" => Function::Array,
            "States.ArrayLength" => Function::ArrayLength,
            "States.ArrayGetItem" => Function::ArrayGetItem,
            "States.MathAdd" => Function::MathAdd,
            _ => return None,
        })
    }

    /// The accepted argument counts (inclusive range).
    fn arity(self) -> (usize, usize) {
        match self {
            Function::Format => (1, usize::MAX),
            Function::Array => (0, usize::MAX),
            Function::StringToJson | Function::JsonToString | Function::ArrayLength => (1, 1),
            Function::ArrayGetItem | Function::MathAdd => (2, 2),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// A string literal, split at its unescaped `{}` placeholders (which only `States.Format` reads).
    Text(Vec<String>),
    Literal(Value),
    Path(Path),
    Call(Intrinsic),
}

/// A parsed intrinsic function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Intrinsic {
    name: String,
    function: Function,
    args: Vec<Arg>,
}

impl Intrinsic {
    /// Parses a call such as `States.Format('{} items', $.count)`.
    pub fn parse(text: &str) -> Result<Intrinsic, String> {
        let mut parser = Parser { text, position: 0 };
        let call = parser.call()?;
        parser.skip_spaces();
        if parser.position != text.len() {
            return Err(format!(
                "unexpected `{}` after the call",
                &text[parser.position..]
            ));
        }
        Ok(call)
    }

    pub fn evaluate(&self, input: &Value, context: &Value) -> Result<Value, Failure> {
        let values = self
            .args
            .iter()
            .map(|arg| arg.evaluate(input, context))
            .collect::<Result<Vec<_>, _>>()?;
        let fail = |cause: String| {
            Failure::new(names::INTRINSIC_FAILURE, format!("{}: {cause}", self.name))
        };
        match self.function {
            Function::Format => {
                let pieces = match &self.args[0] {
                    Arg::Text(pieces) => pieces.clone(),
                    _ => match &values[0] {
                        Value::String(template) => {
                            template.split("{}").map(str::to_string).collect()
                        }
                        other => {
                            return Err(fail(format!(
                                "the template must be a string, not {other}"
                            )));
                        }
                    },
                };
                format(&pieces, &values[1..]).map_err(fail)
            }
            Function::StringToJson => match &values[0] {
                Value::String(text) => serde_json::from_str(text)
                    .map_err(|e| fail(format!("the argument is not JSON text: {e}"))),
                other => Err(fail(format!("the argument must be a string, not {other}"))),
            },
            Function::JsonToString => Ok(Value::String(values[0].to_string())),
            Function::Array => Ok(Value::Array(values)),
            Function::ArrayLength => match &values[0] {
                Value::Array(items) => Ok(Value::from(items.len())),
                other => Err(fail(format!("the argument must be an array, not {other}"))),
            },
            Function::ArrayGetItem => match (&values[0], values[1].as_u64()) {
                (Value::Array(items), Some(index)) => usize::try_from(index)
                    .ok()
                    .and_then(|index| items.get(index))
                    .cloned()
                    .ok_or_else(|| fail(format!("index {index} is out of bounds"))),
                _ => Err(fail(
                    "the arguments must be an array and a non-negative integer index".into(),
                )),
            },
            Function::MathAdd => match (values[0].as_i64(), values[1].as_i64()) {
                (Some(a), Some(b)) => a
                    .checked_add(b)
                    .map(Value::from)
                    .ok_or_else(|| fail("the sum overflows".into())),
                _ => Err(fail("both arguments must be integers".into())),
            },
        }
    }
}

impl Arg {
    fn evaluate(&self, input: &Value, context: &Value) -> Result<Value, Failure> {
        match self {
            Arg::Text(pieces) => Ok(Value::String(pieces.join("{}"))),
            Arg::Literal(value) => Ok(value.clone()),
            Arg::Path(path) => path.select(input, context).cloned().ok_or_else(|| {
                Failure::new(
                    names::INTRINSIC_FAILURE,
                    format!("the path `{path}` selects nothing in the input"),
                )
            }),
            Arg::Call(call) => call.evaluate(input, context),
        }
    }
}

fn format(pieces: &[String], values: &[Value]) -> Result<Value, String> {
    let placeholders = pieces.len() - 1;
    if placeholders != values.len() {
        return Err(format!(
            "the template has {placeholders} placeholders but {} values were given",
            values.len()
        ));
    }
    let mut text = pieces[0].clone();
    for (value, piece) in values.iter().zip(&pieces[1..]) {
        match value {
            Value::String(s) => text.push_str(s),
            other => text.push_str(&other.to_string()),
        }
        text.push_str(piece);
    }
    Ok(Value::String(text))
}

struct Parser<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    fn skip_spaces(&mut self) {
        let trimmed = self.rest().trim_start();
        self.position = self.text.len() - trimmed.len();
    }

    fn expect(&mut self, token: char) -> Result<(), String> {
        self.skip_spaces();
        if self.rest().starts_with(token) {
            self.position += token.len_utf8();
            Ok(())
        } else {
            Err(format!("expected `{token}` at `{}`", self.rest()))
        }
    }

    fn call(&mut self) -> Result<Intrinsic, String> {
        self.skip_spaces();
        let name_length = self
            .rest()
            .find('(')
            .ok_or_else(|| format!("`{}` is not a function call", self.rest()))?;
        let name = self.rest()[..name_length].trim().to_string();
        let function = Function::named(&name)
            .ok_or_else(|| format!("the intrinsic function `{name}` is not supported"))?;
        self.position += name_length + 1;
        let mut args = Vec::new();
        self.skip_spaces();
        if self.rest().starts_with(')') {
            self.position += 1;
        } else {
            loop {
                args.push(self.arg()?);
                self.skip_spaces();
                if self.rest().starts_with(',') {
                    self.position += 1;
                } else {
                    self.expect(')')?;
                    break;
                }
            }
        }
        let (min, max) = function.arity();
        if args.len() < min || args.len() > max {
            return Err(format!("`{name}` does not take {} arguments", args.len()));
        }
        Ok(Intrinsic {
            name,
            function,
            args,
        })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        self.skip_spaces();
        let rest = self.rest();
        if rest.starts_with('\'') {
            return self.text_literal();
        }
        if rest.starts_with("States.") {
            return self.call().map(Arg::Call);
        }
        let end = argument_end(rest);
        let token = rest[..end].trim();
        self.position += end;
        if token.starts_with('$') {
            return Path::parse(token).map(Arg::Path);
        }
        match token {
            "true" => Ok(Arg::Literal(Value::Bool(true))),
            "false" => Ok(Arg::Literal(Value::Bool(false))),
            "null" => Ok(Arg::Literal(Value::Null)),
            _ => serde_json::from_str::<serde_json::Number>(token)
                .map(|number| Arg::Literal(Value::Number(number)))
                .map_err(|_| {
                    format!(
                        "`{token}` is not a string, number, boolean, null, path or function call"
                    )
                }),
        }
    }

    /// A `'…'` literal, in which `\'`, `\{`, `\}` and `\\` stand for themselves.
    fn text_literal(&mut self) -> Result<Arg, String> {
        let mut pieces = vec![String::new()];
        let mut chars = self.rest().char_indices().skip(1).peekable();
        while let Some((offset, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped)) => pieces
                        .last_mut()
                        .expect("pieces is never empty")
                        .push(escaped),
                    None => break,
                },
                '\'' => {
                    self.position += offset + 1;
                    return Ok(Arg::Text(pieces));
                }
                '{' if chars.peek().is_some_and(|(_, next)| *next == '}') => {
                    chars.next();
                    pieces.push(String::new());
                }
                _ => pieces.last_mut().expect("pieces is never empty").push(c),
            }
        }
        Err("an unterminated string literal".into())
    }
}

/// Where a bare argument (a path or a scalar) ends: at a `,` or `)` outside quotes and brackets.
fn argument_end(text: &str) -> usize {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (offset, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.saturating_sub(1),
            (None, ',' | ')') if depth == 0 => return offset,
            _ => {}
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eval(text: &str, input: Value) -> Result<Value, Failure> {
        Intrinsic::parse(text)
            .unwrap()
            .evaluate(&input, &json!({"Execution": {"Name": "x1"}}))
    }

    #[test]
    fn format_fills_placeholders_and_keeps_escaped_braces() {
        let out = eval(
            r"States.Format('Hi {}, you have {} \{new\} items', $.name, $.count)",
            json!({"name": "Ada", "count": 3}),
        );
        assert_eq!(out.unwrap(), json!("Hi Ada, you have 3 {new} items"));
        let out = eval(
            r"States.Format('run {} it\'s', $$.Execution.Name)",
            json!({}),
        );
        assert_eq!(out.unwrap(), json!("run x1 it's"));
    }

    #[test]
    fn format_counts_its_arguments() {
        let failure = eval("States.Format('{} and {}', $.a)", json!({"a": 1})).unwrap_err();
        assert_eq!(failure.error, "States.IntrinsicFailure");
    }

    #[test]
    fn json_round_trips_and_arrays_nest() {
        assert_eq!(
            eval("States.StringToJson($.s)", json!({"s": "{\"a\":[1,2]}"})).unwrap(),
            json!({"a": [1, 2]})
        );
        assert_eq!(
            eval("States.JsonToString($.o)", json!({"o": {"a": 1}})).unwrap(),
            json!("{\"a\":1}")
        );
        let out = eval(
            "States.Array('x', 2, true, null, $.o, States.Array())",
            json!({"o": {"k": "v"}}),
        );
        assert_eq!(out.unwrap(), json!(["x", 2, true, null, {"k": "v"}, []]));
        assert_eq!(
            eval("States.ArrayLength($.a)", json!({"a": [1, 2, 3]})).unwrap(),
            json!(3)
        );
        assert_eq!(
            eval("States.ArrayGetItem($.a, 1)", json!({"a": [1, 2, 3]})).unwrap(),
            json!(2)
        );
        assert_eq!(
            eval("States.MathAdd($.n, -1)", json!({"n": 5})).unwrap(),
            json!(4)
        );
    }

    #[test]
    fn a_path_that_selects_nothing_fails() {
        let failure = eval("States.JsonToString($.missing)", json!({})).unwrap_err();
        assert_eq!(failure.error, "States.IntrinsicFailure");
    }

    #[test]
    fn refuses_unknown_functions_and_bad_syntax() {
        assert!(
            Intrinsic::parse("States.UUID()")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(Intrinsic::parse("States.Format('a'").is_err());
        assert!(Intrinsic::parse("States.Format('a') extra").is_err());
        assert!(Intrinsic::parse("States.JsonToString($.a, $.b)").is_err());
        assert!(Intrinsic::parse("States.Array(bogus)").is_err());
    }
}
