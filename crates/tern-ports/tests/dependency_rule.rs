//! The architecture's one rule, checked: the crates above the ports never depend on an engine.
//!
//! `cargo tree` lists every normal (non-dev) dependency of a crate, transitively, from the lock file.

use std::process::Command;

/// Crates that belong to an engine or a host, never to the ports or the domain.
const ENGINE_CRATES: &[&str] = &[
    "aws-sdk-",
    "aws-config",
    "lambda_",
    "rusqlite",
    "libsqlite3-sys",
    "axum",
    "hyper",
];

fn normal_dependencies(package: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

fn engine_dependencies_of(package: &str) -> Vec<String> {
    let dependencies = normal_dependencies(package);
    assert!(
        dependencies.iter().any(|name| name == package),
        "cargo tree did not list {package} itself"
    );
    dependencies
        .into_iter()
        .filter(|name| ENGINE_CRATES.iter().any(|engine| name.starts_with(engine)))
        .collect()
}

#[test]
fn the_ports_depend_on_no_engine() {
    assert_eq!(engine_dependencies_of("tern-ports"), Vec::<String>::new());
}

#[test]
fn the_domain_depends_on_no_engine() {
    assert_eq!(engine_dependencies_of("tern-domain"), Vec::<String>::new());
}

#[test]
fn the_asl_interpreter_depends_on_no_engine() {
    assert_eq!(engine_dependencies_of("tern-asl"), Vec::<String>::new());
}

#[test]
fn the_lake_encoder_depends_on_no_engine() {
    assert_eq!(engine_dependencies_of("tern-lake"), Vec::<String>::new());
}

#[test]
fn the_embedded_engine_is_seen_as_an_engine() {
    // Proves the check can fail: the embedded adapters do depend on SQLite.
    assert!(
        engine_dependencies_of("tern-embedded")
            .iter()
            .any(|name| name == "rusqlite")
    );
}

#[test]
fn the_handlers_name_no_engine() {
    // The handlers may use an HTTP framework (axum hosts them on both engines) but never an engine's crates.
    let engines: Vec<String> = engine_dependencies_of("tern-app")
        .into_iter()
        .filter(|name| !name.starts_with("axum") && !name.starts_with("hyper"))
        .collect();
    assert_eq!(engines, Vec::<String>::new());
}
