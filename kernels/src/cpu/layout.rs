//! Ops that move values without arithmetic: concatenation along channels (DARTS cells),
//! slicing along an axis (Once-for-All elastic width) and centre-cropping of kernels
//! (Once-for-All elastic kernel size), each with its backward (a concatenation's backward
//! is one slice per part: [`crate::Backend::concat_channels_backward`]). The shape checks
//! are shared with the WGSL versions.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `(outer, size, inner)`: the products of the axes before `axis`, its length, and the
/// product of the axes after it.
pub(crate) fn around_axis(shape: &[usize], axis: usize) -> Result<(usize, usize, usize)> {
    if axis >= shape.len() {
        return Err(Error::Shape(format!(
            "axis {axis} of a tensor of shape {shape:?}"
        )));
    }
    Ok((
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    ))
}

/// The shape of a concatenation of `[N, C_i, ...]` parts along axis 1 (every other axis
/// equal).
pub(crate) fn concat_shape(parts: &[&Tensor]) -> Result<Vec<usize>> {
    let first = parts
        .first()
        .ok_or_else(|| Error::Shape("concat: no inputs".into()))?;
    if first.shape().len() < 2 {
        return Err(Error::Shape(format!(
            "concat needs rank >= 2, got {:?}",
            first.shape()
        )));
    }
    let mut shape = first.shape().to_vec();
    shape[1] = 0;
    for part in parts {
        let s = part.shape();
        if s.len() != shape.len() || s[0] != shape[0] || s[2..] != shape[2..] {
            return Err(Error::Shape(format!(
                "concat: {s:?} beside {:?}",
                first.shape()
            )));
        }
        shape[1] += s[1];
    }
    Ok(shape)
}

/// Concatenation of `[N, C_i, ...]` tensors along axis 1 (every other axis equal).
pub fn concat_channels(parts: &[&Tensor]) -> Result<Tensor> {
    let shape = concat_shape(parts)?;
    let (n, _, inner) = around_axis(&shape, 1)?;
    let mut data = Vec::with_capacity(shape.iter().product());
    for b in 0..n {
        for part in parts {
            let block = part.shape()[1] * inner;
            data.extend_from_slice(&part.data()[b * block..(b + 1) * block]);
        }
    }
    Tensor::new(&shape, data)
}

/// The shape of indices `start..start + len` along `axis` of a tensor of `shape`.
pub(crate) fn sliced_shape(
    shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
) -> Result<Vec<usize>> {
    let (_, size, _) = around_axis(shape, axis)?;
    if start + len > size || len == 0 {
        return Err(Error::Shape(format!(
            "slice {start}..{} of axis {axis}, which has {size} (shape {shape:?})",
            start + len
        )));
    }
    let mut out = shape.to_vec();
    out[axis] = len;
    Ok(out)
}

/// Indices `start..start + len` along `axis` (elastic width: the first output channels of
/// a weight on axis 0, the first input channels on axis 1, an activation's on axis 1).
pub fn slice_axis(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let shape = sliced_shape(x.shape(), axis, start, len)?;
    let (outer, size, inner) = around_axis(x.shape(), axis)?;
    let mut data = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        let from = (o * size + start) * inner;
        data.extend_from_slice(&x.data()[from..from + len * inner]);
    }
    Tensor::new(&shape, data)
}

/// Checks that `dy` is the gradient of a slice at `start` of `axis` of a tensor of
/// `shape`; returns `(outer, size, len, inner)`.
pub(crate) fn check_slice_gradient(
    dy: &Tensor,
    shape: &[usize],
    axis: usize,
    start: usize,
) -> Result<(usize, usize, usize, usize)> {
    let (outer, size, inner) = around_axis(shape, axis)?;
    let len = dy.shape().get(axis).copied().unwrap_or(0);
    match sliced_shape(shape, axis, start, len) {
        Ok(expected) if expected == dy.shape() => Ok((outer, size, len, inner)),
        _ => Err(Error::Shape(format!(
            "slice backward: {:?} into {shape:?} at {start} of axis {axis}",
            dy.shape()
        ))),
    }
}

/// The gradient of [`slice_axis`]: `dy` placed at `start..` along `axis` of zeros of
/// `shape`.
pub fn slice_axis_backward(
    dy: &Tensor,
    shape: &[usize],
    axis: usize,
    start: usize,
) -> Result<Tensor> {
    let (outer, size, len, inner) = check_slice_gradient(dy, shape, axis, start)?;
    let mut dx = Tensor::zeros(shape);
    for o in 0..outer {
        let to = (o * size + start) * inner;
        dx.data_mut()[to..to + len * inner]
            .copy_from_slice(&dy.data()[o * len * inner..(o + 1) * len * inner]);
    }
    Ok(dx)
}

/// `(product of the leading axes, K)` of `[..., K, K]`.
fn square_kernels(shape: &[usize]) -> Result<(usize, usize)> {
    match shape {
        [lead @ .., kh, kw] if kh == kw => Ok((lead.iter().product(), *kh)),
        other => Err(Error::Shape(format!(
            "expected square kernels [..., K, K], got {other:?}"
        ))),
    }
}

/// The shape of the centre `size x size` crop of `[..., K, K]` kernels.
pub(crate) fn cropped_shape(shape: &[usize], size: usize) -> Result<Vec<usize>> {
    let (_, k) = square_kernels(shape)?;
    if size > k || size == 0 || !(k - size).is_multiple_of(2) {
        return Err(Error::Shape(format!(
            "centre crop of {size}x{size} from {k}x{k} kernels (sizes must differ by an even number)"
        )));
    }
    let mut out = shape.to_vec();
    let rank = out.len();
    out[rank - 2] = size;
    out[rank - 1] = size;
    Ok(out)
}

/// The centre `size x size` window of `[..., K, K]` kernels (elastic kernel size: a 5x5
/// or 3x3 kernel cut from the shared 7x7 one).
pub fn centre_crop(w: &Tensor, size: usize) -> Result<Tensor> {
    let shape = cropped_shape(w.shape(), size)?;
    let (outer, k) = square_kernels(w.shape())?;
    let off = (k - size) / 2;
    let mut data = Vec::with_capacity(outer * size * size);
    for o in 0..outer {
        for y in 0..size {
            let row = o * k * k + (y + off) * k + off;
            data.extend_from_slice(&w.data()[row..row + size]);
        }
    }
    Tensor::new(&shape, data)
}

/// The gradient of [`centre_crop`]: `dy` placed in the centre of zeros of `shape`.
pub fn centre_crop_backward(dy: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let size = dy.shape().last().copied().unwrap_or(0);
    if cropped_shape(shape, size)? != dy.shape() {
        return Err(Error::Shape(format!(
            "centre crop backward: {:?} into {shape:?}",
            dy.shape()
        )));
    }
    let (outer, k) = square_kernels(shape)?;
    let off = (k - size) / 2;
    let mut dx = Tensor::zeros(shape);
    for o in 0..outer {
        for y in 0..size {
            let row = o * k * k + (y + off) * k + off;
            let from = (o * size + y) * size;
            dx.data_mut()[row..row + size].copy_from_slice(&dy.data()[from..from + size]);
        }
    }
    Ok(dx)
}
