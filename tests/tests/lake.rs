//! The event lake on both engines: accepted events go through the `lake` queue to Parquet objects under
//! Hive partitions, which DuckDB reads with the expected columns, types and values; many small lake
//! messages become few objects.
//!
//! DuckDB runs in the Python named by `TERN_TEST_PYTHON` (`cargo xtask test` sets it to its virtual
//! environment, which has `duckdb`).

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use tern_domain::ingest::{Event, accept};
use tern_tests::{TestEngine, handler_for, on_both_engines};

/// Reads `<dir>/lake/events/**/*.parquet` with DuckDB (Hive partitioning on), runs `sql` over it as the
/// view `events`, and prints the result columns and rows as JSON.
const DUCKDB_SCRIPT: &str = r#"
import json, sys
import duckdb

lake, sql = sys.argv[1], sys.argv[2]
con = duckdb.connect()
files = (lake + "/lake/events/**/*.parquet").replace("'", "''")
con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{files}', hive_partitioning = true)")
columns = [[name, kind] for name, kind, *_ in con.execute("DESCRIBE events").fetchall()]
result = con.execute(sql)
names = [d[0] for d in result.description]
rows = [dict(zip(names, row)) for row in result.fetchall()]
print(json.dumps({"columns": columns, "rows": rows}, default=str))
"#;

/// The DuckDB answer to `sql` over the lake copied into `dir`: `{"columns": [[name, type]…], "rows": […]}`.
fn duckdb(dir: &Path, sql: &str) -> Value {
    let python = std::env::var("TERN_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TERN_TEST_PYTHON is not set: point it at a Python that has duckdb \
             (cargo xtask test sets it; or .tern-tools/venv/bin/python after `pip install duckdb`)"
        )
    });
    let output = Command::new(&python)
        .arg("-c")
        .arg(DUCKDB_SCRIPT)
        .arg(dir)
        .arg(sql)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    assert!(
        output.status.success(),
        "DuckDB failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "DuckDB printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Every lake object of `workspace_id`, by key.
async fn lake_keys(engine: &TestEngine, workspace_id: &str) -> Vec<String> {
    let prefix = format!("lake/events/workspace={workspace_id}/");
    let blobs = engine.ports().blobs.clone();
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = blobs
            .list(&prefix, cursor, 1000)
            .await
            .expect("list the lake");
        keys.extend(page.blobs.into_iter().map(|blob| blob.key));
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return keys,
        }
    }
}

/// Copies the objects into a temporary directory under their keys, as a local lake DuckDB can read.
async fn copy_lake(engine: &TestEngine, keys: &[String]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    for key in keys {
        let body = engine
            .ports()
            .blobs
            .get(key)
            .await
            .expect("read a lake object")
            .unwrap_or_else(|| panic!("{key} was listed but is gone"));
        let path = dir.path().join(key);
        std::fs::create_dir_all(path.parent().expect("a key has a directory")).unwrap();
        std::fs::write(&path, &body).unwrap();
    }
    dir
}

fn event(value: Value) -> Event {
    serde_json::from_value(value).expect("a valid event")
}

/// Three events of different kinds over two hours of one day.
fn sample_events(run: &str) -> Vec<Event> {
    vec![
        event(json!({
            "messageId": format!("{run}-1"), "type": "track", "userId": "u-1", "anonymousId": "a-1",
            "event": "Order Completed", "properties": {"total": 12.5, "currency": "EUR"},
            "context": {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0", "locale": "fr-FR",
                        "timezone": "Europe/Paris", "library": {"name": "analytics.js"}},
            "integrations": {"All": true},
            "timestamp": "2026-01-02T03:04:05.678Z", "originalTimestamp": "2026-01-02T03:04:00Z",
            "sentAt": "2026-01-02T03:04:01Z", "receivedAt": "2026-01-02T03:04:06.001Z"
        })),
        event(json!({
            "messageId": format!("{run}-2"), "type": "identify", "userId": "u-1",
            "traits": {"email": "ada@example.com", "plan": "pro"},
            "timestamp": "2026-01-02T03:30:00Z", "receivedAt": "2026-01-02T03:30:00Z"
        })),
        event(json!({
            "messageId": format!("{run}-3"), "type": "page", "anonymousId": "a-2",
            "name": "Pricing", "category": "Docs", "properties": {"path": "/pricing"},
            "timestamp": "2026-01-02T04:00:00Z", "receivedAt": "2026-01-02T04:00:01Z"
        })),
    ]
}

const EXPECTED_COLUMNS: &[(&str, &str)] = &[
    ("message_id", "VARCHAR"),
    ("type", "VARCHAR"),
    ("user_id", "VARCHAR"),
    ("anonymous_id", "VARCHAR"),
    ("event", "VARCHAR"),
    ("name", "VARCHAR"),
    ("category", "VARCHAR"),
    ("group_id", "VARCHAR"),
    ("previous_id", "VARCHAR"),
    ("timestamp", "TIMESTAMP WITH TIME ZONE"),
    ("received_at", "TIMESTAMP WITH TIME ZONE"),
    ("sent_at", "TIMESTAMP WITH TIME ZONE"),
    ("original_timestamp", "TIMESTAMP WITH TIME ZONE"),
    ("properties", "VARCHAR"),
    ("traits", "VARCHAR"),
    ("context", "VARCHAR"),
    ("context_ip", "VARCHAR"),
    ("context_user_agent", "VARCHAR"),
    ("context_locale", "VARCHAR"),
    ("context_timezone", "VARCHAR"),
    ("integrations", "VARCHAR"),
];

/// The Hive partitions, as DuckDB types them from their values (`hour` keeps its leading zero), by name.
const EXPECTED_PARTITION_COLUMNS: &[(&str, &str)] = &[
    ("dt", "DATE"),
    ("hour", "VARCHAR"),
    ("workspace", "VARCHAR"),
];

async fn accepted_events_are_in_the_lake_as_duckdb_reads_them(engine: TestEngine) {
    let created = engine.workspace().await;
    let workspace_id = created.workspace.id.clone();
    let run = uuid::Uuid::now_v7().to_string();
    let accepted = accept(engine.ports(), &workspace_id, sample_events(&run))
        .await
        .expect("accept the events");
    assert_eq!(accepted.stored, 3);
    assert!(
        engine.drain("lake").await > 0,
        "nothing reached the lake queue"
    );

    let keys = lake_keys(&engine, &workspace_id).await;
    let prefixes: Vec<&str> = keys
        .iter()
        .map(|key| &key[..=key.rfind('/').expect("a partitioned key")])
        .collect();
    assert_eq!(
        prefixes,
        vec![
            format!("lake/events/workspace={workspace_id}/dt=2026-01-02/hour=03/"),
            format!("lake/events/workspace={workspace_id}/dt=2026-01-02/hour=04/"),
        ],
        "one object per partition: {keys:?}"
    );
    assert!(keys.iter().all(|key| key.ends_with(".parquet")), "{keys:?}");

    let lake = copy_lake(&engine, &keys).await;
    let answer = duckdb(
        lake.path(),
        "SELECT message_id, type, user_id, anonymous_id, event, name, category, group_id, previous_id, \
                epoch_ms(timestamp) AS timestamp_ms, epoch_ms(received_at) AS received_at_ms, \
                epoch_ms(sent_at) AS sent_at_ms, epoch_ms(original_timestamp) AS original_timestamp_ms, \
                properties, traits, context, context_ip, context_user_agent, context_locale, \
                context_timezone, integrations, workspace, CAST(dt AS VARCHAR) AS dt, hour \
         FROM events ORDER BY message_id",
    );

    let columns: Vec<(&str, &str)> = answer["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|pair| (pair[0].as_str().unwrap(), pair[1].as_str().unwrap()))
        .collect();
    let split = EXPECTED_COLUMNS.len().min(columns.len());
    let (file_columns, partition_columns) = columns.split_at(split);
    assert_eq!(file_columns, EXPECTED_COLUMNS);
    let mut partition_columns = partition_columns.to_vec();
    partition_columns.sort();
    assert_eq!(partition_columns, EXPECTED_PARTITION_COLUMNS);

    let rows = answer["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{rows:?}");
    let (track, identify, page) = (&rows[0], &rows[1], &rows[2]);

    assert_eq!(track["message_id"], format!("{run}-1"));
    assert_eq!(track["type"], "track");
    assert_eq!(track["user_id"], "u-1");
    assert_eq!(track["anonymous_id"], "a-1");
    assert_eq!(track["event"], "Order Completed");
    assert_eq!(track["name"], Value::Null);
    assert_eq!(track["timestamp_ms"], 1_767_323_045_678_i64);
    assert_eq!(track["received_at_ms"], 1_767_323_046_001_i64);
    assert_eq!(track["sent_at_ms"], 1_767_323_041_000_i64);
    assert_eq!(track["original_timestamp_ms"], 1_767_323_040_000_i64);
    let properties: Value = serde_json::from_str(track["properties"].as_str().unwrap()).unwrap();
    assert_eq!(properties, json!({"total": 12.5, "currency": "EUR"}));
    let context: Value = serde_json::from_str(track["context"].as_str().unwrap()).unwrap();
    assert_eq!(context["library"]["name"], "analytics.js");
    assert_eq!(track["context_ip"], "203.0.113.9");
    assert_eq!(track["context_user_agent"], "Mozilla/5.0");
    assert_eq!(track["context_locale"], "fr-FR");
    assert_eq!(track["context_timezone"], "Europe/Paris");
    assert_eq!(track["integrations"], r#"{"All":true}"#);
    assert_eq!(track["workspace"], workspace_id.as_str());
    assert_eq!(track["dt"], "2026-01-02");
    assert_eq!(track["hour"], "03");

    assert_eq!(identify["type"], "identify");
    let traits: Value = serde_json::from_str(identify["traits"].as_str().unwrap()).unwrap();
    assert_eq!(traits, json!({"email": "ada@example.com", "plan": "pro"}));
    assert_eq!(identify["properties"], Value::Null);
    assert_eq!(identify["sent_at_ms"], Value::Null);

    assert_eq!(page["type"], "page");
    assert_eq!(page["user_id"], Value::Null);
    assert_eq!(page["anonymous_id"], "a-2");
    assert_eq!(page["name"], "Pricing");
    assert_eq!(page["category"], "Docs");
    assert_eq!(page["hour"], "04");
}

async fn many_small_lake_messages_become_one_object_per_partition(engine: TestEngine) {
    let created = engine.workspace().await;
    let workspace_id = created.workspace.id.clone();
    let run = uuid::Uuid::now_v7().to_string();
    // One request, one event, one lake message each: the way a chatty client sends.
    for i in 0..60 {
        let single = event(json!({
            "messageId": format!("{run}-{i:02}"), "type": "track", "userId": format!("u-{i}"),
            "event": "Clicked", "timestamp": "2026-01-02T03:04:05Z", "receivedAt": "2026-01-02T03:04:05Z"
        }));
        accept(engine.ports(), &workspace_id, vec![single])
            .await
            .expect("accept an event");
    }

    // As the hosts run the lake writer: batches as large as it asks for (one SQS batch or local window).
    let handled = tern_local::worker::drain(&engine.state, handler_for("lake").as_ref())
        .await
        .expect("drain the lake queue");
    assert_eq!(handled, 60);

    let keys = lake_keys(&engine, &workspace_id).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let lake = copy_lake(&engine, &keys).await;
    let answer = duckdb(
        lake.path(),
        "SELECT count(*) AS events, count(DISTINCT message_id) AS ids FROM events",
    );
    assert_eq!(answer["rows"][0]["events"], 60);
    assert_eq!(answer["rows"][0]["ids"], 60);
}

on_both_engines!(
    accepted_events_are_in_the_lake_as_duckdb_reads_them,
    many_small_lake_messages_become_one_object_per_partition
);
