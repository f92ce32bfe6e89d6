//! The engine on a data directory: what it creates, and what survives a restart.

use std::sync::Arc;
use std::time::Duration;

use tern_app::queues::dead_letter_queue;
use tern_local::engine::{BLOBS_DIR, DATABASE_FILE, OUTBOX_DIR, SECRET_FILE};
use tern_local::{Engine, EngineOptions, LocalError, QUEUES};
use tern_ports::{OutMessage, Workflows as _};

#[tokio::test]
async fn opening_creates_the_data_directory_layout() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested/data");
    Engine::open(&data_dir, EngineOptions::default())
        .await
        .unwrap();
    for entry in [DATABASE_FILE, BLOBS_DIR, OUTBOX_DIR, SECRET_FILE] {
        assert!(data_dir.join(entry).exists(), "{entry} missing");
    }
}

#[tokio::test]
async fn a_workspace_and_its_admin_key_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let created = {
        let engine = Engine::open(dir.path(), EngineOptions::default())
            .await
            .unwrap();
        let ports = engine.ports();
        tern_domain::create_workspace(ports.table.as_ref(), ports.clock.as_ref(), "Acme")
            .await
            .unwrap()
    };
    let engine = Engine::open(dir.path(), EngineOptions::default())
        .await
        .unwrap();
    let table = engine.ports().table.clone();
    let grant = tern_domain::authenticate(table.as_ref(), created.admin_key.expose())
        .await
        .unwrap();
    assert_eq!(
        grant.map(|g| g.workspace_id),
        Some(created.workspace.id.clone())
    );
    let listed = tern_domain::list_workspaces(table.as_ref()).await.unwrap();
    assert_eq!(listed, vec![created.workspace]);
}

#[tokio::test]
async fn the_signing_secret_is_kept_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let first = Engine::open(dir.path(), EngineOptions::default())
        .await
        .unwrap();
    let target = first
        .ports()
        .blobs
        .upload_target("a/b.txt", Duration::from_secs(600))
        .await
        .unwrap();
    let token = target.url.rsplit('/').next().unwrap().to_string();
    drop(first);

    // A token signed before the restart is accepted after it: the secret was read back, not regenerated.
    let reopened = Engine::open(dir.path(), EngineOptions::default())
        .await
        .unwrap();
    let body = futures::stream::iter([Ok(bytes::Bytes::from_static(b"hello"))]);
    assert_eq!(
        reopened
            .blobs()
            .accept_upload(&token, Box::pin(body))
            .await
            .unwrap(),
        5
    );
}

#[tokio::test]
async fn the_queues_are_declared_with_their_dead_letter_queues() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), EngineOptions::default())
        .await
        .unwrap();
    let queue = engine.ports().queue.clone();
    for name in QUEUES
        .iter()
        .map(|q| q.to_string())
        .chain(QUEUES.iter().map(|q| dead_letter_queue(q)))
    {
        queue
            .send_batch(&name, vec![OutMessage::new("ping")])
            .await
            .unwrap();
        let received = queue.receive(&name, 1, Duration::ZERO).await.unwrap();
        assert_eq!(received.len(), 1, "queue {name}");
    }
}

#[tokio::test]
async fn an_unknown_task_resource_fails_the_execution_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), EngineOptions::default())
        .await
        .unwrap();
    let workflows = engine.workflows().clone();
    let definition = serde_json::json!({
        "StartAt": "Mystery",
        "States": {"Mystery": {"Type": "Task", "Resource": "arn:aws:states:::mystery:do", "End": true}}
    });
    let spec = tern_ports::StateMachineSpec {
        name: "mystery".into(),
        definition,
        role_arn: None,
    };
    let version = workflows.publish(&spec).await.unwrap();
    let started = workflows
        .start(&version.state_machine, "run-1", serde_json::json!({}))
        .await
        .unwrap();
    let description = run_until_finished(&workflows, &started.execution).await;
    assert_eq!(description.status, tern_ports::ExecutionStatus::Failed);
    assert!(
        description
            .cause
            .unwrap_or_default()
            .contains("arn:aws:states:::mystery:do")
    );
}

async fn run_until_finished(
    workflows: &Arc<tern_embedded::workflows::EmbeddedWorkflows>,
    execution: &str,
) -> tern_ports::ExecutionDescription {
    for _ in 0..100 {
        workflows.run_due().await.unwrap();
        let description = workflows.describe(execution).await.unwrap();
        if description.status != tern_ports::ExecutionStatus::Running {
            return description;
        }
    }
    panic!("execution {execution} did not finish in 100 rounds");
}

#[tokio::test]
async fn a_data_dir_under_a_regular_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "not a directory").unwrap();
    let data_dir = file.join("data");
    let error = Engine::open(&data_dir, EngineOptions::default())
        .await
        .err()
        .expect("must fail");
    assert!(matches!(error, LocalError::DataDir { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!("cannot open data directory {}", data_dir.display())
    );
}
