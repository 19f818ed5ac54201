//! A sampling search: a strategy proposes, the world's evaluator and latency model answer,
//! every record is appended to the history as it is made; then the finalists are confirmed
//! on the target, and the Pareto front and the report are written.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hwnas_core::{
    Arch, Budget, Evaluation, Evaluator, History, Objective, Oracle, Record, SearchConfig,
    pareto_front, run_search, strategy,
};
use hwnas_latency::measured::export_for_profiling;

use crate::error::{Error, Result};
use crate::finalists::{CONFIRMATION_MARGIN, Confirmation, confirm};
use crate::observer::Observer;
use crate::outcome::{Outcome, SupernetFacts};
use crate::plan::SearchPlan;
use crate::run_dir::RunDir;
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
    (throttle_ms, started): (u64, Instant),
    observer: &dyn Observer,
) -> Result<Outcome> {
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
    let mut oracle = Oracle::new(
        if throttle_ms > 0 {
            &throttled
        } else {
            evaluator
        },
        Some(world.search_latency.as_ref()),
    );
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
    let mut config = SearchConfig::new(Budget::Queries(plan.budget), plan.seed);
    config.objective = Objective::latency_budget(world.budget.ms);
    let mut history_file = dir.appender("history.jsonl")?;
    let already = prior.len();
    observer.stage("search", plan.budget as u64);
    let mut write_error = None;
    let history = run_search(
        world.space.as_ref(),
        strategy.as_mut(),
        &oracle,
        &config,
        &mut |record| {
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
            observer.progress(record.query as u64, plan.budget as u64, "");
            Ok(())
        },
    );
    let history = match (history, write_error) {
        (_, Some(e)) => return Err(e),
        (h, None) => h?,
    };
    observer.finish();
    for warning in world.take_warnings() {
        observer.warn(&warning);
    }

    // Finalists: the most accurate architectures predicted within budget, re-measured.
    let mut candidates: Vec<&Record> = history.records().iter().filter(|r| r.feasible).collect();
    candidates.sort_by(|a, b| {
        b.accuracy
            .total_cmp(&a.accuracy)
            .then(a.query.cmp(&b.query))
    });
    let onnx_path = dir.file("best.onnx");
    let write_onnx = |record: &Record| -> Result<Vec<u8>> {
        let bytes = export_for_profiling(world.space.as_ref(), &record.arch)?;
        std::fs::write(&onnx_path, &bytes).map_err(|e| Error::io("write", &onnx_path, e))?;
        Ok(bytes)
    };
    let confirmation = confirm(
        &candidates,
        world.budget.ms,
        world.measured.as_deref(),
        plan.finalists,
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
        inherited_onnx: inherited_onnx.map(|p| p.display().to_string()),
        table_test_accuracy: best.test_accuracy,
        run_dir: dir.path().display().to_string(),
        wall_seconds: started.elapsed().as_secs_f64(),
        supernet: facts,
    };
    let report = report_md(plan, world, &confirmation, &outcome, already);
    let path = dir.file("report.md");
    std::fs::write(&path, report).map_err(|e| Error::io("write", &path, e))?;
    Ok(outcome)
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
            .find(|(f, _)| f.arch == r.arch)
            .and_then(|(_, m)| *m);
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

fn report_md(
    plan: &SearchPlan,
    w: &World,
    confirmation: &Confirmation,
    outcome: &Outcome,
    resumed_from: usize,
) -> String {
    let best = &confirmation.chosen;
    let mut md = format!(
        "# hwnas search report\n\n**Chosen architecture** ({}):\n\n```\n{}\n```\n\n",
        w.space.name(),
        best.arch_text
    );
    if !outcome.within_budget {
        md.push_str(&format!(
            "**Not within budget**: no finalist measured within {:.3} ms end to end with {:.0}% to spare; the fastest measured one is shown. Raise --latency-ms, or run again on a quiet machine.\n\n",
            w.budget.ms,
            CONFIRMATION_MARGIN * 100.0
        ));
    }
    md.push_str("| | |\n| --- | --- |\n");
    md.push_str(&format!(
        "| accuracy estimate | {:.2} ({}) |\n",
        best.accuracy, w.evaluator_name
    ));
    md.push_str(&format!(
        "| latency | {:.3} ms ({}) |\n",
        confirmation.latency_ms,
        if confirmation.measured {
            "measured end to end with ONNX Runtime"
        } else {
            "from the target's table"
        }
    ));
    if let Some(v) = confirmation.verified_ms {
        md.push_str(&format!("| best.onnx re-profiled | {v:.3} ms |\n"));
    }
    md.push_str(&format!(
        "| latency budget | {:.3} ms — {} |\n",
        w.budget.ms, w.budget.origin
    ));
    md.push_str(&format!(
        "| target | {} ({}) |\n",
        plan.target,
        w.search_latency.name()
    ));
    if let Some(f) = &w.fingerprint {
        md.push_str(&format!(
            "| measured on | ONNX Runtime {} {} on {} ({} threads of {} cores) |\n",
            f.ort_version, f.execution_provider, f.cpu_model, f.threads, f.cores
        ));
    }
    md.push_str(&format!(
        "| strategy | {} (seed {}), {} distinct architectures evaluated{} |\n",
        plan.strategy,
        plan.seed,
        outcome.queries,
        if resumed_from > 0 {
            format!(", {resumed_from} replayed from the earlier run")
        } else {
            String::new()
        }
    ));
    let (what, ms) = &w.budget.reference;
    md.push_str(&format!("| reference | {what}: {ms:.3} ms |\n"));
    md.push_str(&format!(
        "| wall time | {:.1} s |\n\n",
        outcome.wall_seconds
    ));
    md.push_str("![accuracy vs latency](pareto.svg)\n\n");
    if confirmation.finalists.iter().any(|(_, m)| m.is_some()) {
        let ranked_by = if w.search_latency.name().starts_with("measured") {
            "its own end-to-end measurement"
        } else {
            "the latency model's prediction"
        };
        md.push_str(&format!("## Finalists re-measured end to end\n\nThe search ranks architectures by {ranked_by}; the most accurate ones within budget were then exported and measured whole again, and the answer profiled once more from the written file, with {:.0}% to spare for run-to-run spread.\n\n| accuracy | search ms | measured ms | within budget |\n| --- | --- | --- | --- |\n", CONFIRMATION_MARGIN * 100.0));
        for (r, m) in &confirmation.finalists {
            md.push_str(&format!(
                "| {:.2} | {:.3} | {} | {} |\n",
                r.accuracy,
                r.latency_ms.unwrap_or(f64::NAN),
                m.map(|v| format!("{v:.3}")).unwrap_or_default(),
                m.is_some_and(|v| v <= w.budget.ms)
            ));
        }
        md.push('\n');
    }
    md.push_str("## Files\n\n- `best.onnx`: the chosen network, opset 17, batch norm folded. Its weights are random (He initialisation): it has the chosen architecture's exact structure and latency; train it, or take weights from a supernet, before use.\n- `history.jsonl`: every evaluated architecture, one JSON object per line, written as it was evaluated.\n- `pareto.csv` / `pareto.svg`: the accuracy-latency Pareto front of what was evaluated; the budget line and the chosen point are marked.\n- `manifest.json`: the command, versions, seed, settings and target fingerprint; `hwnas search --resume DIR` continues an interrupted run from it.\n");
    if let Some(facts) = &outcome.supernet {
        let (mean, std) = &facts.input_normalisation;
        md.push_str(&format!(
            "- `best-inherited.onnx`: the chosen subnet at the supernet's width with the weights it inherits from the supernet that scored it (batch norm recalibrated, folded): the network its accuracy estimate was measured with. Inputs: images in [0, 1] normalised per channel with mean {mean:?} and std {std:?}.\n"
        ));
    }
    md
}
