//! Segment's tracking API on Lambda. The template routes only the tracking paths here and grants only what
//! accepting events needs: the table and sending to the lake queue.

#[tokio::main]
async fn main() -> Result<(), tern_lambda::FunctionError> {
    tern_lambda::serve_api().await
}
