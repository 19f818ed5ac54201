//! Synflow in closed form, for scoring the whole NAS-Bench-201 space in about a second.
//!
//! Synflow's network has non-negative weights, no batch norm and an all-ones input, so every
//! ReLU passes its input and the network is linear. With *periodic* padding instead of
//! zeros, a constant input stays constant through every layer: a `k x k` convolution acts
//! on a constant map as the `C_out x C_in` matrix of its kernels' sums, pooling (which
//! averages) and skips as the identity. The whole network then reduces to matrix-vector
//! products on one value per channel.
//!
//! The score itself needs no backward pass. Scaling every weight by `1 + e` scales each
//! input-to-output path by `(1 + e)^k`, `k` its parameterised layers, so
//! `sum(theta * dR/dtheta) = dR/de` at `e = 0`: a forward-mode derivative along the weights,
//! carried beside each value as a tangent `t` with `conv(v, t) = (S v, S (v + t))`.
//!
//! This is synflow of the network with periodic padding, computed exactly (in `f64`, with a
//! running power-of-ten scale so that no value overflows); it differs from the reference's
//! zero-padded network only by the border pixels. How closely the two rank cells is measured
//! in docs/BENCHMARKS.md; the zero-padded computation stays in [`super::synflow`].

use rand::Rng;
use rand::SeedableRng;

use super::Nb201Net;
use crate::space::Arch;
use crate::space::nb201::EDGES;

/// A dense row-major matrix of `f64`.
#[derive(Debug, Clone)]
struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// `out = self * x`.
    fn apply(&self, x: &[f64], out: &mut [f64]) {
        for (row, o) in self.data.chunks_exact(self.cols).zip(out.iter_mut()) {
            *o = row.iter().zip(x).map(|(a, b)| a * b).sum();
        }
    }

    /// `(S v, S (v + t))`: a convolution on a constant map and its tangent along the weights.
    fn conv(&self, v: &[f64], t: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut out_v = vec![0.0; self.rows];
        let mut out_t = vec![0.0; self.rows];
        let vt: Vec<f64> = v.iter().zip(t).map(|(a, b)| a + b).collect();
        self.apply(v, &mut out_v);
        self.apply(&vt, &mut out_t);
        (out_v, out_t)
    }
}

/// Every weight of the network in full (`[out, in, k, k]`, non-negative), drawn once; the
/// closed form keeps only their spatial sums.
#[derive(Debug, Clone)]
pub struct Kernels {
    /// The network's size.
    pub net: Nb201Net,
    /// The stem's `3 x 3` convolution, `[C, 3, 3, 3]`.
    pub stem: Kernel,
    /// Per stage, per cell, per edge: the `1 x 1` and the `3 x 3` convolution an edge holds
    /// when it is that operation.
    pub cells: Vec<[[Kernel; 2]; 6]>,
    /// Per reduction block (before stages 2 and 3): its two `3 x 3` convolutions and the
    /// shortcut's `1 x 1` one.
    pub reductions: Vec<[Kernel; 3]>,
    /// The classifier's weight, `[classes, C_last, 1, 1]`.
    pub classifier: Kernel,
}

/// One convolution's weights.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Output channels.
    pub out: usize,
    /// Input channels.
    pub inputs: usize,
    /// Kernel size.
    pub size: usize,
    /// `[out, inputs, size, size]`, row-major.
    pub weights: Vec<f64>,
}

impl Kernel {
    fn draw(rng: &mut impl Rng, out: usize, inputs: usize, size: usize) -> Self {
        // PyTorch's default bound (what the reference leaves in place), absolute values.
        let bound = 1.0 / ((inputs * size * size) as f64).sqrt();
        let weights = (0..out * inputs * size * size)
            .map(|_| rng.random_range(-bound..bound).abs())
            .collect();
        Kernel {
            out,
            inputs,
            size,
            weights,
        }
    }

    /// The matrix this kernel applies to a constant map: each `k x k` kernel summed.
    fn summed(&self) -> Matrix {
        let taps = self.size * self.size;
        Matrix {
            rows: self.out,
            cols: self.inputs,
            data: self
                .weights
                .chunks_exact(taps)
                .map(|k| k.iter().sum())
                .collect(),
        }
    }
}

impl Kernels {
    /// Every weight of `net` from `seed`.
    pub fn draw(net: Nb201Net, seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let stem = Kernel::draw(&mut rng, net.channels, 3, 3);
        let mut cells = Vec::new();
        let mut reductions = Vec::new();
        let mut c = net.channels;
        for stage in 0..3 {
            if stage > 0 {
                reductions.push([
                    Kernel::draw(&mut rng, 2 * c, c, 3),
                    Kernel::draw(&mut rng, 2 * c, 2 * c, 3),
                    Kernel::draw(&mut rng, 2 * c, c, 1),
                ]);
                c *= 2;
            }
            for _ in 0..net.cells {
                cells.push(std::array::from_fn(|_| {
                    [
                        Kernel::draw(&mut rng, c, c, 1),
                        Kernel::draw(&mut rng, c, c, 3),
                    ]
                }));
            }
        }
        let classifier = Kernel::draw(&mut rng, net.classes, c, 1);
        Kernels {
            net,
            stem,
            cells,
            reductions,
            classifier,
        }
    }
}

/// Synflow of NAS-Bench-201's synflow network with periodic padding, in closed form: build
/// once ([`PeriodicSynflow::new`]), then [`PeriodicSynflow::log10_score`] per cell (tens of
/// microseconds).
#[derive(Debug, Clone)]
pub struct PeriodicSynflow {
    cells_per_stage: usize,
    stem: Matrix,
    cells: Vec<[[Matrix; 2]; 6]>,
    reductions: Vec<[Matrix; 3]>,
    classifier: Matrix,
}

/// A constant map's value per channel and its tangent along the weights.
type Flow = (Vec<f64>, Vec<f64>);

impl PeriodicSynflow {
    /// The closed form of `net` with weights drawn from `seed`.
    pub fn new(net: Nb201Net, seed: u64) -> Self {
        Self::from_kernels(&Kernels::draw(net, seed))
    }

    /// The closed form of the network with these weights.
    pub fn from_kernels(kernels: &Kernels) -> Self {
        PeriodicSynflow {
            cells_per_stage: kernels.net.cells,
            stem: kernels.stem.summed(),
            cells: kernels
                .cells
                .iter()
                .map(|edges| {
                    edges
                        .each_ref()
                        .map(|pair| pair.each_ref().map(Kernel::summed))
                })
                .collect(),
            reductions: kernels
                .reductions
                .iter()
                .map(|r| r.each_ref().map(Kernel::summed))
                .collect(),
            classifier: kernels.classifier.summed(),
        }
    }

    /// log10 of synflow for `arch` (`-inf` where no path joins the input to the output).
    pub fn log10_score(&self, arch: &Arch) -> f64 {
        // The all-ones input has no tangent (it is not a weight).
        let (v, t) = self.stem.conv(&[1.0; 3], &[0.0; 3]);
        let mut flow = (v, t);
        let mut log10_scale = 0.0;
        for stage in 0..3 {
            if stage > 0 {
                flow = reduction(&self.reductions[stage - 1], &flow);
            }
            for cell in 0..self.cells_per_stage {
                let Some(out) = cell_flow(
                    &self.cells[stage * self.cells_per_stage + cell],
                    arch,
                    &flow,
                ) else {
                    return f64::NEG_INFINITY;
                };
                flow = out;
                // Linear in the input: rescale to keep values in range, remember the scale.
                let largest = flow.0.iter().chain(&flow.1).fold(0.0f64, |m, x| m.max(*x));
                if largest == 0.0 {
                    return f64::NEG_INFINITY;
                }
                let exponent = largest.log10().floor();
                let factor = 10f64.powf(-exponent);
                flow.0
                    .iter_mut()
                    .chain(flow.1.iter_mut())
                    .for_each(|x| *x *= factor);
                log10_scale += exponent;
            }
        }
        // Global pooling keeps a constant map; the classifier's bias has no tangent.
        let (_, t) = self.classifier.conv(&flow.0, &flow.1);
        let score: f64 = t.iter().sum();
        if score > 0.0 {
            score.log10() + log10_scale
        } else {
            f64::NEG_INFINITY
        }
    }
}

/// NAS-Bench-201's ResNet block: two `3 x 3` convolutions, the shortcut a pool (identity on
/// a constant map) and a `1 x 1` convolution.
fn reduction(convs: &[Matrix; 3], (v, t): &Flow) -> Flow {
    let (av, at) = convs[0].conv(v, t);
    let (bv, bt) = convs[1].conv(&av, &at);
    let (sv, st) = convs[2].conv(v, t);
    (add(&bv, &sv), add(&bt, &st))
}

/// A cell on a constant map; `None` when its output is no path from its input.
fn cell_flow(convs: &[[Matrix; 2]; 6], arch: &Arch, input: &Flow) -> Option<Flow> {
    let mut nodes: Vec<Option<Flow>> = vec![Some(input.clone())];
    for to in 1..4 {
        let mut node: Option<Flow> = None;
        for (e, &(edge_to, from)) in EDGES.iter().enumerate() {
            let Some((v, t)) = (edge_to == to).then(|| nodes[from].as_ref()).flatten() else {
                continue;
            };
            let (ev, et) = match arch.0[e] {
                // Skip, and pooling (an average of a constant).
                1 | 4 => (v.clone(), t.clone()),
                2 => convs[e][0].conv(v, t),
                3 => convs[e][1].conv(v, t),
                _ => continue,
            };
            node = Some(match node {
                None => (ev, et),
                Some((nv, nt)) => (add(&nv, &ev), add(&nt, &et)),
            });
        }
        nodes.push(node);
    }
    nodes.pop().flatten()
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxies::{SYNFLOW_NET, spearman, synflow};

    /// A constant-free check: the same network built pixel by pixel with periodic padding
    /// (no closed form), R(e) with every weight scaled by (1 + e), and synflow as its
    /// central difference.
    mod spatial {
        use super::super::{Kernel, Kernels};
        use crate::space::Arch;
        use crate::space::nb201::EDGES;

        /// `[C, H, W]` maps.
        pub struct Map {
            pub c: usize,
            pub h: usize,
            pub data: Vec<f64>,
        }

        fn conv(k: &Kernel, x: &Map, stride: usize, scale: f64) -> Map {
            let h = x.h / stride;
            let pad = (k.size / 2) as isize;
            let mut data = vec![0.0; k.out * h * h];
            for o in 0..k.out {
                for y in 0..h {
                    for xx in 0..h {
                        let mut s = 0.0;
                        for i in 0..k.inputs {
                            for ky in 0..k.size {
                                for kx in 0..k.size {
                                    let wrap = |p: usize, d: usize| {
                                        ((p * stride) as isize + d as isize - pad)
                                            .rem_euclid(x.h as isize)
                                            as usize
                                    };
                                    let (sy, sx) = (wrap(y, ky), wrap(xx, kx));
                                    let w =
                                        k.weights[((o * k.inputs + i) * k.size + ky) * k.size + kx];
                                    s += w * scale * x.data[(i * x.h + sy) * x.h + sx];
                                }
                            }
                        }
                        data[(o * h + y) * h + xx] = s;
                    }
                }
            }
            Map { c: k.out, h, data }
        }

        /// A 3x3 average (periodic, so always nine values), or 2x2 with stride 2.
        fn pool(x: &Map, size: usize, stride: usize) -> Map {
            let h = x.h / stride;
            let mut data = vec![0.0; x.c * h * h];
            let off = if size == 3 { 1 } else { 0 };
            for c in 0..x.c {
                for y in 0..h {
                    for xx in 0..h {
                        let mut s = 0.0;
                        for dy in 0..size {
                            for dx in 0..size {
                                let sy = ((y * stride + dy) as isize - off).rem_euclid(x.h as isize)
                                    as usize;
                                let sx = ((xx * stride + dx) as isize - off)
                                    .rem_euclid(x.h as isize)
                                    as usize;
                                s += x.data[(c * x.h + sy) * x.h + sx];
                            }
                        }
                        data[(c * h + y) * h + xx] = s / (size * size) as f64;
                    }
                }
            }
            Map { c: x.c, h, data }
        }

        fn add(a: &Map, b: &Map) -> Map {
            Map {
                c: a.c,
                h: a.h,
                data: a.data.iter().zip(&b.data).map(|(x, y)| x + y).collect(),
            }
        }

        /// R = sum of the logits (without the bias, which synflow's derivative never sees).
        pub fn output_sum(k: &Kernels, arch: &Arch, resolution: usize, scale: f64) -> f64 {
            let x = Map {
                c: 3,
                h: resolution,
                data: vec![1.0; 3 * resolution * resolution],
            };
            let mut h = conv(&k.stem, &x, 1, scale);
            for stage in 0..3 {
                if stage > 0 {
                    let r = &k.reductions[stage - 1];
                    let a = conv(&r[0], &h, 2, scale);
                    let a = conv(&r[1], &a, 1, scale);
                    let s = conv(&r[2], &pool(&h, 2, 2), 1, scale);
                    h = add(&a, &s);
                }
                for cell in 0..k.net.cells {
                    let convs = &k.cells[stage * k.net.cells + cell];
                    let mut nodes = vec![h];
                    for to in 1..4 {
                        let mut node = Map {
                            c: nodes[0].c,
                            h: nodes[0].h,
                            data: vec![0.0; nodes[0].data.len()],
                        };
                        for (e, &(edge_to, from)) in EDGES.iter().enumerate() {
                            if edge_to != to {
                                continue;
                            }
                            let input = &nodes[from];
                            let out = match arch.0[e] {
                                1 => Map {
                                    c: input.c,
                                    h: input.h,
                                    data: input.data.clone(),
                                },
                                2 => conv(&convs[e][0], input, 1, scale),
                                3 => conv(&convs[e][1], input, 1, scale),
                                4 => pool(input, 3, 1),
                                _ => continue,
                            };
                            node = add(&node, &out);
                        }
                        nodes.push(node);
                    }
                    h = nodes.pop().expect("node 3");
                }
            }
            let per_channel: Vec<f64> = (0..h.c)
                .map(|c| {
                    h.data[c * h.h * h.h..(c + 1) * h.h * h.h]
                        .iter()
                        .sum::<f64>()
                        / (h.h * h.h) as f64
                })
                .collect();
            let w = &k.classifier;
            (0..w.out)
                .map(|o| {
                    (0..w.inputs)
                        .map(|i| w.weights[o * w.inputs + i] * scale * per_channel[i])
                        .sum::<f64>()
                })
                .sum()
        }
    }

    fn small() -> Nb201Net {
        Nb201Net {
            channels: 2,
            cells: 1,
            classes: 3,
            batch_norm: false,
        }
    }

    /// The closed form is the derivative of the pixel-by-pixel periodic network's output
    /// along its weights, on cells of every operation.
    #[test]
    fn closed_form_is_the_periodic_networks_synflow() {
        let kernels = Kernels::draw(small(), 3);
        let closed = PeriodicSynflow::from_kernels(&kernels);
        for arch in [
            Arch(vec![3; 6]),
            Arch(vec![1, 2, 3, 4, 0, 3]),
            Arch(vec![4, 4, 2, 1, 3, 0]),
            Arch(vec![2, 0, 0, 1, 0, 4]),
        ] {
            let e = 1e-4;
            let r = |s: f64| spatial::output_sum(&kernels, &arch, 8, s);
            let expected = (r(1.0 + e) - r(1.0 - e)) / (2.0 * e);
            let got = 10f64.powf(closed.log10_score(&arch));
            assert!(
                (got - expected).abs() <= 1e-4 * expected,
                "{arch:?}: closed form {got}, periodic network {expected}"
            );
        }
        assert_eq!(closed.log10_score(&Arch(vec![0; 6])), f64::NEG_INFINITY);
        // Node 3 fed only by an edge whose source never receives the input.
        assert_eq!(
            closed.log10_score(&Arch(vec![0, 0, 0, 0, 0, 1])),
            f64::NEG_INFINITY
        );
    }

    /// The full-size network's path gains stay in range, and the periodic score ranks cells
    /// as the reference's zero-padded network does.
    #[test]
    fn ranks_cells_as_the_zero_padded_network() {
        let closed = PeriodicSynflow::new(SYNFLOW_NET, 0);
        let all_conv = closed.log10_score(&Arch(vec![3; 6]));
        assert!(all_conv.is_finite() && all_conv > 10.0, "{all_conv}");
        let net = Nb201Net {
            channels: 4,
            ..small()
        };
        let closed = PeriodicSynflow::new(net, 0);
        let archs: Vec<Arch> = (0..24u64)
            .map(|i| {
                Arch(
                    (0..6)
                        .map(|e| ((i * 7 + e * 3 + i * e) % 5) as u8)
                        .collect(),
                )
            })
            .filter(|a| closed.log10_score(a).is_finite())
            .collect();
        let periodic: Vec<f64> = archs.iter().map(|a| closed.log10_score(a)).collect();
        let zero_padded: Vec<f64> = archs.iter().map(|a| synflow(&net, a, 16)).collect();
        let rho = spearman(&periodic, &zero_padded);
        assert!(
            archs.len() >= 12 && rho > 0.9,
            "{} cells, Spearman {rho}",
            archs.len()
        );
    }
}
