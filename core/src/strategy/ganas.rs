//! GA-NAS (Changiz Rezaei et al., ICML 2021, arXiv 2105.09356): generative adversarial
//! search, inspired by importance sampling. Each iteration:
//!
//! 1. the best **feasible** architectures of the history are the "true" set (the best of
//!    all before any is feasible);
//! 2. a **pairwise relativistic discriminator** learns to rank them above the generator's
//!    samples: a Siamese graph encoder scores both members of a pair with the same weights,
//!    and the loss is `-log sigmoid(C(true) - C(generated))` over random pairs, with a
//!    penalty `lambda C^2` that keeps the scores where the sigmoid has a gradient;
//! 3. the **generator** — a graph encoder of a true-set architecture whose embedding starts
//!    an autoregressive **GRU decoder**, one decision per step — is trained by **PPO with
//!    clipping** on the reward `sigmoid(C(x) - mean C(true))`: how much better than the
//!    true set the discriminator thinks a sample is;
//! 4. a batch of new, unseen samples is drawn and evaluated; the true set is refreshed.
//!
//! Ad-hoc constraints (a latency cap) enter through the search objective: violating
//! samples get a penalised reward and never reach the true set, so the generator learns to
//! avoid them; they are never returned as the answer.
//!
//! The graph of an architecture is its space's [`SearchSpace::decision_graph`]: the cell's
//! line graph on NAS-Bench-201, node inputs and operations on DARTS, the block sequence on
//! Once-for-All ([`super::graph`]).
//!
//! Choices where the paper is silent or its setting does not carry over, and why:
//! - The graph encoder propagates along the graph before it learns (SIGN) instead of the
//!   paper's k-GNN layers: one matrix product per batch, where a learned layer per hop would
//!   multiply the cost on Once-for-All's 46-node graphs.
//! - The decoder **edits the architecture it starts from**: each step's input carries the
//!   start's choice at that decision, and its logit gets a fixed prior of +4
//!   (`copy_prior`), so an untrained generator keeps each choice with probability
//!   `e^4 / (e^4 + k - 1)` (0.93 to 0.96 for 5 to 3 options) and changes a few decisions
//!   of a true-set architecture; PPO learns where to depart from it. The paper conditions
//!   the generator on a true-set architecture through its embedding alone; decoding 46
//!   Once-for-All decisions from an embedding drew architectures about as good as random
//!   ones (81.09 at 30 ms, rounds of 100, 1,000 queries, the 64-unit networks, one seed)
//!   where the prior gives 81.63 (+3, one seed), 81.83 (+4), 81.58 (+5), 81.44 (+6; two
//!   seeds each); on NAS-Bench-201 it lifts the small networks' 100-query score from
//!   93.76 to 94.14 (20 seeds).
//! - 20 random architectures first; a true set of 10; 10 new architectures per iteration
//!   (a round's worth, twice over, when the loop asks for rounds); 5 discriminator steps
//!   on batches of 16 pairs drawn from one pool of 64 samples per iteration; 5 PPO epochs
//!   (ratio clip 0.2) on one batch of 32 samples; Adam 1e-3; 16 hidden units; an entropy
//!   bonus of 0.01 keeps the generator from collapsing before the true set is good; score
//!   penalty 0.01. The networks are this small so that, with a predictor's cheap queries,
//!   thousands of queries take under a second (Once-for-All in rounds of 250); the earlier
//!   20 / 30 steps, 32 pairs and 64 units cost about 30x more per iteration and scored
//!   about the same with the prior (Once-for-All 81.83 vs 81.77 at 1,000 queries, 30 ms;
//!   NAS-Bench-201 94.05 vs 94.14 at 100 queries; docs/BENCHMARKS.md). A generator that
//!   has collapsed onto known architectures has its batch filled with random unseen ones.
//! - Sampling needs no gradients, so the decoder samples off the tape (the step input's
//!   layer as a sum of three weight rows, the state's products over the batch); PPO's
//!   epochs run it on the tape, teacher-forced. A test holds the two to the same
//!   probabilities.

use std::collections::{HashMap, VecDeque};

use hwnas_kernels::{Activation, Backend, Cpu, Tape, Tensor, Var};
use rand::{Rng, RngCore};

use super::Strategy;
use super::graph::{DecisionGraph, GraphEncoder};
use super::nets::{Mlp, draw, softmax_weights};
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
    /// PPO epochs of the generator per iteration.
    pub generator_steps: usize,
    /// Pairs per discriminator step; the generator's batch is twice this.
    pub train_batch: usize,
    /// Entropy bonus of the generator.
    pub entropy: f32,
    /// PPO's clipping range of the probability ratio.
    pub clip: f32,
    /// Weight of the discriminator's score penalty (lambda C^2).
    pub score_penalty: f32,
    /// Hidden units of the encoders and the GRU.
    pub hidden: usize,
    /// Added to the logit of the start architecture's own choice at each decision: the
    /// generator edits the architecture it starts from (0: decodes without the prior).
    pub copy_prior: f32,
}

impl Default for GaNasConfig {
    fn default() -> Self {
        GaNasConfig {
            warmup: 20,
            top_k: 10,
            batch: 10,
            discriminator_steps: 5,
            generator_steps: 5,
            train_batch: 16,
            entropy: 0.01,
            clip: 0.2,
            score_penalty: 0.01,
            hidden: 16,
            copy_prior: 4.0,
        }
    }
}

/// The generator's weights: the encoder of the architecture it starts from, and the GRU
/// decoder (`layers` of [`Mlp::with_layers`]: input to the three gates, state to the update
/// and reset gates, reset state to the candidate, state to the options' logits).
#[derive(Debug, Clone)]
struct Generator {
    encoder: GraphEncoder,
    gru: Mlp,
}

/// Picks a decoding step's choice: `(row, step, weights, total)`, the options'
/// unnormalised softmax weights and their sum.
type Chooser<'a> = dyn FnMut(usize, usize, &[f32], f32) -> u8 + 'a;

/// A graph encoder's variables on a tape (node layer, head).
type EncoderVars = [Vec<(Var, Var)>; 2];

/// The GRU's variables on a tape.
struct GruVars {
    all: Vec<(Var, Var)>,
    input: (Var, Var),
    gates: Var,
    candidate: Var,
    output: (Var, Var),
}

/// The GA-NAS strategy.
pub struct GaNas {
    config: GaNasConfig,
    graph: DecisionGraph,
    generator: Generator,
    discriminator: GraphEncoder,
    queue: VecDeque<Arch>,
    /// The largest round asked for so far: a top-up after the screen refused some of a
    /// round's proposals refills for a whole round, not for the few it asks.
    round: usize,
    sizes: Vec<usize>,
}

impl GaNas {
    /// GA-NAS for `space` with the default settings.
    pub fn new(space: &dyn SearchSpace) -> Self {
        Self::with_config(space, GaNasConfig::default())
    }

    /// GA-NAS with explicit settings.
    pub fn with_config(space: &dyn SearchSpace, config: GaNasConfig) -> Self {
        let graph = DecisionGraph::new(space);
        let h = config.hidden;
        let step_input = Self::step_width(&graph);
        GaNas {
            config,
            generator: Generator {
                encoder: GraphEncoder::new(&graph, h, &[h, h], 1e-3, 21),
                gru: Mlp::with_layers(
                    &[
                        (step_input, 3 * h),
                        (h, 2 * h),
                        (h, h),
                        (h, graph.max_options()),
                    ],
                    1e-3,
                    23,
                ),
            },
            discriminator: GraphEncoder::new(&graph, h, &[h, h, 1], 1e-3, 12),
            graph,
            queue: VecDeque::new(),
            round: 0,
            sizes: space.decisions().iter().map(|d| d.choices.len()).collect(),
        }
    }

    /// Width of a decoding step's input: the previous choice's one-hot, the place's, and
    /// the start architecture's choice at that place.
    fn step_width(graph: &DecisionGraph) -> usize {
        graph.label_len() + graph.max_options()
    }

    /// The input of decoding step `t` for each sequence: the previous decision's choice,
    /// the place of the decision to make and the start's choice there, `[batch,
    /// step_width]`.
    fn step_input(&self, previous: &[Option<u8>], starts: &[&Arch], t: usize) -> Tensor {
        let width = Self::step_width(&self.graph);
        let options = self.graph.max_options();
        let mut data = vec![0.0; previous.len() * width];
        for (b, (choice, start)) in previous.iter().zip(starts).enumerate() {
            if let Some(c) = choice {
                data[b * width + usize::from(*c)] = 1.0;
            }
            data[b * width + options + t] = 1.0;
            data[b * width + self.graph.label_len() + usize::from(start.0[t])] = 1.0;
        }
        Tensor::new(&[previous.len(), width], data).expect("rows")
    }

    /// The option probabilities of decision `t` from the GRU's `row` of logits, with the
    /// copy prior on the start's choice.
    fn probabilities(&self, row: &[f32], size: usize, start: &Arch, t: usize) -> Vec<f32> {
        let mut weights = row[..size].to_vec();
        let total = self.prior_weights(&mut weights, start.0[t]);
        weights.into_iter().map(|w| w / total).collect()
    }

    /// Turns a step's logits into the options' unnormalised softmax weights, in place,
    /// after the copy prior on the start's choice `start`; returns their sum.
    fn prior_weights(&self, logits: &mut [f32], start: u8) -> f32 {
        if let Some(l) = logits.get_mut(usize::from(start)) {
            *l += self.config.copy_prior;
        }
        softmax_weights(logits)
    }

    fn gru_on_tape(&self, tape: &mut Tape<'_>) -> GruVars {
        let layers = self.generator.gru.on_tape(tape);
        GruVars {
            input: layers[0],
            gates: layers[1].0,
            candidate: layers[2].0,
            output: layers[3],
            all: layers,
        }
    }

    /// One GRU step: the new state from input `x` and state `h`, and the next logits.
    fn gru_step(&self, tape: &mut Tape<'_>, vars: &GruVars, x: Var, h: Var) -> (Var, Var) {
        let hidden = self.config.hidden;
        let gx = tape.linear(x, vars.input.0, vars.input.1).expect("input");
        let gh = tape.matmul(h, vars.gates).expect("gates");
        let part = |tape: &mut Tape<'_>, v: Var, i: usize| {
            tape.slice(v, 1, i * hidden, hidden).expect("gate")
        };
        let (zx, rx, cx) = (part(tape, gx, 0), part(tape, gx, 1), part(tape, gx, 2));
        let (zh, rh) = (part(tape, gh, 0), part(tape, gh, 1));
        let z = tape.add(zx, zh).expect("same shape");
        let z = tape.activation(z, Activation::Sigmoid).expect("sigmoid");
        let r = tape.add(rx, rh).expect("same shape");
        let r = tape.activation(r, Activation::Sigmoid).expect("sigmoid");
        let reset = tape.mul(r, h).expect("same shape");
        let ch = tape.matmul(reset, vars.candidate).expect("candidate");
        let c = tape.add(cx, ch).expect("same shape");
        let c = tape.activation(c, Activation::Tanh).expect("tanh");
        // h' = h + z (c - h)
        let minus_h = tape.scale(h, -1.0).expect("scale");
        let step = tape.add(c, minus_h).expect("same shape");
        let step = tape.mul(z, step).expect("same shape");
        let next = tape.add(h, step).expect("same shape");
        let logits = tape
            .linear(next, vars.output.0, vars.output.1)
            .expect("output");
        (next, logits)
    }

    /// What the decoder's first states need of `starts`: the graph features and pooling
    /// matrix of the distinct ones (starts repeat: a round draws hundreds from a true set
    /// of ten, each encoded once) and the `[starts, distinct]` one-hot that copies each
    /// distinct state to the rows that start from it.
    fn start_graphs(&self, space: &dyn SearchSpace, starts: &[&Arch]) -> [Tensor; 3] {
        let mut distinct: Vec<&Arch> = Vec::new();
        let mut slot: HashMap<&Arch, usize> = HashMap::new();
        let rows: Vec<usize> = starts
            .iter()
            .map(|&s| {
                *slot.entry(s).or_insert_with(|| {
                    distinct.push(s);
                    distinct.len() - 1
                })
            })
            .collect();
        let mut selection = vec![0.0; starts.len() * distinct.len()];
        for (r, &d) in rows.iter().enumerate() {
            selection[r * distinct.len() + d] = 1.0;
        }
        [
            self.graph.features(space, &distinct),
            self.graph.pooling(distinct.len()),
            Tensor::new(&[starts.len(), distinct.len()], selection).expect("one per start"),
        ]
    }

    /// The decoder's first state for each start architecture, on a tape, from
    /// [`GaNas::start_graphs`].
    fn initial_state(
        &self,
        tape: &mut Tape<'_>,
        [features, pooling, selection]: &[Tensor; 3],
    ) -> (Var, [Vec<(Var, Var)>; 2]) {
        let params = self.generator.encoder.on_tape(tape);
        let f = tape.leaf(features.clone(), false);
        let p = tape.leaf(pooling.clone(), false);
        let e = GraphEncoder::forward(tape, &params, f, p);
        let select = tape.leaf(selection.clone(), false);
        let e = tape.matmul(select, e).expect("one row per distinct start");
        let h0 = tape.activation(e, Activation::Tanh).expect("tanh");
        (h0, params)
    }

    /// Samples one architecture per start architecture from the generator. Sampling needs
    /// no gradients, so the decoder runs off the tape: the step input is three one-hots, so
    /// its layer is a sum of three weight rows; the state's products are matrix products
    /// over the batch.
    fn sample_from(
        &self,
        space: &dyn SearchSpace,
        starts: &[&Arch],
        rng: &mut dyn RngCore,
    ) -> Vec<Arch> {
        self.decode(space, starts, &mut |_, _, weights, total| {
            draw(weights, total, rng)
        })
    }

    /// The decoder off the tape ([`GaNas::sample_from`]), with `choose(row, step,
    /// weights, total)` picking each choice from the options' unnormalised softmax
    /// weights and their sum.
    fn decode(
        &self,
        space: &dyn SearchSpace,
        starts: &[&Arch],
        choose: &mut Chooser<'_>,
    ) -> Vec<Arch> {
        let backend = Cpu;
        let n = starts.len();
        let hidden = self.config.hidden;
        let mut h = {
            let mut tape = Tape::new(&backend);
            let graphs = self.start_graphs(space, starts);
            let (h0, _) = self.initial_state(&mut tape, &graphs);
            tape.value(h0).clone()
        };
        let layers = &self.generator.gru.layers;
        let (input_w, input_b) = (layers[0].0.data(), layers[0].1.data());
        let (gates_w, candidate_w) = (&layers[1].0, &layers[2].0);
        let (output_w, output_b) = (&layers[3].0, layers[3].1.data());
        let (options, label) = (self.graph.max_options(), self.graph.label_len());
        let row = |i: usize| &input_w[i * 3 * hidden..(i + 1) * 3 * hidden];
        let mut previous: Vec<Option<u8>> = vec![None; n];
        let mut choices = vec![Vec::with_capacity(self.sizes.len()); n];
        let mut gx = vec![0.0f32; n * 3 * hidden];
        let mut weights = vec![0.0f32; options];
        let mut z = vec![0.0f32; n * hidden];
        for (t, &size) in self.sizes.iter().enumerate() {
            for (b, g) in gx.chunks_mut(3 * hidden).enumerate() {
                g.copy_from_slice(input_b);
                let mut add = |r: &[f32]| g.iter_mut().zip(r).for_each(|(x, w)| *x += w);
                if let Some(c) = previous[b] {
                    add(row(usize::from(c)));
                }
                add(row(options + t));
                add(row(label + usize::from(starts[b].0[t])));
            }
            let gh = backend.matmul(&h, gates_w).expect("gate shapes");
            let (gh, hv) = (gh.data(), h.data());
            let mut reset = vec![0.0f32; n * hidden];
            for b in 0..n {
                for j in 0..hidden {
                    let (x, s) = (b * 3 * hidden, b * 2 * hidden);
                    z[b * hidden + j] = sigmoid(gx[x + j] + gh[s + j]);
                    let r = sigmoid(gx[x + hidden + j] + gh[s + hidden + j]);
                    reset[b * hidden + j] = r * hv[b * hidden + j];
                }
            }
            let reset = Tensor::new(&[n, hidden], reset).expect("rows");
            let ch = backend
                .matmul(&reset, candidate_w)
                .expect("candidate shapes");
            let ch = ch.data();
            let mut next = vec![0.0f32; n * hidden];
            for b in 0..n {
                for j in 0..hidden {
                    let i = b * hidden + j;
                    let c = (gx[b * 3 * hidden + 2 * hidden + j] + ch[i]).tanh();
                    next[i] = hv[i] + z[i] * (c - hv[i]);
                }
            }
            h = Tensor::new(&[n, hidden], next).expect("rows");
            let logits = backend.matmul(&h, output_w).expect("output shapes");
            for (b, row) in logits.data().chunks(options).enumerate() {
                let weights = &mut weights[..size];
                for ((w, l), o) in weights.iter_mut().zip(row).zip(output_b) {
                    *w = l + o;
                }
                let total = self.prior_weights(weights, starts[b].0[t]);
                let choice = choose(b, t, weights, total);
                choices[b].push(choice);
                previous[b] = Some(choice);
            }
        }
        choices.into_iter().map(Arch).collect()
    }

    /// Samples `count` architectures, each decoded from a random member of `truth` (from a
    /// random architecture when the true set is empty).
    pub fn sample(
        &self,
        space: &dyn SearchSpace,
        truth: &[Arch],
        count: usize,
        rng: &mut dyn RngCore,
    ) -> (Vec<Arch>, Vec<Arch>) {
        let starts: Vec<Arch> = (0..count)
            .map(|_| {
                if truth.is_empty() {
                    space.sample(rng)
                } else {
                    truth[rng.random_range(0..truth.len())].clone()
                }
            })
            .collect();
        let refs: Vec<&Arch> = starts.iter().collect();
        (self.sample_from(space, &refs, rng), starts)
    }

    /// The discriminator's scores of `archs` (no gradients).
    fn scores(&self, space: &dyn SearchSpace, archs: &[&Arch]) -> Vec<f32> {
        let backend = Cpu;
        let mut tape = Tape::new(&backend);
        let params = self.discriminator.on_tape(&mut tape);
        let f = tape.leaf(self.graph.features(space, archs), false);
        let p = tape.leaf(self.graph.pooling(archs.len()), false);
        let c = GraphEncoder::forward(&mut tape, &params, f, p);
        tape.value(c).data().to_vec()
    }

    /// One discriminator step on pairs (true, generated) given by their graph features
    /// ([`DecisionGraph::rows`]): the relativistic pairwise loss and the score penalty.
    fn train_discriminator(&mut self, pairs: &[(&[f32], &[f32])], pooling: &Tensor) {
        let b = pairs.len();
        let batch: Vec<&[f32]> = pairs
            .iter()
            .map(|p| p.0)
            .chain(pairs.iter().map(|p| p.1))
            .collect();
        let backend = Cpu;
        let mut tape = Tape::new(&backend);
        let params = self.discriminator.on_tape(&mut tape);
        let f = tape.leaf(self.graph.stack(&batch), false);
        let p = tape.leaf(pooling.clone(), false);
        let c = GraphEncoder::forward(&mut tape, &params, f, p);
        let scores = tape.value(c).data().to_vec();
        let penalty = 2.0 * self.config.score_penalty;
        let mut seed = vec![0.0; 2 * b];
        for i in 0..b {
            let s = sigmoid(scores[i] - scores[b + i]);
            seed[i] = (-(1.0 - s) + penalty * scores[i]) / b as f32;
            seed[b + i] = ((1.0 - s) + penalty * scores[b + i]) / b as f32;
        }
        tape.backward_from(c, Tensor::new(&[2 * b, 1], seed).expect("rows"))
            .expect("shapes agree");
        let grads = self.discriminator.gradients(&tape, &params);
        drop(tape);
        self.discriminator.apply(&grads);
    }

    /// The step inputs that decode `samples` from `starts`: each step's previous choice is
    /// the sample's own.
    fn teacher_inputs(&self, samples: &[Arch], starts: &[&Arch]) -> Vec<Tensor> {
        (0..self.sizes.len())
            .map(|t| {
                let previous: Vec<Option<u8>> = samples
                    .iter()
                    .map(|s| t.checked_sub(1).map(|p| s.0[p]))
                    .collect();
                self.step_input(&previous, starts, t)
            })
            .collect()
    }

    /// The decoder on a tape, teacher-forced: each step's logits for the step inputs
    /// `inputs` (from [`GaNas::step_input`]), with the encoder's and the GRU's variables.
    fn decoder_on_tape(
        &self,
        tape: &mut Tape<'_>,
        graphs: &[Tensor; 3],
        inputs: &[Tensor],
    ) -> (Vec<Var>, EncoderVars, GruVars) {
        let (mut h, encoder) = self.initial_state(tape, graphs);
        let vars = self.gru_on_tape(tape);
        let mut logits = Vec::with_capacity(inputs.len());
        for input in inputs {
            let x = tape.leaf(input.clone(), false);
            let (next, l) = self.gru_step(tape, &vars, x, h);
            h = next;
            logits.push(l);
        }
        (logits, encoder, vars)
    }

    /// Each row's option probabilities of decision `t` from its logits on the tape.
    fn step_probabilities(
        &self,
        tape: &Tape<'_>,
        logits: Var,
        starts: &[&Arch],
        t: usize,
    ) -> Vec<Vec<f32>> {
        tape.value(logits)
            .data()
            .chunks(self.graph.max_options())
            .zip(starts)
            .map(|(row, start)| self.probabilities(row, self.sizes[t], start, t))
            .collect()
    }

    /// PPO on one batch: `samples` decoded from `starts`, with their advantages.
    fn train_generator(
        &mut self,
        space: &dyn SearchSpace,
        samples: &[Arch],
        starts: &[Arch],
        advantages: &[f32],
    ) {
        let n = samples.len();
        let start_refs: Vec<&Arch> = starts.iter().collect();
        // The same starts every epoch: their graph features once.
        let graphs = self.start_graphs(space, &start_refs);
        let inputs = self.teacher_inputs(samples, &start_refs);
        let width = self.graph.max_options();
        let mut old_log_probs: Option<Vec<f32>> = None;
        let backend = Cpu;
        for _ in 0..self.config.generator_steps {
            let mut tape = Tape::new(&backend);
            let (logits, encoder, vars) = self.decoder_on_tape(&mut tape, &graphs, &inputs);
            // Each sample's log-probability and each step's option probabilities.
            let mut log_probs = vec![0.0f32; n];
            let mut probs: Vec<Vec<Vec<f32>>> = Vec::with_capacity(self.sizes.len());
            for (t, &l) in logits.iter().enumerate() {
                let step = self.step_probabilities(&tape, l, &start_refs, t);
                for (s, sample) in samples.iter().enumerate() {
                    log_probs[s] += step[s][usize::from(sample.0[t])].max(1e-12).ln();
                }
                probs.push(step);
            }
            let old = old_log_probs.get_or_insert_with(|| log_probs.clone());
            // The clipped surrogate's gradient with respect to each step's logits, put on
            // the tape as sum(logits * gradient) so that one backward pass carries all.
            let mut loss: Option<Var> = None;
            for (t, (&l, &size)) in logits.iter().zip(&self.sizes).enumerate() {
                let mut seed = vec![0.0f32; n * width];
                for (s, sample) in samples.iter().enumerate() {
                    let advantage = advantages[s];
                    let ratio = (log_probs[s] - old[s]).exp();
                    let clipped = (advantage > 0.0 && ratio > 1.0 + self.config.clip)
                        || (advantage < 0.0 && ratio < 1.0 - self.config.clip);
                    let p = &probs[t][s];
                    let entropy: f32 = -p.iter().map(|q| q * q.max(1e-12).ln()).sum::<f32>();
                    for (i, &q) in p.iter().enumerate().take(size) {
                        let indicator = f32::from(i == usize::from(sample.0[t]));
                        // d(-A r)/dlogit_i = A r (p_i - [i = choice]); the entropy bonus
                        // adds -beta dH/dlogit_i = beta p_i (ln p_i + H).
                        let policy = if clipped {
                            0.0
                        } else {
                            advantage * ratio * (q - indicator)
                        };
                        let bonus = self.config.entropy * q * (q.max(1e-12).ln() + entropy);
                        seed[s * width + i] = (policy + bonus) / n as f32;
                    }
                }
                let g = tape.leaf(Tensor::new(&[n, width], seed).expect("rows"), false);
                let weighted = tape.mul(l, g).expect("same shape");
                let term = tape.sum(weighted).expect("sum");
                loss = Some(match loss {
                    Some(total) => tape.add(total, term).expect("scalars"),
                    None => term,
                });
            }
            let Some(loss) = loss else { return };
            tape.backward(loss).expect("scalar loss");
            let encoder_grads = self.generator.encoder.gradients(&tape, &encoder);
            let gru_grads = self.generator.gru.gradients(&tape, &vars.all);
            drop(tape);
            self.generator.encoder.apply(&encoder_grads);
            self.generator.gru.apply(&gru_grads);
        }
    }

    /// One iteration: the true set, the discriminator, the generator, then `count` new
    /// architectures queued.
    fn iterate(
        &mut self,
        space: &dyn SearchSpace,
        history: &History,
        rng: &mut dyn RngCore,
        count: usize,
    ) {
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
        // Graph features of the true set and the pool once, for every step's pairs.
        let (pool, _) = self.sample(space, &truth, 4 * b, rng);
        let truth_rows: Vec<Vec<f32>> = truth.iter().map(|a| self.graph.rows(space, a)).collect();
        let pool_rows: Vec<Vec<f32>> = pool.iter().map(|a| self.graph.rows(space, a)).collect();
        let pooling = self.graph.pooling(2 * b);
        for _ in 0..self.config.discriminator_steps {
            let pairs: Vec<(&[f32], &[f32])> = (0..b)
                .map(|_| {
                    (
                        truth_rows[rng.random_range(0..truth.len())].as_slice(),
                        pool_rows[rng.random_range(0..pool.len())].as_slice(),
                    )
                })
                .collect();
            self.train_discriminator(&pairs, &pooling);
        }
        let truth_refs: Vec<&Arch> = truth.iter().collect();
        let truth_mean = mean(&self.scores(space, &truth_refs));
        // 3. The generator, by PPO on the discriminator's reward.
        let (samples, starts) = self.sample(space, &truth, 2 * b, rng);
        let sample_refs: Vec<&Arch> = samples.iter().collect();
        let rewards: Vec<f32> = self
            .scores(space, &sample_refs)
            .iter()
            .map(|c| sigmoid(c - truth_mean))
            .collect();
        let reward_mean = mean(&rewards);
        let reward_std = (rewards
            .iter()
            .map(|r| (r - reward_mean).powi(2))
            .sum::<f32>()
            / rewards.len() as f32)
            .sqrt()
            .max(1e-6);
        let advantages: Vec<f32> = rewards
            .iter()
            .map(|r| (r - reward_mean) / reward_std)
            .collect();
        self.train_generator(space, &samples, &starts, &advantages);
        // 4. New, unseen architectures.
        let mut fresh: Vec<Arch> = Vec::new();
        let mut seen: std::collections::HashSet<Arch> = std::collections::HashSet::new();
        for _ in 0..10 {
            // A quarter more than is missing: the generator's samples are mostly new.
            let missing = count - fresh.len();
            for arch in self.sample(space, &truth, missing + missing / 4 + 4, rng).0 {
                if fresh.len() < count && history.get(&arch).is_none() && seen.insert(arch.clone())
                {
                    fresh.push(arch);
                }
            }
            if fresh.len() >= count {
                break;
            }
        }
        // A generator that has collapsed onto known architectures: the rest of the batch
        // random and unseen, so that an iteration still buys a whole batch of queries.
        for _ in 0..1000.max(10 * count) {
            if fresh.len() >= count {
                break;
            }
            let arch = space.sample(rng);
            if history.get(&arch).is_none() && seen.insert(arch.clone()) {
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
            self.iterate(space, history, rng, self.config.batch);
        }
        self.queue.pop_front().unwrap_or_else(|| space.sample(rng))
    }

    /// A round of `n`: one iteration for the whole round (its networks train once),
    /// generating twice what is asked so that the proposals a latency screen refuses are
    /// replaced from the queue, not by another iteration; what is left over opens the next
    /// round.
    fn propose_batch(
        &mut self,
        space: &dyn SearchSpace,
        history: &History,
        rng: &mut dyn RngCore,
        n: usize,
    ) -> Vec<Arch> {
        if history.len() < self.config.warmup {
            return (0..n).map(|_| space.sample(rng)).collect();
        }
        // Leftovers evaluated since they were queued are repeats: dropped here.
        self.queue.retain(|arch| history.get(arch).is_none());
        if self.queue.len() < n {
            self.round = self.round.max(n);
            let count = 2 * self.round.max(self.config.batch);
            self.iterate(space, history, rng, count);
        }
        let take = n.min(self.queue.len());
        self.queue.drain(..take).collect()
    }

    fn observe(&mut self, _: &dyn SearchSpace, _: &History, _: &Record) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Nb201Space, OfaSpace};
    use rand::SeedableRng;

    /// `count` random architectures of `space`.
    fn random_archs(space: &dyn SearchSpace, count: usize, rng: &mut dyn RngCore) -> Vec<Arch> {
        (0..count).map(|_| space.sample(rng)).collect()
    }

    #[test]
    fn a_round_is_one_iteration_whose_spare_half_serves_the_next_round() {
        let space = Nb201Space::new();
        let mut ganas = GaNas::new(&space);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut history = History::new();
        for arch in ganas.propose_batch(&space, &history, &mut rng, 30) {
            if history.get(&arch).is_none() {
                history.push(Record::scored(history.len() + 1, arch, 1.0));
            }
        }
        // Past the warm-up: one iteration generates twice the round.
        let round = ganas.propose_batch(&space, &history, &mut rng, 30);
        let distinct: std::collections::HashSet<&Arch> = round.iter().collect();
        assert_eq!(distinct.len(), 30);
        assert!(round.iter().all(|a| history.get(a).is_none()));
        assert_eq!(ganas.queue.len(), 30);
        // The next round of up to 30 comes from the queue, less what was evaluated since.
        history.push(Record::scored(
            history.len() + 1,
            ganas.queue[0].clone(),
            1.0,
        ));
        let next = ganas.propose_batch(&space, &history, &mut rng, 29);
        assert_eq!(next.len(), 29);
        assert!(ganas.queue.is_empty());
        assert!(
            next.iter()
                .all(|a| history.get(a).is_none() && !round.contains(a))
        );
    }

    #[test]
    fn an_untrained_generator_samples_every_option() {
        let space = Nb201Space::new();
        let ganas = GaNas::new(&space);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (samples, _) = ganas.sample(&space, &[], 500, &mut rng);
        for edge in 0..6 {
            let mut counts = [0usize; 5];
            for s in &samples {
                counts[usize::from(s.0[edge])] += 1;
            }
            assert!(counts.iter().all(|&c| c > 25), "edge {edge}: {counts:?}");
        }
    }

    #[test]
    fn the_discriminator_separates_a_separable_toy_set() {
        // "True" cells are all-conv3x3-heavy, "fake" ones all-none: a separable set.
        let space = Nb201Space::new();
        let mut ganas = GaNas::new(&space);
        let reals = [Arch(vec![3; 6]), Arch(vec![3, 3, 3, 3, 3, 2])];
        let fakes = [Arch(vec![0; 6]), Arch(vec![0, 0, 1, 0, 0, 0])];
        let rows = |archs: &[Arch]| -> Vec<Vec<f32>> {
            archs.iter().map(|a| ganas.graph.rows(&space, a)).collect()
        };
        let (real_rows, fake_rows) = (rows(&reals), rows(&fakes));
        let pooling = ganas.graph.pooling(4);
        for _ in 0..200 {
            let pairs: Vec<(&[f32], &[f32])> = real_rows
                .iter()
                .zip(&fake_rows)
                .map(|(r, f)| (r.as_slice(), f.as_slice()))
                .collect();
            ganas.train_discriminator(&pairs, &pooling);
        }
        let batch: Vec<&Arch> = reals.iter().chain(fakes.iter()).collect();
        let scores = ganas.scores(&space, &batch);
        assert!(
            scores[0].min(scores[1]) > scores[2].max(scores[3]) + 1.0,
            "{scores:?}"
        );
    }

    #[test]
    fn ppo_moves_the_generator_towards_what_the_advantages_reward() {
        // Samples whose first edge is a 3x3 convolution get a positive advantage, the rest a
        // negative one: after the epochs the generator draws that edge more often.
        let space = Nb201Space::new();
        // Without the copy prior, which would hold each edge to its random start's choice.
        let config = GaNasConfig {
            copy_prior: 0.0,
            ..GaNasConfig::default()
        };
        let mut ganas = GaNas::with_config(&space, config);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let share = |ganas: &GaNas, rng: &mut rand_chacha::ChaCha8Rng| {
            let (s, _) = ganas.sample(&space, &[], 400, rng);
            s.iter().filter(|a| a.0[0] == 3).count() as f32 / 400.0
        };
        let before = share(&ganas, &mut rng);
        for _ in 0..15 {
            let (samples, starts) = ganas.sample(&space, &[], 64, &mut rng);
            let advantages: Vec<f32> = samples
                .iter()
                .map(|a| if a.0[0] == 3 { 1.0 } else { -0.25 })
                .collect();
            ganas.train_generator(&space, &samples, &starts, &advantages);
        }
        let after = share(&ganas, &mut rng);
        assert!(after > before + 0.2, "{before} -> {after}");
    }

    #[test]
    fn the_sampler_off_the_tape_has_the_decoders_probabilities_on_it() {
        // Decode forced choices off the tape, recording each step's probabilities, and
        // teacher-force the same choices through the tape's decoder: the two agree.
        let space = OfaSpace::default();
        let ganas = GaNas::new(&space);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let starts = random_archs(&space, 3, &mut rng);
        let starts: Vec<&Arch> = (0..7).map(|i| &starts[i % 3]).collect();
        let targets = random_archs(&space, 7, &mut rng);
        let mut seen = vec![vec![Vec::new(); ganas.sizes.len()]; targets.len()];
        let decoded = ganas.decode(&space, &starts, &mut |b, t, weights, total| {
            seen[b][t] = weights.iter().map(|w| w / total).collect();
            targets[b].0[t]
        });
        assert_eq!(decoded, targets);
        let backend = Cpu;
        let mut tape = Tape::new(&backend);
        let graphs = ganas.start_graphs(&space, &starts);
        let inputs = ganas.teacher_inputs(&targets, &starts);
        let (logits, _, _) = ganas.decoder_on_tape(&mut tape, &graphs, &inputs);
        for (t, &l) in logits.iter().enumerate() {
            for (b, probs) in ganas
                .step_probabilities(&tape, l, &starts, t)
                .iter()
                .enumerate()
            {
                for (p, q) in probs.iter().zip(&seen[b][t]) {
                    assert!(
                        (p - q).abs() < 1e-5,
                        "row {b} step {t}: {probs:?} vs {:?}",
                        seen[b][t]
                    );
                }
            }
        }
    }

    #[test]
    fn an_untrained_generator_edits_a_few_decisions_of_its_start() {
        // The copy prior: most choices are the start's, a few depart from it.
        let space = OfaSpace::default();
        let ganas = GaNas::new(&space);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let truth = random_archs(&space, 10, &mut rng);
        let (samples, starts) = ganas.sample(&space, &truth, 200, &mut rng);
        let changed: Vec<usize> = samples
            .iter()
            .zip(&starts)
            .map(|(s, t)| s.0.iter().zip(&t.0).filter(|(a, b)| a != b).count())
            .collect();
        let mean = changed.iter().sum::<usize>() as f32 / changed.len() as f32;
        let decisions = space.decisions().len() as f32;
        assert!(
            mean >= 0.5 && mean <= 0.15 * decisions,
            "{mean} of {decisions} changed"
        );
        assert!(
            changed.iter().filter(|&&c| c == 0).count() < 100,
            "{changed:?}"
        );
    }
}
