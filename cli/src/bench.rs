//! `hwnas bench`: strategies x seeds against a table, summarised the literature's way.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use hwnas_search::benchmarks::{self, BenchPlan};
use hwnas_search::tables::{TablePlan, TableWorld};

use crate::output::{print, print_json};
use crate::say;

/// Options of `hwnas bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    data: TableArgs,
    /// Comma-separated strategies to compare.
    #[arg(long, default_value = "random,rea,reinforce", value_delimiter = ',')]
    strategies: Vec<String>,
    /// Runs per strategy (seeds first-seed, first-seed + 1, ...).
    #[arg(long, default_value_t = 20)]
    seeds: usize,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Distinct architectures each run may evaluate.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Budget checkpoints to summarise (default: 10, 25, 50, 100, 150, 200, 300, ... up to
    /// --queries).
    #[arg(long, value_delimiter = ',')]
    checkpoints: Vec<usize>,
    /// Folder for runs.jsonl, summary.json, summary.csv, curves.json and curves.svg.
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,
    /// Spend queries on proposals over the latency budget too (by default they are drawn
    /// again first, where the latency is a table's).
    #[arg(long)]
    no_screen: bool,
    /// Proposals asked for and answered per round; L2NAS and GA-NAS learn once per round,
    /// so with a predictor's cheap queries a larger round buys more queries per second.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Print summary.json's content on standard output instead of the table.
    #[arg(long)]
    json: bool,
}

/// Runs `hwnas bench`.
pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    let world = args.data.load()?;
    let plan = BenchPlan {
        strategies: args.strategies.clone(),
        seeds: args.seeds,
        first_seed: args.first_seed,
        queries: args.queries,
        checkpoints: args.checkpoints.clone(),
        screen_infeasible: !args.no_screen,
        batch: args.batch,
    };
    let result = benchmarks::run(
        &plan,
        &world,
        &args.out,
        &crate::progress::Bars::new(args.json),
    )?;
    if args.json {
        print_json(&result.rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let target = world.space.format(&result.target);
    let mut text = benchmarks::table_text(&result.rows, world.target_best_test, &target);
    say!(
        text,
        "\n{} runs in {:.1} s; wrote runs.jsonl, summary.json, summary.csv, curves.json, curves.svg to {}",
        result.runs.len(),
        result.seconds,
        args.out.display()
    );
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Flags naming the benchmark data a table-backed run reads.
#[derive(Debug, Clone, Args)]
pub struct TableArgs {
    /// Search space: nb201 (NAS-Bench-201 table) or ofa-mbv3 (Once-for-All predictor).
    #[arg(long, default_value = "nb201")]
    pub space: String,
    /// NAS-Bench-201 table (CSV or CSV.gz); default: $HWNAS_NB201_TABLE or the shared data.
    #[arg(long, value_name = "FILE")]
    pub table: Option<PathBuf>,
    /// Dataset columns of the table to use: searches on NAME_val_12ep, reports NAME_test_200ep.
    #[arg(long, default_value = "cifar10", value_name = "NAME")]
    pub dataset: String,
    /// Folder with Once-for-All's predictor and Note10 lookup tables; default:
    /// $HWNAS_OFA_DIR or the shared data.
    #[arg(long, value_name = "DIR")]
    pub ofa_dir: Option<PathBuf>,
    /// Latency target: table:DEVICE (a NAS-Bench-201 device column such as table:pixel3,
    /// or table:note10 for Once-for-All).
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Latency budget in milliseconds: architectures over it are never the answer
    /// (the constrained reward).
    #[arg(long, value_name = "MS", conflicts_with = "latency_weight")]
    pub latency_ms: Option<f64>,
    /// MONAS's weighted reward instead: accuracy minus this many points per millisecond.
    #[arg(long, value_name = "POINTS_PER_MS")]
    pub latency_weight: Option<f64>,
}

impl TableArgs {
    /// Loads the data the flags name.
    pub fn load(&self) -> Result<TableWorld> {
        let plan = TablePlan {
            table: self.table.clone(),
            dataset: self.dataset.clone(),
            ofa_dir: self.ofa_dir.clone(),
            latency_ms: self.latency_ms,
            latency_weight: self.latency_weight,
            ..TablePlan::from_flags(&self.space, self.target.as_deref())?
        };
        Ok(plan.load()?)
    }
}
