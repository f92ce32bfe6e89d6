//! `GET /v1/workspace`: the workspace the admin key belongs to.

use axum::Json;
use axum::extract::State;
use tern_domain::Workspace;

use crate::AppState;
use crate::auth::AdminAuth;
use crate::problem::ApiError;

pub async fn current(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
) -> Result<Json<Workspace>, ApiError> {
    tern_domain::get_workspace(state.ports.table.as_ref(), &grant.workspace_id)
        .await?
        .map(Json)
        // A key whose workspace is gone no longer grants anything.
        .ok_or_else(|| {
            ApiError::unauthorized("Bearer", "the admin key's workspace no longer exists")
        })
}
