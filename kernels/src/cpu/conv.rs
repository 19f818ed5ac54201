//! Convolution by im2col and GEMM, per image and group, with its backward.

use rayon::prelude::*;

use super::gemm::sgemm;
use crate::error::{Error, Result};
use crate::ops::Conv2dSpec;
use crate::tensor::Tensor;

struct Geometry {
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    oh: usize,
    ow: usize,
    groups: usize,
}

impl Geometry {
    fn of(x: &Tensor, weight: &Tensor, spec: &Conv2dSpec) -> Result<Self> {
        let [n, cin, h, w] = x.nchw()?;
        let [cout, cin_g, k, k2] = weight.nchw()?;
        let groups = spec.groups.max(1);
        if k != k2
            || cin % groups != 0
            || cout % groups != 0
            || cin_g != cin / groups
            || spec.stride == 0
            || spec.dilation == 0
        {
            return Err(Error::Shape(format!(
                "conv2d: input {:?}, weight {:?}, {spec:?}: weight must be [cout, cin / groups, k, k] with channels divisible by groups",
                x.shape(),
                weight.shape()
            )));
        }
        let (Some(oh), Some(ow)) = (spec.output_size(h, k), spec.output_size(w, k)) else {
            return Err(Error::Shape(format!(
                "conv2d: kernel {k} does not fit input {h}x{w} with {spec:?}"
            )));
        };
        Ok(Geometry {
            n,
            cin,
            h,
            w,
            cout,
            k,
            oh,
            ow,
            groups,
        })
    }

    fn cin_g(&self) -> usize {
        self.cin / self.groups
    }

    fn cout_g(&self) -> usize {
        self.cout / self.groups
    }

    fn rows(&self) -> usize {
        self.cin_g() * self.k * self.k
    }
}

/// `[n, cin, h, w, cout, k, oh, ow]` of a valid convolution (shared with the GPU backend).
pub fn geometry_of(x: &Tensor, weight: &Tensor, spec: &Conv2dSpec) -> Result<[usize; 8]> {
    let g = Geometry::of(x, weight, spec)?;
    Ok([g.n, g.cin, g.h, g.w, g.cout, g.k, g.oh, g.ow])
}

/// Where a kernel tap reads along one axis: for outputs `o` in `lo..hi` the input index
/// `o * stride + offset` is inside `0..size`; outputs outside that range read padding.
fn valid_outputs(offset: isize, stride: usize, size: usize, outputs: usize) -> (usize, usize) {
    let lo = if offset >= 0 {
        0
    } else {
        ((-offset) as usize).div_ceil(stride)
    };
    let last = size as isize - 1 - offset;
    let hi = if last < 0 {
        0
    } else {
        (last as usize / stride + 1).min(outputs)
    };
    (lo.min(outputs), hi.max(lo.min(outputs)))
}

impl Geometry {
    /// A `1 x 1` convolution with unit stride and no padding: an image's group is already
    /// its own column matrix.
    fn is_pointwise(&self, spec: &Conv2dSpec) -> bool {
        self.k == 1 && spec.stride == 1 && spec.padding == 0
    }
}

/// A unit-stride convolution whose output is as large as its input ("same" padding): each
/// tap's column row is the input plane shifted by a constant offset, so it moves as one run.
fn same_size(g: &Geometry, spec: &Conv2dSpec) -> bool {
    spec.stride == 1 && g.ow == g.w && g.oh == g.h
}

/// Where one tap's column row of a [`same_size`] convolution reads inside the image: output
/// rows `top..bottom`, columns `lo..hi` of each; as one run, positions `start..end` of the
/// column row and `from..from + end - start` of the plane (the rows' outer columns in that
/// run read padding and wrap into the neighbouring rows).
struct ShiftedRun {
    top: usize,
    bottom: usize,
    start: usize,
    end: usize,
    from: usize,
}

fn shifted_run(
    g: &Geometry,
    off_y: isize,
    off_x: isize,
    (lo, hi): (usize, usize),
) -> Option<ShiftedRun> {
    let (top, bottom) = valid_outputs(off_y, 1, g.h, g.oh);
    if bottom <= top || hi <= lo {
        return None;
    }
    let (start, end) = (top * g.ow + lo, (bottom - 1) * g.ow + hi);
    let shift = off_y * g.w as isize + off_x;
    Some(ShiftedRun {
        top,
        bottom,
        start,
        end,
        from: (start as isize + shift) as usize,
    })
}

/// Zeroes the columns outside `lo..hi` of every row of `block` (rows of `ow`).
fn zero_outside(block: &mut [f32], ow: usize, (lo, hi): (usize, usize)) {
    for row in block.chunks_exact_mut(ow) {
        row[..lo].fill(0.0);
        row[hi..].fill(0.0);
    }
}

/// One tap's column row of a [`same_size`] convolution: the plane shifted by
/// `(off_y, off_x)` in one copy, then the positions that read padding set to zero.
fn shifted_copy(
    channel: &[f32],
    out: &mut [f32],
    g: &Geometry,
    off_y: isize,
    off_x: isize,
    columns: (usize, usize),
) {
    let Some(run) = shifted_run(g, off_y, off_x, columns) else {
        out.fill(0.0);
        return;
    };
    let ow = g.ow;
    out[..run.top * ow].fill(0.0);
    out[run.bottom * ow..].fill(0.0);
    out[run.start..run.end].copy_from_slice(&channel[run.from..][..run.end - run.start]);
    zero_outside(&mut out[run.top * ow..run.bottom * ow], ow, columns);
}

/// The transpose of [`shifted_copy`]: the positions that read padding zeroed in `col`,
/// then the row added into the plane shifted back in one run.
fn shifted_add(
    col: &mut [f32],
    channel: &mut [f32],
    g: &Geometry,
    off_y: isize,
    off_x: isize,
    columns: (usize, usize),
) {
    let Some(run) = shifted_run(g, off_y, off_x, columns) else {
        return;
    };
    zero_outside(&mut col[run.top * g.ow..run.bottom * g.ow], g.ow, columns);
    channel[run.from..][..run.end - run.start]
        .iter_mut()
        .zip(&col[run.start..run.end])
        .for_each(|(d, v)| *d += v);
}

/// Unrolls one group of one image into `[cin_g * k * k, oh * ow]` columns, row `r` at
/// `cols[r * ld..]` (`ld >= oh * ow`: several images side by side): each tap's row copied a
/// run of in-image values at a time, the padding filled with zeros.
fn im2col(
    image: &[f32],
    g: &Geometry,
    spec: &Conv2dSpec,
    group: usize,
    cols: &mut [f32],
    ld: usize,
) {
    let plane = g.oh * g.ow;
    let (stride, pad) = (spec.stride, spec.padding as isize);
    for c in 0..g.cin_g() {
        let channel = &image[(group * g.cin_g() + c) * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.k {
            let off_y = (ky * spec.dilation) as isize - pad;
            for kx in 0..g.k {
                let off_x = (kx * spec.dilation) as isize - pad;
                let (lo, hi) = valid_outputs(off_x, stride, g.w, g.ow);
                let row = (c * g.k + ky) * g.k + kx;
                let out = &mut cols[row * ld..][..plane];
                if same_size(g, spec) {
                    shifted_copy(channel, out, g, off_y, off_x, (lo, hi));
                    continue;
                }
                for (oy, dst) in out.chunks_exact_mut(g.ow).enumerate() {
                    let iy = (oy * stride) as isize + off_y;
                    if iy < 0 || iy as usize >= g.h {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &channel[iy as usize * g.w..][..g.w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if hi == lo {
                        // Every output of this row reads padding.
                    } else if stride == 1 {
                        let first = (lo as isize + off_x) as usize;
                        dst[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
                    } else {
                        for (ox, d) in dst[lo..hi].iter_mut().enumerate() {
                            *d = src[(((lo + ox) * stride) as isize + off_x) as usize];
                        }
                    }
                }
            }
        }
    }
}

/// Adds columns (row `r` at `cols[r * ld..]`) back into one group of one image's gradient
/// (the transpose of [`im2col`]); the columns that read padding are zeroed on the way.
fn col2im(
    cols: &mut [f32],
    g: &Geometry,
    spec: &Conv2dSpec,
    group: usize,
    image: &mut [f32],
    ld: usize,
) {
    let plane = g.oh * g.ow;
    let (stride, pad) = (spec.stride, spec.padding as isize);
    for c in 0..g.cin_g() {
        let channel = &mut image[(group * g.cin_g() + c) * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.k {
            let off_y = (ky * spec.dilation) as isize - pad;
            for kx in 0..g.k {
                let off_x = (kx * spec.dilation) as isize - pad;
                let (lo, hi) = valid_outputs(off_x, stride, g.w, g.ow);
                let row = (c * g.k + ky) * g.k + kx;
                if same_size(g, spec) {
                    shifted_add(
                        &mut cols[row * ld..][..plane],
                        channel,
                        g,
                        off_y,
                        off_x,
                        (lo, hi),
                    );
                    continue;
                }
                let col = &cols[row * ld..][..plane];
                for (oy, src) in col.chunks_exact(g.ow).enumerate() {
                    let iy = (oy * stride) as isize + off_y;
                    if iy < 0 || iy as usize >= g.h {
                        continue;
                    }
                    let dst = &mut channel[iy as usize * g.w..][..g.w];
                    if hi == lo {
                        continue;
                    }
                    if stride == 1 {
                        let first = (lo as isize + off_x) as usize;
                        dst[first..first + hi - lo]
                            .iter_mut()
                            .zip(&src[lo..hi])
                            .for_each(|(d, v)| *d += v);
                    } else {
                        for (ox, v) in src[lo..hi].iter().enumerate() {
                            dst[(((lo + ox) * stride) as isize + off_x) as usize] += v;
                        }
                    }
                }
            }
        }
    }
}

thread_local! {
    /// Each worker thread's column buffers, kept between calls: im2col writes every
    /// element and the GEMMs overwrite theirs, so they are never cleared.
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 3]> = const {
        std::cell::RefCell::new([Vec::new(), Vec::new(), Vec::new()])
    };
}

/// Runs `f` with this thread's three scratch buffers, of `lens` elements. `f` must not
/// enter rayon (a stolen job on this thread would find the buffers borrowed and panic).
fn with_scratch<R>(lens: [usize; 3], f: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buffers = cell.borrow_mut();
        let [a, b, c] = &mut *buffers;
        for (buffer, len) in [&mut *a, &mut *b, &mut *c].into_iter().zip(lens) {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
        }
        f(&mut a[..lens[0]], &mut b[..lens[1]], &mut c[..lens[2]])
    })
}

/// Columns one GEMM aims for: small planes (the last stages' 7 x 7 maps) are unrolled several
/// images side by side so that each GEMM is wide enough to run at speed.
const GEMM_COLUMNS: usize = 2048;

impl Geometry {
    /// Images unrolled side by side per GEMM: enough for [`GEMM_COLUMNS`], at most an
    /// eighth of the batch (the workers need chunks to share), one for pointwise
    /// convolutions (their images are their own columns).
    fn images_per_gemm(&self, spec: &Conv2dSpec) -> usize {
        if self.is_pointwise(spec) {
            return 1;
        }
        let plane = self.oh * self.ow;
        (GEMM_COLUMNS / plane.max(1)).clamp(1, (self.n / 8).max(1))
    }
}

/// Adds each output channel's bias to whole images' outputs `[images, cout, plane]`.
fn add_bias(y: &mut [f32], bias: &Tensor, plane: usize, cout: usize) {
    for (i, channel) in y.chunks_mut(plane.max(1)).enumerate() {
        let add = bias.data()[i % cout];
        channel.iter_mut().for_each(|v| *v += add);
    }
}

/// `y = conv2d(x, weight) (+ bias)`: x `[N, Cin, H, W]`, weight `[Cout, Cin/groups, k, k]`.
/// Unit-stride "same" convolutions run on the direct kernels where the processor has them
/// ([`super::conv_direct`]), everything else on [`conv2d_im2col`].
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    spec: &Conv2dSpec,
) -> Result<Tensor> {
    // The direct kernels take only operands they can serve (a bad shape or bias falls
    // through to im2col's checks, which name it).
    if let Some(y) = super::conv_direct::conv2d(x, weight, bias, spec) {
        return Ok(y);
    }
    conv2d_im2col(x, weight, bias, spec)
}

/// [`conv2d`] by im2col and GEMM, per image and group: every convolution (the general
/// path, and the reference the direct kernels are checked against).
pub fn conv2d_im2col(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    spec: &Conv2dSpec,
) -> Result<Tensor> {
    let g = Geometry::of(x, weight, spec)?;
    if let Some(b) = bias
        && b.len() != g.cout
    {
        return Err(Error::Shape(format!(
            "conv2d: bias has {} values for {} output channels",
            b.len(),
            g.cout
        )));
    }
    let plane = g.oh * g.ow;
    let mut out = Tensor::zeros(&[g.n, g.cout, g.oh, g.ow]);
    let image_in = g.cin * g.h * g.w;
    if out.is_empty() || image_in == 0 {
        // Nothing to compute (zero channels or an empty plane): the output is zeros (plus
        // the bias).
        if let Some(b) = bias {
            add_bias(out.data_mut(), b, plane, g.cout);
        }
        return Ok(out);
    }
    let per = g.images_per_gemm(spec);
    let pointwise = g.is_pointwise(spec);
    out.data_mut()
        .par_chunks_mut(per * g.cout * plane)
        .enumerate()
        .for_each(|(chunk, y)| {
            let images = y.len() / (g.cout * plane);
            let first = chunk * per;
            let ld = images * plane;
            let (cols_len, out_len) = match (pointwise, images) {
                (true, _) => (0, 0),
                (false, 1) => (g.rows() * ld, 0),
                (false, _) => (g.rows() * ld, g.cout_g() * ld),
            };
            with_scratch([cols_len, out_len, 0], |cols, wide, _| {
                for group in 0..g.groups {
                    let w =
                        &weight.data()[group * g.cout_g() * g.rows()..][..g.cout_g() * g.rows()];
                    if pointwise {
                        for b in 0..images {
                            let image = &x.data()[(first + b) * image_in..][..image_in];
                            let y_g = &mut y[(b * g.cout + group * g.cout_g()) * plane..]
                                [..g.cout_g() * plane];
                            let columns = &image[group * g.rows() * plane..][..g.rows() * plane];
                            sgemm(
                                g.cout_g(),
                                g.rows(),
                                plane,
                                w,
                                false,
                                columns,
                                false,
                                0.0,
                                y_g,
                            );
                        }
                        continue;
                    }
                    for b in 0..images {
                        let image = &x.data()[(first + b) * image_in..][..image_in];
                        im2col(image, &g, spec, group, &mut cols[b * plane..], ld);
                    }
                    if images == 1 {
                        let y_g = &mut y[group * g.cout_g() * plane..][..g.cout_g() * plane];
                        sgemm(g.cout_g(), g.rows(), plane, w, false, cols, false, 0.0, y_g);
                        continue;
                    }
                    sgemm(g.cout_g(), g.rows(), ld, w, false, cols, false, 0.0, wide);
                    // `[cout_g, images * plane]` back to each image's channels.
                    for b in 0..images {
                        for o in 0..g.cout_g() {
                            y[(b * g.cout + group * g.cout_g() + o) * plane..][..plane]
                                .copy_from_slice(&wide[o * ld + b * plane..][..plane]);
                        }
                    }
                }
            });
            if let Some(bias) = bias {
                add_bias(y, bias, plane, g.cout);
            }
        });
    Ok(out)
}

/// Gradients of a convolution: `(dx, dweight, dbias)` from the output gradient, on the
/// direct kernels where [`conv2d`] runs there, else by [`conv2d_backward_im2col`].
pub fn conv2d_backward(
    x: &Tensor,
    weight: &Tensor,
    dy: &Tensor,
    spec: &Conv2dSpec,
) -> Result<(Tensor, Tensor, Tensor)> {
    // As in `conv2d`: bad operands fall through to im2col's checks.
    if let Some(grads) = super::conv_direct::conv2d_backward(x, weight, dy, spec) {
        return Ok(grads);
    }
    conv2d_backward_im2col(x, weight, dy, spec)
}

/// [`conv2d_backward`] by im2col and GEMM: every convolution.
pub fn conv2d_backward_im2col(
    x: &Tensor,
    weight: &Tensor,
    dy: &Tensor,
    spec: &Conv2dSpec,
) -> Result<(Tensor, Tensor, Tensor)> {
    let g = Geometry::of(x, weight, spec)?;
    if dy.shape() != [g.n, g.cout, g.oh, g.ow] {
        return Err(Error::Shape(format!(
            "conv2d backward: dy {:?}, expected {:?}",
            dy.shape(),
            [g.n, g.cout, g.oh, g.ow]
        )));
    }
    let plane = g.oh * g.ow;
    let image_in = g.cin * g.h * g.w;
    let mut dx = Tensor::zeros(x.shape());
    // The bias gradient: each output channel's gradient summed over images and pixels.
    let mut db = vec![0.0; g.cout];
    for n in 0..g.n {
        for (c, value) in db.iter_mut().enumerate() {
            *value += super::reduce::sum(&dy.data()[(n * g.cout + c) * plane..][..plane]);
        }
    }
    if dx.is_empty() || dy.is_empty() {
        // No input values or no outputs: no input or weight gradient to compute.
        return Ok((
            dx,
            Tensor::zeros(weight.shape()),
            Tensor::new(&[g.cout], db)?,
        ));
    }
    let per = g.images_per_gemm(spec);
    let pointwise = g.is_pointwise(spec);
    // Each chunk of images has its weight gradient; they are added in chunk order, so the
    // sum does not depend on how the workers shared the chunks (runs are reproducible).
    let per_chunk: Vec<Vec<f32>> = dx
        .data_mut()
        .par_chunks_mut(per * image_in)
        .enumerate()
        .map(|(chunk, dx_chunk)| {
            let mut dw = vec![0.0f32; weight.len()];
            let images = dx_chunk.len() / image_in;
            let first = chunk * per;
            let ld = images * plane;
            let lens = match (pointwise, images) {
                (true, _) => [0, 0, 0],
                (false, 1) => [g.rows() * ld, g.rows() * ld, 0],
                (false, _) => [g.rows() * ld, g.rows() * ld, g.cout_g() * ld],
            };
            with_scratch(lens, |cols, dcols, wide_dy| {
                for group in 0..g.groups {
                    let w_range =
                        group * g.cout_g() * g.rows()..(group + 1) * g.cout_g() * g.rows();
                    let w = &weight.data()[w_range.clone()];
                    let dy_of = |b: usize| {
                        &dy.data()[((first + b) * g.cout + group * g.cout_g()) * plane..]
                            [..g.cout_g() * plane]
                    };
                    if pointwise {
                        // A pointwise convolution's columns are its image, its column
                        // gradient its input gradient.
                        for b in 0..images {
                            let image = &x.data()[(first + b) * image_in..][..image_in];
                            let rows = group * g.rows() * plane..(group + 1) * g.rows() * plane;
                            let dy_g = dy_of(b);
                            sgemm(
                                g.cout_g(),
                                plane,
                                g.rows(),
                                dy_g,
                                false,
                                &image[rows.clone()],
                                true,
                                1.0,
                                &mut dw[w_range.clone()],
                            );
                            let dx_g = &mut dx_chunk[b * image_in..][rows];
                            sgemm(g.rows(), g.cout_g(), plane, w, true, dy_g, false, 0.0, dx_g);
                        }
                        continue;
                    }
                    for b in 0..images {
                        let image = &x.data()[(first + b) * image_in..][..image_in];
                        im2col(image, &g, spec, group, &mut cols[b * plane..], ld);
                    }
                    let dy_g: &[f32] = if images == 1 {
                        dy_of(0)
                    } else {
                        // Each image's output-gradient channels side by side.
                        for b in 0..images {
                            for (o, row) in dy_of(b).chunks_exact(plane).enumerate() {
                                wide_dy[o * ld + b * plane..][..plane].copy_from_slice(row);
                            }
                        }
                        wide_dy
                    };
                    sgemm(
                        g.cout_g(),
                        ld,
                        g.rows(),
                        dy_g,
                        false,
                        cols,
                        true,
                        1.0,
                        &mut dw[w_range.clone()],
                    );
                    sgemm(g.rows(), g.cout_g(), ld, w, true, dy_g, false, 0.0, dcols);
                    for b in 0..images {
                        let dx_b = &mut dx_chunk[b * image_in..][..image_in];
                        col2im(&mut dcols[b * plane..], &g, spec, group, dx_b, ld);
                    }
                }
            });
            dw
        })
        .collect();
    let mut dw = vec![0.0f32; weight.len()];
    for chunk in per_chunk {
        dw.iter_mut().zip(chunk).for_each(|(x, y)| *x += y);
    }
    Ok((
        dx,
        Tensor::new(weight.shape(), dw)?,
        Tensor::new(&[g.cout], db)?,
    ))
}
