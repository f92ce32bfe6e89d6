//! A function run by a schedule (an EventBridge rule): each invocation runs one job over the AWS ports.
//! The event's content is not read: the job takes the time from the clock port, so a late or repeated
//! invocation does the work that is due then.

use std::fmt::Display;
use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use tern_app::{AppConfig, AppState};

use crate::{FunctionError, aws_ports_from_env, init_tracing};

/// Runs `job` once per invocation. A failed job fails the invocation, which Lambda retries (the jobs a
/// schedule runs are safe to repeat) and records.
pub async fn serve_scheduled<F, Fut, E>(job: F) -> Result<(), FunctionError>
where
    F: Fn(Arc<AppState>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Display,
{
    init_tracing();
    let ports = aws_ports_from_env().await.inspect_err(|error| {
        tracing::error!(%error, "cannot start: configuration");
    })?;
    let state = Arc::new(AppState::new(ports, AppConfig::default()));
    let job = Arc::new(job);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let job = Arc::clone(&job);
        let state = Arc::clone(&state);
        async move {
            job(state)
                .await
                .map_err(|error| FunctionError::from(error.to_string()))
        }
    }))
    .await
}
