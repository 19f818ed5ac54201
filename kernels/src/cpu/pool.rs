//! Pooling: average (padding not counted, as NAS-Bench-201 and DARTS pool), max, global
//! average; each with its backward.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub(crate) fn out_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<usize> {
    (input + 2 * padding)
        .checked_sub(kernel)
        .map(|v| v / stride + 1)
        .ok_or_else(|| {
            Error::Shape(format!(
                "pool kernel {kernel} does not fit input {input} with padding {padding}"
            ))
        })
}

/// The input window of output `(oy, ox)`, clipped to the image.
fn window(
    o: usize,
    stride: usize,
    padding: usize,
    kernel: usize,
    size: usize,
) -> std::ops::Range<usize> {
    let start = (o * stride) as isize - padding as isize;
    let end = (start + kernel as isize).min(size as isize);
    (start.max(0) as usize)..(end.max(0) as usize)
}

/// Pools every window of every plane with `reduce` (the window's in-image values and
/// their count).
fn pool_forward(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
    reduce: impl Fn(&mut dyn Iterator<Item = f32>, usize) -> f32,
) -> Result<Tensor> {
    let [n, c, h, w] = x.nchw()?;
    let (oh, ow) = (
        out_size(h, kernel, stride, padding)?,
        out_size(w, kernel, stride, padding)?,
    );
    let mut out = Tensor::zeros(&[n, c, oh, ow]);
    for (plane, y) in x
        .data()
        .chunks(h * w)
        .zip(out.data_mut().chunks_mut(oh * ow))
    {
        for oy in 0..oh {
            for ox in 0..ow {
                let (rows, cols) = (
                    window(oy, stride, padding, kernel, h),
                    window(ox, stride, padding, kernel, w),
                );
                let count = rows.len() * cols.len();
                let mut values = rows.flat_map(|iy| cols.clone().map(move |ix| plane[iy * w + ix]));
                y[oy * ow + ox] = reduce(&mut values, count);
            }
        }
    }
    Ok(out)
}

/// Average pooling, dividing by the number of in-image values in each window.
pub fn avg_pool(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    pool_forward(x, kernel, stride, padding, |values, count| {
        values.sum::<f32>() / count.max(1) as f32
    })
}

/// Gradient of [`avg_pool`].
pub fn avg_pool_backward(
    x: &Tensor,
    dy: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let [_, _, h, w] = x.nchw()?;
    let [_, _, oh, ow] = dy.nchw()?;
    let mut dx = Tensor::zeros(x.shape());
    for (plane, g) in dx
        .data_mut()
        .chunks_mut(h * w)
        .zip(dy.data().chunks(oh * ow))
    {
        for oy in 0..oh {
            for ox in 0..ow {
                let (rows, cols) = (
                    window(oy, stride, padding, kernel, h),
                    window(ox, stride, padding, kernel, w),
                );
                let share = g[oy * ow + ox] / (rows.len() * cols.len()).max(1) as f32;
                for iy in rows {
                    for ix in cols.clone() {
                        plane[iy * w + ix] += share;
                    }
                }
            }
        }
    }
    Ok(dx)
}

/// Max pooling (padding never wins).
pub fn max_pool(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    pool_forward(x, kernel, stride, padding, |values, _| {
        values.fold(f32::NEG_INFINITY, f32::max)
    })
}

/// Gradient of [`max_pool`]: each output's gradient goes to its first maximal input.
pub fn max_pool_backward(
    x: &Tensor,
    dy: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let [_, _, h, w] = x.nchw()?;
    let [_, _, oh, ow] = dy.nchw()?;
    let mut dx = Tensor::zeros(x.shape());
    for ((plane, d), g) in x
        .data()
        .chunks(h * w)
        .zip(dx.data_mut().chunks_mut(h * w))
        .zip(dy.data().chunks(oh * ow))
    {
        for oy in 0..oh {
            for ox in 0..ow {
                let (rows, cols) = (
                    window(oy, stride, padding, kernel, h),
                    window(ox, stride, padding, kernel, w),
                );
                let mut best = (f32::NEG_INFINITY, 0);
                for iy in rows {
                    for ix in cols.clone() {
                        if plane[iy * w + ix] > best.0 {
                            best = (plane[iy * w + ix], iy * w + ix);
                        }
                    }
                }
                d[best.1] += g[oy * ow + ox];
            }
        }
    }
    Ok(dx)
}

/// Global average pooling to `[N, C, 1, 1]`.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let [n, c, h, w] = x.nchw()?;
    let data = x
        .data()
        .chunks(h * w)
        .map(|p| p.iter().sum::<f32>() / (h * w) as f32)
        .collect();
    Tensor::new(&[n, c, 1, 1], data)
}

/// Gradient of [`global_avg_pool`].
pub fn global_avg_pool_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let [_, _, h, w] = x.nchw()?;
    let mut dx = Tensor::zeros(x.shape());
    for (plane, &g) in dx.data_mut().chunks_mut(h * w).zip(dy.data()) {
        plane.iter_mut().for_each(|v| *v = g / (h * w) as f32);
    }
    Ok(dx)
}
