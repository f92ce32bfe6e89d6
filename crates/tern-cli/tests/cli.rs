//! The built `tern` binary, run as a user would.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output};

use serde_json::Value;

use self::common::{Up, run, tern_in, text};

/// Asserts the run failed the way every error must: exit code 1, nothing on stdout, exactly one stderr line.
fn assert_one_line_failure(output: &Output) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(text(&output.stdout), "", "stdout must stay empty");
    assert_eq!(
        stderr.lines().count(),
        1,
        "exactly one line expected: {stderr:?}"
    );
    assert!(stderr.starts_with("error: "), "{stderr:?}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr:?}"
    );
    stderr.trim_end().to_string()
}

#[test]
fn workspace_create_json_prints_exactly_the_three_keys_and_the_workspace_persists() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(tern_in(dir.path()).args(["workspace", "create", "Acme Corp", "--json"]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(stdout.starts_with(r#"{"workspace_id":"ws_"#), "{stdout}");

    let created: serde_json::Map<String, Value> = serde_json::from_str(&stdout).unwrap();
    let keys: Vec<&str> = created.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3, "{stdout}");
    for (field, prefix) in [
        ("workspace_id", "ws_"),
        ("write_key", "tw_"),
        ("admin_key", "ta_"),
    ] {
        assert!(
            created[field].as_str().unwrap().starts_with(prefix),
            "{field} in {stdout}"
        );
    }

    let listed = run(tern_in(dir.path()).args(["workspace", "list"]));
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listing = text(&listed.stdout);
    let workspace_id = created["workspace_id"].as_str().unwrap();
    assert!(
        listing
            .lines()
            .any(|line| line.contains(workspace_id) && line.contains("Acme Corp")),
        "{listing}"
    );

    let listed = run(tern_in(dir.path()).args(["workspace", "list", "--json"]));
    let workspaces: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(workspaces.len(), 1);
    assert_eq!(workspaces[0]["id"], workspace_id);
    assert_eq!(workspaces[0]["name"], "Acme Corp");
}

#[test]
fn the_data_dir_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tern"));
    command
        .env("TERN_DATA_DIR", dir.path())
        .args(["workspace", "create", "FromEnv", "--json"]);
    let output = run(&mut command);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(dir.path().join("tern.db").exists());
}

#[test]
fn a_data_dir_under_a_regular_file_gives_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let data_dir = file.join("data");
    let line = assert_one_line_failure(&run(tern_in(&data_dir).args(["workspace", "list"])));
    assert_eq!(
        line,
        format!(
            "error: cannot open data directory {}: Not a directory",
            data_dir.display()
        )
    );
}

#[test]
fn a_missing_setting_gives_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let line = assert_one_line_failure(&run(tern_in(dir.path()).args(["workspace", "create"])));
    assert!(line.contains("<NAME>"), "{line}");

    let line = assert_one_line_failure(&run(tern_in(dir.path()).args(["workspace"])));
    assert!(line.contains("requires a subcommand"), "{line}");

    let mut empty_data_dir = Command::new(env!("CARGO_BIN_EXE_tern"));
    empty_data_dir
        .env("TERN_DATA_DIR", "")
        .args(["workspace", "list"]);
    let line = assert_one_line_failure(&run(&mut empty_data_dir));
    assert_eq!(
        line,
        "error: a value is required for '--data-dir <DIR>' but none was supplied (see --help)"
    );
}

#[test]
fn an_invalid_workspace_name_gives_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let line = assert_one_line_failure(&run(tern_in(dir.path()).args([
        "workspace",
        "create",
        "   ",
    ])));
    assert!(
        line.contains("name: a workspace name must not be empty"),
        "{line}"
    );
}

#[test]
fn an_address_in_use_gives_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let output = run(tern_in(dir.path()).args(["up", "--addr", &addr.to_string()]));
    let line = assert_one_line_failure(&output);
    assert!(
        line.starts_with(&format!("error: cannot listen on {addr}: ")),
        "{line}"
    );
    assert!(
        line.to_lowercase().contains("address already in use"),
        "{line}"
    );
}

#[test]
fn a_non_loopback_address_needs_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(tern_in(dir.path()).args(["up", "--addr", "0.0.0.0:0"]));
    let line = assert_one_line_failure(&output);
    assert!(line.contains("--allow-non-loopback"), "{line}");
    assert!(
        !dir.path().join("tern.db").exists(),
        "nothing is opened before the address is accepted"
    );
}

#[test]
fn help_is_available_everywhere() {
    for args in [
        vec!["--help"],
        vec!["up", "--help"],
        vec!["workspace", "--help"],
        vec!["workspace", "create", "--help"],
    ] {
        let output = run(Command::new(env!("CARGO_BIN_EXE_tern")).args(&args));
        assert!(output.status.success(), "{args:?}");
        assert!(text(&output.stdout).contains("Usage:"), "{args:?}");
    }
}

async fn workspace_of(base_url: &str, admin_key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base_url}/v1/workspace"))
        .bearer_auth(admin_key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn up_serves_health_and_the_default_workspace_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();

    let first = Up::start(dir.path(), Some("json"));
    let admin_key = first
        .admin_key()
        .expect("the first start prints the default workspace's admin key");
    assert!(
        first
            .banner
            .iter()
            .any(|line| line.trim().starts_with("write key: tw_")),
        "{:?}",
        first.banner
    );
    let health = reqwest::get(format!("{}/health", first.base_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let response = workspace_of(&first.base_url, &admin_key).await;
    assert_eq!(response.status(), 200);
    let workspace: Value = response.json().await.unwrap();
    assert_eq!(workspace["name"], "default");

    // SIGTERM: a graceful stop, with JSON logs on stderr.
    let (status, stderr) = first.terminate();
    assert!(status.success(), "exit {status:?}; stderr: {stderr}");
    for line in stderr.lines() {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(entry.get("level").is_some(), "{line}");
    }
    assert!(stderr.contains("\"stopped\""), "{stderr}");

    // The second start finds the workspace and prints no new keys; the old admin key still works.
    let second = Up::start(dir.path(), None);
    assert_eq!(second.admin_key(), None, "{:?}", second.banner);
    let response = workspace_of(&second.base_url, &admin_key).await;
    assert_eq!(response.status(), 200);
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["id"], workspace["id"]);
    drop(second); // SIGKILL: no chance to flush.

    let third = Up::start(dir.path(), None);
    let response = workspace_of(&third.base_url, &admin_key).await;
    assert_eq!(response.status(), 200, "committed data survives a kill");
}
