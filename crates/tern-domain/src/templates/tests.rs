//! End-to-end behaviour of templates: compile, render, MIME.

use std::sync::Arc;

use mail_parser::MessageParser;
use serde_json::{Value, json};

use super::*;

fn context(traits: Value) -> RenderContext {
    RenderContext {
        user_id: "u-1".into(),
        email: "ada@example.test".into(),
        traits: traits.as_object().cloned().unwrap_or_default(),
        time_zone: jiff::tz::TimeZone::get("Europe/London").unwrap(),
        now: "2026-06-01T12:00:00Z".parse().unwrap(),
        variables: json!({"broadcast": {"name": "June news"}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        unsubscribe_url: "https://t.example.test/u/abc?s=1&k=2".into(),
        preferences_url: "https://t.example.test/p/abc".into(),
    }
}

fn compile_email(json: Value) -> Arc<CompiledEmail> {
    match TemplateDefinition::from_json(&json)
        .unwrap()
        .compile()
        .unwrap()
    {
        CompiledTemplate::Email(email) => email,
        CompiledTemplate::Webhook(_) => panic!("not an email"),
    }
}

fn compile_errors(json: Value) -> Vec<TemplateError> {
    TemplateDefinition::from_json(&json)
        .unwrap()
        .compile()
        .unwrap_err()
}

const NEWSLETTER: &str = r##"<mjml><mj-body>
<mj-section><mj-column>
<mj-text>Hello {{ user.first_name | default: "there" }}, here is {{ broadcast.name }}.</mj-text>
<mj-button href="https://example.test/offer?u={{ user.id }}">See the offer</mj-button>
<mj-text><a href="mailto:help@example.test">Write to us</a> <a href="#top">Top</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a> <a href="{{ preferences_url }}">Preferences</a></mj-text>
</mj-column></mj-section>
</mj-body></mjml>"##;

fn newsletter() -> Value {
    json!({"channel": "email", "from": "Example <news@example.test>", "replyTo": "help@example.test",
           "subject": "{{ user.first_name | default: 'Hi' }}, {{ broadcast.name }} 🎉", "preheader": "For {{ user.first_name }}",
           "body": {"mjml": NEWSLETTER}})
}

struct Tracker;

impl LinkTracker for Tracker {
    fn click_url(&self, index: usize, original: &str) -> Option<String> {
        Some(format!(
            "https://t.example.test/c/{index}?to={}",
            original.len()
        ))
    }

    fn open_pixel_url(&self) -> Option<String> {
        Some("https://t.example.test/o/abc.gif".into())
    }
}

#[test]
fn liquid_errors_name_field_line_and_column() {
    let mut template = newsletter();
    template["subject"] = json!("Hi {{ user.first_name | }}");
    template["body"] =
        json!({"mjml": "<mjml><mj-body>\n<mj-text>{% if x %}</mj-text>\n</mj-body></mjml>"});
    template["text"] = json!("ok\n {{ user | shout }}");
    let errors = compile_errors(template);
    let summary: Vec<_> = errors
        .iter()
        .map(|e| (e.path.as_str(), e.position.map(|p| (p.line, p.column))))
        .collect();
    assert_eq!(
        summary,
        [
            ("subject", Some((1, 25))),
            ("body.mjml", Some((3, 18))),
            ("text", Some((2, 12)))
        ],
        "{errors:?}"
    );
    assert!(errors[2].message.contains("shout"), "{errors:?}");
}

#[test]
fn html_outputs_are_escaped_and_text_is_verbatim() {
    let email = compile_email(
        json!({"channel": "email", "from": "news@example.test", "subject": "{{ user.first_name }}",
        "body": {"html": "<p>{{ user.first_name }}</p><div>{{ user.bio | raw }}</div>"}}),
    );
    let rendered = render_email(
        &email,
        &context(json!({"first_name": "<script>x</script>", "bio": "<b>bold</b>"})),
        &NoTracking,
    )
    .unwrap();
    assert!(
        rendered
            .html
            .contains("<p>&lt;script&gt;x&lt;/script&gt;</p>"),
        "{}",
        rendered.html
    );
    assert!(
        rendered.html.contains("<div><b>bold</b></div>"),
        "{}",
        rendered.html
    );
    assert!(
        rendered.text.contains("<script>x</script>"),
        "{}",
        rendered.text
    );
    assert_eq!(rendered.subject, "<script>x</script>");
}

#[test]
fn missing_variables_render_empty_unless_strict() {
    let mut template = json!({"channel": "email", "from": "news@example.test", "subject": "Hi {{ user.nickname }}!",
        "body": {"html": "<p>{{ user.nickname | default: 'friend' }}</p>"}});
    let rendered = render_email(
        &compile_email(template.clone()),
        &context(json!({})),
        &NoTracking,
    )
    .unwrap();
    assert_eq!(rendered.subject, "Hi !");
    assert!(rendered.html.contains("<p>friend</p>"));
    template["strict"] = json!(true);
    let error =
        render_email(&compile_email(template), &context(json!({})), &NoTracking).unwrap_err();
    assert_eq!(
        error,
        RenderError::MissingVariable {
            field: "subject".into(),
            name: "user.nickname".into()
        }
    );
}

#[test]
fn newsletter_renders_with_tracking_preheader_and_generated_text() {
    let email = compile_email(newsletter());
    let rendered = render_email(&email, &context(json!({"first_name": "Ada"})), &Tracker).unwrap();
    assert_eq!(rendered.subject, "Ada, June news 🎉");
    let originals: Vec<_> = rendered
        .links
        .iter()
        .map(|link| link.original.as_str())
        .collect();
    assert_eq!(originals, ["https://example.test/offer?u=u-1"]);
    let html = &rendered.html;
    assert!(
        html.contains("href=\"https://t.example.test/c/0?to=32\""),
        "{html}"
    );
    assert!(
        html.contains("href=\"mailto:help@example.test\"") && html.contains("href=\"#top\""),
        "{html}"
    );
    assert!(
        html.contains("href=\"https://t.example.test/u/abc?s=1&amp;k=2\""),
        "{html}"
    );
    assert!(
        html.contains("href=\"https://t.example.test/p/abc\""),
        "{html}"
    );
    assert!(
        html.contains("<img src=\"https://t.example.test/o/abc.gif\" width=\"1\""),
        "{html}"
    );
    assert!(
        html.find("For Ada").unwrap() < html.find("Hello Ada").unwrap(),
        "{html}"
    );
    assert!(
        !rendered.text.contains("For Ada"),
        "the preheader is hidden: {}",
        rendered.text
    );
    insta::assert_snapshot!(rendered.text, @r"
    Hello Ada, here is June news.

    See the offer (https://t.example.test/c/0?to=32)

    Write to us (mailto:help@example.test) Top Unsubscribe (https://t.example.test/u/abc?s=1&k=2) Preferences (https://t.example.test/p/abc)
    ");
}

#[test]
fn mime_parses_with_both_parts_and_unsubscribe_headers() {
    let email = compile_email(newsletter());
    let rendered = render_email(&email, &context(json!({"first_name": "Zoë"})), &Tracker).unwrap();
    let envelope = Envelope {
        to: "ada@example.test".into(),
        message_id: "<m-1@mail.example.test>".into(),
        date: "2026-06-01T12:00:00Z".parse().unwrap(),
        list_unsubscribe_https: "https://t.example.test/u/abc".into(),
        list_unsubscribe_mailto: Some("mailto:unsubscribe+abc@example.test".into()),
        headers: vec![("X-Tern-Message".into(), "m-1".into())],
    };
    let raw = build_mime(&rendered, &envelope).unwrap();
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.subject(), Some("Zoë, June news 🎉"));
    assert_eq!(message.message_id(), Some("m-1@mail.example.test"));
    assert_eq!(
        message.date().map(|date| date.to_timestamp()),
        Some(1_780_315_200)
    );
    let from = message.from().and_then(|from| from.first()).unwrap();
    assert_eq!(
        (from.name(), from.address()),
        (Some("Example"), Some("news@example.test"))
    );
    assert_eq!(
        message
            .to()
            .and_then(|to| to.first())
            .and_then(|to| to.address()),
        Some("ada@example.test")
    );
    assert_eq!(
        message
            .reply_to()
            .and_then(|r| r.first())
            .and_then(|r| r.address()),
        Some("help@example.test")
    );
    // Unfolded, as RFC 5322 reads long headers.
    let text = String::from_utf8_lossy(&raw).replace("\r\n ", " ");
    assert!(
        text.contains("List-Unsubscribe: <https://t.example.test/u/abc>, <mailto:unsubscribe+abc@example.test>\r\n"),
        "{text}"
    );
    assert!(
        text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
        "{text}"
    );
    assert!(text.contains("X-Tern-Message: m-1\r\n"), "{text}");
    assert!(text.contains("multipart/alternative"), "{text}");
    assert_eq!(message.text_body_count(), 1);
    assert_eq!(message.html_body_count(), 1);
    // MIME text travels with CRLF line ends.
    assert_eq!(
        message
            .body_text(0)
            .map(|text| text.replace("\r\n", "\n"))
            .as_deref(),
        Some(rendered.text.as_str())
    );
    assert_eq!(
        message
            .body_html(0)
            .map(|html| html.replace("\r\n", "\n"))
            .as_deref(),
        Some(rendered.html.as_str())
    );
}

#[test]
fn mime_refuses_header_injection() {
    let rendered = render_email(
        &compile_email(newsletter()),
        &context(json!({})),
        &NoTracking,
    )
    .unwrap();
    let mut envelope = Envelope {
        to: "ada@example.test".into(),
        message_id: "m-1@mail.example.test".into(),
        date: jiff::Timestamp::UNIX_EPOCH,
        list_unsubscribe_https: "https://t.example.test/u/abc".into(),
        list_unsubscribe_mailto: None,
        headers: vec![("X-Bad".into(), "a\r\nBcc: eve@example.test".into())],
    };
    assert!(
        matches!(build_mime(&rendered, &envelope), Err(MimeError::Invalid { field, .. }) if field == "headers.X-Bad")
    );
    envelope.headers.clear();
    envelope.to = "not an address".into();
    assert!(build_mime(&rendered, &envelope).is_err());
}

fn compile_webhook(json: Value) -> Arc<CompiledWebhook> {
    match TemplateDefinition::from_json(&json)
        .unwrap()
        .compile()
        .unwrap()
    {
        CompiledTemplate::Webhook(webhook) => webhook,
        CompiledTemplate::Email(_) => panic!("not a webhook"),
    }
}

#[test]
fn webhook_body_stays_valid_json() {
    let webhook = compile_webhook(
        json!({"channel": "webhook", "url": "https://hooks.example.test/u/{{ user.id | url_encode }}",
        "headers": {"X-Token": "t-{{ user.plan }}"},
        "body": {"text": "He said \"{{ user.quote }}\"", "n": 3, "tags": ["{{ user.plan | upcase }}"], "traits": "{{ user | json }}"}}),
    );
    let rendered = render_webhook(
        &webhook,
        &context(json!({"plan": "pro", "quote": "a \"b\" \\ c\n"})),
    )
    .unwrap();
    assert_eq!(rendered.method, "POST");
    assert_eq!(rendered.url, "https://hooks.example.test/u/u-1");
    assert_eq!(
        rendered.headers,
        [
            ("X-Token".to_owned(), "t-pro".to_owned()),
            ("Content-Type".to_owned(), "application/json".to_owned())
        ]
    );
    let body: Value = serde_json::from_slice(&rendered.body).unwrap();
    assert_eq!(body["text"], "He said \"a \"b\" \\ c\n\"");
    assert_eq!(body["n"], 3);
    assert_eq!(body["tags"], json!(["PRO"]));
    assert_eq!(
        body["traits"],
        json!({"plan": "pro", "quote": "a \"b\" \\ c\n", "id": "u-1", "email": "ada@example.test"})
    );
}

#[test]
fn webhook_urls_must_render_to_http() {
    let webhook = compile_webhook(json!({"channel": "webhook", "url": "{{ user.endpoint }}"}));
    let error = render_webhook(
        &webhook,
        &context(json!({"endpoint": "file:///etc/passwd"})),
    )
    .unwrap_err();
    assert!(matches!(error, RenderError::InvalidUrl { .. }), "{error}");
    let rendered = render_webhook(
        &webhook,
        &context(json!({"endpoint": "http://h.example.test/x"})),
    )
    .unwrap();
    assert!(rendered.body.is_empty());
    let errors = compile_errors(
        json!({"channel": "webhook", "url": "https://x.test", "headers": {"X-Token": "{{ a | }}"},
        "body": {"items": [1, "{% if %}"]}}),
    );
    let paths: Vec<_> = errors.iter().map(|error| error.path.as_str()).collect();
    assert_eq!(paths, ["headers.X-Token", "body.items[1]"]);
}

#[test]
fn strict_mode_accepts_present_but_empty_values() {
    let template = json!({"channel": "email", "from": "news@example.test", "strict": true,
        "subject": "Hi {{ user.nickname | default: 'friend' }}", "body": {"html": "<p>{{ user.nickname }}</p>"}});
    let rendered = render_email(
        &compile_email(template),
        &context(json!({"nickname": null})),
        &NoTracking,
    )
    .unwrap();
    assert_eq!(rendered.subject, "Hi friend");
    assert!(rendered.html.contains("<p></p>"));
}

#[test]
fn compiled_templates_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<CompiledEmail>();
    shareable::<CompiledWebhook>();
    let email = compile_email(newsletter());
    let rendered = std::thread::spawn(move || {
        render_email(&email, &context(json!({})), &NoTracking).map(|r| r.subject)
    })
    .join()
    .unwrap();
    assert_eq!(rendered.unwrap(), "Hi, June news 🎉");
}
