//! Batch normalisation in training mode (statistics of the batch, per channel over N, H and
//! W) and its backward.

use rayon::prelude::*;

use super::{PARALLEL_MIN, reduce};
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

/// One plane's channel, its input planes and its output planes.
type PlaneWork<'a, const I: usize, const O: usize> = (usize, [&'a [f32]; I], [&'a mut [f32]; O]);

/// Runs `f(channel, planes...)` on every plane of `outputs` beside the same plane of
/// `inputs`, in parallel when large.
fn each_plane<const I: usize, const O: usize>(
    inputs: [&[f32]; I],
    outputs: [&mut [f32]; O],
    plane: usize,
    c: usize,
    f: impl Fn(usize, [&[f32]; I], [&mut [f32]; O]) + Sync,
) {
    let len = inputs.first().map_or(0, |x| x.len());
    let count = len / plane.max(1);
    let mut outs: Vec<std::slice::ChunksMut<'_, f32>> =
        outputs.into_iter().map(|o| o.chunks_mut(plane)).collect();
    let mut work: Vec<PlaneWork<'_, I, O>> = Vec::with_capacity(count);
    for i in 0..count {
        let ins = std::array::from_fn(|k| &inputs[k][i * plane..][..plane]);
        let mut taken = outs.iter_mut().map(|o| o.next().expect("same length"));
        let outs: [&mut [f32]; O] = std::array::from_fn(|_| taken.next().expect("O outputs"));
        work.push((i % c, ins, outs));
    }
    if len < PARALLEL_MIN {
        work.into_iter().for_each(|(ch, i, o)| f(ch, i, o));
    } else {
        work.into_par_iter().for_each(|(ch, i, o)| f(ch, i, o));
    }
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
    let mut normalised = Tensor::zeros(x.shape());
    let (g, b) = (gamma.data(), beta.data());
    if g.iter().all(|&v| v == 1.0) && b.iter().all(|&v| v == 0.0) {
        // Non-affine (NAS-Bench-201's and DARTS's cells): the output is the normalised
        // input, held once and shared with the cache.
        each_plane(
            [x.data()],
            [normalised.data_mut()],
            plane,
            c,
            |ch, [xs], [xn]| {
                let (m, s) = (mean[ch], inv_std[ch]);
                for (v, xn) in xs.iter().zip(xn.iter_mut()) {
                    *xn = (v - m) * s;
                }
            },
        );
        return Ok((
            normalised.clone(),
            BatchNormCache {
                normalised,
                inv_std: Tensor::new(&[c], inv_std)?,
                mean: Tensor::new(&[c], mean)?,
                var: Tensor::new(&[c], var)?,
            },
        ));
    }
    let mut y = Tensor::zeros(x.shape());
    each_plane(
        [x.data()],
        [normalised.data_mut(), y.data_mut()],
        plane,
        c,
        |ch, [xs], [xn, out]| {
            let (m, s, g, b) = (mean[ch], inv_std[ch], g[ch], b[ch]);
            for ((v, xn), out) in xs.iter().zip(xn.iter_mut()).zip(out.iter_mut()) {
                *xn = (v - m) * s;
                *out = g * *xn + b;
            }
        },
    );
    Ok((
        y,
        BatchNormCache {
            normalised,
            inv_std: Tensor::new(&[c], inv_std)?,
            mean: Tensor::new(&[c], mean)?,
            var: Tensor::new(&[c], var)?,
        },
    ))
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
    let mut dx = Tensor::zeros(dy.shape());
    let g = gamma.data();
    let inv_std = cache.inv_std.data();
    each_plane(
        [dy.data(), xhat],
        [dx.data_mut()],
        plane,
        c,
        |ch, [dys, xs], [out]| {
            // dx = inv_std / m * (m dxhat - sum(dxhat) - xhat sum(dxhat xhat)), with
            // dxhat = gamma dy, sum(dxhat) = gamma dbeta and sum(dxhat xhat) = gamma dgamma.
            let scale = inv_std[ch] / m * g[ch];
            let (sum_dy, sum_dy_xhat) = (dbeta[ch], dgamma[ch]);
            for ((o, d), x) in out.iter_mut().zip(dys).zip(xs) {
                *o = scale * (m * d - sum_dy - x * sum_dy_xhat);
            }
        },
    );
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
