//! Segment backfills on Lambda: one SQS-triggered function over the `segment-backfill` queue. The event
//! source in `infra/template.yaml` batches as `tern_app::segments::BACKFILL_BATCHING` does locally.

#[tokio::main]
async fn main() -> Result<(), tern_lambda::FunctionError> {
    tern_lambda::serve_queue(tern_domain::segments::backfill::SEGMENT_BACKFILL_QUEUE).await
}
