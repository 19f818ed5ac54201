//! A sampling search: a strategy proposes, the world's evaluator and latency model answer,
//! every record is appended to the history as it is made; then the finalists are confirmed
//! on the target, and the Pareto front and the report are written.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hwnas_core::{
    Arch, BatchEvaluator, Budget, Evaluation, Evaluator, History, Objective, Oracle, Record,
    SearchConfig, pareto_front, run_search, strategy,
};
use hwnas_latency::measured::export_for_profiling;

use crate::RunOptions;
use crate::error::{Error, Result};
use crate::executor::{ExecutorSettings, LocalExecutor};
use crate::finalists::{BudgetCheck, Confirmation, OVER_BUDGET_REACH, confirm};
use crate::observer::Observer;
use crate::outcome::{Outcome, SupernetFacts};
use crate::plan::ExecutorKind;
use crate::plan::SearchPlan;
use crate::run_dir::RunDir;
use crate::slurm::SlurmExecutor;
use crate::world::World;

/// Slows each evaluation down (a testing aid: a run slow enough to be killed mid-way).
struct Throttled<'a> {
    inner: &'a dyn Evaluator,
    ms: u64,
}

impl Evaluator for Throttled<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn evaluate(&self, arch: &Arch) -> hwnas_core::Result<Evaluation> {
        std::thread::sleep(Duration::from_millis(self.ms));
        self.inner.evaluate(arch)
    }
}

/// Runs the sampling search of `plan` in `world`, continuing from the records `prior` of
/// an earlier run (`facts`: the supernet that scores it, where one does); writes history, `best.onnx`, Pareto front and report into `dir`.
pub fn run(
    plan: &SearchPlan,
    world: &World,
    dir: &RunDir,
    prior: &[Record],
    facts: Option<SupernetFacts>,
    (options, started): (&RunOptions, Instant),
    observer: &dyn Observer,
) -> Result<Outcome> {
    let throttle_ms = options.throttle_ms;
    let evaluator = world.evaluator.as_deref().ok_or_else(|| {
        Error::plan(
            "evaluator",
            &world.evaluator_name,
            "this space has no evaluator but a supernet: use --evaluator supernet",
        )
    })?;
    let throttled = Throttled {
        inner: evaluator,
        ms: throttle_ms,
    };
    let evaluator: &dyn Evaluator = if throttle_ms > 0 {
        &throttled
    } else {
        evaluator
    };
    let mut oracle = Oracle::new(evaluator, Some(world.search_latency.as_ref()));
    let executor = executor(&options.executor, evaluator, world, dir, observer)?;
    oracle.executor = executor.as_deref();
    oracle.known = prior
        .iter()
        .map(|r| {
            let evaluation = Evaluation {
                accuracy: r.accuracy,
                test_accuracy: r.test_accuracy,
                cost_seconds: 0.0,
            };
            (r.arch.clone(), (evaluation, r.latency_ms))
        })
        .collect::<HashMap<_, _>>();
    let mut strategy = strategy::by_name(plan.strategy.as_str(), world.space.as_ref())?;
    let mut config = SearchConfig::new(Budget::Queries(plan.budget()), plan.seed);
    config.objective = Objective::latency_budget(world.budget.ms);
    config.batch = plan.proposals();
    if world.measured.is_some() {
        // The finalists are measured: keep the candidates the closed loop may still find
        // within the budget.
        config.screen_margin = OVER_BUDGET_REACH;
    }
    let mut history_file = dir.appender("history.jsonl")?;
    let already = prior.len();
    observer.stage("search", plan.budget() as u64);
    let mut write_error = None;
    let mut replay_error = None;
    let history = run_search(
        world.space.as_ref(),
        strategy.as_mut(),
        &oracle,
        &config,
        &mut |record| {
            if let Some(earlier) = prior.get(record.query - 1)
                && earlier.arch_text != record.arch_text
            {
                replay_error = Some(record.query);
                return Err(hwnas_core::Error::Setting {
                    name: "resume".into(),
                    problem: "the replay left the recorded history".into(),
                });
            }
            if record.query > already
                && let Err(e) = history_file.push(record)
            {
                let path = history_file.path().to_path_buf();
                write_error = Some(e);
                return Err(hwnas_core::Error::Io {
                    path,
                    source: std::io::Error::other("the history could not be written"),
                });
            }
            observer.progress(record.query as u64, plan.budget() as u64, "");
            Ok(())
        },
    );
    if let Some(query) = replay_error {
        return Err(Error::RunDir {
            dir: dir.path().to_path_buf(),
            problem: format!(
                "resumed, the search proposed another architecture than history.jsonl records at query {query} (this hwnas searches differently from the one that wrote the run); start a new run with --out"
            ),
        });
    }
    let history = match (history, write_error) {
        (_, Some(e)) => return Err(e),
        (h, None) => h?,
    };
    observer.finish();
    for warning in world.take_warnings() {
        observer.warn(&warning);
    }

    // Finalists: the most accurate architectures near the budget by the search's latency,
    // measured in a closed loop that corrects the prediction as it goes.
    let reach = world.budget.ms * (1.0 + OVER_BUDGET_REACH);
    let mut candidates: Vec<&Record> = history
        .records()
        .iter()
        .filter(|r| r.latency_ms.is_some_and(|l| l <= reach))
        .collect();
    candidates.sort_by(|a, b| {
        b.accuracy
            .total_cmp(&a.accuracy)
            .then(a.query.cmp(&b.query))
    });
    let onnx_path = dir.file("best.onnx");
    let export =
        |arch: &Arch| -> Result<Vec<u8>> { Ok(export_for_profiling(world.space.as_ref(), arch)?) };
    let write_onnx = |record: &Record| -> Result<Vec<u8>> {
        let bytes = export(&record.arch)?;
        std::fs::write(&onnx_path, &bytes).map_err(|e| Error::io("write", &onnx_path, e))?;
        Ok(bytes)
    };
    let reference_model = match (&world.budget.relative_to, &world.measured) {
        (Some(arch), Some(_)) => Some(export(arch)?),
        _ => None,
    };
    let check = BudgetCheck {
        ms: world.budget.ms,
        reference: reference_model
            .as_deref()
            .map(|model| (model, world.budget.reference.1)),
    };
    let load_before = world.measured.as_ref().and_then(|m| m.other_load());
    let confirmation = confirm(
        &candidates,
        &check,
        world.measured.as_deref(),
        plan.finalists * 4,
        &export,
        &write_onnx,
        observer,
    )?
    .ok_or_else(|| {
        Error::NoAnswer(format!(
            "no architecture met the {:.3} ms budget in {} queries; raise --latency-ms or --budget",
            world.budget.ms,
            history.len()
        ))
    })?;
    let load = [
        load_before,
        world.measured.as_ref().and_then(|m| m.other_load()),
    ];
    let load = load.iter().flatten().copied().reduce(f64::max);
    let inherited_onnx = match &world.supernet {
        Some(supernet) => Some(crate::oneshot::write_ofa_inherited(
            supernet,
            &confirmation.chosen,
            dir,
        )?),
        None => None,
    };
    write_pareto(dir, &history, &confirmation, world)?;
    let best = &confirmation.chosen;
    let outcome = Outcome {
        space: world.space.name().to_string(),
        strategy: plan.strategy.to_string(),
        evaluator: world.evaluator_name.clone(),
        arch: best.arch_text.clone(),
        latency_ms: confirmation.latency_ms,
        latency_budget_ms: world.budget.ms,
        within_budget: confirmation.within_budget,
        accuracy_estimate: best.accuracy,
        onnx: onnx_path.display().to_string(),
        measured: confirmation.measured,
        queries: history.len(),
        heldout_accuracy: inherited_onnx.as_ref().map(|_| best.accuracy),
        inherited_onnx: inherited_onnx.map(|p| p.display().to_string()),
        table_test_accuracy: best.test_accuracy,
        run_dir: dir.path().display().to_string(),
        wall_seconds: started.elapsed().as_secs_f64(),
        finalists_measured: confirmation.finalists.len(),
        other_load: load,
        supernet: facts,
    };
    let report =
        crate::sampling_report::report_md(plan, world, &confirmation, &outcome, (already, load));
    let path = dir.file("report.md");
    std::fs::write(&path, report).map_err(|e| Error::io("write", &path, e))?;
    Ok(outcome)
}

/// The executor the run's options ask for over `evaluator`; none where the evaluator
/// itself, one query after another, is all that is asked (the cheap evaluators' hot path).
fn executor<'a>(
    settings: &ExecutorSettings,
    evaluator: &'a dyn Evaluator,
    world: &'a World,
    dir: &RunDir,
    observer: &'a dyn Observer,
) -> Result<Option<Box<dyn BatchEvaluator + 'a>>> {
    Ok(match settings.kind {
        ExecutorKind::Local if settings.jobs <= 1 => None,
        ExecutorKind::Local => Some(Box::new(LocalExecutor {
            evaluator,
            jobs: settings.jobs,
        })),
        ExecutorKind::Slurm => {
            let binary = settings.worker_binary.as_deref().ok_or_else(|| {
                Error::plan(
                    "executor",
                    "slurm",
                    "no hwnas binary for the cluster's tasks was given (the library's caller sets ExecutorSettings::worker_binary)",
                )
            })?;
            Some(Box::new(SlurmExecutor::new(
                dir,
                world.space.as_ref(),
                settings.slurm.clone(),
                binary,
                observer,
            )?))
        }
    })
}

fn write_pareto(
    dir: &RunDir,
    history: &History,
    confirmation: &Confirmation,
    world: &World,
) -> Result<()> {
    let front = pareto_front(history.records());
    let budget = world.budget.ms;
    let path = dir.file("pareto.csv");
    let csv_error = |source| Error::Csv {
        path: path.clone(),
        source,
    };
    let mut csv = csv::Writer::from_path(&path).map_err(csv_error)?;
    csv.write_record([
        "query",
        "latency_ms",
        "measured_latency_ms",
        "accuracy",
        "within_budget",
        "chosen",
        "arch",
    ])
    .map_err(csv_error)?;
    for r in &front {
        let measured = confirmation
            .finalists
            .iter()
            .find(|f| f.record.arch == r.arch)
            .map(|f| f.measured_ms);
        csv.write_record([
            r.query.to_string(),
            format!("{:.4}", r.latency_ms.unwrap_or(f64::NAN)),
            measured.map(|m| format!("{m:.4}")).unwrap_or_default(),
            format!("{:.4}", r.accuracy),
            (r.latency_ms.unwrap_or(f64::INFINITY) <= budget).to_string(),
            (r.arch == confirmation.chosen.arch).to_string(),
            r.arch_text.clone(),
        ])
        .map_err(csv_error)?;
    }
    csv.flush().map_err(|e| Error::io("write", &path, e))?;
    let points: Vec<(f64, f64)> = history
        .records()
        .iter()
        .filter_map(|r| r.latency_ms.map(|l| (l, r.accuracy)))
        .collect();
    let front_points: Vec<(f64, f64)> = front
        .iter()
        .filter_map(|r| r.latency_ms.map(|l| (l, r.accuracy)))
        .collect();
    let best = &confirmation.chosen;
    crate::plot::pareto_svg(
        &dir.file("pareto.svg"),
        &format!("{}: accuracy estimate vs latency", world.space.name()),
        &points,
        &front_points,
        (best.latency_ms.unwrap_or(f64::NAN), best.accuracy),
        budget,
    )
}
