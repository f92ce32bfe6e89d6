//! Payload templates: the JSON of `Parameters` and `ResultSelector`, in which a field whose name ends in
//! `.$` takes its value from a path (`"user.$": "$.id"`) or an intrinsic function
//! (`"text.$": "States.Format('Hi {}', $.name)"`).

use serde_json::{Map, Value};

use crate::error::{Failure, names};
use crate::intrinsic::Intrinsic;
use crate::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Path(Path),
    Intrinsic(Intrinsic),
}

impl Template {
    /// Compiles a template; the error names the offending field by its position in the template.
    pub fn compile(value: &Value) -> Result<Template, String> {
        compile_at(value, "")
    }

    /// Builds the payload from the state's input and the context object.
    pub fn render(&self, input: &Value, context: &Value) -> Result<Value, Failure> {
        match self {
            Template::Literal(value) => Ok(value.clone()),
            Template::Object(fields) => {
                let mut rendered = Map::new();
                for (name, template) in fields {
                    let value = match template {
                        Template::Path(path) => path.select(input, context).cloned().ok_or_else(|| {
                            Failure::new(
                                names::PARAMETER_PATH_FAILURE,
                                format!("the path `{path}` of the field `{name}.$` selects nothing in the input"),
                            )
                        })?,
                        other => other.render(input, context)?,
                    };
                    rendered.insert(name.clone(), value);
                }
                Ok(Value::Object(rendered))
            }
            Template::Array(items) => items
                .iter()
                .map(|item| item.render(input, context))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Template::Path(path) => path.select(input, context).cloned().ok_or_else(|| {
                Failure::new(
                    names::PARAMETER_PATH_FAILURE,
                    format!("the path `{path}` selects nothing in the input"),
                )
            }),
            Template::Intrinsic(call) => call.evaluate(input, context),
        }
    }
}

fn compile_at(value: &Value, location: &str) -> Result<Template, String> {
    match value {
        Value::Object(map) => {
            let mut fields = Vec::with_capacity(map.len());
            for (key, field) in map {
                let here = if location.is_empty() {
                    key.clone()
                } else {
                    format!("{location}.{key}")
                };
                match key.strip_suffix(".$") {
                    Some(name) => fields.push((name.to_string(), dynamic(field, &here)?)),
                    None => fields.push((key.clone(), compile_at(field, &here)?)),
                }
            }
            Ok(Template::Object(fields))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| compile_at(item, &format!("{location}[{index}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Template::Array),
        other => Ok(Template::Literal(other.clone())),
    }
}

fn dynamic(value: &Value, location: &str) -> Result<Template, String> {
    let Value::String(text) = value else {
        return Err(format!(
            "`{location}` ends in `.$`, so its value must be a path or an intrinsic function"
        ));
    };
    if text.starts_with('$') {
        Path::parse(text)
            .map(Template::Path)
            .map_err(|reason| format!("`{location}`: {reason}"))
    } else if text.starts_with("States.") {
        Intrinsic::parse(text)
            .map(Template::Intrinsic)
            .map_err(|reason| format!("`{location}`: {reason}"))
    } else {
        Err(format!(
            "`{location}` ends in `.$`, so `{text}` must be a path (`$…`) or an intrinsic function (`States.…`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_paths_intrinsics_and_literals_at_any_depth() {
        let template = Template::compile(&json!({
            "QueueUrl": "https://example/queue",
            "MessageBody": {"token.$": "$$.Task.Token", "user.$": "$.user.id", "tags": [{"first.$": "$.tags[0]"}]},
            "greeting.$": "States.Format('Hi {}', $.user.name)"
        }))
        .unwrap();
        let input = json!({"user": {"id": "u1", "name": "Ada"}, "tags": ["vip"]});
        let context = json!({"Task": {"Token": "t-1"}});
        assert_eq!(
            template.render(&input, &context).unwrap(),
            json!({
                "QueueUrl": "https://example/queue",
                "MessageBody": {"token": "t-1", "user": "u1", "tags": [{"first": "vip"}]},
                "greeting": "Hi Ada"
            })
        );
    }

    #[test]
    fn a_missing_path_is_a_parameter_path_failure() {
        let template = Template::compile(&json!({"id.$": "$.missing"})).unwrap();
        let failure = template.render(&json!({}), &json!({})).unwrap_err();
        assert_eq!(failure.error, "States.ParameterPathFailure");
        assert!(failure.cause.contains("id.$"));
    }

    #[test]
    fn compile_names_the_bad_field() {
        let error = Template::compile(&json!({"outer": {"id.$": 3}})).unwrap_err();
        assert!(error.contains("outer.id.$"), "{error}");
        let error = Template::compile(&json!({"id.$": "plain"})).unwrap_err();
        assert!(error.contains("id.$"), "{error}");
    }
}
