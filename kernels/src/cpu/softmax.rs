//! Softmax along the last axis, softmax and log-softmax backward, Gumbel noise (the
//! Gumbel-softmax of GDAS and UNAS is `softmax((logits + g) / tau)`), and the one-hot argmax
//! of its straight-through hard form.

use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

use super::log_softmax;

/// The last axis's length and the rows of a tensor viewed as `[rows, last]`.
fn rows(t: &Tensor) -> Result<usize> {
    match t.shape().last() {
        Some(&c) if c > 0 => Ok(c),
        _ => Err(Error::Shape(format!(
            "a softmax needs a non-empty last axis, got {:?}",
            t.shape()
        ))),
    }
}

/// Softmax along the last axis.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    let c = rows(x)?;
    let flat = x.clone().reshape(&[x.len() / c, c])?;
    let probs = log_softmax(&flat)?.data().iter().map(|v| v.exp()).collect();
    Tensor::new(x.shape(), probs)
}

/// Gradient through a softmax along the last axis from its output `p`:
/// `p * (dy - <p, dy>)` per row.
pub fn softmax_backward(p: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let c = rows(p)?;
    same_shape("softmax backward", p, dy)?;
    let mut dx = Vec::with_capacity(p.len());
    for (pr, gr) in p.data().chunks(c).zip(dy.data().chunks(c)) {
        let inner: f32 = pr.iter().zip(gr).map(|(p, g)| p * g).sum();
        dx.extend(pr.iter().zip(gr).map(|(p, g)| p * (g - inner)));
    }
    Tensor::new(p.shape(), dx)
}

/// Gradient through a row-wise log-softmax of `[N, C]` from its output `l`:
/// `dy - softmax * sum(dy)` per row.
pub fn log_softmax_backward(l: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let c = rows(l)?;
    same_shape("log-softmax backward", l, dy)?;
    let mut dx = Vec::with_capacity(l.len());
    for (lr, gr) in l.data().chunks(c).zip(dy.data().chunks(c)) {
        let total: f32 = gr.iter().sum();
        dx.extend(lr.iter().zip(gr).map(|(l, g)| g - l.exp() * total));
    }
    Tensor::new(l.shape(), dx)
}

/// The segments of a `[N, D]` tensor's rows: `sizes` must add up to `D`.
fn check_segments(what: &str, x: &Tensor, sizes: &[usize]) -> Result<()> {
    match x.shape() {
        &[_, d] if sizes.iter().sum::<usize>() == d && sizes.iter().all(|&s| s > 0) => Ok(()),
        shape => Err(Error::Shape(format!(
            "{what}: segments {sizes:?} (each non-empty) must tile the rows of a [N, D] tensor, got {shape:?}"
        ))),
    }
}

/// A softmax over each segment of each row of `[N, D]` (segments of `sizes`, adding up to
/// `D`) of the values times `scale`: per-decision probabilities of a flat encoding. The
/// same values as slicing, scaling, a softmax per slice and concatenating, in one pass.
pub fn segment_softmax(x: &Tensor, sizes: &[usize], scale: f32) -> Result<Tensor> {
    check_segments("segment softmax", x, sizes)?;
    let d = x.shape()[1];
    let mut out: Vec<f32> = x.data().iter().map(|v| v * scale).collect();
    if d > 0 {
        for row in out.chunks_mut(d) {
            let mut offset = 0;
            for &size in sizes {
                let segment = &mut row[offset..offset + size];
                let max = segment.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let log_sum = segment.iter().map(|v| (v - max).exp()).sum::<f32>().ln() + max;
                segment.iter_mut().for_each(|v| *v = (*v - log_sum).exp());
                offset += size;
            }
        }
    }
    Tensor::new(x.shape(), out)
}

/// Gradient through [`segment_softmax`] from its output `p`: per segment
/// `scale * p * (dy - <p, dy>)`.
pub fn segment_softmax_backward(
    p: &Tensor,
    dy: &Tensor,
    sizes: &[usize],
    scale: f32,
) -> Result<Tensor> {
    check_segments("segment softmax backward", p, sizes)?;
    same_shape("segment softmax backward", p, dy)?;
    let d = p.shape()[1];
    let mut dx = Vec::with_capacity(p.len());
    if d > 0 {
        for (pr, gr) in p.data().chunks(d).zip(dy.data().chunks(d)) {
            let mut offset = 0;
            for &size in sizes {
                let (ps, gs) = (&pr[offset..offset + size], &gr[offset..offset + size]);
                let inner: f32 = ps.iter().zip(gs).map(|(p, g)| p * g).sum();
                dx.extend(ps.iter().zip(gs).map(|(p, g)| p * (g - inner) * scale));
                offset += size;
            }
        }
    }
    Tensor::new(p.shape(), dx)
}

/// A uniform draw strictly inside `(0, 1)`.
pub fn open_uniform(rng: &mut impl Rng) -> f32 {
    rng.random::<f32>().clamp(1e-6, 1.0 - 1e-6)
}

/// `k` draws of standard Gumbel noise `-ln(-ln u)`.
pub fn gumbel(k: usize, rng: &mut impl Rng) -> Vec<f32> {
    (0..k).map(|_| -(-open_uniform(rng).ln()).ln()).collect()
}

/// Standard Gumbel noise of a shape, from a seed: with [`crate::Backend::softmax`] at
/// scale `1 / tau` it makes a Gumbel-softmax sample.
pub fn gumbel_noise(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Tensor::new(shape, gumbel(shape.iter().product(), &mut rng)).expect("shape and length agree")
}

/// The one-hot of each row's first maximum along the last axis.
pub fn one_hot_argmax(x: &Tensor) -> Result<Tensor> {
    let c = rows(x)?;
    let mut y = vec![0.0; x.len()];
    for (r, row) in x.data().chunks(c).enumerate() {
        y[r * c + argmax(row)] = 1.0;
    }
    Tensor::new(x.shape(), y)
}

/// The index of the largest value of `row` (the first on ties; 0 for an empty row).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// Gradient of [`gumbel_softmax`] with respect to the logits, from its `soft` output:
/// `softmax_backward(soft, dy) / tau` (the same for the hard, straight-through form).
pub fn gumbel_softmax_backward(soft: &Tensor, dy: &Tensor, tau: f32) -> Result<Tensor> {
    let mut dx = softmax_backward(soft, dy)?;
    dx.data_mut().iter_mut().for_each(|v| *v /= tau);
    Ok(dx)
}

fn same_shape(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::Shape(format!(
            "{what}: {:?} vs {:?}",
            a.shape(),
            b.shape()
        )));
    }
    Ok(())
}
