//! Template definitions as the API receives and stores them, and their structural validation.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::position::Position;

/// One template, either channel, as JSON tagged by `channel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "camelCase")]
pub enum TemplateDefinition {
    Email(EmailTemplate),
    Webhook(WebhookTemplate),
}

/// An email template. Every field but `from`/`replyTo` is Liquid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailTemplate {
    /// `news@example.com` or `Example News <news@example.com>`.
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    pub subject: String,
    /// The inbox preview line, added as hidden text at the top of the HTML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preheader: Option<String>,
    pub body: EmailBody,
    /// The plain-text part; generated from the HTML when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A missing variable fails the message instead of rendering empty.
    #[serde(default)]
    pub strict: bool,
}

/// The HTML of an email: MJML compiled by Tern, or HTML as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmailBody {
    Mjml { mjml: String },
    Html { html: String },
}

/// A webhook template: method, URL, headers, and a JSON body whose strings are Liquid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTemplate {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default)]
    pub strict: bool,
}

/// One problem with a template: the field it is in (`subject`, `body.mjml`, `headers.X-Token`,
/// `body.items[2].name`), why, and for Liquid and MJML where within that field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct TemplateError {
    pub path: String,
    pub message: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

impl TemplateError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            position: None,
        }
    }

    pub(crate) fn at(mut self, position: Option<Position>) -> Self {
        self.position = position;
        self
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(Position { line, column }) = self.position {
            write!(f, " (line {line}, column {column})")?;
        }
        Ok(())
    }
}

/// The HTTP methods a webhook may use.
pub const WEBHOOK_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

impl TemplateDefinition {
    /// Reads a definition from the API's JSON, reporting every structural problem at once (Liquid and MJML
    /// are checked when the definition is compiled).
    pub fn from_json(json: &Value) -> Result<Self, Vec<TemplateError>> {
        let Some(object) = json.as_object() else {
            return Err(vec![TemplateError::new(
                "",
                "a template must be a JSON object",
            )]);
        };
        let mut fields = Fields::new(object);
        let definition = match fields.required_str("channel").as_deref() {
            Some("email") => email_from(&mut fields).map(TemplateDefinition::Email),
            Some("webhook") => webhook_from(&mut fields).map(TemplateDefinition::Webhook),
            Some(other) => {
                fields.error(
                    "channel",
                    format!("must be \"email\" or \"webhook\", not {other:?}"),
                );
                None
            }
            None => None,
        };
        fields.finish()?;
        definition.ok_or_else(|| vec![TemplateError::new("", "invalid template")])
    }
}

fn email_from(fields: &mut Fields<'_>) -> Option<EmailTemplate> {
    let from = fields.required_str("from");
    if let Some(from) = &from
        && let Err(reason) = Mailbox::parse(from)
    {
        fields.error("from", reason);
    }
    let reply_to = fields.optional_str("replyTo");
    if let Some(reply_to) = &reply_to
        && let Err(reason) = Mailbox::parse(reply_to)
    {
        fields.error("replyTo", reason);
    }
    let subject = fields.required_str("subject");
    if subject
        .as_deref()
        .is_some_and(|subject| subject.trim().is_empty())
    {
        fields.error("subject", "must not be empty");
    }
    let preheader = fields.optional_str("preheader");
    let body = email_body(fields);
    let text = fields.optional_str("text");
    let strict = fields.optional_bool("strict");
    Some(EmailTemplate {
        from: from?,
        reply_to,
        subject: subject?,
        preheader,
        body: body?,
        text,
        strict,
    })
}

fn email_body(fields: &mut Fields<'_>) -> Option<EmailBody> {
    let body = fields.take("body");
    let Some(body) = body else {
        fields.error(
            "body",
            "is required: {\"mjml\": \"…\"} or {\"html\": \"…\"}",
        );
        return None;
    };
    let Some(body) = body.as_object() else {
        fields.error(
            "body",
            "must be an object: {\"mjml\": \"…\"} or {\"html\": \"…\"}",
        );
        return None;
    };
    let mut inner = Fields::new(body);
    let mjml = inner.optional_str("mjml");
    let html = inner.optional_str("html");
    let chosen = match (mjml, html) {
        (Some(mjml), None) => Some(EmailBody::Mjml { mjml }),
        (None, Some(html)) => Some(EmailBody::Html { html }),
        (Some(_), Some(_)) => {
            inner.error("", "must have either \"mjml\" or \"html\", not both");
            None
        }
        (None, None) => {
            inner.error("", "must have \"mjml\" or \"html\"");
            None
        }
    };
    fields.absorb("body", inner);
    chosen
}

fn webhook_from(fields: &mut Fields<'_>) -> Option<WebhookTemplate> {
    let method = fields
        .optional_str("method")
        .unwrap_or_else(|| "POST".to_owned());
    if !WEBHOOK_METHODS.contains(&method.as_str()) {
        fields.error(
            "method",
            format!("must be one of {}", WEBHOOK_METHODS.join(", ")),
        );
    }
    let url = fields.required_str("url");
    let headers = webhook_headers(fields);
    let body = fields.take("body").cloned();
    let strict = fields.optional_bool("strict");
    Some(WebhookTemplate {
        method,
        url: url?,
        headers,
        body,
        strict,
    })
}

fn webhook_headers(fields: &mut Fields<'_>) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    let Some(value) = fields.take("headers") else {
        return headers;
    };
    let Some(object) = value.as_object() else {
        fields.error("headers", "must be an object of header names to values");
        return headers;
    };
    for (name, value) in object {
        let path = format!("headers.{name}");
        if !is_header_name(name) {
            fields.error(&path, "is not a valid header name");
        }
        match value.as_str() {
            Some(value) => {
                headers.insert(name.clone(), value.to_owned());
            }
            None => fields.error(&path, "must be a string"),
        }
    }
    headers
}

/// RFC 9110's token: the characters a header name may have.
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A mailbox: an address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

impl Mailbox {
    /// Reads `address` or `Display Name <address>` (the name may be quoted).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (name, address) = match text
            .strip_suffix('>')
            .and_then(|rest| rest.rsplit_once('<'))
        {
            Some((name, address)) => {
                let name = name.trim().trim_matches('"').trim();
                ((!name.is_empty()).then(|| name.to_owned()), address.trim())
            }
            None => (None, text),
        };
        if name
            .as_deref()
            .is_some_and(|name| name.contains(['\r', '\n']))
        {
            return Err("the display name must be on one line".into());
        }
        if !email_address::EmailAddress::is_valid(address) {
            return Err(format!("{address:?} is not an email address"));
        }
        Ok(Self {
            name,
            address: address.to_owned(),
        })
    }
}

/// Reads the fields of one JSON object, collecting errors and noticing fields nobody asked for.
struct Fields<'j> {
    object: &'j Map<String, Value>,
    seen: Vec<&'static str>,
    errors: Vec<TemplateError>,
}

impl<'j> Fields<'j> {
    fn new(object: &'j Map<String, Value>) -> Self {
        Self {
            object,
            seen: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(TemplateError::new(path, message));
    }

    fn take(&mut self, name: &'static str) -> Option<&'j Value> {
        self.seen.push(name);
        self.object.get(name).filter(|value| !value.is_null())
    }

    fn required_str(&mut self, name: &'static str) -> Option<String> {
        let value = self.optional_str(name);
        if value.is_none() && !self.errors.iter().any(|error| error.path == name) {
            self.error(name, "is required");
        }
        value
    }

    fn optional_str(&mut self, name: &'static str) -> Option<String> {
        let value = self.take(name)?;
        match value.as_str() {
            Some(text) => Some(text.to_owned()),
            None => {
                self.error(name, "must be a string");
                None
            }
        }
    }

    fn optional_bool(&mut self, name: &'static str) -> bool {
        match self.take(name) {
            None => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => {
                self.error(name, "must be true or false");
                false
            }
        }
    }

    /// Takes the errors of a nested object's reader, prefixing their paths with `prefix`.
    fn absorb(&mut self, prefix: &str, inner: Fields<'_>) {
        for mut error in inner.finish().err().unwrap_or_default() {
            error.path = if error.path.is_empty() {
                prefix.to_owned()
            } else {
                format!("{prefix}.{}", error.path)
            };
            self.errors.push(error);
        }
    }

    fn finish(mut self) -> Result<(), Vec<TemplateError>> {
        let unknown: Vec<String> = self
            .object
            .keys()
            .filter(|key| !self.seen.contains(&key.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            self.error(&key, "is not a template field");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(result: Result<TemplateDefinition, Vec<TemplateError>>) -> Vec<String> {
        result
            .unwrap_err()
            .into_iter()
            .map(|error| error.to_string())
            .collect()
    }

    #[test]
    fn a_complete_email_round_trips() {
        let json = json!({
            "channel": "email", "from": "Acme <news@acme.test>", "replyTo": "help@acme.test",
            "subject": "Hi {{ user.first_name }}", "preheader": "Our news", "body": {"mjml": "<mjml></mjml>"},
            "strict": true
        });
        let definition = TemplateDefinition::from_json(&json).unwrap();
        let TemplateDefinition::Email(email) = &definition else {
            panic!("not an email")
        };
        assert!(email.strict);
        assert_eq!(
            email.body,
            EmailBody::Mjml {
                mjml: "<mjml></mjml>".into()
            }
        );
        assert_eq!(serde_json::to_value(&definition).unwrap(), json);
        let reread: TemplateDefinition = serde_json::from_value(json).unwrap();
        assert_eq!(reread, definition);
    }

    #[test]
    fn email_errors_name_each_field() {
        let json = json!({
            "channel": "email", "from": "not an address", "subject": 3,
            "body": {"mjml": "<mjml/>", "html": "<p/>"}, "strict": "yes", "colour": "red"
        });
        assert_eq!(
            paths(TemplateDefinition::from_json(&json)),
            [
                "from: \"not an address\" is not an email address",
                "subject: must be a string",
                "body: must have either \"mjml\" or \"html\", not both",
                "strict: must be true or false",
                "colour: is not a template field",
            ]
        );
        assert_eq!(
            paths(TemplateDefinition::from_json(&json!({"channel": "sms"}))),
            ["channel: must be \"email\" or \"webhook\", not \"sms\""]
        );
        assert_eq!(
            paths(TemplateDefinition::from_json(&json!({"channel": "email"}))),
            [
                "from: is required",
                "subject: is required",
                "body: is required: {\"mjml\": \"…\"} or {\"html\": \"…\"}"
            ]
        );
    }

    #[test]
    fn webhook_errors_name_each_field() {
        let json = json!({
            "channel": "webhook", "method": "FETCH", "url": "https://x.test/{{ user.id }}",
            "headers": {"X-Token": 5, "Bad Header": "v"}
        });
        assert_eq!(
            paths(TemplateDefinition::from_json(&json)),
            [
                "method: must be one of GET, POST, PUT, PATCH, DELETE",
                "headers.Bad Header: is not a valid header name",
                "headers.X-Token: must be a string",
            ]
        );
    }

    #[test]
    fn mailboxes() {
        assert_eq!(
            Mailbox::parse("\"Acme News\" <news@acme.test>"),
            Ok(Mailbox {
                name: Some("Acme News".into()),
                address: "news@acme.test".into()
            })
        );
        assert_eq!(Mailbox::parse("a@b.test").map(|m| m.name), Ok(None));
        assert!(Mailbox::parse("Acme <nope>").is_err());
    }
}
