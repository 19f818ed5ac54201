//! The report of a sampling search: the answer, its budget and measurements, and the
//! closed loop's finalists.

use crate::finalists::{CONFIRMATION_MARGIN, Confirmation};
use crate::outcome::Outcome;
use crate::plan::SearchPlan;
use crate::world::World;

/// `report.md`: the answer, its figures, the finalists and the files; `resumed_from`
/// records replayed from an earlier run, `load` the machine's load beside the measurements.
pub fn report_md(
    plan: &SearchPlan,
    w: &World,
    confirmation: &Confirmation,
    outcome: &Outcome,
    (resumed_from, load): (usize, Option<f64>),
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
    if !confirmation.finalists.is_empty() {
        md.push_str(&finalists_md(w, confirmation, load));
    }
    md.push_str("## Files\n\n- `best.onnx`: the chosen network, opset 17, batch norm folded. Its weights are random (He initialisation): it has the chosen architecture's exact structure and latency; train it, or take weights from a supernet, before use.\n- `history.jsonl`: every evaluated architecture, one JSON object per line, written as it was evaluated.\n- `pareto.csv` / `pareto.svg`: the accuracy-latency Pareto front of what was evaluated; the budget line and the chosen point are marked.\n- `manifest.json`: the command, versions, seed, settings and target fingerprint; `hwnas search --resume DIR` continues an interrupted run from it.\n");
    if let Some(facts) = &outcome.supernet {
        let (mean, std) = &facts.input_normalisation;
        md.push_str(&format!(
            "- `best-inherited.onnx`: the chosen subnet at the supernet's width with the weights it inherits from the supernet that scored it (batch norm recalibrated, folded): the network its accuracy estimate was measured with. Inputs: images in [0, 1] (the per-channel normalisation, mean {mean:?} and std {std:?}, is the model's first two nodes); `hwnas eval best-inherited.onnx --data DATA` checks its accuracy.\n"
        ));
    }
    md
}

/// The report's section on the closed loop: what was measured, how the correction moved,
/// and how busy the machine was.
fn finalists_md(w: &World, confirmation: &Confirmation, load: Option<f64>) -> String {
    let ranked_by = if w.search_latency.name().starts_with("measured") {
        "its own end-to-end measurement"
    } else {
        "the latency model's prediction"
    };
    let relative = w.budget.relative_to.is_some();
    let mut md = format!(
        "## Finalists measured end to end\n\nThe search ranks architectures by {ranked_by}. The closed loop then measured the most accurate architecture that the prediction, corrected by the measurements so far, put within budget; each measurement refitted the correction (measured / predicted, now {:.3}) and re-ranked the rest, until the most accurate architecture measured within budget was known ({} measured). The answer was profiled once more from the written file, with {:.0}% to spare for run-to-run spread.{}\n\n",
        confirmation.correction,
        confirmation.finalists.len(),
        CONFIRMATION_MARGIN * 100.0,
        if relative {
            " Each finalist was measured in one interleaved run beside the reference network, and its latency is its share of the reference times the reference's latency that set the budget, so that load on the machine falls on both alike."
        } else {
            ""
        }
    );
    if let Some(load) = load {
        let cores = w.fingerprint.as_ref().map_or(1, |f| f.cores) as f64;
        md.push_str(&format!(
            "Load beside the measurements: {load:.2} runnable threads besides hwnas's own (one-minute average, {cores:.0} cores).{}\n\n",
            match (load >= 0.5, relative) {
                (false, _) => String::new(),
                (true, true) => " The machine was busy; the relative budget was judged by ratios to the reference measured alongside, which load leaves in place.".to_string(),
                (true, false) => format!(" The machine was busy: a budget given in milliseconds is absolute, and figures near {:.3} ms measured under this load may not hold on a quiet machine; measure again when it is quiet.", w.budget.ms),
            }
        ));
    }
    md.push_str(&format!(
        "| accuracy | search ms | corrected ms | measured ms{} | within budget less {:.0}% |\n| --- | --- | --- | --- | --- |\n",
        if relative { " (as measured; reference beside it)" } else { "" },
        CONFIRMATION_MARGIN * 100.0
    ));
    for f in &confirmation.finalists {
        let measured = match f.reference_ms {
            Some(reference) => format!("{:.3} ({:.3}; {reference:.3})", f.measured_ms, f.raw_ms),
            None => format!("{:.3}", f.measured_ms),
        };
        md.push_str(&format!(
            "| {:.2} | {:.3} | {:.3} | {measured} | {} |\n",
            f.record.accuracy,
            f.record.latency_ms.unwrap_or(f64::NAN),
            f.corrected_ms,
            f.measured_ms <= w.budget.ms * (1.0 - CONFIRMATION_MARGIN)
        ));
    }
    md.push('\n');
    md
}
