//! Whole machines, run by a small driver that plays the engine's part.

use serde_json::{Value, json};

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn context(token: &str) -> Context {
    Context {
        execution_id: "exec-1".into(),
        execution_name: "run-1".into(),
        execution_input: json!({"from": "start"}),
        start_time: at("2026-01-01T00:00:00Z"),
        state_machine_id: "machine-1".into(),
        state_machine_name: "journey".into(),
        task_token: Some(token.into()),
    }
}

/// How a run ended, what it dispatched, and when (on the driver's clock) it ended.
struct Run {
    end: Transition,
    calls: Vec<TaskCall>,
    now: Timestamp,
    sleeps: Vec<Timestamp>,
}

fn run(definition: Value, input: Value, mut tasks: impl FnMut(&TaskCall) -> TaskOutcome) -> Run {
    let machine = Machine::parse(&definition).expect("a valid definition");
    let mut now = at("2026-01-01T00:00:00Z");
    let mut current = ExecutionState::start(&machine, input, now);
    let mut calls = Vec::new();
    let mut sleeps = Vec::new();
    for step_number in 0..1_000 {
        let ctx = context(&format!("token-{step_number}"));
        match step(&machine, &current, &ctx, now) {
            Transition::Continue(next) => current = next,
            Transition::Sleep { until, state } => {
                assert!(until > now, "a sleep moves time forward");
                now = until;
                sleeps.push(until);
                current = state;
            }
            Transition::RunTask { call, state } => {
                assert_eq!(state.phase, Phase::Running);
                let outcome = tasks(&call);
                calls.push(call);
                current = state.finished(outcome);
            }
            Transition::Idle => panic!("the driver always records a task's outcome"),
            end => {
                return Run {
                    end,
                    calls,
                    now,
                    sleeps,
                };
            }
        }
    }
    panic!("the machine did not stop within 1000 steps")
}

fn no_tasks(call: &TaskCall) -> TaskOutcome {
    panic!("unexpected task {call:?}")
}

fn succeeded(run: &Run) -> Value {
    match &run.end {
        Transition::Succeeded { output } => output.clone(),
        other => panic!("expected success, got {other:?}"),
    }
}

fn failed(run: &Run) -> (Option<String>, Option<String>) {
    match &run.end {
        Transition::Failed { error, cause } => (error.clone(), cause.clone()),
        other => panic!("expected failure, got {other:?}"),
    }
}

fn pass_choice_machine() -> Value {
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
                    ], "Next": "Gold"}
                ],
                "Default": "Standard"
            },
            "Gold": {"Type": "Pass", "Parameters": {"lane": "gold", "user.$": "$.user"}, "End": true},
            "Standard": {"Type": "Pass", "Parameters": {"lane": "standard", "user.$": "$.user"}, "End": true}
        }
    })
}

#[test]
fn pass_then_choice_takes_the_matching_branch() {
    let run = run(
        pass_choice_machine(),
        json!({"user": "u1", "tier": "gold"}),
        no_tasks,
    );
    assert_eq!(succeeded(&run), json!({"lane": "gold", "user": "u1"}));
}

#[test]
fn choice_falls_back_to_its_default() {
    let run = run(
        pass_choice_machine(),
        json!({"user": "u2", "tier": "bronze"}),
        no_tasks,
    );
    assert_eq!(succeeded(&run), json!({"lane": "standard", "user": "u2"}));
}

#[test]
fn no_matching_choice_without_default_fails() {
    let definition = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "Done"}]},
        "Done": {"Type": "Succeed"}
    }});
    let (error, _) = failed(&run(definition, json!({"n": 2}), no_tasks));
    assert_eq!(error.as_deref(), Some("States.NoChoiceMatched"));
}

#[test]
fn parameters_read_the_context_object_and_intrinsics() {
    let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {
        "execution.$": "$$.Execution.Name",
        "machine.$": "$$.StateMachine.Name",
        "state.$": "$$.State.Name",
        "original.$": "$$.Execution.Input.from",
        "line.$": "States.Format('{} has {} items', $.name, States.ArrayLength($.items))"
    }, "End": true}}});
    let run = run(
        definition,
        json!({"name": "Ada", "items": [1, 2]}),
        no_tasks,
    );
    assert_eq!(
        succeeded(&run),
        json!({"execution": "run-1", "machine": "journey", "state": "P", "original": "start", "line": "Ada has 2 items"})
    );
}

#[test]
fn input_output_and_result_paths_shape_the_data() {
    let definition = json!({"StartAt": "Shape", "States": {
        "Shape": {"Type": "Pass", "InputPath": "$.payload", "ResultPath": "$.copy", "OutputPath": "$.copy", "Next": "Drop"},
        "Drop": {"Type": "Pass", "ResultPath": null, "Next": "Empty"},
        "Empty": {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$[0]"}
    }});
    let run = run(definition, json!({"payload": {"a": [7, 8]}}), no_tasks);
    assert_eq!(succeeded(&run), json!(7));

    let definition = json!({"StartAt": "Nothing", "States": {"Nothing": {"Type": "Pass", "InputPath": null, "End": true}}});
    assert_eq!(succeeded(&run_plain(definition)), json!({}));
}

fn run_plain(definition: Value) -> Run {
    run(definition, json!({"ignored": true}), no_tasks)
}

#[test]
fn a_missing_input_path_fails_the_execution() {
    let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.nope", "End": true}}});
    let (error, cause) = failed(&run_plain(definition));
    assert_eq!(error.as_deref(), Some("States.Runtime"));
    assert!(cause.unwrap().contains("$.nope"));
}

#[test]
fn waits_sleep_until_their_time() {
    let definition = json!({"StartAt": "Ten", "States": {
        "Ten": {"Type": "Wait", "Seconds": 10, "Next": "FromInput"},
        "FromInput": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "Until"},
        "Until": {"Type": "Wait", "TimestampPath": "$.at", "Next": "Fixed"},
        "Fixed": {"Type": "Wait", "Timestamp": "2026-01-01T01:00:00Z", "End": true}
    }});
    let input = json!({"delay": 5, "at": "2026-01-01T00:30:00Z"});
    let run = run(definition, input.clone(), no_tasks);
    assert_eq!(succeeded(&run), input);
    assert_eq!(run.now, at("2026-01-01T01:00:00Z"));
    assert_eq!(
        run.sleeps,
        vec![
            at("2026-01-01T00:00:10Z"),
            at("2026-01-01T00:00:15Z"),
            at("2026-01-01T00:30:00Z"),
            at("2026-01-01T01:00:00Z")
        ]
    );
}

#[test]
fn a_wait_in_the_past_does_not_sleep() {
    let definition = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": "2020-01-01T00:00:00Z", "End": true}}});
    let run = run_plain(definition);
    assert!(run.sleeps.is_empty());
    succeeded(&run);
}

#[test]
fn a_wait_keeps_its_deadline_when_stepped_early() {
    let machine = Machine::parse(
        &json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": true}}}),
    )
    .unwrap();
    let start = at("2026-01-01T00:00:00Z");
    let entered = ExecutionState::start(&machine, json!({}), start);
    let Transition::Sleep { until, state } = step(&machine, &entered, &context("t"), start) else {
        panic!("sleeps")
    };
    assert_eq!(until, at("2026-01-01T00:01:00Z"));
    let early = step(&machine, &state, &context("t"), at("2026-01-01T00:00:30Z"));
    assert_eq!(
        early,
        Transition::Sleep {
            until,
            state: state.clone()
        }
    );
    assert_eq!(
        step(&machine, &state, &context("t"), until),
        Transition::Succeeded { output: json!({}) }
    );
}

/// A machine of one task, plus the `Recovered` state its catchers may lead to.
fn task_machine(task: Value) -> Value {
    let has_catchers = task.get("Catch").is_some();
    let mut states = json!({"Work": task});
    if has_catchers {
        states["Recovered"] = json!({"Type": "Pass", "End": true});
    }
    json!({"StartAt": "Work", "States": states})
}

#[test]
fn a_task_result_is_selected_placed_and_filtered() {
    let definition = task_machine(json!({
        "Type": "Task", "Resource": "send",
        "Parameters": {"to.$": "$.email"},
        "ResultSelector": {"id.$": "$.MessageId"},
        "ResultPath": "$.sent",
        "OutputPath": "$.sent",
        "End": true
    }));
    let run = run(definition, json!({"email": "a@example.com"}), |call| {
        assert_eq!(call.resource, "send");
        assert_eq!(call.input, json!({"to": "a@example.com"}));
        assert_eq!(call.token, None);
        TaskOutcome::Succeeded {
            output: json!({"MessageId": "m-1", "noise": true}),
        }
    });
    assert_eq!(succeeded(&run), json!({"id": "m-1"}));
}

#[test]
fn retries_back_off_then_succeed() {
    let definition = task_machine(json!({
        "Type": "Task", "Resource": "flaky",
        "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 2, "BackoffRate": 3.0, "MaxAttempts": 3}],
        "End": true
    }));
    let mut attempts = 0;
    let run = run(definition, json!({}), |_| {
        attempts += 1;
        if attempts < 4 {
            TaskOutcome::Failed {
                error: "Busy".into(),
                cause: format!("attempt {attempts}"),
            }
        } else {
            TaskOutcome::Succeeded {
                output: json!("done"),
            }
        }
    });
    assert_eq!(succeeded(&run), json!("done"));
    assert_eq!(run.calls.len(), 4);
    // Delays of 2, 6 and 18 seconds.
    assert_eq!(
        run.sleeps,
        vec![
            at("2026-01-01T00:00:02Z"),
            at("2026-01-01T00:00:08Z"),
            at("2026-01-01T00:00:26Z")
        ]
    );
}

#[test]
fn max_delay_caps_the_backoff() {
    let definition = task_machine(json!({
        "Type": "Task", "Resource": "flaky",
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "BackoffRate": 10.0, "MaxAttempts": 3, "MaxDelaySeconds": 50}],
        "End": true
    }));
    let run = run(definition, json!({}), |_| TaskOutcome::Failed {
        error: "Busy".into(),
        cause: "still".into(),
    });
    assert_eq!(failed(&run).0.as_deref(), Some("Busy"));
    assert_eq!(run.calls.len(), 4);
    assert_eq!(
        run.sleeps,
        vec![
            at("2026-01-01T00:00:10Z"),
            at("2026-01-01T00:01:00Z"),
            at("2026-01-01T00:01:50Z")
        ]
    );
}

#[test]
fn exhausted_retries_fall_through_to_a_catcher() {
    let definition = task_machine(json!({
        "Type": "Task", "Resource": "broken",
        "Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 1}],
        "Catch": [
            {"ErrorEquals": ["Other"], "Next": "Recovered"},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Recovered"}
        ],
        "End": true
    }));
    let run = run(definition, json!({"keep": 1}), |_| TaskOutcome::Failed {
        error: "Bounced".into(),
        cause: "mailbox full".into(),
    });
    assert_eq!(run.calls.len(), 2);
    assert_eq!(
        succeeded(&run),
        json!({"keep": 1, "failure": {"Error": "Bounced", "Cause": "mailbox full"}})
    );
}

#[test]
fn wildcards_follow_their_exceptions() {
    let all = vec!["States.ALL".to_string()];
    let task_failed = vec!["States.TaskFailed".to_string()];
    let timeout = vec!["States.Timeout".to_string()];
    assert!(error_matches(&all, "Anything"));
    assert!(!error_matches(&all, "States.Runtime"));
    assert!(error_matches(&task_failed, "Bounced"));
    assert!(!error_matches(&task_failed, "States.Timeout"));
    assert!(!error_matches(&task_failed, "States.HeartbeatTimeout"));
    assert!(error_matches(&timeout, "States.HeartbeatTimeout"));
    assert!(!error_matches(&timeout, "Bounced"));
}

#[test]
fn an_uncaught_task_error_fails_with_its_name_and_cause() {
    let definition = task_machine(
        json!({"Type": "Task", "Resource": "broken", "Catch": [{"ErrorEquals": ["Other"], "Next": "Recovered"}], "End": true}),
    );
    let run = run(definition, json!({}), |_| TaskOutcome::Failed {
        error: "Bounced".into(),
        cause: "mailbox full".into(),
    });
    assert_eq!(
        failed(&run),
        (Some("Bounced".into()), Some("mailbox full".into()))
    );
}

#[test]
fn a_parameter_failure_can_be_caught() {
    let definition = task_machine(json!({
        "Type": "Task", "Resource": "r", "Parameters": {"id.$": "$.missing"},
        "Catch": [{"ErrorEquals": ["States.ParameterPathFailure"], "Next": "Recovered"}],
        "End": true
    }));
    let run = run(definition, json!({}), no_tasks);
    assert_eq!(
        succeeded(&run)["Error"],
        json!("States.ParameterPathFailure")
    );
}

#[test]
fn a_token_task_carries_its_token_and_deadline() {
    let definition = task_machine(json!({
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"MessageBody": {"token.$": "$$.Task.Token", "user.$": "$.user"}},
        "TimeoutSeconds": 300, "HeartbeatSeconds": 60,
        "ResultPath": "$.reply",
        "End": true
    }));
    let run = run(definition, json!({"user": "u1"}), |call| {
        let token = call.token.clone().expect("a token task has a token");
        assert_eq!(
            call.input,
            json!({"MessageBody": {"token": token, "user": "u1"}})
        );
        assert_eq!(
            call.deadline,
            Some(Deadline {
                at: at("2026-01-01T00:01:00Z"),
                error: "States.HeartbeatTimeout".into()
            })
        );
        TaskOutcome::Succeeded {
            output: json!({"clicked": true}),
        }
    });
    assert_eq!(
        succeeded(&run),
        json!({"user": "u1", "reply": {"clicked": true}})
    );
}

#[test]
fn a_missed_deadline_is_a_timeout_that_retriers_can_match() {
    let definition = task_machine(json!({
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "TimeoutSeconds": 30,
        "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "Recovered"}],
        "End": true
    }));
    let run = run(definition, json!({}), |call| {
        call.deadline.clone().expect("a deadline").outcome()
    });
    assert_eq!(succeeded(&run)["Error"], json!("States.Timeout"));
}

#[test]
fn a_running_task_is_idle() {
    let machine = Machine::parse(&task_machine(
        json!({"Type": "Task", "Resource": "r", "End": true}),
    ))
    .unwrap();
    let now = at("2026-01-01T00:00:00Z");
    let Transition::RunTask { state, .. } = step(
        &machine,
        &ExecutionState::start(&machine, json!({}), now),
        &context("t"),
        now,
    ) else {
        panic!("dispatches")
    };
    assert_eq!(step(&machine, &state, &context("t"), now), Transition::Idle);
}

#[test]
fn fail_states_report_literal_or_selected_errors() {
    let definition = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Oops", "Cause": "because"}}});
    assert_eq!(
        failed(&run_plain(definition)),
        (Some("Oops".into()), Some("because".into()))
    );
    let definition = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}}});
    let run = run(
        definition,
        json!({"e": "Dynamic", "c": "from input"}),
        no_tasks,
    );
    assert_eq!(
        failed(&run),
        (Some("Dynamic".into()), Some("from input".into()))
    );
    let definition = json!({"StartAt": "F", "States": {"F": {"Type": "Fail"}}});
    assert_eq!(failed(&run_plain(definition)), (None, None));
}

#[test]
fn execution_state_round_trips_through_json() {
    let state = ExecutionState {
        state: "Work".into(),
        input: json!({"a": 1}),
        entered_at: at("2026-01-01T00:00:00Z"),
        phase: Phase::Finished {
            outcome: TaskOutcome::Failed {
                error: "E".into(),
                cause: "C".into(),
            },
        },
        retries: vec![1, 0],
    };
    let text = serde_json::to_string(&state).unwrap();
    assert_eq!(
        serde_json::from_str::<ExecutionState>(&text).unwrap(),
        state
    );
}
