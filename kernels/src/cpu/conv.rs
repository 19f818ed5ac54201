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

/// Unrolls one group of one image into `[cin_g * k * k, oh * ow]` columns: each tap's row
/// copied a run of in-image values at a time, the padding filled with zeros.
fn im2col(image: &[f32], g: &Geometry, spec: &Conv2dSpec, group: usize, cols: &mut [f32]) {
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
                let out = &mut cols[row * plane..][..plane];
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

/// Adds columns back into one group of one image's gradient (the transpose of [`im2col`]).
fn col2im(cols: &[f32], g: &Geometry, spec: &Conv2dSpec, group: usize, image: &mut [f32]) {
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
                let col = &cols[row * plane..][..plane];
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

/// `y = conv2d(x, weight) (+ bias)`: x `[N, Cin, H, W]`, weight `[Cout, Cin/groups, k, k]`.
pub fn conv2d(
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
    out.data_mut()
        .par_chunks_mut(g.cout * plane)
        .enumerate()
        .for_each(|(n, y)| {
            let image = &x.data()[n * image_in..][..image_in];
            let pointwise = g.is_pointwise(spec);
            let mut cols = if pointwise {
                Vec::new()
            } else {
                vec![0.0; g.rows() * plane]
            };
            for group in 0..g.groups {
                let columns = if pointwise {
                    &image[group * g.rows() * plane..][..g.rows() * plane]
                } else {
                    im2col(image, &g, spec, group, &mut cols);
                    &cols[..]
                };
                let w = &weight.data()[group * g.cout_g() * g.rows()..][..g.cout_g() * g.rows()];
                let y_g = &mut y[group * g.cout_g() * plane..][..g.cout_g() * plane];
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
            if let Some(b) = bias {
                for (c, channel) in y.chunks_mut(plane).enumerate() {
                    channel.iter_mut().for_each(|v| *v += b.data()[c]);
                }
            }
        });
    Ok(out)
}

/// Gradients of a convolution: `(dx, dweight, dbias)` from the output gradient.
pub fn conv2d_backward(
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
    let per_image: Vec<(Vec<f32>, Vec<f32>)> = (0..g.n)
        .into_par_iter()
        .map(|n| {
            let image = &x.data()[n * image_in..][..image_in];
            let dy_n = &dy.data()[n * g.cout * plane..][..g.cout * plane];
            let mut dx = vec![0.0; image_in];
            let mut dw = vec![0.0; weight.len()];
            let pointwise = g.is_pointwise(spec);
            let scratch = if pointwise { 0 } else { g.rows() * plane };
            let (mut cols, mut dcols) = (vec![0.0; scratch], vec![0.0; scratch]);
            for group in 0..g.groups {
                let group_rows = group * g.rows() * plane..(group + 1) * g.rows() * plane;
                let columns = if pointwise {
                    &image[group_rows.clone()]
                } else {
                    im2col(image, &g, spec, group, &mut cols);
                    &cols[..]
                };
                let dy_g = &dy_n[group * g.cout_g() * plane..][..g.cout_g() * plane];
                let w_range = group * g.cout_g() * g.rows()..(group + 1) * g.cout_g() * g.rows();
                sgemm(
                    g.cout_g(),
                    plane,
                    g.rows(),
                    dy_g,
                    false,
                    columns,
                    true,
                    0.0,
                    &mut dw[w_range.clone()],
                );
                // A pointwise convolution's column gradient is its input gradient.
                let dcolumns = if pointwise {
                    &mut dx[group_rows]
                } else {
                    &mut dcols[..]
                };
                sgemm(
                    g.rows(),
                    g.cout_g(),
                    plane,
                    &weight.data()[w_range],
                    true,
                    dy_g,
                    false,
                    0.0,
                    dcolumns,
                );
                if !pointwise {
                    col2im(&dcols, &g, spec, group, &mut dx);
                }
            }
            (dx, dw)
        })
        .collect();
    let mut dx = Vec::with_capacity(g.n * image_in);
    let mut dw = vec![0.0; weight.len()];
    for (dx_n, dw_n) in per_image {
        dx.extend(dx_n);
        dw.iter_mut().zip(dw_n).for_each(|(a, b)| *a += b);
    }
    let mut db = vec![0.0; g.cout];
    for n in 0..g.n {
        for (c, value) in db.iter_mut().enumerate() {
            *value += dy.data()[(n * g.cout + c) * plane..][..plane]
                .iter()
                .sum::<f32>();
        }
    }
    Ok((
        Tensor::new(x.shape(), dx)?,
        Tensor::new(weight.shape(), dw)?,
        Tensor::new(&[g.cout], db)?,
    ))
}
