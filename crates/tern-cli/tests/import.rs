//! `tern import` against a running `tern up`, as a user runs them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long `tern up` may take to print that it listens.
const STARTUP: Duration = Duration::from_secs(30);

fn tern() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tern"));
    for variable in [
        "TERN_DATA_DIR",
        "TERN_ADDR",
        "TERN_URL",
        "TERN_ADMIN_KEY",
        "TERN_LOG_FORMAT",
        "RUST_LOG",
    ] {
        command.env_remove(variable);
    }
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

fn customers_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/imports/customers.csv")
}

/// A running `tern up` on a free loopback port with its admin key, killed when dropped.
struct Up {
    child: Child,
    base_url: String,
    admin_key: String,
    _dir: tempfile::TempDir,
}

impl Up {
    fn start() -> Up {
        let dir = tempfile::tempdir().unwrap();
        let mut child = tern()
            .arg("--data-dir")
            .arg(dir.path())
            .args(["up", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tern up starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut up = Up {
            child,
            base_url: String::new(),
            admin_key: String::new(),
            _dir: dir,
        };
        loop {
            let line = lines
                .recv_timeout(STARTUP)
                .expect("tern up prints its keys and where it listens");
            if let Some(key) = line.trim().strip_prefix("admin key: ") {
                up.admin_key = key.to_string();
            }
            if let Some(url) = line.strip_prefix("Listening on ") {
                up.base_url = url.trim().to_string();
                assert!(
                    !up.admin_key.is_empty(),
                    "the first start prints an admin key"
                );
                return up;
            }
        }
    }

    fn import(&self, file: &Path) -> Command {
        let mut command = tern();
        command
            .arg("import")
            .arg(file)
            .args(["--url", &self.base_url]);
        command
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().expect("kill tern up");
            self.child.wait().expect("reap tern up");
        }
    }
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the tern binary runs")
}

#[test]
fn import_uploads_runs_and_prints_the_summary_and_row_errors() {
    let up = Up::start();
    let output = run(up.import(&customers_csv()).args(["--key", &up.admin_key]));
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&output.stderr)
    );
    let summary = stdout.lines().next().unwrap_or_default();
    assert!(summary.starts_with("Import imp_"), "{stdout}");
    assert!(
        summary.contains("completed: 8 rows: 4 imported, 0 unchanged, 4 failed"),
        "{stdout}"
    );
    for line in [
        "  row 5, column seats:number: the value \"many\" is not a number",
        "  row 6: the row has 5 fields; the header has 8",
        "  row 9, column email: \"not-an-email\" is not an email address",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in {stdout}");
    }

    // The same file again, with the key from the environment: nothing changes.
    let again = run(up
        .import(&customers_csv())
        .env("TERN_ADMIN_KEY", &up.admin_key));
    let stdout = text(&again.stdout);
    assert!(again.status.success(), "{stdout}{}", text(&again.stderr));
    assert!(
        stdout.contains("completed: 8 rows: 0 imported, 4 unchanged, 4 failed"),
        "{stdout}"
    );
}

#[test]
fn a_failed_import_prints_why_and_exits_1() {
    let up = Up::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-identity.csv");
    std::fs::write(&file, "plan,seats\npro,3\n").unwrap();
    let output = run(up.import(&file).args(["--key", &up.admin_key]));
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(stdout.contains(" failed: "), "{stdout}");
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("error: import imp_")
            && stderr.contains("no column identifies a profile"),
        "{stderr}"
    );
}

#[test]
fn missing_or_wrong_keys_and_files_give_one_error_line() {
    let missing_key = run(tern().args(["import", "people.csv"]));
    assert_eq!(missing_key.status.code(), Some(1));
    assert_eq!(
        text(&missing_key.stderr),
        "error: an admin key is required: pass --key <ADMIN_KEY> or set TERN_ADMIN_KEY\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.csv");
    let no_file = run(tern().arg("import").arg(&absent).args(["--key", "ta_x"]));
    assert_eq!(no_file.status.code(), Some(1));
    let stderr = text(&no_file.stderr);
    assert_eq!(
        stderr,
        format!(
            "error: cannot read {}: No such file or directory\n",
            absent.display()
        )
    );

    let up = Up::start();
    let wrong_key = run(up.import(&customers_csv()).args(["--key", "ta_wrong"]));
    assert_eq!(wrong_key.status.code(), Some(1));
    let stderr = text(&wrong_key.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("error: cannot create the import: 401 Unauthorized: "),
        "{stderr}"
    );
    assert_eq!(text(&wrong_key.stdout), "");
}
