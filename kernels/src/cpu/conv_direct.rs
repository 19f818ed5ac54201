//! Direct convolution for the supernets' common case: unit stride, "same" padding, one
//! group, a 3 x 3 or 5 x 5 kernel (any dilation whose padding is smaller than the plane),
//! few channels (up to 32 in and out on AVX-512, 16 on AVX2), at least 8 rows, and rows
//! whose width `w` rounded up to whole blocks of 16 columns is at most `5 w / 4` (the
//! kernels compute whole blocks: at most a fifth of the columns computed are wasted).
//!
//! Why not im2col there: with a cell's few channels (8 to 32) the GEMM has as few rows,
//! and unrolling the columns, packing them again inside the GEMM and copying the result
//! back cost as much as the arithmetic (a profile of the reduced NAS-Bench-201 step: 36% of
//! its time in the GEMM kernel and its packing, 25% in im2col, col2im, copies and fills).
//! Here each image is copied once into a zero-padded plane, and every output row is
//! accumulated in registers (AVX-512: 8 output channels x 32 columns; AVX2: 4 x 16), one
//! broadcast weight per tap and channel. The input gradient is the same kernel on the padded output gradient with
//! the weights transposed and flipped; the weight gradient accumulates, per input channel
//! and kernel row, the products of the output gradient's rows with the shifted input rows.
//! Everything else (strided, grouped, pointwise, other kernels, other processors) stays
//! with im2col and GEMM.

#![allow(unsafe_code)]

use rayon::prelude::*;

use crate::ops::Conv2dSpec;
use crate::tensor::Tensor;

/// Columns one output row block covers: two AVX vectors.
const BLOCK: usize = 16;

/// The shape of a convolution the direct kernels serve, and its padded planes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    n: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    k: usize,
    dilation: usize,
    pad: usize,
    /// Output columns computed per row: `w` rounded up to [`BLOCK`].
    wide: usize,
    /// A padded plane's rows and columns.
    hp: usize,
    wp: usize,
    isa: Isa,
}

impl Plan {
    fn padded_len(&self, channels: usize) -> usize {
        channels * self.hp * self.wp
    }
}

/// The vector instructions the direct kernels run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// 16 lanes, 32 registers.
    Avx512,
    /// 8 lanes with fused multiply-add, 16 registers.
    Avx2,
}

/// The instructions of [`Isa`] this processor has, best first (the standard library
/// caches the checks).
fn available() -> Vec<Isa> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            out.push(Isa::Avx512);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            out.push(Isa::Avx2);
        }
    }
    out
}

/// The plan of `x` convolved with `weight` on `isa` (the best available where `None`)
/// when the direct kernels serve it.
fn plan(x: &Tensor, weight: &Tensor, spec: &Conv2dSpec, isa: Option<Isa>) -> Option<Plan> {
    let [n, cin, h, w] = x.nchw().ok()?;
    let [cout, cin_w, k, k2] = weight.nchw().ok()?;
    let same = spec.stride == 1
        && spec.groups <= 1
        && k == k2
        && (k == 3 || k == 5)
        && cin_w == cin
        && spec.dilation >= 1
        && spec.padding.checked_mul(2).is_some()
        && spec.padding.checked_mul(2) == spec.dilation.checked_mul(k - 1)
        && spec.padding < h
        && spec.padding < w;
    if !same || n == 0 || cin == 0 || cout == 0 {
        return None;
    }
    let isa = match isa {
        Some(isa) => available().contains(&isa).then_some(isa)?,
        None => *available().first()?,
    };
    let wide = w.div_ceil(BLOCK) * BLOCK;
    // Measured (examples/conv_paths.rs, batch 64, forward and backward): faster than im2col
    // up to 32 channels a side on AVX-512 (0.35-0.73 of its time) and 16 on AVX2
    // (0.57-0.89), slower beyond (64 on AVX-512: 1.08; 32 on AVX2: 1.1-1.2), where the GEMM
    // has rows enough to run at speed; and slower where the rows are short against the
    // 16-column blocks (an 8 x 8 plane computes 16 columns for 8: 1.30).
    let max_channels = match isa {
        Isa::Avx512 => 32,
        Isa::Avx2 => 16,
    };
    let few_channels = cin <= max_channels && cout <= max_channels;
    let little_waste = wide * 4 <= w * 5;
    if !few_channels || !little_waste || h < 8 {
        return None;
    }
    let pad = spec.padding;
    Some(Plan {
        n,
        cin,
        cout,
        h,
        w,
        k,
        dilation: spec.dilation,
        pad,
        wide,
        hp: h + 2 * pad,
        wp: wide + 2 * pad,
        isa,
    })
}

/// Copies `channels` planes of `h x w` into `padded` (`[channels, hp, wp]`), at row and
/// column `pad`, zeros around them.
fn pad_planes(src: &[f32], channels: usize, p: &Plan, padded: &mut [f32]) {
    padded.fill(0.0);
    for c in 0..channels {
        for y in 0..p.h {
            let from = &src[(c * p.h + y) * p.w..][..p.w];
            padded[(c * p.hp + y + p.pad) * p.wp + p.pad..][..p.w].copy_from_slice(from);
        }
    }
}

/// `weight [cout, cin, k, k]` as `[cin, k, k, cout]`, the order the forward kernel reads
/// (the 4 output channels of a block side by side per tap).
fn forward_weights(weight: &[f32], p: &Plan) -> Vec<f32> {
    let kk = p.k * p.k;
    let mut t = vec![0.0; weight.len()];
    for o in 0..p.cout {
        for c in 0..p.cin {
            for tap in 0..kk {
                t[(c * kk + tap) * p.cout + o] = weight[(o * p.cin + c) * kk + tap];
            }
        }
    }
    t
}

/// The input gradient's weights: channels exchanged and taps flipped, `[cout, k, k, cin]`
/// (`dx = conv(dy, w')` for a unit-stride convolution with symmetric padding).
fn backward_weights(weight: &[f32], p: &Plan) -> Vec<f32> {
    let kk = p.k * p.k;
    let mut t = vec![0.0; weight.len()];
    for o in 0..p.cout {
        for c in 0..p.cin {
            for tap in 0..kk {
                t[(o * kk + (kk - 1 - tap)) * p.cin + c] = weight[(o * p.cin + c) * kk + tap];
            }
        }
    }
    t
}

/// Images per parallel task: enough work per task for the pool's overhead, enough tasks
/// for the workers to share.
fn images_per_task(n: usize) -> usize {
    (n / 16).max(1)
}

/// `y = conv2d(x, weight) (+ bias)` by the direct kernels, or `None` where they do not
/// serve this convolution (the caller falls back to im2col) or the bias does not have one
/// value per output channel.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    spec: &Conv2dSpec,
) -> Option<Tensor> {
    conv2d_on(None, x, weight, bias, spec)
}

/// [`conv2d`] on the given instructions (`None`: the best this processor has).
fn conv2d_on(
    isa: Option<Isa>,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    spec: &Conv2dSpec,
) -> Option<Tensor> {
    let p = plan(x, weight, spec, isa)?;
    if bias.is_some_and(|b| b.len() != p.cout) {
        // The caller's check names the mismatch.
        return None;
    }
    let wt = forward_weights(weight.data(), &p);
    let zeros = vec![0.0; p.cout];
    let bias = bias.map_or(&zeros[..], |b| b.data());
    let mut out = Tensor::zeros(&[p.n, p.cout, p.h, p.w]);
    let image_in = p.cin * p.h * p.w;
    let image_out = p.cout * p.h * p.w;
    let per = images_per_task(p.n);
    out.data_mut()
        .par_chunks_mut(per * image_out)
        .enumerate()
        .for_each(|(chunk, y)| {
            let mut padded = vec![0.0; p.padded_len(p.cin)];
            for (b, y_b) in y.chunks_exact_mut(image_out).enumerate() {
                let image = &x.data()[(chunk * per + b) * image_in..][..image_in];
                pad_planes(image, p.cin, &p, &mut padded);
                convolve(&padded, p.cin, p.cout, &wt, bias, &p, y_b);
            }
        });
    Some(out)
}

/// Gradients of a convolution by the direct kernels, `(dx, dweight, dbias)`, or `None`
/// where they do not serve it (a `dy` of another shape than the output's included).
pub fn conv2d_backward(
    x: &Tensor,
    weight: &Tensor,
    dy: &Tensor,
    spec: &Conv2dSpec,
) -> Option<(Tensor, Tensor, Tensor)> {
    conv2d_backward_on(None, x, weight, dy, spec)
}

/// [`conv2d_backward`] on the given instructions (`None`: the best this processor has).
fn conv2d_backward_on(
    isa: Option<Isa>,
    x: &Tensor,
    weight: &Tensor,
    dy: &Tensor,
    spec: &Conv2dSpec,
) -> Option<(Tensor, Tensor, Tensor)> {
    let p = plan(x, weight, spec, isa)?;
    if dy.shape() != [p.n, p.cout, p.h, p.w] {
        return None;
    }
    let wb = backward_weights(weight.data(), &p);
    let no_bias = vec![0.0; p.cin];
    let plane = p.h * p.w;
    let image_in = p.cin * plane;
    let image_out = p.cout * plane;
    let per = images_per_task(p.n);
    let mut dx = Tensor::zeros(x.shape());
    // Each task's weight and bias gradients, added in task order afterwards: the sums do
    // not depend on how the workers shared the tasks (runs are reproducible).
    let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
        .data_mut()
        .par_chunks_mut(per * image_in)
        .enumerate()
        .map(|(chunk, dx_chunk)| {
            let mut padded_x = vec![0.0; p.padded_len(p.cin)];
            let mut padded_dy = vec![0.0; p.padded_len(p.cout)];
            let mut dw = vec![0.0; weight.len()];
            let mut db = vec![0.0; p.cout];
            for (b, dx_b) in dx_chunk.chunks_exact_mut(image_in).enumerate() {
                let i = chunk * per + b;
                let dy_b = &dy.data()[i * image_out..][..image_out];
                for (o, sum) in db.iter_mut().enumerate() {
                    *sum += super::reduce::sum(&dy_b[o * plane..][..plane]);
                }
                pad_planes(
                    &x.data()[i * image_in..][..image_in],
                    p.cin,
                    &p,
                    &mut padded_x,
                );
                pad_planes(dy_b, p.cout, &p, &mut padded_dy);
                convolve(&padded_dy, p.cout, p.cin, &wb, &no_bias, &p, dx_b);
                weight_gradient(&padded_dy, &padded_x, &p, &mut dw);
            }
            (dw, db)
        })
        .collect();
    let mut dw = vec![0.0f32; weight.len()];
    let mut db = vec![0.0f32; p.cout];
    for (w_part, b_part) in partial {
        dw.iter_mut().zip(w_part).for_each(|(s, v)| *s += v);
        db.iter_mut().zip(b_part).for_each(|(s, v)| *s += v);
    }
    Some((
        dx,
        Tensor::new(weight.shape(), dw).ok()?,
        Tensor::new(&[p.cout], db).ok()?,
    ))
}

/// One image: `out [outs, h, w] = bias + conv(padded [ins, hp, wp], wt [ins, k, k, outs])`.
fn convolve(
    padded: &[f32],
    ins: usize,
    outs: usize,
    wt: &[f32],
    bias: &[f32],
    p: &Plan,
    out: &mut [f32],
) {
    assert!(
        padded.len() >= p.padded_len(ins)
            && wt.len() >= ins * p.k * p.k * outs
            && bias.len() >= outs
            && out.len() >= outs * p.h * p.w,
        "direct convolution operands too short"
    );
    let mut o = 0;
    while o < outs {
        let left = outs - o;
        // SAFETY: the assertion bounds every read and write (see the kernels' contracts),
        // and `plan` chose `p.isa` among the instructions this processor has.
        let block = unsafe {
            match p.isa {
                Isa::Avx512 => {
                    let two = p.wide.is_multiple_of(2 * BLOCK);
                    let args = (padded, ins, outs, wt, bias, p, o);
                    match (left, two) {
                        (8.., true) => avx512::convolve_block::<8, 2>(args, out),
                        (8.., false) => avx512::convolve_block::<8, 1>(args, out),
                        (4.., true) => avx512::convolve_block::<4, 2>(args, out),
                        (4.., false) => avx512::convolve_block::<4, 1>(args, out),
                        (2.., true) => avx512::convolve_block::<2, 2>(args, out),
                        (2.., false) => avx512::convolve_block::<2, 1>(args, out),
                        (_, true) => avx512::convolve_block::<1, 2>(args, out),
                        (_, false) => avx512::convolve_block::<1, 1>(args, out),
                    }
                }
                Isa::Avx2 => match left {
                    4.. => avx::convolve_block::<4>(padded, ins, outs, wt, bias, p, o, out),
                    3 => avx::convolve_block::<3>(padded, ins, outs, wt, bias, p, o, out),
                    2 => avx::convolve_block::<2>(padded, ins, outs, wt, bias, p, o, out),
                    _ => avx::convolve_block::<1>(padded, ins, outs, wt, bias, p, o, out),
                },
            }
        };
        o += block;
    }
}

/// One image's weight gradient added into `dw [cout, cin, k, k]`.
fn weight_gradient(padded_dy: &[f32], padded_x: &[f32], p: &Plan, dw: &mut [f32]) {
    assert!(
        padded_dy.len() >= p.padded_len(p.cout)
            && padded_x.len() >= p.padded_len(p.cin)
            && dw.len() >= p.cout * p.cin * p.k * p.k,
        "direct convolution operands too short"
    );
    let mut o = 0;
    while o < p.cout {
        let left = p.cout - o;
        let (x, g) = (padded_x, padded_dy);
        // SAFETY: as in `convolve`.
        let block = unsafe {
            match (p.isa, p.k, left) {
                (Isa::Avx512, 3, 8..) => avx512::weight_block::<8, 3>(g, x, p, o, dw),
                (Isa::Avx512, 3, 4..) => avx512::weight_block::<4, 3>(g, x, p, o, dw),
                (Isa::Avx512, 3, 2..) => avx512::weight_block::<2, 3>(g, x, p, o, dw),
                (Isa::Avx512, 3, _) => avx512::weight_block::<1, 3>(g, x, p, o, dw),
                (Isa::Avx512, _, 4..) => avx512::weight_block::<4, 5>(g, x, p, o, dw),
                (Isa::Avx512, _, 2..) => avx512::weight_block::<2, 5>(g, x, p, o, dw),
                (Isa::Avx512, _, _) => avx512::weight_block::<1, 5>(g, x, p, o, dw),
                (Isa::Avx2, 3, 4..) => avx::weight_block::<4, 3>(g, x, p, o, dw),
                (Isa::Avx2, 3, 2..) => avx::weight_block::<2, 3>(g, x, p, o, dw),
                (Isa::Avx2, 3, _) => avx::weight_block::<1, 3>(g, x, p, o, dw),
                (Isa::Avx2, _, 2..) => avx::weight_block::<2, 5>(g, x, p, o, dw),
                (Isa::Avx2, _, _) => avx::weight_block::<1, 5>(g, x, p, o, dw),
            }
        };
        o += block;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    use super::{BLOCK, Plan};

    /// Output channels `o0..o0 + OB` of one image. Reads `padded[c][y + ky d][x + kx d]`
    /// for `x < wide + (k - 1) d = wp` and `y < h + (k - 1) d = hp`, `wt[tap * outs + o]`
    /// below `ins k k outs`; writes `out[o][y][x]` for `x < w` only.
    ///
    /// # Safety
    /// The processor has AVX2 and FMA, and the slices hold what the plan says.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn convolve_block<const OB: usize>(
        padded: &[f32],
        ins: usize,
        outs: usize,
        wt: &[f32],
        bias: &[f32],
        p: &Plan,
        o0: usize,
        out: &mut [f32],
    ) -> usize {
        let (k, d) = (p.k, p.dilation);
        let plane_in = p.hp * p.wp;
        let src = padded.as_ptr();
        let wts = wt.as_ptr();
        let mut spill = [0.0f32; BLOCK];
        for y in 0..p.h {
            for x0 in (0..p.wide).step_by(BLOCK) {
                let mut acc = [[_mm256_setzero_ps(); 2]; OB];
                for (j, a) in acc.iter_mut().enumerate() {
                    let b = _mm256_set1_ps(bias[o0 + j]);
                    *a = [b, b];
                }
                for c in 0..ins {
                    for ky in 0..k {
                        // SAFETY: rows below hp, columns x0 + kx d + 15 < wp.
                        let row = unsafe { src.add(c * plane_in + (y + ky * d) * p.wp + x0) };
                        for kx in 0..k {
                            let (v0, v1) = unsafe {
                                (
                                    _mm256_loadu_ps(row.add(kx * d)),
                                    _mm256_loadu_ps(row.add(kx * d + 8)),
                                )
                            };
                            let taps = unsafe { wts.add(((c * k + ky) * k + kx) * outs + o0) };
                            for (j, a) in acc.iter_mut().enumerate() {
                                let wv = unsafe { _mm256_broadcast_ss(&*taps.add(j)) };
                                a[0] = _mm256_fmadd_ps(wv, v0, a[0]);
                                a[1] = _mm256_fmadd_ps(wv, v1, a[1]);
                            }
                        }
                    }
                }
                let n = (p.w - x0).min(BLOCK);
                for (j, a) in acc.iter().enumerate() {
                    let dst = &mut out[((o0 + j) * p.h + y) * p.w + x0..][..n];
                    if n == BLOCK {
                        unsafe {
                            _mm256_storeu_ps(dst.as_mut_ptr(), a[0]);
                            _mm256_storeu_ps(dst.as_mut_ptr().add(8), a[1]);
                        }
                    } else {
                        unsafe {
                            _mm256_storeu_ps(spill.as_mut_ptr(), a[0]);
                            _mm256_storeu_ps(spill.as_mut_ptr().add(8), a[1]);
                        }
                        dst.copy_from_slice(&spill[..n]);
                    }
                }
            }
        }
        OB
    }

    /// Adds `dw[o][c][ky][kx] += sum_{y, x} dy[o][y][x] x[c][y + ky d - pad][x + kx d - pad]`
    /// for `o` in `o0..o0 + OB`, every `c`, from the padded planes (the output gradient's
    /// columns `w..wide` are zeros there, so whole vectors are summed).
    ///
    /// # Safety
    /// The processor has AVX2 and FMA, and the slices hold what the plan says.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_block<const OB: usize, const K: usize>(
        padded_dy: &[f32],
        padded_x: &[f32],
        p: &Plan,
        o0: usize,
        dw: &mut [f32],
    ) -> usize {
        let d = p.dilation;
        let plane = p.hp * p.wp;
        let (gy, gx) = (padded_dy.as_ptr(), padded_x.as_ptr());
        for c in 0..p.cin {
            for ky in 0..K {
                let mut acc = [[_mm256_setzero_ps(); K]; OB];
                for y in 0..p.h {
                    // SAFETY: dy rows y + pad < hp, columns pad + x + 7 < wp; x rows
                    // y + ky d < hp, columns x + kx d + 7 < wp.
                    let xrow = unsafe { gx.add(c * plane + (y + ky * d) * p.wp) };
                    for x in (0..p.wide).step_by(8) {
                        let mut v = [_mm256_setzero_ps(); K];
                        for (kx, v) in v.iter_mut().enumerate() {
                            *v = unsafe { _mm256_loadu_ps(xrow.add(x + kx * d)) };
                        }
                        for (j, a) in acc.iter_mut().enumerate() {
                            let g = unsafe {
                                _mm256_loadu_ps(
                                    gy.add((o0 + j) * plane + (y + p.pad) * p.wp + p.pad + x),
                                )
                            };
                            for (a, v) in a.iter_mut().zip(&v) {
                                *a = _mm256_fmadd_ps(g, *v, *a);
                            }
                        }
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    for (kx, lane) in a.iter().enumerate() {
                        let mut s = [0.0f32; 8];
                        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), *lane) };
                        let total =
                            ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
                        dw[(((o0 + j) * p.cin + c) * K + ky) * K + kx] += total;
                    }
                }
            }
        }
        OB
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{BLOCK, Plan};

    /// What [`convolve_block`] reads: the padded planes, their count, the outputs' count,
    /// the weights `[ins, k, k, outs]`, the bias, the plan and the first output channel.
    pub(super) type Operands<'a> = (
        &'a [f32],
        usize,
        usize,
        &'a [f32],
        &'a [f32],
        &'a Plan,
        usize,
    );

    /// The lanes of a row's vector that hold output columns: `n` of 16 (none where `n` is 0
    /// or less).
    fn lanes(n: isize) -> __mmask16 {
        match n {
            ..=0 => 0,
            16.. => 0xffff,
            n => (1u16 << n) - 1,
        }
    }

    /// Output channels `o0..o0 + OB` of one image, `XB` vectors of 16 columns per row
    /// block. Reads `padded[c][y + ky d][x + kx d]` for `x < wide + (k - 1) d = wp` and
    /// `y < h + (k - 1) d = hp`, `wt[tap * outs + o]` below `ins k k outs`; writes
    /// `out[o][y][x]` for `x < w` only (masked stores). Returns `OB`.
    ///
    /// # Safety
    /// The processor has AVX-512F, `wide` is a multiple of `16 XB`, and the slices hold
    /// what the plan says.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn convolve_block<const OB: usize, const XB: usize>(
        (padded, ins, outs, wt, bias, p, o0): Operands<'_>,
        out: &mut [f32],
    ) -> usize {
        let (k, d) = (p.k, p.dilation);
        let plane_in = p.hp * p.wp;
        let src = padded.as_ptr();
        let wts = wt.as_ptr();
        let dst = out.as_mut_ptr();
        for y in 0..p.h {
            for x0 in (0..p.wide).step_by(BLOCK * XB) {
                let mut acc = [[_mm512_setzero_ps(); XB]; OB];
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = [_mm512_set1_ps(bias[o0 + j]); XB];
                }
                for c in 0..ins {
                    for ky in 0..k {
                        // SAFETY: rows below hp, columns x0 + kx d + 16 XB - 1 < wp.
                        let row = unsafe { src.add(c * plane_in + (y + ky * d) * p.wp + x0) };
                        for kx in 0..k {
                            let mut v = [_mm512_setzero_ps(); XB];
                            for (b, v) in v.iter_mut().enumerate() {
                                *v = unsafe { _mm512_loadu_ps(row.add(kx * d + b * BLOCK)) };
                            }
                            let taps = unsafe { wts.add(((c * k + ky) * k + kx) * outs + o0) };
                            for (j, a) in acc.iter_mut().enumerate() {
                                let wv = _mm512_set1_ps(unsafe { *taps.add(j) });
                                for (a, v) in a.iter_mut().zip(&v) {
                                    *a = _mm512_fmadd_ps(wv, *v, *a);
                                }
                            }
                        }
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    let row = ((o0 + j) * p.h + y) * p.w + x0;
                    for (b, a) in a.iter().enumerate() {
                        let n = p.w as isize - (x0 + b * BLOCK) as isize;
                        let mask = lanes(n);
                        if mask != 0 {
                            // SAFETY: the masked lanes are columns below w of row y.
                            unsafe { _mm512_mask_storeu_ps(dst.add(row + b * BLOCK), mask, *a) };
                        }
                    }
                }
            }
        }
        OB
    }

    /// [`super::avx::weight_block`] on 16 lanes. Returns `OB`.
    ///
    /// # Safety
    /// The processor has AVX-512F, and the slices hold what the plan says.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_block<const OB: usize, const K: usize>(
        padded_dy: &[f32],
        padded_x: &[f32],
        p: &Plan,
        o0: usize,
        dw: &mut [f32],
    ) -> usize {
        let d = p.dilation;
        let plane = p.hp * p.wp;
        let (gy, gx) = (padded_dy.as_ptr(), padded_x.as_ptr());
        for c in 0..p.cin {
            for ky in 0..K {
                let mut acc = [[_mm512_setzero_ps(); K]; OB];
                for y in 0..p.h {
                    // SAFETY: dy rows y + pad < hp, columns pad + x + 15 < wp; x rows
                    // y + ky d < hp, columns x + kx d + 15 < wp.
                    let xrow = unsafe { gx.add(c * plane + (y + ky * d) * p.wp) };
                    for x in (0..p.wide).step_by(BLOCK) {
                        let mut v = [_mm512_setzero_ps(); K];
                        for (kx, v) in v.iter_mut().enumerate() {
                            *v = unsafe { _mm512_loadu_ps(xrow.add(x + kx * d)) };
                        }
                        for (j, a) in acc.iter_mut().enumerate() {
                            let g = unsafe {
                                _mm512_loadu_ps(
                                    gy.add((o0 + j) * plane + (y + p.pad) * p.wp + p.pad + x),
                                )
                            };
                            for (a, v) in a.iter_mut().zip(&v) {
                                *a = _mm512_fmadd_ps(g, *v, *a);
                            }
                        }
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    for (kx, lane) in a.iter().enumerate() {
                        dw[(((o0 + j) * p.cin + c) * K + ky) * K + kx] +=
                            _mm512_reduce_add_ps(*lane);
                    }
                }
            }
        }
        OB
    }
}

/// Where the processor is not x86-64, `plan` never admits a convolution: these are never
/// called.
#[cfg(not(target_arch = "x86_64"))]
mod avx {
    use super::Plan;

    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn convolve_block<const OB: usize>(
        _: &[f32],
        _: usize,
        _: usize,
        _: &[f32],
        _: &[f32],
        _: &Plan,
        _: usize,
        _: &mut [f32],
    ) -> usize {
        unreachable!("the direct kernels run on x86-64 only")
    }

    pub(super) unsafe fn weight_block<const OB: usize, const K: usize>(
        _: &[f32],
        _: &[f32],
        _: &Plan,
        _: usize,
        _: &mut [f32],
    ) -> usize {
        unreachable!("the direct kernels run on x86-64 only")
    }
}

/// As [`avx`]: never called off x86-64.
#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    use super::Plan;

    pub(super) type Operands<'a> = (
        &'a [f32],
        usize,
        usize,
        &'a [f32],
        &'a [f32],
        &'a Plan,
        usize,
    );

    pub(super) unsafe fn convolve_block<const OB: usize, const XB: usize>(
        _: Operands<'_>,
        _: &mut [f32],
    ) -> usize {
        unreachable!("the direct kernels run on x86-64 only")
    }

    pub(super) unsafe fn weight_block<const OB: usize, const K: usize>(
        _: &[f32],
        _: &[f32],
        _: &Plan,
        _: usize,
        _: &mut [f32],
    ) -> usize {
        unreachable!("the direct kernels run on x86-64 only")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::conv::{conv2d_backward_im2col, conv2d_im2col};

    fn close(what: &str, a: &Tensor, b: &Tensor) {
        assert_eq!(a.shape(), b.shape(), "{what}");
        let scale = b.data().iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.data().iter().zip(b.data()).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * scale,
                "{what}[{i}]: direct {x}, im2col {y}"
            );
        }
    }

    /// The direct kernels agree with im2col on every case they serve: kernels 3 and 5,
    /// dilation 2, widths that are not whole blocks, channel counts that are not whole
    /// blocks of 4 (one input channel: the stem), with and without bias.
    #[test]
    fn the_direct_kernels_agree_with_im2col() {
        let isas = available();
        assert!(
            !isas.is_empty() || std::env::var_os("CI").is_none(),
            "no AVX2 and FMA on this CI machine: the direct kernels would go untested"
        );
        eprintln!("direct kernels checked on {isas:?}");
        let cases = [
            // n, cin, cout, h, w, k, dilation
            (3, 1, 8, 28, 28, 3, 1),
            (2, 8, 8, 28, 28, 3, 1),
            (2, 16, 5, 14, 14, 3, 1),
            (2, 6, 7, 9, 13, 5, 1),
            (2, 3, 6, 12, 30, 3, 2),
            (1, 2, 3, 8, 60, 5, 2),
            (2, 16, 16, 10, 16, 3, 1),
        ];
        for (case, &(n, cin, cout, h, w, k, dilation)) in cases.iter().enumerate() {
            let seed = case as u64;
            let x = Tensor::randn(&[n, cin, h, w], 1.0, seed);
            let weight = Tensor::randn(&[cout, cin, k, k], 0.3, seed + 100);
            let bias = Tensor::randn(&[cout], 0.5, seed + 200);
            let spec = Conv2dSpec {
                stride: 1,
                padding: dilation * (k - 1) / 2,
                dilation,
                groups: 1,
            };
            let with_bias = case % 2 == 0;
            let b = with_bias.then_some(&bias);
            let dy = Tensor::randn(&[n, cout, h, w], 1.0, seed + 300);
            let y_ref = conv2d_im2col(&x, &weight, b, &spec).unwrap();
            let (rx, rw, rb) = conv2d_backward_im2col(&x, &weight, &dy, &spec).unwrap();
            for &isa in &isas {
                let what = format!("case {case} on {isa:?}");
                let y = conv2d_on(Some(isa), &x, &weight, b, &spec).expect("served");
                close(&format!("{what}: y"), &y, &y_ref);
                let (dx, dw, db) =
                    conv2d_backward_on(Some(isa), &x, &weight, &dy, &spec).expect("served");
                close(&format!("{what}: dx"), &dx, &rx);
                close(&format!("{what}: dw"), &dw, &rw);
                close(&format!("{what}: db"), &db, &rb);
            }
        }
    }

    /// Strided, grouped, pointwise, unpadded, 7 x 7-plane, short-row and many-channel
    /// convolutions are left to im2col.
    #[test]
    fn other_convolutions_are_left_to_im2col() {
        let x = Tensor::randn(&[2, 4, 16, 16], 1.0, 1);
        let small = Tensor::randn(&[2, 4, 7, 7], 1.0, 1);
        let w3 = Tensor::randn(&[4, 4, 3, 3], 1.0, 2);
        let same = Conv2dSpec {
            stride: 1,
            padding: 1,
            dilation: 1,
            groups: 1,
        };
        let strided = Conv2dSpec { stride: 2, ..same };
        assert!(conv2d(&x, &w3, None, &strided).is_none());
        assert!(conv2d(&small, &w3, None, &same).is_none());
        let grouped = Conv2dSpec { groups: 4, ..same };
        assert!(conv2d(&x, &Tensor::randn(&[4, 1, 3, 3], 1.0, 3), None, &grouped).is_none());
        let pointwise = Conv2dSpec { padding: 0, ..same };
        assert!(conv2d(&x, &Tensor::randn(&[4, 4, 1, 1], 1.0, 3), None, &pointwise).is_none());
        let valid = Conv2dSpec { padding: 0, ..same };
        assert!(conv2d(&x, &w3, None, &valid).is_none());
        let wide = Tensor::randn(&[2, 64, 16, 16], 1.0, 1);
        let w64 = Tensor::randn(&[8, 64, 3, 3], 1.0, 2);
        assert!(conv2d(&wide, &w64, None, &same).is_none());
        // Rows of 8 or 20 columns would waste half or more of the 16-column blocks.
        let eight = Tensor::randn(&[2, 4, 8, 8], 1.0, 1);
        assert!(conv2d(&eight, &w3, None, &same).is_none());
        let twenty = Tensor::randn(&[2, 4, 12, 20], 1.0, 1);
        assert!(conv2d(&twenty, &w3, None, &same).is_none());
        // A dilation whose padding would overflow, or a padding as wide as the plane.
        let huge = Conv2dSpec {
            dilation: 1 << 63,
            padding: 0,
            ..same
        };
        assert!(conv2d(&x, &w3, None, &huge).is_none());
        let wide_pad = Conv2dSpec {
            dilation: 8,
            padding: 8,
            ..same
        };
        let x8 = Tensor::randn(&[2, 4, 8, 16], 1.0, 1);
        assert!(conv2d(&x8, &w3, None, &wide_pad).is_none());
        // A bias of the wrong length, or an output gradient of the wrong shape, is left to
        // im2col's checks, which name it.
        assert!(conv2d(&x, &w3, Some(&Tensor::zeros(&[3])), &same).is_none());
        let err = crate::cpu::conv2d(&x, &w3, Some(&Tensor::zeros(&[3])), &same).unwrap_err();
        assert!(err.to_string().contains("bias has 3 values"), "{err}");
        let short_dy = Tensor::zeros(&[2, 4, 16, 15]);
        assert!(conv2d_backward(&x, &w3, &short_dy, &same).is_none());
        let err = crate::cpu::conv2d_backward(&x, &w3, &short_dy, &same).unwrap_err();
        assert!(err.to_string().contains("conv2d backward: dy"), "{err}");
        assert!(
            conv2d(&x, &w3, Some(&Tensor::zeros(&[4])), &same).is_some() || available().is_empty()
        );
        // 32 channels: served on AVX-512, left to im2col on AVX2.
        let x32 = Tensor::randn(&[2, 32, 14, 14], 1.0, 1);
        let w32 = Tensor::randn(&[8, 32, 3, 3], 1.0, 2);
        for isa in available() {
            let served = conv2d_on(Some(isa), &x32, &w32, None, &same).is_some();
            assert_eq!(served, isa == Isa::Avx512, "{isa:?}");
        }
    }
}
