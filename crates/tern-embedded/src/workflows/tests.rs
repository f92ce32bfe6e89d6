//! What only the embedded engine must prove: durability across restarts and crashes, time from the clock
//! port, and the edges of task tokens.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use jiff::SignedDuration;
use serde_json::json;
use tempfile::TempDir;
use tern_ports::VirtualClock;

use super::*;

/// A runner that records every call and answers from a script (success with `{}` once it runs out).
#[derive(Default)]
struct Scripted {
    calls: Mutex<Vec<(String, Value, Option<String>)>>,
    answers: Mutex<VecDeque<Result<Value, TaskError>>>,
}

impl Scripted {
    fn answering(answers: Vec<Result<Value, TaskError>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            calls: Mutex::default(),
            answers: Mutex::new(answers.into()),
        })
    }

    fn calls(&self) -> Vec<(String, Value, Option<String>)> {
        self.calls.lock().unwrap().clone()
    }

    fn last_token(&self) -> String {
        self.calls()
            .last()
            .and_then(|(_, _, token)| token.clone())
            .expect("a token task ran")
    }
}

#[async_trait]
impl TaskRunner for Scripted {
    async fn run(
        &self,
        resource: &str,
        input: Value,
        token: Option<&str>,
    ) -> Result<Value, TaskError> {
        self.calls
            .lock()
            .unwrap()
            .push((resource.to_string(), input, token.map(str::to_string)));
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(json!({})))
    }
}

/// A runner that never returns, as a process that dies during a dispatch.
struct Hangs;

#[async_trait]
impl TaskRunner for Hangs {
    async fn run(
        &self,
        _resource: &str,
        _input: Value,
        _token: Option<&str>,
    ) -> Result<Value, TaskError> {
        std::future::pending().await
    }
}

struct Setup {
    dir: TempDir,
    clock: Arc<VirtualClock>,
}

impl Setup {
    fn new() -> Setup {
        let start: Timestamp = "2026-03-01T08:00:00Z".parse().unwrap();
        Setup {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(VirtualClock::new(start)),
        }
    }

    /// An engine on the setup's database file: a second call is the same data after a restart.
    fn engine(&self, tasks: Arc<dyn TaskRunner>) -> EmbeddedWorkflows {
        let db = crate::Db::open(&self.dir.path().join("tern.db")).unwrap();
        EmbeddedWorkflows::new(db, self.clock.clone(), tasks).unwrap()
    }

    fn advance(&self, seconds: i64) {
        self.clock.advance(SignedDuration::from_secs(seconds));
    }
}

async fn settle(engine: &EmbeddedWorkflows) -> usize {
    let mut total = 0;
    loop {
        match engine.run_due().await.unwrap() {
            0 => return total,
            steps => total += steps,
        }
    }
}

async fn publish_and_start(engine: &EmbeddedWorkflows, definition: Value, input: Value) -> String {
    let spec = StateMachineSpec {
        name: "journey".into(),
        definition,
        role_arn: None,
    };
    let published = engine.publish(&spec).await.unwrap();
    engine
        .start(&published.state_machine, "user-1", input)
        .await
        .unwrap()
        .execution
}

async fn status(engine: &EmbeddedWorkflows, execution: &str) -> ExecutionDescription {
    engine.describe(execution).await.unwrap()
}

fn token_task(extra: Value) -> Value {
    let mut task = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"token.$": "$$.Task.Token"},
        "End": true
    });
    for (key, value) in extra.as_object().unwrap() {
        task[key] = value.clone();
    }
    json!({"StartAt": "Await", "States": {"Await": task}})
}

#[tokio::test]
async fn start_records_and_run_due_runs() {
    let setup = Setup::new();
    let engine = setup.engine(Arc::new(NoTasks));
    let definition = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}}});
    let execution = publish_and_start(&engine, definition, json!({"x": 1})).await;
    assert_eq!(
        status(&engine, &execution).await.status,
        ExecutionStatus::Running,
        "start runs nothing"
    );
    assert_eq!(settle(&engine).await, 2, "one step per state");
    let done = status(&engine, &execution).await;
    assert_eq!(
        (done.status, done.output),
        (ExecutionStatus::Succeeded, Some(json!({"x": 1})))
    );
}

#[tokio::test]
async fn a_wait_continues_after_a_restart() {
    let setup = Setup::new();
    let definition =
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": true}}});
    let execution = {
        let engine = setup.engine(Arc::new(NoTasks));
        let execution = publish_and_start(&engine, definition, json!({})).await;
        settle(&engine).await;
        execution
    };
    let engine = setup.engine(Arc::new(NoTasks));
    setup.advance(599);
    assert_eq!(
        settle(&engine).await,
        0,
        "nothing is due before the wait ends"
    );
    setup.advance(1);
    settle(&engine).await;
    assert_eq!(
        status(&engine, &execution).await.status,
        ExecutionStatus::Succeeded
    );
}

#[tokio::test]
async fn a_token_wait_continues_after_a_restart() {
    let setup = Setup::new();
    let runner = Scripted::answering(Vec::new());
    let execution = {
        let engine = setup.engine(runner.clone());
        let execution = publish_and_start(&engine, token_task(json!({})), json!({})).await;
        settle(&engine).await;
        execution
    };
    let token = runner.last_token();
    let engine = setup.engine(Arc::new(NoTasks));
    engine
        .send_task_success(&token, json!({"ok": true}))
        .await
        .unwrap();
    settle(&engine).await;
    let done = status(&engine, &execution).await;
    assert_eq!(
        (done.status, done.output),
        (ExecutionStatus::Succeeded, Some(json!({"ok": true})))
    );
    assert_eq!(
        runner.calls().len(),
        1,
        "the restart did not dispatch the task again"
    );
}

#[tokio::test]
async fn a_task_cut_off_by_a_crash_is_dispatched_again() {
    let setup = Setup::new();
    let definition =
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "send", "End": true}}});
    let execution = {
        let engine = setup.engine(Arc::new(Hangs));
        let execution = publish_and_start(&engine, definition, json!({"n": 1})).await;
        let cut_off =
            tokio::time::timeout(std::time::Duration::from_millis(200), engine.run_due()).await;
        assert!(cut_off.is_err(), "the dispatch hangs");
        execution
    };
    let runner = Scripted::answering(vec![Ok(json!("sent"))]);
    let engine = setup.engine(runner.clone());
    settle(&engine).await;
    assert_eq!(
        runner.calls(),
        vec![("send".to_string(), json!({"n": 1}), None)]
    );
    assert_eq!(
        status(&engine, &execution).await.output,
        Some(json!("sent"))
    );
}

#[tokio::test]
async fn retries_wait_on_the_clock() {
    let setup = Setup::new();
    let busy = || Err(TaskError::new("Busy", "try later"));
    let runner = Scripted::answering(vec![busy(), busy(), Ok(json!({"id": 7}))]);
    let engine = setup.engine(runner.clone());
    let definition = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "send",
        "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 5, "BackoffRate": 2.0, "MaxAttempts": 2}],
        "ResultPath": "$.sent",
        "End": true
    }}});
    let execution = publish_and_start(&engine, definition, json!({"n": 1})).await;
    settle(&engine).await;
    assert_eq!(runner.calls().len(), 1);
    setup.advance(4);
    settle(&engine).await;
    assert_eq!(runner.calls().len(), 1, "the first retry waits 5 seconds");
    setup.advance(1);
    settle(&engine).await;
    assert_eq!(runner.calls().len(), 2);
    setup.advance(10);
    settle(&engine).await;
    assert_eq!(runner.calls().len(), 3, "the second retry waits 10 seconds");
    assert_eq!(
        status(&engine, &execution).await.output,
        Some(json!({"n": 1, "sent": {"id": 7}}))
    );
}

#[tokio::test]
async fn a_plain_task_that_outlives_its_timeout_is_caught() {
    let setup = Setup::new();
    let engine = setup.engine(Arc::new(Hangs));
    let definition = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "slow", "TimeoutSeconds": 1,
              "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "Late"}], "End": true},
        "Late": {"Type": "Pass", "End": true}
    }});
    let execution = publish_and_start(&engine, definition, json!({})).await;
    settle(&engine).await;
    let done = status(&engine, &execution).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.output.unwrap()["Error"], json!("States.Timeout"));
}

#[tokio::test]
async fn an_execution_times_out_after_its_timeout_seconds() {
    let setup = Setup::new();
    let engine = setup.engine(Arc::new(NoTasks));
    let definition = json!({"TimeoutSeconds": 60, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}});
    let execution = publish_and_start(&engine, definition, json!({})).await;
    settle(&engine).await;
    setup.advance(60);
    settle(&engine).await;
    let timed_out = status(&engine, &execution).await;
    assert_eq!(timed_out.status, ExecutionStatus::TimedOut);
    assert_eq!(timed_out.error.as_deref(), Some("States.Timeout"));
}

#[tokio::test]
async fn a_heartbeat_deadline_fails_a_token_task() {
    let setup = Setup::new();
    let runner = Scripted::answering(Vec::new());
    let engine = setup.engine(runner.clone());
    let execution = publish_and_start(
        &engine,
        token_task(json!({"TimeoutSeconds": 600, "HeartbeatSeconds": 30})),
        json!({}),
    )
    .await;
    settle(&engine).await;
    setup.advance(30);
    settle(&engine).await;
    assert_eq!(
        status(&engine, &execution).await.error.as_deref(),
        Some("States.HeartbeatTimeout")
    );
    let late = engine
        .send_task_success(&runner.last_token(), json!({}))
        .await;
    assert!(matches!(late, Err(PortError::Rejected(_))), "{late:?}");
}

#[tokio::test]
async fn stopping_closes_the_task_token() {
    let setup = Setup::new();
    let runner = Scripted::answering(Vec::new());
    let engine = setup.engine(runner.clone());
    let execution = publish_and_start(&engine, token_task(json!({})), json!({})).await;
    settle(&engine).await;
    engine
        .stop(&execution, Some("Exit"), Some("left the journey"))
        .await
        .unwrap();
    let stopped = status(&engine, &execution).await;
    assert_eq!(
        (stopped.error.as_deref(), stopped.cause.as_deref()),
        (Some("Exit"), Some("left the journey"))
    );
    let late = engine
        .send_task_failure(&runner.last_token(), "E", "C")
        .await;
    assert!(matches!(late, Err(PortError::Rejected(_))), "{late:?}");
}

/// Completes every token task from inside the dispatch, before the engine marks it dispatched.
struct AnswersAtOnce {
    engine: OnceLock<Weak<EmbeddedWorkflows>>,
}

#[async_trait]
impl TaskRunner for AnswersAtOnce {
    async fn run(
        &self,
        _resource: &str,
        _input: Value,
        token: Option<&str>,
    ) -> Result<Value, TaskError> {
        let engine = self
            .engine
            .get()
            .and_then(Weak::upgrade)
            .expect("the engine is alive");
        let token = token.expect("a token task");
        engine
            .send_task_success(token, json!({"fast": true}))
            .await
            .expect("the token is open during dispatch");
        Ok(json!({}))
    }
}

#[tokio::test]
async fn a_token_completed_during_its_dispatch_counts() {
    let setup = Setup::new();
    let runner = Arc::new(AnswersAtOnce {
        engine: OnceLock::new(),
    });
    let engine = Arc::new(setup.engine(runner.clone()));
    runner
        .engine
        .set(Arc::downgrade(&engine))
        .unwrap_or_else(|_| panic!("set once"));
    let execution =
        publish_and_start(&engine, token_task(json!({"TimeoutSeconds": 5})), json!({})).await;
    settle(&engine).await;
    let done = status(&engine, &execution).await;
    assert_eq!(
        (done.status, done.output),
        (ExecutionStatus::Succeeded, Some(json!({"fast": true})))
    );
}

#[tokio::test]
async fn publishing_an_unchanged_definition_keeps_the_version() {
    let setup = Setup::new();
    let engine = setup.engine(Arc::new(NoTasks));
    let spec = |result: Value| StateMachineSpec {
        name: "journey".into(),
        definition: json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": result, "End": true}}}),
        role_arn: None,
    };
    let first = engine.publish(&spec(json!(1))).await.unwrap();
    assert_eq!(engine.publish(&spec(json!(1))).await.unwrap(), first);
    let second = engine.publish(&spec(json!(2))).await.unwrap();
    assert_eq!(second.version, version_arn("journey", 2));
}

#[tokio::test]
async fn invalid_names_and_definitions_are_refused() {
    let setup = Setup::new();
    let engine = setup.engine(Arc::new(NoTasks));
    let spec = StateMachineSpec {
        name: "journey".into(),
        definition: json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true}}}),
        role_arn: None,
    };
    let refused = engine.publish(&spec).await.unwrap_err();
    assert_eq!(
        refused,
        PortError::Rejected(
            "invalid definition of state machine journey: state `M`, field `Type`: `Map` states are not supported yet"
                .into()
        )
    );
    let definition = json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}});
    let published = engine
        .publish(&StateMachineSpec { definition, ..spec })
        .await
        .unwrap();
    let bad_name = engine
        .start(&published.state_machine, "has space", json!({}))
        .await;
    assert!(
        matches!(bad_name, Err(PortError::Invalid(_))),
        "{bad_name:?}"
    );
}
