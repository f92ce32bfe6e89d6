//! A moto server on a free loopback port, for the AWS side of the contract suites.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::tools::Tools;

/// Switches on moto's Step Functions interpreter, so executions really run.
const CONFIG: &str = r#"{"stepfunctions":{"execute_state_machine":true}}"#;

/// A running moto server, stopped when dropped.
pub struct Server {
    child: Child,
    port: u16,
}

impl Server {
    pub fn start(tools: &Tools) -> Result<Self> {
        let port = free_port()?;
        let child = Command::new(&tools.moto_server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", tools.moto_server.display()))?;
        let server = Self { child, port };
        server.wait_until_listening(Duration::from_secs(60))?;
        configure(port)?;
        Ok(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What a test process needs to reach this server and nothing else.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TERN_TEST_AWS_ENDPOINT", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    fn wait_until_listening(&self, limit: Duration) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "moto did not start listening on port {} within {limit:?}",
            self.port
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The server may already have exited; either way nothing is left running.
        if let Err(error) = self.child.kill() {
            eprintln!("xtask: stopping moto: {error}");
        }
        if let Err(error) = self.child.wait() {
            eprintln!("xtask: waiting for moto: {error}");
        }
    }
}

/// Runs moto in the foreground until interrupted.
pub fn run_foreground(tools: &Tools, port: u16) -> Result<()> {
    let mut child = Command::new(&tools.moto_server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .spawn()
        .with_context(|| format!("cannot start {}", tools.moto_server.display()))?;
    let server_ready = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if server_ready.elapsed() > Duration::from_secs(60) {
            bail!("moto did not start listening on port {port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    configure(port)?;
    println!(
        "xtask: moto on http://127.0.0.1:{port} — export TERN_TEST_AWS_ENDPOINT=http://127.0.0.1:{port}"
    );
    let status = child.wait()?;
    if !status.success() {
        bail!("moto exited with {status}");
    }
    Ok(())
}

/// A port the kernel just handed out, released for moto to bind.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// POSTs the configuration to moto's API; a plain HTTP/1.1 exchange keeps xtask free of an HTTP client.
fn configure(port: u16) -> Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context("cannot reach moto")?;
    let request = format!(
        "POST /moto-api/config HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{CONFIG}",
        CONFIG.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status_line = response.lines().next().unwrap_or_default();
    if !status_line.contains(" 20") {
        bail!("moto refused its configuration: {status_line}");
    }
    Ok(())
}
