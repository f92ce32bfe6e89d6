//! `tern import` against a running `tern up`, as a user runs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use self::common::{Up, run, tern, text};

fn customers_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/imports/customers.csv")
}

/// A running `tern up` on a fresh data directory, with the admin key its first start prints.
struct Fresh {
    up: Up,
    admin_key: String,
    _dir: tempfile::TempDir,
}

impl Fresh {
    fn start() -> Fresh {
        let dir = tempfile::tempdir().unwrap();
        let up = Up::start(dir.path(), None);
        let admin_key = up.admin_key().expect("the first start prints an admin key");
        Fresh {
            up,
            admin_key,
            _dir: dir,
        }
    }

    fn import(&self, file: &Path) -> Command {
        let mut command = tern();
        command
            .arg("import")
            .arg(file)
            .args(["--url", &self.up.base_url]);
        command
    }
}

#[test]
fn import_uploads_runs_and_prints_the_summary_and_row_errors() {
    let up = Fresh::start();
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
    let up = Fresh::start();
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

    let up = Fresh::start();
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
