//! The optimised CPU kernels against plain reference implementations (direct loops in
//! `f64`, no im2col, no parallelism, no fast paths), on proptest-generated shapes: every
//! stride, padding (including more than the kernel needs), dilation and group count the
//! fast paths distinguish, and batches that the convolution unrolls several images at a
//! time (an uneven last chunk included).

use hwnas_kernels::cpu;
use hwnas_kernels::{Conv2dSpec, Tensor};
use proptest::prelude::*;

fn close(name: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-4 * (1.0 + w.abs());
        assert!(
            (f64::from(*g) - w).abs() <= tol,
            "{name}: element {i}: {g} vs reference {w}"
        );
    }
}

/// For each output element: the `(input index, weight index)` pairs it sums.
fn conv_taps(
    shape: [usize; 4],
    weight: [usize; 4],
    spec: &Conv2dSpec,
) -> (Vec<usize>, Vec<Vec<(usize, usize)>>) {
    let [n, cin, h, w] = shape;
    let [cout, cin_g, k, _] = weight;
    let out =
        |size: usize| (size + 2 * spec.padding - spec.dilation * (k - 1) - 1) / spec.stride + 1;
    let (oh, ow) = (out(h), out(w));
    let cout_g = cout / spec.groups;
    let mut taps = Vec::new();
    for b in 0..n {
        for o in 0..cout {
            let group = o / cout_g;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut list = Vec::new();
                    for i in 0..cin_g {
                        let ci = group * cin_g + i;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * spec.stride + ky * spec.dilation) as isize
                                    - spec.padding as isize;
                                let ix = (ox * spec.stride + kx * spec.dilation) as isize
                                    - spec.padding as isize;
                                if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                                    continue;
                                }
                                let xi = ((b * cin + ci) * h + iy as usize) * w + ix as usize;
                                let wi = ((o * cin_g + i) * k + ky) * k + kx;
                                list.push((xi, wi));
                            }
                        }
                    }
                    taps.push(list);
                }
            }
        }
    }
    (vec![n, cout, oh, ow], taps)
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|v| f64::from(*v)).collect()
}

/// A convolution's forward, input gradient and weight gradient against direct loops over
/// its taps.
fn matches_direct_loops(x: &Tensor, weight: &Tensor, spec: &Conv2dSpec, seed: u64) {
    let [n, cin, h, w]: [usize; 4] = x.shape().try_into().unwrap();
    let [cout, cin_g, k, _]: [usize; 4] = weight.shape().try_into().unwrap();
    let (out_shape, taps) = conv_taps([n, cin, h, w], [cout, cin_g, k, k], spec);
    let (xs, ws) = (f64s(x), f64s(weight));
    let want: Vec<f64> = taps
        .iter()
        .map(|list| list.iter().map(|&(xi, wi)| xs[xi] * ws[wi]).sum())
        .collect();
    let y = cpu::conv2d(x, weight, None, spec).unwrap();
    assert_eq!(y.shape(), &out_shape[..]);
    close("conv forward", y.data(), &want);
    let dy = Tensor::randn(y.shape(), 1.0, seed + 2);
    let dys = f64s(&dy);
    let (mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; weight.len()]);
    for (list, g) in taps.iter().zip(&dys) {
        for &(xi, wi) in list {
            dx[xi] += g * ws[wi];
            dw[wi] += g * xs[xi];
        }
    }
    let (got_dx, got_dw, _) = cpu::conv2d_backward(x, weight, &dy, spec).unwrap();
    close("conv dx", got_dx.data(), &dx);
    close("conv dw", got_dw.data(), &dw);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Forward, input gradient and weight gradient of a convolution against direct loops.
    #[test]
    fn conv2d_matches_direct_loops(n in prop::sample::select(vec![1usize, 2, 9, 17, 24]), groups in 1usize..3, cin_g in 1usize..4,
                                   cout_g in 1usize..3, h in 1usize..9, w in 1usize..9,
                                   k in prop::sample::select(vec![1usize, 2, 3, 5]),
                                   stride in 1usize..4, padding in 0usize..4,
                                   dilation in 1usize..3, seed in 0u64..1000) {
        let spec = Conv2dSpec { stride, padding, dilation, groups };
        prop_assume!(spec.output_size(h, k).is_some() && spec.output_size(w, k).is_some());
        let (cin, cout) = (cin_g * groups, cout_g * groups);
        let x = Tensor::randn(&[n, cin, h, w], 1.0, seed);
        let weight = Tensor::randn(&[cout, cin_g, k, k], 0.5, seed + 1);
        matches_direct_loops(&x, &weight, &spec, seed);
    }

    /// Average pooling (padding not counted) and its gradient against direct loops.
    #[test]
    fn avg_pool_matches_direct_loops(n in 1usize..3, c in 1usize..3, h in 2usize..9, w in 2usize..9,
                                     kernel in 1usize..4, stride in 1usize..3, padding in 0usize..4,
                                     seed in 0u64..1000) {
        // Padding wider than the kernel included: windows wholly in the padding are empty.
        prop_assume!(kernel <= h + 2 * padding && kernel <= w + 2 * padding);
        let x = Tensor::randn(&[n, c, h, w], 1.0, seed);
        let (oh, ow) = ((h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1);
        let xs = f64s(&x);
        let window = |o: usize, size: usize| {
            let start = (o * stride) as isize - padding as isize;
            (start.max(0)..(start + kernel as isize).min(size as isize))
                .map(|v| v as usize)
                .collect::<Vec<usize>>()
        };
        let y = cpu::avg_pool(&x, kernel, stride, padding).unwrap();
        let dy = Tensor::randn(y.shape(), 1.0, seed + 1);
        let dys = f64s(&dy);
        let mut want = Vec::new();
        let mut dx = vec![0.0; x.len()];
        for p in 0..n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let cols = window(ox, w);
                    let cells: Vec<usize> = window(oy, h)
                        .into_iter()
                        .flat_map(|iy| cols.iter().map(move |ix| (p * h + iy) * w + ix))
                        .collect();
                    let count = cells.len().max(1) as f64;
                    want.push(cells.iter().map(|&i| xs[i]).sum::<f64>() / count);
                    let g = dys[(p * oh + oy) * ow + ox];
                    cells.iter().for_each(|&i| dx[i] += g / count);
                }
            }
        }
        close("avg pool", y.data(), &want);
        close("avg pool dx", cpu::avg_pool_backward(&x, &dy, kernel, stride, padding).unwrap().data(), &dx);
    }

    /// Batch norm in training mode against its two-pass definition in `f64`, on tensors
    /// large enough for the parallel path and small ones, affine and non-affine (gamma 1,
    /// beta 0: the output is the cache's normalised input).
    #[test]
    fn batch_norm_matches_its_definition(n in 1usize..5, c in 1usize..5, side in prop::sample::select(vec![2usize, 5, 96]),
                                         seed in 0u64..1000, affine in any::<bool>()) {
        let x = Tensor::randn(&[n, c, side, side], 2.0, seed);
        let (gamma, beta) = if affine {
            (Tensor::randn(&[c], 1.0, seed + 1), Tensor::randn(&[c], 1.0, seed + 2))
        } else {
            (Tensor::new(&[c], vec![1.0; c]).unwrap(), Tensor::zeros(&[c]))
        };
        let (y, cache) = cpu::batch_norm_train(&x, &gamma, &beta, 1e-5).unwrap();
        let xs = f64s(&x);
        let plane = side * side;
        let count = (n * plane) as f64;
        let mut want = vec![0.0; x.len()];
        for ch in 0..c {
            let idx = |b: usize| (b * c + ch) * plane..(b * c + ch + 1) * plane;
            let mean = (0..n).flat_map(idx).map(|i| xs[i]).sum::<f64>() / count;
            let var = (0..n).flat_map(idx).map(|i| (xs[i] - mean).powi(2)).sum::<f64>() / count;
            prop_assert!((f64::from(cache.mean.data()[ch]) - mean).abs() <= 1e-4 * (1.0 + mean.abs()));
            prop_assert!((f64::from(cache.var.data()[ch]) - var).abs() <= 1e-3 * (1.0 + var));
            for i in (0..n).flat_map(idx) {
                want[i] = f64::from(gamma.data()[ch]) * (xs[i] - mean) / (var + 1e-5).sqrt()
                    + f64::from(beta.data()[ch]);
            }
        }
        close("batch norm", y.data(), &want);
        if !affine {
            prop_assert_eq!(y.data(), cache.normalised.data());
        }
    }
}

/// A dilated kernel wider than its padded input on one side: some taps read only padding
/// (DARTS's dilated 5x5 on the last stage's small maps).
#[test]
fn taps_that_read_only_padding() {
    for (size, k, dilation, padding) in [(3, 5, 2, 3), (2, 5, 2, 4), (1, 3, 2, 2)] {
        let spec = Conv2dSpec {
            stride: 1,
            padding,
            dilation,
            groups: 1,
        };
        let x = Tensor::randn(&[1, 2, size, size], 1.0, 1);
        let weight = Tensor::randn(&[2, 2, k, k], 0.5, 2);
        matches_direct_loops(&x, &weight, &spec, 1);
    }
}

/// The gradients do not depend on how many workers computed them: a search is reproducible
/// on any machine (the chunks' weight gradients are added in a fixed order).
#[test]
fn gradients_are_the_same_on_any_number_of_threads() {
    let spec = Conv2dSpec {
        stride: 1,
        padding: 1,
        dilation: 1,
        groups: 1,
    };
    let x = Tensor::randn(&[64, 8, 7, 7], 1.0, 1);
    let weight = Tensor::randn(&[16, 8, 3, 3], 0.5, 2);
    let dy = Tensor::randn(&[64, 16, 7, 7], 1.0, 3);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| cpu::conv2d_backward(&x, &weight, &dy, &spec).unwrap())
    };
    let (one, three) = (run(1), run(3));
    assert_eq!(one.0.data(), three.0.data(), "dx");
    assert_eq!(one.1.data(), three.1.data(), "dw");
}

/// Zero channels or empty planes: zeros (and the bias), no panic.
#[test]
fn empty_convolutions_give_zeros() {
    let spec = Conv2dSpec {
        stride: 1,
        padding: 1,
        dilation: 1,
        groups: 1,
    };
    let x = Tensor::zeros(&[2, 0, 4, 4]);
    let weight = Tensor::zeros(&[3, 0, 3, 3]);
    let bias = Tensor::new(&[3], vec![1.0, 2.0, 3.0]).unwrap();
    let y = cpu::conv2d(&x, &weight, Some(&bias), &spec).unwrap();
    assert_eq!(y.shape(), &[2, 3, 4, 4]);
    assert!(y.data()[..16].iter().all(|v| *v == 1.0));
    let dy = Tensor::randn(&[2, 3, 4, 4], 1.0, 1);
    let (dx, dw, db) = cpu::conv2d_backward(&x, &weight, &dy, &spec).unwrap();
    assert!(dx.is_empty() && dw.is_empty());
    assert_eq!(db.len(), 3);
}
