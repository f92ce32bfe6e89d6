//! The CSV import worker on Lambda: one SQS-triggered function over the `imports` queue.

#[tokio::main]
async fn main() -> Result<(), tern_lambda::FunctionError> {
    tern_lambda::serve_queue("imports").await
}
