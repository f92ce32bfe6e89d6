//! A whole Lambda function in one call: what every `functions/<name>/src/main.rs` runs.
//!
//! Both entry points start the same way: JSON logs, the AWS ports from the environment (a missing setting
//! ends the cold start with one line naming it), then the runtime loop. The routes and queue handlers are
//! `tern-app`'s, the very ones the local server runs.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use tern_app::{AppConfig, AppState, QueueHandler};

use crate::{aws_ports_from_env, handle_sqs_event, init_tracing, run_http};

/// Any failure that ends the function: configuration, or the runtime itself.
pub type FunctionError = lambda_runtime::Error;

/// Serves Tern's HTTP routes behind API Gateway. Which paths reach this function is the template's choice
/// (each function gets only its routes, and only the permissions those routes use).
pub async fn serve_api() -> Result<(), FunctionError> {
    let state = app_state_from_env().await?;
    run_http(tern_app::router(state)).await
}

/// Consumes `queue` with the handler `tern-app` registers for it, answering each SQS event with the ids of
/// the messages that failed (`ReportBatchItemFailures`).
pub async fn serve_queue(queue: &str) -> Result<(), FunctionError> {
    let handler = registered_handler(queue)?;
    let state = Arc::new(app_state_from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let handler = Arc::clone(&handler);
        let state = Arc::clone(&state);
        async move { handle_queue_event(&state, handler.as_ref(), event.payload).await }
    }))
    .await
}

/// One SQS event through `handler`.
pub async fn handle_queue_event(
    state: &AppState,
    handler: &dyn QueueHandler,
    event: SqsEvent,
) -> Result<SqsBatchResponse, FunctionError> {
    let response = handle_sqs_event(event, |messages| async move {
        handler.handle(state, messages).await.failed
    })
    .await?;
    Ok(response)
}

async fn app_state_from_env() -> Result<AppState, FunctionError> {
    init_tracing();
    let ports = aws_ports_from_env().await.inspect_err(|error| {
        tracing::error!(%error, "cannot start: configuration");
    })?;
    Ok(AppState::new(ports, AppConfig::default()))
}

fn registered_handler(queue: &str) -> Result<Arc<dyn QueueHandler>, FunctionError> {
    tern_app::queues::handler_for(queue)
        .ok_or_else(|| format!("no queue handler is registered for queue `{queue}`").into())
}
