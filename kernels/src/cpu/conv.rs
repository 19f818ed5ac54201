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

/// Unrolls one group of one image into `[cin_g * k * k, oh * ow]` columns.
fn im2col(image: &[f32], g: &Geometry, spec: &Conv2dSpec, group: usize, cols: &mut [f32]) {
    let plane = g.oh * g.ow;
    for c in 0..g.cin_g() {
        let channel = &image[(group * g.cin_g() + c) * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row = (c * g.k + ky) * g.k + kx;
                let out = &mut cols[row * plane..][..plane];
                for oy in 0..g.oh {
                    let iy =
                        (oy * spec.stride + ky * spec.dilation) as isize - spec.padding as isize;
                    for ox in 0..g.ow {
                        let ix = (ox * spec.stride + kx * spec.dilation) as isize
                            - spec.padding as isize;
                        out[oy * g.ow + ox] =
                            if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                channel[iy as usize * g.w + ix as usize]
                            } else {
                                0.0
                            };
                    }
                }
            }
        }
    }
}

/// Adds columns back into one group of one image's gradient.
fn col2im(cols: &[f32], g: &Geometry, spec: &Conv2dSpec, group: usize, image: &mut [f32]) {
    let plane = g.oh * g.ow;
    for c in 0..g.cin_g() {
        let channel = &mut image[(group * g.cin_g() + c) * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row = (c * g.k + ky) * g.k + kx;
                let col = &cols[row * plane..][..plane];
                for oy in 0..g.oh {
                    let iy =
                        (oy * spec.stride + ky * spec.dilation) as isize - spec.padding as isize;
                    if iy < 0 || iy as usize >= g.h {
                        continue;
                    }
                    for ox in 0..g.ow {
                        let ix = (ox * spec.stride + kx * spec.dilation) as isize
                            - spec.padding as isize;
                        if ix >= 0 && (ix as usize) < g.w {
                            channel[iy as usize * g.w + ix as usize] += col[oy * g.ow + ox];
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
            let mut cols = vec![0.0; g.rows() * plane];
            for group in 0..g.groups {
                im2col(image, &g, spec, group, &mut cols);
                let w = &weight.data()[group * g.cout_g() * g.rows()..][..g.cout_g() * g.rows()];
                let y_g = &mut y[group * g.cout_g() * plane..][..g.cout_g() * plane];
                sgemm(
                    g.cout_g(),
                    g.rows(),
                    plane,
                    w,
                    false,
                    &cols,
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
            let mut cols = vec![0.0; g.rows() * plane];
            let mut dcols = vec![0.0; g.rows() * plane];
            for group in 0..g.groups {
                im2col(image, &g, spec, group, &mut cols);
                let dy_g = &dy_n[group * g.cout_g() * plane..][..g.cout_g() * plane];
                let w_range = group * g.cout_g() * g.rows()..(group + 1) * g.cout_g() * g.rows();
                sgemm(
                    g.cout_g(),
                    plane,
                    g.rows(),
                    dy_g,
                    false,
                    &cols,
                    true,
                    0.0,
                    &mut dw[w_range.clone()],
                );
                sgemm(
                    g.rows(),
                    g.cout_g(),
                    plane,
                    &weight.data()[w_range],
                    true,
                    dy_g,
                    false,
                    0.0,
                    &mut dcols,
                );
                col2im(&dcols, &g, spec, group, &mut dx);
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
