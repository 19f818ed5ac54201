//! The confirmation of finalists, a closed loop: the most accurate architecture the latency
//! model, corrected by what was measured so far, puts within budget is measured end to end;
//! each measurement refits the correction and re-ranks the rest, until the most accurate
//! architecture *measured* within budget is known. The answer is profiled once more from
//! the written file, with a margin for run-to-run spread.
//!
//! A budget relative to a reference network is judged by ratios: each finalist is measured
//! in one interleaved run beside the reference, so that load on a busy machine falls on
//! both alike, and its latency is that ratio times the reference latency the budget was
//! set from.

use hwnas_core::{Arch, Record};

use crate::error::Result;
use crate::measure::FinalMeasure;
use crate::observer::Observer;

/// The answer's fresh re-profile must come in this far under the budget, so that a later
/// `hwnas profile best.onnx` confirms it despite run-to-run spread (medians of separate
/// processes vary by about 0.7%, see docs/BENCHMARKS.md; 2% covers three of those).
pub const CONFIRMATION_MARGIN: f64 = 0.02;

/// Candidates predicted up to this share over the budget still enter the loop: the
/// correction may bring them under.
pub const OVER_BUDGET_REACH: f64 = 0.15;

/// What a finalist is judged against.
pub struct BudgetCheck<'a> {
    /// The budget in milliseconds.
    pub ms: f64,
    /// For a budget relative to a reference network: the reference's model and the
    /// latency it measured when the budget was set.
    pub reference: Option<(&'a [u8], f64)>,
}

/// One finalist measured end to end.
#[derive(Debug, Clone)]
pub struct Finalist {
    /// The architecture and its search figures.
    pub record: Record,
    /// Its latency as judged against the budget (scaled by the reference, where relative).
    pub measured_ms: f64,
    /// The median as measured, before scaling.
    pub raw_ms: f64,
    /// The reference measured beside it, where the budget is relative.
    pub reference_ms: Option<f64>,
    /// The corrected prediction it was chosen on.
    pub corrected_ms: f64,
}

/// What the confirmation found.
#[derive(Debug, Clone)]
pub struct Confirmation {
    /// The answer.
    pub chosen: Record,
    /// Its latency: measured where the target is measured, else the search's.
    pub latency_ms: f64,
    /// Whether `latency_ms` was measured end to end.
    pub measured: bool,
    /// The written file's fresh profile (scaled like `latency_ms`).
    pub verified_ms: Option<f64>,
    /// Whether the answer meets the budget (with the margin, where measured).
    pub within_budget: bool,
    /// Every finalist, in the order measured.
    pub finalists: Vec<Finalist>,
    /// The final correction: measured latency / predicted latency.
    pub correction: f64,
}

/// Measured / predicted latency so far, as a geometric mean with its spread.
#[derive(Debug, Default)]
struct Correction {
    log_ratios: Vec<f64>,
}

impl Correction {
    fn factor(&self) -> f64 {
        match self.log_ratios.len() {
            0 => 1.0,
            n => (self.log_ratios.iter().sum::<f64>() / n as f64).exp(),
        }
    }

    /// The ratios' relative spread (at least 1%, 3% until two are known).
    fn spread(&self) -> f64 {
        let n = self.log_ratios.len();
        if n < 2 {
            return 0.03;
        }
        let mean = self.log_ratios.iter().sum::<f64>() / n as f64;
        let var = self
            .log_ratios
            .iter()
            .map(|r| (r - mean).powi(2))
            .sum::<f64>()
            / (n - 1) as f64;
        var.sqrt().max(0.01)
    }
}

/// The next candidate to measure: the most accurate one not yet measured whose corrected
/// prediction is within `limit_ms`, among those more accurate than `better_than` (an index
/// into `candidates`) when one is given.
fn next(
    candidates: &[&Record],
    measured: &[usize],
    correction: &Correction,
    limit_ms: f64,
    better_than: Option<usize>,
) -> Option<usize> {
    let end = better_than.unwrap_or(candidates.len());
    let factor = correction.factor();
    (0..end).find(|&i| {
        !measured.contains(&i)
            && candidates[i]
                .latency_ms
                .is_some_and(|p| p * factor <= limit_ms)
    })
}

/// Confirms `candidates` (most accurate first, each with the search's latency) against
/// `budget`. Without a measured target, the most accurate candidate within budget is the
/// answer. With one, the closed loop measures at most `max_measured` finalists: first the
/// most accurate candidate the corrected model puts within the budget less the margin,
/// (else within one spread of the correction over it), until one measures within it and its
/// written file re-profiles within it; then the more accurate ones the corrected model puts
/// within one spread of it. `export` gives an architecture's model; `write_onnx` writes the answer's
/// `best.onnx` and returns its bytes. Where none measures within budget, the fastest
/// measured one is the (over-budget) answer.
pub fn confirm(
    candidates: &[&Record],
    budget: &BudgetCheck,
    measure: Option<&dyn FinalMeasure>,
    max_measured: usize,
    export: &dyn Fn(&Arch) -> Result<Vec<u8>>,
    write_onnx: &dyn Fn(&Record) -> Result<Vec<u8>>,
    observer: &dyn Observer,
) -> Result<Option<Confirmation>> {
    let Some(measure) = measure else {
        let Some(first) = candidates
            .iter()
            .find(|r| r.latency_ms.is_some_and(|l| l <= budget.ms))
        else {
            return Ok(None);
        };
        write_onnx(first)?;
        return Ok(Some(Confirmation {
            chosen: (*first).clone(),
            latency_ms: first.latency_ms.unwrap_or(f64::NAN),
            measured: false,
            verified_ms: None,
            within_budget: true,
            finalists: Vec::new(),
            correction: 1.0,
        }));
    };
    let judge = |model: &[u8]| -> Result<(f64, f64, Option<f64>)> {
        match budget.reference {
            Some((reference, set_ms)) => {
                let (ms, reference_ms) = measure.paired_ms(model, reference)?;
                Ok((ms / reference_ms * set_ms, ms, Some(reference_ms)))
            }
            None => {
                let ms = measure.model_ms(model)?;
                Ok((ms, ms, None))
            }
        }
    };
    let max_measured = max_measured.max(1);
    // What a finalist must measure to be the answer: its re-profile needs the margin too.
    let target_ms = budget.ms * (1.0 - CONFIRMATION_MARGIN);
    observer.stage("finalists", max_measured as u64);
    let mut correction = Correction::default();
    let mut measured: Vec<usize> = Vec::new();
    let mut finalists: Vec<Finalist> = Vec::new();
    let mut chosen: Option<(usize, f64, f64)> = None;
    while measured.len() < max_measured {
        // Within the budget by the corrected prediction, else within its spread.
        let reach = target_ms * (1.0 + correction.spread());
        let i = match chosen {
            None => next(candidates, &measured, &correction, target_ms, None)
                .or_else(|| next(candidates, &measured, &correction, reach, None)),
            Some((answer, ..)) => next(candidates, &measured, &correction, reach, Some(answer)),
        };
        let Some(i) = i else { break };
        observer.progress(measured.len() as u64, max_measured as u64, "");
        let record = candidates[i];
        let predicted = record.latency_ms.expect("candidates have a latency");
        let corrected_ms = predicted * correction.factor();
        let (ms, raw_ms, reference_ms) = judge(&export(&record.arch)?)?;
        measured.push(i);
        correction.log_ratios.push((ms / predicted).ln());
        finalists.push(Finalist {
            record: record.clone(),
            measured_ms: ms,
            raw_ms,
            reference_ms,
            corrected_ms,
        });
        if ms <= target_ms && chosen.is_none_or(|(answer, ..)| i < answer) {
            let (check, ..) = judge(&write_onnx(record)?)?;
            if check <= budget.ms * (1.0 - CONFIRMATION_MARGIN) {
                chosen = Some((i, ms, check));
            }
        }
    }
    observer.finish();
    for warning in measure.take_warnings() {
        observer.warn(&warning);
    }
    if let Some((i, ms, check)) = chosen {
        // The last file written may be a later finalist's that failed its re-profile.
        write_onnx(candidates[i])?;
        return Ok(Some(Confirmation {
            chosen: candidates[i].clone(),
            latency_ms: ms,
            measured: true,
            verified_ms: Some(check),
            within_budget: true,
            finalists,
            correction: correction.factor(),
        }));
    }
    let Some(fastest) = finalists
        .iter()
        .min_by(|a, b| a.measured_ms.total_cmp(&b.measured_ms))
    else {
        return Ok(None);
    };
    write_onnx(&fastest.record)?;
    Ok(Some(Confirmation {
        chosen: fastest.record.clone(),
        latency_ms: fastest.measured_ms,
        measured: true,
        verified_ms: None,
        within_budget: false,
        finalists: finalists.clone(),
        correction: correction.factor(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::Quiet;
    use std::sync::Mutex;

    /// A target whose true latency of architecture `k` (its one decision) is `true_ms[k]`,
    /// slowed by `load` on every run, with the reference model (one byte, 255) at
    /// `reference_ms`. Models are one byte: the architecture's index.
    struct Fake {
        true_ms: Vec<f64>,
        reference_ms: f64,
        load: f64,
        runs: Mutex<usize>,
    }

    impl Fake {
        fn ms(&self, model: &[u8]) -> f64 {
            *self.runs.lock().unwrap() += 1;
            let quiet = match model[0] {
                255 => self.reference_ms,
                k => self.true_ms[usize::from(k)],
            };
            quiet * self.load
        }
    }

    impl FinalMeasure for Fake {
        fn arch_ms(&self, arch: &Arch) -> Result<f64> {
            Ok(self.ms(&arch.0))
        }
        fn model_ms(&self, model: &[u8]) -> Result<f64> {
            Ok(self.ms(model))
        }
        fn paired_ms(&self, model: &[u8], reference: &[u8]) -> Result<(f64, f64)> {
            Ok((self.ms(model), self.ms(reference)))
        }
    }

    /// Ten architectures, most accurate first and each a little faster than the one
    /// before (predicted 9.5 ms down to 9.05 ms).
    fn records() -> Vec<Record> {
        (0..10)
            .map(|k| Record {
                query: k + 1,
                arch: Arch(vec![k as u8]),
                arch_text: k.to_string(),
                accuracy: 90.0 - k as f64,
                test_accuracy: None,
                latency_ms: Some(predicted(k)),
                reward: 0.0,
                feasible: true,
                seconds: 0.0,
            })
            .collect()
    }

    fn predicted(k: usize) -> f64 {
        9.5 - 0.05 * k as f64
    }

    /// The truth: 6% slower than predicted (architecture 6, at 9.752 ms, is the most
    /// accurate under the budget of 10 ms less the 2% margin).
    fn optimistic() -> Vec<f64> {
        (0..10).map(|k| predicted(k) * 1.06).collect()
    }

    fn run(fake: &Fake, reference: Option<(&[u8], f64)>) -> Confirmation {
        let records = records();
        let candidates: Vec<&Record> = records.iter().collect();
        let budget = BudgetCheck {
            ms: 10.0,
            reference,
        };
        let export = |arch: &Arch| Ok(arch.0.clone());
        let write = |record: &Record| Ok(record.arch.0.clone());
        confirm(
            &candidates,
            &budget,
            Some(fake),
            20,
            &export,
            &write,
            &Quiet,
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn the_loop_answers_the_most_accurate_architecture_measured_within_budget() {
        let fake = Fake {
            true_ms: optimistic(),
            reference_ms: 20.0,
            load: 1.0,
            runs: Mutex::new(0),
        };
        let confirmation = run(&fake, None);
        assert!(confirmation.within_budget);
        assert_eq!(confirmation.chosen.arch, Arch(vec![6]));
        assert!(
            (confirmation.correction - 1.06).abs() < 1e-9,
            "{confirmation:?}"
        );
        // The first measurement teaches the correction, which skips to architecture 6;
        // then the more accurate ones within the correction's spread are checked.
        let measured: Vec<u8> = confirmation
            .finalists
            .iter()
            .map(|f| f.record.arch.0[0])
            .collect();
        assert_eq!(measured[..2], [0, 6], "{measured:?}");
        assert!(measured.len() <= 4, "{measured:?}");
    }

    #[test]
    fn a_relative_budget_is_judged_by_ratios_that_load_leaves_in_place() {
        // Half the reference's 20 ms is the budget; the machine runs everything 30% slow.
        let fake = |load| Fake {
            true_ms: optimistic(),
            reference_ms: 20.0,
            load,
            runs: Mutex::new(0),
        };
        let reference = [255u8];
        let busy = run(&fake(1.3), Some((&reference, 20.0)));
        assert!(busy.within_budget);
        assert_eq!(busy.chosen.arch, Arch(vec![6]));
        assert!(
            (busy.latency_ms - 9.752).abs() < 1e-9,
            "{}",
            busy.latency_ms
        );
        // Judged in absolute milliseconds, the same load leaves no answer within budget.
        let absolute = run(&fake(1.3), None);
        assert!(!absolute.within_budget);
    }

    #[test]
    fn without_a_measured_target_the_most_accurate_within_budget_is_the_answer() {
        let mut records = records();
        records[0].latency_ms = Some(10.5);
        let candidates: Vec<&Record> = records.iter().collect();
        let budget = BudgetCheck {
            ms: 10.0,
            reference: None,
        };
        let export = |arch: &Arch| Ok(arch.0.clone());
        let write = |record: &Record| Ok(record.arch.0.clone());
        let answer = confirm(&candidates, &budget, None, 20, &export, &write, &Quiet)
            .unwrap()
            .unwrap();
        assert_eq!(answer.chosen.arch, Arch(vec![1]));
        assert!(!answer.measured && answer.finalists.is_empty());
    }
}
