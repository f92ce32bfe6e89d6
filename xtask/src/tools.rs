//! The test tools, installed from the package registries into `.tern-tools/` on first use: a Python
//! virtual environment with moto and cfn-lint, and asl-validator from npm. Versions are pinned here so
//! every machine tests against the same emulator.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::run_checked;

/// What pip installs. Changing this list reinstalls on the next run.
const PYTHON_REQUIREMENTS: &[&str] = &["moto[server]==5.2.5", "cfn-lint==1.58.0", "duckdb==2.0.0"];
/// What npm installs.
const NODE_REQUIREMENTS: &[&str] = &[
    "asl-validator@4.0.0",
    // The official tracking SDKs, which the compatibility tests point at a local Tern.
    "@segment/analytics-node@3.1.0",
    "@rudderstack/rudder-sdk-node@3.0.13",
];

pub struct Tools {
    /// The virtual environment's Python, with duckdb for reading the lake in tests.
    pub python: PathBuf,
    /// The `node_modules` directory holding the tracking SDKs.
    pub node_modules: PathBuf,
    pub moto_server: PathBuf,
    pub cfn_lint: PathBuf,
    pub asl_validator: PathBuf,
}

/// Installs the tools when missing or when the pinned versions changed.
pub fn ensure(root: &Path) -> Result<Tools> {
    let home = root.join(".tern-tools");
    std::fs::create_dir_all(&home).with_context(|| format!("cannot create {}", home.display()))?;
    let venv = home.join("venv");
    let node = home.join("node");
    let tools = Tools {
        python: venv.join("bin/python"),
        node_modules: node.join("node_modules"),
        moto_server: venv.join("bin/moto_server"),
        cfn_lint: venv.join("bin/cfn-lint"),
        asl_validator: node.join("node_modules/.bin/asl-validator"),
    };
    let wanted = format!(
        "{}\n{}\n",
        PYTHON_REQUIREMENTS.join(" "),
        NODE_REQUIREMENTS.join(" ")
    );
    let stamp = home.join("installed.txt");
    let installed = std::fs::read_to_string(&stamp).unwrap_or_default();
    let complete = [&tools.moto_server, &tools.cfn_lint, &tools.asl_validator]
        .iter()
        .all(|p| p.exists());
    if installed == wanted && complete {
        return Ok(tools);
    }

    println!("xtask: installing test tools into {}", home.display());
    if !venv.join("bin/pip").exists() {
        run_checked(
            Command::new(python()).args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
    }
    run_checked(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PYTHON_REQUIREMENTS),
        "pip install",
    )?;
    std::fs::create_dir_all(&node)?;
    run_checked(
        Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&node)
            .args(NODE_REQUIREMENTS),
        "npm install",
    )?;
    std::fs::write(&stamp, wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(tools)
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}
