//! Batch normalisation in training mode (statistics of the batch, per channel over N, H and
//! W) and its backward.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{PARALLEL_MIN, elementwise, reduce};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// What the backward pass needs from the forward pass; every field lives where the backend
/// computed it (on the device for the wgpu backend).
#[derive(Debug, Clone)]
pub struct BatchNormCache {
    /// The normalised input.
    pub normalised: Tensor,
    /// `1 / sqrt(var + eps)` per channel, `[C]`.
    pub inv_std: Tensor,
    /// The batch mean per channel, `[C]`.
    pub mean: Tensor,
    /// The batch (biased) variance per channel, `[C]`.
    pub var: Tensor,
}

/// Per-channel sums of `K` statistics of each plane: `stats(i)` for every plane `i` (in
/// parallel when the tensor of `len` values is large), then added per channel `i % c` in
/// plane order, so the sums do not depend on the workers.
fn per_channel<const K: usize>(
    len: usize,
    plane: usize,
    c: usize,
    stats: impl Fn(usize) -> [f32; K] + Sync,
) -> [Vec<f32>; K] {
    let count = len / plane.max(1);
    let planes: Vec<[f32; K]> = if len < PARALLEL_MIN {
        (0..count).map(&stats).collect()
    } else {
        (0..count).into_par_iter().map(&stats).collect()
    };
    let mut sums: [Vec<f32>; K] = std::array::from_fn(|_| vec![0.0f32; c]);
    for (i, values) in planes.into_iter().enumerate() {
        for (sum, v) in sums.iter_mut().zip(values) {
            sum[i % c] += v;
        }
    }
    sums
}

/// Values one parallel task of [`planes_into`] writes, in whole planes.
const TASK_VALUES: usize = 1 << 14;

/// A new buffer of `len` values, planes of `plane` values each, written by
/// `write(i, out)` for every plane `i` — in parallel tasks of whole planes when large, and
/// never zeroed first (a zeroing pass on the calling thread cost as much as the writes).
///
/// # Safety
/// `write` must initialise every element of the plane it is given.
#[allow(unsafe_code)]
unsafe fn planes_into(
    len: usize,
    plane: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    if plane == 0 || len == 0 {
        return Vec::new();
    }
    let per_task = (TASK_VALUES / plane).max(1);
    let chunk = if len < PARALLEL_MIN {
        len
    } else {
        per_task * plane
    };
    let first_plane = |t: usize| t * (chunk / plane);
    let task = |t: usize, out: &mut [MaybeUninit<f32>]| {
        for (j, out) in out.chunks_exact_mut(plane).enumerate() {
            write(first_plane(t) + j, out);
        }
    };
    // SAFETY: every chunk is whole planes (`len` is a whole number of them), and the
    // caller's `write` initialises each.
    let (values, _) = unsafe { elementwise::fill_chunks(len, chunk, task) };
    values
}

/// `gamma * (x - mean) / sqrt(var + eps) + beta` with the batch's per-channel statistics.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> Result<(Tensor, BatchNormCache)> {
    let [n, c, h, w] = x.nchw()?;
    let plane = h * w;
    let count = (n * plane) as f32;
    let of = |i: usize| &x.data()[i * plane..][..plane];
    let [sums] = per_channel(x.len(), plane, c, |i| [reduce::sum(of(i))]);
    let mean: Vec<f32> = sums.iter().map(|s| s / count).collect();
    let [squares] = per_channel(x.len(), plane, c, |i| {
        [reduce::squared_deviations(of(i), mean[i % c])]
    });
    let var: Vec<f32> = squares.iter().map(|s| s / count).collect();
    let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let (g, b) = (gamma.data(), beta.data());
    let normalise = |i: usize, out: &mut [MaybeUninit<f32>]| {
        let (m, s) = (mean[i % c], inv_std[i % c]);
        for (o, v) in out.iter_mut().zip(of(i)) {
            o.write((v - m) * s);
        }
    };
    #[allow(unsafe_code)]
    // SAFETY: `of(i)` is a whole plane, so every element of `out` is written.
    let values = unsafe { planes_into(x.len(), plane, normalise) };
    let normalised = Tensor::new(x.shape(), values)?;
    let cache = BatchNormCache {
        normalised: normalised.clone(),
        inv_std: Tensor::new(&[c], inv_std)?,
        mean: Tensor::new(&[c], mean)?,
        var: Tensor::new(&[c], var)?,
    };
    if g.iter().all(|&v| v == 1.0) && b.iter().all(|&v| v == 0.0) {
        // Non-affine (NAS-Bench-201's and DARTS's cells): the output is the normalised
        // input, held once and shared with the cache.
        return Ok((normalised, cache));
    }
    let xhat = normalised.data();
    let scale = |i: usize, out: &mut [MaybeUninit<f32>]| {
        let (g, b) = (g[i % c], b[i % c]);
        for (o, v) in out.iter_mut().zip(&xhat[i * plane..][..plane]) {
            o.write(g * v + b);
        }
    };
    #[allow(unsafe_code)]
    // SAFETY: as above, a whole plane of `xhat` per plane written.
    let values = unsafe { planes_into(x.len(), plane, scale) };
    let y = Tensor::new(x.shape(), values)?;
    Ok((y, cache))
}

/// `(dx, dgamma, dbeta)`.
pub fn batch_norm_train_backward(
    cache: &BatchNormCache,
    gamma: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let [n, c, h, w] = dy.nchw()?;
    let plane = h * w;
    let m = (n * plane) as f32;
    let xhat = cache.normalised.data();
    // Per plane: sum(dy * xhat), sum(dy).
    let [dgamma, dbeta] = per_channel(dy.len(), plane, c, |i| {
        let (g, x) = (
            &dy.data()[i * plane..][..plane],
            &xhat[i * plane..][..plane],
        );
        [reduce::dot(g, x), reduce::sum(g)]
    });
    let g = gamma.data();
    let inv_std = cache.inv_std.data();
    let input_gradient = |i: usize, out: &mut [MaybeUninit<f32>]| {
        let ch = i % c;
        // dx = inv_std / m * (m dxhat - sum(dxhat) - xhat sum(dxhat xhat)), with
        // dxhat = gamma dy, sum(dxhat) = gamma dbeta and sum(dxhat xhat) = gamma dgamma.
        let scale = inv_std[ch] / m * g[ch];
        let (sum_dy, sum_dy_xhat) = (dbeta[ch], dgamma[ch]);
        let (dys, xs) = (
            &dy.data()[i * plane..][..plane],
            &xhat[i * plane..][..plane],
        );
        for ((o, d), x) in out.iter_mut().zip(dys).zip(xs) {
            o.write(scale * (m * d - sum_dy - x * sum_dy_xhat));
        }
    };
    #[allow(unsafe_code)]
    // SAFETY: whole planes of `dy` and `xhat` per plane written.
    let values = unsafe { planes_into(dy.len(), plane, input_gradient) };
    let dx = Tensor::new(dy.shape(), values)?;
    Ok((dx, Tensor::new(&[c], dgamma)?, Tensor::new(&[c], dbeta)?))
}

/// Inference mode: `gamma * (x - mean) / sqrt(var + eps) + beta` with fixed per-channel
/// statistics; returns the output, the normalised input and `1 / sqrt(var + eps)` (what
/// the backward needs).
pub fn batch_norm_inference(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let [_, c, h, w] = x.nchw()?;
    let (mean, var) = (mean.data(), var.data());
    if mean.len() != c || var.len() != c || gamma.len() != c || beta.len() != c {
        return Err(Error::Shape(format!(
            "batch norm parameters for {}/{}/{}/{} channels, input has {c}",
            mean.len(),
            var.len(),
            gamma.len(),
            beta.len()
        )));
    }
    let plane = h * w;
    let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let mut normalised = Tensor::zeros(x.shape());
    let mut y = Tensor::zeros(x.shape());
    for (i, (&v, (n, out))) in x
        .data()
        .iter()
        .zip(normalised.data_mut().iter_mut().zip(y.data_mut()))
        .enumerate()
    {
        let ch = (i / plane) % c;
        *n = (v - mean[ch]) * inv_std[ch];
        *out = gamma.data()[ch] * *n + beta.data()[ch];
    }
    Ok((y, normalised, Tensor::new(&[c], inv_std)?))
}

/// `(dx, dgamma, dbeta)` of [`batch_norm_inference`]: the statistics are constants, so
/// `dx = dy * gamma / sqrt(var + eps)`.
pub fn batch_norm_inference_backward(
    normalised: &Tensor,
    inv_std: &Tensor,
    gamma: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let [_, c, h, w] = dy.nchw()?;
    let inv_std = inv_std.data();
    let plane = h * w;
    let mut dx = Tensor::zeros(dy.shape());
    let mut dgamma = vec![0.0f32; c];
    let mut dbeta = vec![0.0f32; c];
    for (i, ((out, &d), &n)) in dx
        .data_mut()
        .iter_mut()
        .zip(dy.data())
        .zip(normalised.data())
        .enumerate()
    {
        let ch = (i / plane) % c;
        *out = d * gamma.data()[ch] * inv_std[ch];
        dgamma[ch] += d * n;
        dbeta[ch] += d;
    }
    Ok((dx, Tensor::new(&[c], dgamma)?, Tensor::new(&[c], dbeta)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Above the parallel size with many planes per task, with a partial last task, affine
    /// and not: every value is the plain formula's.
    #[test]
    fn the_planes_written_in_parallel_are_the_plain_formulas() {
        let shape = [40, 6, 13, 17];
        let x = Tensor::randn(&shape, 2.0, 1);
        let dy = Tensor::randn(&shape, 1.0, 2);
        let plane = 13 * 17;
        for (gamma, beta) in [
            (
                Tensor::new(&[6], vec![1.0; 6]).unwrap(),
                Tensor::zeros(&[6]),
            ),
            (Tensor::randn(&[6], 1.0, 3), Tensor::randn(&[6], 1.0, 4)),
        ] {
            let affine = gamma.data() != [1.0; 6] || beta.data() != [0.0; 6];
            let (y, cache) = batch_norm_train(&x, &gamma, &beta, 1e-5).unwrap();
            let (mean, inv_std) = (cache.mean.data(), cache.inv_std.data());
            for (i, (&v, &out)) in x.data().iter().zip(y.data()).enumerate() {
                let ch = (i / plane) % 6;
                let xn = (v - mean[ch]) * inv_std[ch];
                assert_eq!(cache.normalised.data()[i].to_bits(), xn.to_bits());
                let want = if affine {
                    gamma.data()[ch] * xn + beta.data()[ch]
                } else {
                    xn
                };
                assert_eq!(out.to_bits(), want.to_bits(), "y[{i}]");
            }
            let (dx, dgamma, dbeta) = batch_norm_train_backward(&cache, &gamma, &dy).unwrap();
            let m = (40 * plane) as f32;
            for (i, &d) in dx.data().iter().enumerate() {
                let ch = (i / plane) % 6;
                let scale = inv_std[ch] / m * gamma.data()[ch];
                let xn = cache.normalised.data()[i];
                let want = scale * (m * dy.data()[i] - dbeta.data()[ch] - xn * dgamma.data()[ch]);
                assert_eq!(d.to_bits(), want.to_bits(), "dx[{i}]");
            }
        }
    }
}
