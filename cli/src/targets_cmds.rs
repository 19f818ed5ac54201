//! `hwnas agent` and `hwnas targets list|show`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use hwnas_latency::runtime::OrtRuntime;
use hwnas_latency::wire::OrtProfiler;
use hwnas_targets::agent::{AgentConfig, bind, serve};
use hwnas_targets::description::{self, read_token};

use crate::output::print;

/// Options of `hwnas agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Address to listen on, e.g. 0.0.0.0:7878 (loopback only without --token-file).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: String,
    /// File holding the shared token (any bytes; trailing whitespace is ignored).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Largest model accepted, in MiB.
    #[arg(long, default_value_t = 256)]
    max_model_mib: usize,
}

/// Runs `hwnas agent` (until killed).
pub fn agent(args: &AgentArgs) -> Result<ExitCode> {
    if args.max_model_mib >= 4096 {
        bail!(
            "--max-model-mib {}: frames carry at most 4 GiB; give 0 to 4095",
            args.max_model_mib
        );
    }
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    let runtime = OrtRuntime::load()?;
    let listener = bind(&args.listen, token.as_deref())?;
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| args.listen.clone());
    if token.is_none() {
        eprintln!(
            "hwnas agent: no --token-file, so serving loopback only; give a token file to serve other machines"
        );
    }
    eprintln!(
        "hwnas agent: listening on {address}; ONNX Runtime {} at {}; one job at a time",
        runtime.version,
        runtime.path.display()
    );
    let config = AgentConfig {
        token,
        max_frame: args.max_model_mib << 20,
        ..AgentConfig::default()
    };
    let log = Box::new(|line: &str| eprintln!("hwnas agent: {line}"));
    serve(listener, config, Arc::new(OrtProfiler), log)?;
    Ok(ExitCode::SUCCESS)
}

/// `hwnas targets` subcommands.
#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// List the built-in `host` and the targets in the targets folder.
    List,
    /// Show one target's settings.
    Show {
        /// A name from `targets list`, or a TOML file.
        name: String,
    },
}

/// Runs `hwnas targets ...`.
pub fn targets(command: &TargetsCommand) -> Result<ExitCode> {
    match command {
        TargetsCommand::List => {
            let (text, failed) = description::listing();
            print(&text)?;
            Ok(ExitCode::from(u8::from(failed)))
        }
        TargetsCommand::Show { name } => {
            let target = description::find(name)?;
            print(&target.to_toml_text()?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
