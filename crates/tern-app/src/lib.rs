//! Tern's handlers, written once: HTTP routes (an axum Router) and queue/task handlers, over the ports.
//!
//! Both hosts serve exactly what this crate builds: the Lambda functions (`tern-lambda`) and the local server
//! (`tern-local`) call [`router`] for HTTP and [`queues::queue_handlers`] for queue deliveries.

pub mod auth;
pub mod health;
pub mod imports;
pub mod lake;
pub mod problem;
pub mod queues;
pub mod segments;
pub mod subscriptions;
pub mod suppressions;
pub mod templates;
pub mod trace;
pub mod tracking;
pub mod users;
pub mod webhook;
pub mod workspace;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

pub use problem::{ApiError, ProblemBody};
pub use queues::{BatchOutcome, QueueHandler, queue_handlers};

/// The largest request body accepted, by default: Segment's batch limit is 500 KB, so 512 KiB lets every
/// batch a Segment client may send through.
pub const DEFAULT_MAX_BODY_BYTES: usize = 512 * 1024;

/// Settings shared by every handler, read once by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// Requests with a larger body are refused with 413 before a handler parses them.
    pub max_body_bytes: usize,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// What every handler receives: the ports of the engine it runs on, and the settings.
#[derive(Clone)]
pub struct AppState {
    pub ports: tern_ports::Ports,
    pub config: AppConfig,
}

impl AppState {
    pub fn new(ports: tern_ports::Ports, config: AppConfig) -> Self {
        Self { ports, config }
    }
}

/// Every HTTP route of Tern. Unknown paths and methods answer with a problem body, like every other error.
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.config.max_body_bytes;
    Router::new()
        .merge(health::routes())
        .merge(tracking::routes())
        .merge(users::routes())
        .merge(imports::routes())
        .merge(templates::routes())
        .merge(subscriptions::routes())
        .merge(suppressions::routes())
        .merge(segments::routes())
        .route("/v1/workspace", get(workspace::current))
        .fallback(problem::no_route)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(trace::request_span))
        .with_state(state)
}
