//! `hwnas agent`, `hwnas targets list|show`, and profiling through a target's agents.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use hwnas_latency::profile::{Fingerprint, Measurement, Protocol, Stats, profile};
use hwnas_latency::runtime::OrtRuntime;
use hwnas_targets::agent::{AgentConfig, Profiler, bind, serve};
use hwnas_targets::client::{FleetResult, profile_fleet};
use hwnas_targets::description::{self, Target, TargetKind, read_token};
use hwnas_targets::protocol::{WireFingerprint, WireProtocol, WireStats};

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

fn wire_fingerprint(f: &Fingerprint) -> WireFingerprint {
    WireFingerprint {
        ort_version: f.ort_version.clone(),
        execution_provider: f.execution_provider.clone(),
        cpu_model: f.cpu_model.clone(),
        cores: f.cores as u32,
        threads: f.threads as u32,
        governor: f.governor.clone(),
        arch: f.arch.clone(),
    }
}

struct OrtProfiler;

impl Profiler for OrtProfiler {
    fn fingerprint(&self, threads: u32) -> WireFingerprint {
        match OrtRuntime::load() {
            Ok(runtime) => wire_fingerprint(&Fingerprint::local(runtime, threads as usize)),
            Err(e) => WireFingerprint {
                ort_version: format!("unavailable: {e}"),
                execution_provider: String::new(),
                cpu_model: String::new(),
                cores: 0,
                threads,
                governor: None,
                arch: std::env::consts::ARCH.into(),
            },
        }
    }

    fn profile(
        &self,
        model: &[u8],
        p: &WireProtocol,
    ) -> std::result::Result<(WireStats, WireFingerprint), String> {
        let protocol = Protocol {
            warmup: p.warmup as usize,
            min_runs: p.min_runs as usize,
            max_runs: p.max_runs as usize,
            rel_ci: p.rel_ci,
            max_seconds: p.max_seconds,
            threads: p.threads as usize,
        };
        let m = profile(model, &protocol).map_err(|e| e.to_string())?;
        let s = m.stats;
        let stats = WireStats {
            median_ms: s.median_ms,
            p10_ms: s.p10_ms,
            p90_ms: s.p90_ms,
            mean_ms: s.mean_ms,
            std_ms: s.std_ms,
            runs: s.runs as u32,
            median_rel_ci: s.median_rel_ci,
        };
        Ok((stats, wire_fingerprint(&m.fingerprint)))
    }
}

/// Runs `hwnas agent` (until killed).
pub fn agent(args: &AgentArgs) -> Result<ExitCode> {
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
            println!("targets folder: {}", description::targets_dir().display());
            let mut failed = false;
            for target in description::list() {
                match target {
                    Ok(t) => println!(
                        "  {:<16} {:<6} {}",
                        t.name,
                        format!("{:?}", t.kind).to_lowercase(),
                        where_it_is(&t)
                    ),
                    Err(e) => {
                        failed = true;
                        println!("  (error) {e}");
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        TargetsCommand::Show { name } => {
            let target = description::find(name)?;
            println!("{}", toml_text(&target)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn where_it_is(t: &Target) -> String {
    match t.kind {
        TargetKind::Local => "this machine (ONNX Runtime)".into(),
        TargetKind::Agent => t.agents.join(", "),
        TargetKind::Table => t.table.clone().unwrap_or_default(),
    }
}

fn toml_text(t: &Target) -> Result<String> {
    let mut text = format!(
        "# {}\n",
        t.source
            .as_ref()
            .map_or("built-in".to_string(), |p| p.display().to_string())
    );
    text.push_str(&toml::to_string(t).context("printing the target")?);
    Ok(text)
}

/// Profiles one model through a target file's agents; the measurement and the agent.
pub fn profile_through(
    target_file: &str,
    model: &[u8],
    threads_override: Option<usize>,
) -> Result<(Measurement, String)> {
    let target = description::find(target_file)?;
    if target.kind != TargetKind::Agent {
        bail!(
            "--target {target_file}: `{}` is a {:?} target; profiling through a target needs kind = \"agent\"",
            target.name,
            target.kind
        );
    }
    let token = target.token()?;
    let mut protocol = target.wire_protocol();
    if let Some(threads) = threads_override {
        protocol.threads = threads as u32;
    }
    let log = |line: &str| eprintln!("{line}");
    let results = profile_fleet(
        &target.agents,
        &token,
        &[model.to_vec()],
        &protocol,
        Duration::from_secs(600),
        &log,
    )?;
    let FleetResult { agent, outcome } = results.into_iter().next().context("one result")?;
    let (s, f) = outcome
        .map_err(|reason| anyhow::anyhow!("agent {agent} could not profile the model: {reason}"))?;
    let measurement = Measurement {
        stats: Stats {
            median_ms: s.median_ms,
            p10_ms: s.p10_ms,
            p90_ms: s.p90_ms,
            mean_ms: s.mean_ms,
            std_ms: s.std_ms,
            runs: s.runs as usize,
            median_rel_ci: s.median_rel_ci,
        },
        fingerprint: Fingerprint {
            ort_version: f.ort_version,
            execution_provider: f.execution_provider,
            cpu_model: f.cpu_model,
            cores: f.cores as usize,
            threads: f.threads as usize,
            governor: f.governor,
            arch: f.arch,
        },
    };
    Ok((measurement, agent))
}
