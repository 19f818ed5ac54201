//! The search loop: a strategy proposes, an evaluator (and a latency model) answers, the
//! history grows, until the budget is spent. Deterministic for a given seed.

use std::collections::HashMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::evaluate::{Evaluation, Evaluator, LatencyModel};
use crate::history::{History, Record};
use crate::objective::Objective;
use crate::space::{Arch, SearchSpace};
use crate::strategy::Strategy;

/// When a search stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// After this many distinct architectures are evaluated.
    Queries(usize),
    /// Once the evaluator's simulated training seconds reach this total.
    Seconds(f64),
}

/// Settings of one search run.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// When to stop.
    pub budget: Budget,
    /// Seeds every random choice of the run.
    pub seed: u64,
    /// What the strategy maximises.
    pub objective: Objective,
    /// Consecutive proposals of already-evaluated architectures tolerated before the loop
    /// substitutes a random unseen one (so a converged strategy cannot stall the run).
    pub max_repeats: usize,
}

impl SearchConfig {
    /// A run with the given budget and seed, maximising accuracy.
    pub fn new(budget: Budget, seed: u64) -> Self {
        SearchConfig {
            budget,
            seed,
            objective: Objective::Accuracy,
            max_repeats: 100,
        }
    }
}

/// What the loop asks the world for each new architecture.
pub struct Oracle<'a> {
    /// Scores accuracy.
    pub evaluator: &'a dyn Evaluator,
    /// Measures latency, when the objective or the report needs it.
    pub latency: Option<&'a dyn LatencyModel>,
    /// Answers already known (a resumed run's history): used instead of asking again.
    pub known: HashMap<Arch, (Evaluation, Option<f64>)>,
}

impl<'a> Oracle<'a> {
    /// An oracle over an evaluator and an optional latency model.
    pub fn new(evaluator: &'a dyn Evaluator, latency: Option<&'a dyn LatencyModel>) -> Self {
        Oracle {
            evaluator,
            latency,
            known: HashMap::new(),
        }
    }

    fn ask(&self, arch: &Arch) -> Result<(Evaluation, Option<f64>)> {
        if let Some(answer) = self.known.get(arch) {
            return Ok(*answer);
        }
        let evaluation = self.evaluator.evaluate(arch)?;
        let latency = self.latency.map(|l| l.latency_ms(arch)).transpose()?;
        Ok((evaluation, latency))
    }
}

/// Runs `strategy` on `space` until the budget is spent; `on_record` sees each new record
/// as soon as it exists (to write it to disk, advance a progress bar, ...).
pub fn run_search(
    space: &dyn SearchSpace,
    strategy: &mut dyn Strategy,
    oracle: &Oracle<'_>,
    config: &SearchConfig,
    on_record: &mut dyn FnMut(&Record) -> Result<()>,
) -> Result<History> {
    if matches!(config.budget, Budget::Seconds(_)) && !oracle.evaluator.has_cost() {
        return Err(Error::Setting {
            name: "budget".to_string(),
            problem: format!(
                "{} has no training-time data, so a simulated-seconds budget cannot be kept; give a query budget",
                oracle.evaluator.name()
            ),
        });
    }
    if config.objective.needs_latency() && oracle.latency.is_none() {
        return Err(Error::Setting {
            name: "latency-ms".to_string(),
            problem: "a latency budget needs a latency model (give a latency target)".to_string(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut history = History::new();
    let mut seconds = 0.0;
    let mut repeats = 0;
    let done = |history: &History, seconds: f64| match config.budget {
        Budget::Queries(n) => history.len() >= n,
        Budget::Seconds(s) => seconds >= s,
    };
    while !done(&history, seconds) {
        let mut arch = strategy.propose(space, &history, &mut rng);
        if let Some(record) = history.get(&arch) {
            let record = record.clone();
            strategy.observe(space, &history, &record);
            repeats += 1;
            if repeats <= config.max_repeats {
                continue;
            }
            match unseen_random(space, &history, &mut rng) {
                Some(fresh) => arch = fresh,
                None => break,
            }
        }
        repeats = 0;
        let (evaluation, latency_ms) = oracle.ask(&arch)?;
        seconds += evaluation.cost_seconds;
        let record = Record {
            query: history.len() + 1,
            arch_text: space.format(&arch),
            arch,
            accuracy: evaluation.accuracy,
            test_accuracy: evaluation.test_accuracy,
            latency_ms,
            reward: config.objective.reward(evaluation.accuracy, latency_ms),
            feasible: config.objective.feasible(latency_ms),
            seconds,
        };
        on_record(&record)?;
        history.push(record.clone());
        strategy.observe(space, &history, &record);
    }
    Ok(history)
}

/// A uniformly random architecture not yet in the history (None when none is found in
/// 10,000 draws: the space is, in effect, exhausted).
fn unseen_random(space: &dyn SearchSpace, history: &History, rng: &mut ChaCha8Rng) -> Option<Arch> {
    (0..10_000)
        .map(|_| space.sample(rng))
        .find(|arch| history.get(arch).is_none())
}
