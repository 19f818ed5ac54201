//! `hwnas`: hardware-aware neural architecture search from the command line.

mod bench;
mod cluster;
mod doctor;
mod eval_cmd;
mod latency_cmds;
mod output;
mod progress;
mod proxies_cmd;
mod search;
mod targets_cmds;
mod train_cmd;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Hardware-aware neural architecture search: find a network that is accurate and fast on
/// your device, with latency measured on the device itself.
#[derive(Debug, Parser)]
#[command(name = "hwnas", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Search for the most accurate network within a latency budget on a target; writes a
    /// run directory with the network as ONNX (the main job).
    Search(search::SearchArgs),
    /// Check what a search needs: ONNX Runtime, wgpu adapters, CPU and memory.
    Doctor(doctor::DoctorArgs),
    /// Compare strategies over many seeds against a benchmark table.
    Bench(bench::BenchArgs),
    /// Training-free proxies on NAS-Bench-201 cells: rank correlation with the table.
    Proxies(proxies_cmd::ProxiesArgs),
    /// A model's accuracy in ONNX Runtime on a data set (check a search's
    /// `best-inherited.onnx` before shipping it).
    Eval(eval_cmd::EvalArgs),
    /// Train an architecture found by a search on your images and write it as ONNX.
    Train(train_cmd::TrainArgs),
    /// Write an architecture as an ONNX model.
    Export(latency_cmds::ExportArgs),
    /// Time an ONNX model with ONNX Runtime on this machine.
    Profile(latency_cmds::ProfileArgs),
    /// Build and evaluate latency lookup tables for this machine.
    #[command(subcommand)]
    Lut(latency_cmds::LutCommand),
    /// Latency predictors: fit a new device from a few measurements.
    #[command(subcommand)]
    Latency(latency_cmds::LatencyCommand),
    /// List and show target devices.
    #[command(subcommand)]
    Targets(targets_cmds::TargetsCommand),
    /// Serve profiling requests from hosts (run this on the edge board).
    Agent(targets_cmds::AgentArgs),
    /// Evaluate one task of a cluster search (what `--executor slurm`'s jobs run).
    Worker(cluster::WorkerArgs),
}

fn main() -> ExitCode {
    prepare_environment();
    let matches = negative_values_allowed(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let search_flags = matches
        .subcommand_matches("search")
        .map(search::given_flags)
        .unwrap_or_default();
    match run(cli, &search_flags) {
        Ok(code) => code,
        // The reader of standard output went away: a normal way for a command to end.
        Err(error) if error.is::<output::ReaderGone>() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", output::describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// Every flag that takes a value accepts one starting with `-` (`--latency-ms -1`), so the
/// value is checked and named instead of being taken for an unknown flag.
fn negative_values_allowed(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| {
            if arg.get_action().takes_values() && !arg.is_positional() {
                arg.allow_negative_numbers(true)
            } else {
                arg
            }
        })
        .mut_subcommands(negative_values_allowed)
}

fn run(cli: Cli, search_flags: &[String]) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Search(args) => search::run(&args, search_flags),
        Command::Doctor(args) => doctor::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Proxies(args) => proxies_cmd::run(&args),
        Command::Eval(args) => eval_cmd::run(&args),
        Command::Train(args) => train_cmd::run(&args),
        Command::Export(args) => latency_cmds::export(&args),
        Command::Profile(args) => latency_cmds::profile_cmd(&args),
        Command::Lut(command) => latency_cmds::lut(&command),
        Command::Latency(command) => latency_cmds::latency(&command),
        Command::Targets(command) => targets_cmds::targets(&command),
        Command::Agent(args) => targets_cmds::agent(&args),
        Command::Worker(args) => cluster::worker(&args),
    }
}

/// Mesa's Vulkan drivers warn on every start when `XDG_RUNTIME_DIR` is unset; give them a
/// private directory before any thread exists.
#[allow(unsafe_code)]
fn prepare_environment() {
    hwnas_core::kernels::cpu::allocator::keep_freed_buffers();
    if let Some(dir) = hwnas_core::kernels::gpu::vulkan_runtime_dir() {
        // SAFETY: called first thing in `main`, before any other thread is started.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}
