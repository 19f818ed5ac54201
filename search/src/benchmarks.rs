//! Strategies compared over many seeds on a table-backed world (`hwnas bench`): the runs,
//! the literature's summary, the curves, and the files they are written to.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use hwnas_core::bench::{self, BenchSpec, Curve, RunOutcome, SummaryRow};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::observer::Observer;
use crate::tables::TableWorld;

/// What to compare.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// The strategies.
    pub strategies: Vec<String>,
    /// Runs per strategy.
    pub seeds: usize,
    /// The first seed.
    pub first_seed: u64,
    /// Distinct architectures each run may evaluate.
    pub queries: usize,
    /// Budget checkpoints to summarise (empty: the defaults up to `queries`).
    pub checkpoints: Vec<usize>,
    /// Whether proposals over the latency budget are drawn again before a query (the
    /// default; `false` to see what the screen is worth).
    pub screen_infeasible: bool,
    /// Proposals per round: learning strategies learn once per round (1: one at a time).
    pub batch: usize,
}

/// What a benchmark found.
pub struct BenchResult {
    /// Every run.
    pub runs: Vec<RunOutcome>,
    /// One row per strategy and checkpoint.
    pub rows: Vec<SummaryRow>,
    /// Mean curves.
    pub curves: Vec<Curve>,
    /// The architecture hits are counted against.
    pub target: hwnas_core::Arch,
    /// Seconds the runs took.
    pub seconds: f64,
}

#[derive(Serialize)]
struct RunLine<'a> {
    strategy: &'a str,
    seed: u64,
    #[serde(flatten)]
    record: &'a hwnas_core::Record,
}

/// Runs the plan on `world` and writes runs.jsonl, summary.json, summary.csv, curves.json
/// and curves.svg into `out`.
pub fn run(
    plan: &BenchPlan,
    world: &TableWorld,
    out: &Path,
    observer: &dyn Observer,
) -> Result<BenchResult> {
    if plan.seeds == 0 {
        return Err(Error::plan("seeds", 0, "at least 1 run per strategy"));
    }
    if plan.seeds > 100_000 {
        return Err(Error::plan(
            "seeds",
            plan.seeds,
            "at most 100000 runs per strategy",
        ));
    }
    if plan.queries == 0 || plan.queries > 1_000_000 {
        return Err(Error::plan(
            "queries",
            plan.queries,
            "1 to 1000000 architectures per run",
        ));
    }
    let checkpoints = if plan.checkpoints.is_empty() {
        bench::default_checkpoints(plan.queries)
    } else {
        let mut points = plan.checkpoints.clone();
        if let Some(bad) = points.iter().find(|&&p| p == 0 || p > plan.queries) {
            return Err(Error::plan(
                "checkpoints",
                bad,
                format!("outside 1..={}", plan.queries),
            ));
        }
        points.sort_unstable();
        points.dedup();
        points
    };
    if plan.batch == 0 || plan.batch > plan.queries {
        return Err(Error::plan(
            "batch",
            plan.batch,
            format!("1 to --queries ({}) proposals per round", plan.queries),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io("create", out, e))?;
    let spec = BenchSpec {
        strategies: plan.strategies.clone(),
        seeds: plan.seeds,
        first_seed: plan.first_seed,
        queries: plan.queries,
        objective: world.objective,
        screen_infeasible: plan.screen_infeasible,
        batch: plan.batch,
    };
    let total = (plan.strategies.len() * plan.seeds) as u64;
    observer.stage("bench", total);
    let started = std::time::Instant::now();
    let done = std::sync::atomic::AtomicU64::new(0);
    let runs = bench::run_bench(
        world.space.as_ref(),
        world.evaluator.as_ref(),
        world.latency.as_deref(),
        &spec,
        &|outcome: &RunOutcome| {
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            observer.progress(
                d,
                total,
                &format!("{} seed {}", outcome.strategy, outcome.seed),
            );
        },
    )?;
    observer.finish();
    let seconds = started.elapsed().as_secs_f64();
    // The target: the best feasible architecture by validation (enumerable spaces only);
    // elsewhere hits are counted against the best any run found.
    let target = world.target_best.clone().unwrap_or_else(|| {
        runs.iter()
            .filter_map(|r| r.history.selected(plan.queries))
            .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
            .map(|r| r.arch.clone())
            .unwrap_or_default()
    });
    let rows = bench::summarise(&runs, &world.dataset, &target, &checkpoints);
    let curves = bench::curves(&runs, plan.queries);
    write_outputs(out, &runs, &rows, &curves)?;
    let title = format!(
        "{} on {} ({} seeds){}",
        world.space.name(),
        world.dataset,
        plan.seeds,
        world
            .latency
            .as_ref()
            .map(|l| format!(", {}", l.name()))
            .unwrap_or_default()
    );
    let reference = world
        .target_best_test
        .map(|t| ("best feasible arch by validation", t));
    crate::plot::curves_svg(&out.join("curves.svg"), &title, &curves, reference)?;
    Ok(BenchResult {
        runs,
        rows,
        curves,
        target,
        seconds,
    })
}

fn write_outputs(
    out: &Path,
    runs: &[RunOutcome],
    rows: &[SummaryRow],
    curves: &[Curve],
) -> Result<()> {
    let runs_path = out.join("runs.jsonl");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| Error::io("write", path, e)
    };
    let json = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Json {
            path,
            what: "serialisable",
            source,
        }
    };
    let file = std::fs::File::create(&runs_path).map_err(io(&runs_path))?;
    let mut file = std::io::BufWriter::new(file);
    for run in runs {
        for record in run.history.records() {
            let line = RunLine {
                strategy: &run.strategy,
                seed: run.seed,
                record,
            };
            serde_json::to_writer(&mut file, &line).map_err(json(&runs_path))?;
            file.write_all(b"\n").map_err(io(&runs_path))?;
        }
    }
    file.flush().map_err(io(&runs_path))?;
    let summary = out.join("summary.json");
    let text = serde_json::to_string_pretty(rows).map_err(json(&summary))?;
    std::fs::write(&summary, text).map_err(io(&summary))?;
    let csv_path = out.join("summary.csv");
    let csv_error = |source| Error::Csv {
        path: csv_path.clone(),
        source,
    };
    let mut csv = csv::Writer::from_path(&csv_path).map_err(csv_error)?;
    for row in rows {
        csv.serialize(row).map_err(csv_error)?;
    }
    csv.flush().map_err(io(&csv_path))?;
    let curves_path = out.join("curves.json");
    let text = serde_json::to_string(curves).map_err(json(&curves_path))?;
    std::fs::write(&curves_path, text).map_err(io(&curves_path))
}

/// The summary as a table for a person, with the target hits are counted against.
pub fn table_text(rows: &[SummaryRow], best_test: Option<f64>, target: &str) -> String {
    let mut text = String::new();
    _ = writeln!(
        text,
        "{:<12} {:>7} {:>16} {:>10} {:>9} {:>14} {:>12} {:>9}  proposals by source",
        "strategy",
        "queries",
        "test acc (%)",
        "val acc",
        "hit rate",
        "median q->best",
        "hypervolume",
        "wall s"
    );
    for row in rows {
        let line = format!(
            "{:<12} {:>7} {:>9.2} ± {:<4.2} {:>10.2} {:>9.2} {:>14} {:>12} {:>9.3}  {}",
            row.strategy,
            row.queries,
            row.mean_test,
            row.std_test,
            row.mean_val,
            row.hit_rate,
            row.median_queries_to_best
                .map_or("-".to_string(), |m| format!("{m:.0}")),
            row.hypervolume
                .map_or("-".to_string(), |h| format!("{h:.1}")),
            row.mean_seconds,
            row.sources
        );
        _ = writeln!(text, "{}", line.trim_end());
    }
    if let Some(best) = best_test {
        _ = writeln!(
            text,
            "\ntarget (best feasible by validation): {target}, test {best:.2}"
        );
    }
    text
}
