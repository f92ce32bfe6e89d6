//! `cargo xtask lambda`: the health function built for arm64 with cargo-lambda, served by
//! `cargo lambda watch` on loopback and invoked with the API Gateway fixture.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::run_checked;

const CARGO_LAMBDA: &str = "cargo-lambda==1.9.2";
const TARGET: &str = "aarch64-unknown-linux-gnu";
const INVOKE_PORT: u16 = 9137;
const FIXTURE: &str = "events/apigw-v2-health.json";

pub fn check(root: &Path) -> Result<()> {
    let venv = root.join(".tern-tools/venv");
    let cargo_lambda = venv.join("bin/cargo-lambda");
    if !cargo_lambda.exists() {
        run_checked(
            Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                CARGO_LAMBDA,
            ]),
            "pip install cargo-lambda",
        )?;
    }
    run_checked(
        Command::new("rustup")
            .args(["target", "add", TARGET])
            .current_dir(root),
        "rustup target add",
    )?;
    // cargo-lambda finds zig on PATH; the virtual environment's bin holds both.
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run_checked(
        Command::new(&cargo_lambda)
            .args(["lambda", "build", "--release", "--arm64", "-p", "health"])
            .env("PATH", &path)
            .current_dir(root),
        "cargo lambda build --release --arm64",
    )?;
    println!("xtask: built target/lambda/health/bootstrap for arm64");

    let watcher = Watcher::start(&cargo_lambda, &path, root)?;
    let output = Command::new(&cargo_lambda)
        .args([
            "lambda",
            "invoke",
            "health",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(INVOKE_PORT.to_string())
        .args(["--data-file", FIXTURE])
        .env("PATH", &path)
        .current_dir(root)
        .output()
        .context("cannot run cargo lambda invoke")?;
    drop(watcher);
    let answer = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !answer.contains("\"statusCode\":200") {
        bail!(
            "cargo lambda invoke answered {answer} {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    println!(
        "xtask: cargo lambda invoke health answered {}",
        answer.trim()
    );
    Ok(())
}

/// `cargo lambda watch` on loopback, stopped when dropped.
struct Watcher(Child);

impl Watcher {
    fn start(cargo_lambda: &Path, path: &str, root: &Path) -> Result<Self> {
        let child = Command::new(cargo_lambda)
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
            ])
            .arg(INVOKE_PORT.to_string())
            .args(["-p", "health"])
            .env("PATH", path)
            .current_dir(root)
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start cargo lambda watch")?;
        let watcher = Self(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", INVOKE_PORT)).is_err() {
            if started.elapsed() > Duration::from_secs(600) {
                bail!("cargo lambda watch did not listen on port {INVOKE_PORT}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(watcher)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Err(error) = self.0.kill() {
            eprintln!("xtask: stopping cargo lambda watch: {error}");
        }
        if let Err(error) = self.0.wait() {
            eprintln!("xtask: waiting for cargo lambda watch: {error}");
        }
    }
}
