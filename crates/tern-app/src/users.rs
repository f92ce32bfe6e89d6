//! The admin reads of profiles (admin key):
//! - `GET /v1/users/{userId}`: one user with traits, identities, groups, timezone, context and recent events;
//! - `GET /v1/users?limit=&cursor=&trait=name:value`: a page of users, optionally those whose trait equals
//!   a value, with `nextCursor` for the next page.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use tern_domain::profile::{self, TraitFilter, UserPage, UserView};

use crate::AppState;
use crate::auth::AdminAuth;
use crate::problem::ApiError;

/// The page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 25;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list))
        .route("/v1/users/{user_id}", get(one))
}

async fn one(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    user_id: Result<Path<String>, PathRejection>,
) -> Result<Json<UserView>, ApiError> {
    let Path(user_id) =
        user_id.map_err(|rejection| ApiError::invalid("userId", rejection.body_text()))?;
    profile::get_user(state.ports.table.as_ref(), &grant.workspace_id, &user_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no user {user_id:?} in this workspace")))
}

async fn list(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
    let Query(params) =
        params.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let request = ListRequest::parse(&params)?;
    let page = profile::list_users(
        state.ports.table.as_ref(),
        &grant.workspace_id,
        request.filter,
        request.cursor.as_deref(),
        request.limit,
    )
    .await?;
    Ok(Json(page))
}

/// The query parameters of `GET /v1/users`, checked.
#[derive(Debug, PartialEq, Eq)]
struct ListRequest {
    limit: u32,
    cursor: Option<String>,
    filter: Option<TraitFilter>,
}

impl ListRequest {
    fn parse(params: &[(String, String)]) -> Result<Self, ApiError> {
        let mut request = ListRequest {
            limit: DEFAULT_LIMIT,
            cursor: None,
            filter: None,
        };
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in params {
            if seen.contains(&name.as_str()) {
                return Err(ApiError::invalid(
                    name.as_str(),
                    format!("the query parameter {name} is given more than once"),
                ));
            }
            seen.push(name);
            match name.as_str() {
                "limit" => request.limit = parse_limit(value)?,
                "cursor" => request.cursor = Some(value.clone()),
                "trait" => request.filter = Some(TraitFilter::parse(value)?),
                _ => {
                    return Err(ApiError::invalid(
                        name.as_str(),
                        format!(
                            "unknown query parameter {name:?}; the parameters are limit, cursor and trait"
                        ),
                    ));
                }
            }
        }
        Ok(request)
    }
}

fn parse_limit(value: &str) -> Result<u32, ApiError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|limit| (1..=profile::MAX_PAGE_SIZE).contains(limit))
        .ok_or_else(|| {
            ApiError::invalid(
                "limit",
                format!(
                    "limit must be a whole number from 1 to {}, not {value:?}",
                    profile::MAX_PAGE_SIZE
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn refused_field(pairs: &[(&str, &str)]) -> String {
        ListRequest::parse(&params(pairs))
            .unwrap_err()
            .field
            .expect("a field is named")
    }

    #[test]
    fn defaults_apply_and_given_parameters_are_read() {
        assert_eq!(
            ListRequest::parse(&[]).unwrap(),
            ListRequest {
                limit: DEFAULT_LIMIT,
                cursor: None,
                filter: None
            }
        );
        let request = ListRequest::parse(&params(&[
            ("limit", "100"),
            ("cursor", "abc"),
            ("trait", "plan:pro"),
        ]))
        .unwrap();
        assert_eq!(request.limit, 100);
        assert_eq!(request.cursor.as_deref(), Some("abc"));
        assert_eq!(
            request.filter,
            Some(TraitFilter::parse("plan:pro").unwrap())
        );
    }

    #[test]
    fn each_bad_parameter_is_named() {
        for limit in ["0", "101", "-1", "ten", ""] {
            assert_eq!(refused_field(&[("limit", limit)]), "limit", "{limit:?}");
        }
        assert_eq!(refused_field(&[("trait", "plan")]), "trait");
        assert_eq!(refused_field(&[("cursor", "a"), ("cursor", "b")]), "cursor");
        assert_eq!(refused_field(&[("filter", "plan:pro")]), "filter");
    }
}
