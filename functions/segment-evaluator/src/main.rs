//! The segment evaluator on Lambda: one SQS-triggered function over the `segments` queue. The event source in
//! `infra/template.yaml` batches as `tern_app::segments::SEGMENTS_BATCHING` does locally.

#[tokio::main]
async fn main() -> Result<(), tern_lambda::FunctionError> {
    tern_lambda::serve_queue(tern_domain::segments::realtime::SEGMENTS_QUEUE).await
}
