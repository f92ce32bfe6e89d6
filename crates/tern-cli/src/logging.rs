//! Logs go to stderr through `tracing`: human-readable by default (coloured on a terminal), one JSON object
//! per line when `TERN_LOG_FORMAT=json`. `RUST_LOG` overrides the level.

use std::io::IsTerminal;

use anyhow::bail;
use tracing_subscriber::EnvFilter;

pub const FORMAT_VARIABLE: &str = "TERN_LOG_FORMAT";

pub fn init(default_level: &str) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var(FORMAT_VARIABLE).unwrap_or_default();
    let installed = match format.as_str() {
        "json" => builder.json().try_init(),
        "" | "text" => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        other => bail!("{FORMAT_VARIABLE} must be `json` or `text`, not `{other}`"),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
