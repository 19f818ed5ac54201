//! Activations, log-softmax and cross-entropy with integer labels.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ops::Activation;
use crate::tensor::Tensor;

use super::PARALLEL_MIN;

/// `f(x)` element-wise.
pub fn activation(x: &Tensor, f: Activation) -> Tensor {
    let data = if x.len() < PARALLEL_MIN {
        x.data().iter().map(|&v| f.apply(v)).collect()
    } else {
        x.data().par_iter().map(|&v| f.apply(v)).collect()
    };
    Tensor::new(x.shape(), data).expect("same shape")
}

/// `dy * f'(x)` element-wise.
pub fn activation_backward(x: &Tensor, dy: &Tensor, f: Activation) -> Result<Tensor> {
    if x.shape() != dy.shape() {
        return Err(Error::Shape(format!(
            "activation backward: x {:?}, dy {:?}",
            x.shape(),
            dy.shape()
        )));
    }
    let data = if x.len() < PARALLEL_MIN {
        x.data()
            .iter()
            .zip(dy.data())
            .map(|(&v, &g)| g * f.derivative(v))
            .collect()
    } else {
        x.data()
            .par_iter()
            .zip(dy.data())
            .map(|(&v, &g)| g * f.derivative(v))
            .collect()
    };
    Tensor::new(x.shape(), data)
}

/// Row-wise log-softmax of `[N, C]` logits.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let &[_, c] = logits.shape() else {
        return Err(Error::Shape(format!(
            "log_softmax needs [N, C], got {:?}",
            logits.shape()
        )));
    };
    let mut out = logits.clone();
    for row in out.data_mut().chunks_mut(c) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f32>().ln() + max;
        row.iter_mut().for_each(|v| *v -= log_sum);
    }
    Ok(out)
}

/// Mean cross-entropy of `[N, C]` logits against labels in `0..C`.
pub fn cross_entropy(logits: &Tensor, labels: &[usize]) -> Result<f32> {
    let log_probs = log_softmax(logits)?;
    let c = logits.shape()[1];
    check_labels(labels, logits.shape()[0], c)?;
    Ok(-labels
        .iter()
        .enumerate()
        .map(|(i, &l)| log_probs.data()[i * c + l])
        .sum::<f32>()
        / labels.len() as f32)
}

/// Each row's cross-entropy against its label: what a per-image objective (UNAS's
/// per-sample generalisation gap) weighs.
pub fn per_sample_cross_entropy(logits: &Tensor, labels: &[usize]) -> Result<Vec<f32>> {
    let log_probs = log_softmax(logits)?;
    let c = logits.shape()[1];
    check_labels(labels, logits.shape()[0], c)?;
    Ok(labels
        .iter()
        .enumerate()
        .map(|(i, &l)| -log_probs.data()[i * c + l])
        .collect())
}

/// Gradient of the mean cross-entropy: `(softmax - onehot) / N`.
pub fn cross_entropy_backward(logits: &Tensor, labels: &[usize]) -> Result<Tensor> {
    let mut grad = log_softmax(logits)?;
    let (n, c) = (logits.shape()[0], logits.shape()[1]);
    check_labels(labels, n, c)?;
    for (i, row) in grad.data_mut().chunks_mut(c).enumerate() {
        row.iter_mut().for_each(|v| *v = v.exp() / n as f32);
        row[labels[i]] -= 1.0 / n as f32;
    }
    Ok(grad)
}

/// Checks that there is one label per row and each is a class index.
pub(crate) fn check_labels(labels: &[usize], n: usize, c: usize) -> Result<()> {
    if labels.len() != n {
        return Err(Error::Shape(format!(
            "{} labels for {n} rows",
            labels.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|&&l| l >= c) {
        return Err(Error::Shape(format!("label {bad} is outside 0..{c}")));
    }
    Ok(())
}
