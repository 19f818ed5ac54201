//! Ops that move values without arithmetic: concatenation along channels (DARTS cells),
//! slicing along an axis (Once-for-All elastic width) and centre-cropping of kernels
//! (Once-for-All elastic kernel size), each with its backward.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The leading size (all axes before the channel axis) and the trailing size (all after)
/// of a tensor of rank at least 2, the channel axis being axis 1.
fn around_channels(t: &Tensor) -> Result<(usize, usize, usize)> {
    match t.shape() {
        [n, c, rest @ ..] => Ok((*n, *c, rest.iter().product())),
        other => Err(Error::Shape(format!(
            "a channel op needs rank >= 2, got {other:?}"
        ))),
    }
}

/// Concatenation of `[N, C_i, ...]` tensors along axis 1 (every other axis equal).
pub fn concat_channels(parts: &[&Tensor]) -> Result<Tensor> {
    let first = parts
        .first()
        .ok_or_else(|| Error::Shape("concat: no inputs".into()))?;
    let (n, _, inner) = around_channels(first)?;
    let mut channels = 0;
    for part in parts {
        let (pn, pc, pinner) = around_channels(part)?;
        if pn != n || pinner != inner || part.shape()[2..] != first.shape()[2..] {
            return Err(Error::Shape(format!(
                "concat: {:?} beside {:?}",
                part.shape(),
                first.shape()
            )));
        }
        channels += pc;
    }
    let mut data = Vec::with_capacity(n * channels * inner);
    for b in 0..n {
        for part in parts {
            let block = part.shape()[1] * inner;
            data.extend_from_slice(&part.data()[b * block..(b + 1) * block]);
        }
    }
    let mut shape = first.shape().to_vec();
    shape[1] = channels;
    Tensor::new(&shape, data)
}

/// Splits the gradient of a concatenation back into parts of `channels[i]` channels each.
pub fn concat_channels_backward(dy: &Tensor, channels: &[usize]) -> Result<Vec<Tensor>> {
    let (n, total, inner) = around_channels(dy)?;
    if channels.iter().sum::<usize>() != total {
        return Err(Error::Shape(format!(
            "concat backward: parts of {channels:?} channels for a gradient of {total}"
        )));
    }
    let mut offset = 0;
    let mut grads = Vec::with_capacity(channels.len());
    for &c in channels {
        let mut data = Vec::with_capacity(n * c * inner);
        for b in 0..n {
            let start = (b * total + offset) * inner;
            data.extend_from_slice(&dy.data()[start..start + c * inner]);
        }
        let mut shape = dy.shape().to_vec();
        shape[1] = c;
        grads.push(Tensor::new(&shape, data)?);
        offset += c;
    }
    Ok(grads)
}

/// `(outer, size, inner)`: the products of the axes before `axis`, its length, and the
/// product of the axes after it.
fn around_axis(shape: &[usize], axis: usize) -> Result<(usize, usize, usize)> {
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

/// Indices `start..start + len` along `axis` (elastic width: the first output channels of
/// a weight on axis 0, the first input channels on axis 1, an activation's on axis 1).
pub fn slice_axis(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let (outer, size, inner) = around_axis(x.shape(), axis)?;
    if start + len > size || len == 0 {
        return Err(Error::Shape(format!(
            "slice {start}..{} of axis {axis}, which has {size} (shape {:?})",
            start + len,
            x.shape()
        )));
    }
    let mut data = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        let from = (o * size + start) * inner;
        data.extend_from_slice(&x.data()[from..from + len * inner]);
    }
    let mut shape = x.shape().to_vec();
    shape[axis] = len;
    Tensor::new(&shape, data)
}

/// The gradient of [`slice_axis`]: `dy` placed at `start..` along `axis` of zeros of
/// `shape`.
pub fn slice_axis_backward(
    dy: &Tensor,
    shape: &[usize],
    axis: usize,
    start: usize,
) -> Result<Tensor> {
    let (outer, size, inner) = around_axis(shape, axis)?;
    let (dy_outer, len, dy_inner) = around_axis(dy.shape(), axis)?;
    if dy_outer != outer || dy_inner != inner || start + len > size {
        return Err(Error::Shape(format!(
            "slice backward: {:?} into {shape:?} at {start} of axis {axis}",
            dy.shape()
        )));
    }
    let mut dx = Tensor::zeros(shape);
    for o in 0..outer {
        let to = (o * size + start) * inner;
        dx.data_mut()[to..to + len * inner]
            .copy_from_slice(&dy.data()[o * len * inner..(o + 1) * len * inner]);
    }
    Ok(dx)
}

/// The shape of the centre `size x size` crop of `[..., K, K]` kernels.
pub(crate) fn cropped_shape(shape: &[usize], size: usize) -> Result<Vec<usize>> {
    let k = match shape {
        [.., kh, kw] if kh == kw => *kh,
        other => {
            return Err(Error::Shape(format!(
                "expected square kernels [..., K, K], got {other:?}"
            )));
        }
    };
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
    let (outer, k) = square_kernels(w)?;
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
    let mut dx = Tensor::zeros(shape);
    let (outer, k) = square_kernels(&dx)?;
    let (dy_outer, size) = square_kernels(dy)?;
    if dy_outer != outer || size > k || !(k - size).is_multiple_of(2) {
        return Err(Error::Shape(format!(
            "centre crop backward: {:?} into {shape:?}",
            dy.shape()
        )));
    }
    let off = (k - size) / 2;
    for o in 0..outer {
        for y in 0..size {
            let row = o * k * k + (y + off) * k + off;
            let from = (o * size + y) * size;
            dx.data_mut()[row..row + size].copy_from_slice(&dy.data()[from..from + size]);
        }
    }
    Ok(dx)
}

/// `(product of the leading axes, K)` of `[..., K, K]`.
fn square_kernels(w: &Tensor) -> Result<(usize, usize)> {
    match w.shape() {
        [lead @ .., kh, kw] if kh == kw => Ok((lead.iter().product(), *kh)),
        other => Err(Error::Shape(format!(
            "expected square kernels [..., K, K], got {other:?}"
        ))),
    }
}
