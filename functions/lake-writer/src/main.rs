//! The lake writer on Lambda: one SQS-triggered function over the `lake` queue. The event source in
//! `infra/template.yaml` batches as `tern_app::lake::LAKE_BATCHING` does locally (BatchSize,
//! MaximumBatchingWindowInSeconds), so each invocation writes one Parquet object per partition.

#[tokio::main]
async fn main() -> Result<(), tern_lambda::FunctionError> {
    tern_lambda::serve_queue(tern_app::lake::LAKE_QUEUE).await
}
