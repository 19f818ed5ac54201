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

/// How the elements of a tensor broadcast to an output shape are found, by output index.
enum Source {
    /// The same shape as the output: index `k`.
    Same,
    /// One value for every output element.
    Scalar,
    /// The output's trailing axes (a bias): index `k % len`.
    Trailing(usize),
    /// Anything else: one source index per output index.
    Indices(Vec<usize>),
}

impl Source {
    fn new(shape: &[usize], out: &[usize]) -> Source {
        let len: usize = shape.iter().product();
        let total: usize = out.iter().product();
        let core = &shape[shape.iter().take_while(|&&d| d == 1).count()..];
        if shape == out {
            Source::Same
        } else if len == 1 {
            Source::Scalar
        } else if out.ends_with(core) && len > 0 && total.is_multiple_of(len) {
            Source::Trailing(len)
        } else {
            Source::Indices(source_indices(shape, out))
        }
    }

    #[inline]
    fn at(&self, k: usize) -> usize {
        match self {
            Source::Same => k,
            Source::Scalar => 0,
            Source::Trailing(len) => k % len,
            Source::Indices(indices) => indices[k],
        }
    }
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

/// `f(a, b)` element-wise with broadcasting.
fn combine(a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32) -> Result<Tensor> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let (x, y) = (a.data(), b.data());
    let data = if a.shape() == b.shape() {
        x.iter().zip(y).map(|(&u, &v)| f(u, v)).collect()
    } else {
        let (ia, ib) = (
            Source::new(a.shape(), &shape),
            Source::new(b.shape(), &shape),
        );
        let total: usize = shape.iter().product();
        (0..total).map(|k| f(x[ia.at(k)], y[ib.at(k)])).collect()
    };
    Tensor::new(&shape, data)
}

/// `a + b` (`multiply` false) or `a * b` with broadcasting.
pub fn binary(a: &Tensor, b: &Tensor, multiply: bool) -> Result<Tensor> {
    if multiply {
        return mul(a, b);
    }
    combine(a, b, |u, v| u + v)
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
    let shape = broadcast_shape(a.shape(), b.shape())?;
    if dy.shape() != shape.as_slice() {
        return Err(Error::Shape(format!(
            "add backward: dy {:?} for a sum of shape {shape:?}",
            dy.shape()
        )));
    }
    // The sum's gradient reaches each operand whole, summed over its broadcast axes.
    let reduce = |t: &Tensor| -> Tensor {
        if t.shape() == shape.as_slice() {
            return dy.clone();
        }
        let source = Source::new(t.shape(), &shape);
        let mut grad = vec![0.0; t.len()];
        for (k, g) in dy.data().iter().enumerate() {
            grad[source.at(k)] += g;
        }
        Tensor::new(t.shape(), grad).expect("the operand's shape")
    };
    Ok((reduce(a), reduce(b)))
}

/// `a * b` with broadcasting.
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    combine(a, b, |u, v| u * v)
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
    let (x, y, g) = (a.data(), b.data(), dy.data());
    if a.shape() == b.shape() {
        let da = g.iter().zip(y).map(|(g, v)| g * v).collect();
        let db = g.iter().zip(x).map(|(g, u)| g * u).collect();
        return Ok((Tensor::new(a.shape(), da)?, Tensor::new(b.shape(), db)?));
    }
    let (ia, ib) = (
        Source::new(a.shape(), &shape),
        Source::new(b.shape(), &shape),
    );
    let mut da = vec![0.0; a.len()];
    let mut db = vec![0.0; b.len()];
    for (k, g) in g.iter().enumerate() {
        let (i, j) = (ia.at(k), ib.at(k));
        da[i] += g * y[j];
        db[j] += g * x[i];
    }
    Ok((Tensor::new(a.shape(), da)?, Tensor::new(b.shape(), db)?))
}
