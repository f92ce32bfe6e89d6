//! Scenario tests that run the same flow on both engines.
//!
//! A scenario is an `async fn(TestEngine)`. [`on_both_engines!`] expands it into two tests: one on the
//! embedded engine (tern-local's `Engine` in a temporary directory, its routes served on a loopback port so
//! that upload URLs work), one on the AWS adapters against the moto server that `cargo xtask test` starts
//! (a fresh table, bucket and queues per test, so tests never see each other's data). Requests go through
//! `tern_app::router` exactly as either host serves them; queue deliveries are run by [`TestEngine::drain`]
//! with the same handlers the hosts register.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use tern_app::queues::{dead_letter_queue, queue_specs};
use tern_app::{AppConfig, AppState, QueueHandler};
use tern_domain::CreatedWorkspace;
use tern_ports::{Ports, Queue, QueueSpec, SystemClock};
use tower::ServiceExt;

/// moto checks that a role ARN is given, not what it grants.
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/tern-workflows";

/// Which engine a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Embedded,
    Aws,
}

/// One engine with Tern's queues declared, ready for requests.
pub struct TestEngine {
    pub kind: EngineKind,
    pub state: AppState,
    /// Where the embedded engine keeps its data (`None` on AWS).
    pub data_dir: Option<PathBuf>,
    /// The base URL of the embedded engine's loopback server (`None` on AWS).
    pub base_url: Option<String>,
    _guard: Option<EmbeddedGuard>,
}

struct EmbeddedGuard {
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for EmbeddedGuard {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    /// The body as JSON; panics with the body's text when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "response body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl TestEngine {
    /// The embedded engine in a fresh temporary directory, with its routes served on a loopback port.
    pub async fn embedded() -> TestEngine {
        let dir = tempfile::tempdir().expect("temporary directory");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let base_url = format!("http://{}", listener.local_addr().expect("local address"));
        let options = tern_local::EngineOptions {
            public_url: base_url.clone(),
            ..tern_local::EngineOptions::default()
        };
        let engine = tern_local::Engine::open(dir.path(), options)
            .await
            .expect("open the embedded engine");
        let state = engine.app_state();
        let routes = tern_local::server::routes(&engine);
        let server = tokio::spawn(async move {
            let service = routes.into_make_service_with_connect_info::<std::net::SocketAddr>();
            if let Err(error) = axum::serve(listener, service).await {
                panic!("the test server stopped: {error}");
            }
        });
        TestEngine {
            kind: EngineKind::Embedded,
            state,
            data_dir: Some(dir.path().to_path_buf()),
            base_url: Some(base_url),
            _guard: Some(EmbeddedGuard { _dir: dir, server }),
        }
    }

    /// The AWS adapters against moto, with a fresh table, bucket and set of queues.
    pub async fn aws() -> TestEngine {
        let endpoint = tern_contract::moto::endpoint();
        let config =
            tern_aws::sdk_config_for_endpoint(&endpoint, tern_contract::moto::REGION).await;
        let prefix = tern_contract::unique_name("tern");

        let table_name = format!("{prefix}-table");
        tern_aws::provision::create_table(&config, &table_name)
            .await
            .expect("create the table on moto");
        let bucket = format!("{prefix}-lake");
        tern_aws::blobs::create_bucket(&config, &bucket)
            .await
            .expect("create the bucket on moto");
        let queue_urls = declare_aws_queues(&config, &prefix).await;

        let ports = Ports {
            table: Arc::new(tern_aws::table::DynamoTable::new(&config, table_name)),
            queue: Arc::new(tern_aws::queue::SqsQueue::new(&config, queue_urls)),
            blobs: Arc::new(tern_aws::blobs::S3Blobs::new(&config, bucket)),
            mail: Arc::new(tern_aws::mail::SesMail::new(&config)),
            workflows: Arc::new(tern_aws::workflows::SfnWorkflows::new(
                &config,
                Some(ROLE_ARN.to_string()),
            )),
            clock: Arc::new(SystemClock),
        };
        TestEngine {
            kind: EngineKind::Aws,
            state: AppState::new(ports, AppConfig::default()),
            data_dir: None,
            base_url: None,
            _guard: None,
        }
    }

    pub fn ports(&self) -> &Ports {
        &self.state.ports
    }

    /// A new workspace with its keys.
    pub async fn workspace(&self) -> CreatedWorkspace {
        let name = tern_contract::unique_name("ws");
        tern_domain::create_workspace(
            self.ports().table.as_ref(),
            self.ports().clock.as_ref(),
            &name,
        )
        .await
        .expect("create a workspace")
    }

    /// Sends one request through Tern's router, as either host serves it, and reads the whole response.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = tern_app::router(self.state.clone())
            .oneshot(request)
            .await
            .expect("the router never fails");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("read the response body");
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Runs the handler registered for `queue` until the queue has no visible message, in batches as large
    /// as the handler asks (as the hosts do); returns how many messages it handled (failed ones included:
    /// they stay on the queue, invisible for its timeout).
    pub async fn drain(&self, queue: &str) -> usize {
        let handler = handler_for(queue);
        tern_local::worker::drain(&self.state, handler.as_ref())
            .await
            .unwrap_or_else(|error| panic!("drain {queue}: {error}"))
    }
}

/// The handler Tern registers for `queue`.
pub fn handler_for(queue: &str) -> Arc<dyn QueueHandler> {
    tern_app::queues::handler_for(queue)
        .unwrap_or_else(|| panic!("no queue handler is registered for {queue}"))
}

/// The bytes of `events/<name>`, the shared fixtures.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("read fixture {}: {error}", path.display()))
}

/// `Authorization: Basic` for a write key, as Segment's libraries send it (the key, an empty password).
pub fn basic_auth(write_key: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{write_key}:"));
    format!("Basic {encoded}")
}

/// `Authorization: Bearer` for an admin key.
/// Sends an admin request with the workspace's admin key and an optional JSON body.
pub async fn admin_json(
    engine: &TestEngine,
    created: &CreatedWorkspace,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> TestResponse {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(
            http::header::AUTHORIZATION,
            bearer_auth(created.admin_key.expose()),
        )
        .header(http::header::CONTENT_TYPE, "application/json");
    let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
    engine
        .send(request.body(body).expect("a valid request"))
        .await
}

pub fn bearer_auth(admin_key: &str) -> String {
    format!("Bearer {admin_key}")
}

/// Declares every queue of `queue_specs()` on moto under names unique to this test, and returns the map from
/// each logical name (and its dead-letter queue's) to the queue's URL, as `SqsQueue` expects it.
async fn declare_aws_queues(
    config: &aws_config::SdkConfig,
    prefix: &str,
) -> HashMap<String, String> {
    let physical = |name: &str| format!("{prefix}-{name}");
    let declarer = tern_aws::queue::SqsQueue::new(config, HashMap::new());
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut urls = HashMap::new();
    for spec in queue_specs() {
        let renamed = QueueSpec {
            name: physical(&spec.name),
            visibility_timeout: spec.visibility_timeout,
            dead_letter: spec.dead_letter.map(|mut dead_letter| {
                dead_letter.queue = physical(&dead_letter.queue);
                dead_letter
            }),
        };
        declarer
            .declare(&renamed)
            .await
            .unwrap_or_else(|error| panic!("declare queue {}: {error}", renamed.name));
        for logical in [spec.name.clone(), dead_letter_queue(&spec.name)] {
            let url = sqs
                .get_queue_url()
                .queue_name(physical(&logical))
                .send()
                .await
                .unwrap_or_else(|error| panic!("GetQueueUrl {logical}: {error}"))
                .queue_url
                .unwrap_or_else(|| panic!("moto returned no URL for {logical}"));
            urls.insert(logical, url);
        }
    }
    urls
}

/// Expands scenario functions into one test per engine: `embedded::<name>` and `aws::<name>`.
#[macro_export]
macro_rules! on_both_engines {
    ($($scenario:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::TestEngine::embedded().await).await
                }
            )+
        }
        mod aws {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::TestEngine::aws().await).await
                }
            )+
        }
    };
}
