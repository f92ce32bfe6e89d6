//! The embedded workflows adapter: the ASL interpreter of `tern-asl`, durable in SQLite and driven by the
//! clock port.
//!
//! `start` only records an execution; [`EmbeddedWorkflows::run_due`] moves every execution that can move
//! now (a new start, an elapsed Wait or retry delay, a completed task, a missed deadline). Each step is
//! computed from the stored row and written back in one transaction, conditional on the row not having
//! changed meanwhile, so a crash or a concurrent `stop` never loses or doubles a step. Task dispatch is
//! at-least-once, as on Step Functions: a task recorded as in flight but not yet finished is dispatched
//! again after a restart.

mod names;
mod store;
mod tasks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;
use tern_asl::{Context, ExecutionState, Machine, TaskCall, TaskOutcome, Transition};
use tern_ports::{
    Clock, ExecutionDescription, ExecutionStatus, PortError, PortResult, PublishedVersion, Started,
    StateMachineSpec, Workflows,
};

pub use names::{execution_arn, machine_arn, version_arn};
use store::{ExecutionRow, NewExecution, NewTask, TokenRefusal, Write};
pub use tasks::{
    NoTasks, QueueTaskRunner, SQS_SEND_MESSAGE, SQS_SEND_MESSAGE_WAIT_FOR_TASK_TOKEN, TaskError,
    TaskRunner,
};

/// How many due executions one `run_due` looks at; the rest wait for the next call.
const DUE_BATCH: usize = 1_000;
/// How many steps one execution may take in one `run_due`, so that a loop of Pass states cannot hold the
/// engine; an execution that hits it stays due.
const MAX_STEPS_PER_RUN: usize = 1_000;

/// The workflows port on the shared database.
pub struct EmbeddedWorkflows {
    db: crate::Db,
    clock: Arc<dyn Clock>,
    tasks: Arc<dyn TaskRunner>,
    /// One `run_due` at a time: two would dispatch the same task twice.
    running: tokio::sync::Mutex<()>,
    /// Parsed definitions by (machine, version); versions never change, so entries never go stale.
    machines: Mutex<HashMap<(String, i64), Arc<Machine>>>,
}

impl EmbeddedWorkflows {
    /// Creates the workflow tables if needed. Executions recorded by an earlier process continue at the
    /// next `run_due`.
    pub fn new(
        db: crate::Db,
        clock: Arc<dyn Clock>,
        tasks: Arc<dyn TaskRunner>,
    ) -> PortResult<EmbeddedWorkflows> {
        db.call_blocking(|conn| {
            conn.execute_batch(store::SCHEMA)
                .map_err(crate::db::sqlite_error)
        })?;
        Ok(EmbeddedWorkflows {
            db,
            clock,
            tasks,
            running: tokio::sync::Mutex::new(()),
            machines: Mutex::new(HashMap::new()),
        })
    }

    /// Advances every execution that can move now, and returns how many steps ran. The host calls it on a
    /// timer; tests call it until it returns 0.
    pub async fn run_due(&self) -> PortResult<usize> {
        let _one_at_a_time = self.running.lock().await;
        let now_ms = self.clock.now().as_millisecond();
        let due = self
            .db
            .call(move |conn| store::due_executions(conn, now_ms, DUE_BATCH))
            .await?;
        let mut steps = 0;
        for id in due {
            steps += self.advance(&id).await?;
        }
        Ok(steps)
    }

    /// Steps one execution until it must wait, ends, or reaches the per-run limit.
    async fn advance(&self, id: &str) -> PortResult<usize> {
        let mut steps = 0;
        for _ in 0..MAX_STEPS_PER_RUN {
            let now = self.clock.now();
            let Some(row) = self.load(id).await? else {
                break;
            };
            let due = row.status == store::RUNNING
                && row
                    .wake_at_ms
                    .is_some_and(|wake| wake <= now.as_millisecond());
            if !due {
                break;
            }
            if self.step_once(&row, now).await? {
                steps += 1;
            }
        }
        Ok(steps)
    }

    /// Takes one step of a due execution; returns whether anything was written.
    async fn step_once(&self, row: &ExecutionRow, now: Timestamp) -> PortResult<bool> {
        let now_ms = now.as_millisecond();
        if row.deadline_ms.is_some_and(|deadline| deadline <= now_ms) {
            let write = Write::End {
                status: "TIMED_OUT",
                output: None,
                error: Some(tern_asl::names::TIMEOUT.into()),
                cause: Some("the execution ran longer than its TimeoutSeconds".into()),
            };
            return self.write(row, write, Some("timed_out"), now_ms).await;
        }
        let cursor: ExecutionState =
            store::decode(row.cursor.as_deref().unwrap_or("null"), "execution cursor")?;
        match (&row.task_id, &row.task) {
            (Some(task_id), Some(task)) => {
                let call: TaskCall = store::decode(task, "task call")?;
                if row.task_dispatched {
                    self.time_out_task(row, task_id, &cursor, &call, now_ms)
                        .await
                } else {
                    self.dispatch(row, task_id, &cursor, call, now).await
                }
            }
            _ => {
                let machine = self.machine(&row.machine, row.version).await?;
                let context = self.context(row)?;
                let transition = tern_asl::step(&machine, &cursor, &context, now);
                self.apply(row, transition, now_ms).await
            }
        }
    }

    /// A token task whose wake time came has missed its deadline.
    async fn time_out_task(
        &self,
        row: &ExecutionRow,
        task_id: &str,
        cursor: &ExecutionState,
        call: &TaskCall,
        now_ms: i64,
    ) -> PortResult<bool> {
        let Some(deadline) = &call.deadline else {
            // A token task without a deadline is never due; nothing to do until its token is completed.
            return Ok(false);
        };
        let timed_out = encode(&cursor.finished(deadline.outcome()))?;
        self.record(row, task_id, timed_out, Some("timed_out"), now_ms)
            .await
    }

    /// Hands a task to the runner. A plain task's outcome is recorded at once; a token task waits for its
    /// token (or deadline), and its outcome may even arrive before the dispatch is marked.
    async fn dispatch(
        &self,
        row: &ExecutionRow,
        task_id: &str,
        cursor: &ExecutionState,
        call: TaskCall,
        now: Timestamp,
    ) -> PortResult<bool> {
        let result = self.run_task(&call, now).await;
        let now_ms = self.clock.now().as_millisecond();
        match (&call.token, result) {
            (Some(_), Ok(_)) => {
                let wake = call
                    .deadline
                    .as_ref()
                    .map(|deadline| deadline.at.as_millisecond());
                let wake = earliest(wake, row.deadline_ms);
                let (id, task_id) = (row.id.clone(), task_id.to_string());
                self.db
                    .call(move |conn| store::mark_dispatched(conn, &id, &task_id, wake))
                    .await
            }
            (token, outcome) => {
                let outcome = match outcome {
                    Ok(output) => TaskOutcome::Succeeded { output },
                    Err(error) => TaskOutcome::Failed {
                        error: error.error,
                        cause: error.cause,
                    },
                };
                let close = token.as_ref().map(|_| "closed");
                self.record(
                    row,
                    task_id,
                    encode(&cursor.finished(outcome))?,
                    close,
                    now_ms,
                )
                .await
            }
        }
    }

    async fn run_task(&self, call: &TaskCall, now: Timestamp) -> Result<Value, TaskError> {
        let run = self
            .tasks
            .run(&call.resource, call.input.clone(), call.token.as_deref());
        // A token task's deadline covers the wait for its token, which the engine watches; a plain task's
        // covers the call itself.
        let limit = match (&call.token, &call.deadline) {
            (None, Some(deadline)) => Some(deadline),
            _ => None,
        };
        let Some(deadline) = limit else {
            return run.await;
        };
        let budget = now.duration_until(deadline.at).unsigned_abs();
        match tokio::time::timeout(budget, run).await {
            Ok(result) => result,
            Err(_) => Err(TaskError::new(
                deadline.error.clone(),
                format!("the task did not complete within {budget:?}"),
            )),
        }
    }

    async fn apply(
        &self,
        row: &ExecutionRow,
        transition: Transition,
        now_ms: i64,
    ) -> PortResult<bool> {
        let write = match transition {
            Transition::Continue(next) => Write::Continue {
                cursor: encode(&next)?,
                task: None,
                wake_at_ms: earliest(Some(now_ms), row.deadline_ms),
            },
            Transition::Sleep { until, state } => Write::Continue {
                cursor: encode(&state)?,
                task: None,
                wake_at_ms: earliest(Some(until.as_millisecond()), row.deadline_ms),
            },
            Transition::RunTask { call, state } => {
                let task = NewTask {
                    id: call
                        .token
                        .clone()
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                    call: encode(&call)?,
                    token: call.token.clone(),
                    state: state.state.clone(),
                };
                Write::Continue {
                    cursor: encode(&state)?,
                    task: Some(task),
                    wake_at_ms: Some(now_ms),
                }
            }
            Transition::Idle => Write::End {
                status: "FAILED",
                output: None,
                error: Some(tern_asl::names::RUNTIME.into()),
                cause: Some("the execution's running task was lost".into()),
            },
            Transition::Succeeded { output } => Write::End {
                status: "SUCCEEDED",
                output: Some(output.to_string()),
                error: None,
                cause: None,
            },
            Transition::Failed { error, cause } => Write::End {
                status: "FAILED",
                output: None,
                error,
                cause,
            },
        };
        self.write(row, write, None, now_ms).await
    }

    async fn write(
        &self,
        row: &ExecutionRow,
        write: Write,
        close_tokens_as: Option<&'static str>,
        now_ms: i64,
    ) -> PortResult<bool> {
        let (id, revision) = (row.id.clone(), row.revision);
        self.db
            .call(move |conn| {
                store::write_step(conn, &id, revision, &write, close_tokens_as, now_ms)
            })
            .await
    }

    async fn record(
        &self,
        row: &ExecutionRow,
        task_id: &str,
        cursor: String,
        close_tokens_as: Option<&'static str>,
        now_ms: i64,
    ) -> PortResult<bool> {
        let (id, task_id) = (row.id.clone(), task_id.to_string());
        self.db
            .call(move |conn| {
                store::record_outcome(conn, &id, &task_id, &cursor, close_tokens_as, now_ms)
            })
            .await
    }

    async fn load(&self, id: &str) -> PortResult<Option<ExecutionRow>> {
        let id = id.to_string();
        self.db
            .call(move |conn| store::load_execution(conn, &id))
            .await
    }

    async fn machine(&self, machine: &str, version: i64) -> PortResult<Arc<Machine>> {
        let key = (machine.to_string(), version);
        if let Some(parsed) = self.cached(&key)? {
            return Ok(parsed);
        }
        let (name, lookup) = key.clone();
        let definition = self
            .db
            .call(move |conn| store::definition(conn, &name, lookup))
            .await?
            .ok_or_else(|| PortError::NotFound(version_arn(machine, version)))?;
        let document: Value = store::decode(&definition, "state machine definition")?;
        let parsed = Arc::new(Machine::parse(&document).map_err(|e| {
            PortError::Other(format!("stored definition of {machine}:{version}: {e}"))
        })?);
        self.machines
            .lock()
            .map_err(|_| PortError::Other("definition cache lock poisoned".into()))?
            .insert(key, Arc::clone(&parsed));
        Ok(parsed)
    }

    fn cached(&self, key: &(String, i64)) -> PortResult<Option<Arc<Machine>>> {
        let cache = self
            .machines
            .lock()
            .map_err(|_| PortError::Other("definition cache lock poisoned".into()))?;
        Ok(cache.get(key).cloned())
    }

    fn context(&self, row: &ExecutionRow) -> PortResult<Context> {
        Ok(Context {
            execution_id: row.id.clone(),
            execution_name: row.name.clone(),
            execution_input: store::decode(&row.input, "execution input")?,
            start_time: timestamp(row.started_ms)?,
            state_machine_id: machine_arn(&row.machine),
            state_machine_name: row.machine.clone(),
            task_token: Some(uuid::Uuid::new_v4().to_string()),
        })
    }

    async fn complete(&self, token: &str, outcome: TaskOutcome) -> PortResult<()> {
        let now_ms = self.clock.now().as_millisecond();
        let owned = token.to_string();
        let refusal = self
            .db
            .call(move |conn| {
                store::complete_token(
                    conn,
                    &owned,
                    |cursor| {
                        let cursor: ExecutionState = store::decode(cursor, "execution cursor")?;
                        encode(&cursor.finished(outcome))
                    },
                    now_ms,
                )
            })
            .await?;
        match refusal {
            Ok(()) => Ok(()),
            Err(TokenRefusal::Unknown) => Err(PortError::NotFound(format!(
                "no task was given the token `{token}`"
            ))),
            Err(TokenRefusal::Closed(reason)) => Err(PortError::Rejected(format!(
                "the task of token `{token}` is no longer waiting ({reason})"
            ))),
        }
    }
}

#[async_trait]
impl Workflows for EmbeddedWorkflows {
    async fn publish(&self, spec: &StateMachineSpec) -> PortResult<PublishedVersion> {
        names::validate_name("state machine", &spec.name)?;
        Machine::parse(&spec.definition).map_err(|e| {
            PortError::Rejected(format!(
                "invalid definition of state machine {}: {e}",
                spec.name
            ))
        })?;
        let (name, definition) = (spec.name.clone(), spec.definition.to_string());
        let now_ms = self.clock.now().as_millisecond();
        let version = self
            .db
            .call(move |conn| store::publish(conn, &name, &definition, now_ms))
            .await?;
        Ok(PublishedVersion {
            state_machine: machine_arn(&spec.name),
            version: version_arn(&spec.name, version),
        })
    }

    async fn start(&self, target: &str, name: &str, input: Value) -> PortResult<Started> {
        names::validate_name("execution", name)?;
        let (machine_name, version) = match names::parse_target(target)? {
            names::Target::Latest(machine) => {
                let lookup = machine.clone();
                let latest = self
                    .db
                    .call(move |conn| store::latest_version(conn, &lookup))
                    .await?;
                let latest = latest
                    .ok_or_else(|| PortError::NotFound(format!("state machine `{target}`")))?;
                (machine, latest)
            }
            names::Target::Version(machine, version) => (machine, version),
        };
        let machine = self
            .machine(&machine_name, version)
            .await
            .map_err(|error| match error {
                PortError::NotFound(_) => PortError::NotFound(format!("state machine `{target}`")),
                other => other,
            })?;
        let now = self.clock.now();
        let deadline_ms = machine
            .timeout_seconds
            .and_then(|seconds| {
                now.checked_add(jiff::SignedDuration::from_secs(
                    i64::try_from(seconds).ok()?,
                ))
                .ok()
            })
            .map(|deadline| deadline.as_millisecond());
        let new = NewExecution {
            id: execution_arn(&machine_name, name),
            machine: machine_name,
            version,
            name: name.to_string(),
            input: input.to_string(),
            cursor: encode(&ExecutionState::start(&machine, input, now))?,
            deadline_ms,
            now_ms: now.as_millisecond(),
        };
        let (execution, created) = self
            .db
            .call(move |conn| store::insert_execution(conn, &new))
            .await?;
        Ok(Started { execution, created })
    }

    async fn stop(
        &self,
        execution: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> PortResult<()> {
        let now_ms = self.clock.now().as_millisecond();
        let (id, error, cause) = (
            execution.to_string(),
            error.map(str::to_string),
            cause.map(str::to_string),
        );
        let found = self
            .db
            .call(move |conn| store::stop(conn, &id, error.as_deref(), cause.as_deref(), now_ms))
            .await?;
        if found {
            Ok(())
        } else {
            Err(PortError::NotFound(format!("execution `{execution}`")))
        }
    }

    async fn send_task_success(&self, token: &str, output: Value) -> PortResult<()> {
        self.complete(token, TaskOutcome::Succeeded { output })
            .await
    }

    async fn send_task_failure(&self, token: &str, error: &str, cause: &str) -> PortResult<()> {
        self.complete(
            token,
            TaskOutcome::Failed {
                error: error.to_string(),
                cause: cause.to_string(),
            },
        )
        .await
    }

    async fn describe(&self, execution: &str) -> PortResult<ExecutionDescription> {
        let row = self
            .load(execution)
            .await?
            .ok_or_else(|| PortError::NotFound(format!("execution `{execution}`")))?;
        describe(&row)
    }
}

fn describe(row: &ExecutionRow) -> PortResult<ExecutionDescription> {
    let status = match row.status.as_str() {
        "RUNNING" => ExecutionStatus::Running,
        "SUCCEEDED" => ExecutionStatus::Succeeded,
        "FAILED" => ExecutionStatus::Failed,
        "TIMED_OUT" => ExecutionStatus::TimedOut,
        "ABORTED" => ExecutionStatus::Aborted,
        other => {
            return Err(PortError::Other(format!(
                "execution {} has an unknown status {other}",
                row.id
            )));
        }
    };
    Ok(ExecutionDescription {
        execution: row.id.clone(),
        name: row.name.clone(),
        status,
        input: store::decode(&row.input, "execution input")?,
        output: row
            .output
            .as_deref()
            .map(|output| store::decode(output, "execution output"))
            .transpose()?,
        error: row.error.clone(),
        cause: row.cause.clone(),
        started_at: timestamp(row.started_ms)?,
        stopped_at: row.stopped_ms.map(timestamp).transpose()?,
    })
}

fn encode<T: serde::Serialize>(value: &T) -> PortResult<String> {
    serde_json::to_string(value)
        .map_err(|e| PortError::Other(format!("cannot encode workflow state: {e}")))
}

fn timestamp(ms: i64) -> PortResult<Timestamp> {
    Timestamp::from_millisecond(ms)
        .map_err(|e| PortError::Other(format!("stored time {ms} is out of range: {e}")))
}

/// The earlier of two optional times; `None` only when both are.
fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
