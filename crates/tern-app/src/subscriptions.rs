//! The subscription routes (admin key):
//! - `GET`, `POST /v1/subscription-groups` (`{"id", "name", "channel", "type"}`);
//! - `GET`, `PUT` (`{"name", "channel", "type"}`) and `DELETE /v1/subscription-groups/{id}`;
//! - `GET /v1/users/{userId}/subscriptions`: the user's effective state in every group;
//! - `PUT /v1/users/{userId}/subscriptions/{groupId}` (`{"state": "subscribed" | "unsubscribed"}`),
//!   recorded with source `api`.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use tern_domain::subscriptions::{
    self, ChangeSource, GroupInput, StateChange, SubscriptionGroup, SubscriptionState,
    UserSubscription,
};

use crate::AppState;
use crate::auth::AdminAuth;
use crate::problem::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/subscription-groups", get(list).post(create))
        .route(
            "/v1/subscription-groups/{id}",
            get(one).put(update).delete(remove),
        )
        .route("/v1/users/{user_id}/subscriptions", get(user_states))
        .route(
            "/v1/users/{user_id}/subscriptions/{group_id}",
            put(set_user_state),
        )
}

fn path_param<T>(param: Result<Path<T>, PathRejection>, field: &str) -> Result<T, ApiError> {
    param
        .map(|Path(value)| value)
        .map_err(|rejection| ApiError::invalid(field, rejection.body_text()))
}

fn json_body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, ApiError> {
    body.map(|Json(value)| value).map_err(ApiError::from)
}

async fn list(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
) -> Result<Json<Value>, ApiError> {
    let groups =
        subscriptions::list_groups(state.ports.table.as_ref(), &grant.workspace_id).await?;
    Ok(Json(json!({ "groups": groups })))
}

async fn create(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<SubscriptionGroup>), ApiError> {
    let body = json_body(body)?;
    let id = match body.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(ApiError::invalid("id", "must be a string")),
        None => return Err(ApiError::invalid("id", "is required")),
    };
    let input = GroupInput::from_json(&body)?;
    let group = subscriptions::create_group(
        state.ports.table.as_ref(),
        &grant.workspace_id,
        &id,
        input,
        state.ports.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(group)))
}

async fn one(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SubscriptionGroup>, ApiError> {
    let id = path_param(id, "id")?;
    subscriptions::get_group(state.ports.table.as_ref(), &grant.workspace_id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no subscription group {id:?}")))
}

async fn update(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<SubscriptionGroup>, ApiError> {
    let id = path_param(id, "id")?;
    let body = json_body(body)?;
    if let Some(given) = body.get("id")
        && given.as_str() != Some(id.as_str())
    {
        return Err(ApiError::invalid("id", "differs from the id in the path"));
    }
    let input = GroupInput::from_json(&body)?;
    let group = subscriptions::update_group(
        state.ports.table.as_ref(),
        &grant.workspace_id,
        &id,
        input,
        state.ports.clock.now(),
    )
    .await?;
    Ok(Json(group))
}

async fn remove(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_param(id, "id")?;
    subscriptions::delete_group(state.ports.table.as_ref(), &grant.workspace_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn user_states(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    user_id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let user_id = path_param(user_id, "userId")?;
    let states: Vec<UserSubscription> = subscriptions::user_subscriptions(
        state.ports.table.as_ref(),
        &grant.workspace_id,
        &user_id,
    )
    .await?;
    Ok(Json(json!({ "userId": user_id, "subscriptions": states })))
}

async fn set_user_state(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<UserSubscription>, ApiError> {
    let (user_id, group_id) = path_param(params, "groupId")?;
    let body = json_body(body)?;
    let wanted = requested_state(&body)?;
    let change = StateChange {
        state: wanted,
        at: state.ports.clock.now(),
        source: ChangeSource::Api,
    };
    let after = subscriptions::set_state(
        state.ports.table.as_ref(),
        &grant.workspace_id,
        &user_id,
        &group_id,
        change,
    )
    .await?;
    Ok(Json(after))
}

/// `{"state": "subscribed" | "unsubscribed"}`, nothing else.
fn requested_state(body: &Value) -> Result<SubscriptionState, ApiError> {
    let object = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("", "the body must be a JSON object"))?;
    if let Some(unknown) = object.keys().find(|key| key.as_str() != "state") {
        return Err(ApiError::invalid(
            unknown.as_str(),
            "is not a field; the only field is state",
        ));
    }
    match object.get("state").and_then(Value::as_str) {
        Some("subscribed") => Ok(SubscriptionState::Subscribed),
        Some("unsubscribed") => Ok(SubscriptionState::Unsubscribed),
        _ => Err(ApiError::invalid(
            "state",
            "is required: \"subscribed\" or \"unsubscribed\"",
        )),
    }
}
