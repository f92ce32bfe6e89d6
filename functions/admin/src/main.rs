//! The admin API on Lambda (`Authorization: Bearer <admin key>`): users, imports, the workspace. The template
//! routes only the admin paths here.

#[tokio::main]
async fn main() -> Result<(), tern_lambda::FunctionError> {
    tern_lambda::serve_api().await
}
