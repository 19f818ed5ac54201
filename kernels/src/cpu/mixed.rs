//! The mixed operation of differentiable NAS: a weighted sum of K candidate outputs of one
//! shape (DARTS), and its sparse form, where only the sampled candidates were computed and
//! only they are summed (GDAS, AdvantageNAS).

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `sum_k weights[k] * candidates[k]`; candidates given as `None` were not computed and
/// must carry weight 0 (the sparse form).
pub fn mixed_op(candidates: &[Option<&Tensor>], weights: &[f32]) -> Result<Tensor> {
    let shape = checked_shape(candidates, weights)?;
    let mut out = Tensor::zeros(&shape);
    for (candidate, &weight) in candidates.iter().zip(weights) {
        if let Some(t) = candidate {
            out.data_mut()
                .iter_mut()
                .zip(t.data())
                .for_each(|(o, v)| *o += weight * v);
        }
    }
    Ok(out)
}

/// The common shape of the computed candidates, after checking one weight per candidate,
/// equal shapes, and weight 0 for every skipped candidate.
pub(crate) fn checked_shape(candidates: &[Option<&Tensor>], weights: &[f32]) -> Result<Vec<usize>> {
    if candidates.len() != weights.len() || candidates.is_empty() {
        return Err(Error::Shape(format!(
            "mixed op: {} candidates, {} weights",
            candidates.len(),
            weights.len()
        )));
    }
    let shape = candidates
        .iter()
        .flatten()
        .next()
        .ok_or_else(|| Error::Shape("mixed op: no candidate computed".into()))?
        .shape()
        .to_vec();
    for (candidate, &weight) in candidates.iter().zip(weights) {
        match candidate {
            Some(t) if t.shape() != shape.as_slice() => {
                return Err(Error::Shape(format!(
                    "mixed op: candidate {:?} vs {shape:?}",
                    t.shape()
                )));
            }
            None if weight != 0.0 => {
                return Err(Error::Shape(
                    "mixed op: a skipped candidate has non-zero weight".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(shape)
}

/// Gradients of [`mixed_op`]: `dweight[k] = <dy, candidate k>` (0 for skipped ones) and
/// `dcandidate[k] = weights[k] * dy`.
pub fn mixed_op_backward(
    candidates: &[Option<&Tensor>],
    weights: &[f32],
    dy: &Tensor,
) -> Result<(Vec<f32>, Vec<Option<Tensor>>)> {
    let mut dweights = Vec::with_capacity(weights.len());
    let mut dcandidates = Vec::with_capacity(weights.len());
    for (candidate, &weight) in candidates.iter().zip(weights) {
        match candidate {
            Some(t) => {
                if t.shape() != dy.shape() {
                    return Err(Error::Shape(format!(
                        "mixed op backward: candidate {:?} vs dy {:?}",
                        t.shape(),
                        dy.shape()
                    )));
                }
                dweights.push(super::reduce::dot(t.data(), dy.data()));
                let grad = dy.data().iter().map(|g| weight * g).collect();
                dcandidates.push(Some(Tensor::new(dy.shape(), grad)?));
            }
            None => {
                dweights.push(0.0);
                dcandidates.push(None);
            }
        }
    }
    Ok((dweights, dcandidates))
}
