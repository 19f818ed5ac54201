//! Who evaluates a search's proposals (`--executor`, `--jobs`, `--slurm-*`), and
//! `hwnas worker`, the command a cluster's tasks run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use hwnas_search::executor::ExecutorSettings;
use hwnas_search::slurm::SlurmSettings;
use hwnas_targets::description::ClusterSettings;

/// How a search's evaluations run (never what it answers).
#[derive(Debug, Clone, Args)]
pub struct ExecutorArgs {
    /// `local` (this machine, `--jobs` at a time) or `slurm` (each batch of proposals one
    /// Slurm job array of `hwnas worker` tasks; the run directory must be on a filesystem
    /// every node sees). Not stored: give it again with `--resume`.
    #[arg(long, default_value = "local")]
    executor: String,
    /// Evaluations at a time on this machine (`--executor local`).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Slurm partition of the tasks.
    #[arg(long, value_name = "NAME")]
    slurm_partition: Option<String>,
    /// Slurm time limit per task (`30`, `01:00:00`).
    #[arg(long, value_name = "TIME")]
    slurm_time: Option<String>,
    /// CPUs per task (also the worker's kernel threads).
    #[arg(long, value_name = "N")]
    slurm_cpus: Option<usize>,
    /// Generic resources per task, e.g. `gpu:1`.
    #[arg(long, value_name = "GRES")]
    slurm_gres: Option<String>,
    /// More `sbatch` options, each as given (repeatable): `--slurm-option=--account=lab`.
    #[arg(long = "slurm-option", value_name = "OPTION")]
    slurm_options: Vec<String>,
    /// Seconds between looks at the Slurm queue.
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    slurm_poll: f64,
}

impl ExecutorArgs {
    /// The settings these flags describe; the cluster's tasks run this very binary.
    pub fn settings(&self) -> Result<ExecutorSettings> {
        Ok(ExecutorSettings {
            kind: crate::search::typed("executor", &self.executor)?,
            jobs: self.jobs,
            slurm: SlurmSettings {
                sbatch: ClusterSettings {
                    partition: self.slurm_partition.clone(),
                    time: self.slurm_time.clone(),
                    cpus: self.slurm_cpus,
                    gres: self.slurm_gres.clone(),
                    options: self.slurm_options.clone(),
                },
                poll_seconds: Some(self.slurm_poll),
            },
            worker_binary: Some(std::env::current_exe().context("locating the hwnas binary")?),
        })
    }
}

/// Options of `hwnas worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The run directory of the search that submitted the task.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// The task (the Slurm array index, `$SLURM_ARRAY_TASK_ID`).
    #[arg(long, value_name = "I")]
    task: usize,
}

/// Runs `hwnas worker`: evaluates one task and writes its result into the run directory.
pub fn worker(args: &WorkerArgs) -> Result<ExitCode> {
    let result = hwnas_search::worker::run_task(&args.run, args.task, &hwnas_search::Quiet)?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(ExitCode::SUCCESS)
}
