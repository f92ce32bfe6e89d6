//! CSV imports on both engines: create an import, upload the file to the target the API hands out (the
//! local upload route, or a presigned S3 PUT on moto), start it, run the `imports` queue, read the summary.
//! The fixture `events/imports/customers.csv` holds good rows and broken ones; profiles are read back with
//! `tern_domain::profile::get_user`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tern_app::QueueHandler;
use tern_app::imports::ImportHandler;
use tern_domain::CreatedWorkspace;
use tern_domain::profile::{UserView, get_user};
use tern_ports::OutMessage;
use tern_tests::{TestEngine, TestResponse, bearer_auth, fixture, on_both_engines};

/// The users `customers.csv` imports, and the rows it reports (row, column, the start of the reason).
const IMPORTED_USERS: [&str; 4] = ["u-1001", "u-1002", "carla@example.com", "u-1008"];
const BROKEN_ROWS: [(u64, Option<&str>, &str); 4] = [
    (
        5,
        Some("seats:number"),
        "the value \"many\" is not a number",
    ),
    (6, None, "the row has 5 fields; the header has 8"),
    (7, None, "no identity"),
    (9, Some("email"), "\"not-an-email\" is not an email address"),
];

fn admin(created: &CreatedWorkspace) -> String {
    bearer_auth(created.admin_key.expose())
}

fn request(method: &str, path: &str, authorization: &str, body: Option<Value>) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, authorization);
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("a valid request")
}

fn assert_status(response: &TestResponse, status: StatusCode, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.text());
}

/// `POST /v1/imports`: the new import's JSON, with its upload target.
async fn create_import(engine: &TestEngine, created: &CreatedWorkspace) -> Value {
    let response = engine
        .send(request(
            "POST",
            "/v1/imports",
            &admin(created),
            Some(json!({"fileName": "customers.csv"})),
        ))
        .await;
    assert_status(&response, StatusCode::CREATED, "create an import");
    let import = response.json();
    assert_eq!(import["status"], "awaiting_upload");
    assert_eq!(import["fileName"], "customers.csv");
    assert!(
        import["id"].as_str().unwrap().starts_with("imp_"),
        "{import}"
    );
    import
}

/// Uploads `bytes` as the upload target says, as a client would: over HTTP.
async fn upload(import: &Value, bytes: Vec<u8>) {
    let upload = &import["upload"];
    assert_eq!(upload["method"], "PUT", "{upload}");
    let mut put = reqwest::Client::new().put(upload["url"].as_str().expect("an upload URL"));
    for (name, value) in upload["headers"].as_object().expect("upload headers") {
        put = put.header(name.as_str(), value.as_str().expect("a header value"));
    }
    let response = put
        .body(bytes)
        .send()
        .await
        .expect("the upload target answers");
    assert!(
        response.status().is_success(),
        "upload: {} {}",
        response.status(),
        response.text().await.unwrap_or_default()
    );
}

async fn start(engine: &TestEngine, created: &CreatedWorkspace, id: &str) -> TestResponse {
    engine
        .send(request(
            "POST",
            &format!("/v1/imports/{id}/start"),
            &admin(created),
            None,
        ))
        .await
}

async fn show(engine: &TestEngine, created: &CreatedWorkspace, id: &str) -> TestResponse {
    engine
        .send(request(
            "GET",
            &format!("/v1/imports/{id}"),
            &admin(created),
            None,
        ))
        .await
}

/// The whole flow for one file; returns the finished import's JSON.
async fn import_file(engine: &TestEngine, created: &CreatedWorkspace, bytes: Vec<u8>) -> Value {
    let import = create_import(engine, created).await;
    let id = import["id"].as_str().unwrap().to_string();
    upload(&import, bytes).await;
    let started = start(engine, created, &id).await;
    assert_status(&started, StatusCode::OK, "start");
    assert_eq!(started.json()["status"], "queued");
    assert!(engine.drain("imports").await >= 1);
    let shown = show(engine, created, &id).await;
    assert_status(&shown, StatusCode::OK, "show");
    shown.json()
}

fn counts(import: &Value) -> (u64, u64, u64, u64) {
    let counts = &import["counts"];
    let read = |name: &str| {
        counts[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} in {import}"))
    };
    (
        read("rowsRead"),
        read("imported"),
        read("unchanged"),
        read("failed"),
    )
}

async fn profiles(engine: &TestEngine, workspace_id: &str) -> BTreeMap<&'static str, UserView> {
    let mut profiles = BTreeMap::new();
    for user_id in IMPORTED_USERS {
        let view = get_user(engine.ports().table.as_ref(), workspace_id, user_id)
            .await
            .expect("read a profile")
            .unwrap_or_else(|| panic!("{user_id} was imported"));
        profiles.insert(user_id, view);
    }
    profiles
}

async fn good_rows_are_imported_and_broken_rows_reported(engine: TestEngine) {
    let created = engine.workspace().await;
    let import = import_file(&engine, &created, fixture("imports/customers.csv")).await;

    assert_eq!(import["status"], "completed", "{import}");
    assert_eq!(counts(&import), (8, 4, 0, 4), "{import}");
    let size = fixture("imports/customers.csv").len() as u64;
    assert_eq!(import["counts"]["fileSize"], size);
    assert_eq!(import["counts"]["bytesRead"], size);
    for time in ["createdAt", "queuedAt", "startedAt", "finishedAt"] {
        assert!(import[time].is_string(), "{time} in {import}");
    }

    let errors = import["errors"].as_array().expect("errors");
    let reported: Vec<(u64, Option<&str>, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["column"].as_str(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(reported.len(), BROKEN_ROWS.len(), "{reported:?}");
    for ((row, column, reason), expected) in reported.iter().zip(BROKEN_ROWS) {
        assert_eq!((*row, *column), (expected.0, expected.1), "{reported:?}");
        assert!(reason.starts_with(expected.2), "row {row}: {reason}");
    }
    assert_eq!(import["errorsCursor"], Value::Null);

    let workspace_id = &created.workspace.id;
    let table = engine.ports().table.as_ref();
    let ann = get_user(table, workspace_id, "u-1001")
        .await
        .unwrap()
        .expect("u-1001");
    assert_eq!(
        Value::Object(ann.traits),
        json!({"email": "ann@example.com", "firstName": "Ann", "plan": "pro", "seats": 5, "vip": true,
               "signedUpAt": "2025-11-02T08:30:00Z", "zip": "02134"})
    );
    let carla = get_user(table, workspace_id, "carla@example.com")
        .await
        .unwrap();
    let carla = carla.expect("the email identifies a row without a user id");
    assert_eq!(carla.traits["email"], "Carla@Example.com");
    assert_eq!(carla.traits["vip"], true);
    let grace = get_user(table, workspace_id, "u-1008")
        .await
        .unwrap()
        .expect("u-1008");
    assert_eq!(grace.traits["firstName"], "Grace \"G\" Hopper");
    assert_eq!(grace.traits["signedUpAt"], "2026-02-10T13:00:00Z");
    for skipped in ["u-1004", "u-1005", "u-1009"] {
        assert!(
            get_user(table, workspace_id, skipped)
                .await
                .unwrap()
                .is_none(),
            "{skipped} is on a broken row"
        );
    }
}

async fn importing_the_same_file_again_changes_no_profile(engine: TestEngine) {
    let created = engine.workspace().await;
    let first = import_file(&engine, &created, fixture("imports/customers.csv")).await;
    assert_eq!(counts(&first), (8, 4, 0, 4), "{first}");
    let before = profiles(&engine, &created.workspace.id).await;

    let second = import_file(&engine, &created, fixture("imports/customers.csv")).await;
    assert_eq!(second["status"], "completed", "{second}");
    assert_eq!(counts(&second), (8, 0, 4, 4), "{second}");
    let after = profiles(&engine, &created.workspace.id).await;
    assert_eq!(before, after);
}

async fn start_needs_the_upload_and_happens_once(engine: TestEngine) {
    let created = engine.workspace().await;
    let import = create_import(&engine, &created).await;
    let id = import["id"].as_str().unwrap();

    let early = start(&engine, &created, id).await;
    assert_status(&early, StatusCode::CONFLICT, "start before the upload");
    assert!(
        early.json()["message"].as_str().unwrap().contains("upload"),
        "{}",
        early.text()
    );

    upload(&import, fixture("imports/customers.csv")).await;
    assert_status(&start(&engine, &created, id).await, StatusCode::OK, "start");
    let again = start(&engine, &created, id).await;
    assert_status(&again, StatusCode::CONFLICT, "start twice");
    assert_eq!(show(&engine, &created, id).await.json()["status"], "queued");

    let other = engine.workspace().await;
    assert_status(
        &show(&engine, &other, id).await,
        StatusCode::NOT_FOUND,
        "another workspace's import",
    );
    assert_status(
        &show(&engine, &created, "imp_nope").await,
        StatusCode::NOT_FOUND,
        "an unknown id",
    );
    let anonymous = engine
        .send(Request::post("/v1/imports").body(Body::empty()).unwrap())
        .await;
    assert_status(&anonymous, StatusCode::UNAUTHORIZED, "no admin key");
    let write_key = engine
        .send(request(
            "POST",
            "/v1/imports",
            &bearer_auth(created.write_key.expose()),
            None,
        ))
        .await;
    assert_status(&write_key, StatusCode::FORBIDDEN, "a write key");
    let bad_body = engine
        .send(request(
            "POST",
            "/v1/imports",
            &admin(&created),
            Some(json!({"file": 1})),
        ))
        .await;
    assert_status(&bad_body, StatusCode::BAD_REQUEST, "an unknown field");
}

async fn a_broken_header_fails_the_import_and_says_why(engine: TestEngine) {
    let created = engine.workspace().await;
    let import = import_file(&engine, &created, b"plan,seats\npro,3\n".to_vec()).await;
    assert_eq!(import["status"], "failed", "{import}");
    let failure = import["failure"].as_str().expect("a failure reason");
    assert!(
        failure.contains("no column identifies a profile"),
        "{failure}"
    );

    let empty = import_file(&engine, &created, Vec::new()).await;
    assert_eq!(empty["status"], "failed", "{empty}");
    assert!(
        empty["failure"].as_str().unwrap().contains("empty"),
        "{empty}"
    );
}

async fn invalid_utf8_is_a_row_error_naming_the_column(engine: TestEngine) {
    let created = engine.workspace().await;
    // "Zoë" in Latin-1: a file exported in the wrong encoding.
    let file = b"id,name\nu-1,Zo\xeb\nu-2,Zoe\n".to_vec();
    let import = import_file(&engine, &created, file).await;
    assert_eq!(counts(&import), (2, 1, 0, 1), "{import}");
    assert_eq!(
        import["errors"],
        json!([{"row": 2, "column": "name", "reason": "the value is not valid UTF-8"}])
    );
}

async fn row_errors_are_read_page_by_page(engine: TestEngine) {
    let created = engine.workspace().await;
    let mut file = String::from("id,age:number\n");
    for row in 0..150 {
        file.push_str(&format!("u-{row},not-a-number\n"));
    }
    let import = import_file(&engine, &created, file.into_bytes()).await;
    assert_eq!(counts(&import), (150, 0, 0, 150), "{import}");
    let first = import["errors"].as_array().unwrap();
    assert_eq!(first.len(), 100);
    assert_eq!(first[0]["row"], 2);
    let cursor = import["errorsCursor"]
        .as_str()
        .expect("a cursor to the rest");

    let id = import["id"].as_str().unwrap();
    let path = format!("/v1/imports/{id}/errors?cursor={cursor}");
    let rest = engine
        .send(request("GET", &path, &admin(&created), None))
        .await;
    assert_status(&rest, StatusCode::OK, "the next page");
    let rest = rest.json();
    let rows: Vec<u64> = rest["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, (102..=151).collect::<Vec<u64>>());
    assert_eq!(rest["cursor"], Value::Null);

    for query in ["limit=0", "limit=many", "cursor=not-a-cursor"] {
        let path = format!("/v1/imports/{id}/errors?{query}");
        let refused = engine
            .send(request("GET", &path, &admin(&created), None))
            .await;
        assert_status(&refused, StatusCode::BAD_REQUEST, query);
        assert_eq!(refused.json()["code"], "invalid", "{query}");
    }
}

/// Runs `handler` over the `imports` queue until it is empty, deleting what succeeded (as both hosts do).
async fn run_imports_queue(engine: &TestEngine, handler: &ImportHandler) -> usize {
    let queue = engine.ports().queue.clone();
    let mut handled = 0;
    loop {
        let messages = queue.receive("imports", 1, Duration::ZERO).await.unwrap();
        if messages.is_empty() {
            return handled;
        }
        handled += messages.len();
        let receipts: Vec<(String, String)> = messages
            .iter()
            .map(|m| (m.id.clone(), m.receipt.clone()))
            .collect();
        let outcome = handler.handle(&engine.state, messages).await;
        for (id, receipt) in receipts {
            if !outcome.failed.contains(&id) {
                queue.delete("imports", &receipt).await.unwrap();
            }
        }
    }
}

async fn a_paused_run_continues_where_it_stopped(engine: TestEngine) {
    let created = engine.workspace().await;
    let import = create_import(&engine, &created).await;
    let id = import["id"].as_str().unwrap();
    upload(&import, fixture("imports/customers.csv")).await;
    assert_status(&start(&engine, &created, id).await, StatusCode::OK, "start");

    // No time budget: every run stops after its first checkpoint and asks for the rest in a new message.
    let handler = ImportHandler {
        batch_rows: 3,
        budget: Duration::ZERO,
        ..ImportHandler::default()
    };
    let runs = run_imports_queue(&engine, &handler).await;
    assert_eq!(runs, 3, "8 rows in batches of 3");
    let shown = show(&engine, &created, id).await.json();
    assert_eq!(shown["status"], "completed", "{shown}");
    // Rows before each checkpoint were not accepted again: nothing counts as unchanged.
    assert_eq!(counts(&shown), (8, 4, 0, 4), "{shown}");
    assert_eq!(shown["errors"].as_array().unwrap().len(), 4);
}

async fn a_message_for_a_finished_or_unstarted_import_changes_nothing(engine: TestEngine) {
    let created = engine.workspace().await;
    let done = import_file(&engine, &created, fixture("imports/customers.csv")).await;
    let waiting = create_import(&engine, &created).await;
    let message = |import: &Value| {
        OutMessage::new(
            json!({"workspaceId": created.workspace.id, "importId": import["id"]}).to_string(),
        )
    };
    engine
        .ports()
        .queue
        .send_batch("imports", vec![message(&done), message(&waiting)])
        .await
        .unwrap();
    assert_eq!(engine.drain("imports").await, 2);

    let again = show(&engine, &created, done["id"].as_str().unwrap())
        .await
        .json();
    assert_eq!(again["counts"], done["counts"]);
    assert_eq!(again["finishedAt"], done["finishedAt"]);
    let still = show(&engine, &created, waiting["id"].as_str().unwrap())
        .await
        .json();
    assert_eq!(still["status"], "awaiting_upload", "{still}");
}

on_both_engines!(
    a_paused_run_continues_where_it_stopped,
    a_message_for_a_finished_or_unstarted_import_changes_nothing,
    good_rows_are_imported_and_broken_rows_reported,
    importing_the_same_file_again_changes_no_profile,
    start_needs_the_upload_and_happens_once,
    a_broken_header_fails_the_import_and_says_why,
    invalid_utf8_is_a_row_error_naming_the_column,
    row_errors_are_read_page_by_page,
);

/// A large file is streamed, never held whole: ~50 MB generated on the fly into the blob store, run by the
/// `imports` handler to completion. Embedded only: the point is the handler's streaming, not moto's speed.
mod large {
    use bytes::Bytes;
    use futures::StreamExt;
    use tern_domain::imports::upload_key;

    use super::*;

    const ROWS: u64 = 25_000;
    /// Every this many rows, one has no identity.
    const BROKEN_EVERY: u64 = 1_000;

    fn row(number: u64) -> String {
        // ~2 KB per row: a long text trait keeps the row count (and the test's time) modest.
        let bio = "lorem ipsum ".repeat(170);
        if number.is_multiple_of(BROKEN_EVERY) {
            format!(",,{number},{bio}\n")
        } else {
            format!("u-{number},user{number}@example.com,{number},{bio}\n")
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_50_mb_file_is_streamed_to_completion() {
        let engine = TestEngine::embedded().await;
        let created = engine.workspace().await;
        let import = create_import(&engine, &created).await;
        let id = import["id"].as_str().unwrap();

        let header = futures::stream::once(async { "userId,email,score,bio\n".to_string() });
        let rows = futures::stream::iter(1..=ROWS).map(row);
        let body = header
            .chain(rows)
            .map(|text| Ok::<_, std::io::Error>(Bytes::from(text)))
            .boxed();
        let size = engine
            .ports()
            .blobs
            .put_stream(
                &upload_key(&created.workspace.id, id),
                body,
                Some("text/csv"),
            )
            .await
            .expect("write the generated file");
        assert!(size > 50_000_000, "{size} bytes");

        assert_status(&start(&engine, &created, id).await, StatusCode::OK, "start");
        assert!(engine.drain("imports").await >= 1);
        let shown = show(&engine, &created, id).await.json();
        assert_eq!(shown["status"], "completed", "{shown}");
        let broken = ROWS / BROKEN_EVERY;
        assert_eq!(counts(&shown), (ROWS, ROWS - broken, 0, broken), "{shown}");
        assert_eq!(shown["counts"]["bytesRead"], size);
        let last = get_user(
            engine.ports().table.as_ref(),
            &created.workspace.id,
            "u-24999",
        )
        .await
        .unwrap()
        .expect("the last good row");
        assert_eq!(last.traits["score"], 24999);
    }
}
