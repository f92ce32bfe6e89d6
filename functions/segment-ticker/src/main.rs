//! The segment schedule on Lambda: an EventBridge rule (`rate(1 minute)` in `infra/template.yaml`) invokes
//! this function, which visits, in every workspace with segments, the users whose memberships may have
//! changed with time.

#[tokio::main]
async fn main() -> Result<(), tern_lambda::FunctionError> {
    tern_lambda::scheduled::serve_scheduled(|state| async move {
        tern_app::segments::tick_due(&state).await
    })
    .await
}
