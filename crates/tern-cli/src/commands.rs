//! What each command does, on the embedded engine.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use tern_domain::{CreatedWorkspace, Workspace};
use tern_local::{Engine, EngineOptions, LocalError, ServeOptions, Server};

use crate::cli::{Command, UpArgs, WorkspaceCommand};

/// The name of the workspace `tern up` creates when there is none.
const DEFAULT_WORKSPACE: &str = "default";

pub async fn run(command: Command, data_dir: &Path) -> anyhow::Result<()> {
    match command {
        Command::Up(args) => up(args, data_dir).await,
        Command::Workspace(WorkspaceCommand::Create { name, json }) => {
            create_workspace(data_dir, &name, json).await
        }
        Command::Workspace(WorkspaceCommand::List { json }) => {
            list_workspaces(data_dir, json).await
        }
        Command::Import(args) => crate::import::run(args).await,
    }
}

async fn up(args: UpArgs, data_dir: &Path) -> anyhow::Result<()> {
    // Bind before anything is created, so that a busy port fails before the first workspace's keys are shown.
    let options = ServeOptions {
        allow_non_loopback: args.allow_non_loopback,
        ..ServeOptions::default()
    };
    let server = Server::bind(args.addr, options).await.map_err(|error| match error {
        LocalError::NonLoopback { addr } => anyhow::anyhow!(
            "refusing to listen on {addr}: it is not a loopback address, and the local server has no TLS; \
             pass --allow-non-loopback to listen there anyway"
        ),
        other => other.into(),
    })?;
    let addr = server.local_addr()?;
    let base_url = format!("http://{addr}");
    let engine_options = EngineOptions {
        public_url: args.public_url.unwrap_or_else(|| base_url.clone()),
        smtp_relay: args.smtp_relay,
        ..EngineOptions::default()
    };
    let engine = Engine::open(data_dir, engine_options).await?;
    let table = engine.ports().table.clone();

    if tern_domain::list_workspaces(table.as_ref())
        .await?
        .is_empty()
    {
        let created = tern_domain::create_workspace(
            table.as_ref(),
            engine.ports().clock.as_ref(),
            DEFAULT_WORKSPACE,
        )
        .await
        .context("cannot create the default workspace")?;
        print_created(&created);
    }
    println!("Data directory: {}", data_dir.display());
    println!("Listening on {base_url}");
    println!("Try: curl {base_url}/health");
    tracing::info!(%addr, data_dir = %data_dir.display(), "listening");
    server.run(engine, tern_local::shutdown_signal()).await?;
    Ok(())
}

async fn create_workspace(data_dir: &Path, name: &str, json: bool) -> anyhow::Result<()> {
    let engine = open(data_dir).await?;
    let ports = engine.ports();
    let created = tern_domain::create_workspace(ports.table.as_ref(), ports.clock.as_ref(), name)
        .await
        .context("cannot create the workspace")?;
    if json {
        println!("{}", serde_json::to_string(&CreatedJson::from(&created))?);
    } else {
        print_created(&created);
    }
    Ok(())
}

async fn list_workspaces(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let engine = open(data_dir).await?;
    let workspaces = tern_domain::list_workspaces(engine.ports().table.as_ref())
        .await
        .context("cannot list the workspaces")?;
    if json {
        println!("{}", serde_json::to_string(&workspaces)?);
    } else {
        print_table(&workspaces);
    }
    Ok(())
}

async fn open(data_dir: &Path) -> anyhow::Result<Engine> {
    Ok(Engine::open(data_dir, EngineOptions::default()).await?)
}

/// The machine-readable result of `workspace create --json`, fields in this order.
#[derive(Serialize)]
struct CreatedJson<'a> {
    workspace_id: &'a str,
    write_key: &'a str,
    admin_key: &'a str,
}

impl<'a> From<&'a CreatedWorkspace> for CreatedJson<'a> {
    fn from(created: &'a CreatedWorkspace) -> Self {
        Self {
            workspace_id: &created.workspace.id,
            write_key: created.write_key.expose(),
            admin_key: created.admin_key.expose(),
        }
    }
}

fn print_created(created: &CreatedWorkspace) {
    println!(
        "Created workspace {:?} ({})",
        created.workspace.name, created.workspace.id
    );
    println!("  write key: {}", created.write_key.expose());
    println!("  admin key: {}", created.admin_key.expose());
    println!("Keep these keys now: only their hashes are stored, so they cannot be shown again.");
}

fn print_table(workspaces: &[Workspace]) {
    if workspaces.is_empty() {
        println!("No workspaces yet. Create one with: tern workspace create NAME");
        return;
    }
    let id_width = workspaces
        .iter()
        .map(|w| w.id.len())
        .max()
        .unwrap_or(0)
        .max("ID".len());
    let name_width = workspaces
        .iter()
        .map(|w| w.name.chars().count())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    println!("{:id_width$}  {:name_width$}  CREATED", "ID", "NAME");
    for workspace in workspaces {
        let created = workspace.created_at.strftime("%Y-%m-%d %H:%M:%S UTC");
        println!(
            "{:id_width$}  {:name_width$}  {created}",
            workspace.id, workspace.name
        );
    }
}
