//! Activations, log-softmax and cross-entropy with integer labels.

use crate::error::{Error, Result};
use crate::ops::Activation;
use crate::tensor::Tensor;

use super::elementwise;

/// Runs `$body` with the constant `$a` (upper case) bound to `$f` in each arm, so that every
/// activation gets its own loop, vectorised, instead of one loop matching per element.
macro_rules! per_activation {
    ($f:expr, |$a:ident| $body:expr) => {
        match $f {
            Activation::Relu => {
                const $a: Activation = Activation::Relu;
                $body
            }
            Activation::Relu6 => {
                const $a: Activation = Activation::Relu6;
                $body
            }
            Activation::HardSwish => {
                const $a: Activation = Activation::HardSwish;
                $body
            }
            Activation::HardSigmoid => {
                const $a: Activation = Activation::HardSigmoid;
                $body
            }
            Activation::Sigmoid => {
                const $a: Activation = Activation::Sigmoid;
                $body
            }
            Activation::Tanh => {
                const $a: Activation = Activation::Tanh;
                $body
            }
        }
    };
}

/// `f(x)` element-wise.
pub fn activation(x: &Tensor, f: Activation) -> Tensor {
    let data = per_activation!(f, |A| elementwise::map(x.data(), |v| A.apply(v)));
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
    let data = per_activation!(f, |A| elementwise::zip_map(x.data(), dy.data(), |v, g| g
        * A.derivative(v)));
    Tensor::new(x.shape(), data)
}

/// [`activation_backward`] given also the forward output `y = f(x)`: tanh's derivative
/// `1 - y^2` and the sigmoid's `y (1 - y)` read off `y` — the same values as from `x`, whose
/// transcendental is not evaluated a second time; other activations from `x`.
pub fn activation_backward_with_output(
    x: &Tensor,
    y: &Tensor,
    dy: &Tensor,
    f: Activation,
) -> Result<Tensor> {
    let from_output: fn(f32) -> f32 = match f {
        Activation::Tanh => |y| 1.0 - y.powi(2),
        Activation::Sigmoid => |s| s * (1.0 - s),
        _ => return activation_backward(x, dy, f),
    };
    if y.shape() != dy.shape() || x.shape() != dy.shape() {
        return Err(Error::Shape(format!(
            "activation backward: x {:?}, y {:?}, dy {:?}",
            x.shape(),
            y.shape(),
            dy.shape()
        )));
    }
    let data = elementwise::zip_map(y.data(), dy.data(), |v, g| g * from_output(v));
    Tensor::new(y.shape(), data)
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

/// How many rows of `[N, C]` logits have their label's logit largest (of equal maxima,
/// the last counts; -0 and +0 are equal).
pub fn correct_count(logits: &Tensor, labels: &[usize]) -> Result<usize> {
    let &[n, c] = logits.shape() else {
        return Err(Error::Shape(format!(
            "accuracy needs [N, C] logits, got {:?}",
            logits.shape()
        )));
    };
    check_labels(labels, n, c)?;
    Ok(logits
        .data()
        .chunks(c.max(1))
        .zip(labels)
        .filter(|(row, label)| {
            // The WGSL kernel's scan: -0 and +0 tie, a NaN never wins.
            let mut at = 0;
            for (j, v) in row.iter().enumerate().skip(1) {
                if *v >= row[at] {
                    at = j;
                }
            }
            at == **label
        })
        .count())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backward_from_the_output_is_the_backward_from_the_input() {
        // Below and above the size that runs in parallel.
        for shape in [[3, 700], [4, 10_000]] {
            let x = Tensor::randn(&shape, 3.0, 11);
            let dy = Tensor::randn(&shape, 1.0, 12);
            for f in Activation::ALL {
                let y = activation(&x, f);
                let from_x = activation_backward(&x, &dy, f).unwrap();
                let from_y = activation_backward_with_output(&x, &y, &dy, f).unwrap();
                let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&from_x), bits(&from_y), "{f:?}");
            }
        }
    }
}
