//! Segments over the admin key, and the handlers of the `segments` and `segment-backfill` queues.
//!
//! Routes (`docs/segments.md` describes them for callers):
//! - `POST /v1/segments`, `GET /v1/segments`, `GET/PUT/DELETE /v1/segments/{id}`: definitions, versioned;
//!   a create or an edit starts a backfill of the segment over the existing users;
//! - `GET /v1/segments/{id}/versions/{n}`: one saved version;
//! - `GET /v1/segments/{id}/members?cursor=&limit=`, `GET /v1/segments/{id}/count`;
//! - `POST /v1/segments/preview`: the count and a sample of an unsaved definition.
//!
//! The segment evaluator consumes `segments`: each message holds accepted events of one workspace
//! (`tern_domain::segments::realtime::SegmentBatch`); evaluating it updates each user's segment state, the
//! member index, and publishes the membership changes on the `segment-changes` queue (which journeys will
//! consume; until then nothing reads it and messages wait there). Evaluation is safe to repeat for a
//! message (the user's state remembers the batches it applied), so a message that fails simply comes back.
//!
//! The backfill consumes `segment-backfill`: each message evaluates one page of users and sends the message
//! for the next (`tern_domain::segments::backfill`).

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use http::{HeaderMap, StatusCode, header};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tern_domain::segments::backfill::{
    BackfillMessage, BackfillProgress, SEGMENT_BACKFILL_QUEUE, StepOutcome, backfill_progress,
    run_backfill_step, start_backfill,
};
use tern_domain::segments::membership::{self, MAX_MEMBERS_PAGE};
use tern_domain::segments::preview::{Preview, preview_segment};
use tern_domain::segments::realtime::{SEGMENTS_QUEUE, SegmentBatch, evaluate_message};
use tern_domain::segments::store::{self, SegmentError, StoredSegment, validate_segment_id};
use tern_domain::segments::{DefinitionError, SegmentDefinition};
use tern_ports::Received;

use crate::AppState;
use crate::auth::AdminAuth;
use crate::problem::{ApiError, FieldError, parse_version};
use crate::queues::{BatchOutcome, Batching, QueueHandler};

/// The members page size when `limit` is not given.
pub const DEFAULT_MEMBERS_LIMIT: u32 = 100;
/// The id a preview evaluates an unsaved definition under when the body names none (it seeds an unseeded
/// random bucket, as a saved segment's id does).
pub const PREVIEW_ID: &str = "preview";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/segments", post(create).get(list))
        .route("/v1/segments/preview", post(preview))
        .route("/v1/segments/{id}", get(show).put(update).delete(remove))
        .route("/v1/segments/{id}/versions/{version}", get(version))
        .route("/v1/segments/{id}/members", get(members))
        .route("/v1/segments/{id}/count", get(count))
}

/// A segment as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SegmentView {
    id: String,
    version: i64,
    /// `name`, `description` and `condition`, as a definition is written.
    #[serde(flatten)]
    definition: Map<String, Value>,
    created_at: Timestamp,
    updated_at: Timestamp,
    /// The latest backfill; only on one segment's answers, not in the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    backfill: Option<BackfillProgress>,
}

impl SegmentView {
    fn of(segment: StoredSegment, backfill: Option<BackfillProgress>) -> Self {
        let definition = match segment.definition.to_value() {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        SegmentView {
            id: segment.id,
            version: segment.version,
            definition,
            created_at: segment.created_at,
            updated_at: segment.updated_at,
            backfill,
        }
    }
}

#[derive(Debug, Serialize)]
struct SegmentList {
    segments: Vec<SegmentView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberView {
    user_id: String,
    entered_at: Timestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MembersView {
    members: Vec<MemberView>,
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CountView {
    segment_id: String,
    count: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<SegmentView>), ApiError> {
    let (id, definition) = read_body(&headers, &body)?;
    let id = id.unwrap_or_else(|| format!("seg_{}", uuid::Uuid::new_v4().simple()));
    if id == PREVIEW_ID {
        // `/v1/segments/preview` is the preview route, so a segment cannot be read under that name.
        return Err(ApiError::invalid(
            "id",
            format!("{PREVIEW_ID:?} is reserved"),
        ));
    }
    let ws = grant.workspace_id.as_str();
    let segment = store::create_segment(&state.ports, ws, &id, definition)
        .await
        .map_err(segment_error)?;
    let backfill = start_backfill(&state.ports, ws, &segment.id, segment.version).await?;
    tracing::info!(segment_id = %segment.id, "segment created; backfill started");
    Ok((
        StatusCode::CREATED,
        Json(SegmentView::of(segment, Some(backfill))),
    ))
}

async fn list(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
) -> Result<Json<SegmentList>, ApiError> {
    let segments = store::list_segments(state.ports.table.as_ref(), &grant.workspace_id).await?;
    Ok(Json(SegmentList {
        segments: segments
            .into_iter()
            .map(|segment| SegmentView::of(segment, None))
            .collect(),
    }))
}

async fn show(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SegmentView>, ApiError> {
    let id = path_id(id)?;
    let table = state.ports.table.as_ref();
    let segment = store::get_segment(table, &grant.workspace_id, &id).await?;
    let backfill = backfill_progress(table, &grant.workspace_id, &id).await?;
    Ok(Json(SegmentView::of(segment, backfill)))
}

async fn update(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SegmentView>, ApiError> {
    let id = path_id(id)?;
    let (body_id, definition) = read_body(&headers, &body)?;
    if body_id.as_ref().is_some_and(|body_id| *body_id != id) {
        return Err(ApiError::invalid(
            "id",
            format!("the body names segment {body_id:?}, the path {id:?}; they must agree"),
        ));
    }
    let ws = grant.workspace_id.as_str();
    let segment = store::update_segment(&state.ports, ws, &id, definition)
        .await
        .map_err(segment_error)?;
    let backfill = start_backfill(&state.ports, ws, &segment.id, segment.version).await?;
    tracing::info!(segment_id = %segment.id, version = segment.version,
        "segment updated; backfill started");
    Ok(Json(SegmentView::of(segment, Some(backfill))))
}

async fn remove(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(id)?;
    store::delete_segment(&state.ports, &grant.workspace_id, &id)
        .await
        .map_err(segment_error)?;
    tracing::info!(segment_id = %id, "segment deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn version(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<SegmentView>, ApiError> {
    let Path((id, version)) =
        path.map_err(|rejection| ApiError::invalid("id", rejection.body_text()))?;
    let number = parse_version(&version)?;
    let table = state.ports.table.as_ref();
    let segment = store::get_segment_version(table, &grant.workspace_id, &id, number).await?;
    Ok(Json(SegmentView::of(segment, None)))
}

async fn members(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<MembersQuery>, QueryRejection>,
) -> Result<Json<MembersView>, ApiError> {
    let id = path_id(id)?;
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let limit = match &query.limit {
        None => DEFAULT_MEMBERS_LIMIT,
        Some(text) => parse_limit(text)?,
    };
    let table = state.ports.table.as_ref();
    store::get_segment(table, &grant.workspace_id, &id).await?;
    let page = membership::members(
        table,
        &grant.workspace_id,
        &id,
        query.cursor.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(MembersView {
        members: page
            .members
            .into_iter()
            .map(|member| MemberView {
                user_id: member.user_id,
                entered_at: member.entered_at,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn count(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CountView>, ApiError> {
    let id = path_id(id)?;
    let table = state.ports.table.as_ref();
    store::get_segment(table, &grant.workspace_id, &id).await?;
    let count = membership::member_count(table, &grant.workspace_id, &id).await?;
    Ok(Json(CountView {
        segment_id: id,
        count,
    }))
}

async fn preview(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Preview>, ApiError> {
    let (id, definition) = read_body(&headers, &body)?;
    let id = id.unwrap_or_else(|| PREVIEW_ID.to_string());
    let preview = preview_segment(&state.ports, &grant.workspace_id, &id, &definition)
        .await
        .map_err(segment_error)?;
    Ok(Json(preview))
}

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|rejection| ApiError::invalid("id", rejection.body_text()))
}

fn parse_limit(text: &str) -> Result<u32, ApiError> {
    text.parse::<u32>()
        .ok()
        .filter(|limit| (1..=MAX_MEMBERS_PAGE).contains(limit))
        .ok_or_else(|| {
            ApiError::invalid(
                "limit",
                format!("limit must be a whole number from 1 to {MAX_MEMBERS_PAGE}, not {text:?}"),
            )
        })
}

/// Whether the body is YAML: `Content-Type: application/yaml` (or the older `application/x-yaml` and
/// `text/yaml`); anything else is read as JSON.
fn is_yaml(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|media| media.trim().to_ascii_lowercase())
        .is_some_and(|media| {
            matches!(
                media.as_str(),
                "application/yaml" | "application/x-yaml" | "text/yaml"
            )
        })
}

/// Reads a definition body: an optional `id` and the definition (`name`, `description`, `condition`).
/// Every error of the definition is reported, each with its path.
fn read_body(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Option<String>, SegmentDefinition), ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid("body", "the body is not UTF-8 text"))?;
    let value: Value = if is_yaml(headers) {
        serde_yaml::from_str(text)
            .map_err(|error| ApiError::invalid("body", format!("invalid YAML: {error}")))?
    } else {
        serde_json::from_str(text)
            .map_err(|error| ApiError::invalid("body", format!("invalid JSON: {error}")))?
    };
    let Value::Object(mut fields) = value else {
        return Err(ApiError::invalid(
            "body",
            "the body must be an object with name, condition and optionally id and description",
        ));
    };
    let id = match fields.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => {
            validate_segment_id(&id).map_err(|error| invalid_definition(vec![error]))?;
            Some(id)
        }
        Some(_) => return Err(ApiError::invalid("id", "the id must be a string")),
    };
    let definition =
        SegmentDefinition::from_value(&Value::Object(fields)).map_err(invalid_definition)?;
    Ok((id, definition))
}

/// A 400 listing every problem of a definition.
fn invalid_definition(errors: Vec<DefinitionError>) -> ApiError {
    let message = match errors.as_slice() {
        [only] => only.to_string(),
        _ => format!("the definition has {} errors", errors.len()),
    };
    let field = match errors.as_slice() {
        [only] if !only.path.is_empty() => Some(only.path.clone()),
        _ => None,
    };
    let mut error = ApiError::new(StatusCode::BAD_REQUEST, "invalid", message).with_errors(
        errors
            .into_iter()
            .map(|error| FieldError {
                field: error.path,
                message: error.reason,
            })
            .collect(),
    );
    error.field = field;
    error
}

fn segment_error(error: SegmentError) -> ApiError {
    match error {
        SegmentError::Invalid(errors) => invalid_definition(errors),
        SegmentError::Domain(error) => error.into(),
    }
}

/// Up to 50 messages gathered for up to 1 s: evaluation is latency-sensitive (journeys start from its
/// changes), so batches stay small; the window is far below the 30 s visibility timeout.
pub const SEGMENTS_BATCHING: Batching = Batching {
    max_messages: 50,
    window: Duration::from_secs(1),
};

/// How many messages of a batch are evaluated at the same time.
const CONCURRENT_MESSAGES: usize = 4;

/// The `segments` queue's handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct SegmentEvaluator;

#[async_trait]
impl QueueHandler for SegmentEvaluator {
    fn queue(&self) -> &str {
        SEGMENTS_QUEUE
    }

    fn batching(&self) -> Batching {
        SEGMENTS_BATCHING
    }

    async fn handle(&self, state: &AppState, messages: Vec<Received>) -> BatchOutcome {
        let failed: Vec<Option<String>> =
            futures::stream::iter(messages)
                .map(|message| async move {
                    (!evaluate_one(state, &message).await).then_some(message.id)
                })
                .buffer_unordered(CONCURRENT_MESSAGES)
                .collect()
                .await;
        BatchOutcome::failed(failed.into_iter().flatten())
    }
}

/// Evaluates one message; false when it should come back (or, malformed, reach the dead-letter queue).
async fn evaluate_one(state: &AppState, message: &Received) -> bool {
    let batch = match SegmentBatch::parse(&message.body) {
        Ok(batch) => batch,
        Err(reason) => {
            tracing::error!(queue = SEGMENTS_QUEUE, message_id = %message.id, %reason,
                "malformed segments message; it will reach the dead-letter queue");
            return false;
        }
    };
    match evaluate_message(&state.ports, &batch).await {
        Ok(evaluated) => {
            tracing::debug!(queue = SEGMENTS_QUEUE, message_id = %message.id,
                workspace_id = %batch.workspace_id, users = evaluated.users,
                entered = evaluated.entered, exited = evaluated.exited, "segments evaluated");
            true
        }
        Err(error) => {
            tracing::error!(queue = SEGMENTS_QUEUE, message_id = %message.id,
                workspace_id = %batch.workspace_id, %error,
                "cannot evaluate segments; the message will be retried");
            false
        }
    }
}

/// The scheduled visit of every workspace's users whose segment memberships may have changed with time:
/// what the `segment-ticker` function runs every minute on AWS (the embedded engine's timer calls the
/// domain's `tick_all` the same way).
pub async fn tick_due(state: &AppState) -> Result<(), tern_domain::DomainError> {
    let now = state.ports.clock.now();
    let evaluated = tern_domain::segments::realtime::tick_all(&state.ports, now).await?;
    tracing::info!(
        users = evaluated.users,
        entered = evaluated.entered,
        exited = evaluated.exited,
        "due segment memberships re-evaluated"
    );
    Ok(())
}

/// A few messages at a time, no window: each message is a page of users (`backfill::BACKFILL_PAGE`), and
/// a backfill has one message in flight, so there is nothing to gather.
pub const BACKFILL_BATCHING: Batching = Batching {
    max_messages: 2,
    window: Duration::ZERO,
};

/// The `segment-backfill` queue's handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct SegmentBackfill;

#[async_trait]
impl QueueHandler for SegmentBackfill {
    fn queue(&self) -> &str {
        SEGMENT_BACKFILL_QUEUE
    }

    fn batching(&self) -> Batching {
        BACKFILL_BATCHING
    }

    async fn handle(&self, state: &AppState, messages: Vec<Received>) -> BatchOutcome {
        let mut failed = Vec::new();
        for message in messages {
            if !backfill_one(state, &message).await {
                failed.push(message.id);
            }
        }
        BatchOutcome::failed(failed)
    }
}

/// Runs one backfill step; false when the message should come back.
async fn backfill_one(state: &AppState, message: &Received) -> bool {
    let step = match BackfillMessage::parse(&message.body) {
        Ok(step) => step,
        Err(reason) => {
            tracing::error!(queue = SEGMENT_BACKFILL_QUEUE, message_id = %message.id, %reason,
                "malformed backfill message; it will reach the dead-letter queue");
            return false;
        }
    };
    match run_backfill_step(&state.ports, &step).await {
        Ok(outcome) => {
            if let StepOutcome::Evaluated { users, more } = outcome {
                tracing::info!(queue = SEGMENT_BACKFILL_QUEUE, workspace_id = %step.workspace_id,
                    segment_id = %step.segment_id, users, more, "backfill page evaluated");
            }
            true
        }
        Err(error) => {
            tracing::error!(queue = SEGMENT_BACKFILL_QUEUE, message_id = %message.id,
                workspace_id = %step.workspace_id, segment_id = %step.segment_id, %error,
                "cannot run the backfill step; the message will be retried");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;
    use tern_domain::segments::SegmentDefinition;
    use tern_domain::segments::membership::member_count;
    use tern_domain::segments::store::create_segment;
    use tern_embedded::Db;
    use tern_embedded::blobs::DirBlobs;
    use tern_embedded::mail::Outbox;
    use tern_embedded::queue::SqliteQueue;
    use tern_embedded::table::SqliteTable;
    use tern_embedded::workflows::{EmbeddedWorkflows, NoTasks};
    use tern_ports::{Ports, VirtualClock};

    use super::*;
    use crate::AppConfig;

    async fn state(dir: &std::path::Path) -> AppState {
        let db = Db::in_memory().unwrap();
        let clock = Arc::new(VirtualClock::new("2026-03-01T09:00:00Z".parse().unwrap()));
        let queue = Arc::new(SqliteQueue::new(db.clone()).unwrap());
        for spec in crate::queues::queue_specs() {
            tern_ports::Queue::declare(queue.as_ref(), &spec)
                .await
                .unwrap();
        }
        let ports = Ports {
            table: Arc::new(SqliteTable::new(db.clone()).unwrap()),
            queue,
            blobs: Arc::new(
                DirBlobs::new(
                    dir.join("blobs"),
                    "http://127.0.0.1:3000".into(),
                    vec![7; 32],
                )
                .unwrap(),
            ),
            mail: Arc::new(Outbox::new(dir.join("outbox"), None).unwrap()),
            workflows: Arc::new(
                EmbeddedWorkflows::new(db, clock.clone(), Arc::new(NoTasks)).unwrap(),
            ),
            clock,
        };
        AppState::new(ports, AppConfig::default())
    }

    fn received(id: &str, body: String) -> Received {
        Received {
            id: id.into(),
            receipt: format!("r-{id}"),
            body,
            receive_count: 1,
            attributes: BTreeMap::new(),
        }
    }

    fn event_source_setting(function: &str, name: &str) -> Option<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
        let template = std::fs::read_to_string(path).unwrap();
        let start = template
            .find(&format!("\n  {function}:\n"))
            .unwrap_or_else(|| panic!("the template declares {function}"));
        template[start..]
            .lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .map(|value| value.trim().to_string())
    }

    #[test]
    fn the_lambda_event_sources_batch_as_the_local_worker_does() {
        for (function, batching) in [
            ("SegmentEvaluatorFunction", SEGMENTS_BATCHING),
            ("SegmentBackfillFunction", BACKFILL_BATCHING),
        ] {
            assert_eq!(
                event_source_setting(function, "BatchSize:"),
                Some(batching.max_messages.to_string()),
                "{function}"
            );
            assert_eq!(
                event_source_setting(function, "MaximumBatchingWindowInSeconds:"),
                Some(batching.window.as_secs().to_string()),
                "{function}"
            );
        }
    }

    #[test]
    fn a_body_gives_its_id_and_every_definition_error_with_its_path() {
        let json = HeaderMap::new();
        let (id, definition) = read_body(
            &json,
            br#"{"id": "pro", "name": "Pro", "condition": {"everyone": true}}"#,
        )
        .unwrap();
        assert_eq!(id.as_deref(), Some("pro"));
        assert_eq!(definition.name, "Pro");
        let mut yaml = HeaderMap::new();
        yaml.insert(header::CONTENT_TYPE, "application/yaml".parse().unwrap());
        let (id, definition) =
            read_body(&yaml, b"name: All\ncondition:\n  everyone: true\n").unwrap();
        assert_eq!((id, definition.name.as_str()), (None, "All"));

        let error = read_body(
            &json,
            br#"{"name": "Bad", "condition": {"all": [
                {"performed": {"event": "X", "within": "30 days"}},
                {"randomBucket": {"percent": 120}}]}}"#,
        )
        .unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        let fields: Vec<&str> = error.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "condition.all[0].performed.within",
                "condition.all[1].randomBucket.percent"
            ]
        );
        assert_eq!(
            read_body(&json, b"[1]").unwrap_err().field.as_deref(),
            Some("body")
        );
        let error = read_body(
            &json,
            br#"{"id": "a#b", "name": "x", "condition": {"everyone": true}}"#,
        )
        .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("id"));
    }

    #[tokio::test]
    async fn a_malformed_message_fails_alone_and_the_others_are_evaluated() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let everyone =
            SegmentDefinition::from_value(&json!({"name": "All", "condition": {"everyone": true}}))
                .unwrap();
        create_segment(&state.ports, "ws_1", "all", everyone)
            .await
            .unwrap();
        let batch = |id: &str, user: &str| {
            json!({"id": id, "workspaceId": "ws_1", "events": [{
                "messageId": id, "type": "identify", "userId": user,
                "timestamp": "2026-03-01T09:00:00Z"}]})
            .to_string()
        };
        let messages = vec![
            received("q1", batch("b1", "u1")),
            received("q2", "{not json".into()),
            received("q3", batch("b2", "u2")),
        ];
        let outcome = SegmentEvaluator.handle(&state, messages).await;
        assert_eq!(outcome.failed, ["q2"]);
        let count = member_count(state.ports.table.as_ref(), "ws_1", "all")
            .await
            .unwrap();
        assert_eq!(count, 2);
    }
}
