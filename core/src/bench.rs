//! Benchmarking strategies the way the NAS literature does: many seeded runs per strategy
//! against a table, each run's answer selected by validation accuracy and reported by test
//! accuracy, summarised at budget checkpoints.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::evaluate::{Evaluator, LatencyModel};
use crate::history::History;
use crate::objective::Objective;
use crate::search::{Budget, Oracle, SearchConfig, run_search};
use crate::space::{Arch, SearchSpace};
use crate::strategy;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// Strategy names (see [`strategy::NAMES`]).
    pub strategies: Vec<String>,
    /// Runs per strategy; run `i` uses seed `first_seed + i`.
    pub seeds: usize,
    /// The first seed.
    pub first_seed: u64,
    /// Distinct architectures each run may evaluate.
    pub queries: usize,
    /// What the strategies maximise.
    pub objective: Objective,
    /// Whether proposals over a latency budget are drawn again before a query (see
    /// [`SearchConfig::screen_infeasible`]).
    pub screen_infeasible: bool,
    /// Proposals asked for and answered together ([`SearchConfig::batch`]): a strategy that
    /// learns does so once per batch, so a larger batch lowers its cost per query where
    /// queries are cheap (a predictor and a table). 1: one at a time.
    pub batch: usize,
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The strategy's name.
    pub strategy: String,
    /// The run's seed.
    pub seed: u64,
    /// Everything it evaluated.
    pub history: History,
    /// Wall seconds from the run's start to each record (the search's own cost: proposing,
    /// learning, querying), in query order.
    pub elapsed: Vec<f64>,
    /// Where each record's proposal came from (see [`strategy::Strategy::sources`]).
    pub sources: Vec<(usize, &'static str)>,
}

/// Runs every (strategy, seed) pair, in parallel; `progress` is called after each run.
pub fn run_bench(
    space: &dyn SearchSpace,
    evaluator: &dyn Evaluator,
    latency: Option<&dyn LatencyModel>,
    spec: &BenchSpec,
    progress: &(dyn Fn(&RunOutcome) + Sync),
) -> Result<Vec<RunOutcome>> {
    for name in &spec.strategies {
        strategy::by_name(name, space)?;
    }
    let jobs: Vec<(String, u64)> = spec
        .strategies
        .iter()
        .flat_map(|s| (0..spec.seeds as u64).map(move |i| (s.clone(), spec.first_seed + i)))
        .collect();
    jobs.par_iter()
        .map(|(name, seed)| {
            let mut strategy = strategy::by_name(name, space)?;
            let oracle = Oracle::new(evaluator, latency);
            let mut config = SearchConfig::new(Budget::Queries(spec.queries), *seed);
            config.objective = spec.objective;
            config.screen_infeasible = spec.screen_infeasible;
            config.batch = spec.batch.max(1);
            let started = std::time::Instant::now();
            let mut elapsed = Vec::with_capacity(spec.queries);
            let history = run_search(space, strategy.as_mut(), &oracle, &config, &mut |_| {
                elapsed.push(started.elapsed().as_secs_f64());
                Ok(())
            })?;
            let outcome = RunOutcome {
                strategy: name.clone(),
                seed: *seed,
                history,
                elapsed,
                sources: strategy.sources(),
            };
            progress(&outcome);
            Ok(outcome)
        })
        .collect()
}

/// One row of `summary.json`: a strategy at a budget checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// The strategy's name.
    pub strategy: String,
    /// The dataset (or evaluator) the runs were scored on.
    pub dataset: String,
    /// The checkpoint: distinct architectures evaluated.
    pub queries: usize,
    /// Runs summarised.
    pub seeds: usize,
    /// Mean test accuracy of the selected (best-by-validation) architecture.
    pub mean_test: f64,
    /// Its sample standard deviation over runs.
    pub std_test: f64,
    /// Mean validation accuracy of the selected architecture.
    pub mean_val: f64,
    /// Share of runs whose selected architecture is the target (the table's best feasible
    /// architecture by validation accuracy).
    pub hit_rate: f64,
    /// Median over runs of the queries until the target was first evaluated; `None` when
    /// fewer than half the runs had found it by this checkpoint.
    pub median_queries_to_best: Option<f64>,
    /// Mean wall seconds a run took to reach the checkpoint (runs share the cores).
    pub mean_seconds: f64,
    /// Mean hypervolume of each run's accuracy-latency Pareto front (latency down, search
    /// signal up) against the bench's reference point; `None` without latencies.
    pub hypervolume: Option<f64>,
    /// Shares of the queries by where their proposals came from, over every run, e.g.
    /// `actor 81% exploration 9% warmup 10%`; empty for a strategy with one way to propose.
    #[serde(default)]
    pub sources: String,
}

/// The shares of the first `queries` records of `runs` by proposal source, largest first.
pub fn source_shares(runs: &[&RunOutcome], queries: usize) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    let mut total = 0;
    for (_, label) in runs
        .iter()
        .flat_map(|r| r.sources.iter().filter(|&&(q, _)| q <= queries))
    {
        total += 1;
        match counts.iter_mut().find(|(l, _)| l == label) {
            Some((_, n)) => *n += 1,
            None => counts.push((label, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
        .iter()
        .map(|(label, n)| format!("{label} {:.0}%", 100.0 * *n as f64 / total as f64))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The worst latency and the worst accuracy over every run: the hypervolume reference.
pub fn hypervolume_reference(runs: &[RunOutcome]) -> Option<(f64, f64)> {
    let points = runs
        .iter()
        .flat_map(|r| r.history.records())
        .filter_map(|r| r.latency_ms.map(|l| (l, r.accuracy)));
    points.fold(None, |acc, (l, a)| match acc {
        None => Some((l, a)),
        Some((ml, ma)) => Some((f64::max(ml, l), f64::min(ma, a))),
    })
}

/// The area dominated by `points` (latency to minimise, accuracy to maximise) and bounded by
/// the reference `(latency, accuracy)`.
pub fn hypervolume(points: &[(f64, f64)], reference: (f64, f64)) -> f64 {
    let mut sorted: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|&(l, a)| l <= reference.0 && a >= reference.1)
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for p in sorted {
        if front.last().is_none_or(|last| p.1 > last.1) {
            front.push(p);
        }
    }
    let mut area = 0.0;
    for (i, &(l, a)) in front.iter().enumerate() {
        let next = front.get(i + 1).map_or(reference.0, |p| p.0);
        area += (next - l) * (a - reference.1);
    }
    area
}

/// Mean and sample standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// The summary of each strategy at each checkpoint (checkpoints past a run's length use
/// the whole run).
pub fn summarise(
    runs: &[RunOutcome],
    dataset: &str,
    target: &Arch,
    checkpoints: &[usize],
) -> Vec<SummaryRow> {
    let mut strategies: Vec<&str> = Vec::new();
    for run in runs {
        if !strategies.contains(&run.strategy.as_str()) {
            strategies.push(&run.strategy);
        }
    }
    let reference = hypervolume_reference(runs);
    let mut rows = Vec::new();
    for name in strategies {
        let mine: Vec<&RunOutcome> = runs.iter().filter(|r| r.strategy == name).collect();
        for &q in checkpoints {
            let selected: Vec<_> = mine.iter().filter_map(|r| r.history.selected(q)).collect();
            let tests: Vec<f64> = selected
                .iter()
                .map(|r| r.test_accuracy.unwrap_or(r.accuracy))
                .collect();
            let vals: Vec<f64> = selected.iter().map(|r| r.accuracy).collect();
            let (mean_test, std_test) = mean_std(&tests);
            let hits = selected.iter().filter(|r| &r.arch == target).count();
            let mut found: Vec<f64> = mine
                .iter()
                .map(|r| {
                    r.history
                        .get(target)
                        .filter(|rec| rec.query <= q)
                        .map_or(f64::INFINITY, |rec| rec.query as f64)
                })
                .collect();
            found.sort_by(f64::total_cmp);
            let median = found
                .get(found.len().saturating_sub(1) / 2)
                .copied()
                .filter(|m| m.is_finite());
            rows.push(SummaryRow {
                strategy: name.to_string(),
                dataset: dataset.to_string(),
                queries: q,
                seeds: mine.len(),
                mean_test,
                std_test,
                mean_val: mean_std(&vals).0,
                hit_rate: hits as f64 / mine.len().max(1) as f64,
                median_queries_to_best: median,
                mean_seconds: mean_std(
                    &mine
                        .iter()
                        .filter_map(|r| r.elapsed.get(q.min(r.elapsed.len()).saturating_sub(1)))
                        .copied()
                        .collect::<Vec<_>>(),
                )
                .0,
                hypervolume: reference.map(|reference| {
                    let volumes: Vec<f64> = mine
                        .iter()
                        .map(|r| {
                            let points: Vec<(f64, f64)> = r
                                .history
                                .records()
                                .iter()
                                .take(q)
                                .filter_map(|rec| rec.latency_ms.map(|l| (l, rec.accuracy)))
                                .collect();
                            hypervolume(&points, reference)
                        })
                        .collect();
                    mean_std(&volumes).0
                }),
                sources: source_shares(&mine, q),
            });
        }
    }
    rows
}

/// Mean and spread of the selected architecture's test accuracy after each query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Curve {
    /// The strategy's name.
    pub strategy: String,
    /// Mean over runs, index `q - 1` for `q` queries.
    pub mean: Vec<f64>,
    /// Sample standard deviation over runs.
    pub std: Vec<f64>,
}

/// One curve per strategy, up to `queries`.
pub fn curves(runs: &[RunOutcome], queries: usize) -> Vec<Curve> {
    let mut names: Vec<&str> = Vec::new();
    for run in runs {
        if !names.contains(&run.strategy.as_str()) {
            names.push(&run.strategy);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let mine: Vec<&RunOutcome> = runs.iter().filter(|r| r.strategy == name).collect();
            let mut mean = Vec::with_capacity(queries);
            let mut std = Vec::with_capacity(queries);
            for q in 1..=queries {
                let tests: Vec<f64> = mine
                    .iter()
                    .filter_map(|r| r.history.selected(q))
                    .map(|r| r.test_accuracy.unwrap_or(r.accuracy))
                    .collect();
                let (m, s) = mean_std(&tests);
                mean.push(m);
                std.push(s);
            }
            Curve {
                strategy: name.to_string(),
                mean,
                std,
            }
        })
        .collect()
}

/// Budget checkpoints for a run of `queries`: 10, 25, 50, 100, 150, 200, 300, 500, 1000 and
/// every further 1000 up to the budget, plus the budget itself.
pub fn default_checkpoints(queries: usize) -> Vec<usize> {
    let mut points: Vec<usize> = [10, 25, 50, 100, 150, 200, 300, 500]
        .into_iter()
        .chain((1..).map(|k| k * 1000).take_while(|&p| p < queries))
        .filter(|&p| p < queries)
        .collect();
    points.push(queries);
    points.dedup();
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypervolume_of_a_staircase() {
        // Two points: (1 ms, 90) and (2 ms, 95) against (4 ms, 80): 1*10 + 2*15 = 40.
        let hv = hypervolume(&[(1.0, 90.0), (2.0, 95.0), (3.0, 85.0)], (4.0, 80.0));
        assert!((hv - 40.0).abs() < 1e-12, "{hv}");
        assert_eq!(hypervolume(&[(5.0, 99.0)], (4.0, 80.0)), 0.0);
    }
}
