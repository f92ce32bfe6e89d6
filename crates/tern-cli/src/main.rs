//! `tern`: run Tern on the embedded engine (`tern up`), administer it (`tern workspace …`) and import
//! profiles into any Tern (`tern import`).
//!
//! Every failure ends the same way: one line on stderr (`error: what: why: cause`) and exit code 1.

mod cli;
mod commands;
mod import;
mod logging;
mod report;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return report::usage_error(&error),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report::failure(&error),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    logging::init(cli.command.default_log_level())?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(commands::run(cli.command, &cli.data_dir))
}
