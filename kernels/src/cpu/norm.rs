//! Batch normalisation in training mode (statistics of the batch, per channel over N, H and
//! W) and its backward.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// What the backward pass needs from the forward pass.
#[derive(Debug, Clone)]
pub struct BatchNormCache {
    /// The normalised input.
    pub normalised: Tensor,
    /// `1 / sqrt(var + eps)` per channel.
    pub inv_std: Vec<f32>,
    /// The batch mean per channel.
    pub mean: Vec<f32>,
    /// The batch (biased) variance per channel.
    pub var: Vec<f32>,
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
    let mut mean = vec![0.0f32; c];
    let mut var = vec![0.0f32; c];
    for (i, values) in x.data().chunks(plane).enumerate() {
        mean[i % c] += values.iter().sum::<f32>() / count;
    }
    for (i, values) in x.data().chunks(plane).enumerate() {
        let m = mean[i % c];
        var[i % c] += values.iter().map(|v| (v - m).powi(2)).sum::<f32>() / count;
    }
    let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let mut normalised = Tensor::zeros(x.shape());
    let mut y = Tensor::zeros(x.shape());
    for (i, (&v, (xn, out))) in x
        .data()
        .iter()
        .zip(normalised.data_mut().iter_mut().zip(y.data_mut()))
        .enumerate()
    {
        let ch = (i / plane) % c;
        *xn = (v - mean[ch]) * inv_std[ch];
        *out = gamma.data()[ch] * *xn + beta.data()[ch];
    }
    Ok((
        y,
        BatchNormCache {
            normalised,
            inv_std,
            mean,
            var,
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
    let mut dgamma = vec![0.0f32; c];
    let mut dbeta = vec![0.0f32; c];
    for (i, (&g, &xn)) in dy.data().iter().zip(cache.normalised.data()).enumerate() {
        let ch = (i / plane) % c;
        dgamma[ch] += g * xn;
        dbeta[ch] += g;
    }
    let mut dx = Tensor::zeros(dy.shape());
    for (i, (out, (&g, &xn))) in dx
        .data_mut()
        .iter_mut()
        .zip(dy.data().iter().zip(cache.normalised.data()))
        .enumerate()
    {
        let ch = (i / plane) % c;
        let dxhat = g * gamma.data()[ch];
        // dx = inv_std / m * (m dxhat - sum(dxhat) - xhat sum(dxhat xhat)), with
        // sum(dxhat) = gamma dbeta and sum(dxhat xhat) = gamma dgamma.
        *out = cache.inv_std[ch] / m
            * (m * dxhat - gamma.data()[ch] * dbeta[ch] - xn * gamma.data()[ch] * dgamma[ch]);
    }
    Ok((dx, Tensor::new(&[c], dgamma)?, Tensor::new(&[c], dbeta)?))
}

/// Inference mode: `gamma * (x - mean) / sqrt(var + eps) + beta` with fixed per-channel
/// statistics; returns the output, the normalised input and `1 / sqrt(var + eps)` (what
/// the backward needs).
pub fn batch_norm_inference(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &[f32],
    var: &[f32],
    eps: f32,
) -> Result<(Tensor, Tensor, Vec<f32>)> {
    let [_, c, h, w] = x.nchw()?;
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
    Ok((y, normalised, inv_std))
}

/// `(dx, dgamma, dbeta)` of [`batch_norm_inference`]: the statistics are constants, so
/// `dx = dy * gamma / sqrt(var + eps)`.
pub fn batch_norm_inference_backward(
    normalised: &Tensor,
    inv_std: &[f32],
    gamma: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let [_, c, h, w] = dy.nchw()?;
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
