//! CSV imports of profiles, over the admin key: `POST /v1/imports` (an upload target), `POST
//! /v1/imports/{id}/start`, `GET /v1/imports/{id}` (status, counts, the first row errors),
//! `GET /v1/imports/{id}/errors` (the rest, page by page) — and the handler of the `imports` queue, which
//! runs an import. `docs/imports.md` describes the API for its callers.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tern_domain::imports::{
    self, IMPORTS_QUEUE, Import, ImportMessage, RowError, RunOptions, RunOutcome,
};
use tern_ports::{Cursor, OutMessage, Received, UploadTarget};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use crate::AppState;
use crate::auth::AdminAuth;
use crate::problem::ApiError;
use crate::queues::{BatchOutcome, Batching, MAX_RECEIVES, QueueHandler};

/// Row errors shown with an import; the rest are read page by page from its `errors` route.
pub const ERRORS_SHOWN: u32 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/imports", post(create))
        .route("/v1/imports/{id}", get(show))
        .route("/v1/imports/{id}/start", post(start))
        .route("/v1/imports/{id}/errors", get(errors))
}

/// The optional body of `POST /v1/imports`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    file_name: Option<String>,
}

/// Where and how to upload the file: send `method` to `url` with `headers` and the file as the body.
#[derive(Debug, Serialize)]
struct UploadView {
    method: String,
    url: String,
    headers: BTreeMap<String, String>,
}

impl From<UploadTarget> for UploadView {
    fn from(target: UploadTarget) -> Self {
        Self {
            method: target.method,
            url: target.url,
            headers: target.headers.into_iter().collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct CreatedView {
    #[serde(flatten)]
    import: Import,
    upload: UploadView,
}

/// An import with its first row errors.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportView {
    #[serde(flatten)]
    import: Import,
    errors: Vec<RowError>,
    /// Pass to `GET /v1/imports/{id}/errors?cursor=` for the errors after these.
    errors_cursor: Option<Cursor>,
}

#[derive(Debug, Serialize)]
struct ErrorsView {
    errors: Vec<RowError>,
    cursor: Option<Cursor>,
}

#[derive(Debug, Deserialize)]
struct ErrorsQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

async fn create(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedView>), ApiError> {
    let body = create_body(&body)?;
    let created =
        imports::create_import(&state.ports, &grant.workspace_id, body.file_name.as_deref())
            .await?;
    tracing::info!(import_id = %created.import.id, "import created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedView {
            import: created.import,
            upload: created.upload.into(),
        }),
    ))
}

/// No body (or only whitespace) is no file name; anything else must be the JSON object.
fn create_body(body: &[u8]) -> Result<CreateBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CreateBody::default());
    }
    serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "the body must be a JSON object like {{\"fileName\": \"customers.csv\"}}: {error}"
            ),
        )
        .with_field("body")
    })
}

async fn start(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Import>, ApiError> {
    let import = imports::start_import(&state.ports, &grant.workspace_id, &id).await?;
    tracing::info!(import_id = %import.id, "import started");
    Ok(Json(import))
}

async fn show(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<ImportView>, ApiError> {
    let table = state.ports.table.as_ref();
    let import = imports::get_import(table, &grant.workspace_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let page =
        imports::list_row_errors(table, &grant.workspace_id, &id, None, ERRORS_SHOWN).await?;
    Ok(Json(ImportView {
        import,
        errors: page.errors,
        errors_cursor: page.cursor,
    }))
}

async fn errors(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    Path(id): Path<String>,
    query: Result<Query<ErrorsQuery>, QueryRejection>,
) -> Result<Json<ErrorsView>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let table = state.ports.table.as_ref();
    imports::get_import(table, &grant.workspace_id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let cursor = query.cursor.filter(|c| !c.is_empty()).map(Cursor);
    let limit = query.limit.unwrap_or(ERRORS_SHOWN);
    let page = imports::list_row_errors(table, &grant.workspace_id, &id, cursor, limit).await?;
    Ok(Json(ErrorsView {
        errors: page.errors,
        cursor: page.cursor,
    }))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no import {id:?} in this workspace"))
}

/// The handler of the `imports` queue: runs the import a message names.
///
/// A run may take long, so while it works the message's visibility is extended every `heartbeat` (to
/// `lease`), and after `budget` the run stops at a checkpoint and asks for the rest in a new message — a
/// Lambda invocation ends well within its 15 minutes, and no message is received more than a few times.
pub struct ImportHandler {
    pub batch_rows: usize,
    pub budget: Duration,
    pub heartbeat: Duration,
    pub lease: Duration,
}

impl Default for ImportHandler {
    fn default() -> Self {
        Self {
            batch_rows: imports::BATCH_ROWS,
            budget: Duration::from_secs(10 * 60),
            heartbeat: Duration::from_secs(10),
            lease: Duration::from_secs(60),
        }
    }
}

#[async_trait]
impl QueueHandler for ImportHandler {
    fn queue(&self) -> &str {
        IMPORTS_QUEUE
    }

    /// One import per batch: a run may use its whole budget.
    fn batching(&self) -> Batching {
        Batching {
            max_messages: 1,
            window: Duration::ZERO,
        }
    }

    async fn handle(&self, state: &AppState, messages: Vec<Received>) -> BatchOutcome {
        // One budget for the batch: messages are run one after the other.
        let deadline = Instant::now() + self.budget;
        let mut failed = Vec::new();
        for message in messages {
            if !self.handle_one(state, &message, deadline).await {
                failed.push(message.id);
            }
        }
        BatchOutcome::failed(failed)
    }
}

impl ImportHandler {
    /// Runs one message's import; false when the message should come back.
    async fn handle_one(&self, state: &AppState, received: &Received, deadline: Instant) -> bool {
        let message: ImportMessage = match serde_json::from_str(&received.body) {
            Ok(message) => message,
            Err(error) => {
                // Left to reach the dead-letter queue, where it can be looked at.
                tracing::error!(message_id = %received.id, %error, "an imports message is not an import request");
                return false;
            }
        };
        let span = tracing::info_span!(
            "import",
            workspace_id = %message.workspace_id,
            import_id = %message.import_id,
            message_id = %received.id
        );
        self.run_one(state, received, &message, deadline)
            .instrument(span)
            .await
    }

    async fn run_one(
        &self,
        state: &AppState,
        received: &Received,
        message: &ImportMessage,
        deadline: Instant,
    ) -> bool {
        let options = RunOptions {
            batch_rows: self.batch_rows,
            pause_after: Some(deadline.saturating_duration_since(Instant::now())),
        };
        let outcome = self
            .with_heartbeat(
                state,
                received,
                imports::run_import(&state.ports, message, &options),
            )
            .await;
        match outcome {
            Ok(RunOutcome::Finished(import)) => {
                tracing::info!(status = import.status.as_str(), counts = ?import.counts, "import finished");
                true
            }
            Ok(RunOutcome::Paused(import)) => {
                tracing::info!(
                    rows_read = import.counts.rows_read,
                    "import paused; continuing in a new message"
                );
                continue_later(state, received).await
            }
            Ok(RunOutcome::NotStarted) => {
                tracing::info!("import not started yet; the message will come back");
                false
            }
            Ok(RunOutcome::Skipped(why)) => {
                tracing::info!(?why, "nothing to run");
                true
            }
            Err(error) if received.receive_count >= MAX_RECEIVES => {
                tracing::error!(%error, "import failed on its last attempt");
                let reason = format!("stopped after {} attempts: {error}", received.receive_count);
                match imports::fail_import(&state.ports, message, &reason).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::error!(%error, "cannot record the import's failure");
                        false
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, attempt = received.receive_count, "import interrupted; it resumes when the message comes back");
                false
            }
        }
    }

    /// Drives `run` while keeping the message invisible to other consumers.
    async fn with_heartbeat<T>(
        &self,
        state: &AppState,
        received: &Received,
        run: impl Future<Output = T>,
    ) -> T {
        let mut ticker = tokio::time::interval(self.heartbeat);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick completes at once; the visibility the message was received with covers it.
        ticker.tick().await;
        let mut run = std::pin::pin!(run);
        loop {
            tokio::select! {
                result = &mut run => return result,
                _ = ticker.tick() => {
                    let extended = state
                        .ports
                        .queue
                        .change_visibility(IMPORTS_QUEUE, &received.receipt, self.lease)
                        .await;
                    if let Err(error) = extended {
                        // The run goes on; at worst the message comes back and a second run takes over.
                        tracing::warn!(%error, "cannot extend the import message's visibility");
                    }
                }
            }
        }
    }
}

/// Sends the same request again for the rest of a paused import; false (retry this message) if it cannot.
async fn continue_later(state: &AppState, received: &Received) -> bool {
    match state
        .ports
        .queue
        .send_batch(IMPORTS_QUEUE, vec![OutMessage::new(received.body.clone())])
        .await
    {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "cannot request the rest of a paused import");
            false
        }
    }
}
