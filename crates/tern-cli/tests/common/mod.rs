//! What the tests of the `tern` binary share: the command with a clean environment, and a running `tern up`.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long `tern up` may take to print that it listens.
const STARTUP: Duration = Duration::from_secs(30);

/// The `tern` binary, blind to the settings the developer's environment may hold.
pub fn tern() -> Command {
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

/// [`tern`] on the data directory `data_dir`.
pub fn tern_in(data_dir: &Path) -> Command {
    let mut command = tern();
    command.arg("--data-dir").arg(data_dir);
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("the tern binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// A running `tern up` on a free loopback port, killed when dropped so that a failed test leaves no process
/// behind.
pub struct Up {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Collects stderr as it comes, so the server never blocks on a full pipe.
    stderr: Option<JoinHandle<String>>,
    /// Everything printed before the "Listening on" line.
    pub banner: Vec<String>,
    pub base_url: String,
}

impl Up {
    /// Starts `tern up` on `data_dir` (with `TERN_LOG_FORMAT` set when `log_format` is given) and waits until
    /// it says where it listens.
    pub fn start(data_dir: &Path, log_format: Option<&str>) -> Up {
        let mut command = tern_in(data_dir);
        command
            .args(["up", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(format) = log_format {
            command.env("TERN_LOG_FORMAT", format);
        }
        let mut child = command.spawn().expect("tern up starts");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        // The guard owns the child before anything can fail, so a failed start still kills it.
        let mut up = Up {
            child,
            lines,
            stderr: Some(stderr),
            banner: Vec::new(),
            base_url: String::new(),
        };
        loop {
            let line = up
                .lines
                .recv_timeout(STARTUP)
                .expect("tern up prints where it listens");
            if let Some(url) = line.strip_prefix("Listening on ") {
                up.base_url = url.trim().to_string();
                return up;
            }
            up.banner.push(line);
        }
    }

    /// The admin key of the default workspace, which only the first start on a data directory prints.
    pub fn admin_key(&self) -> Option<String> {
        self.banner
            .iter()
            .find_map(|line| line.trim().strip_prefix("admin key: ").map(str::to_string))
    }

    /// Sends SIGTERM and returns the exit status and everything written to stderr.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(signalled.success());
        let status = self.child.wait().unwrap();
        let stderr = self
            .stderr
            .take()
            .unwrap()
            .join()
            .expect("the stderr reader ends");
        // Drain what stdout still holds, so the reader thread ends.
        while self.lines.recv_timeout(Duration::from_millis(10)).is_ok() {}
        (status, stderr)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // Already exited after `terminate`; otherwise this is the hard stop the test wants.
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().expect("kill tern up");
            self.child.wait().expect("reap tern up");
        }
    }
}
