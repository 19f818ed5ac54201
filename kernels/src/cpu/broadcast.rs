//! Element-wise products with NumPy-style broadcasting (squeeze-and-excite scales a
//! `[N, C, H, W]` map by `[N, C, 1, 1]` gates), and the reduction its backward needs.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The broadcast shape of two shapes, aligned at their last axes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let axis = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (axis(a, i), axis(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(Error::Shape(format!("cannot broadcast {a:?} with {b:?}"))),
        })
        .collect()
}

/// For each index of `out` (row-major), the index into a tensor of `shape` broadcast to it.
fn source_indices(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let mut padded = vec![1; rank - shape.len()];
    padded.extend_from_slice(shape);
    // Strides of the source, 0 along broadcast axes.
    let mut strides = vec![0; rank];
    let mut stride = 1;
    for i in (0..rank).rev() {
        strides[i] = if padded[i] == 1 { 0 } else { stride };
        stride *= padded[i];
    }
    let total: usize = out.iter().product();
    let mut indices = Vec::with_capacity(total);
    let mut coord = vec![0; rank];
    for _ in 0..total {
        indices.push(coord.iter().zip(&strides).map(|(c, s)| c * s).sum());
        for i in (0..rank).rev() {
            coord[i] += 1;
            if coord[i] < out[i] {
                break;
            }
            coord[i] = 0;
        }
    }
    indices
}

/// `a + b` (`multiply` false) or `a * b` with broadcasting.
pub fn binary(a: &Tensor, b: &Tensor, multiply: bool) -> Result<Tensor> {
    if multiply {
        return mul(a, b);
    }
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let (ia, ib) = (
        source_indices(a.shape(), &shape),
        source_indices(b.shape(), &shape),
    );
    let data = ia
        .iter()
        .zip(&ib)
        .map(|(&i, &j)| a.data()[i] + b.data()[j])
        .collect();
    Tensor::new(&shape, data)
}

/// `(da, db)` of [`binary`].
pub fn binary_backward(
    a: &Tensor,
    b: &Tensor,
    dy: &Tensor,
    multiply: bool,
) -> Result<(Tensor, Tensor)> {
    if multiply {
        return mul_backward(a, b, dy);
    }
    // The sum's gradient is the product's with both factors read as ones.
    let ones = |t: &Tensor| Tensor::new(t.shape(), vec![1.0; t.len()]);
    mul_backward(&ones(a)?, &ones(b)?, dy)
}

/// `a * b` with broadcasting.
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let (ia, ib) = (
        source_indices(a.shape(), &shape),
        source_indices(b.shape(), &shape),
    );
    let data = ia
        .iter()
        .zip(&ib)
        .map(|(&i, &j)| a.data()[i] * b.data()[j])
        .collect();
    Tensor::new(&shape, data)
}

/// `(da, db)` of [`mul`]: `dy * b` and `dy * a`, each summed over the axes it was
/// broadcast along.
pub fn mul_backward(a: &Tensor, b: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    if dy.shape() != shape.as_slice() {
        return Err(Error::Shape(format!(
            "mul backward: dy {:?} for a product of shape {shape:?}",
            dy.shape()
        )));
    }
    let (ia, ib) = (
        source_indices(a.shape(), &shape),
        source_indices(b.shape(), &shape),
    );
    let mut da = Tensor::zeros(a.shape());
    let mut db = Tensor::zeros(b.shape());
    for ((&i, &j), g) in ia.iter().zip(&ib).zip(dy.data()) {
        da.data_mut()[i] += g * b.data()[j];
        db.data_mut()[j] += g * a.data()[i];
    }
    Ok((da, db))
}
