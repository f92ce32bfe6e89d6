//! The template routes (admin key):
//! - `POST /v1/templates` (`{"id", "name", "template"}`), `GET /v1/templates`;
//! - `GET`, `PUT` (`{"name", "template"}`: a new version) and `DELETE /v1/templates/{id}`;
//! - `GET /v1/templates/{id}/versions/{version}`;
//! - `POST /v1/templates/{id}/preview` (`{"userId"}` or `{"traits"}`, optionally `"variables"`): the
//!   rendered subject, HTML and text, links untracked;
//! - `POST /v1/templates/{id}/test-send` (`{"to", "userId"?, "traits"?, "variables"?}`): the rendered email
//!   through the mail port, its subject prefixed `[Test] `.
//!
//! A template that does not compile is answered 400 with one entry per problem in `errors`, each with its
//! field (`template.body.mjml`) and, for Liquid and MJML, its line and column.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderValue, header};
use jiff::tz::TimeZone;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tern_domain::profile;
use tern_domain::suppressions::normalize_address;
use tern_domain::templates::store::{
    self, SaveError, StoredTemplate, TemplateInput, TemplateSummary,
};
use tern_domain::templates::{
    CompiledTemplate, Envelope, Mailbox, NoTracking, RenderContext, RenderError, TemplateError,
    build_mime, render_email, render_webhook,
};
use tern_ports::OutgoingEmail;

use crate::AppState;
use crate::auth::AdminAuth;
use crate::problem::{ApiError, PROBLEM_CONTENT_TYPE, parse_version};

/// Where the unsubscribe links of previews and test sends point: they are for no subscriber, so they lead
/// nowhere (`.invalid` never resolves).
pub const PLACEHOLDER_UNSUBSCRIBE_URL: &str = "https://unsubscribe.invalid/test";
/// Where the preferences links of previews and test sends point.
pub const PLACEHOLDER_PREFERENCES_URL: &str = "https://preferences.invalid/test";
/// The prefix of a test send's subject.
pub const TEST_SUBJECT_PREFIX: &str = "[Test] ";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/templates", get(list).post(create))
        .route("/v1/templates/{id}", get(one).put(update).delete(remove))
        .route("/v1/templates/{id}/versions/{version}", get(version))
        .route("/v1/templates/{id}/preview", post(preview))
        .route("/v1/templates/{id}/test-send", post(test_send))
}

/// The answer to a template that does not compile or a body that is not a template request.
#[derive(Debug, Serialize)]
struct TemplateProblem {
    status: u16,
    code: &'static str,
    field: Option<String>,
    message: String,
    errors: Vec<TemplateProblemEntry>,
}

#[derive(Debug, Serialize)]
struct TemplateProblemEntry {
    field: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<u32>,
}

/// An error of a template route: a problem with the template, or any other.
#[derive(Debug)]
enum TemplateRouteError {
    Template(Vec<TemplateError>),
    Api(ApiError),
}

impl<E: Into<ApiError>> From<E> for TemplateRouteError {
    fn from(error: E) -> Self {
        TemplateRouteError::Api(error.into())
    }
}

fn save_error(error: SaveError) -> TemplateRouteError {
    match error {
        SaveError::Template(errors) => TemplateRouteError::Template(errors),
        SaveError::Domain(error) => TemplateRouteError::Api(error.into()),
    }
}

impl IntoResponse for TemplateRouteError {
    fn into_response(self) -> Response {
        match self {
            TemplateRouteError::Api(error) => error.into_response(),
            TemplateRouteError::Template(errors) => template_problem(errors),
        }
    }
}

fn template_problem(errors: Vec<TemplateError>) -> Response {
    let message = match errors.first() {
        Some(first) if errors.len() == 1 => first.to_string(),
        Some(first) => format!("{first} (and {} more problems)", errors.len() - 1),
        None => "invalid template".to_string(),
    };
    let body = TemplateProblem {
        status: StatusCode::BAD_REQUEST.as_u16(),
        code: "invalid_template",
        field: errors.first().map(|error| error.path.clone()),
        message,
        errors: errors
            .into_iter()
            .map(|error| TemplateProblemEntry {
                line: error.position.map(|p| p.line),
                column: error.position.map(|p| p.column),
                field: error.path,
                message: error.message,
            })
            .collect(),
    };
    let mut response = (StatusCode::BAD_REQUEST, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    response
}

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|rejection| ApiError::invalid("id", rejection.body_text()))
}

fn json_body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, ApiError> {
    body.map(|Json(value)| value).map_err(ApiError::from)
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no template {id:?} in this workspace"))
}

async fn create(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<StoredTemplate>), TemplateRouteError> {
    let body = json_body(body)?;
    let id = match body.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(ApiError::invalid("id", "must be a string").into()),
        None => return Err(ApiError::invalid("id", "is required").into()),
    };
    store::check_id("id", &id)?;
    let input = TemplateInput::from_json(&body).map_err(TemplateRouteError::Template)?;
    let now = state.ports.clock.now();
    let template = store::create_template(
        state.ports.table.as_ref(),
        &grant.workspace_id,
        &id,
        input,
        now,
    )
    .await
    .map_err(save_error)?;
    Ok((StatusCode::CREATED, Json(template)))
}

async fn update(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<StoredTemplate>, TemplateRouteError> {
    let id = path_id(id)?;
    let body = json_body(body)?;
    if let Some(given) = body.get("id")
        && given.as_str() != Some(id.as_str())
    {
        return Err(ApiError::invalid("id", "differs from the id in the path").into());
    }
    let input = TemplateInput::from_json(&body).map_err(TemplateRouteError::Template)?;
    let now = state.ports.clock.now();
    let template = store::update_template(
        state.ports.table.as_ref(),
        &grant.workspace_id,
        &id,
        input,
        now,
    )
    .await
    .map_err(save_error)?;
    Ok(Json(template))
}

async fn list(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
) -> Result<Json<Value>, ApiError> {
    let templates: Vec<TemplateSummary> =
        store::list_templates(state.ports.table.as_ref(), &grant.workspace_id).await?;
    Ok(Json(json!({ "templates": templates })))
}

async fn one(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<StoredTemplate>, ApiError> {
    let id = path_id(id)?;
    current(&state, &grant.workspace_id, &id).await.map(Json)
}

async fn current(
    state: &AppState,
    workspace_id: &str,
    id: &str,
) -> Result<StoredTemplate, ApiError> {
    store::get_template(state.ports.table.as_ref(), workspace_id, id)
        .await?
        .ok_or_else(|| not_found(id))
}

async fn version(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<StoredTemplate>, ApiError> {
    let Path((id, version)) =
        params.map_err(|rejection| ApiError::invalid("version", rejection.body_text()))?;
    let number = parse_version(&version)?;
    store::get_template_version(state.ports.table.as_ref(), &grant.workspace_id, &id, number)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("template {id:?} has no version {number}")))
}

async fn remove(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(id)?;
    let now = state.ports.clock.now();
    store::delete_template(state.ports.table.as_ref(), &grant.workspace_id, &id, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who a preview or test send renders for: a stored user's profile, or traits given in the request.
#[derive(Debug, Default)]
struct Recipient {
    user_id: String,
    traits: Map<String, Value>,
    time_zone: Option<String>,
    variables: Map<String, Value>,
}

/// Reads `userId`, `traits` and `variables` from a preview or test-send body (at most one of `userId` and
/// `traits`), and loads the user's profile when one is named.
async fn recipient(
    state: &AppState,
    workspace_id: &str,
    body: &Map<String, Value>,
) -> Result<Recipient, ApiError> {
    let object_field = |name: &str| -> Result<Option<Map<String, Value>>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(object)) => Ok(Some(object.clone())),
            Some(_) => Err(ApiError::invalid(name, "must be an object")),
        }
    };
    let variables = object_field("variables")?.unwrap_or_default();
    let traits = object_field("traits")?;
    match (body.get("userId"), traits) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "traits",
            "give either userId (a stored profile) or traits, not both",
        )),
        (Some(Value::String(user_id)), None) => {
            let user = profile::get_user(state.ports.table.as_ref(), workspace_id, user_id)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(format!("no user {user_id:?} in this workspace"))
                })?;
            Ok(Recipient {
                user_id: user.user_id,
                traits: user.traits,
                time_zone: user.timezone,
                variables,
            })
        }
        (Some(_), None) => Err(ApiError::invalid("userId", "must be a string")),
        (None, traits) => Ok(Recipient {
            user_id: "preview".to_string(),
            traits: traits.unwrap_or_default(),
            time_zone: None,
            variables,
        }),
    }
}

fn render_context(state: &AppState, recipient: Recipient) -> RenderContext {
    let email = recipient
        .traits
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let time_zone = recipient
        .time_zone
        .and_then(|name| TimeZone::get(&name).ok())
        .unwrap_or(TimeZone::UTC);
    RenderContext {
        user_id: recipient.user_id,
        email,
        traits: recipient.traits,
        time_zone,
        now: state.ports.clock.now(),
        variables: recipient.variables,
        unsubscribe_url: PLACEHOLDER_UNSUBSCRIBE_URL.to_string(),
        preferences_url: PLACEHOLDER_PREFERENCES_URL.to_string(),
    }
}

fn render_problem(error: RenderError) -> ApiError {
    let field = match &error {
        RenderError::MissingVariable { field, .. }
        | RenderError::Liquid { field, .. }
        | RenderError::InvalidUrl { field, .. } => format!("template.{field}"),
        RenderError::InvalidHeader { name, .. } => format!("template.headers.{name}"),
    };
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "render_failed",
        error.to_string(),
    )
    .with_field(field)
}

fn object_body(body: Result<Json<Value>, JsonRejection>) -> Result<Map<String, Value>, ApiError> {
    match json_body(body)? {
        Value::Object(object) => Ok(object),
        _ => Err(ApiError::invalid("", "the body must be a JSON object")),
    }
}

fn refuse_unknown_fields(body: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(ApiError::invalid(
            unknown.as_str(),
            format!("is not a field; the fields are {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

async fn preview(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let body = object_body(body)?;
    refuse_unknown_fields(&body, &["userId", "traits", "variables"])?;
    let template = current(&state, &grant.workspace_id, &id).await?;
    let recipient = recipient(&state, &grant.workspace_id, &body).await?;
    let context = render_context(&state, recipient);
    match template.compile()? {
        CompiledTemplate::Email(email) => {
            let rendered = render_email(&email, &context, &NoTracking).map_err(render_problem)?;
            Ok(Json(json!({
                "channel": "email",
                "version": template.version,
                "from": mailbox_text(&rendered.from),
                "subject": rendered.subject,
                "html": rendered.html,
                "text": rendered.text,
            })))
        }
        CompiledTemplate::Webhook(webhook) => {
            let rendered = render_webhook(&webhook, &context).map_err(render_problem)?;
            let headers: Map<String, Value> = rendered
                .headers
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect();
            Ok(Json(json!({
                "channel": "webhook",
                "version": template.version,
                "method": rendered.method,
                "url": rendered.url,
                "headers": headers,
                "body": String::from_utf8_lossy(&rendered.body),
            })))
        }
    }
}

async fn test_send(
    State(state): State<AppState>,
    AdminAuth(grant): AdminAuth,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let body = object_body(body)?;
    refuse_unknown_fields(&body, &["to", "userId", "traits", "variables"])?;
    let to = match body.get("to") {
        Some(Value::String(to)) => {
            normalize_address("to", to)?;
            to.trim().to_string()
        }
        Some(_) => return Err(ApiError::invalid("to", "must be an email address")),
        None => return Err(ApiError::invalid("to", "is required")),
    };
    let template = current(&state, &grant.workspace_id, &id).await?;
    let CompiledTemplate::Email(email) = template.compile()? else {
        return Err(ApiError::invalid(
            "id",
            format!("template {id:?} is a webhook template; test sends are for email templates"),
        ));
    };
    let recipient = recipient(&state, &grant.workspace_id, &body).await?;
    let context = render_context(&state, recipient);
    let mut rendered = render_email(&email, &context, &NoTracking).map_err(render_problem)?;
    rendered.subject = format!("{TEST_SUBJECT_PREFIX}{}", rendered.subject);
    let message_id = test_message_id(&rendered.from.address);
    let envelope = Envelope {
        to: to.clone(),
        message_id: message_id.clone(),
        date: state.ports.clock.now(),
        list_unsubscribe_https: PLACEHOLDER_UNSUBSCRIBE_URL.to_string(),
        list_unsubscribe_mailto: None,
        headers: vec![
            ("X-Tern-Test".to_string(), "true".to_string()),
            (
                "X-Tern-Template".to_string(),
                format!("{id}/{}", template.version),
            ),
        ],
    };
    let raw = build_mime(&rendered, &envelope).map_err(|error| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "render_failed",
            error.to_string(),
        )
    })?;
    let sent = state
        .ports
        .mail
        .send(OutgoingEmail {
            from: rendered.from.address.clone(),
            to: vec![to],
            raw: Bytes::from(raw),
            configuration_set: None,
        })
        .await?;
    Ok(Json(json!({
        "messageId": message_id,
        "providerId": sent.provider_id,
        "version": template.version,
    })))
}

/// `Name <address>`, or the address alone, as a preview shows the sender.
fn mailbox_text(mailbox: &Mailbox) -> String {
    match &mailbox.name {
        Some(name) => format!("{name} <{}>", mailbox.address),
        None => mailbox.address.clone(),
    }
}

/// A Message-ID for a test send: a fresh UUIDv7 at the sender's domain.
fn test_message_id(from_address: &str) -> String {
    let domain = from_address
        .rsplit_once('@')
        .map_or("tern.invalid", |(_, domain)| domain);
    format!("{}@{domain}", uuid::Uuid::now_v7())
}
