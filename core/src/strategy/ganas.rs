//! GA-NAS (Changiz Rezaei et al., ICML 2021, arXiv 2105.09356): generative adversarial
//! search, inspired by importance sampling. Each iteration:
//!
//! 1. the current **top-k** architectures of the history are the "true" set;
//! 2. a **relativistic discriminator** `C` learns to rank them above the generator's samples
//!    (loss `-log sigmoid(C(true) - C(generated))` over random pairs);
//! 3. the **autoregressive generator** is trained by REINFORCE with a moving-average
//!    baseline on the reward `sigmoid(C(x) - mean C(true))`: how much better than the true
//!    set the discriminator thinks a sample is;
//! 4. a batch of new, unseen samples is drawn and evaluated; the top-k is refreshed.
//!
//! Ad-hoc constraints (a latency or parameter cap) enter through the search objective:
//! violating samples get a penalised reward and never reach the true set, so the generator
//! learns to avoid them; they are never returned as the answer.
//!
//! Choices where the paper is silent or its setting does not carry over, and why:
//! - The generator is one MLP shared across decisions, reading the one-hot prefix of the
//!   decisions made so far plus a one-hot of the position, and writing logits for every
//!   option (the position's slice is used). A graph encoder pays for large cell spaces; on
//!   these 6- to 46-decision spaces the prefix encoding carries the same information.
//! - 20 random architectures first; top-k = 10; 10 new architectures per iteration; 20
//!   discriminator and 10 generator steps per iteration on batches of 32; Adam 1e-3;
//!   baseline momentum 0.9; an entropy bonus of 0.01 keeps the generator from collapsing
//!   before the true set is good.

use std::collections::VecDeque;

use hwnas_kernels::{Cpu, Tape, Tensor};
use rand::{Rng, RngCore};

use super::Strategy;
use super::nets::{Mlp, softmax};
use crate::history::{History, Record};
use crate::space::{Arch, SearchSpace};

/// GA-NAS's settings.
#[derive(Debug, Clone, Copy)]
pub struct GaNasConfig {
    /// Random architectures first.
    pub warmup: usize,
    /// Size of the true set.
    pub top_k: usize,
    /// New architectures per iteration.
    pub batch: usize,
    /// Discriminator steps per iteration.
    pub discriminator_steps: usize,
    /// Generator steps per iteration.
    pub generator_steps: usize,
    /// Samples per training step.
    pub train_batch: usize,
    /// Entropy bonus of the generator.
    pub entropy: f32,
    /// PPO's clipping range of the probability ratio.
    pub clip: f32,
    /// Weight of the discriminator's score penalty (lambda C^2).
    pub score_penalty: f32,
}

impl Default for GaNasConfig {
    fn default() -> Self {
        GaNasConfig {
            warmup: 20,
            top_k: 10,
            batch: 10,
            discriminator_steps: 50,
            generator_steps: 30,
            train_batch: 32,
            entropy: 0.01,
            clip: 0.2,
            score_penalty: 0.01,
        }
    }
}

/// The GA-NAS strategy.
pub struct GaNas {
    config: GaNasConfig,
    generator: Mlp,
    discriminator: Mlp,
    queue: VecDeque<Arch>,
    sizes: Vec<usize>,
    offsets: Vec<usize>,
}

impl GaNas {
    /// GA-NAS for `space` with the default settings.
    pub fn new(space: &dyn SearchSpace) -> Self {
        Self::with_config(space, GaNasConfig::default())
    }

    /// GA-NAS with explicit settings.
    pub fn with_config(space: &dyn SearchSpace, config: GaNasConfig) -> Self {
        let sizes: Vec<usize> = space.decisions().iter().map(|d| d.choices.len()).collect();
        let offsets = sizes
            .iter()
            .scan(0, |acc, &s| {
                let at = *acc;
                *acc += s;
                Some(at)
            })
            .collect();
        let enc = space.encoding_len();
        GaNas {
            config,
            generator: Mlp::new(&[enc + sizes.len(), 64, enc], 1e-3, 11),
            discriminator: Mlp::new(&[enc, 64, 1], 1e-3, 12),
            queue: VecDeque::new(),
            sizes,
            offsets,
        }
    }

    fn generator_input(&self, prefix: &[f32], position: usize) -> Vec<f32> {
        let mut row = prefix.to_vec();
        row.extend((0..self.sizes.len()).map(|p| f32::from(p == position)));
        row
    }

    /// Samples `count` architectures from the generator.
    pub fn sample(&self, count: usize, rng: &mut dyn RngCore) -> Vec<Arch> {
        let enc = self
            .offsets
            .last()
            .map_or(0, |o| o + self.sizes.last().unwrap());
        let mut prefixes = vec![vec![0.0f32; enc]; count];
        let mut choices = vec![Vec::with_capacity(self.sizes.len()); count];
        for position in 0..self.sizes.len() {
            let inputs: Vec<f32> = prefixes
                .iter()
                .flat_map(|p| self.generator_input(p, position))
                .collect();
            let logits = self
                .generator
                .predict(&Tensor::new(&[count, enc + self.sizes.len()], inputs).expect("rows"));
            for (b, row) in logits.data().chunks(enc).enumerate() {
                let slice =
                    &row[self.offsets[position]..self.offsets[position] + self.sizes[position]];
                let probs = softmax(slice);
                let u: f32 = rng.random();
                let mut acc = 0.0;
                let mut choice = probs.len() - 1;
                for (i, p) in probs.iter().enumerate() {
                    acc += p;
                    if u < acc {
                        choice = i;
                        break;
                    }
                }
                choices[b].push(choice as u8);
                prefixes[b][self.offsets[position] + choice] = 1.0;
            }
        }
        choices.into_iter().map(Arch).collect()
    }

    fn encode(&self, space: &dyn SearchSpace, archs: &[&Arch]) -> Tensor {
        let enc = space.encoding_len();
        Tensor::new(
            &[archs.len(), enc],
            archs.iter().flat_map(|a| space.one_hot(a)).collect(),
        )
        .expect("rows")
    }

    fn iterate(&mut self, space: &dyn SearchSpace, history: &History, rng: &mut dyn RngCore) {
        let backend = Cpu;
        // 1. The true set: the best feasible architectures (the best of all before any is).
        let mut truth: Vec<Arch> = history
            .ranked()
            .filter(|r| r.feasible)
            .take(self.config.top_k)
            .map(|r| r.arch.clone())
            .collect();
        if truth.is_empty() {
            truth = history
                .top_k(self.config.top_k)
                .iter()
                .map(|r| r.arch.clone())
                .collect();
        }
        let b = self.config.train_batch;
        // 2. The discriminator, on one pool of the generator's samples per iteration.
        let pool = self.sample(4 * b, rng);
        for _ in 0..self.config.discriminator_steps {
            let mut batch: Vec<&Arch> = (0..b)
                .map(|_| &truth[rng.random_range(0..truth.len())])
                .collect();
            batch.extend((0..b).map(|_| &pool[rng.random_range(0..pool.len())]));
            let mut tape = Tape::new(&backend);
            let params = self.discriminator.on_tape(&mut tape);
            let x = tape.leaf(self.encode(space, &batch), false);
            let c = Mlp::forward(&mut tape, &params, x);
            let scores = tape.value(c).data().to_vec();
            let mut seed = vec![0.0; 2 * b];
            for i in 0..b {
                // -log sigmoid(C(true) - C(fake)), and a penalty on the scores' size
                // (lambda C^2) so that they stay where the sigmoid has a gradient.
                let s = sigmoid(scores[i] - scores[b + i]);
                let penalty = 2.0 * self.config.score_penalty;
                seed[i] = (-(1.0 - s) + penalty * scores[i]) / b as f32;
                seed[b + i] = ((1.0 - s) + penalty * scores[b + i]) / b as f32;
            }
            tape.backward_from(c, Tensor::new(&[2 * b, 1], seed).expect("rows"))
                .expect("shapes agree");
            let grads = self.discriminator.gradients(&tape, &params);
            drop(tape);
            self.discriminator.apply(&grads);
        }
        let truth_refs: Vec<&Arch> = truth.iter().collect();
        let truth_mean = mean(
            self.discriminator
                .predict(&self.encode(space, &truth_refs))
                .data(),
        );
        // 3. The generator, by PPO on the discriminator's reward: one batch of samples,
        // several clipped-surrogate epochs on it.
        let enc = space.encoding_len();
        let width = enc + self.sizes.len();
        let n = 2 * b;
        let samples = self.sample(n, rng);
        let sample_refs: Vec<&Arch> = samples.iter().collect();
        let scores = self
            .discriminator
            .predict(&self.encode(space, &sample_refs));
        let rewards: Vec<f32> = scores
            .data()
            .iter()
            .map(|c| sigmoid(c - truth_mean))
            .collect();
        let reward_mean = mean(&rewards);
        let reward_std = (rewards
            .iter()
            .map(|r| (r - reward_mean).powi(2))
            .sum::<f32>()
            / n as f32)
            .sqrt()
            .max(1e-6);
        let advantages: Vec<f32> = rewards
            .iter()
            .map(|r| (r - reward_mean) / reward_std)
            .collect();
        // One row per (sample, decision): the prefix before it and its position.
        let mut inputs = Vec::with_capacity(n * self.sizes.len() * width);
        for arch in &samples {
            let mut prefix = vec![0.0f32; enc];
            for (position, &choice) in arch.0.iter().enumerate() {
                inputs.extend(self.generator_input(&prefix, position));
                prefix[self.offsets[position] + usize::from(choice)] = 1.0;
            }
        }
        let rows = n * self.sizes.len();
        let inputs = Tensor::new(&[rows, width], inputs).expect("rows");
        let mut old_log_probs: Option<Vec<f32>> = None;
        for _ in 0..self.config.generator_steps {
            let mut tape = Tape::new(&backend);
            let params = self.generator.on_tape(&mut tape);
            let x = tape.leaf(inputs.clone(), false);
            let logits = Mlp::forward(&mut tape, &params, x);
            let values = tape.value(logits).data().to_vec();
            // Each sample's log-probability under the current generator.
            let mut log_probs = vec![0.0f32; n];
            let mut all_probs = Vec::with_capacity(rows);
            for (s, arch) in samples.iter().enumerate() {
                for (position, &choice) in arch.0.iter().enumerate() {
                    let row = s * self.sizes.len() + position;
                    let range =
                        self.offsets[position]..self.offsets[position] + self.sizes[position];
                    let probs = softmax(&values[row * enc..][range]);
                    log_probs[s] += probs[usize::from(choice)].max(1e-12).ln();
                    all_probs.push(probs);
                }
            }
            let old = old_log_probs.get_or_insert_with(|| log_probs.clone());
            let mut seed = vec![0.0f32; rows * enc];
            for (s, arch) in samples.iter().enumerate() {
                let advantage = advantages[s];
                let ratio = (log_probs[s] - old[s]).exp();
                let clip = self.config.clip;
                // The clipped surrogate has no gradient once the ratio left the trust
                // region in the advantage's direction.
                let clipped = (advantage > 0.0 && ratio > 1.0 + clip)
                    || (advantage < 0.0 && ratio < 1.0 - clip);
                for (position, &choice) in arch.0.iter().enumerate() {
                    let row = s * self.sizes.len() + position;
                    let start = self.offsets[position];
                    let probs = &all_probs[row];
                    let entropy: f32 = -probs.iter().map(|p| p * p.max(1e-12).ln()).sum::<f32>();
                    for (i, p) in probs.iter().enumerate() {
                        let indicator = f32::from(i == usize::from(choice));
                        // d(-A r)/dlogit_i = A r (p_i - [i = choice]); the entropy bonus
                        // adds -beta dH/dlogit_i = beta p_i (ln p_i + H).
                        let policy = if clipped {
                            0.0
                        } else {
                            advantage * ratio * (p - indicator)
                        };
                        let bonus = self.config.entropy * p * (p.max(1e-12).ln() + entropy);
                        seed[row * enc + start + i] = (policy + bonus) / n as f32;
                    }
                }
            }
            tape.backward_from(logits, Tensor::new(&[rows, enc], seed).expect("rows"))
                .expect("shapes agree");
            let grads = self.generator.gradients(&tape, &params);
            drop(tape);
            self.generator.apply(&grads);
        }
        // 4. New, unseen architectures.
        let mut fresh: Vec<Arch> = Vec::new();
        for _ in 0..10 {
            for arch in self.sample(self.config.batch * 4, rng) {
                if history.get(&arch).is_none()
                    && !fresh.contains(&arch)
                    && fresh.len() < self.config.batch
                {
                    fresh.push(arch);
                }
            }
            if fresh.len() >= self.config.batch {
                break;
            }
        }
        // A generator that has collapsed onto known architectures: the rest of the batch
        // random and unseen, so that an iteration still buys a whole batch of queries.
        for _ in 0..1000 {
            if fresh.len() >= self.config.batch {
                break;
            }
            let arch = space.sample(rng);
            if history.get(&arch).is_none() && !fresh.contains(&arch) {
                fresh.push(arch);
            }
        }
        self.queue.extend(fresh);
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn mean(values: &[f32]) -> f32 {
    values.iter().sum::<f32>() / values.len().max(1) as f32
}

impl Strategy for GaNas {
    fn name(&self) -> &'static str {
        "ganas"
    }

    fn propose(
        &mut self,
        space: &dyn SearchSpace,
        history: &History,
        rng: &mut dyn RngCore,
    ) -> Arch {
        if history.len() < self.config.warmup {
            return space.sample(rng);
        }
        if self.queue.is_empty() {
            self.iterate(space, history, rng);
        }
        self.queue.pop_front().unwrap_or_else(|| space.sample(rng))
    }

    fn observe(&mut self, _: &dyn SearchSpace, _: &History, _: &Record) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Nb201Space;
    use rand::SeedableRng;

    #[test]
    fn an_untrained_generator_samples_every_option() {
        let space = Nb201Space::new();
        let ganas = GaNas::new(&space);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let samples = ganas.sample(500, &mut rng);
        for edge in 0..6 {
            let mut counts = [0usize; 5];
            for s in &samples {
                counts[usize::from(s.0[edge])] += 1;
            }
            assert!(counts.iter().all(|&c| c > 40), "edge {edge}: {counts:?}");
        }
    }

    #[test]
    fn the_discriminator_separates_a_separable_toy_set() {
        // "True" cells are all-conv3x3-heavy, "fake" ones all-none: a linearly separable set.
        let space = Nb201Space::new();
        let mut ganas = GaNas::new(&space);
        let reals = [Arch(vec![3; 6]), Arch(vec![3, 3, 3, 3, 3, 2])];
        let fakes = [Arch(vec![0; 6]), Arch(vec![0, 0, 1, 0, 0, 0])];
        let backend = Cpu;
        for _ in 0..200 {
            let batch: Vec<&Arch> = reals.iter().chain(fakes.iter()).collect();
            let mut tape = Tape::new(&backend);
            let params = ganas.discriminator.on_tape(&mut tape);
            let x = tape.leaf(ganas.encode(&space, &batch), false);
            let c = Mlp::forward(&mut tape, &params, x);
            let s: Vec<f32> = tape.value(c).data().to_vec();
            let mut seed = vec![0.0; 4];
            for i in 0..2 {
                let p = sigmoid(s[i] - s[2 + i]);
                seed[i] = -(1.0 - p) / 2.0;
                seed[2 + i] = (1.0 - p) / 2.0;
            }
            tape.backward_from(c, Tensor::new(&[4, 1], seed).unwrap())
                .unwrap();
            ganas.discriminator.step(&tape, &params);
        }
        let batch: Vec<&Arch> = reals.iter().chain(fakes.iter()).collect();
        let scores = ganas
            .discriminator
            .predict(&ganas.encode(&space, &batch))
            .into_data();
        assert!(
            scores[0].min(scores[1]) > scores[2].max(scores[3]) + 1.0,
            "{scores:?}"
        );
    }
}
