//! Tern's development tasks (`cargo xtask <task>`), kept in code rather than shell scripts.
//!
//! - `test`: installs the test tools (moto, cfn-lint, duckdb, asl-validator, the tracking SDKs) into `.tern-tools/`, starts moto on a
//!   free loopback port with its Step Functions interpreter on, runs every Rust test against both engines,
//!   lints the infrastructure, and stops moto whatever happened.
//! - `moto`: runs the same moto server in the foreground, for working on the AWS adapters.
//! - `lint`: the infrastructure and state-machine checks alone.
//! - `bench`: the benchmarks in release mode (moto started for the ones on the Lambda path).
//! - `lambda`: the health function built for arm64 with cargo-lambda and invoked through `cargo lambda watch`.

mod lambda;
mod moto;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test            install the test tools, start moto, run every test, lint infra/ and statemachines/
  moto [PORT]     run moto in the foreground (Step Functions interpreter on), default port 5055
  lint            cfn-lint on infra/template.yaml and asl-validator on statemachines/*.json
  bench [NAME]    run the benchmarks (ingest, lambda-ingest; default all) and print their figures
  lambda          build the health function for arm64 with cargo-lambda and invoke it with its fixture";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("test") => test(&root, &args[1..]),
        Some("moto") => {
            let port = args
                .get(1)
                .map(|p| p.parse())
                .transpose()
                .context("PORT must be a number")?;
            let tools = tools::ensure(&root)?;
            moto::run_foreground(&tools, port.unwrap_or(5055))
        }
        Some("lint") => {
            let tools = tools::ensure(&root)?;
            lint(&root, &tools)
        }
        Some("bench") => bench(&root, &args[1..]),
        Some("lambda") => {
            tools::ensure(&root)?;
            lambda::check(&root)
        }
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}` (`cargo xtask help` lists them)"),
    }
}

/// The whole test suite. Extra arguments go to `cargo test` (e.g. `cargo xtask test -p tern-aws`).
fn test(root: &Path, cargo_args: &[String]) -> Result<()> {
    let tools = tools::ensure(root)?;
    let server = moto::Server::start(&tools)?;
    println!("xtask: moto listening on {}", server.endpoint());

    let mut cargo = Command::new(cargo_bin());
    cargo.current_dir(root).arg("test");
    if cargo_args.is_empty() {
        cargo.arg("--workspace");
    } else {
        cargo.args(cargo_args);
    }
    for (name, value) in server.client_env() {
        cargo.env(name, value);
    }
    cargo
        .env("TERN_TEST_PYTHON", &tools.python)
        .env("TERN_TEST_NODE_MODULES", &tools.node_modules);
    run_checked(&mut cargo, "cargo test")?;
    drop(server);

    if cargo_args.is_empty() {
        lint(root, &tools)?;
    }
    Ok(())
}

/// The benchmarks, by name: which crate's `cargo bench` target, and whether it needs moto.
const BENCHES: &[(&str, &str, &str, bool)] = &[
    // (name, package, bench target, needs moto)
    ("ingest", "tern-cli", "ingest", false),
    ("lambda-ingest", "tern-tests", "lambda_ingest", true),
];

/// Runs the named benchmarks (all when none is named) in release mode; each prints its own figures, which
/// BENCHMARKS.md records with the machine they ran on.
fn bench(root: &Path, names: &[String]) -> Result<()> {
    let chosen: Vec<_> = BENCHES
        .iter()
        .filter(|(name, ..)| names.is_empty() || names.iter().any(|n| n == name))
        .collect();
    if chosen.is_empty() {
        let known: Vec<&str> = BENCHES.iter().map(|(name, ..)| *name).collect();
        bail!("no benchmark named {names:?}; known: {}", known.join(", "));
    }
    let tools = tools::ensure(root)?;
    let moto = if chosen.iter().any(|(.., needs_moto)| *needs_moto) {
        Some(moto::Server::start(&tools)?)
    } else {
        None
    };
    for (name, package, target, _) in chosen {
        println!("xtask: benchmark {name}");
        let mut cargo = Command::new(cargo_bin());
        cargo
            .current_dir(root)
            .args(["bench", "-p", package, "--bench", target]);
        for (variable, value) in moto.iter().flat_map(moto::Server::client_env) {
            cargo.env(variable, value);
        }
        run_checked(&mut cargo, &format!("benchmark {name}"))?;
    }
    Ok(())
}

fn lint(root: &Path, tools: &tools::Tools) -> Result<()> {
    let template = root.join("infra/template.yaml");
    run_checked(
        Command::new(&tools.cfn_lint)
            .arg(&template)
            .current_dir(root),
        "cfn-lint",
    )?;
    println!("xtask: cfn-lint found nothing in {}", template.display());

    let machines = state_machine_files(root)?;
    if !machines.is_empty() {
        let mut validator = Command::new(&tools.asl_validator);
        validator.current_dir(root);
        for machine in &machines {
            validator.arg("--json-path").arg(machine);
        }
        run_checked(&mut validator, "asl-validator")?;
        println!(
            "xtask: asl-validator accepted {} state machine(s)",
            machines.len()
        );
    }
    Ok(())
}

/// The ASL documents under `statemachines/` (JSON only: YAML ones are converted by their tests).
fn state_machine_files(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join("statemachines");
    let mut files = Vec::new();
    if dir.is_dir() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

pub(crate) fn run_checked(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// An error and its causes on one line.
fn one_line(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(|cause| cause.to_string().replace('\n', " "))
        .collect::<Vec<_>>()
        .join(": ")
}
