//! A state machine definition, parsed and checked: every state typed, every transition pointing at a state
//! that exists, every state reachable, and every field one this interpreter runs.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::choice::ChoiceRule;
use crate::error::{DefinitionError, names};
use crate::path::Path;
use crate::payload::Template;

/// A parsed state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub start_at: String,
    pub states: BTreeMap<String, State>,
    /// The execution's own time limit (the top-level `TimeoutSeconds`).
    pub timeout_seconds: Option<u64>,
}

/// Where a state goes when it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Next(String),
    End,
}

/// `InputPath` and `OutputPath`: `None` stands for JSON `null`, which passes `{}` on.
#[derive(Debug, Clone, PartialEq)]
pub struct Filters {
    pub input_path: Option<Path>,
    pub output_path: Option<Path>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Pass(PassState),
    Task(Box<TaskState>),
    Choice(ChoiceState),
    Wait(WaitState),
    Succeed(Filters),
    Fail(FailState),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PassState {
    pub filters: Filters,
    pub parameters: Option<Template>,
    pub result: Option<Value>,
    /// `None` stands for `null`: the result is discarded and the input passes on.
    pub result_path: Option<Path>,
    pub flow: Flow,
}

/// A number of seconds, given in the definition or read from the state's input.
#[derive(Debug, Clone, PartialEq)]
pub enum Seconds {
    Fixed(u64),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub filters: Filters,
    pub resource: String,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: Option<Path>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub timeout: Option<Seconds>,
    pub heartbeat: Option<Seconds>,
    pub flow: Flow,
}

impl TaskState {
    /// Whether the task hands out a token and waits for it to be completed (`….waitForTaskToken`).
    pub fn waits_for_task_token(&self) -> bool {
        self.resource.ends_with(".waitForTaskToken")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: Option<Path>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceState {
    pub filters: Filters,
    pub choices: Vec<ChoiceRule>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Seconds(u64),
    SecondsPath(Path),
    Timestamp(Timestamp),
    TimestampPath(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitState {
    pub filters: Filters,
    pub wait_for: WaitFor,
    pub flow: Flow,
}

/// A text given literally or read from the state's input.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Literal(String),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailState {
    pub error: Option<Text>,
    pub cause: Option<Text>,
}

impl Machine {
    /// Parses an ASL document (JSONPath dialect).
    pub fn parse(document: &Value) -> Result<Machine, DefinitionError> {
        let map = document
            .as_object()
            .ok_or_else(|| DefinitionError::machine("(document)", "must be a JSON object"))?;
        for key in map.keys() {
            match key.as_str() {
                "StartAt" | "States" | "Comment" | "Version" | "TimeoutSeconds" => {}
                "QueryLanguage" => {
                    if map[key] != Value::String("JSONPath".into()) {
                        return Err(DefinitionError::machine(
                            key,
                            "only the JSONPath query language is supported yet",
                        ));
                    }
                }
                other => {
                    return Err(DefinitionError::machine(
                        other,
                        "is not a field of a state machine",
                    ));
                }
            }
        }
        let start_at = match map.get("StartAt") {
            Some(Value::String(start)) => start.clone(),
            Some(_) => return Err(DefinitionError::machine("StartAt", "must be a string")),
            None => return Err(DefinitionError::machine("StartAt", "is required")),
        };
        let timeout_seconds = match map.get("TimeoutSeconds") {
            None => None,
            Some(value) => Some(value.as_u64().filter(|seconds| *seconds > 0).ok_or_else(
                || DefinitionError::machine("TimeoutSeconds", "must be a positive integer"),
            )?),
        };
        let state_map = match map.get("States") {
            Some(Value::Object(states)) if !states.is_empty() => states,
            Some(_) => {
                return Err(DefinitionError::machine(
                    "States",
                    "must be a non-empty object",
                ));
            }
            None => return Err(DefinitionError::machine("States", "is required")),
        };
        let mut states = BTreeMap::new();
        for (name, body) in state_map {
            states.insert(name.clone(), parse_state(name, body)?);
        }
        let machine = Machine {
            start_at,
            states,
            timeout_seconds,
        };
        machine.check_transitions()?;
        Ok(machine)
    }

    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.get(name)
    }

    fn check_transitions(&self) -> Result<(), DefinitionError> {
        if !self.states.contains_key(&self.start_at) {
            return Err(DefinitionError::machine(
                "StartAt",
                format!("no state is named `{}`", self.start_at),
            ));
        }
        for (name, state) in &self.states {
            for (field, target) in state.transitions() {
                if !self.states.contains_key(target) {
                    return Err(DefinitionError::state(
                        name,
                        field,
                        format!("no state is named `{target}`"),
                    ));
                }
            }
        }
        let mut reached = BTreeSet::from([self.start_at.as_str()]);
        let mut pending = vec![self.start_at.as_str()];
        while let Some(name) = pending.pop() {
            for (_, target) in self.states[name].transitions() {
                if reached.insert(target) {
                    pending.push(target);
                }
            }
        }
        if let Some(unreachable) = self
            .states
            .keys()
            .find(|name| !reached.contains(name.as_str()))
        {
            return Err(DefinitionError::state(
                unreachable,
                "(state)",
                "no transition reaches this state",
            ));
        }
        Ok(())
    }
}

impl State {
    /// Every state this one may move to, with the field that names it.
    fn transitions(&self) -> Vec<(&'static str, &str)> {
        fn flow_target(flow: &Flow) -> Vec<(&'static str, &str)> {
            match flow {
                Flow::Next(next) => vec![("Next", next.as_str())],
                Flow::End => Vec::new(),
            }
        }
        match self {
            State::Pass(pass) => flow_target(&pass.flow),
            State::Wait(wait) => flow_target(&wait.flow),
            State::Task(task) => {
                let mut targets = flow_target(&task.flow);
                targets.extend(
                    task.catch
                        .iter()
                        .map(|catcher| ("Catch.Next", catcher.next.as_str())),
                );
                targets
            }
            State::Choice(choice) => {
                let mut targets: Vec<_> = choice
                    .choices
                    .iter()
                    .map(|rule| ("Choices.Next", rule.next.as_str()))
                    .collect();
                targets.extend(
                    choice
                        .default
                        .iter()
                        .map(|default| ("Default", default.as_str())),
                );
                targets
            }
            State::Succeed(_) | State::Fail(_) => Vec::new(),
        }
    }
}

const FILTER_FIELDS: [&str; 2] = ["InputPath", "OutputPath"];
const FLOW_FIELDS: [&str; 2] = ["Next", "End"];
/// Fields that belong to parts of the language this interpreter does not run yet.
const NOT_YET: [&str; 6] = [
    "Arguments",
    "Output",
    "Assign",
    "QueryLanguage",
    "Credentials",
    "Items",
];

/// Parses the fields of one state type.
type StateParser = fn(&Fields) -> Result<State, DefinitionError>;

fn parse_state(name: &str, body: &Value) -> Result<State, DefinitionError> {
    let map = body
        .as_object()
        .ok_or_else(|| DefinitionError::state(name, "(state)", "must be a JSON object"))?;
    let fields = Fields { state: name, map };
    let kind = fields.required_string("Type")?;
    let (specific, state): (&[&str], StateParser) = match kind {
        "Pass" => (&["Result", "ResultPath", "Parameters"], parse_pass),
        "Task" => (
            &[
                "Resource",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "TimeoutSeconds",
                "TimeoutSecondsPath",
                "HeartbeatSeconds",
                "HeartbeatSecondsPath",
            ],
            parse_task,
        ),
        "Choice" => (&["Choices", "Default"], parse_choice),
        "Wait" => (
            &["Seconds", "SecondsPath", "Timestamp", "TimestampPath"],
            parse_wait,
        ),
        "Succeed" => (&[], parse_succeed),
        "Fail" => (&["Error", "ErrorPath", "Cause", "CausePath"], parse_fail),
        "Map" | "Parallel" => {
            return Err(DefinitionError::state(
                name,
                "Type",
                format!("`{kind}` states are not supported yet"),
            ));
        }
        other => {
            return Err(DefinitionError::state(
                name,
                "Type",
                format!("`{other}` is not a state type"),
            ));
        }
    };
    let takes_filters = kind != "Fail";
    let takes_flow = matches!(kind, "Pass" | "Task" | "Wait");
    for key in map.keys() {
        let known = key == "Type"
            || key == "Comment"
            || specific.contains(&key.as_str())
            || (takes_filters && FILTER_FIELDS.contains(&key.as_str()))
            || (takes_flow && FLOW_FIELDS.contains(&key.as_str()));
        if !known {
            let message = if NOT_YET.contains(&key.as_str()) {
                "is not supported yet".to_string()
            } else {
                format!("is not a field of a {kind} state")
            };
            return Err(DefinitionError::state(name, key, message));
        }
    }
    state(&fields)
}

fn parse_pass(fields: &Fields) -> Result<State, DefinitionError> {
    Ok(State::Pass(PassState {
        filters: fields.filters()?,
        parameters: fields.template("Parameters")?,
        result: fields.map.get("Result").cloned(),
        result_path: fields.nullable_path("ResultPath")?,
        flow: fields.flow()?,
    }))
}

fn parse_task(fields: &Fields) -> Result<State, DefinitionError> {
    let timeout = fields.seconds("TimeoutSeconds", "TimeoutSecondsPath")?;
    let heartbeat = fields.seconds("HeartbeatSeconds", "HeartbeatSecondsPath")?;
    if let (Some(Seconds::Fixed(timeout)), Some(Seconds::Fixed(heartbeat))) = (&timeout, &heartbeat)
        && heartbeat >= timeout
    {
        return Err(fields.error("HeartbeatSeconds", "must be smaller than TimeoutSeconds"));
    }
    Ok(State::Task(Box::new(TaskState {
        filters: fields.filters()?,
        resource: fields.required_string("Resource")?.to_string(),
        parameters: fields.template("Parameters")?,
        result_selector: fields.template("ResultSelector")?,
        result_path: fields.nullable_path("ResultPath")?,
        retry: fields.retriers()?,
        catch: fields.catchers()?,
        timeout,
        heartbeat,
        flow: fields.flow()?,
    })))
}

fn parse_choice(fields: &Fields) -> Result<State, DefinitionError> {
    let rules = match fields.map.get("Choices") {
        Some(Value::Array(rules)) if !rules.is_empty() => rules,
        _ => return Err(fields.error("Choices", "must be a non-empty array of rules")),
    };
    let choices = rules
        .iter()
        .enumerate()
        .map(|(index, rule)| {
            ChoiceRule::parse(rule)
                .map_err(|reason| fields.error(&format!("Choices[{index}]"), reason))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(State::Choice(ChoiceState {
        filters: fields.filters()?,
        choices,
        default: fields.optional_string("Default")?.map(str::to_string),
    }))
}

fn parse_wait(fields: &Fields) -> Result<State, DefinitionError> {
    let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
        .into_iter()
        .filter(|field| fields.map.contains_key(*field))
        .collect();
    let [field] = given.as_slice() else {
        return Err(fields.error(
            "Seconds",
            "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
        ));
    };
    let wait_for = match *field {
        "Seconds" => WaitFor::Seconds(fields.u64("Seconds")?.unwrap_or_default()),
        "SecondsPath" => WaitFor::SecondsPath(fields.path("SecondsPath")?),
        "Timestamp" => {
            let text = fields.required_string("Timestamp")?;
            WaitFor::Timestamp(text.parse().map_err(|e| {
                fields.error(
                    "Timestamp",
                    format!("`{text}` is not an RFC 3339 timestamp: {e}"),
                )
            })?)
        }
        _ => WaitFor::TimestampPath(fields.path("TimestampPath")?),
    };
    Ok(State::Wait(WaitState {
        filters: fields.filters()?,
        wait_for,
        flow: fields.flow()?,
    }))
}

fn parse_succeed(fields: &Fields) -> Result<State, DefinitionError> {
    Ok(State::Succeed(fields.filters()?))
}

fn parse_fail(fields: &Fields) -> Result<State, DefinitionError> {
    Ok(State::Fail(FailState {
        error: fields.text("Error", "ErrorPath")?,
        cause: fields.text("Cause", "CausePath")?,
    }))
}

/// The fields of one state, with accessors whose errors name the state and the field.
/// One entry of `Retry` or `Catch`, checked for its fields and `ErrorEquals`.
struct ErrorHandler<'a> {
    /// Where it stands, e.g. `Retry[0]`.
    field: String,
    fields: Fields<'a>,
    error_equals: Vec<String>,
}

struct Fields<'a> {
    state: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn error(&self, field: &str, message: impl Into<String>) -> DefinitionError {
        DefinitionError::state(self.state, field, message)
    }

    fn optional_string(&self, field: &str) -> Result<Option<&'a str>, DefinitionError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.error(field, "must be a string")),
        }
    }

    fn required_string(&self, field: &str) -> Result<&'a str, DefinitionError> {
        self.optional_string(field)?
            .ok_or_else(|| self.error(field, "is required"))
    }

    fn u64(&self, field: &str) -> Result<Option<u64>, DefinitionError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.error(field, "must be a non-negative integer")),
        }
    }

    fn path(&self, field: &str) -> Result<Path, DefinitionError> {
        let text = self.required_string(field)?;
        Path::parse(text).map_err(|reason| self.error(field, reason))
    }

    /// A path field that defaults to `$` and may be `null`.
    fn nullable_path(&self, field: &str) -> Result<Option<Path>, DefinitionError> {
        match self.map.get(field) {
            None => Ok(Some(Path::whole())),
            Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Path::parse(text)
                .map(Some)
                .map_err(|reason| self.error(field, reason)),
            Some(_) => Err(self.error(field, "must be a path string or null")),
        }
    }

    fn filters(&self) -> Result<Filters, DefinitionError> {
        Ok(Filters {
            input_path: self.nullable_path("InputPath")?,
            output_path: self.nullable_path("OutputPath")?,
        })
    }

    fn flow(&self) -> Result<Flow, DefinitionError> {
        let next = self.optional_string("Next")?;
        let end = match self.map.get("End") {
            None => false,
            Some(Value::Bool(end)) => *end,
            Some(_) => return Err(self.error("End", "must be true or false")),
        };
        match (next, end) {
            (Some(next), false) => Ok(Flow::Next(next.to_string())),
            (None, true) => Ok(Flow::End),
            (Some(_), true) => Err(self.error("End", "a state cannot have both `Next` and `End`")),
            (None, false) => Err(self.error("Next", "a state needs `Next` or `\"End\": true`")),
        }
    }

    fn template(&self, field: &str) -> Result<Option<Template>, DefinitionError> {
        self.map
            .get(field)
            .map(|value| Template::compile(value).map_err(|reason| self.error(field, reason)))
            .transpose()
    }

    fn seconds(&self, fixed: &str, from_path: &str) -> Result<Option<Seconds>, DefinitionError> {
        match (
            self.map.contains_key(fixed),
            self.map.contains_key(from_path),
        ) {
            (true, true) => Err(self.error(
                fixed,
                format!("cannot be given together with `{from_path}`"),
            )),
            (true, false) => match self.u64(fixed)? {
                Some(0) => Err(self.error(fixed, "must be a positive integer")),
                seconds => Ok(seconds.map(Seconds::Fixed)),
            },
            (false, true) => Ok(Some(Seconds::Path(self.path(from_path)?))),
            (false, false) => Ok(None),
        }
    }

    fn text(&self, literal: &str, from_path: &str) -> Result<Option<Text>, DefinitionError> {
        match (
            self.optional_string(literal)?,
            self.map.contains_key(from_path),
        ) {
            (Some(_), true) => Err(self.error(
                literal,
                format!("cannot be given together with `{from_path}`"),
            )),
            (Some(text), false) => Ok(Some(Text::Literal(text.to_string()))),
            (None, true) => Ok(Some(Text::Path(self.path(from_path)?))),
            (None, false) => Ok(None),
        }
    }

    fn retriers(&self) -> Result<Vec<Retrier>, DefinitionError> {
        const FIELDS: &[&str] = &[
            "ErrorEquals",
            "IntervalSeconds",
            "MaxAttempts",
            "BackoffRate",
            "MaxDelaySeconds",
            "JitterStrategy",
            "Comment",
        ];
        self.error_handlers("Retry", FIELDS, "a retrier", |handler| {
            let scoped = |name: &str| format!("{}.{name}", handler.field);
            let inner = &handler.fields;
            let interval_seconds = inner
                .u64("IntervalSeconds")
                .map_err(|e| self.error(&scoped("IntervalSeconds"), e.message))?
                .unwrap_or(1);
            if interval_seconds == 0 {
                return Err(self.error(&scoped("IntervalSeconds"), "must be a positive integer"));
            }
            let max_attempts = inner
                .u64("MaxAttempts")
                .map_err(|e| self.error(&scoped("MaxAttempts"), e.message))?
                .unwrap_or(3);
            let max_attempts = u32::try_from(max_attempts)
                .map_err(|_| self.error(&scoped("MaxAttempts"), "is too large"))?;
            let backoff_rate = match inner.map.get("BackoffRate") {
                None => 2.0,
                Some(value) => value.as_f64().filter(|rate| *rate >= 1.0).ok_or_else(|| {
                    self.error(&scoped("BackoffRate"), "must be a number of at least 1.0")
                })?,
            };
            let max_delay_seconds = inner
                .u64("MaxDelaySeconds")
                .map_err(|e| self.error(&scoped("MaxDelaySeconds"), e.message))?;
            if max_delay_seconds == Some(0) {
                return Err(self.error(&scoped("MaxDelaySeconds"), "must be a positive integer"));
            }
            match inner.map.get("JitterStrategy") {
                None => {}
                Some(Value::String(strategy)) if strategy == "NONE" || strategy == "FULL" => {}
                Some(_) => {
                    return Err(
                        self.error(&scoped("JitterStrategy"), "must be \"FULL\" or \"NONE\"")
                    );
                }
            }
            Ok(Retrier {
                error_equals: handler.error_equals,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
            })
        })
    }

    fn catchers(&self) -> Result<Vec<Catcher>, DefinitionError> {
        const FIELDS: &[&str] = &["ErrorEquals", "Next", "ResultPath", "Comment"];
        self.error_handlers("Catch", FIELDS, "a catcher", |handler| {
            let field = &handler.field;
            let next = handler
                .fields
                .required_string("Next")
                .map_err(|e| self.error(&format!("{field}.Next"), e.message))?
                .to_string();
            let result_path = handler
                .fields
                .nullable_path("ResultPath")
                .map_err(|e| self.error(&format!("{field}.ResultPath"), e.message))?;
            Ok(Catcher {
                error_equals: handler.error_equals,
                next,
                result_path,
            })
        })
    }

    /// Parses `Retry` or `Catch`: an array of objects, each with only `allowed` fields and a valid
    /// `ErrorEquals`, handed to `parse` one by one.
    fn error_handlers<T>(
        &self,
        name: &str,
        allowed: &[&str],
        kind: &str,
        mut parse: impl FnMut(ErrorHandler<'a>) -> Result<T, DefinitionError>,
    ) -> Result<Vec<T>, DefinitionError> {
        let Some(list) = self.map.get(name) else {
            return Ok(Vec::new());
        };
        let list = list
            .as_array()
            .ok_or_else(|| self.error(name, "must be an array"))?;
        let mut parsed = Vec::with_capacity(list.len());
        for (index, value) in list.iter().enumerate() {
            let field = format!("{name}[{index}]");
            let map = value
                .as_object()
                .ok_or_else(|| self.error(&field, "must be an object"))?;
            if let Some(key) = map.keys().find(|key| !allowed.contains(&key.as_str())) {
                return Err(self.error(
                    &format!("{field}.{key}"),
                    format!("is not a field of {kind}"),
                ));
            }
            let error_equals = self.error_equals(&field, map, index + 1 == list.len())?;
            let fields = Fields {
                state: self.state,
                map,
            };
            parsed.push(parse(ErrorHandler {
                field,
                fields,
                error_equals,
            })?);
        }
        Ok(parsed)
    }

    fn error_equals(
        &self,
        field: &str,
        map: &Map<String, Value>,
        is_last: bool,
    ) -> Result<Vec<String>, DefinitionError> {
        let field = format!("{field}.ErrorEquals");
        let errors: Vec<String> = map
            .get("ErrorEquals")
            .and_then(Value::as_array)
            .filter(|errors| !errors.is_empty())
            .and_then(|errors| {
                errors
                    .iter()
                    .map(|error| error.as_str().map(str::to_string))
                    .collect()
            })
            .ok_or_else(|| self.error(&field, "must be a non-empty array of error names"))?;
        if errors.iter().any(|error| error == names::ALL) && (errors.len() > 1 || !is_last) {
            return Err(self.error(
                &field,
                "States.ALL must appear alone, in the last retrier or catcher",
            ));
        }
        Ok(errors)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_error(document: Value) -> String {
        Machine::parse(&document).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_supported_state() {
        let machine = Machine::parse(&json!({
            "StartAt": "Prepare",
            "TimeoutSeconds": 3600,
            "States": {
                "Prepare": {"Type": "Pass", "Result": {"a": 1}, "ResultPath": "$.prepared", "Next": "Send"},
                "Send": {
                    "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "Parameters": {"MessageBody": {"token.$": "$$.Task.Token"}},
                    "TimeoutSeconds": 60, "HeartbeatSeconds": 10,
                    "Retry": [{"ErrorEquals": ["Busy"], "MaxAttempts": 2}, {"ErrorEquals": ["States.ALL"]}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed", "ResultPath": "$.error"}],
                    "Next": "Decide"
                },
                "Decide": {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": true, "Next": "Pause"}], "Default": "Done"},
                "Pause": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "Done"},
                "Done": {"Type": "Succeed", "OutputPath": null},
                "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "Cause": "it failed"}
            }
        }))
        .unwrap();
        assert_eq!(machine.start_at, "Prepare");
        assert_eq!(machine.timeout_seconds, Some(3600));
        let State::Task(task) = &machine.states["Send"] else {
            panic!("Send is a task")
        };
        assert!(task.waits_for_task_token());
        assert_eq!(task.retry[0].max_attempts, 2);
        assert_eq!(task.retry[1].backoff_rate, 2.0);
        assert_eq!(task.catch[0].next, "Failed");
        let State::Succeed(filters) = &machine.states["Done"] else {
            panic!("Done succeeds")
        };
        assert_eq!(filters.output_path, None);
    }

    #[test]
    fn errors_name_the_state_and_the_field() {
        let error = parse_error(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}),
        );
        assert_eq!(
            error,
            "state `A`, field `Next`: no state is named `Nowhere`"
        );
        let error = parse_error(
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resouce": "x", "End": true}}}),
        );
        assert_eq!(
            error,
            "state `A`, field `Resouce`: is not a field of a Task state"
        );
        let error = parse_error(json!({"StartAt": "B", "States": {"A": {"Type": "Succeed"}}}));
        assert_eq!(error, "field `StartAt`: no state is named `B`");
        let error = parse_error(json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}));
        assert!(error.contains("`Next` or"), "{error}");
        let error = parse_error(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "$..x", "End": true}}}),
        );
        assert!(error.starts_with("state `A`, field `InputPath`"), "{error}");
    }

    #[test]
    fn map_and_parallel_are_refused_for_now() {
        for kind in ["Map", "Parallel"] {
            let error =
                parse_error(json!({"StartAt": "A", "States": {"A": {"Type": kind, "End": true}}}));
            assert_eq!(
                error,
                format!("state `A`, field `Type`: `{kind}` states are not supported yet")
            );
        }
        let error = parse_error(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Assign": {}, "End": true}}}),
        );
        assert_eq!(error, "state `A`, field `Assign`: is not supported yet");
        let error = parse_error(
            json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Succeed"}}}),
        );
        assert!(error.contains("JSONPath"), "{error}");
    }

    #[test]
    fn unreachable_states_are_refused() {
        let error = parse_error(
            json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}, "B": {"Type": "Succeed"}}}),
        );
        assert_eq!(
            error,
            "state `B`, field `(state)`: no transition reaches this state"
        );
    }

    #[test]
    fn retriers_and_catchers_are_checked() {
        let task = |retry: Value| json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "Retry": retry, "End": true}}});
        assert!(parse_error(task(json!([{"ErrorEquals": []}]))).contains("Retry[0].ErrorEquals"));
        assert!(
            parse_error(task(
                json!([{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}])
            ))
            .contains("States.ALL must appear alone")
        );
        assert!(
            parse_error(task(json!([{"ErrorEquals": ["X"], "BackoffRate": 0.5}])))
                .contains("Retry[0].BackoffRate")
        );
        assert!(
            parse_error(task(json!([{"ErrorEquals": ["X"], "IntervalSeconds": 0}])))
                .contains("Retry[0].IntervalSeconds")
        );
        assert!(
            parse_error(task(json!([{"ErrorEquals": ["X"], "Bogus": 1}])))
                .contains("Retry[0].Bogus")
        );
        let error = parse_error(
            json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "TimeoutSeconds": 5, "HeartbeatSeconds": 5, "End": true}}}),
        );
        assert!(error.contains("HeartbeatSeconds"), "{error}");
    }

    #[test]
    fn a_wait_needs_exactly_one_duration() {
        let error = parse_error(
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": true}}}),
        );
        assert!(error.contains("exactly one"), "{error}");
        let error = parse_error(
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": "tomorrow", "End": true}}}),
        );
        assert!(error.contains("RFC 3339"), "{error}");
    }
}
