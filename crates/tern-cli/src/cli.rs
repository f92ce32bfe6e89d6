//! The command line: every command, argument and environment variable, with its help text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tern",
    version,
    about = "Tern: customer engagement (events, segments, journeys, email) on your own infrastructure",
    long_about = "Tern: customer engagement (events, segments, journeys, email) on your own infrastructure.\n\n\
                  These commands run Tern on the embedded engine: one process, with all data in one directory."
)]
pub struct Cli {
    /// The directory holding the embedded engine's data (database, blobs, outbox, secret).
    #[arg(
        long,
        global = true,
        env = "TERN_DATA_DIR",
        default_value = ".tern",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Tern locally: the HTTP API, the queue workers and the workflow engine, until Ctrl-C.
    ///
    /// On first start it creates a workspace named `default` and prints its keys once.
    Up(UpArgs),
    /// Create and list workspaces.
    // A missing subcommand is a one-line usage error like any other, not a page of help.
    #[command(subcommand, arg_required_else_help = false)]
    Workspace(WorkspaceCommand),
    /// Import profiles from a CSV file into a running Tern, with a progress bar.
    ///
    /// The first row names the columns: userId (or user_id, id), email and anonymousId identify the
    /// profile; every other column is a trait. See docs/imports.md.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The address to listen on.
    #[arg(long, env = "TERN_ADDR", default_value = tern_local::DEFAULT_ADDR)]
    pub addr: SocketAddr,

    /// Allow listening on an address other than loopback. The local server speaks plain HTTP: only do this
    /// on a network you trust.
    #[arg(long)]
    pub allow_non_loopback: bool,

    /// The URL clients reach this server at (for upload links); defaults to http://<the bound address>.
    #[arg(long, env = "TERN_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// An SMTP server that receives a copy of every email sent, e.g. smtp://127.0.0.1:2525 (a mail catcher).
    #[arg(long, env = "TERN_SMTP_RELAY", value_name = "URL")]
    pub smtp_relay: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file to import.
    pub file: PathBuf,

    /// The base URL of Tern's API: `tern up`'s address, or a deployed stack's API URL.
    #[arg(long, env = "TERN_URL", default_value = DEFAULT_URL, value_name = "URL")]
    pub url: String,

    /// The workspace's admin key (ta_…).
    #[arg(
        long,
        env = "TERN_ADMIN_KEY",
        hide_env_values = true,
        value_name = "ADMIN_KEY"
    )]
    pub key: Option<String>,
}

/// Where `tern import` finds Tern unless told otherwise: `tern up` on its default address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:3000";

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace and print its id, write key and admin key (shown only this once).
    Create {
        /// The workspace's name.
        name: String,
        /// Print `{"workspace_id":…,"write_key":…,"admin_key":…}` on one line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List every workspace, oldest first.
    List {
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// `up` reports what it does; the admin commands speak only when something is wrong.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Up(_) => "info",
            Command::Workspace(_) | Command::Import(_) => "warn",
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn data_dir_defaults_to_dot_tern_and_is_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from(["tern", "workspace", "list"]).unwrap();
        assert_eq!(cli.data_dir, PathBuf::from(".tern"));
        let cli = Cli::try_parse_from([
            "tern",
            "workspace",
            "create",
            "Acme",
            "--data-dir",
            "/tmp/x",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.data_dir, PathBuf::from("/tmp/x"));
        assert!(
            matches!(cli.command, Command::Workspace(WorkspaceCommand::Create { ref name, json: true }) if name == "Acme")
        );
    }

    #[test]
    fn up_defaults_to_loopback_port_3000() {
        let cli = Cli::try_parse_from(["tern", "up"]).unwrap();
        let Command::Up(args) = cli.command else {
            panic!("expected up")
        };
        assert_eq!(args.addr, "127.0.0.1:3000".parse().unwrap());
        assert!(!args.allow_non_loopback);
    }

    #[test]
    fn import_takes_a_file_and_defaults_to_the_local_server() {
        let cli = Cli::try_parse_from(["tern", "import", "people.csv"]).unwrap();
        let Command::Import(args) = cli.command else {
            panic!("expected import")
        };
        assert_eq!(args.file, PathBuf::from("people.csv"));
        assert_eq!(args.url, DEFAULT_URL);
        let cli = Cli::try_parse_from([
            "tern",
            "import",
            "p.csv",
            "--url",
            "https://x.example",
            "--key",
            "ta_1",
        ])
        .unwrap();
        let Command::Import(args) = cli.command else {
            panic!("expected import")
        };
        assert_eq!(
            (args.url.as_str(), args.key.as_deref()),
            ("https://x.example", Some("ta_1"))
        );
    }

    #[test]
    fn an_empty_data_dir_is_refused() {
        let error =
            Cli::try_parse_from(["tern", "--data-dir", "", "workspace", "list"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
    }
}
