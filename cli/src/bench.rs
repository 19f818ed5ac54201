//! `hwnas bench`: strategies x seeds against a table, summarised the literature's way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use hwnas_core::bench::{self, BenchSpec, RunOutcome, SummaryRow};
use serde::Serialize;

use crate::sources::TableArgs;
use hwnas_search::plot;

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
    /// Print summary.json's content on standard output instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct RunLine<'a> {
    strategy: &'a str,
    seed: u64,
    #[serde(flatten)]
    record: &'a hwnas_core::Record,
}

/// Runs `hwnas bench`.
pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    if args.seeds == 0 || args.queries == 0 {
        bail!("--seeds and --queries must be at least 1");
    }
    let world = args.data.load()?;
    let checkpoints = if args.checkpoints.is_empty() {
        bench::default_checkpoints(args.queries)
    } else {
        let mut points = args.checkpoints.clone();
        if let Some(bad) = points.iter().find(|&&p| p == 0 || p > args.queries) {
            bail!("--checkpoints: {bad} is outside 1..={}", args.queries);
        }
        points.sort_unstable();
        points.dedup();
        points
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output folder {}", args.out.display()))?;

    let spec = BenchSpec {
        strategies: args.strategies.clone(),
        seeds: args.seeds,
        first_seed: args.first_seed,
        queries: args.queries,
        objective: world.objective,
    };
    let total = (args.strategies.len() * args.seeds) as u64;
    let bar = crate::progress::bar("bench", total);
    let started = std::time::Instant::now();
    let runs = bench::run_bench(
        world.space.as_ref(),
        world.evaluator.as_ref(),
        world.latency.as_deref(),
        &spec,
        &|outcome: &RunOutcome| {
            bar.set_message(format!("{} seed {}", outcome.strategy, outcome.seed));
            bar.inc(1);
        },
    )?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();

    // The target: the best feasible architecture by validation (enumerable spaces only);
    // elsewhere hits are counted against the best any run found.
    let target = world.target_best.clone().unwrap_or_else(|| {
        runs.iter()
            .filter_map(|r| r.history.selected(args.queries))
            .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
            .map(|r| r.arch.clone())
            .unwrap_or_default()
    });
    let rows = bench::summarise(&runs, &world.dataset, &target, &checkpoints);
    let curves = bench::curves(&runs, args.queries);
    write_outputs(&args.out, &runs, &rows, &curves)?;
    let title = format!(
        "{} on {} ({} seeds){}",
        world.space.name(),
        world.dataset,
        args.seeds,
        world
            .latency
            .as_ref()
            .map(|l| format!(", {}", l.name()))
            .unwrap_or_default()
    );
    let reference = world
        .target_best_test
        .map(|t| ("best feasible arch by validation", t));
    plot::curves_svg(&args.out.join("curves.svg"), &title, &curves, reference)?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows, world.target_best_test, world.space.format(&target));
        println!(
            "\n{} runs in {:.1} s; wrote runs.jsonl, summary.json, summary.csv, curves.json, curves.svg to {}",
            runs.len(),
            elapsed.as_secs_f64(),
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn write_outputs(
    out: &Path,
    runs: &[RunOutcome],
    rows: &[SummaryRow],
    curves: &[bench::Curve],
) -> Result<()> {
    let runs_path = out.join("runs.jsonl");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&runs_path)
            .with_context(|| format!("cannot write {}", runs_path.display()))?,
    );
    for run in runs {
        for record in run.history.records() {
            let line = RunLine {
                strategy: &run.strategy,
                seed: run.seed,
                record,
            };
            serde_json::to_writer(&mut file, &line)?;
            file.write_all(b"\n")?;
        }
    }
    file.flush()?;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(rows)?,
    )?;
    let mut csv = csv::Writer::from_path(out.join("summary.csv"))?;
    for row in rows {
        csv.serialize(row)?;
    }
    csv.flush()?;
    std::fs::write(out.join("curves.json"), serde_json::to_string(curves)?)?;
    Ok(())
}

fn print_table(rows: &[SummaryRow], best_test: Option<f64>, target: String) {
    println!(
        "{:<12} {:>7} {:>16} {:>10} {:>9} {:>14} {:>12}",
        "strategy",
        "queries",
        "test acc (%)",
        "val acc",
        "hit rate",
        "median q->best",
        "hypervolume"
    );
    for row in rows {
        println!(
            "{:<12} {:>7} {:>9.2} ± {:<4.2} {:>10.2} {:>9.2} {:>14} {:>12}",
            row.strategy,
            row.queries,
            row.mean_test,
            row.std_test,
            row.mean_val,
            row.hit_rate,
            row.median_queries_to_best
                .map_or("-".to_string(), |m| format!("{m:.0}")),
            row.hypervolume
                .map_or("-".to_string(), |h| format!("{h:.1}"))
        );
    }
    if let Some(best) = best_test {
        println!("\ntarget (best feasible by validation): {target}, test {best:.2}");
    }
}
