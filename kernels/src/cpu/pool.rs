//! Pooling: average (padding not counted, as NAS-Bench-201 and DARTS pool), max, global
//! average; each with its backward.

use rayon::prelude::*;

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
    let end = (start + kernel as isize).min(size as isize).max(0) as usize;
    // A window wholly in the padding (padding wider than the kernel) is empty.
    (start.max(0) as usize).min(end)..end
}

use super::PARALLEL_MIN;

/// Runs `f(input plane, output plane)` over paired planes, in parallel when large.
fn planes(
    input: &[f32],
    in_plane: usize,
    output: &mut [f32],
    out_plane: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) {
    if input.len() < PARALLEL_MIN {
        input
            .chunks(in_plane)
            .zip(output.chunks_mut(out_plane))
            .for_each(|(i, o)| f(i, o));
    } else {
        input
            .par_chunks(in_plane)
            .zip(output.par_chunks_mut(out_plane))
            .for_each(|(i, o)| f(i, o));
    }
}

/// Each output's input window along one axis, clipped to the image.
fn windows(
    outputs: usize,
    stride: usize,
    padding: usize,
    kernel: usize,
    size: usize,
) -> Vec<std::ops::Range<usize>> {
    (0..outputs)
        .map(|o| window(o, stride, padding, kernel, size))
        .collect()
}

/// A pooling's output size and each output's input window along either axis.
struct Windows {
    oh: usize,
    ow: usize,
    rows: Vec<std::ops::Range<usize>>,
    cols: Vec<std::ops::Range<usize>>,
}

impl Windows {
    fn of(h: usize, w: usize, kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        let (oh, ow) = (
            out_size(h, kernel, stride, padding)?,
            out_size(w, kernel, stride, padding)?,
        );
        Ok(Windows {
            oh,
            ow,
            rows: windows(oh, stride, padding, kernel, h),
            cols: windows(ow, stride, padding, kernel, w),
        })
    }
}

/// Pools every window of every plane with `reduce` (the window's in-image values and
/// their count).
fn pool_forward(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
    reduce: impl Fn(&mut dyn Iterator<Item = f32>, usize) -> f32 + Sync,
) -> Result<Tensor> {
    let [n, c, h, w] = x.nchw()?;
    let Windows { oh, ow, rows, cols } = Windows::of(h, w, kernel, stride, padding)?;
    let mut out = Tensor::zeros(&[n, c, oh, ow]);
    planes(x.data(), h * w, out.data_mut(), oh * ow, |plane, y| {
        for (oy, r) in rows.iter().enumerate() {
            for (ox, cs) in cols.iter().enumerate() {
                let count = r.len() * cs.len();
                let mut values = r
                    .clone()
                    .flat_map(|iy| plane[iy * w..][cs.clone()].iter().copied());
                y[oy * ow + ox] = reduce(&mut values, count);
            }
        }
    });
    Ok(out)
}

/// Average pooling, dividing by the number of in-image values in each window.
pub fn avg_pool(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let [n, c, h, w] = x.nchw()?;
    let Windows { oh, ow, rows, cols } = Windows::of(h, w, kernel, stride, padding)?;
    let mut out = Tensor::zeros(&[n, c, oh, ow]);
    let shifts = unit_stride_shifts(stride, padding, kernel, w, ow);
    planes(x.data(), h * w, out.data_mut(), oh * ow, |plane, y| {
        // Per output row: the window's input rows added into one row, then each output's
        // columns of it summed.
        let mut acc = vec![0.0f32; w];
        for (r, y_row) in rows.iter().zip(y.chunks_exact_mut(ow)) {
            acc.fill(0.0);
            for iy in r.clone() {
                acc.iter_mut()
                    .zip(&plane[iy * w..][..w])
                    .for_each(|(a, v)| *a += v);
            }
            if let Some(shifts) = &shifts {
                // Unit stride: the window sums as whole shifted rows, in the same order
                // (left to right) as one window at a time, so the bits are the same.
                y_row.fill(0.0);
                for s in shifts {
                    y_row[s.outputs.clone()]
                        .iter_mut()
                        .zip(&acc[s.inputs.clone()])
                        .for_each(|(v, a)| *v += a);
                }
                for (cs, v) in cols.iter().zip(y_row.iter_mut()) {
                    *v /= (r.len() * cs.len()).max(1) as f32;
                }
                continue;
            }
            for (cs, v) in cols.iter().zip(y_row.iter_mut()) {
                *v = acc[cs.clone()].iter().sum::<f32>() / (r.len() * cs.len()).max(1) as f32;
            }
        }
    });
    Ok(out)
}

/// For a unit-stride pooling along one axis, per kernel tap `j` (in order), the outputs
/// whose window holds input `o - padding + j` and those inputs: output `o` of
/// `outputs` reads input `inputs.start + (o - outputs.start)`. `None` for other strides.
fn unit_stride_shifts(
    stride: usize,
    padding: usize,
    kernel: usize,
    size: usize,
    outputs: usize,
) -> Option<Vec<Shift>> {
    if stride != 1 {
        return None;
    }
    Some(
        (0..kernel)
            .map(|j| {
                let shift = j as isize - padding as isize;
                let lo = (-shift).max(0) as usize;
                let hi = (size as isize - shift).clamp(0, outputs as isize) as usize;
                let lo = lo.min(hi);
                Shift {
                    outputs: lo..hi,
                    inputs: (lo as isize + shift) as usize..(hi as isize + shift) as usize,
                }
            })
            .collect(),
    )
}

/// One kernel tap of a unit-stride pooling row: which outputs read which inputs.
struct Shift {
    outputs: std::ops::Range<usize>,
    inputs: std::ops::Range<usize>,
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
    let Windows { oh, ow, rows, cols } = Windows::of(h, w, kernel, stride, padding)?;
    if dy.nchw()?[2..] != [oh, ow] {
        return Err(Error::Shape(format!(
            "avg pool backward: dy {:?} for outputs {oh}x{ow}",
            dy.shape()
        )));
    }
    let mut dx = Tensor::zeros(x.shape());
    let shifts = unit_stride_shifts(stride, padding, kernel, w, ow);
    planes(dy.data(), oh * ow, dx.data_mut(), h * w, |g, plane| {
        // Per output row: each output's share spread over its columns of one row, then
        // that row added into each of the window's input rows.
        let mut spread = vec![0.0f32; w];
        let mut shares = vec![0.0f32; ow];
        for (r, g_row) in rows.iter().zip(g.chunks_exact(ow)) {
            spread.fill(0.0);
            if let Some(shifts) = &shifts {
                // Unit stride: the shares spread as whole shifted rows; the taps from last
                // to first add each input's shares in the outputs' order, as one output at a
                // time does (the same bits).
                for ((cs, &gv), share) in cols.iter().zip(g_row).zip(shares.iter_mut()) {
                    *share = gv / (r.len() * cs.len()).max(1) as f32;
                }
                for s in shifts.iter().rev() {
                    spread[s.inputs.clone()]
                        .iter_mut()
                        .zip(&shares[s.outputs.clone()])
                        .for_each(|(d, v)| *d += v);
                }
            } else {
                for (cs, &gv) in cols.iter().zip(g_row) {
                    let share = gv / (r.len() * cs.len()).max(1) as f32;
                    spread[cs.clone()].iter_mut().for_each(|d| *d += share);
                }
            }
            for iy in r.clone() {
                plane[iy * w..][..w]
                    .iter_mut()
                    .zip(&spread)
                    .for_each(|(d, s)| *d += s);
            }
        }
    });
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
        .map(|p| super::reduce::sum(p) / (h * w) as f32)
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
