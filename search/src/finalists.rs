//! The confirmation of finalists: the most accurate architectures the search found within
//! budget are measured end to end, and the answer is profiled once more from the written
//! file, with a margin for run-to-run spread.

use hwnas_core::Record;

use crate::error::Result;
use crate::measure::FinalMeasure;
use crate::observer::Observer;

/// The answer's fresh re-profile must come in this far under the budget, so that a later
/// `hwnas profile best.onnx` confirms it despite run-to-run spread (medians of separate
/// processes vary by about 0.7%, see docs/BENCHMARKS.md; 2% covers three of those).
pub const CONFIRMATION_MARGIN: f64 = 0.02;

/// What the confirmation found.
#[derive(Debug, Clone)]
pub struct Confirmation {
    /// The answer.
    pub chosen: Record,
    /// Its latency: measured where the target is measured, else the search's.
    pub latency_ms: f64,
    /// Whether `latency_ms` was measured end to end.
    pub measured: bool,
    /// The written file's fresh profile.
    pub verified_ms: Option<f64>,
    /// Whether the answer meets the budget (with the margin, where measured).
    pub within_budget: bool,
    /// Every finalist with its end-to-end latency, in the order measured.
    pub finalists: Vec<(Record, Option<f64>)>,
}

/// Confirms `candidates` (most accurate first, each within budget by the search's latency)
/// against `budget_ms`. With a measured target, up to `4 * wanted` finalists are measured
/// until `wanted` were and one passed both measurements; `write_onnx` writes a finalist's
/// `best.onnx` and returns its bytes. Without one, the first candidate is the answer.
/// Where no finalist passes, the fastest measured one is the (over-budget) answer.
pub fn confirm(
    candidates: &[&Record],
    budget_ms: f64,
    measure: Option<&dyn FinalMeasure>,
    wanted: usize,
    write_onnx: &dyn Fn(&Record) -> Result<Vec<u8>>,
    observer: &dyn Observer,
) -> Result<Option<Confirmation>> {
    let Some(first) = candidates.first() else {
        return Ok(None);
    };
    let Some(measure) = measure else {
        write_onnx(first)?;
        return Ok(Some(Confirmation {
            chosen: (*first).clone(),
            latency_ms: first.latency_ms.unwrap_or(f64::NAN),
            measured: false,
            verified_ms: None,
            within_budget: first.latency_ms.is_some_and(|l| l <= budget_ms),
            finalists: vec![((*first).clone(), None)],
        }));
    };
    let wanted = wanted.max(1);
    observer.stage("finalists", wanted as u64);
    let mut finalists: Vec<(Record, Option<f64>)> = Vec::new();
    let mut chosen: Option<(Record, f64, f64)> = None;
    for record in candidates.iter().take(wanted * 4) {
        observer.progress(finalists.len().min(wanted) as u64, wanted as u64, "");
        let ms = measure.arch_ms(&record.arch)?;
        finalists.push(((*record).clone(), Some(ms)));
        if ms <= budget_ms && chosen.is_none() {
            let check = measure.model_ms(&write_onnx(record)?)?;
            if check <= budget_ms * (1.0 - CONFIRMATION_MARGIN) {
                chosen = Some(((*record).clone(), ms, check));
            }
        }
        if finalists.len() >= wanted && chosen.is_some() {
            break;
        }
    }
    observer.finish();
    for warning in measure.take_warnings() {
        observer.warn(&warning);
    }
    if let Some((record, ms, check)) = chosen {
        return Ok(Some(Confirmation {
            chosen: record,
            latency_ms: ms,
            measured: true,
            verified_ms: Some(check),
            within_budget: true,
            finalists,
        }));
    }
    let (fastest, ms) = finalists
        .iter()
        .filter_map(|(r, m)| m.map(|m| (r.clone(), m)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one finalist was measured");
    write_onnx(&fastest)?;
    Ok(Some(Confirmation {
        chosen: fastest,
        latency_ms: ms,
        measured: true,
        verified_ms: None,
        within_budget: false,
        finalists,
    }))
}
