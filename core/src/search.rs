//! The search loop: a strategy proposes, an evaluator (and a latency model) answers, the
//! history grows, until the budget is spent. Deterministic for a given seed.

use std::collections::HashMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::evaluate::{BatchEvaluator, Evaluation, Evaluator, LatencyModel};
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
    /// Architectures proposed and evaluated together (1: one at a time, each observed
    /// before the next is proposed). The history depends on it, never on who evaluates.
    pub batch: usize,
    /// Under a latency budget with a cheap latency model (a table, a fitted predictor),
    /// proposals over the budget are drawn again (up to [`MAX_SCREENED`] times each)
    /// before a query is spent on them: the strategy searches the feasible set.
    pub screen_infeasible: bool,
    /// How far over the budget, as a share of it, a screened proposal may be predicted and
    /// still be evaluated (a search that measures its finalists keeps candidates a little
    /// over, since the prediction may be pessimistic).
    pub screen_margin: f64,
}

/// Proposals over the budget drawn again, at most, before one is evaluated anyway (and
/// penalised by the objective, so the strategy learns from it).
pub const MAX_SCREENED: usize = 100;

impl SearchConfig {
    /// A run with the given budget and seed, maximising accuracy.
    pub fn new(budget: Budget, seed: u64) -> Self {
        SearchConfig {
            budget,
            seed,
            objective: Objective::Accuracy,
            max_repeats: 100,
            batch: 1,
            screen_infeasible: true,
            screen_margin: 0.0,
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
    /// Scores a batch of proposals at once (threads, cluster jobs); `None`: the evaluator,
    /// one after another.
    pub executor: Option<&'a dyn BatchEvaluator>,
}

impl<'a> Oracle<'a> {
    /// An oracle over an evaluator and an optional latency model.
    pub fn new(evaluator: &'a dyn Evaluator, latency: Option<&'a dyn LatencyModel>) -> Self {
        Oracle {
            evaluator,
            latency,
            known: HashMap::new(),
            executor: None,
        }
    }

    /// Answers every architecture of `archs`, in order: known ones from memory, the rest
    /// through the executor (or the evaluator), their latency from the latency model.
    fn ask_all(&self, archs: &[Arch]) -> Result<Vec<(Evaluation, Option<f64>)>> {
        let unknown: Vec<Arch> = archs
            .iter()
            .filter(|a| !self.known.contains_key(*a))
            .cloned()
            .collect();
        let evaluations = match self.executor {
            Some(executor) if !unknown.is_empty() => executor.evaluate_batch(&unknown)?,
            _ => self.evaluator.evaluate_many(&unknown)?,
        };
        if evaluations.len() != unknown.len() {
            return Err(Error::Setting {
                name: "executor".into(),
                problem: format!(
                    "{} answers for {} architectures",
                    evaluations.len(),
                    unknown.len()
                ),
            });
        }
        let mut fresh = unknown.iter().zip(evaluations).collect::<HashMap<_, _>>();
        archs
            .iter()
            .map(|arch| match self.known.get(arch) {
                Some(answer) => Ok(*answer),
                None => {
                    let evaluation = fresh.remove(arch).expect("an answer per unknown arch");
                    let latency = self.latency.map(|l| l.latency_ms(arch)).transpose()?;
                    Ok((evaluation, latency))
                }
            })
            .collect()
    }

    /// The answer for `arch`; `latency_ms`, where the loop already asked the latency model
    /// (the screen), is not asked again.
    fn ask(&self, arch: &Arch, latency_ms: Option<f64>) -> Result<(Evaluation, Option<f64>)> {
        if let Some(answer) = self.known.get(arch) {
            return Ok(*answer);
        }
        if self.executor.is_some() {
            // A batch of one still goes where the executor sends it (a cluster's job).
            let answers = self.ask_all(std::slice::from_ref(arch))?;
            return Ok(answers[0]);
        }
        let evaluation = self.evaluator.evaluate(arch)?;
        let latency = match latency_ms {
            Some(ms) => Some(ms),
            None => self.latency.map(|l| l.latency_ms(arch)).transpose()?,
        };
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
    let screen = match (config.objective, oracle.latency) {
        (Objective::LatencyBudget { budget_ms, .. }, Some(latency))
            if config.screen_infeasible && latency.is_cheap() =>
        {
            Some((latency, budget_ms))
        }
        _ => None,
    };
    // The screen's answer for a proposal: its latency and whether that is within reach.
    let screened_latency = |arch: &Arch| -> Result<Option<(f64, bool)>> {
        let Some((latency, budget_ms)) = screen else {
            return Ok(None);
        };
        let ms = latency.latency_ms(arch)?;
        Ok(Some((
            ms,
            ms <= budget_ms * (1.0 + config.screen_margin.max(0.0)),
        )))
    };
    // The latency of a proposal the screen refuses; None for one it lets through.
    let refused = |arch: &Arch| -> Result<Option<f64>> {
        Ok(screened_latency(arch)?.and_then(|(ms, within)| (!within).then_some(ms)))
    };
    if config.batch > 1 {
        while !done(&history, seconds) {
            let n = match config.budget {
                Budget::Queries(total) => config.batch.min(total - history.len()),
                Budget::Seconds(_) => config.batch,
            };
            let archs = next_batch(
                space,
                strategy,
                (&history, &mut rng),
                n,
                config.max_repeats,
                &refused,
            )?;
            if archs.is_empty() {
                break;
            }
            for (arch, (evaluation, latency_ms)) in archs.iter().zip(oracle.ask_all(&archs)?) {
                seconds += evaluation.cost_seconds;
                let record = new_record(
                    space,
                    config,
                    &history,
                    arch.clone(),
                    evaluation,
                    latency_ms,
                    seconds,
                );
                on_record(&record)?;
                history.push(record.clone());
                strategy.observe(space, &history, &record);
            }
        }
        return Ok(history);
    }
    let mut screened = 0;
    while !done(&history, seconds) {
        let mut arch = strategy.propose(space, &history, &mut rng);
        let mut latency_known = None;
        if history.get(&arch).is_none()
            && screened < MAX_SCREENED
            && let Some((ms, within)) = screened_latency(&arch)?
        {
            if !within {
                strategy.screened(space, &arch, ms);
                screened += 1;
                continue;
            }
            latency_known = Some(ms);
        }
        screened = 0;
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
            latency_known = None;
        }
        repeats = 0;
        let (evaluation, latency_ms) = oracle.ask(&arch, latency_known)?;
        seconds += evaluation.cost_seconds;
        let record = new_record(
            space, config, &history, arch, evaluation, latency_ms, seconds,
        );
        on_record(&record)?;
        history.push(record.clone());
        strategy.observe(space, &history, &record);
    }
    Ok(history)
}

/// The record of the next query.
fn new_record(
    space: &dyn SearchSpace,
    config: &SearchConfig,
    history: &History,
    arch: Arch,
    evaluation: Evaluation,
    latency_ms: Option<f64>,
    seconds: f64,
) -> Record {
    Record {
        query: history.len() + 1,
        arch_text: space.format(&arch),
        arch,
        accuracy: evaluation.accuracy,
        test_accuracy: evaluation.test_accuracy,
        latency_ms,
        reward: config.objective.reward(evaluation.accuracy, latency_ms),
        feasible: config.objective.feasible(latency_ms),
        seconds,
    }
}

/// `n` distinct architectures not yet in the history, from the strategy's batches: a repeat
/// of an earlier query is observed again (as in the one-at-a-time loop) and asked for
/// anew; past `max_repeats` repeats the batch is filled with random unseen architectures.
/// Proposals `refused` gives a latency for (over the budget) are drawn again, [`MAX_SCREENED`]
/// times per place at most, and the strategy is told of each.
/// Fewer than `n` only when the space is, in effect, exhausted.
fn next_batch(
    space: &dyn SearchSpace,
    strategy: &mut dyn Strategy,
    (history, rng): (&History, &mut ChaCha8Rng),
    n: usize,
    max_repeats: usize,
    refused: &dyn Fn(&Arch) -> Result<Option<f64>>,
) -> Result<Vec<Arch>> {
    let mut batch: Vec<Arch> = Vec::with_capacity(n);
    let mut repeats = 0;
    let mut screened = 0;
    while batch.len() < n && repeats <= max_repeats {
        let proposals = strategy.propose_batch(space, history, rng, n - batch.len());
        if proposals.is_empty() {
            repeats += 1;
        }
        for arch in proposals {
            if batch.len() == n {
                break;
            }
            if let Some(record) = history.get(&arch) {
                let record = record.clone();
                strategy.observe(space, history, &record);
                repeats += 1;
            } else if batch.contains(&arch) {
                repeats += 1;
            } else if screened < MAX_SCREENED * n
                && let Some(ms) = refused(&arch)?
            {
                strategy.screened(space, &arch, ms);
                screened += 1;
            } else {
                batch.push(arch);
            }
        }
    }
    while batch.len() < n {
        let fresh = (0..10_000)
            .map(|_| space.sample(rng))
            .find(|arch| history.get(arch).is_none() && !batch.contains(arch));
        match fresh {
            Some(arch) => batch.push(arch),
            None => break,
        }
    }
    Ok(batch)
}

/// A uniformly random architecture not yet in the history (None when none is found in
/// 10,000 draws: the space is, in effect, exhausted).
fn unseen_random(space: &dyn SearchSpace, history: &History, rng: &mut ChaCha8Rng) -> Option<Arch> {
    (0..10_000)
        .map(|_| space.sample(rng))
        .find(|arch| history.get(arch).is_none())
}
