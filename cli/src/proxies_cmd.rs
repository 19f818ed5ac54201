//! `hwnas proxies`: training-free proxies on NAS-Bench-201 cells, judged by rank
//! correlation with the table's test accuracy, and a timed zero-cost search.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use hwnas_search::zero_cost::{ProxyPlan, score};

use crate::output::{print, print_json};

/// Options of `hwnas proxies`.
#[derive(Debug, Args)]
pub struct ProxiesArgs {
    /// Search space (nb201).
    #[arg(long, default_value = "nb201")]
    space: String,
    /// Cells sampled from the table (0 beside --whole-space: the whole-space search alone).
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// NAS-Bench-201 table; default: $HWNAS_NB201_TABLE or the shared data.
    #[arg(long, value_name = "FILE")]
    table: Option<PathBuf>,
    /// Dataset columns of the table.
    #[arg(long, default_value = "cifar10")]
    dataset: String,
    /// Images per batch for NASWOT, grad-norm and snip (the reference's: one batch of 64).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Folder with Fashion-MNIST's IDX files (default: Debian's package, or the shared data);
    /// without it NASWOT runs on Gaussian noise and grad-norm / snip are skipped.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Also score every cell of the space with synflow (periodic padding, in closed form) and
    /// time the zero-cost search.
    #[arg(long)]
    whole_space: bool,
    /// Score the cells of NASLib's published zero-cost scores (CSV or CSV.gz, e.g.
    /// ../shared/data/nas-bench-201/naslib_zc_nasbench201_sample.csv.gz) and compare.
    #[arg(long, value_name = "FILE")]
    compare: Option<PathBuf>,
    /// Seeds the sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `hwnas proxies`.
pub fn run(args: &ProxiesArgs) -> Result<ExitCode> {
    let plan = ProxyPlan {
        space: args.space.clone(),
        samples: args.samples,
        table: args.table.clone(),
        dataset: args.dataset.clone(),
        batch: args.batch,
        data: args.data.clone(),
        whole_space: args.whole_space,
        compare: args.compare.clone(),
        seed: args.seed,
    };
    let report = score(&plan, &crate::progress::Bars::new(args.json))?;
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    print(&report.text())?;
    Ok(ExitCode::SUCCESS)
}
