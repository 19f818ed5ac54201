//! Direct convolution for the supernets' common case: unit stride, "same" padding, one
//! group, a 3 x 3 or 5 x 5 kernel (any dilation whose padding is smaller than the plane),
//! few channels (up to 64 in and out on AVX-512, 16 on AVX2), and planes whose flattened
//! rows (below) waste at most [`MAX_WASTE`] of the columns computed.
//!
//! Why not im2col there: with a cell's few channels (8 to 32) the GEMM has as few rows,
//! and unrolling the columns, packing them again inside the GEMM and copying the result
//! back cost as much as the arithmetic (a profile of the reduced NAS-Bench-201 step: 36% of
//! its time in the GEMM kernel and its packing, 25% in im2col, col2im, copies and fills).
//!
//! How: each image is copied once into zero-padded planes of `hp x wp` (`wp = w + 2 pad`),
//! and each plane is then read as one flattened row: output position `q = y wp + x` of a
//! plane reads input `q + ky d wp + kx d` for tap `(ky, kx)`, the same arithmetic for every
//! `q`, so the kernels sweep `0..h wp` in whole vectors (AVX-512: 8 output channels x 32
//! positions in registers; AVX2: 4 x 16), one broadcast weight per tap and channel, and
//! only the columns `x < w` of each row are copied out. The `2 pad` columns per row that
//! are computed and dropped are the price; a 7 x 7 plane computes 64 positions for 49
//! (where vectors per row would compute 112). The input gradient is the same kernel on
//! the padded output gradient with the weights transposed and flipped; the weight gradient
//! accumulates, per input channel and tap, the products of the padded output gradient
//! (zero at every dropped position) with the shifted input. Everything else (strided,
//! grouped, pointwise, other kernels, other processors) stays with im2col and GEMM.

#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use super::elementwise::fill_chunks;
use crate::ops::Conv2dSpec;
use crate::tensor::Tensor;

/// Positions one vector pair covers on AVX2, one vector on AVX-512.
const BLOCK: usize = 16;

/// The largest share of computed positions that are dropped (padding columns and the
/// last vector's tail) for which the direct kernels beat im2col (measured with
/// examples/conv_paths.rs).
const MAX_WASTE: f64 = 0.25;

/// The bytes of output-gradient planes the weight-gradient kernel keeps in the
/// first-level cache while it sweeps the input channels (of its 48 KiB on the processors
/// measured, room left for the input planes).
const GRADIENT_CACHE_BYTES: usize = 32 << 10;

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
    /// A padded plane's columns, `w + 2 pad`.
    wp: usize,
    /// Flattened positions computed per plane: `h wp` rounded up to [`BLOCK`].
    wide: usize,
    /// The distance between two padded planes: `hp wp` and a zero tail that the last
    /// vector's shifted reads reach into (`wide - h wp + 2 pad`).
    plane: usize,
    isa: Isa,
}

impl Plan {
    fn padded_len(&self, channels: usize) -> usize {
        channels * self.plane
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
    // Measured (examples/conv_paths.rs, batch 64, forward and backward, flattened planes):
    // faster than im2col up to 64 channels a side on AVX-512 (0.34-0.95 of its time; 128
    // at 7 x 7: 1.25, where the GEMM has rows enough to run at speed) and 16 on AVX2 (the
    // per-row kernels' measurement: 32 channels 1.1-1.2).
    let max_channels = match isa {
        Isa::Avx512 => 64,
        Isa::Avx2 => 16,
    };
    let pad = spec.padding;
    let wp = w.checked_add(2 * pad)?;
    let hp = h.checked_add(2 * pad)?;
    let wide = h.checked_mul(wp)?.div_ceil(BLOCK).checked_mul(BLOCK)?;
    let plane = hp.checked_mul(wp)?.checked_add(wide - h * wp + 2 * pad)?;
    let few_channels = cin <= max_channels && cout <= max_channels;
    let waste = 1.0 - (h * w) as f64 / wide as f64;
    if !few_channels || waste > MAX_WASTE {
        return None;
    }
    Some(Plan {
        n,
        cin,
        cout,
        h,
        w,
        k,
        dilation: spec.dilation,
        pad,
        wp,
        wide,
        plane,
        isa,
    })
}

/// Copies `channels` planes of `h x w` into `padded` (`channels` planes [`Plan::plane`]
/// apart), at row and column `pad`. Writes only those positions: `padded` comes zeroed
/// from its allocation, and as every image of a convolution writes the same positions,
/// its padding and tails stay zero from one image to the next.
fn pad_planes(src: &[f32], channels: usize, p: &Plan, padded: &mut [f32]) {
    let (image, at) = (p.h * p.w, p.pad * p.wp + p.pad);
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and `copy_rows` writes only
    // values read from `src` through it.
    let padded = unsafe { &mut *(std::ptr::from_mut(padded) as *mut [MaybeUninit<f32>]) };
    for (c, plane) in padded.chunks_exact_mut(p.plane).take(channels).enumerate() {
        copy_rows(
            &src[c * image..][..image],
            p.w,
            &mut plane[at..],
            p.wp,
            p.h,
            p.w,
            p.isa,
        );
    }
}

/// Copies the columns `x < w` of each flattened row of `flat` (`channels` planes of
/// [`Plan::wide`] positions) into `out` (`[channels, h, w]`), every element of which it
/// writes.
fn unflatten(flat: &[f32], channels: usize, p: &Plan, out: &mut [MaybeUninit<f32>]) {
    let image = p.h * p.w;
    for (c, out) in out.chunks_exact_mut(image).take(channels).enumerate() {
        copy_rows(
            &flat[c * p.wide..][..p.wide],
            p.wp,
            out,
            p.w,
            p.h,
            p.w,
            p.isa,
        );
    }
}

/// Copies `rows` rows of `w` values from `src` (rows `src_pitch` apart) to `dst` (rows
/// `dst_pitch` apart), in masked vectors: the planes' rows are short (7 to 32 values), and
/// a call to `memcpy` per row cost more than the convolution's padding is worth (8% of a
/// sampled NAS-Bench-201 step).
fn copy_rows(
    src: &[f32],
    src_pitch: usize,
    dst: &mut [MaybeUninit<f32>],
    dst_pitch: usize,
    rows: usize,
    w: usize,
    isa: Isa,
) {
    if rows == 0 || w == 0 {
        return;
    }
    let end = |pitch: usize| (rows - 1).checked_mul(pitch)?.checked_add(w);
    assert!(
        w <= src_pitch
            && w <= dst_pitch
            && end(src_pitch).is_some_and(|e| e <= src.len())
            && end(dst_pitch).is_some_and(|e| e <= dst.len()),
        "row copy out of bounds"
    );
    // SAFETY: the assertion bounds every row read and written; `isa` is one the plan
    // found on this processor.
    unsafe {
        match isa {
            Isa::Avx512 => avx512::copy_rows(src, src_pitch, dst, dst_pitch, rows, w),
            Isa::Avx2 => avx::copy_rows(src, src_pitch, dst, dst_pitch, rows, w),
        }
    }
}

/// `weight [cout, cin, k, k]` as `[cin, k, k, cout]`, the order the forward kernel reads
/// (the output channels of a block side by side per tap).
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
    let image_in = p.cin * p.h * p.w;
    let image_out = p.cout * p.h * p.w;
    let per = images_per_task(p.n);
    let convolve_images = |chunk: usize, y: &mut [MaybeUninit<f32>]| {
        let mut padded = vec![0.0; p.padded_len(p.cin)];
        let mut flat = vec![0.0; p.cout * p.wide];
        for (b, y_b) in y.chunks_exact_mut(image_out).enumerate() {
            let image = &x.data()[(chunk * per + b) * image_in..][..image_in];
            pad_planes(image, p.cin, &p, &mut padded);
            convolve(&padded, p.cin, p.cout, &wt, bias, &p, &mut flat);
            unflatten(&flat, p.cout, &p, y_b);
        }
    };
    // SAFETY: each chunk is whole images (`per` of them, fewer in the last), and
    // `unflatten` writes every element of each image.
    let (data, _) = unsafe { fill_chunks(p.n * image_out, per * image_out, convolve_images) };
    let out = Tensor::new(&[p.n, p.cout, p.h, p.w], data).ok()?;
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
    // Each task's weight and bias gradients, added in task order afterwards: the sums do
    // not depend on how the workers shared the tasks (runs are reproducible).
    let task = |chunk: usize, dx_chunk: &mut [MaybeUninit<f32>]| {
        let images = dx_chunk.len() / image_in;
        let mut padded_x = vec![0.0; images * p.padded_len(p.cin)];
        let mut padded_dy = vec![0.0; images * p.padded_len(p.cout)];
        let mut flat = vec![0.0; p.cin * p.wide];
        let mut dw = vec![0.0; weight.len()];
        let mut db = vec![0.0; p.cout];
        let (x_pads, dy_pads) = (
            padded_x.chunks_exact_mut(p.padded_len(p.cin)),
            padded_dy.chunks_exact_mut(p.padded_len(p.cout)),
        );
        for (b, ((dx_b, x_pad), dy_pad)) in dx_chunk
            .chunks_exact_mut(image_in)
            .zip(x_pads)
            .zip(dy_pads)
            .enumerate()
        {
            let i = chunk * per + b;
            let dy_b = &dy.data()[i * image_out..][..image_out];
            for (o, sum) in db.iter_mut().enumerate() {
                *sum += super::reduce::sum(&dy_b[o * plane..][..plane]);
            }
            pad_planes(&x.data()[i * image_in..][..image_in], p.cin, &p, x_pad);
            pad_planes(dy_b, p.cout, &p, dy_pad);
            convolve(dy_pad, p.cout, p.cin, &wb, &no_bias, &p, &mut flat);
            unflatten(&flat, p.cin, &p, dx_b);
        }
        // All the task's images at once: each vector accumulator is summed across its
        // lanes once per task, not once per image (on a 7 x 7 plane the sums across
        // lanes would outnumber the products).
        weight_gradient(&padded_dy, &padded_x, images, &p, &mut dw);
        (dw, db)
    };
    // SAFETY: each chunk is whole images (`per` of them, fewer in the last), and
    // `unflatten` writes every element of each image's input gradient.
    let (dx, partial) = unsafe { fill_chunks(p.n * image_in, per * image_in, task) };
    let dx = Tensor::new(x.shape(), dx).ok()?;
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

/// What the forward kernels read: the padded planes, their count, the outputs' count,
/// the weights `[ins, k, k, outs]`, the bias and the plan.
#[derive(Clone, Copy)]
struct Operands<'a> {
    padded: &'a [f32],
    ins: usize,
    outs: usize,
    wt: &'a [f32],
    bias: &'a [f32],
    p: &'a Plan,
}

/// One image: `flat [outs, wide] = bias + conv(padded [ins planes], wt [ins, k, k, outs])`
/// at every flattened position (the caller keeps the columns below `w`).
fn convolve(
    padded: &[f32],
    ins: usize,
    outs: usize,
    wt: &[f32],
    bias: &[f32],
    p: &Plan,
    flat: &mut [f32],
) {
    assert!(
        padded.len() >= p.padded_len(ins)
            && wt.len() >= ins * p.k * p.k * outs
            && bias.len() >= outs
            && flat.len() >= outs * p.wide,
        "direct convolution operands too short"
    );
    let ops = Operands {
        padded,
        ins,
        outs,
        wt,
        bias,
        p,
    };
    // The kernel size as a constant: the taps' loops unrolled.
    match p.k {
        3 => convolve_blocks::<3>(ops, flat),
        _ => convolve_blocks::<5>(ops, flat),
    }
}

/// [`convolve`] for kernels of `K x K`, block by block of output channels.
fn convolve_blocks<const K: usize>(ops: Operands<'_>, flat: &mut [f32]) {
    let (p, outs) = (ops.p, ops.outs);
    // AVX-512 sweeps pairs of vectors, then a last single vector where `wide` is odd in
    // vectors.
    let pairs = p.wide / (2 * BLOCK) * (2 * BLOCK);
    let mut o = 0;
    while o < outs {
        let left = outs - o;
        // SAFETY: `convolve`'s assertion bounds every read and write (see the kernels' contracts),
        // and `plan` chose `p.isa` among the instructions this processor has.
        let block = unsafe {
            match p.isa {
                Isa::Avx512 => {
                    let (pair, last) = (0..pairs, pairs..p.wide);
                    match left {
                        8.. => {
                            avx512::convolve_block::<8, 2, K>(ops, o, pair, flat);
                            avx512::convolve_block::<8, 1, K>(ops, o, last, flat)
                        }
                        4.. => {
                            avx512::convolve_block::<4, 2, K>(ops, o, pair, flat);
                            avx512::convolve_block::<4, 1, K>(ops, o, last, flat)
                        }
                        2.. => {
                            avx512::convolve_block::<2, 2, K>(ops, o, pair, flat);
                            avx512::convolve_block::<2, 1, K>(ops, o, last, flat)
                        }
                        _ => {
                            avx512::convolve_block::<1, 2, K>(ops, o, pair, flat);
                            avx512::convolve_block::<1, 1, K>(ops, o, last, flat)
                        }
                    }
                }
                Isa::Avx2 => match left {
                    4.. => avx::convolve_block::<4, K>(ops, o, flat),
                    3 => avx::convolve_block::<3, K>(ops, o, flat),
                    2 => avx::convolve_block::<2, K>(ops, o, flat),
                    _ => avx::convolve_block::<1, K>(ops, o, flat),
                },
            }
        };
        o += block;
    }
}

/// The weight gradient of `images` images (their padded planes one after another) added
/// into `dw [cout, cin, k, k]`.
fn weight_gradient(padded_dy: &[f32], padded_x: &[f32], images: usize, p: &Plan, dw: &mut [f32]) {
    assert!(
        padded_dy.len() >= images * p.padded_len(p.cout)
            && padded_x.len() >= images * p.padded_len(p.cin)
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
                (Isa::Avx512, 3, 8..) => avx512::weight_block::<8, 3>(g, x, images, p, o, dw),
                (Isa::Avx512, 3, 4..) => avx512::weight_block::<4, 3>(g, x, images, p, o, dw),
                (Isa::Avx512, 3, 2..) => avx512::weight_block::<2, 3>(g, x, images, p, o, dw),
                (Isa::Avx512, 3, _) => avx512::weight_block::<1, 3>(g, x, images, p, o, dw),
                (Isa::Avx512, _, 4..) => avx512::weight_block::<4, 5>(g, x, images, p, o, dw),
                (Isa::Avx512, _, 2..) => avx512::weight_block::<2, 5>(g, x, images, p, o, dw),
                (Isa::Avx512, _, _) => avx512::weight_block::<1, 5>(g, x, images, p, o, dw),
                (Isa::Avx2, 3, 4..) => avx::weight_block::<4, 3>(g, x, images, p, o, dw),
                (Isa::Avx2, 3, 2..) => avx::weight_block::<2, 3>(g, x, images, p, o, dw),
                (Isa::Avx2, 3, _) => avx::weight_block::<1, 3>(g, x, images, p, o, dw),
                (Isa::Avx2, _, 2..) => avx::weight_block::<2, 5>(g, x, images, p, o, dw),
                (Isa::Avx2, _, _) => avx::weight_block::<1, 5>(g, x, images, p, o, dw),
            }
        };
        o += block;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::{BLOCK, Operands, Plan};

    /// [`super::copy_rows`] in vectors of 8, the last of each row masked.
    ///
    /// # Safety
    /// The processor has AVX2, and the rows lie inside the slices.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn copy_rows(
        src: &[f32],
        src_pitch: usize,
        dst: &mut [MaybeUninit<f32>],
        dst_pitch: usize,
        rows: usize,
        w: usize,
    ) {
        let tail = w % 8;
        let lanes: [i32; 8] = std::array::from_fn(|i| if i < tail { -1 } else { 0 });
        let mask = unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) };
        let (from, to) = (src.as_ptr(), dst.as_mut_ptr().cast::<f32>());
        for r in 0..rows {
            // SAFETY: columns below w of row r, which the caller bounds.
            unsafe {
                let (s, d) = (from.add(r * src_pitch), to.add(r * dst_pitch));
                let mut x = 0;
                while x + 8 <= w {
                    _mm256_storeu_ps(d.add(x), _mm256_loadu_ps(s.add(x)));
                    x += 8;
                }
                if tail != 0 {
                    _mm256_maskstore_ps(d.add(x), mask, _mm256_maskload_ps(s.add(x), mask));
                }
            }
        }
    }

    /// Output channels `o0..o0 + OB` of one image at every flattened position. Reads
    /// `padded[c plane + q + ky d wp + kx d]` for `q < wide`, which stays inside the
    /// planes and their tails, `wt[tap * outs + o]` below `ins k k outs`; writes
    /// `flat[o wide + q]`. Returns `OB`.
    ///
    /// # Safety
    /// The processor has AVX2 and FMA, and the slices hold what the plan says.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn convolve_block<const OB: usize, const K: usize>(
        Operands {
            padded,
            ins,
            outs,
            wt,
            bias,
            p,
        }: Operands<'_>,
        o0: usize,
        flat: &mut [f32],
    ) -> usize {
        let (k, d) = (K, p.dilation);
        let src = padded.as_ptr();
        let wts = wt.as_ptr();
        let dst = flat.as_mut_ptr();
        for q0 in (0..p.wide).step_by(BLOCK) {
            let mut acc = [[_mm256_setzero_ps(); 2]; OB];
            for (j, a) in acc.iter_mut().enumerate() {
                let b = _mm256_set1_ps(bias[o0 + j]);
                *a = [b, b];
            }
            for c in 0..ins {
                for ky in 0..k {
                    // SAFETY: q0 + ky d wp + kx d + 15 < plane (see `Plan::plane`).
                    let row = unsafe { src.add(c * p.plane + ky * d * p.wp + q0) };
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
            for (j, a) in acc.iter().enumerate() {
                // SAFETY: q0 + 15 < wide.
                unsafe {
                    let at = dst.add((o0 + j) * p.wide + q0);
                    _mm256_storeu_ps(at, a[0]);
                    _mm256_storeu_ps(at.add(8), a[1]);
                }
            }
        }
        OB
    }

    /// Adds `dw[o][c][ky][kx] += sum_{i, q} g[i][o][q] x[i][c][q + ky d wp + kx d]` over the
    /// `images` images `i`, for `o` in `o0..o0 + OB` and every `c`, where `g[i][o][q]` is
    /// the padded output gradient at `q + pad wp + pad`: the output gradient at flattened position `q`, and a padding zero
    /// at every dropped position, so whole vectors are summed.
    ///
    /// # Safety
    /// The processor has AVX2 and FMA, and the slices hold what the plan says.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_block<const OB: usize, const K: usize>(
        padded_dy: &[f32],
        padded_x: &[f32],
        images: usize,
        p: &Plan,
        o0: usize,
        dw: &mut [f32],
    ) -> usize {
        let d = p.dilation;
        let (gy, gx) = (padded_dy.as_ptr(), padded_x.as_ptr());
        let g_at = p.pad * p.wp + p.pad;
        for c in 0..p.cin {
            for ky in 0..K {
                let mut acc = [[_mm256_setzero_ps(); K]; OB];
                for i in 0..images {
                    // SAFETY: q + ky d wp + kx d + 7 < plane and q + pad wp + pad + 7 < plane
                    // in image i < images.
                    let xrow = unsafe { gx.add((i * p.cin + c) * p.plane + ky * d * p.wp) };
                    let grow = unsafe { gy.add(i * p.cout * p.plane + g_at) };
                    for q in (0..p.wide).step_by(8) {
                        let mut v = [_mm256_setzero_ps(); K];
                        for (kx, v) in v.iter_mut().enumerate() {
                            *v = unsafe { _mm256_loadu_ps(xrow.add(q + kx * d)) };
                        }
                        for (j, a) in acc.iter_mut().enumerate() {
                            let g = unsafe { _mm256_loadu_ps(grow.add((o0 + j) * p.plane + q)) };
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
    use std::mem::MaybeUninit;
    use std::ops::Range;

    use super::{BLOCK, GRADIENT_CACHE_BYTES, Operands, Plan};

    /// [`super::copy_rows`] in vectors of 16, the last of each row masked.
    ///
    /// # Safety
    /// The processor has AVX-512F, and the rows lie inside the slices.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn copy_rows(
        src: &[f32],
        src_pitch: usize,
        dst: &mut [MaybeUninit<f32>],
        dst_pitch: usize,
        rows: usize,
        w: usize,
    ) {
        let tail = w % BLOCK;
        let mask: __mmask16 = (1u16 << tail).wrapping_sub(1);
        let (from, to) = (src.as_ptr(), dst.as_mut_ptr().cast::<f32>());
        for r in 0..rows {
            // SAFETY: columns below w of row r, which the caller bounds; masked lanes are
            // not touched.
            unsafe {
                let (s, d) = (from.add(r * src_pitch), to.add(r * dst_pitch));
                let mut x = 0;
                while x + BLOCK <= w {
                    _mm512_storeu_ps(d.add(x), _mm512_loadu_ps(s.add(x)));
                    x += BLOCK;
                }
                if tail != 0 {
                    let v = _mm512_maskz_loadu_ps(mask, s.add(x));
                    _mm512_mask_storeu_ps(d.add(x), mask, v);
                }
            }
        }
    }

    /// Output channels `o0..o0 + OB` of one image at the flattened positions `range` (a
    /// multiple of `16 XB` long, below `wide`), `XB` vectors at a time. Reads
    /// `padded[c plane + q + ky d wp + kx d]`, which stays inside the planes and their
    /// tails, `wt[tap * outs + o]` below `ins k k outs`; writes `flat[o wide + q]`.
    /// Returns `OB`.
    ///
    /// # Safety
    /// The processor has AVX-512F, `range` is as above, and the slices hold what the plan
    /// says.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn convolve_block<const OB: usize, const XB: usize, const K: usize>(
        Operands {
            padded,
            ins,
            outs,
            wt,
            bias,
            p,
        }: Operands<'_>,
        o0: usize,
        range: Range<usize>,
        flat: &mut [f32],
    ) -> usize {
        let (k, d) = (K, p.dilation);
        let src = padded.as_ptr();
        let wts = wt.as_ptr();
        let dst = flat.as_mut_ptr();
        for q0 in range.step_by(BLOCK * XB) {
            let mut acc = [[_mm512_setzero_ps(); XB]; OB];
            for (j, a) in acc.iter_mut().enumerate() {
                *a = [_mm512_set1_ps(bias[o0 + j]); XB];
            }
            for c in 0..ins {
                for ky in 0..k {
                    // SAFETY: q0 + ky d wp + kx d + 16 XB - 1 < plane (see `Plan::plane`).
                    let row = unsafe { src.add(c * p.plane + ky * d * p.wp + q0) };
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
                for (b, a) in a.iter().enumerate() {
                    // SAFETY: q0 + 16 XB - 1 < wide.
                    unsafe { _mm512_storeu_ps(dst.add((o0 + j) * p.wide + q0 + b * BLOCK), *a) };
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
        images: usize,
        p: &Plan,
        o0: usize,
        dw: &mut [f32],
    ) -> usize {
        let d = p.dilation;
        let (gy, gx) = (padded_dy.as_ptr(), padded_x.as_ptr());
        let g_at = p.pad * p.wp + p.pad;
        // Adds images `first..last`' products for input channel `c` and kernel row `ky`.
        let accumulate =
            |a_reg: &mut [[__m512; K]; OB], c: usize, ky: usize, images: Range<usize>| {
                for i in images {
                    // SAFETY: q + ky d wp + kx d + 15 < plane and q + pad wp + pad + 15 < plane
                    // in image i < images.
                    let xrow = unsafe { gx.add((i * p.cin + c) * p.plane + ky * d * p.wp) };
                    let grow = unsafe { gy.add(i * p.cout * p.plane + g_at) };
                    for q in (0..p.wide).step_by(BLOCK) {
                        let mut v = [_mm512_setzero_ps(); K];
                        for (kx, v) in v.iter_mut().enumerate() {
                            *v = unsafe { _mm512_loadu_ps(xrow.add(q + kx * d)) };
                        }
                        for (j, a) in a_reg.iter_mut().enumerate() {
                            let g = unsafe { _mm512_loadu_ps(grow.add((o0 + j) * p.plane + q)) };
                            for (a, v) in a.iter_mut().zip(&v) {
                                *a = _mm512_fmadd_ps(g, *v, *a);
                            }
                        }
                    }
                }
            };
        let mut add_sums = |c: usize, ky: usize, acc: &[[__m512; K]; OB]| {
            for (j, a) in acc.iter().enumerate() {
                for (kx, lane) in a.iter().enumerate() {
                    dw[(((o0 + j) * p.cin + c) * K + ky) * K + kx] += _mm512_reduce_add_ps(*lane);
                }
            }
        };
        // As many images at a time as keep their output gradient's planes of this block in
        // the first-level cache across every input channel and kernel row.
        let group = (GRADIENT_CACHE_BYTES / (OB * p.plane * 4)).max(1);
        if group >= images {
            for c in 0..p.cin {
                for ky in 0..K {
                    let mut acc = [[_mm512_setzero_ps(); K]; OB];
                    accumulate(&mut acc, c, ky, 0..images);
                    add_sums(c, ky, &acc);
                }
            }
        } else {
            // All of them would spill to the second level (a 28 x 28 map's): a group at a
            // time, the vector sums waiting in `sums` between groups.
            let mut sums = vec![[[_mm512_setzero_ps(); K]; OB]; p.cin * K];
            for first in (0..images).step_by(group) {
                let last = (first + group).min(images);
                for c in 0..p.cin {
                    for ky in 0..K {
                        let acc = &mut sums[c * K + ky];
                        let mut a_reg = *acc;
                        accumulate(&mut a_reg, c, ky, first..last);
                        *acc = a_reg;
                    }
                }
            }
            for (row, acc) in sums.iter().enumerate() {
                add_sums(row / K, row % K, acc);
            }
        }
        OB
    }
}

/// Where the processor is not x86-64, `plan` never admits a convolution: these are never
/// called.
#[cfg(not(target_arch = "x86_64"))]
mod avx {
    use super::{Operands, Plan};

    pub(super) unsafe fn copy_rows(
        _: &[f32],
        _: usize,
        _: &mut [f32],
        _: usize,
        _: usize,
        _: usize,
    ) {
        unreachable!("the direct kernels run on x86-64 only")
    }

    pub(super) unsafe fn convolve_block<const OB: usize, const K: usize>(
        _: Operands<'_>,
        _: usize,
        _: &mut [f32],
    ) -> usize {
        unreachable!("the direct kernels run on x86-64 only")
    }

    pub(super) unsafe fn weight_block<const OB: usize, const K: usize>(
        _: &[f32],
        _: &[f32],
        _: usize,
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
    use std::ops::Range;

    use super::{Operands, Plan};

    pub(super) unsafe fn copy_rows(
        _: &[f32],
        _: usize,
        _: &mut [f32],
        _: usize,
        _: usize,
        _: usize,
    ) {
        unreachable!("the direct kernels run on x86-64 only")
    }

    pub(super) unsafe fn convolve_block<const OB: usize, const XB: usize, const K: usize>(
        _: Operands<'_>,
        _: usize,
        _: Range<usize>,
        _: &mut [f32],
    ) -> usize {
        unreachable!("the direct kernels run on x86-64 only")
    }

    pub(super) unsafe fn weight_block<const OB: usize, const K: usize>(
        _: &[f32],
        _: &[f32],
        _: usize,
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
    /// dilation 2, flattened planes that are not whole pairs of vectors (7 x 7: 63
    /// positions in 4 vectors; 8 x 8: 80 in 5), channel counts that are not whole blocks
    /// of 4 (one input channel: the stem), with and without bias, and tasks of several
    /// images (whose padded planes must stay zero outside the image).
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
            (2, 6, 7, 9, 21, 5, 1),
            (2, 32, 32, 7, 7, 3, 1),
            (2, 64, 48, 7, 7, 3, 1),
            (3, 5, 9, 8, 8, 3, 1),
            (2, 4, 4, 14, 14, 5, 1),
            // Several images per task, one padded buffer for them.
            (40, 3, 4, 8, 8, 3, 1),
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
                let Some(y) = conv2d_on(Some(isa), &x, &weight, b, &spec) else {
                    // AVX2 serves at most 16 channels a side.
                    assert!(isa == Isa::Avx2 && cin.max(cout) > 16, "{what}: not served");
                    continue;
                };
                close(&format!("{what}: y"), &y, &y_ref);
                let (dx, dw, db) =
                    conv2d_backward_on(Some(isa), &x, &weight, &dy, &spec).expect("served");
                close(&format!("{what}: dx"), &dx, &rx);
                close(&format!("{what}: dw"), &dw, &rw);
                close(&format!("{what}: db"), &db, &rb);
            }
        }
    }

    /// Strided, grouped, pointwise, unpadded, small-plane and many-channel
    /// convolutions are left to im2col.
    #[test]
    fn other_convolutions_are_left_to_im2col() {
        let x = Tensor::randn(&[2, 4, 16, 16], 1.0, 1);
        let w3 = Tensor::randn(&[4, 4, 3, 3], 1.0, 2);
        let same = Conv2dSpec {
            stride: 1,
            padding: 1,
            dilation: 1,
            groups: 1,
        };
        let strided = Conv2dSpec { stride: 2, ..same };
        assert!(conv2d(&x, &w3, None, &strided).is_none());
        let grouped = Conv2dSpec { groups: 4, ..same };
        assert!(conv2d(&x, &Tensor::randn(&[4, 1, 3, 3], 1.0, 3), None, &grouped).is_none());
        let pointwise = Conv2dSpec { padding: 0, ..same };
        assert!(conv2d(&x, &Tensor::randn(&[4, 4, 1, 1], 1.0, 3), None, &pointwise).is_none());
        let valid = Conv2dSpec { padding: 0, ..same };
        assert!(conv2d(&x, &w3, None, &valid).is_none());
        let wide = Tensor::randn(&[2, 128, 16, 16], 1.0, 1);
        let w128 = Tensor::randn(&[8, 128, 3, 3], 1.0, 2);
        assert!(conv2d(&wide, &w128, None, &same).is_none());
        // Planes whose padding columns would be too large a share of the positions
        // computed: 4 x 4 (16 of 32), 5 x 5 kernels on 7 x 7 (49 of 80); 7 x 7 with a 3 x 3
        // kernel (49 of 64) is served.
        let four = Tensor::randn(&[2, 4, 4, 4], 1.0, 1);
        assert!(conv2d(&four, &w3, None, &same).is_none());
        let seven = Tensor::randn(&[2, 4, 7, 7], 1.0, 1);
        let w5 = Tensor::randn(&[4, 4, 5, 5], 1.0, 2);
        let same5 = Conv2dSpec { padding: 2, ..same };
        assert!(conv2d(&seven, &w5, None, &same5).is_none());
        assert!(conv2d(&seven, &w3, None, &same).is_some() || available().is_empty());
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
        // 32 and 64 channels: served on AVX-512, left to im2col on AVX2.
        for (x, w) in [
            (
                Tensor::randn(&[2, 32, 14, 14], 1.0, 1),
                Tensor::randn(&[8, 32, 3, 3], 1.0, 2),
            ),
            (
                Tensor::randn(&[2, 64, 7, 7], 1.0, 1),
                Tensor::randn(&[64, 64, 3, 3], 1.0, 2),
            ),
        ] {
            for isa in available() {
                let served = conv2d_on(Some(isa), &x, &w, None, &same).is_some();
                assert_eq!(served, isa == Isa::Avx512, "{isa:?}");
            }
        }
    }
}
