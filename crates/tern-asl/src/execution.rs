//! The step machine. An execution is an [`ExecutionState`] — the current state, its raw input and how far
//! it got — and [`step`] turns it into a [`Transition`]: move on, sleep until a time, run a task, or stop.
//! The engine persists each transition before it takes the next step, so it never needs to know what a
//! state type means.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::definition::{
    Catcher, FailState, Filters, Flow, Machine, Seconds, State, TaskState, Text, WaitFor,
};
use crate::error::{Failure, names};
use crate::path::Path;

/// The longest delay a retrier or wait may ask for: Step Functions ends every execution within a year.
const LONGEST_DELAY: SignedDuration = SignedDuration::from_hours(24 * 366);

/// What the engine knows about the execution, from which the context object (`$$`) is built.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub execution_id: String,
    pub execution_name: String,
    pub execution_input: Value,
    pub start_time: Timestamp,
    pub state_machine_id: String,
    pub state_machine_name: String,
    /// The token a `.waitForTaskToken` task started by this step hands out (as `$$.Task.Token`). The engine
    /// supplies a fresh one for every step; steps that start no such task ignore it.
    pub task_token: Option<String>,
}

/// Where an execution is: everything the engine persists between steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionState {
    /// The current state's name.
    pub state: String,
    /// The current state's raw input.
    pub input: Value,
    pub entered_at: Timestamp,
    pub phase: Phase,
    /// For a Task state: how many retries each of its retriers has spent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The state has been entered and has not done anything yet.
    Enter,
    /// A Wait state waits until `until`.
    Waiting { until: Timestamp },
    /// A Task state waits until `until` before it retries.
    Backoff { until: Timestamp },
    /// A Task state's task runs; the engine records its outcome as `Finished`.
    Running,
    /// A Task state's task has finished.
    Finished { outcome: TaskOutcome },
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TaskOutcome {
    Succeeded { output: Value },
    Failed { error: String, cause: String },
}

/// A task to run: the engine dispatches `resource` with `input` (the rendered Parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCall {
    pub resource: String,
    pub input: Value,
    /// Set for `.waitForTaskToken` resources: the outcome arrives with this token, not from the dispatch.
    pub token: Option<String>,
    /// When the task times out, if it has a `TimeoutSeconds` or `HeartbeatSeconds`.
    pub deadline: Option<Deadline>,
}

/// A point in time after which the task fails with `error` (`States.Timeout` or `States.HeartbeatTimeout`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deadline {
    pub at: Timestamp,
    pub error: String,
}

impl Deadline {
    /// The outcome of a task that missed this deadline.
    pub fn outcome(&self) -> TaskOutcome {
        TaskOutcome::Failed {
            error: self.error.clone(),
            cause: format!("the task did not complete by {}", self.at),
        }
    }
}

/// What the execution does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Persist `state` and step again at once.
    Continue(ExecutionState),
    /// Persist `state` and step again at `until`.
    Sleep {
        until: Timestamp,
        state: ExecutionState,
    },
    /// Persist `state` (phase `Running`), dispatch `call`, then record its outcome with
    /// [`ExecutionState::finished`] and step again.
    RunTask {
        call: TaskCall,
        state: ExecutionState,
    },
    /// Nothing to do until the running task's outcome is recorded.
    Idle,
    Succeeded {
        output: Value,
    },
    Failed {
        error: Option<String>,
        cause: Option<String>,
    },
}

impl ExecutionState {
    /// A new execution at the machine's first state.
    pub fn start(machine: &Machine, input: Value, now: Timestamp) -> ExecutionState {
        ExecutionState::entering(&machine.start_at, input, now)
    }

    fn entering(state: &str, input: Value, now: Timestamp) -> ExecutionState {
        ExecutionState {
            state: state.to_string(),
            input,
            entered_at: now,
            phase: Phase::Enter,
            retries: Vec::new(),
        }
    }

    /// This state with the running task's outcome recorded.
    pub fn finished(&self, outcome: TaskOutcome) -> ExecutionState {
        ExecutionState {
            phase: Phase::Finished { outcome },
            ..self.clone()
        }
    }

    fn in_phase(&self, phase: Phase) -> ExecutionState {
        ExecutionState {
            phase,
            ..self.clone()
        }
    }
}

impl Context {
    fn object(&self, current: &ExecutionState, token: Option<&str>) -> Value {
        let retry_count: u32 = current.retries.iter().sum();
        let mut object = json!({
            "Execution": {
                "Id": self.execution_id,
                "Name": self.execution_name,
                "Input": self.execution_input,
                "StartTime": self.start_time.to_string(),
            },
            "StateMachine": {"Id": self.state_machine_id, "Name": self.state_machine_name},
            "State": {"Name": current.state, "EnteredTime": current.entered_at.to_string(), "RetryCount": retry_count},
        });
        if let Some(token) = token {
            object["Task"] = json!({"Token": token});
        }
        object
    }
}

/// Takes one step of an execution.
pub fn step(
    machine: &Machine,
    current: &ExecutionState,
    context: &Context,
    now: Timestamp,
) -> Transition {
    let Some(state) = machine.state(&current.state) else {
        return fail(Failure::runtime(format!(
            "the definition has no state named `{}`",
            current.state
        )));
    };
    let outcome = match state {
        State::Pass(pass) => {
            let ctx = context.object(current, None);
            pass_output(pass, current, &ctx).map(|output| proceed(&pass.flow, output, now))
        }
        State::Choice(choice) => {
            let ctx = context.object(current, None);
            choose(choice, current, &ctx).map(|(next, output)| {
                Transition::Continue(ExecutionState::entering(&next, output, now))
            })
        }
        State::Wait(wait) => wait_step(wait, current, &context.object(current, None), now),
        State::Succeed(filters) => {
            let ctx = context.object(current, None);
            filter_input(filters, &current.input, &ctx)
                .and_then(|effective| filter_output(filters, effective, &ctx))
                .map(|output| Transition::Succeeded { output })
        }
        State::Fail(fail_state) => {
            return fail_transition(fail_state, &current.input, &context.object(current, None));
        }
        State::Task(task) => return task_step(task, current, context, now),
    };
    outcome.unwrap_or_else(fail)
}

fn fail(failure: Failure) -> Transition {
    Transition::Failed {
        error: Some(failure.error),
        cause: Some(failure.cause),
    }
}

fn proceed(flow: &Flow, output: Value, now: Timestamp) -> Transition {
    match flow {
        Flow::Next(next) => Transition::Continue(ExecutionState::entering(next, output, now)),
        Flow::End => Transition::Succeeded { output },
    }
}

fn filter_input(filters: &Filters, raw: &Value, ctx: &Value) -> Result<Value, Failure> {
    select_or_empty(filters.input_path.as_ref(), raw, ctx, "InputPath")
}

fn filter_output(filters: &Filters, value: Value, ctx: &Value) -> Result<Value, Failure> {
    match &filters.output_path {
        Some(path) if path.as_str() == "$" => Ok(value),
        other => select_or_empty(other.as_ref(), &value, ctx, "OutputPath"),
    }
}

/// A path field's selection; `None` (JSON `null`) selects `{}`.
fn select_or_empty(
    path: Option<&Path>,
    value: &Value,
    ctx: &Value,
    field: &str,
) -> Result<Value, Failure> {
    match path {
        None => Ok(json!({})),
        Some(path) => path.select(value, ctx).cloned().ok_or_else(|| {
            Failure::runtime(format!(
                "the {field} `{path}` selects nothing in the state's data"
            ))
        }),
    }
}

fn apply_result_path(
    result_path: Option<&Path>,
    raw: &Value,
    result: Value,
) -> Result<Value, Failure> {
    match result_path {
        None => Ok(raw.clone()),
        Some(path) => path
            .assign(raw.clone(), result)
            .map_err(|reason| Failure::new(names::RESULT_PATH_MATCH_FAILURE, reason)),
    }
}

fn pass_output(
    pass: &crate::definition::PassState,
    current: &ExecutionState,
    ctx: &Value,
) -> Result<Value, Failure> {
    let effective = filter_input(&pass.filters, &current.input, ctx)?;
    let effective = match &pass.parameters {
        Some(template) => template.render(&effective, ctx)?,
        None => effective,
    };
    let result = pass.result.clone().unwrap_or(effective);
    let combined = apply_result_path(pass.result_path.as_ref(), &current.input, result)?;
    filter_output(&pass.filters, combined, ctx)
}

fn choose(
    choice: &crate::definition::ChoiceState,
    current: &ExecutionState,
    ctx: &Value,
) -> Result<(String, Value), Failure> {
    let effective = filter_input(&choice.filters, &current.input, ctx)?;
    let mut next = None;
    for rule in &choice.choices {
        if rule.condition.holds(&effective, ctx)? {
            next = Some(rule.next.clone());
            break;
        }
    }
    let next = next.or_else(|| choice.default.clone()).ok_or_else(|| {
        Failure::new(
            names::NO_CHOICE_MATCHED,
            format!(
                "no choice rule of `{}` matched and it has no Default",
                current.state
            ),
        )
    })?;
    Ok((next, filter_output(&choice.filters, effective, ctx)?))
}

fn wait_step(
    wait: &crate::definition::WaitState,
    current: &ExecutionState,
    ctx: &Value,
    now: Timestamp,
) -> Result<Transition, Failure> {
    let effective = filter_input(&wait.filters, &current.input, ctx)?;
    let until = match &current.phase {
        Phase::Waiting { until } => *until,
        _ => wait_until(&wait.wait_for, &effective, ctx, current.entered_at)?,
    };
    if until > now {
        return Ok(Transition::Sleep {
            until,
            state: current.in_phase(Phase::Waiting { until }),
        });
    }
    let output = filter_output(&wait.filters, effective, ctx)?;
    Ok(proceed(&wait.flow, output, now))
}

fn wait_until(
    wait_for: &WaitFor,
    effective: &Value,
    ctx: &Value,
    entered_at: Timestamp,
) -> Result<Timestamp, Failure> {
    match wait_for {
        WaitFor::Seconds(seconds) => Ok(after(entered_at, *seconds as f64)),
        WaitFor::SecondsPath(path) => {
            let seconds = path
                .select(effective, ctx)
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    Failure::runtime(format!(
                        "the SecondsPath `{path}` does not select a non-negative integer"
                    ))
                })?;
            Ok(after(entered_at, seconds as f64))
        }
        WaitFor::Timestamp(at) => Ok(*at),
        WaitFor::TimestampPath(path) => path
            .select(effective, ctx)
            .and_then(Value::as_str)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                Failure::runtime(format!(
                    "the TimestampPath `{path}` does not select an RFC 3339 timestamp"
                ))
            }),
    }
}

/// `start` plus `seconds`, capped so that no arithmetic overflows.
fn after(start: Timestamp, seconds: f64) -> Timestamp {
    let delay = SignedDuration::try_from_secs_f64(seconds)
        .unwrap_or(LONGEST_DELAY)
        .min(LONGEST_DELAY);
    start.checked_add(delay).unwrap_or(Timestamp::MAX)
}

fn fail_transition(fail_state: &FailState, raw: &Value, ctx: &Value) -> Transition {
    let read = |text: &Option<Text>, field: &str| -> Result<Option<String>, Failure> {
        match text {
            None => Ok(None),
            Some(Text::Literal(text)) => Ok(Some(text.clone())),
            Some(Text::Path(path)) => path
                .select(raw, ctx)
                .and_then(Value::as_str)
                .map(|text| Some(text.to_string()))
                .ok_or_else(|| {
                    Failure::runtime(format!("the {field} `{path}` does not select a string"))
                }),
        }
    };
    match (
        read(&fail_state.error, "ErrorPath"),
        read(&fail_state.cause, "CausePath"),
    ) {
        (Ok(error), Ok(cause)) => Transition::Failed { error, cause },
        (Err(failure), _) | (_, Err(failure)) => fail(failure),
    }
}

fn task_step(
    task: &TaskState,
    current: &ExecutionState,
    context: &Context,
    now: Timestamp,
) -> Transition {
    match &current.phase {
        Phase::Enter => dispatch(task, current, context, now),
        Phase::Backoff { until } if *until > now => Transition::Sleep {
            until: *until,
            state: current.clone(),
        },
        Phase::Backoff { .. } => dispatch(task, current, context, now),
        Phase::Running | Phase::Waiting { .. } => Transition::Idle,
        Phase::Finished {
            outcome: TaskOutcome::Succeeded { output },
        } => {
            let ctx = context.object(current, None);
            match task_output(task, current, output.clone(), &ctx) {
                Ok(output) => proceed(&task.flow, output, now),
                Err(failure) => handle_failure(task, current, failure, now),
            }
        }
        Phase::Finished {
            outcome: TaskOutcome::Failed { error, cause },
        } => handle_failure(
            task,
            current,
            Failure::new(error.clone(), cause.clone()),
            now,
        ),
    }
}

fn dispatch(
    task: &TaskState,
    current: &ExecutionState,
    context: &Context,
    now: Timestamp,
) -> Transition {
    let token = if task.waits_for_task_token() {
        match &context.task_token {
            Some(token) => Some(token.clone()),
            None => {
                return fail(Failure::runtime(
                    "the engine supplied no task token for a .waitForTaskToken task",
                ));
            }
        }
    } else {
        None
    };
    let ctx = context.object(current, token.as_deref());
    let prepared = filter_input(&task.filters, &current.input, &ctx).and_then(|effective| {
        let input = match &task.parameters {
            Some(template) => template.render(&effective, &ctx)?,
            None => effective.clone(),
        };
        Ok((input, task_deadline(task, &effective, &ctx, now)?))
    });
    match prepared {
        Ok((input, deadline)) => Transition::RunTask {
            call: TaskCall {
                resource: task.resource.clone(),
                input,
                token,
                deadline,
            },
            state: current.in_phase(Phase::Running),
        },
        Err(failure) => handle_failure(task, current, failure, now),
    }
}

fn task_deadline(
    task: &TaskState,
    effective: &Value,
    ctx: &Value,
    now: Timestamp,
) -> Result<Option<Deadline>, Failure> {
    let seconds = |given: &Option<Seconds>, field: &str| -> Result<Option<u64>, Failure> {
        match given {
            None => Ok(None),
            Some(Seconds::Fixed(seconds)) => Ok(Some(*seconds)),
            Some(Seconds::Path(path)) => path
                .select(effective, ctx)
                .and_then(Value::as_u64)
                .filter(|seconds| *seconds > 0)
                .map(Some)
                .ok_or_else(|| {
                    Failure::runtime(format!(
                        "the {field} `{path}` does not select a positive integer"
                    ))
                }),
        }
    };
    let timeout = seconds(&task.timeout, "TimeoutSecondsPath")?;
    let heartbeat = seconds(&task.heartbeat, "HeartbeatSecondsPath")?;
    let deadline = |seconds: u64, error: &str| Deadline {
        at: after(now, seconds as f64),
        error: error.to_string(),
    };
    Ok(match (timeout, heartbeat) {
        (Some(timeout), Some(heartbeat)) if heartbeat < timeout => {
            Some(deadline(heartbeat, names::HEARTBEAT_TIMEOUT))
        }
        (Some(timeout), _) => Some(deadline(timeout, names::TIMEOUT)),
        (None, Some(heartbeat)) => Some(deadline(heartbeat, names::HEARTBEAT_TIMEOUT)),
        (None, None) => None,
    })
}

fn task_output(
    task: &TaskState,
    current: &ExecutionState,
    result: Value,
    ctx: &Value,
) -> Result<Value, Failure> {
    let selected = match &task.result_selector {
        Some(template) => template.render(&result, ctx)?,
        None => result,
    };
    let combined = apply_result_path(task.result_path.as_ref(), &current.input, selected)?;
    filter_output(&task.filters, combined, ctx)
}

/// Whether an `ErrorEquals` list matches `error`, with the wildcards' documented exceptions:
/// `States.ALL` matches everything but `States.Runtime`; `States.TaskFailed` everything but timeouts and
/// `States.Runtime`; `States.Timeout` matches heartbeat timeouts too.
pub fn error_matches(error_equals: &[String], error: &str) -> bool {
    let is_timeout = error == names::TIMEOUT || error == names::HEARTBEAT_TIMEOUT;
    error_equals.iter().any(|name| {
        name == error
            || (name == names::ALL && error != names::RUNTIME)
            || (name == names::TASK_FAILED && !is_timeout && error != names::RUNTIME)
            || (name == names::TIMEOUT && is_timeout)
    })
}

fn handle_failure(
    task: &TaskState,
    current: &ExecutionState,
    failure: Failure,
    now: Timestamp,
) -> Transition {
    if let Some(index) = task
        .retry
        .iter()
        .position(|retrier| error_matches(&retrier.error_equals, &failure.error))
    {
        let retrier = &task.retry[index];
        let mut retries = current.retries.clone();
        retries.resize(task.retry.len(), 0);
        let spent = retries[index];
        if spent < retrier.max_attempts {
            let mut delay = retrier.interval_seconds as f64
                * retrier.backoff_rate.powi(spent.min(1_000) as i32);
            if let Some(max_delay) = retrier.max_delay_seconds {
                delay = delay.min(max_delay as f64);
            }
            retries[index] = spent + 1;
            let until = after(now, delay);
            let state = ExecutionState {
                phase: Phase::Backoff { until },
                retries,
                ..current.clone()
            };
            return Transition::Sleep { until, state };
        }
    }
    match task
        .catch
        .iter()
        .find(|catcher| error_matches(&catcher.error_equals, &failure.error))
    {
        Some(catcher) => catch(catcher, current, failure, now),
        None => fail(failure),
    }
}

fn catch(
    catcher: &Catcher,
    current: &ExecutionState,
    failure: Failure,
    now: Timestamp,
) -> Transition {
    let error_output = json!({"Error": failure.error, "Cause": failure.cause});
    match apply_result_path(catcher.result_path.as_ref(), &current.input, error_output) {
        Ok(output) => Transition::Continue(ExecutionState::entering(&catcher.next, output, now)),
        Err(failure) => fail(failure),
    }
}

#[cfg(test)]
mod tests;
