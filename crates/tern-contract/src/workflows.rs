//! The workflows port's contract cases.
//!
//! The cases need more than the port: the embedded engine runs only when driven, time must pass for Wait
//! states, and task tokens travel through a queue. A [`WorkflowHarness`] supplies those; each adapter's test
//! binary builds one per case and expands [`workflows_contract!`](crate::workflows_contract) with it.
//!
//! Every case publishes its own uniquely named state machines and queues, so cases run in parallel against
//! one engine and against a long-lived moto server. What the cases leave out, and why:
//! - the cause of `send_task_failure`: moto drops it (its response handler passes only the error);
//! - the error and cause given to `stop`: moto ignores both;
//! - starting an execution on a version when [`WorkflowHarness::starts_versions`] is false: moto answers
//!   StartExecution on a version ARN with an internal error.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tern_ports::{
    ExecutionDescription, ExecutionStatus, PortError, PublishedVersion, Queue, QueueSpec, Received,
    StateMachineSpec, Workflows,
};
use tokio::time::Instant;

use crate::unique_name;

/// What the cases need besides the port.
#[async_trait]
pub trait WorkflowHarness: Send + Sync {
    fn workflows(&self) -> &dyn Workflows;

    /// The queue that `sqs:sendMessage` tasks deliver to.
    fn queue(&self) -> &dyn Queue;

    /// What a definition writes as `QueueUrl` to reach the queue `name` (already declared).
    async fn queue_url(&self, name: &str) -> String;

    /// Lets the engine run whatever is due: the embedded engine steps its executions until none can move;
    /// Step Functions runs by itself.
    async fn settle(&self);

    /// Lets `seconds` pass: a virtual clock moves on the embedded engine; on AWS the case really waits.
    async fn advance(&self, seconds: u64);

    /// The role given to every published state machine.
    fn role_arn(&self) -> Option<String>;

    /// Whether an execution may be started on a version identifier (moto cannot).
    fn starts_versions(&self) -> bool {
        true
    }
}

/// Expands every workflows case into one `#[tokio::test]` for the harness that `$factory` (an async
/// expression whose value dereferences to a `WorkflowHarness`) builds afresh for each case.
#[macro_export]
macro_rules! workflows_contract {
    ($factory:expr) => {
        $crate::workflows_contract!(@cases $factory;
            publish_creates_a_state_machine_and_a_version,
            an_invalid_definition_is_rejected,
            a_new_version_leaves_started_executions_on_their_definition,
            pass_and_choice_reach_the_matching_branch,
            choice_takes_its_default_when_no_rule_matches,
            a_fail_state_fails_with_its_error_and_cause,
            starting_a_name_twice_runs_one_execution,
            starting_an_unknown_state_machine_is_not_found,
            stopping_a_waiting_execution_aborts_it,
            a_one_second_wait_completes,
            task_token_success_completes_the_task,
            task_token_failure_fails_the_execution,
            task_token_failure_can_be_caught,
            a_token_task_times_out,
            describing_an_unknown_execution_is_not_found,
            a_bogus_task_token_is_not_found,
        );
    };
    (@cases $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $factory.await;
                $crate::workflows::$case(&*harness).await;
            }
        )+
    };
}

/// How long a case waits for an execution or a message before it fails.
const PATIENCE: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

async fn publish<H: WorkflowHarness + ?Sized>(
    harness: &H,
    name: &str,
    definition: Value,
) -> PublishedVersion {
    let spec = StateMachineSpec {
        name: name.to_string(),
        definition,
        role_arn: harness.role_arn(),
    };
    harness
        .workflows()
        .publish(&spec)
        .await
        .unwrap_or_else(|e| panic!("publish {name}: {e}"))
}

async fn publish_new<H: WorkflowHarness + ?Sized>(
    harness: &H,
    prefix: &str,
    definition: Value,
) -> PublishedVersion {
    publish(harness, &unique_name(prefix), definition).await
}

async fn start<H: WorkflowHarness + ?Sized>(harness: &H, target: &str, input: Value) -> String {
    let started = harness
        .workflows()
        .start(target, &unique_name("run"), input)
        .await
        .expect("start an execution");
    assert!(started.created, "a new name creates an execution");
    started.execution
}

/// Describes the execution until it has `status`, letting the engine settle between looks. Fails the case
/// when the execution ends with another status or the wait runs out.
async fn wait_for<H: WorkflowHarness + ?Sized>(
    harness: &H,
    execution: &str,
    status: ExecutionStatus,
) -> ExecutionDescription {
    let give_up = Instant::now() + PATIENCE;
    loop {
        harness.settle().await;
        let description = harness
            .workflows()
            .describe(execution)
            .await
            .expect("describe the execution");
        if description.status == status {
            return description;
        }
        assert!(
            description.status == ExecutionStatus::Running && Instant::now() < give_up,
            "expected {execution} to become {status:?}, got {description:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Declares a fresh queue and returns its name and the `QueueUrl` that reaches it.
async fn fresh_queue<H: WorkflowHarness + ?Sized>(harness: &H) -> (String, String) {
    let name = unique_name("wf-queue");
    let spec = QueueSpec {
        name: name.clone(),
        visibility_timeout: Duration::from_secs(60),
        dead_letter: None,
    };
    harness
        .queue()
        .declare(&spec)
        .await
        .expect("declare the queue");
    let url = harness.queue_url(&name).await;
    (name, url)
}

/// Receives (and deletes) the next message of `queue`, letting the engine settle between polls.
async fn receive_one<H: WorkflowHarness + ?Sized>(harness: &H, queue: &str) -> Received {
    let give_up = Instant::now() + PATIENCE;
    loop {
        harness.settle().await;
        let mut received = harness
            .queue()
            .receive(queue, 1, Duration::from_millis(500))
            .await
            .expect("receive");
        if let Some(message) = received.pop() {
            harness
                .queue()
                .delete(queue, &message.receipt)
                .await
                .expect("delete the received message");
            return message;
        }
        assert!(Instant::now() < give_up, "no message arrived on {queue}");
    }
}

fn body_json(message: &Received) -> Value {
    serde_json::from_str(&message.body)
        .unwrap_or_else(|e| panic!("message body {} is not JSON: {e}", message.body))
}

fn pass_machine(result: Value) -> Value {
    json!({"StartAt": "Answer", "States": {"Answer": {"Type": "Pass", "Result": result, "End": true}}})
}

fn expect_not_found<T: std::fmt::Debug>(result: Result<T, PortError>, what: &str) {
    assert!(
        matches!(result, Err(PortError::NotFound(_))),
        "{what}: expected NotFound, got {result:?}"
    );
}

/// A task that hands its token out through `queue_url` and waits for it; `extra` adds fields to the state.
fn token_machine(queue_url: &str, extra: Value) -> Value {
    let mut task = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": queue_url, "MessageBody": {"token.$": "$$.Task.Token", "user.$": "$.user"}},
        "ResultPath": "$.reply",
        "Next": "Done"
    });
    let mut states = json!({"Done": {"Type": "Succeed"}});
    if let (Some(task), Some(extra)) = (task.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            task.insert(key.clone(), value.clone());
        }
    }
    if task.get("Catch").is_some() {
        states["Handled"] = json!({"Type": "Pass", "End": true});
    }
    states["AwaitReply"] = task;
    json!({"StartAt": "AwaitReply", "States": states})
}

/// Starts a token machine and returns the execution and the token its message carried.
async fn start_token_task<H: WorkflowHarness + ?Sized>(
    harness: &H,
    extra: Value,
) -> (String, String) {
    let (queue, url) = fresh_queue(harness).await;
    let published = publish_new(harness, "wf-token", token_machine(&url, extra)).await;
    let execution = start(harness, &published.state_machine, json!({"user": "u-1"})).await;
    let message = body_json(&receive_one(harness, &queue).await);
    assert_eq!(
        message["user"],
        json!("u-1"),
        "the message body is rendered from the Parameters"
    );
    let token = message["token"]
        .as_str()
        .expect("the message carries the task token")
        .to_string();
    (execution, token)
}

pub async fn publish_creates_a_state_machine_and_a_version<H: WorkflowHarness + ?Sized>(
    harness: &H,
) {
    let published = publish_new(harness, "wf-publish", pass_machine(json!({"answer": 42}))).await;
    assert!(!published.state_machine.is_empty());
    assert_ne!(
        published.version, published.state_machine,
        "a version is not the state machine itself"
    );

    let execution = start(harness, &published.state_machine, json!({})).await;
    let done = wait_for(harness, &execution, ExecutionStatus::Succeeded).await;
    assert_eq!(done.output, Some(json!({"answer": 42})));
}

pub async fn an_invalid_definition_is_rejected<H: WorkflowHarness + ?Sized>(harness: &H) {
    let spec = StateMachineSpec {
        name: unique_name("wf-invalid"),
        definition: json!({"StartAt": "Only", "States": {"Only": {"Type": "Bogus", "End": true}}}),
        role_arn: harness.role_arn(),
    };
    let result = harness.workflows().publish(&spec).await;
    assert!(
        matches!(result, Err(PortError::Rejected(_))),
        "expected Rejected, got {result:?}"
    );
}

pub async fn a_new_version_leaves_started_executions_on_their_definition<
    H: WorkflowHarness + ?Sized,
>(
    harness: &H,
) {
    let name = unique_name("wf-versions");
    let definition = |label: &str| {
        json!({"StartAt": "Pause", "States": {
            "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Answer"},
            "Answer": {"Type": "Pass", "Result": {"definition": label}, "End": true}
        }})
    };
    let first = publish(harness, &name, definition("v1")).await;
    let started_on_first = start(harness, &first.state_machine, json!({})).await;
    harness.settle().await;

    let second = publish(harness, &name, definition("v2")).await;
    assert_eq!(
        second.state_machine, first.state_machine,
        "a new version belongs to the same state machine"
    );
    assert_ne!(
        second.version, first.version,
        "publishing a changed definition gives a new version"
    );

    let started_on_second = start(harness, &second.state_machine, json!({})).await;
    let pinned = if harness.starts_versions() {
        Some(start(harness, &first.version, json!({})).await)
    } else {
        None
    };
    harness.advance(1).await;

    let old = wait_for(harness, &started_on_first, ExecutionStatus::Succeeded).await;
    assert_eq!(
        old.output,
        Some(json!({"definition": "v1"})),
        "an execution keeps the definition it started on"
    );
    let new = wait_for(harness, &started_on_second, ExecutionStatus::Succeeded).await;
    assert_eq!(
        new.output,
        Some(json!({"definition": "v2"})),
        "the state machine runs its latest definition"
    );
    if let Some(pinned) = pinned {
        let pinned = wait_for(harness, &pinned, ExecutionStatus::Succeeded).await;
        assert_eq!(
            pinned.output,
            Some(json!({"definition": "v1"})),
            "a version runs its own definition"
        );
    }
}

fn routing_machine() -> Value {
    json!({
        "StartAt": "Score",
        "States": {
            "Score": {"Type": "Pass", "Result": {"points": 42}, "ResultPath": "$.score", "Next": "Route"},
            "Route": {
                "Type": "Choice",
                "Choices": [
                    {"And": [
                        {"Variable": "$.score.points", "NumericGreaterThanEquals": 40},
                        {"Variable": "$.tier", "StringEquals": "gold"}
                    ], "Next": "Gold"},
                    {"Variable": "$.tier", "StringMatches": "silver*", "Next": "Silver"}
                ],
                "Default": "Standard"
            },
            "Gold": {"Type": "Pass", "Parameters": {"lane": "gold", "user.$": "$.user", "points.$": "$.score.points"}, "End": true},
            "Silver": {"Type": "Pass", "Parameters": {"lane": "silver", "user.$": "$.user"}, "End": true},
            "Standard": {"Type": "Pass", "Parameters": {"lane": "standard", "user.$": "$.user"}, "End": true}
        }
    })
}

pub async fn pass_and_choice_reach_the_matching_branch<H: WorkflowHarness + ?Sized>(harness: &H) {
    let published = publish_new(harness, "wf-choice", routing_machine()).await;
    let gold = start(
        harness,
        &published.state_machine,
        json!({"user": "u-1", "tier": "gold"}),
    )
    .await;
    let silver = start(
        harness,
        &published.state_machine,
        json!({"user": "u-2", "tier": "silver-plus"}),
    )
    .await;

    let gold = wait_for(harness, &gold, ExecutionStatus::Succeeded).await;
    assert_eq!(
        gold.output,
        Some(json!({"lane": "gold", "user": "u-1", "points": 42}))
    );
    assert_eq!(gold.input, json!({"user": "u-1", "tier": "gold"}));
    assert!(
        gold.stopped_at
            .is_some_and(|stopped| stopped >= gold.started_at)
    );
    let silver = wait_for(harness, &silver, ExecutionStatus::Succeeded).await;
    assert_eq!(
        silver.output,
        Some(json!({"lane": "silver", "user": "u-2"}))
    );
}

pub async fn choice_takes_its_default_when_no_rule_matches<H: WorkflowHarness + ?Sized>(
    harness: &H,
) {
    let published = publish_new(harness, "wf-default", routing_machine()).await;
    let execution = start(
        harness,
        &published.state_machine,
        json!({"user": "u-3", "tier": "bronze"}),
    )
    .await;
    let done = wait_for(harness, &execution, ExecutionStatus::Succeeded).await;
    assert_eq!(
        done.output,
        Some(json!({"lane": "standard", "user": "u-3"}))
    );
}

pub async fn a_fail_state_fails_with_its_error_and_cause<H: WorkflowHarness + ?Sized>(harness: &H) {
    let definition = json!({"StartAt": "Check", "States": {
        "Check": {"Type": "Pass", "Next": "Refuse"},
        "Refuse": {"Type": "Fail", "Error": "Journey.Ineligible", "Cause": "the user has unsubscribed"}
    }});
    let published = publish_new(harness, "wf-fail", definition).await;
    let execution = start(harness, &published.state_machine, json!({"user": "u-4"})).await;
    let failed = wait_for(harness, &execution, ExecutionStatus::Failed).await;
    assert_eq!(failed.error.as_deref(), Some("Journey.Ineligible"));
    assert_eq!(failed.cause.as_deref(), Some("the user has unsubscribed"));
    assert_eq!(failed.output, None);
    assert!(failed.stopped_at.is_some());
}

pub async fn starting_a_name_twice_runs_one_execution<H: WorkflowHarness + ?Sized>(harness: &H) {
    let (queue, url) = fresh_queue(harness).await;
    let definition = json!({"StartAt": "Announce", "States": {
        "Announce": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {"QueueUrl": url, "MessageBody": {"execution.$": "$$.Execution.Name", "input.$": "$"}},
            "ResultPath": null,
            "Next": "Linger"
        },
        "Linger": {"Type": "Wait", "Seconds": 3600, "End": true}
    }});
    let published = publish_new(harness, "wf-idempotent", definition).await;
    let name = unique_name("entry");
    let workflows = harness.workflows();

    let first = workflows
        .start(&published.state_machine, &name, json!({"n": 1}))
        .await
        .expect("first start");
    assert!(first.created);
    let again = workflows
        .start(&published.state_machine, &name, json!({"n": 1}))
        .await
        .expect("same start again");
    assert_eq!(again.execution, first.execution);
    assert!(
        !again.created,
        "the same name returns the existing execution"
    );
    let other_input = workflows
        .start(&published.state_machine, &name, json!({"n": 2}))
        .await
        .expect("start with another input");
    assert_eq!(other_input.execution, first.execution);
    assert!(!other_input.created);

    let message = body_json(&receive_one(harness, &queue).await);
    assert_eq!(message, json!({"execution": name, "input": {"n": 1}}));
    harness.settle().await;
    let more = harness
        .queue()
        .receive(&queue, 10, Duration::from_secs(2))
        .await
        .expect("receive again");
    assert!(
        more.is_empty(),
        "only one execution ran, yet more messages arrived: {more:?}"
    );

    let description = workflows
        .describe(&first.execution)
        .await
        .expect("describe");
    assert_eq!(description.name, name);
    assert_eq!(description.input, json!({"n": 1}));
    workflows
        .stop(&first.execution, None, None)
        .await
        .expect("stop the lingering execution");
}

pub async fn starting_an_unknown_state_machine_is_not_found<H: WorkflowHarness + ?Sized>(
    harness: &H,
) {
    let published = publish_new(harness, "wf-known", pass_machine(json!({}))).await;
    let unknown = format!("{}-missing", published.state_machine);
    let result = harness
        .workflows()
        .start(&unknown, &unique_name("run"), json!({}))
        .await;
    expect_not_found(result, "start on an unknown state machine");
}

pub async fn stopping_a_waiting_execution_aborts_it<H: WorkflowHarness + ?Sized>(harness: &H) {
    let definition = json!({"StartAt": "Linger", "States": {"Linger": {"Type": "Wait", "Seconds": 3600, "End": true}}});
    let published = publish_new(harness, "wf-stop", definition).await;
    let execution = start(harness, &published.state_machine, json!({"user": "u-5"})).await;
    harness.settle().await;
    assert_eq!(
        harness
            .workflows()
            .describe(&execution)
            .await
            .expect("describe")
            .status,
        ExecutionStatus::Running
    );

    harness
        .workflows()
        .stop(&execution, Some("Journey.Exited"), Some("the user left"))
        .await
        .expect("stop");
    let stopped = wait_for(harness, &execution, ExecutionStatus::Aborted).await;
    let stopped_at = stopped
        .stopped_at
        .expect("a stopped execution has a stop time");
    assert!(stopped_at >= stopped.started_at);

    harness
        .workflows()
        .stop(&execution, None, None)
        .await
        .expect("stopping a finished execution is allowed");
    let again = harness
        .workflows()
        .describe(&execution)
        .await
        .expect("describe");
    assert_eq!(again.status, ExecutionStatus::Aborted);
    assert_eq!(
        again.stopped_at,
        Some(stopped_at),
        "stopping again changes nothing"
    );
}

pub async fn a_one_second_wait_completes<H: WorkflowHarness + ?Sized>(harness: &H) {
    let definition = json!({"StartAt": "Pause", "States": {
        "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
        "Done": {"Type": "Succeed"}
    }});
    let published = publish_new(harness, "wf-wait", definition).await;
    let execution = start(harness, &published.state_machine, json!({"user": "u-6"})).await;
    harness.settle().await;
    let waiting = harness
        .workflows()
        .describe(&execution)
        .await
        .expect("describe");
    assert_eq!(
        waiting.status,
        ExecutionStatus::Running,
        "the execution waits"
    );

    harness.advance(1).await;
    let done = wait_for(harness, &execution, ExecutionStatus::Succeeded).await;
    assert_eq!(done.output, Some(json!({"user": "u-6"})));
}

pub async fn task_token_success_completes_the_task<H: WorkflowHarness + ?Sized>(harness: &H) {
    let (execution, token) = start_token_task(harness, json!({"TimeoutSeconds": 300})).await;
    harness.settle().await;
    let waiting = harness
        .workflows()
        .describe(&execution)
        .await
        .expect("describe");
    assert_eq!(
        waiting.status,
        ExecutionStatus::Running,
        "the task waits for its token"
    );

    harness
        .workflows()
        .send_task_success(&token, json!({"clicked": true}))
        .await
        .expect("send_task_success");
    let done = wait_for(harness, &execution, ExecutionStatus::Succeeded).await;
    assert_eq!(
        done.output,
        Some(json!({"user": "u-1", "reply": {"clicked": true}}))
    );
}

pub async fn task_token_failure_fails_the_execution<H: WorkflowHarness + ?Sized>(harness: &H) {
    let (execution, token) = start_token_task(harness, json!({"TimeoutSeconds": 300})).await;
    harness
        .workflows()
        .send_task_failure(&token, "Mail.Bounced", "the mailbox is full")
        .await
        .expect("send_task_failure");
    let failed = wait_for(harness, &execution, ExecutionStatus::Failed).await;
    assert_eq!(failed.error.as_deref(), Some("Mail.Bounced"));
}

pub async fn task_token_failure_can_be_caught<H: WorkflowHarness + ?Sized>(harness: &H) {
    let catch = json!({"Catch": [{"ErrorEquals": ["Mail.Bounced"], "ResultPath": "$.failure", "Next": "Handled"}]});
    let (execution, token) = start_token_task(harness, catch).await;
    harness
        .workflows()
        .send_task_failure(&token, "Mail.Bounced", "the mailbox is full")
        .await
        .expect("send_task_failure");
    let done = wait_for(harness, &execution, ExecutionStatus::Succeeded).await;
    let output = done.output.expect("a succeeded execution has output");
    assert_eq!(output["user"], json!("u-1"));
    assert_eq!(
        output["failure"]["Error"],
        json!("Mail.Bounced"),
        "the catcher placed the error: {output}"
    );
}

pub async fn a_token_task_times_out<H: WorkflowHarness + ?Sized>(harness: &H) {
    let (execution, token) = start_token_task(harness, json!({"TimeoutSeconds": 1})).await;
    harness.advance(2).await;
    let failed = wait_for(harness, &execution, ExecutionStatus::Failed).await;
    assert_eq!(failed.error.as_deref(), Some("States.Timeout"));
    let late = harness
        .workflows()
        .send_task_success(&token, json!({}))
        .await;
    assert!(
        late.is_err(),
        "completing a timed-out task must fail, got {late:?}"
    );
}

pub async fn describing_an_unknown_execution_is_not_found<H: WorkflowHarness + ?Sized>(
    harness: &H,
) {
    let published = publish_new(harness, "wf-describe", pass_machine(json!({}))).await;
    let execution = start(harness, &published.state_machine, json!({})).await;
    let result = harness
        .workflows()
        .describe(&format!("{execution}-missing"))
        .await;
    expect_not_found(result, "describe an unknown execution");
    let result = harness
        .workflows()
        .stop(&format!("{execution}-missing"), None, None)
        .await;
    expect_not_found(result, "stop an unknown execution");
}

pub async fn a_bogus_task_token_is_not_found<H: WorkflowHarness + ?Sized>(harness: &H) {
    let token = unique_name("not-a-task-token");
    expect_not_found(
        harness
            .workflows()
            .send_task_success(&token, json!({}))
            .await,
        "send_task_success",
    );
    expect_not_found(
        harness
            .workflows()
            .send_task_failure(&token, "E", "C")
            .await,
        "send_task_failure",
    );
}
