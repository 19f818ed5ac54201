//! L2NAS (Mills et al., 2021, arXiv 2109.12425): an actor-critic that learns where good
//! architectures are from the search history.
//!
//! - The **action** is a continuous vector with one value per decision option (like DARTS's
//!   alphas); the architecture is its argmax per decision.
//! - The **state** is the distribution of the best architectures found so far: the mean
//!   one-hot encoding of the top-K of the history (by reward).
//! - The **critic** `Q(s, a)` is fitted to a high quantile of the rewards with the pinball
//!   loss (quantile 0.9), not to their mean, so it models the upper tail of what an action
//!   yields; the **actor** ascends the critic (deterministic policy gradient).
//! - **Exploration**: Gaussian noise on the action, and epsilon-greedy random architectures.
//!
//! Choices where the paper is silent, and why:
//! - K = 10 for the state: enough to describe a region, small enough to move as the history
//!   improves. Warm-up: 10 random architectures before the networks are used.
//! - Rewards are standardised over the history before fitting, so the same learning rates
//!   serve accuracy in percent, predictor fractions or proxy scores.
//! - The critic reads `[s, a]` through two first-layer matrices summed (the same as one layer
//!   over the concatenation), 64 hidden units, two hidden layers; the actor maps `s` to `a`
//!   through 64 hidden units. Adam, 1e-3 for both.
//! - Per evaluation: 8 critic steps on minibatches of 32 from the whole history (all
//!   experience stays useful: the reward of an action does not change), then 4 actor steps
//!   on the states seen.
//! - Noise: standard deviation 0.3 of the action scale; epsilon 0.1. A proposal already in the
//!   history is re-drawn with fresh noise (up to 20 times) before falling back to a random
//!   unseen mutation of the best architecture.

use std::collections::VecDeque;

use hwnas_kernels::{Cpu, Tape, Tensor};
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
    /// Probability of a uniformly random architecture.
    pub epsilon: f64,
    /// Critic steps per evaluation.
    pub critic_steps: usize,
    /// Actor steps per evaluation.
    pub actor_steps: usize,
    /// Minibatch size.
    pub batch: usize,
}

impl Default for L2NasConfig {
    fn default() -> Self {
        L2NasConfig {
            top_k: 10,
            warmup: 10,
            quantile: 0.9,
            noise: 0.3,
            epsilon: 0.1,
            critic_steps: 32,
            actor_steps: 16,
            batch: 32,
        }
    }
}

/// The L2NAS strategy.
pub struct L2Nas {
    config: L2NasConfig,
    actor: Mlp,
    critic_state: Mlp,
    critic_action: Mlp,
    critic_head: Mlp,
    /// `(state, action)` of every proposal, by the architecture it became.
    experience: Vec<(Vec<f32>, Vec<f32>, Arch)>,
    /// `(architecture, state, action)` of proposals not yet observed, newest last: a batch
    /// is observed after all its proposals, and a proposal the loop drew again (over the
    /// budget) never is, so the oldest are dropped past [`MAX_PENDING`].
    pending: VecDeque<(Arch, Vec<f32>, Vec<f32>)>,
    rng_seed: u64,
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
            experience: Vec::new(),
            pending: VecDeque::new(),
            rng_seed: 0,
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

fn rows(rows: &[&Vec<f32>]) -> Tensor {
    let width = rows.first().map_or(0, |r| r.len());
    Tensor::new(
        &[rows.len(), width],
        rows.iter().flat_map(|r| r.iter().copied()).collect(),
    )
    .expect("equal rows")
}

impl L2Nas {
    /// Q(s, a) for a batch, on a tape; returns the output variable and the critic's variables.
    fn critic_forward(
        &self,
        tape: &mut Tape<'_>,
        s: hwnas_kernels::Var,
        a: hwnas_kernels::Var,
    ) -> (
        hwnas_kernels::Var,
        [Vec<(hwnas_kernels::Var, hwnas_kernels::Var)>; 3],
    ) {
        let ps = self.critic_state.on_tape(tape);
        let pa = self.critic_action.on_tape(tape);
        let ph = self.critic_head.on_tape(tape);
        let hs = Mlp::forward(tape, &ps, s);
        let ha = Mlp::forward(tape, &pa, a);
        let h = tape.add(hs, ha).expect("same width");
        let h = tape
            .activation(h, hwnas_kernels::Activation::Relu)
            .expect("relu");
        let q = Mlp::forward(tape, &ph, h);
        (q, [ps, pa, ph])
    }

    /// Indices of a random minibatch of the `n` experiences (with replacement).
    fn minibatch(&self, n: usize, rng: &mut dyn RngCore) -> Vec<usize> {
        (0..self.config.batch.min(n))
            .map(|_| rng.random_range(0..n))
            .collect()
    }

    /// The chosen experiences' states or actions as one `[batch, width]` tensor.
    fn stack(
        &self,
        batch: &[usize],
        field: impl Fn(&(Vec<f32>, Vec<f32>, Arch)) -> &Vec<f32>,
    ) -> Tensor {
        rows(
            &batch
                .iter()
                .map(|&i| field(&self.experience[i]))
                .collect::<Vec<_>>(),
        )
    }

    fn train(&mut self, history: &History, rng: &mut dyn RngCore) {
        let rewards: Vec<f32> = self
            .experience
            .iter()
            .map(|(_, _, arch)| history.get(arch).map_or(0.0, |r| r.reward as f32))
            .collect();
        let n = rewards.len();
        if n < 2 {
            return;
        }
        let mean = rewards.iter().sum::<f32>() / n as f32;
        let std = (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / n as f32)
            .sqrt()
            .max(1e-6);
        let normalised: Vec<f32> = rewards.iter().map(|r| (r - mean) / std).collect();
        let backend = Cpu;
        for _ in 0..self.config.critic_steps {
            let batch = self.minibatch(n, rng);
            let mut tape = Tape::new(&backend);
            let s = tape.leaf(self.stack(&batch, |e| &e.0), false);
            let a = tape.leaf(self.stack(&batch, |e| &e.1), false);
            let (q, params) = self.critic_forward(&mut tape, s, a);
            let targets: Vec<f32> = batch.iter().map(|&i| normalised[i]).collect();
            let (_, grad) = pinball(tape.value(q).data(), &targets, self.config.quantile);
            tape.backward_from(
                q,
                Tensor::new(&[batch.len(), 1], grad).expect("one per row"),
            )
            .expect("shapes agree");
            self.critic_state.step(&tape, &params[0]);
            self.critic_action.step(&tape, &params[1]);
            self.critic_head.step(&tape, &params[2]);
        }
        for _ in 0..self.config.actor_steps {
            let batch = self.minibatch(n, rng);
            let mut tape = Tape::new(&backend);
            let s = tape.leaf(self.stack(&batch, |e| &e.0), false);
            let actor = self.actor.on_tape(&mut tape);
            let a = Mlp::forward(&mut tape, &actor, s);
            let (q, _) = self.critic_forward(&mut tape, s, a);
            // Ascend Q: the gradient of -mean(Q).
            let seed = Tensor::new(
                &[batch.len(), 1],
                vec![-1.0 / batch.len() as f32; batch.len()],
            )
            .expect("one per row");
            tape.backward_from(q, seed).expect("shapes agree");
            self.actor.step(&tape, &actor);
        }
    }
}

/// Proposals awaiting their record, at most (beyond the largest batch a plan allows).
pub const MAX_PENDING: usize = 8192;

impl L2Nas {
    fn remember(&mut self, arch: &Arch, state: Vec<f32>, action: Vec<f32>) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((arch.clone(), state, action));
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
        self.rng_seed = rng.next_u64();
        let state = top_k_state(space, history, self.config.top_k);
        if history.len() < self.config.warmup || rng.random_bool(self.config.epsilon) {
            let arch = space.sample(rng);
            let action = space.one_hot(&arch);
            self.remember(&arch, state, action);
            return arch;
        }
        let base = self
            .actor
            .predict(&Tensor::new(&[1, state.len()], state.clone()).expect("one row"))
            .into_data();
        let normal = Normal::new(0.0f32, self.config.noise).expect("positive noise");
        for _ in 0..20 {
            let action: Vec<f32> = base.iter().map(|v| v + normal.sample(rng)).collect();
            let arch = space
                .decode(&action)
                .expect("action has the encoding's length");
            if history.get(&arch).is_none() {
                self.remember(&arch, state, action);
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
            if history.get(&arch).is_none() {
                break;
            }
            arch = space.mutate(&arch, rng);
        }
        let action = space.one_hot(&arch);
        self.remember(&arch, state, action);
        arch
    }

    fn observe(&mut self, _: &dyn SearchSpace, history: &History, record: &Record) {
        let Some(at) = self.pending.iter().rposition(|(a, _, _)| *a == record.arch) else {
            return;
        };
        let (_, state, action) = self.pending.remove(at).expect("a pending proposal");
        self.experience.push((state, action, record.arch.clone()));
        if history.len() >= self.config.warmup {
            let mut rng =
                <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(self.rng_seed);
            self.train(history, &mut rng);
        }
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
            history.push(Record {
                query: i + 1,
                arch: Arch(ops.to_vec()),
                arch_text: String::new(),
                accuracy: [90.0, 50.0, 80.0][i],
                test_accuracy: None,
                latency_ms: None,
                reward: [90.0, 50.0, 80.0][i],
                feasible: true,
                seconds: 0.0,
            });
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
        let actions: Vec<Vec<f32>> = l2nas.pending.iter().map(|(_, _, a)| a.clone()).collect();
        // Observed in another order than proposed: each record finds its own proposal.
        for (i, arch) in batch.iter().enumerate().rev() {
            let record = Record {
                query: history.len() + 1,
                arch: arch.clone(),
                arch_text: String::new(),
                accuracy: i as f64,
                test_accuracy: None,
                latency_ms: None,
                reward: i as f64,
                feasible: true,
                seconds: 0.0,
            };
            history.push(record.clone());
            l2nas.observe(&space, &history, &record);
        }
        assert!(l2nas.pending.is_empty());
        assert_eq!(l2nas.experience.len(), 4);
        for (i, arch) in batch.iter().enumerate() {
            let (_, action, seen) = &l2nas.experience[3 - i];
            assert_eq!(seen, arch);
            assert_eq!(action, &actions[i]);
        }
    }
}
