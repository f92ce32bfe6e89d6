//! CPU time per message of render + MIME build for a realistic MJML newsletter (10 personalized fields,
//! 20 links), compiled once. Run with `cargo bench -p tern-domain --bench render`.

use std::hint::black_box;
use std::time::Instant;

use serde_json::json;
use tern_domain::templates::{
    CompiledTemplate, Envelope, LinkTracker, RenderContext, TemplateDefinition, build_mime,
    render_email,
};

/// How many messages to time; `TERN_BENCH_MESSAGES` overrides it (e.g. for a run under valgrind).
fn messages() -> usize {
    std::env::var("TERN_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}
const WARM_UP: usize = 500;

fn article(number: usize) -> String {
    format!(
        r#"<mj-section padding="10px 0"><mj-column>
  <mj-image src="https://cdn.example.test/articles/{number}.jpg" alt="Article {number}" href="https://example.test/articles/{number}?ref=img" />
  <mj-text font-size="20px" font-weight="bold">Story {number}: what's new for {{{{ user.company | default: "your team" }}}}</mj-text>
  <mj-text>Lorem ipsum dolor sit amet, consectetur adipiscing elit. Integer nec odio. Praesent libero. Sed cursus
    ante dapibus diam. Sed nisi. Nulla quis sem at nibh elementum imperdiet. Duis sagittis ipsum. Praesent mauris.
    Read <a href="https://example.test/articles/{number}/part-1">part one</a>,
    <a href="https://example.test/articles/{number}/part-2">part two</a> and
    <a href="https://example.test/articles/{number}/comments">the comments</a>.</mj-text>
  <mj-button href="https://example.test/articles/{number}?utm_source=newsletter&amp;uid={{{{ user.id }}}}">Read story {number}</mj-button>
</mj-column></mj-section>"#
    )
}

fn newsletter_mjml() -> String {
    let articles: String = (1..=3).map(article).collect();
    format!(
        r##"<mjml>
<mj-head><mj-title>The {{{{ broadcast.name }}}}</mj-title><mj-attributes><mj-all font-family="Helvetica, Arial, sans-serif" /></mj-attributes></mj-head>
<mj-body background-color="#f4f4f4">
<mj-section background-color="#ffffff"><mj-column>
  <mj-image width="120px" src="https://cdn.example.test/logo.png" alt="Example" href="https://example.test/" />
  <mj-navbar><mj-navbar-link href="https://example.test/blog">Blog</mj-navbar-link><mj-navbar-link href="https://example.test/pricing">Pricing</mj-navbar-link><mj-navbar-link href="https://example.test/help">Help</mj-navbar-link></mj-navbar>
</mj-column></mj-section>
<mj-hero mode="fixed-height" height="300px" background-url="https://cdn.example.test/hero.jpg" background-width="600px" background-height="300px">
  <mj-text font-size="28px" color="#ffffff">Hi {{{{ user.first_name | capitalize | default: "there" }}}}!</mj-text>
  <mj-text color="#ffffff">Your {{{{ user.plan | upcase }}}} plan renews on {{{{ user.renews_at | date: "%B %-d, %Y" }}}}. You have {{{{ user.credits }}}} credits left in {{{{ user.city }}}}.</mj-text>
  <mj-button href="https://example.test/account?uid={{{{ user.id }}}}">Your account</mj-button>
</mj-hero>
{articles}
<mj-section background-color="#ffffff"><mj-column>
  <mj-text>Sent to {{{{ user.email }}}} because you joined on {{{{ user.created_at | date: "%Y-%m-%d" }}}}. Last seen {{{{ user.last_seen | truncate: 20 }}}}.</mj-text>
  <mj-social><mj-social-element name="twitter" href="https://twitter.example.test/example">Twitter</mj-social-element><mj-social-element name="linkedin" href="https://linkedin.example.test/example">LinkedIn</mj-social-element></mj-social>
  <mj-text font-size="11px"><a href="{{{{ preferences_url }}}}">Preferences</a> · <a href="{{{{ unsubscribe_url }}}}">Unsubscribe</a> · <a href="mailto:help@example.test">Contact</a></mj-text>
</mj-column></mj-section>
</mj-body></mjml>"##
    )
}

struct Tracker {
    message: usize,
}

impl LinkTracker for Tracker {
    fn click_url(&self, index: usize, _original: &str) -> Option<String> {
        Some(format!(
            "https://t.example.test/c/{}/{index}?s=8f3a2b1c9d",
            self.message
        ))
    }

    fn open_pixel_url(&self) -> Option<String> {
        Some(format!(
            "https://t.example.test/o/{}.gif?s=8f3a2b1c9d",
            self.message
        ))
    }
}

fn context(message: usize) -> RenderContext {
    let traits = json!({
        "first_name": format!("user{message}"), "company": format!("Company {}", message % 97),
        "plan": if message.is_multiple_of(2) { "pro" } else { "team" }, "renews_at": "2026-12-01T09:00:00Z",
        "credits": message % 1000, "city": "Lyon", "created_at": 1_700_000_000 + message as i64,
        "last_seen": "a long while ago, maybe yesterday"
    });
    RenderContext {
        user_id: format!("u-{message}"),
        email: format!("user{message}@example.test"),
        traits: traits.as_object().cloned().unwrap_or_default(),
        time_zone: jiff::tz::TimeZone::get("Europe/Paris").expect("bundled zone"),
        now: jiff::Timestamp::now(),
        variables: json!({"broadcast": {"name": "June newsletter"}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        unsubscribe_url: format!("https://t.example.test/u/{message}?s=1"),
        preferences_url: format!("https://t.example.test/p/{message}?s=1"),
    }
}

fn main() {
    let definition = TemplateDefinition::from_json(&json!({
        "channel": "email", "from": "Example <news@example.test>", "subject": "{{ user.first_name }}, the {{ broadcast.name }}",
        "preheader": "Three stories for {{ user.company }}", "body": {"mjml": newsletter_mjml()}
    }))
    .expect("valid definition");
    let compile_started = Instant::now();
    let Ok(CompiledTemplate::Email(email)) = definition.compile() else {
        panic!(
            "the newsletter must compile: {:?}",
            definition.compile().err()
        );
    };
    let compile_time = compile_started.elapsed();
    let contexts: Vec<RenderContext> = (0..256).map(context).collect();

    let mut bytes = 0;
    let mut links = 0;
    let rendering = std::cell::Cell::new(std::time::Duration::ZERO);
    let mut send = |message: usize| {
        let context = &contexts[message % contexts.len()];
        let render_started = Instant::now();
        let rendered = render_email(&email, context, &Tracker { message }).expect("renders");
        rendering.set(rendering.get() + render_started.elapsed());
        let envelope = Envelope {
            to: context.email.clone(),
            message_id: format!("{message}@mail.example.test"),
            date: context.now,
            list_unsubscribe_https: context.unsubscribe_url.clone(),
            list_unsubscribe_mailto: Some(format!("mailto:unsubscribe+{message}@example.test")),
            headers: Vec::new(),
        };
        let mime = build_mime(&rendered, &envelope).expect("builds");
        bytes = mime.len();
        links = rendered.links.len();
        black_box(mime);
    };
    for message in 0..WARM_UP {
        send(message);
    }
    rendering.set(std::time::Duration::ZERO);
    let started = Instant::now();
    let messages = messages();
    for message in 0..messages {
        send(message);
    }
    let elapsed = started.elapsed();
    let render_share = rendering.get().as_secs_f64() * 1e6 / messages as f64;
    let per_message = elapsed.as_secs_f64() * 1e6 / messages as f64;
    println!("compile once: {:.1} ms", compile_time.as_secs_f64() * 1e3);
    println!(
        "render + MIME: {per_message:.1} µs/message over {messages} messages ({links} tracked links, {bytes} bytes of MIME)"
    );
    println!(
        "  of which render (Liquid, links, pixel): {render_share:.1} µs, MIME build: {:.1} µs",
        per_message - render_share
    );
}
