//! Rendering a compiled template for one recipient: the per-message work, kept small.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use liquid_core::Object;
use liquid_core::model::Value as LiquidValue;
use serde_json::{Map, Value};

use super::compile::{CompiledEmail, CompiledWebhook, JsonTemplate};
use super::engine::{LiquidTemplate, RenderClock, RenderFailure, with_clock};
use super::html::{
    escape_html, insert_before_body_close, is_web_link, rewrite_links, rewrite_text_links,
};
use super::model::{Mailbox, is_header_name};
use super::values::{object_from_json, to_liquid};

/// What a template sees for one message.
///
/// Liquid names: `user` (the traits, plus `id` and `email`), each of `variables` by its name (`event`,
/// `broadcast`, `journey`…), `unsubscribe_url` and `preferences_url`.
#[derive(Debug, Clone)]
pub struct RenderContext {
    pub user_id: String,
    pub email: String,
    pub traits: Map<String, Value>,
    /// The recipient's zone, for the `date` filter.
    pub time_zone: TimeZone,
    /// The instant of the send (`"now" | date: …`).
    pub now: Timestamp,
    pub variables: Map<String, Value>,
    pub unsubscribe_url: String,
    pub preferences_url: String,
}

/// How the sender turns links into signed click URLs and adds the open pixel.
pub trait LinkTracker {
    /// The click URL for the `index`-th tracked link (in document order) that points at `original`; `None`
    /// leaves the link as it is.
    fn click_url(&self, index: usize, original: &str) -> Option<String>;
    /// The 1×1 image that records an open, if opens are tracked.
    fn open_pixel_url(&self) -> Option<String>;
}

/// Tracks nothing: links stay, no pixel (previews and test sends).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTracking;

impl LinkTracker for NoTracking {
    fn click_url(&self, _index: usize, _original: &str) -> Option<String> {
        None
    }

    fn open_pixel_url(&self) -> Option<String> {
        None
    }
}

/// A link the sender rewrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedLink {
    pub index: usize,
    pub original: String,
    pub click_url: String,
}

/// One rendered email, ready for `build_mime`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedEmail {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub links: Vec<TrackedLink>,
}

/// One rendered webhook call.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedWebhook {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why one message could not be rendered: recorded against the message, the send goes on for others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{field}: the variable `{name}` is missing (the template is strict)")]
    MissingVariable { field: String, name: String },
    #[error("{field}: {reason}")]
    Liquid { field: String, reason: String },
    #[error("{field}: the rendered URL {url:?} is not usable: {reason}")]
    InvalidUrl {
        field: String,
        url: String,
        reason: String,
    },
    #[error("headers.{name}: {reason}")]
    InvalidHeader { name: String, reason: String },
}

impl RenderContext {
    /// The Liquid globals of this message.
    fn globals(&self) -> Object {
        let mut user = object_from_json(&self.traits);
        user.insert("id".into(), LiquidValue::scalar(self.user_id.clone()));
        user.insert("email".into(), LiquidValue::scalar(self.email.clone()));
        let mut globals: Object = self
            .variables
            .iter()
            .map(|(name, value)| (name.clone().into(), to_liquid(value)))
            .collect();
        globals.insert("user".into(), LiquidValue::Object(user));
        globals.insert(
            "unsubscribe_url".into(),
            LiquidValue::scalar(self.unsubscribe_url.clone()),
        );
        globals.insert(
            "preferences_url".into(),
            LiquidValue::scalar(self.preferences_url.clone()),
        );
        globals
    }

    fn clock(&self) -> RenderClock {
        RenderClock {
            time_zone: self.time_zone.clone(),
            now: self.now,
        }
    }
}

fn render_field(
    template: &LiquidTemplate,
    field: &str,
    globals: &Object,
    strict: bool,
) -> Result<String, RenderError> {
    template
        .render(globals, strict)
        .map_err(|failure| match failure {
            RenderFailure::MissingVariable(name) => RenderError::MissingVariable {
                field: field.to_owned(),
                name,
            },
            RenderFailure::Liquid(reason) => RenderError::Liquid {
                field: field.to_owned(),
                reason,
            },
        })
}

/// Renders an email for one recipient: subject, HTML (outputs escaped) and text, then its links rewritten
/// to click URLs (except mailto:, anchors, the unsubscribe and preferences links) in both parts, and the
/// open pixel added before `</body>`.
pub fn render_email(
    email: &CompiledEmail,
    context: &RenderContext,
    tracker: &dyn LinkTracker,
) -> Result<RenderedEmail, RenderError> {
    let globals = context.globals();
    let (subject, html, text) = with_clock(context.clock(), || {
        let subject = render_field(&email.subject, "subject", &globals, email.strict)?;
        let html = render_field(&email.html, "html", &globals, email.strict)?;
        let text = render_field(&email.text, "text", &globals, email.strict)?;
        Ok::<_, RenderError>((subject, html, text))
    })?;
    let direct = [
        context.unsubscribe_url.as_str(),
        context.preferences_url.as_str(),
    ];
    let mut links = Vec::new();
    let (mut html, rewritten) = rewrite_links(&html, &direct, |index, original| {
        tracker.click_url(index, original)
    });
    let text = rewrite_text_links(&text, &rewritten);
    for (index, link) in rewritten.into_iter().enumerate() {
        links.push(TrackedLink {
            index,
            original: link.original,
            click_url: link.click_url,
        });
    }
    if let Some(pixel) = tracker.open_pixel_url() {
        let image = format!(
            "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;width:1px;height:1px;border:0;\" />",
            escape_html(&pixel)
        );
        insert_before_body_close(&mut html, &image);
    }
    Ok(RenderedEmail {
        from: email.from.clone(),
        reply_to: email.reply_to.clone(),
        subject: one_line(&subject),
        html,
        text,
        links,
    })
}

/// A header must stay on one line: line breaks a value brought in become spaces.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders a webhook call: URL (checked to be http or https), headers (checked to stay on one line) and
/// the JSON body (every rendered string JSON-escaped, so the body is always valid JSON).
pub fn render_webhook(
    webhook: &CompiledWebhook,
    context: &RenderContext,
) -> Result<RenderedWebhook, RenderError> {
    let globals = context.globals();
    let strict = webhook.strict;
    with_clock(context.clock(), || {
        let url = render_field(&webhook.url, "url", &globals, strict)?
            .trim()
            .to_owned();
        check_url(&url)?;
        let mut headers = Vec::with_capacity(webhook.headers.len() + 1);
        for (name, template) in &webhook.headers {
            let value = render_field(template, &format!("headers.{name}"), &globals, strict)?;
            if value.contains(['\r', '\n']) || !is_header_name(name) {
                return Err(RenderError::InvalidHeader {
                    name: name.clone(),
                    reason: "a header value must be one line".into(),
                });
            }
            headers.push((name.clone(), value.trim().to_owned()));
        }
        let body = match &webhook.body {
            None => Vec::new(),
            Some(template) => {
                if !headers
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                {
                    headers.push(("Content-Type".into(), "application/json".into()));
                }
                let value = render_json(template, "body", &globals, strict)?;
                serde_json::to_vec(&value).map_err(|error| RenderError::Liquid {
                    field: "body".into(),
                    reason: error.to_string(),
                })?
            }
        };
        Ok(RenderedWebhook {
            method: webhook.method.clone(),
            url,
            headers,
            body,
        })
    })
}

fn check_url(url: &str) -> Result<(), RenderError> {
    let invalid = |reason: &str| RenderError::InvalidUrl {
        field: "url".into(),
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = url::Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
    if !is_web_link(url) || !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("only http and https URLs are allowed"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    Ok(())
}

fn render_json(
    template: &JsonTemplate,
    path: &str,
    globals: &Object,
    strict: bool,
) -> Result<Value, RenderError> {
    Ok(match template {
        JsonTemplate::Literal(value) => value.clone(),
        JsonTemplate::Text(template) => {
            Value::String(render_field(template, path, globals, strict)?)
        }
        JsonTemplate::Json(template) => {
            let rendered = render_field(template, path, globals, strict)?;
            serde_json::from_str(&rendered).map_err(|error| RenderError::Liquid {
                field: path.to_owned(),
                reason: format!("the `json` output is not JSON: {error}"),
            })?
        }
        JsonTemplate::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    render_json(item, &format!("{path}[{index}]"), globals, strict)
                })
                .collect::<Result<_, _>>()?,
        ),
        JsonTemplate::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, item)| {
                    Ok((
                        key.clone(),
                        render_json(item, &format!("{path}.{key}"), globals, strict)?,
                    ))
                })
                .collect::<Result<_, RenderError>>()?,
        ),
    })
}
