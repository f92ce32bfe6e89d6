//! Hosting an axum router behind API Gateway (HTTP API, payload 2.0) with `lambda_http`.

/// Serves `router` from the Lambda runtime until the runtime stops. `lambda_http` turns each API Gateway
/// event into an `http::Request` (the stage prefix removed from the path) and the router's response back
/// into the API Gateway response shape.
pub async fn run_http(router: axum::Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(router).await
}
