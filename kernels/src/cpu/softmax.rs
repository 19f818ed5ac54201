//! Row-wise softmax and log-softmax backward, and the Gumbel-softmax of GDAS and UNAS:
//! `softmax((logits + g) / tau)` with Gumbel noise `g`, soft or straight-through hard.

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

/// Standard Gumbel noise `-ln(-ln u)` of a shape, from a seed.
pub fn gumbel_noise(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let len = shape.iter().product();
    let data = (0..len)
        .map(|_| {
            let u: f32 = rng.random_range(f32::EPSILON..1.0);
            -(-u.ln()).ln()
        })
        .collect();
    Tensor::new(shape, data).expect("shape and length agree")
}

/// The Gumbel-softmax along the last axis: `(y, soft)` where `soft = softmax((logits +
/// noise) / tau)` and `y` is `soft` or, when `hard`, the one-hot of each row's argmax
/// (the straight-through sample, whose gradient is taken as `soft`'s).
pub fn gumbel_softmax(
    logits: &Tensor,
    noise: &Tensor,
    tau: f32,
    hard: bool,
) -> Result<(Tensor, Tensor)> {
    same_shape("gumbel-softmax", logits, noise)?;
    if tau.is_nan() || tau <= 0.0 {
        return Err(Error::Shape(format!(
            "gumbel-softmax temperature must be > 0, got {tau}"
        )));
    }
    let perturbed = logits
        .data()
        .iter()
        .zip(noise.data())
        .map(|(l, g)| (l + g) / tau)
        .collect();
    let soft = softmax(&Tensor::new(logits.shape(), perturbed)?)?;
    if !hard {
        return Ok((soft.clone(), soft));
    }
    Ok((one_hot_argmax(&soft)?, soft))
}

/// The one-hot of each row's first maximum along the last axis.
pub fn one_hot_argmax(x: &Tensor) -> Result<Tensor> {
    let c = rows(x)?;
    let mut y = vec![0.0; x.len()];
    for (r, row) in x.data().chunks(c).enumerate() {
        let best = row
            .iter()
            .enumerate()
            .fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
        y[r * c + best] = 1.0;
    }
    Tensor::new(x.shape(), y)
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
