//! The local server over real HTTP on 127.0.0.1, started and stopped in-process.

use std::net::SocketAddr;
use std::time::Duration;

use tern_local::{Engine, EngineOptions, LocalError, ServeOptions, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Running {
    base_url: String,
    engine: Engine,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), LocalError>>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Stops the server; the data directory lives on as long as the returned guard.
    async fn stop(self) -> tempfile::TempDir {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
        self._dir
    }
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServeOptions::default())
        .await
        .unwrap();
    let base_url = format!("http://{}", server.local_addr().unwrap());
    let options = EngineOptions {
        public_url: base_url.clone(),
        ..EngineOptions::default()
    };
    let engine = Engine::open(dir.path(), options).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(engine.clone(), async move {
        // A dropped sender stops the server too.
        stopped.await.ok();
    }));
    Running {
        base_url,
        engine,
        stop,
        task,
        _dir: dir,
    }
}

#[tokio::test]
async fn health_answers_over_http_and_the_server_stops_cleanly() {
    let running = start().await;
    let response = reqwest::get(format!("{}/health", running.base_url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let base_url = running.base_url.clone();
    running.stop().await;
    assert!(
        reqwest::get(format!("{base_url}/health")).await.is_err(),
        "still answering after stop"
    );
}

#[tokio::test]
async fn an_admin_key_authenticates_over_http() {
    let running = start().await;
    let ports = running.engine.ports();
    let created = tern_domain::create_workspace(ports.table.as_ref(), ports.clock.as_ref(), "Acme")
        .await
        .unwrap();
    let response = reqwest::Client::new()
        .get(format!("{}/v1/workspace", running.base_url))
        .bearer_auth(created.admin_key.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["id"], created.workspace.id.as_str());
    running.stop().await;
}

#[tokio::test]
async fn uploads_to_a_signed_target_land_in_the_blob_store() {
    let running = start().await;
    let blobs = running.engine.ports().blobs.clone();
    let target = blobs
        .upload_target("imports/contacts.csv", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(target.method, "PUT");
    assert!(
        target
            .url
            .starts_with(&format!("{}/_uploads/", running.base_url)),
        "{}",
        target.url
    );

    let response = reqwest::Client::new()
        .put(&target.url)
        .body("email\na@example.com\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stored = blobs.get("imports/contacts.csv").await.unwrap().unwrap();
    assert_eq!(stored.as_ref(), b"email\na@example.com\n");

    let forged = format!("{}/_uploads/not-a-token", running.base_url);
    let response = reqwest::Client::new()
        .put(&forged)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "forbidden");
    running.stop().await;
}

#[tokio::test]
async fn non_loopback_addresses_are_refused_unless_allowed() {
    let everywhere: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let refused = Server::bind(everywhere, ServeOptions::default()).await;
    assert!(matches!(refused, Err(LocalError::NonLoopback { .. })));
    let allowed = ServeOptions {
        allow_non_loopback: true,
        ..ServeOptions::default()
    };
    assert!(Server::bind(everywhere, allowed).await.is_ok());
}

#[tokio::test]
async fn a_busy_port_is_reported_with_its_address() {
    let first = Server::bind("127.0.0.1:0".parse().unwrap(), ServeOptions::default())
        .await
        .unwrap();
    let addr = first.local_addr().unwrap();
    let error = Server::bind(addr, ServeOptions::default())
        .await
        .err()
        .expect("the port is taken");
    assert!(matches!(error, LocalError::Bind { .. }), "{error}");
    assert_eq!(error.to_string(), format!("cannot listen on {addr}"));
}

#[tokio::test]
async fn events_on_the_lake_queue_are_in_the_lake_once_the_server_has_stopped() {
    let running = start().await;
    let ports = running.engine.ports().clone();
    let data_dir = running.engine.data_dir().to_path_buf();
    let lake_batch = |id: &str| {
        serde_json::json!({
            "workspaceId": "ws_local",
            "events": [{
                "messageId": id, "type": "track", "userId": "u-1", "event": "Signed Up",
                "timestamp": "2026-02-03T04:05:06Z", "receivedAt": "2026-02-03T04:05:07Z"
            }]
        })
        .to_string()
    };
    let messages = ["m-1", "m-2", "m-3"]
        .map(|id| tern_ports::OutMessage::new(lake_batch(id)))
        .to_vec();
    ports.queue.send_batch("lake", messages).await.unwrap();

    // Well within the lake writer's batching window: only the shutdown can have written the file.
    let _dir = running.stop().await;

    let partition = data_dir.join("blobs/lake/events/workspace=ws_local/dt=2026-02-03/hour=04");
    let files: Vec<_> = std::fs::read_dir(&partition)
        .unwrap_or_else(|error| panic!("{}: {error}", partition.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mut ids = tern_lake::read_message_ids(std::fs::read(&files[0]).unwrap().into()).unwrap();
    ids.sort();
    assert_eq!(ids, vec!["m-1", "m-2", "m-3"]);
}
