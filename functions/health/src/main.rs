//! `GET /health` on Lambda: the health routes alone, with no AWS client, so the function starts fast and
//! needs no permission beyond writing its logs.

#[tokio::main]
async fn main() -> Result<(), tern_lambda::lambda_http::Error> {
    tern_lambda::init_tracing();
    tern_lambda::run_http(tern_app::health::routes()).await
}
