//! L2NAS (Mills et al., 2021, arXiv 2109.12425): an actor-critic that learns where good
//! architectures are from the search history.
//!
//! - The **action** is a continuous vector in `[-1, 1]` with one value per decision option
//!   (like DARTS's alphas, bounded by the actor's tanh output); the architecture is its
//!   argmax per decision (ties, from clipping or a saturated tanh, broken at random).
//! - The **state** is the distribution of the best architectures found so far: the mean
//!   one-hot encoding of the top-K of the history (by reward).
//! - The **critic** `Q(s, a)` is fitted to a high quantile of the rewards with the pinball
//!   loss (quantile 0.9), not to their mean, so it models the upper tail of what an action
//!   yields; the **actor** ascends the critic (deterministic policy gradient).
//! - **Exploration**: Gaussian noise on the actor's action (clipped to the range), and
//!   epsilon-greedy uniformly random actions drawn in the same range, so every stored action
//!   is on the scale the critic sees from the actor.
//!
//! Every proposal is labelled by where it came from ([`Source`]: warm-up, actor, exploration,
//! fallback) and `hwnas bench` reports the shares.
//!
//! Choices where the paper is silent, and why:
//! - K = 10 for the state: enough to describe a region, small enough to move as the history
//!   improves. Warm-up: 10 random actions before the networks are used.
//! - Rewards are standardised over the replay before fitting, so the same learning rates
//!   serve accuracy in percent, predictor fractions or proxy scores.
//! - The replay is bounded: the 64 best experiences and the 192 most recent. With a fixed
//!   number of steps per evaluation (8 critic steps, then 4 actor steps, minibatches of 32)
//!   the cost of a query does not grow with the history. The networks train before a
//!   proposal when records arrived since they last did: once per query one at a time, once
//!   per round when the loop asks for a batch (`--batch`), with the steps of one query for
//!   each 25 new records the round brought (at least once), so that where queries cost
//!   microseconds (a predictor and a table) more queries are bought with the time instead
//!   of more training: on Once-for-All at 30 ms, 3,000 queries in rounds of 25 scored
//!   82.07 in 0.87 s where rounds of 20 trained 4 times each scored 81.81 at 1,000 queries
//!   in 0.95 s (10 seeds; docs/BENCHMARKS.md).
//! - The critic reads the action through a softmax over each decision's values at
//!   temperature 0.3 ([`relax`]): close to the one-hot encoding of the architecture the
//!   action decodes to, whatever made it (actor, random, fallback), and smooth in the action
//!   so that the actor still has a gradient. Read raw, a continuous action in a box holds
//!   much that does not change the architecture, and the critic learned too little from 100
//!   queries: on NAS-Bench-201 CIFAR-10 the actor then did worse than random search (93.49 vs
//!   93.93 at 100 queries, 20 seeds); through the softmax, 94.10 (temperature 0.1: 94.06).
//! - The critic reads `[s, a]` through two first-layer matrices summed (the same as one layer
//!   over the concatenation), 64 hidden units, two hidden layers; the actor maps `s` to `a`
//!   through 64 hidden units and a tanh. Adam, 1e-3 for both.
//! - Noise: standard deviation 0.3; epsilon 0.1. A proposal already in the history is re-drawn
//!   with fresh noise (up to 20 times) before falling back to an unseen mutation of the best
//!   architecture, stored as the actor's action with the mutated decisions' values swapped
//!   so that it decodes to that mutation (the same range, the same values).

use std::collections::VecDeque;

use hwnas_kernels::{Activation, Cpu, Tape, Tensor, Var};
use rand::{Rng, RngCore};
use rand_distr::{Distribution, Normal};

use super::Strategy;
use super::nets::{Mlp, pinball};
use crate::history::{History, Record};
use crate::space::{Arch, SearchSpace};

/// L2NAS's settings.
#[derive(Debug, Clone, Copy)]
pub struct L2NasConfig {
    /// Top-K of the history that form the state.
    pub top_k: usize,
    /// Random architectures before the networks are used.
    pub warmup: usize,
    /// The quantile the critic is fitted to.
    pub quantile: f32,
    /// Action noise (standard deviation).
    pub noise: f32,
    /// Probability of a uniformly random action.
    pub epsilon: f64,
    /// Critic steps per evaluation.
    pub critic_steps: usize,
    /// Actor steps per evaluation.
    pub actor_steps: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Best experiences kept for training.
    pub replay_top: usize,
    /// Most recent experiences kept for training.
    pub replay_recent: usize,
    /// Temperature of the per-decision softmax the critic reads actions through.
    pub temperature: f32,
    /// New records per block of training steps in a round: a round that brought `n` new
    /// records trains `ceil(n / round_records_per_block)` times the steps of one query, at
    /// least once (one query at a time: once, as before rounds existed).
    pub round_records_per_block: usize,
}

impl Default for L2NasConfig {
    fn default() -> Self {
        L2NasConfig {
            top_k: 10,
            warmup: 10,
            quantile: 0.9,
            noise: 0.3,
            epsilon: 0.1,
            critic_steps: 8,
            actor_steps: 4,
            batch: 32,
            replay_top: 64,
            replay_recent: 192,
            temperature: 0.3,
            round_records_per_block: 25,
        }
    }
}

/// Where an L2NAS proposal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A uniformly random action before the networks are used.
    Warmup,
    /// The actor's action with Gaussian noise.
    Actor,
    /// An epsilon-greedy uniformly random action.
    Exploration,
    /// Every noisy action was a known architecture: a mutation of the best one.
    Fallback,
}

impl Source {
    /// The label `hwnas bench` reports.
    pub fn label(self) -> &'static str {
        match self {
            Source::Warmup => "warmup",
            Source::Actor => "actor",
            Source::Exploration => "exploration",
            Source::Fallback => "fallback",
        }
    }
}

/// One observed proposal: the state it was made in, its action and the reward it earned.
#[derive(Debug, Clone)]
struct Experience {
    state: Vec<f32>,
    /// The action as the critic reads it ([`relax`]).
    relaxed: Vec<f32>,
    reward: f32,
}

/// The experiences the networks train on: the best few and the most recent, both bounded.
#[derive(Debug, Default)]
struct Replay {
    /// Best reward first, at most `top_capacity`.
    top: Vec<Experience>,
    /// Oldest first, at most `recent_capacity`.
    recent: VecDeque<Experience>,
    /// Proposals the loop screened out as over the budget, oldest first, at most
    /// `recent_capacity / 4` (a tight budget refuses many per query; they must not crowd
    /// out what was measured).
    refused: VecDeque<Experience>,
    top_capacity: usize,
    recent_capacity: usize,
    /// The lowest reward measured so far, what a refused proposal is taught as.
    floor: Option<f32>,
}

impl Replay {
    fn push(&mut self, experience: Experience) {
        self.floor = Some(
            self.floor
                .map_or(experience.reward, |f| f.min(experience.reward)),
        );
        let at = self.top.partition_point(|e| e.reward >= experience.reward);
        if at < self.top_capacity {
            self.top.insert(at, experience.clone());
            self.top.truncate(self.top_capacity);
        }
        if self.recent.len() >= self.recent_capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(experience);
    }

    fn push_refused(&mut self, experience: Experience) {
        if self.refused.len() >= (self.recent_capacity / 4).max(1) {
            self.refused.pop_front();
        }
        self.refused.push_back(experience);
    }

    fn len(&self) -> usize {
        self.top.len() + self.recent.len() + self.refused.len()
    }

    fn get(&self, i: usize) -> &Experience {
        let (top, recent) = (self.top.len(), self.recent.len());
        if i < top {
            &self.top[i]
        } else if i < top + recent {
            &self.recent[i - top]
        } else {
            &self.refused[i - top - recent]
        }
    }
}

/// A proposal awaiting its record.
#[derive(Debug, Clone)]
struct Pending {
    arch: Arch,
    state: Vec<f32>,
    action: Vec<f32>,
    source: Source,
}

/// The L2NAS strategy.
pub struct L2Nas {
    config: L2NasConfig,
    actor: Mlp,
    critic_state: Mlp,
    critic_action: Mlp,
    critic_head: Mlp,
    replay: Replay,
    /// Proposals not yet observed, newest last: a batch is observed after all its
    /// proposals, and a proposal the loop drew again (over the budget) never is, so the
    /// oldest are dropped past [`MAX_PENDING`].
    pending: VecDeque<Pending>,
    /// `(query, source)` of every new record observed.
    sources: Vec<(usize, &'static str)>,
    /// Options per decision, in encoding order.
    sizes: Vec<usize>,
    rng_seed: u64,
    /// Whether records were observed since the networks last trained: they train before
    /// the next proposal, in one go for a whole round.
    untrained: bool,
    /// Of those, the new records (not repeats): what sizes a round's training (see
    /// [`L2NasConfig::round_records_per_block`]).
    untrained_new: usize,
    /// Critic steps taken so far (what a round's training is checked by).
    critic_steps_taken: usize,
    /// The state and the actor's action for it at a history length, reused by the refills
    /// of a round (proposals the screen refused) until the history or the networks change.
    round: Option<(usize, Vec<f32>, Vec<f32>)>,
}

impl L2Nas {
    /// L2NAS for `space` with the default settings.
    pub fn new(space: &dyn SearchSpace) -> Self {
        Self::with_config(space, L2NasConfig::default())
    }

    /// L2NAS with explicit settings.
    pub fn with_config(space: &dyn SearchSpace, config: L2NasConfig) -> Self {
        let d = space.encoding_len();
        L2Nas {
            config,
            actor: Mlp::new(&[d, 64, d], 1e-3, 1),
            critic_state: Mlp::new(&[d, 64], 1e-3, 2),
            critic_action: Mlp::new(&[d, 64], 1e-3, 3),
            critic_head: Mlp::new(&[64, 64, 1], 1e-3, 4),
            replay: Replay {
                top_capacity: config.replay_top,
                recent_capacity: config.replay_recent.max(1),
                ..Replay::default()
            },
            pending: VecDeque::new(),
            sources: Vec::new(),
            sizes: space.decisions().iter().map(|d| d.choices.len()).collect(),
            rng_seed: 0,
            untrained: false,
            untrained_new: 0,
            critic_steps_taken: 0,
            round: None,
        }
    }
}

/// The mean one-hot encoding of the `k` best records (zeros for an empty history).
pub fn top_k_state(space: &dyn SearchSpace, history: &History, k: usize) -> Vec<f32> {
    let top = history.top_k(k);
    let mut state = vec![0.0; space.encoding_len()];
    for record in &top {
        for (s, v) in state.iter_mut().zip(space.one_hot(&record.arch)) {
            *s += v / top.len() as f32;
        }
    }
    state
}

fn rows<'a>(rows: impl ExactSizeIterator<Item = &'a Vec<f32>>, width: usize) -> Tensor {
    let n = rows.len();
    let mut data = Vec::with_capacity(n * width);
    for row in rows {
        data.extend_from_slice(row);
    }
    Tensor::new(&[n, width], data).expect("equal rows")
}

/// `action` as the critic reads it: a softmax over each decision's values at `temperature`,
/// close to the one-hot encoding of the architecture the action decodes to, and smooth in the
/// action so that the actor has a gradient. A random action and the actor's read alike.
pub fn relax(sizes: &[usize], action: &[f32], temperature: f32) -> Vec<f32> {
    let mut relaxed = Vec::with_capacity(action.len());
    let mut offset = 0;
    for &size in sizes {
        let slice = &action[offset..offset + size];
        let scaled: Vec<f32> = slice.iter().map(|v| v / temperature).collect();
        relaxed.extend(super::nets::softmax(&scaled));
        offset += size;
    }
    relaxed
}

/// [`relax`] of a batch of actions `[N, encoding]` on a tape: one segmented softmax.
fn relax_on_tape(tape: &mut Tape<'_>, action: Var, sizes: &[usize], temperature: f32) -> Var {
    tape.segment_softmax(action, sizes, 1.0 / temperature)
        .expect("the decisions tile the encoding")
}

/// The architecture an action stands for: the argmax of each decision's values, ties broken
/// uniformly at random. Clipping and a saturated tanh put several options at exactly 1; the
/// first of them would always be the space's first option (`none` on a NAS-Bench-201 edge).
pub fn decode_action(space: &dyn SearchSpace, action: &[f32], rng: &mut dyn RngCore) -> Arch {
    let mut choices = Vec::with_capacity(space.decisions().len());
    let mut offset = 0;
    for decision in space.decisions() {
        let slice = &action[offset..offset + decision.choices.len()];
        let max = slice.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let tied = slice.iter().filter(|&&v| v == max).count();
        let mut pick = if tied > 1 {
            rng.random_range(0..tied)
        } else {
            0
        };
        let mut choice = 0;
        for (i, &v) in slice.iter().enumerate() {
            if v == max {
                if pick == 0 {
                    choice = i;
                    break;
                }
                pick -= 1;
            }
        }
        choices.push(choice as u8);
        offset += decision.choices.len();
    }
    Arch(choices)
}

/// `action` changed as little as possible to decode to `arch`: within each decision whose
/// argmax is not `arch`'s choice, that choice's value and the argmax's value swap places.
pub fn steer(space: &dyn SearchSpace, action: &[f32], arch: &Arch) -> Vec<f32> {
    let mut steered = action.to_vec();
    let mut offset = 0;
    for (decision, &choice) in space.decisions().iter().zip(arch.choices()) {
        let slice = &mut steered[offset..offset + decision.choices.len()];
        let mut best = 0;
        for (i, &v) in slice.iter().enumerate() {
            if v > slice[best] {
                best = i;
            }
        }
        let choice = choice as usize;
        if best != choice {
            slice.swap(best, choice);
        }
        // Ties (a saturated actor): the others step just below the choice, in the range.
        let top = slice[choice];
        if top - 1e-3 < -1.0 {
            slice[choice] = -1.0 + 2e-3;
        }
        let top = slice[choice];
        for (i, v) in slice.iter_mut().enumerate() {
            if i != choice && *v >= top {
                *v = top - 1e-3;
            }
        }
        offset += decision.choices.len();
    }
    steered
}

impl L2Nas {
    /// Q(s, a) for a batch, on a tape; returns the output variable and the critic's variables.
    fn critic_forward(&self, tape: &mut Tape<'_>, s: Var, a: Var) -> (Var, [Vec<(Var, Var)>; 3]) {
        let ps = self.critic_state.on_tape(tape);
        let pa = self.critic_action.on_tape(tape);
        let ph = self.critic_head.on_tape(tape);
        let hs = Mlp::forward(tape, &ps, s);
        let ha = Mlp::forward(tape, &pa, a);
        let h = tape.add(hs, ha).expect("same width");
        let h = tape.activation(h, Activation::Relu).expect("relu");
        let q = Mlp::forward(tape, &ph, h);
        (q, [ps, pa, ph])
    }

    /// The actor's bounded action for a batch of states, on a tape.
    fn actor_forward(tape: &mut Tape<'_>, params: &[(Var, Var)], s: Var) -> Var {
        let raw = Mlp::forward(tape, params, s);
        tape.activation(raw, Activation::Tanh).expect("tanh")
    }

    /// The actor's action for one state (no gradients).
    fn act(&self, state: &[f32]) -> Vec<f32> {
        let backend = Cpu;
        let mut tape = Tape::new(&backend);
        let params = self.actor.on_tape(&mut tape);
        let s = tape.leaf(
            Tensor::new(&[1, state.len()], state.to_vec()).expect("one row"),
            false,
        );
        let a = Self::actor_forward(&mut tape, &params, s);
        tape.value(a).data().to_vec()
    }

    /// Indices of a random minibatch of the `n` experiences (with replacement).
    fn minibatch(&self, n: usize, rng: &mut dyn RngCore) -> Vec<usize> {
        (0..self.config.batch.min(n))
            .map(|_| rng.random_range(0..n))
            .collect()
    }

    /// The chosen experiences' states or actions as one `[batch, width]` tensor.
    fn stack(&self, batch: &[usize], field: impl Fn(&Experience) -> &Vec<f32>) -> Tensor {
        let width = field(self.replay.get(0)).len();
        rows(batch.iter().map(|&i| field(self.replay.get(i))), width)
    }

    /// `blocks` times the configured critic steps, then as many times the actor steps.
    fn train(&mut self, rng: &mut dyn RngCore, blocks: usize) {
        let n = self.replay.len();
        if n < 2 {
            return;
        }
        let rewards: Vec<f32> = (0..n).map(|i| self.replay.get(i).reward).collect();
        let mean = rewards.iter().sum::<f32>() / n as f32;
        let std = (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / n as f32)
            .sqrt()
            .max(1e-6);
        let normalised: Vec<f32> = rewards.iter().map(|r| (r - mean) / std).collect();
        let backend = Cpu;
        for _ in 0..self.config.critic_steps * blocks {
            self.critic_steps_taken += 1;
            let batch = self.minibatch(n, rng);
            let mut tape = Tape::new(&backend);
            let s = tape.leaf(self.stack(&batch, |e| &e.state), false);
            let a = tape.leaf(self.stack(&batch, |e| &e.relaxed), false);
            let (q, params) = self.critic_forward(&mut tape, s, a);
            let targets: Vec<f32> = batch.iter().map(|&i| normalised[i]).collect();
            let (_, grad) = pinball(tape.value(q).data(), &targets, self.config.quantile);
            tape.backward_from(
                q,
                Tensor::new(&[batch.len(), 1], grad).expect("one per row"),
            )
            .expect("shapes agree");
            let grads = [
                self.critic_state.gradients(&tape, &params[0]),
                self.critic_action.gradients(&tape, &params[1]),
                self.critic_head.gradients(&tape, &params[2]),
            ];
            drop(tape);
            self.critic_state.apply(&grads[0]);
            self.critic_action.apply(&grads[1]);
            self.critic_head.apply(&grads[2]);
        }
        for _ in 0..self.config.actor_steps * blocks {
            let batch = self.minibatch(n, rng);
            let mut tape = Tape::new(&backend);
            let s = tape.leaf(self.stack(&batch, |e| &e.state), false);
            let actor = self.actor.on_tape(&mut tape);
            let a = Self::actor_forward(&mut tape, &actor, s);
            let a = relax_on_tape(&mut tape, a, &self.sizes, self.config.temperature);
            let (q, _) = self.critic_forward(&mut tape, s, a);
            // Ascend Q: the gradient of -mean(Q).
            let seed = Tensor::new(
                &[batch.len(), 1],
                vec![-1.0 / batch.len() as f32; batch.len()],
            )
            .expect("one per row");
            tape.backward_from(q, seed).expect("shapes agree");
            let grads = self.actor.gradients(&tape, &actor);
            drop(tape);
            self.actor.apply(&grads);
        }
    }
}

/// Proposals awaiting their record, at most (beyond the largest batch a plan allows).
pub const MAX_PENDING: usize = 8192;

impl L2Nas {
    fn remember(&mut self, arch: &Arch, state: Vec<f32>, action: Vec<f32>, source: Source) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            arch: arch.clone(),
            state,
            action,
            source,
        });
    }

    /// Trains the networks when records arrived since they last did, seeded by the previous
    /// proposal's draw: one at a time, the same as training as each record arrives.
    fn train_if_due(&mut self) {
        if std::mem::take(&mut self.untrained) {
            let mut rng =
                <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(self.rng_seed);
            let blocks = std::mem::take(&mut self.untrained_new)
                .div_ceil(self.config.round_records_per_block.max(1))
                .max(1);
            self.train(&mut rng, blocks);
            self.round = None;
        }
    }

    /// One proposal from `state` and the actor's action `base` for it: a random action
    /// (warm-up, epsilon), else the noisy actor until `fresh` accepts what it decodes to,
    /// else a mutation of the best architecture.
    fn propose_from(
        &mut self,
        space: &dyn SearchSpace,
        history: &History,
        rng: &mut dyn RngCore,
        state: &[f32],
        base: &[f32],
        fresh: &mut dyn FnMut(&Arch) -> bool,
    ) -> Arch {
        let warming_up = history.len() < self.config.warmup;
        if warming_up || rng.random_bool(self.config.epsilon) {
            let action = Self::random_action(space, rng);
            let arch = decode_action(space, &action, rng);
            let source = if warming_up {
                Source::Warmup
            } else {
                Source::Exploration
            };
            self.remember(&arch, state.to_vec(), action, source);
            return arch;
        }
        let normal = Normal::new(0.0f32, self.config.noise).expect("positive noise");
        for _ in 0..20 {
            let action: Vec<f32> = base
                .iter()
                .map(|v| (v + normal.sample(rng)).clamp(-1.0, 1.0))
                .collect();
            let arch = decode_action(space, &action, rng);
            if fresh(&arch) {
                self.remember(&arch, state.to_vec(), action, Source::Actor);
                return arch;
            }
        }
        // Every noisy action landed on a known architecture: step away from the best one.
        let best = history
            .top_k(1)
            .first()
            .map(|r| r.arch.clone())
            .unwrap_or_else(|| space.sample(rng));
        let mut arch = space.mutate(&best, rng);
        for _ in 0..20 {
            if fresh(&arch) {
                break;
            }
            arch = space.mutate(&arch, rng);
        }
        let action = steer(space, base, &arch);
        self.remember(&arch, state.to_vec(), action, Source::Fallback);
        arch
    }

    /// A uniformly random action in `[-1, 1]`.
    fn random_action(space: &dyn SearchSpace, rng: &mut dyn RngCore) -> Vec<f32> {
        (0..space.encoding_len())
            .map(|_| rng.random_range(-1.0f32..=1.0))
            .collect()
    }
}

impl Strategy for L2Nas {
    fn name(&self) -> &'static str {
        "l2nas"
    }

    fn propose(
        &mut self,
        space: &dyn SearchSpace,
        history: &History,
        rng: &mut dyn RngCore,
    ) -> Arch {
        // A round of one: the same draws, and the state and actor output reused where
        // nothing changed since (a proposal the screen refused).
        self.propose_batch(space, history, rng, 1)
            .pop()
            .expect("a round of one")
    }

    /// A round of `n` from one state and one actor output (the networks trained once
    /// before it): each proposal's noise drawn until it is new to the history and to the
    /// round, so that the round is `n` distinct architectures.
    fn propose_batch(
        &mut self,
        space: &dyn SearchSpace,
        history: &History,
        rng: &mut dyn RngCore,
        n: usize,
    ) -> Vec<Arch> {
        self.train_if_due();
        self.rng_seed = rng.next_u64();
        let (state, base) = match self.round.take() {
            Some((len, state, base)) if len == history.len() => (state, base),
            _ => {
                let state = top_k_state(space, history, self.config.top_k);
                let base = self.act(&state);
                (state, base)
            }
        };
        let mut round: std::collections::HashSet<Arch> = std::collections::HashSet::new();
        let mut archs = Vec::with_capacity(n);
        for _ in 0..n {
            let arch = self.propose_from(space, history, rng, &state, &base, &mut |arch| {
                history.get(arch).is_none() && !round.contains(arch)
            });
            round.insert(arch.clone());
            archs.push(arch);
        }
        self.round = Some((history.len(), state, base));
        archs
    }

    fn observe(&mut self, _: &dyn SearchSpace, history: &History, record: &Record) {
        let Some(at) = self.pending.iter().rposition(|p| p.arch == record.arch) else {
            return;
        };
        let pending = self.pending.remove(at).expect("a pending proposal");
        // New records arrive in query order; a repeat's record is an earlier one.
        let is_new = record.query > self.sources.last().map_or(0, |&(q, _)| q);
        if is_new {
            self.sources.push((record.query, pending.source.label()));
        }
        if record.reward.is_nan() {
            // Nothing to learn from an architecture the evaluator cannot score.
            return;
        }
        let relaxed = relax(&self.sizes, &pending.action, self.config.temperature);
        self.replay.push(Experience {
            state: pending.state,
            relaxed,
            reward: record.reward as f32,
        });
        if history.len() >= self.config.warmup {
            self.untrained = true;
            self.untrained_new += usize::from(is_new);
        }
    }

    fn screened(&mut self, _: &dyn SearchSpace, arch: &Arch, _: f64) {
        let Some(at) = self.pending.iter().rposition(|p| p.arch == *arch) else {
            return;
        };
        let pending = self.pending.remove(at).expect("a pending proposal");
        // Over the budget: as good as the worst measured (nothing is known before that).
        if let Some(floor) = self.replay.floor {
            let relaxed = relax(&self.sizes, &pending.action, self.config.temperature);
            self.replay.push_refused(Experience {
                state: pending.state,
                relaxed,
                reward: floor,
            });
        }
    }

    fn sources(&self) -> Vec<(usize, &'static str)> {
        self.sources.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Nb201Space;

    #[test]
    fn the_state_is_the_mean_encoding_of_the_top_k() {
        let space = Nb201Space::new();
        let mut history = History::new();
        for (i, ops) in [[3u8; 6], [1u8; 6], [2u8; 6]].iter().enumerate() {
            history.push(Record::scored(
                i + 1,
                Arch(ops.to_vec()),
                [90.0, 50.0, 80.0][i],
            ));
        }
        let state = top_k_state(&space, &history, 2);
        // Edge 0: half nor_conv_3x3 (index 3), half nor_conv_1x1 (index 2).
        assert_eq!(&state[0..5], &[0.0, 0.0, 0.5, 0.5, 0.0]);
        assert!((state.iter().sum::<f32>() - 6.0).abs() < 1e-6);
    }

    #[test]
    fn a_batch_of_proposals_is_learned_from_each_with_its_own_action() {
        let space = Nb201Space::new();
        let mut l2nas = L2Nas::new(&space);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let mut history = History::new();
        let batch = l2nas.propose_batch(&space, &history, &mut rng, 4);
        let actions: Vec<Vec<f32>> = l2nas.pending.iter().map(|p| p.action.clone()).collect();
        // Observed in another order than proposed: each record finds its own proposal.
        for (i, arch) in batch.iter().enumerate().rev() {
            let record = Record::scored(history.len() + 1, arch.clone(), i as f64);
            history.push(record.clone());
            l2nas.observe(&space, &history, &record);
        }
        assert!(l2nas.pending.is_empty());
        assert_eq!(l2nas.replay.recent.len(), 4);
        for (i, action) in actions.iter().enumerate() {
            let seen = &l2nas.replay.recent[3 - i];
            assert_eq!(seen.reward, i as f32);
            assert_eq!(seen.relaxed, relax(&l2nas.sizes, action, 0.3));
        }
    }

    #[test]
    fn a_round_is_distinct_new_architectures_and_trains_once_for_every_25_records() {
        let space = crate::space::OfaSpace::default();
        let mut l2nas = L2Nas::new(&space);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(4);
        let mut history = History::new();
        let answer = |l2nas: &mut L2Nas, history: &mut History, archs: &[Arch]| {
            for arch in archs {
                let reward = arch.choices().iter().map(|&c| f64::from(c)).sum::<f64>();
                let record = Record::scored(history.len() + 1, arch.clone(), reward);
                history.push(record.clone());
                l2nas.observe(&space, history, &record);
            }
        };
        // The warm-up round: nothing trains until the next round is asked for.
        let round = l2nas.propose_batch(&space, &history, &mut rng, 25);
        answer(&mut l2nas, &mut history, &round);
        assert_eq!(l2nas.critic_steps_taken, 0);
        // Each round first trains on what the previous one brought: 16 of the warm-up's 25
        // records came after its first 10 (one block of 8 critic steps), then 25 new (one
        // block), 50 new (two), 10 new (one).
        for (size, steps) in [(25, 8), (50, 8), (10, 16), (10, 8)] {
            let before = l2nas.critic_steps_taken;
            let round = l2nas.propose_batch(&space, &history, &mut rng, size);
            assert_eq!(l2nas.critic_steps_taken - before, steps, "round of {size}");
            let distinct: std::collections::HashSet<&Arch> = round.iter().collect();
            assert_eq!(distinct.len(), size);
            assert!(round.iter().all(|a| history.get(a).is_none()));
            answer(&mut l2nas, &mut history, &round);
        }
    }

    #[test]
    fn steering_an_action_decodes_to_the_architecture_and_keeps_the_range() {
        let space = Nb201Space::new();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        for _ in 0..200 {
            let action = L2Nas::random_action(&space, &mut rng);
            let arch = space.sample(&mut rng);
            let steered = steer(&space, &action, &arch);
            assert_eq!(space.decode(&steered).unwrap(), arch);
            assert!(steered.iter().all(|v| (-1.0..=1.0).contains(v)));
        }
        // Ties (a saturated actor) are broken towards the architecture too.
        let arch = space.sample(&mut rng);
        let steered = steer(&space, &vec![1.0; space.encoding_len()], &arch);
        assert_eq!(space.decode(&steered).unwrap(), arch);
    }

    #[test]
    fn the_replay_keeps_the_best_and_the_latest_and_no_more() {
        let mut replay = Replay {
            top_capacity: 4,
            recent_capacity: 6,
            ..Replay::default()
        };
        for i in 0..1000 {
            // The best rewards come early: only the top list remembers them.
            let reward = if i < 10 {
                100.0 + i as f32
            } else {
                (i % 50) as f32
            };
            replay.push(Experience {
                state: vec![],
                relaxed: vec![],
                reward,
            });
        }
        assert_eq!(replay.len(), 10);
        let top: Vec<f32> = replay.top.iter().map(|e| e.reward).collect();
        assert_eq!(top, [109.0, 108.0, 107.0, 106.0]);
        let recent: Vec<f32> = replay.recent.iter().map(|e| e.reward).collect();
        assert_eq!(recent, [44.0, 45.0, 46.0, 47.0, 48.0, 49.0]);
    }

    #[test]
    fn every_query_is_labelled_and_the_actor_proposes_once_trained() {
        let space = Nb201Space::new();
        let mut l2nas = L2Nas::new(&space);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
        let mut history = History::new();
        while history.len() < 200 {
            let arch = l2nas.propose(&space, &history, &mut rng);
            let action = &l2nas.pending.back().expect("just proposed").action;
            assert!(
                action.iter().all(|v| (-1.0..=1.0).contains(v)),
                "{action:?}"
            );
            let record = match history.get(&arch) {
                Some(seen) => seen.clone(),
                None => {
                    // A reward the actor can learn: how many edges are conv 3x3 (index 3).
                    let reward = arch.choices().iter().filter(|&&c| c == 3).count() as f64;
                    let record = Record::scored(history.len() + 1, arch.clone(), reward);
                    history.push(record.clone());
                    record
                }
            };
            l2nas.observe(&space, &history, &record);
        }
        let sources = l2nas.sources();
        let queries: Vec<usize> = sources.iter().map(|&(q, _)| q).collect();
        assert_eq!(queries, (1..=200).collect::<Vec<_>>());
        let count = |label: &str| sources.iter().filter(|&&(_, s)| s == label).count();
        assert_eq!(count("warmup"), 10);
        assert!(count("actor") > 40, "{sources:?}");
        // The actor learned the reward: its late proposals hold more 3x3 convolutions than
        // the 1.2 a random cell has.
        let late: Vec<f64> = history.records()[150..].iter().map(|r| r.reward).collect();
        assert!(
            late.iter().sum::<f64>() / late.len() as f64 > 2.5,
            "{late:?}"
        );
    }
}
