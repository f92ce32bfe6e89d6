//! The template routes on both engines: saving (compile errors named by field, line and column), versions,
//! previews, and test sends through the mail port (the outbox on the embedded engine, SES on moto).

use http::StatusCode;
use serde_json::{Value, json};
use tern_domain::ingest::{Event, accept};
use tern_tests::{EngineKind, TestEngine, admin_json, on_both_engines};

fn email_template(from: &str, subject: &str, html: &str) -> Value {
    json!({"channel": "email", "from": from, "subject": subject, "body": {"html": html}})
}

async fn a_broken_liquid_tag_is_refused_naming_its_field_line_and_column(engine: TestEngine) {
    let created = engine.workspace().await;
    let html = "<html><body>\n<p>Hi</p>\n  {% bogus user.plan %}<p>Pro</p>\n</body></html>";
    let response = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates",
        Some(json!({
            "id": "welcome",
            "name": "Welcome",
            "template": email_template("news@example.com", "Hi", html),
        })),
    )
    .await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{}",
        response.text()
    );
    let problem = response.json();
    assert_eq!(problem["code"], "invalid_template");
    assert_eq!(problem["field"], "template.body.html");
    let error = &problem["errors"][0];
    assert_eq!(error["field"], "template.body.html");
    assert_eq!(error["line"], 3, "{problem}");
    // The column of the unknown tag's name, after `{% `.
    assert_eq!(error["column"], 6, "{problem}");

    let response = admin_json(&engine, &created, "GET", "/v1/templates/welcome", None).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND, "nothing was stored");

    let response = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates",
        Some(json!({"id": "bad id!", "name": "x", "template": email_template("a@example.com", "s", "<p>x</p>")})),
    )
    .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["field"], "id");
}

async fn each_save_is_a_version_and_old_versions_stay_readable(engine: TestEngine) {
    let created = engine.workspace().await;
    let first = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates",
        Some(json!({"id": "welcome", "name": "Welcome", "template": email_template("news@example.com", "One", "<p>1</p>")})),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(first.json()["version"], 1);

    let again = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates",
        Some(json!({"id": "welcome", "name": "Welcome", "template": email_template("news@example.com", "One", "<p>1</p>")})),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let second = admin_json(
        &engine,
        &created,
        "PUT",
        "/v1/templates/welcome",
        Some(json!({"name": "Welcome v2", "template": email_template("news@example.com", "Two", "<p>2</p>")})),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(second.json()["version"], 2);

    let current = admin_json(&engine, &created, "GET", "/v1/templates/welcome", None).await;
    assert_eq!(current.json()["template"]["subject"], "Two");
    assert_eq!(current.json()["name"], "Welcome v2");
    let old = admin_json(
        &engine,
        &created,
        "GET",
        "/v1/templates/welcome/versions/1",
        None,
    )
    .await;
    assert_eq!(old.status, StatusCode::OK);
    assert_eq!(old.json()["template"]["subject"], "One");
    let missing = admin_json(
        &engine,
        &created,
        "GET",
        "/v1/templates/welcome/versions/3",
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad = admin_json(
        &engine,
        &created,
        "GET",
        "/v1/templates/welcome/versions/zero",
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["field"], "version");

    let listed = admin_json(&engine, &created, "GET", "/v1/templates", None).await;
    let templates = listed.json()["templates"].clone();
    assert_eq!(templates.as_array().map(Vec::len), Some(1), "{templates}");
    assert_eq!(templates[0]["id"], "welcome");
    assert_eq!(templates[0]["version"], 2);

    let deleted = admin_json(&engine, &created, "DELETE", "/v1/templates/welcome", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = admin_json(&engine, &created, "GET", "/v1/templates/welcome", None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let kept = admin_json(
        &engine,
        &created,
        "GET",
        "/v1/templates/welcome/versions/2",
        None,
    )
    .await;
    assert_eq!(kept.status, StatusCode::OK, "versions outlive a delete");
    let listed = admin_json(&engine, &created, "GET", "/v1/templates", None).await;
    assert_eq!(listed.json()["templates"], json!([]));
}

async fn a_preview_renders_with_escaped_traits_or_a_stored_profile(engine: TestEngine) {
    let created = engine.workspace().await;
    let saved = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates",
        Some(json!({
            "id": "hello",
            "name": "Hello",
            "template": email_template(
                "news@example.com",
                "Hello {{ user.first_name }}",
                "<html><body><p>Hi {{ user.first_name }}</p><a href=\"https://example.com/x\">x</a></body></html>"
            ),
        })),
    )
    .await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.text());

    let preview = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates/hello/preview",
        Some(json!({"traits": {"first_name": "<script>alert(1)</script>"}})),
    )
    .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text());
    let rendered = preview.json();
    let html = rendered["html"].as_str().expect("html");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(
        html.contains("href=\"https://example.com/x\""),
        "links stay untracked: {html}"
    );
    assert_eq!(rendered["subject"], "Hello <script>alert(1)</script>");
    assert!(rendered["text"].as_str().expect("text").contains("Hi"));

    let event: Event = serde_json::from_value(json!({
        "messageId": "i1", "type": "identify", "userId": "u1",
        "timestamp": "2026-03-01T09:00:00Z", "receivedAt": "2026-03-01T09:00:00Z",
        "traits": {"first_name": "Ada", "email": "ada@example.com"}
    }))
    .expect("an event");
    accept(engine.ports(), &created.workspace.id, vec![event])
        .await
        .expect("the identify is stored");
    let preview = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates/hello/preview",
        Some(json!({"userId": "u1"})),
    )
    .await;
    assert_eq!(preview.json()["subject"], "Hello Ada");

    let unknown = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates/hello/preview",
        Some(json!({"userId": "nobody"})),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let both = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates/hello/preview",
        Some(json!({"userId": "u1", "traits": {}})),
    )
    .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    assert_eq!(both.json()["field"], "traits");
}

async fn a_webhook_template_previews_and_a_strict_one_names_a_missing_variable(engine: TestEngine) {
    let created = engine.workspace().await;
    let saved = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates",
        Some(json!({
            "id": "hook",
            "name": "Hook",
            "template": {
                "channel": "webhook",
                "method": "POST",
                "url": "https://hooks.example.com/{{ user.id }}",
                "body": {"plan": "{{ user.plan }}"},
                "strict": true
            },
        })),
    )
    .await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.text());

    let preview = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates/hook/preview",
        Some(json!({"traits": {"plan": "pro"}})),
    )
    .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text());
    let rendered = preview.json();
    assert_eq!(rendered["channel"], "webhook");
    assert_eq!(rendered["method"], "POST");
    let body: Value =
        serde_json::from_str(rendered["body"].as_str().expect("a body")).expect("a JSON body");
    assert_eq!(body, json!({"plan": "pro"}));

    let missing = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates/hook/preview",
        Some(json!({"traits": {}})),
    )
    .await;
    assert_eq!(
        missing.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        missing.text()
    );
    assert!(
        missing.json()["field"]
            .as_str()
            .is_some_and(|field| field.starts_with("template.body")),
        "{}",
        missing.text()
    );

    let sent = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates/hook/test-send",
        Some(json!({"to": "ada@example.com"})),
    )
    .await;
    assert_eq!(sent.status, StatusCode::BAD_REQUEST, "{}", sent.text());
}

/// The raw message the mail port handed over for `provider_id`: the outbox file, or what moto recorded.
async fn delivered(engine: &TestEngine, provider_id: &str) -> String {
    match engine.kind {
        EngineKind::Embedded => {
            let path = engine
                .data_dir
                .as_ref()
                .expect("the embedded engine has a data directory")
                .join("outbox")
                .join(format!("{provider_id}.eml"));
            std::fs::read_to_string(&path)
                .unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
        }
        EngineKind::Aws => moto_raw_message(provider_id).await,
    }
}

/// How often moto's model dump is read before giving up: the dump fails now and then while other tests
/// write to DynamoDB (moto serializes its models as they change).
const MOTO_DUMP_ATTEMPTS: usize = 10;

/// The raw data of the message SES accepted as `provider_id`, from moto's model dump.
async fn moto_raw_message(provider_id: &str) -> String {
    let endpoint = tern_contract::moto::endpoint();
    let url = format!("{}/moto-api/data.json", endpoint.trim_end_matches('/'));
    let mut last_problem = String::new();
    for _ in 0..MOTO_DUMP_ATTEMPTS {
        let response = reqwest::get(&url).await.expect("moto's model data");
        match response.json::<Value>().await {
            Ok(data) => {
                return data["ses"]["RawMessage"]
                    .as_array()
                    .and_then(|messages| {
                        messages.iter().find(|message| message["id"] == provider_id)
                    })
                    .and_then(|message| message["raw_data"].as_str())
                    .unwrap_or_else(|| panic!("moto recorded no message {provider_id}"))
                    .to_string();
            }
            Err(error) => last_problem = error.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("moto's model dump kept failing: {last_problem}");
}

/// SES sends only from verified identities; moto checks that too.
async fn allow_sender(engine: &TestEngine, sender: &str) {
    if engine.kind == EngineKind::Aws {
        let config = tern_aws::sdk_config_for_endpoint(
            &tern_contract::moto::endpoint(),
            tern_contract::moto::REGION,
        )
        .await;
        tern_aws::mail::verify_identity(&config, sender)
            .await
            .expect("verify the sender on moto");
    }
}

async fn a_test_send_hands_both_parts_and_list_unsubscribe_to_the_mail_port(engine: TestEngine) {
    let created = engine.workspace().await;
    let sender = format!("{}@example.com", tern_contract::unique_name("news"));
    allow_sender(&engine, &sender).await;
    let saved = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates",
        Some(json!({
            "id": "promo",
            "name": "Promo",
            "template": email_template(
                &sender,
                "Deals for {{ user.first_name }}",
                "<html><body><p>Hello {{ user.first_name }}</p></body></html>"
            ),
        })),
    )
    .await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.text());

    let sent = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates/promo/test-send",
        Some(json!({"to": "ada@example.com", "traits": {"first_name": "Ada"}})),
    )
    .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text());
    let answer = sent.json();
    let message_id = answer["messageId"].as_str().expect("a message id");
    let provider_id = answer["providerId"].as_str().expect("a provider id");

    let raw = delivered(&engine, provider_id).await;
    assert!(raw.contains("Subject: [Test] Deals for Ada"), "{raw}");
    assert!(raw.contains("multipart/alternative"), "{raw}");
    assert!(raw.contains("text/plain"), "{raw}");
    assert!(raw.contains("text/html"), "{raw}");
    assert!(raw.contains("List-Unsubscribe: <https://"), "{raw}");
    assert!(
        raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{raw}"
    );
    assert!(raw.contains(message_id), "{raw}");

    let missing_to = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates/promo/test-send",
        Some(json!({"traits": {}})),
    )
    .await;
    assert_eq!(missing_to.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing_to.json()["field"], "to");
    let bad_to = admin_json(
        &engine,
        &created,
        "POST",
        "/v1/templates/promo/test-send",
        Some(json!({"to": "not an address"})),
    )
    .await;
    assert_eq!(bad_to.json()["field"], "to");
}

on_both_engines!(
    a_broken_liquid_tag_is_refused_naming_its_field_line_and_column,
    each_save_is_a_version_and_old_versions_stay_readable,
    a_preview_renders_with_escaped_traits_or_a_stored_profile,
    a_webhook_template_previews_and_a_strict_one_names_a_missing_variable,
    a_test_send_hands_both_parts_and_list_unsubscribe_to_the_mail_port
);
