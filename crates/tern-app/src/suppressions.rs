//! The suppression routes (admin key):
//! - `GET /v1/suppressions?limit=&cursor=`: a page of suppressed addresses, by address, with `nextCursor`;
//! - `POST /v1/suppressions` (`{"address", "reason"?}`, reason `manual` unless given): suppresses an address;
//! - `DELETE /v1/suppressions/{address}`: lets the workspace email it again.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::Value;
use tern_domain::suppressions::{self, MAX_PAGE_SIZE, Reason, Suppression, SuppressionPage};

use crate::AppState;
use crate::auth::AdminAuth;
use crate::problem::ApiError;

/// The page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/suppressions", get(list).post(add))
        .route("/v1/suppressions/{address}", delete(remove))
}

async fn list(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<SuppressionPage>, ApiError> {
    let Query(params) =
        params.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let mut limit = DEFAULT_LIMIT;
    let mut cursor = None;
    for (name, value) in &params {
        match name.as_str() {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|limit| (1..=MAX_PAGE_SIZE).contains(limit))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "limit",
                            format!(
                                "limit must be a whole number from 1 to {MAX_PAGE_SIZE}, not {value:?}"
                            ),
                        )
                    })?;
            }
            "cursor" => cursor = Some(value.as_str()),
            _ => {
                return Err(ApiError::invalid(
                    name.as_str(),
                    format!(
                        "unknown query parameter {name:?}; the parameters are limit and cursor"
                    ),
                ));
            }
        }
    }
    let page = suppressions::list_suppressions(
        state.ports.table.as_ref(),
        &grant.workspace_id,
        cursor,
        limit,
    )
    .await?;
    Ok(Json(page))
}

async fn add(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Suppression>), ApiError> {
    let Json(body) = body?;
    let object = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("", "the body must be a JSON object"))?;
    if let Some(unknown) = object
        .keys()
        .find(|key| !["address", "reason"].contains(&key.as_str()))
    {
        return Err(ApiError::invalid(
            unknown.as_str(),
            "is not a field; the fields are address and reason",
        ));
    }
    let address = match object.get("address") {
        Some(Value::String(address)) => address,
        Some(_) => return Err(ApiError::invalid("address", "must be a string")),
        None => return Err(ApiError::invalid("address", "is required")),
    };
    let reason = match object.get("reason") {
        None => Reason::Manual,
        Some(value) => serde_json::from_value(value.clone()).map_err(|_| {
            ApiError::invalid(
                "reason",
                format!(
                    "must be \"bounce\", \"complaint\", \"unsubscribe\" or \"manual\", not {value}"
                ),
            )
        })?,
    };
    let entry = suppressions::suppress(
        state.ports.table.as_ref(),
        &grant.workspace_id,
        address,
        reason,
        state.ports.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

async fn remove(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    address: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(address) =
        address.map_err(|rejection| ApiError::invalid("address", rejection.body_text()))?;
    suppressions::remove_suppression(state.ports.table.as_ref(), &grant.workspace_id, &address)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
