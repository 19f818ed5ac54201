//! The mixed operation of differentiable NAS: a weighted sum of K candidate outputs of one
//! shape (DARTS), and its sparse form, where only the sampled candidates were computed and
//! only they are summed (GDAS, AdvantageNAS).

use rayon::prelude::*;

use super::{PARALLEL_MIN, elementwise};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Elements per parallel task of the sums and dot products below.
const CHUNK: usize = 1 << 14;

/// `<a, b>` over chunks in parallel, the chunks' dot products added in chunk order (the
/// same bits whichever worker computed which chunk).
fn chunked_dot(a: &[f32], b: &[f32]) -> f32 {
    if a.len() < PARALLEL_MIN {
        return super::reduce::dot(a, b);
    }
    let parts: Vec<f32> = a
        .par_chunks(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .map(|(a, b)| super::reduce::dot(a, b))
        .collect();
    parts.iter().sum()
}

/// `sum_k weights[k] * candidates[k]`; candidates given as `None` were not computed and
/// must carry weight 0 (the sparse form).
pub fn mixed_op(candidates: &[Option<&Tensor>], weights: &[f32]) -> Result<Tensor> {
    let shape = checked_shape(candidates, weights)?;
    let computed: Vec<(&Tensor, f32)> = candidates
        .iter()
        .zip(weights)
        .filter_map(|(c, &w)| c.map(|t| (t, w)))
        .collect();
    if let [(only, weight)] = computed[..]
        && weight == 1.0
    {
        // One sampled candidate at weight 1 (a hard one-hot path): the sum is that
        // candidate's values, shared rather than copied.
        return Ok(only.clone());
    }
    let mut out = Tensor::zeros(&shape);
    let add = |start: usize, chunk: &mut [f32]| {
        for &(t, weight) in &computed {
            let values = &t.data()[start..start + chunk.len()];
            chunk
                .iter_mut()
                .zip(values)
                .for_each(|(o, v)| *o += weight * v);
        }
    };
    if out.len() < PARALLEL_MIN {
        add(0, out.data_mut());
    } else {
        out.data_mut()
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(i, chunk)| add(i * CHUNK, chunk));
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
                dweights.push(chunked_dot(t.data(), dy.data()));
                dcandidates.push(Some(if weight == 1.0 {
                    // `1 * dy` is `dy`: shared rather than copied.
                    dy.clone()
                } else {
                    Tensor::new(dy.shape(), elementwise::map(dy.data(), |g| weight * g))?
                }));
            }
            None => {
                dweights.push(0.0);
                dcandidates.push(None);
            }
        }
    }
    Ok((dweights, dcandidates))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Below and above the parallel size, dense and one-hot: the sums and gradients are
    /// those of the plain loops (the dot products within rounding of an f64 sum).
    #[test]
    fn the_parallel_mixed_op_is_the_plain_weighted_sum() {
        for shape in [[2, 3, 5, 5], [4, 8, 32, 32]] {
            let a = Tensor::randn(&shape, 1.0, 1);
            let b = Tensor::randn(&shape, 1.0, 2);
            let dy = Tensor::randn(&shape, 1.0, 3);
            for (candidates, weights) in [
                (vec![Some(&a), None, Some(&b)], vec![0.3, 0.0, 0.7]),
                (vec![None, Some(&b), None], vec![0.0, 1.0, 0.0]),
            ] {
                let out = mixed_op(&candidates, &weights).unwrap();
                for i in 0..out.len() {
                    let mut want = 0.0f32;
                    for (c, w) in candidates.iter().zip(&weights) {
                        if let Some(t) = c {
                            want += w * t.data()[i];
                        }
                    }
                    assert_eq!(out.data()[i].to_bits(), want.to_bits(), "{shape:?} [{i}]");
                }
                let (dw, dc) = mixed_op_backward(&candidates, &weights, &dy).unwrap();
                for (k, c) in candidates.iter().enumerate() {
                    let Some(t) = c else {
                        assert_eq!(dw[k], 0.0);
                        assert!(dc[k].is_none());
                        continue;
                    };
                    let want: f64 = t
                        .data()
                        .iter()
                        .zip(dy.data())
                        .map(|(x, g)| f64::from(*x) * f64::from(*g))
                        .sum();
                    assert!((f64::from(dw[k]) - want).abs() < 1e-3 * want.abs().max(1.0));
                    let grad = dc[k].as_ref().unwrap();
                    for (g, d) in grad.data().iter().zip(dy.data()) {
                        assert_eq!(g.to_bits(), (weights[k] * d).to_bits());
                    }
                }
            }
        }
    }
}
