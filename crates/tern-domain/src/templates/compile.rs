//! Compiling a template when it is saved: Liquid parsed, MJML turned into HTML, outputs escaped, the
//! plain-text part derived. What remains per message is rendering.

use std::sync::Arc;

use serde_json::Value;

use super::engine::LiquidTemplate;
use super::html::{escape_outputs, html_to_text, insert_after_body_open, last_output_filter};
use super::mjml::mjml_to_html;
use super::model::{
    EmailBody, EmailTemplate, Mailbox, TemplateDefinition, TemplateError, WebhookTemplate,
};

/// A compiled template of either channel, cheap to share.
#[derive(Debug, Clone)]
pub enum CompiledTemplate {
    Email(Arc<CompiledEmail>),
    Webhook(Arc<CompiledWebhook>),
}

/// An email template ready to render: every part parsed once.
#[derive(Debug)]
pub struct CompiledEmail {
    pub(crate) from: Mailbox,
    pub(crate) reply_to: Option<Mailbox>,
    pub(crate) subject: LiquidTemplate,
    /// The HTML with the preheader, every output escaped.
    pub(crate) html: LiquidTemplate,
    pub(crate) text: LiquidTemplate,
    pub(crate) strict: bool,
}

/// A webhook template ready to render.
#[derive(Debug)]
pub struct CompiledWebhook {
    pub(crate) method: String,
    pub(crate) url: LiquidTemplate,
    pub(crate) headers: Vec<(String, LiquidTemplate)>,
    pub(crate) body: Option<JsonTemplate>,
    pub(crate) strict: bool,
}

/// A JSON body whose strings are Liquid.
#[derive(Debug)]
pub(crate) enum JsonTemplate {
    /// A value without Liquid, copied as is.
    Literal(Value),
    /// A string rendered to a string.
    Text(LiquidTemplate),
    /// A string that is exactly one output ending in `| json`: its result is inserted as JSON (a number,
    /// an object…), not as a string.
    Json(LiquidTemplate),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl TemplateDefinition {
    /// Compiles the definition, reporting every Liquid and MJML problem with its field, line and column.
    pub fn compile(&self) -> Result<CompiledTemplate, Vec<TemplateError>> {
        match self {
            TemplateDefinition::Email(email) => email
                .compile()
                .map(|c| CompiledTemplate::Email(Arc::new(c))),
            TemplateDefinition::Webhook(webhook) => webhook
                .compile()
                .map(|c| CompiledTemplate::Webhook(Arc::new(c))),
        }
    }
}

/// The hidden block at the top of the HTML that inbox previews show.
fn preheader_block(preheader: &str) -> String {
    format!(
        "<div style=\"display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;max-width:0px;\
         opacity:0;overflow:hidden;mso-hide:all;\">{preheader}</div>"
    )
}

/// Parses `source` as the Liquid of `field`.
fn liquid(field: &str, source: &str, errors: &mut Vec<TemplateError>) -> Option<LiquidTemplate> {
    LiquidTemplate::parse(source)
        .map_err(|error| errors.push(TemplateError::new(field, error.message).at(error.position)))
        .ok()
}

impl EmailTemplate {
    /// Compiles the email: MJML to HTML, the text part from the HTML when none is given, outputs in HTML
    /// escaped unless marked `| raw`.
    pub fn compile(&self) -> Result<CompiledEmail, Vec<TemplateError>> {
        let mut errors = Vec::new();
        let from = Mailbox::parse(&self.from)
            .map_err(|reason| errors.push(TemplateError::new("from", reason)));
        let reply_to = self
            .reply_to
            .as_deref()
            .map(|reply_to| {
                Mailbox::parse(reply_to)
                    .map_err(|reason| errors.push(TemplateError::new("replyTo", reason)))
            })
            .transpose();
        let subject = liquid("subject", &self.subject, &mut errors);
        let preheader_ok = self
            .preheader
            .as_deref()
            .is_none_or(|preheader| liquid("preheader", preheader, &mut errors).is_some());
        let body_html = self.body_html(&mut errors);
        let text_source = match (&self.text, &body_html) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(html)) => Some(html_to_text(html)),
            (None, None) => None,
        };
        let text = text_source.as_deref().and_then(|source| {
            let field = if self.text.is_some() {
                "text"
            } else {
                "text (generated from the HTML)"
            };
            liquid(field, source, &mut errors)
        });
        let html = body_html.filter(|_| preheader_ok).and_then(|html| {
            let with_preheader = match &self.preheader {
                Some(preheader) => insert_after_body_open(&html, &preheader_block(preheader)),
                None => html,
            };
            liquid(
                self.body_field(),
                &escape_outputs(&with_preheader),
                &mut errors,
            )
        });
        match (from, reply_to, subject, html, text) {
            (Ok(from), Ok(reply_to), Some(subject), Some(html), Some(text))
                if errors.is_empty() =>
            {
                Ok(CompiledEmail {
                    from,
                    reply_to,
                    subject,
                    html,
                    text,
                    strict: self.strict,
                })
            }
            _ => Err(errors),
        }
    }

    fn body_field(&self) -> &'static str {
        match self.body {
            EmailBody::Mjml { .. } => "body.mjml",
            EmailBody::Html { .. } => "body.html",
        }
    }

    /// The body as HTML with its Liquid untouched, once the Liquid of the source parses.
    fn body_html(&self, errors: &mut Vec<TemplateError>) -> Option<String> {
        let field = self.body_field();
        match &self.body {
            EmailBody::Html { html } => liquid(field, html, errors).map(|_| html.clone()),
            EmailBody::Mjml { mjml } => {
                liquid(field, mjml, errors)?;
                mjml_to_html(mjml).map_err(|error| errors.push(error)).ok()
            }
        }
    }
}

impl WebhookTemplate {
    /// Compiles the webhook's URL, headers and body.
    pub fn compile(&self) -> Result<CompiledWebhook, Vec<TemplateError>> {
        let mut errors = Vec::new();
        let url = liquid("url", &self.url, &mut errors);
        let headers: Vec<_> = self
            .headers
            .iter()
            .filter_map(|(name, value)| {
                liquid(&format!("headers.{name}"), value, &mut errors)
                    .map(|template| (name.clone(), template))
            })
            .collect();
        let body = self
            .body
            .as_ref()
            .map(|body| json_template("body", body, &mut errors));
        match url {
            Some(url) if errors.is_empty() => Ok(CompiledWebhook {
                method: self.method.clone(),
                url,
                headers,
                body,
                strict: self.strict,
            }),
            _ => Err(errors),
        }
    }
}

fn json_template(path: &str, value: &Value, errors: &mut Vec<TemplateError>) -> JsonTemplate {
    match value {
        Value::String(source) if source.contains("{{") || source.contains("{%") => {
            let Some(template) = liquid(path, source, errors) else {
                return JsonTemplate::Literal(Value::Null);
            };
            if is_single_json_output(source) {
                JsonTemplate::Json(template)
            } else {
                JsonTemplate::Text(template)
            }
        }
        Value::Array(items) => JsonTemplate::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| json_template(&format!("{path}[{index}]"), item, errors))
                .collect(),
        ),
        Value::Object(fields) => JsonTemplate::Object(
            fields
                .iter()
                .map(|(key, item)| {
                    (
                        key.clone(),
                        json_template(&format!("{path}.{key}"), item, errors),
                    )
                })
                .collect(),
        ),
        literal => JsonTemplate::Literal(literal.clone()),
    }
}

/// Whether a JSON string is exactly one output tag whose last filter is `json`.
fn is_single_json_output(source: &str) -> bool {
    let trimmed = source.trim();
    trimmed.starts_with("{{")
        && trimmed.ends_with("}}")
        && super::html::liquid_tags(trimmed).len() == 1
        && super::html::liquid_tag_end(trimmed, 0) == Some(trimmed.len())
        && last_output_filter(trimmed) == Some("json")
}
