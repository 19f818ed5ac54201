//! The WGSL kernels against the CPU reference, on proptest-generated shapes, on whatever
//! adapter wgpu finds (lavapipe on CPU-only machines); skipped, with the reason on standard
//! error, only where no adapter exists at all (a failure under `HWNAS_REQUIRE=gpu`).

use std::sync::OnceLock;

use hwnas_kernels::gpu::GpuContext;
use hwnas_kernels::{Activation, Conv2dSpec, Tensor, Tolerance, cpu};
use hwnas_testkit::{Resource, require};
use proptest::prelude::*;

fn gpu() -> Option<&'static GpuContext> {
    static GPU: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    let probe = GPU
        .get_or_init(|| match GpuContext::new() {
            Ok(gpu) => {
                println!(
                    "wgpu adapter: {} ({})",
                    gpu.adapter().name,
                    gpu.adapter().backend
                );
                Ok(gpu)
            }
            Err(e) => Err(e.to_string()),
        })
        .as_ref();
    require(Resource::Gpu, "a wgpu adapter", probe)
}

/// A context of the test's own (counters and pool not shared with tests running beside it).
fn own_gpu() -> Option<GpuContext> {
    gpu()?;
    Some(GpuContext::new().expect("a second context on the adapter found"))
}

fn assert_close(name: &str, gpu: &Tensor, cpu: &Tensor) {
    assert_eq!(gpu.shape(), cpu.shape(), "{name}");
    if let Some((i, a, b)) = Tolerance::REORDERED.first_mismatch(gpu.data(), cpu.data()) {
        panic!("{name}: element {i}: gpu {a} vs cpu {b}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn matmul_matches(m in 1usize..150, k in 1usize..70, n in 1usize..150, seed in 0u64..1000) {
        let Some(gpu) = gpu() else { return Ok(()) };
        let a = Tensor::randn(&[m, k], 1.0, seed);
        let b = Tensor::randn(&[k, n], 1.0, seed + 1);
        assert_close("matmul", &gpu.matmul(&a, &b).unwrap(), &cpu::matmul(&a, &b).unwrap());
    }

    #[test]
    fn conv2d_matches(n in 1usize..3, groups in 1usize..4, cin_g in 1usize..4, cout_g in 1usize..4,
                      size in 3usize..12, k in prop::sample::select(vec![1usize, 3, 5, 7]), stride in 1usize..3,
                      dilation in 1usize..3, seed in 0u64..1000) {
        let Some(gpu) = gpu() else { return Ok(()) };
        let spec = Conv2dSpec { stride, padding: dilation * (k - 1) / 2, dilation, groups };
        prop_assume!(spec.output_size(size, k).is_some());
        let x = Tensor::randn(&[n, cin_g * groups, size, size + 2], 1.0, seed);
        let w = Tensor::randn(&[cout_g * groups, cin_g, k, k], 0.5, seed + 1);
        assert_close("conv2d", &gpu.conv2d(&x, &w, &spec).unwrap(), &cpu::conv2d(&x, &w, None, &spec).unwrap());
    }

    #[test]
    fn activations_match(len in 1usize..3000, seed in 0u64..1000) {
        let Some(gpu) = gpu() else { return Ok(()) };
        let x = Tensor::randn(&[len], 4.0, seed);
        let dy = Tensor::randn(&[len], 1.0, seed + 1);
        for f in Activation::ALL {
            assert_close(&format!("{f:?}"), &gpu.activation(&x, f).unwrap(), &cpu::activation(&x, f));
            assert_close(&format!("{f:?} backward"), &gpu.activation_backward(&x, &dy, f).unwrap(), &cpu::activation_backward(&x, &dy, f).unwrap());
        }
    }
}

#[test]
fn depthwise_convolutions_match_on_both_paths() {
    let Some(gpu) = gpu() else { return };
    // (channels, multiplier, size, k, stride, dilation, [forward, input gradient] staged in
    // workgroup memory?): several tiles per plane, odd sizes, stride 2, dilation, a channel
    // multiplier, and windows too big to stage (the direct kernels take them).
    let cases = [
        (24, 1, [37, 35], 5, 2, 1, [true, true]),
        (8, 1, [33, 20], 7, 1, 2, [true, true]),
        (6, 2, [19, 18], 3, 1, 1, [true, true]),
        (4, 1, [40, 21], 7, 2, 3, [false, true]),
        (3, 1, [40, 41], 7, 1, 6, [false, false]),
    ];
    for (case, (channels, multiplier, [h, w], k, stride, dilation, staged)) in
        cases.into_iter().enumerate()
    {
        let spec = Conv2dSpec {
            stride,
            padding: dilation * (k - 1) / 2,
            dilation,
            groups: channels,
        };
        let seed = 10 * case as u64;
        let x = Tensor::randn(&[2, channels, h, w], 1.0, seed);
        let weight = Tensor::randn(&[channels * multiplier, 1, k, k], 0.5, seed + 1);
        let y = cpu::conv2d(&x, &weight, None, &spec).unwrap();
        let &[_, cout, oh, ow] = y.shape() else {
            unreachable!()
        };
        let geometry = [2, channels, h, w, cout, k, oh, ow];
        assert_eq!(
            GpuContext::depthwise_groups(geometry, &spec, false).is_some(),
            staged[0],
            "case {case}"
        );
        assert_eq!(
            GpuContext::depthwise_groups(geometry, &spec, true).is_some(),
            staged[1],
            "case {case}"
        );
        assert_close("depthwise", &gpu.conv2d(&x, &weight, &spec).unwrap(), &y);
        let dy = Tensor::randn(y.shape(), 1.0, seed + 2);
        let (dx, dw) = gpu.conv2d_backward(&x, &weight, &dy, &spec).unwrap();
        let (cdx, cdw, _) = cpu::conv2d_backward(&x, &weight, &dy, &spec).unwrap();
        assert_close("depthwise dx", &dx, &cdx);
        assert_close("depthwise dw", &dw, &cdw);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    /// Both paths (tiled for wide groups, direct for narrow ones) forward and backward.
    #[test]
    fn conv2d_backward_matches(n in 1usize..3, groups in 1usize..3, cin_g in prop::sample::select(vec![1usize, 3, 8, 11]),
                               cout_g in prop::sample::select(vec![1usize, 2, 8, 17]), size in 3usize..10,
                               k in prop::sample::select(vec![1usize, 3, 5]), stride in 1usize..3,
                               dilation in 1usize..3, seed in 0u64..1000) {
        let Some(gpu) = gpu() else { return Ok(()) };
        let spec = Conv2dSpec { stride, padding: dilation * (k - 1) / 2, dilation, groups };
        prop_assume!(spec.output_size(size, k).is_some());
        let x = Tensor::randn(&[n, cin_g * groups, size, size + 1], 1.0, seed);
        let w = Tensor::randn(&[cout_g * groups, cin_g, k, k], 0.5, seed + 1);
        let y = cpu::conv2d(&x, &w, None, &spec).unwrap();
        assert_close("conv2d", &gpu.conv2d(&x, &w, &spec).unwrap(), &y);
        let dy = Tensor::randn(y.shape(), 1.0, seed + 2);
        let (dx, dw) = gpu.conv2d_backward(&x, &w, &dy, &spec).unwrap();
        let (cdx, cdw, _) = cpu::conv2d_backward(&x, &w, &dy, &spec).unwrap();
        assert_close("conv2d dx", &dx, &cdx);
        assert_close("conv2d dw", &dw, &cdw);
    }
}

#[test]
fn a_wide_stride_2_convolution_takes_the_tiled_path_and_matches() {
    let Some(gpu) = gpu() else { return };
    // (input channels, output channels, groups): one tile, then more than 64 rows in every
    // product (forward and weight gradient over output channels, input gradient over input
    // channels), then groups of 10 -> 68 channels.
    for (case, (cin, cout, groups)) in [(16, 24, 1), (70, 72, 1), (20, 136, 2)]
        .into_iter()
        .enumerate()
    {
        let spec = Conv2dSpec {
            stride: 2,
            padding: 1,
            dilation: 1,
            groups,
        };
        let seed = 3 * case as u64;
        let x = Tensor::randn(&[3, cin, 15, 15], 1.0, seed);
        let w = Tensor::randn(&[cout, cin / groups, 3, 3], 0.3, seed + 1);
        assert!(GpuContext::conv_is_tiled(
            [3, cin, 15, 15, cout, 3, 8, 8],
            &spec
        ));
        let y = cpu::conv2d(&x, &w, None, &spec).unwrap();
        assert_close("conv2d", &gpu.conv2d(&x, &w, &spec).unwrap(), &y);
        let dy = Tensor::randn(y.shape(), 1.0, seed + 2);
        let (dx, dw) = gpu.conv2d_backward(&x, &w, &dy, &spec).unwrap();
        let (cdx, cdw, _) = cpu::conv2d_backward(&x, &w, &dy, &spec).unwrap();
        assert_close("conv2d dx", &dx, &cdx);
        assert_close("conv2d dw", &dw, &cdw);
    }
}

/// The wgpu backend, for the op-by-op comparison through the `Backend` trait.
fn wgpu_backend() -> Option<&'static hwnas_kernels::Wgpu> {
    static BACKEND: OnceLock<Result<hwnas_kernels::Wgpu, String>> = OnceLock::new();
    let probe = BACKEND
        .get_or_init(|| hwnas_kernels::Wgpu::new().map_err(|e| e.to_string()))
        .as_ref();
    require(Resource::Gpu, "a wgpu adapter", probe)
}

/// Compares every layer op forward and backward, wgpu vs the CPU reference, on one set of
/// shapes; returns how many (op, direction) pairs it checked.
fn compare_layer_ops(n: usize, c: usize, h: usize, w: usize, seed: u64) -> usize {
    use hwnas_kernels::Backend;
    let Some(gpu) = wgpu_backend() else { return 0 };
    let cpu = hwnas_kernels::Cpu;
    let mut checked = 0;
    let mut same = |name: &str, a: &Tensor, b: &Tensor| {
        assert_close(name, a, b);
        checked += 1;
    };
    let x = Tensor::randn(&[n, c, h, w], 1.0, seed);
    for (max, k, s, p) in [
        (false, 3, 1, 1),
        (true, 3, 2, 1),
        (false, 2, 2, 0),
        (true, 3, 1, 1),
    ] {
        if h + 2 * p < k || w + 2 * p < k {
            continue;
        }
        let y = cpu.pool(&x, max, k, s, p).unwrap();
        same("pool", &gpu.pool(&x, max, k, s, p).unwrap(), &y);
        let dy = Tensor::randn(y.shape(), 1.0, seed + 1);
        same(
            "pool backward",
            &gpu.pool_backward(&x, &dy, max, k, s, p).unwrap(),
            &cpu.pool_backward(&x, &dy, max, k, s, p).unwrap(),
        );
    }
    let g = cpu.global_avg_pool(&x).unwrap();
    same("global pool", &gpu.global_avg_pool(&x).unwrap(), &g);
    let dg = Tensor::randn(g.shape(), 1.0, seed + 2);
    same(
        "global pool backward",
        &gpu.global_avg_pool_backward(&x, &dg).unwrap(),
        &cpu.global_avg_pool_backward(&x, &dg).unwrap(),
    );

    let gamma = Tensor::randn(&[c], 1.0, seed + 3);
    let beta = Tensor::randn(&[c], 1.0, seed + 4);
    let dy = Tensor::randn(x.shape(), 1.0, seed + 5);
    let (y, cache) = cpu.batch_norm_train(&x, &gamma, &beta, 1e-5).unwrap();
    let (gy, gcache) = gpu.batch_norm_train(&x, &gamma, &beta, 1e-5).unwrap();
    same("batch norm", &gy, &y);
    same("batch norm mean", &gcache.mean, &cache.mean);
    same("batch norm var", &gcache.var, &cache.var);
    same("batch norm inv_std", &gcache.inv_std, &cache.inv_std);
    let (dx, dgamma, dbeta) = cpu.batch_norm_train_backward(&cache, &gamma, &dy).unwrap();
    let (gdx, gdgamma, gdbeta) = gpu.batch_norm_train_backward(&cache, &gamma, &dy).unwrap();
    same("batch norm dx", &gdx, &dx);
    same("batch norm dgamma", &gdgamma, &dgamma);
    same("batch norm dbeta", &gdbeta, &dbeta);
    let (y, normalised, inv_std) = cpu
        .batch_norm_inference(&x, &gamma, &beta, &cache.mean, &cache.var, 1e-5)
        .unwrap();
    let gpu_inference = gpu
        .batch_norm_inference(&x, &gamma, &beta, &cache.mean, &cache.var, 1e-5)
        .unwrap();
    same("inference batch norm", &gpu_inference.0, &y);
    same(
        "inference batch norm normalised",
        &gpu_inference.1,
        &normalised,
    );
    same("inference batch norm inv_std", &gpu_inference.2, &inv_std);
    let (dx, dgamma, _) = cpu
        .batch_norm_inference_backward(&normalised, &inv_std, &gamma, &dy)
        .unwrap();
    let (gdx, gdgamma, _) = gpu
        .batch_norm_inference_backward(&normalised, &inv_std, &gamma, &dy)
        .unwrap();
    same("inference batch norm dx", &gdx, &dx);
    same("inference batch norm dgamma", &gdgamma, &dgamma);

    for other in [vec![n, c, 1, 1], vec![c, 1, 1], vec![1], vec![n, c, h, w]] {
        let b = Tensor::randn(&other, 1.0, seed + 6);
        for multiply in [false, true] {
            let y = cpu.binary(&x, &b, multiply).unwrap();
            same("broadcast", &gpu.binary(&x, &b, multiply).unwrap(), &y);
            let dy = Tensor::randn(y.shape(), 1.0, seed + 7);
            let (da, db) = cpu.binary_backward(&x, &b, &dy, multiply).unwrap();
            let (gda, gdb) = gpu.binary_backward(&x, &b, &dy, multiply).unwrap();
            same("broadcast da", &gda, &da);
            same("broadcast db", &gdb, &db);
        }
    }

    for axis in 0..4 {
        let size = x.shape()[axis];
        let (start, len) = (size / 3, size - size / 3);
        let y = cpu.slice_axis(&x, axis, start, len).unwrap();
        same("slice", &gpu.slice_axis(&x, axis, start, len).unwrap(), &y);
        let dy = Tensor::randn(y.shape(), 1.0, seed + 8);
        same(
            "slice backward",
            &gpu.slice_axis_backward(&dy, x.shape(), axis, start)
                .unwrap(),
            &cpu.slice_axis_backward(&dy, x.shape(), axis, start)
                .unwrap(),
        );
    }
    let other = Tensor::randn(&[n, c + 1, h, w], 1.0, seed + 9);
    let y = cpu.concat_channels(&[&x, &other]).unwrap();
    same("concat", &gpu.concat_channels(&[&x, &other]).unwrap(), &y);
    let dy = Tensor::randn(y.shape(), 1.0, seed + 10);
    for (g, r) in gpu
        .concat_channels_backward(&dy, &[c, c + 1])
        .unwrap()
        .iter()
        .zip(&cpu.concat_channels_backward(&dy, &[c, c + 1]).unwrap())
    {
        same("concat backward", g, r);
    }
    let kernels = Tensor::randn(&[c, 2, 7, 7], 1.0, seed + 11);
    for size in [5, 3] {
        let y = cpu.centre_crop(&kernels, size).unwrap();
        same("centre crop", &gpu.centre_crop(&kernels, size).unwrap(), &y);
        let dy = Tensor::randn(y.shape(), 1.0, seed + 12);
        same(
            "centre crop backward",
            &gpu.centre_crop_backward(&dy, kernels.shape()).unwrap(),
            &cpu.centre_crop_backward(&dy, kernels.shape()).unwrap(),
        );
    }

    let candidates: Vec<Tensor> = (0..5)
        .map(|k| Tensor::randn(x.shape(), 1.0, seed + 20 + k))
        .collect();
    for (weights, present) in [
        (vec![0.1f32, 0.3, 0.2, 0.25, 0.15], [true; 5]),
        (
            vec![0.0, 0.0, 1.0, 0.0, 0.0],
            [false, false, true, false, false],
        ),
    ] {
        let refs: Vec<Option<&Tensor>> = candidates
            .iter()
            .zip(present)
            .map(|(t, p)| p.then_some(t))
            .collect();
        let weights = Tensor::new(&[5], weights).unwrap();
        let y = cpu.mixed(&refs, &weights).unwrap();
        let dy = Tensor::randn(y.shape(), 1.0, seed + 30);
        let (dw, dc) = cpu.mixed_backward(&refs, &weights, &dy).unwrap();
        // The weights from the host, and resident on the device (a softmax's output).
        for weights in [weights.clone(), gpu.to_device(&weights).unwrap()] {
            same("mixed", &gpu.mixed(&refs, &weights).unwrap(), &y);
            let (gdw, gdc) = gpu.mixed_backward(&refs, &weights, &dy).unwrap();
            same("mixed dweights", &gdw, &dw);
            for (g, r) in gdc.iter().zip(&dc) {
                assert_eq!(g.is_some(), r.is_some());
                if let (Some(g), Some(r)) = (g, r) {
                    same("mixed dcandidate", g, r);
                }
            }
        }
    }
    same("sum", &gpu.sum(&x).unwrap(), &cpu.sum(&x).unwrap());

    let logits = Tensor::randn(&[n * h, c + 1], 2.0, seed + 40);
    let noise = hwnas_kernels::cpu::gumbel_noise(logits.shape(), seed + 41);
    let dy = Tensor::randn(logits.shape(), 1.0, seed + 42);
    for (noise, scale, log) in [
        (None, 1.0, false),
        (None, 1.0, true),
        (Some(&noise), 2.5, false),
    ] {
        let y = cpu.softmax(&logits, noise, scale, log).unwrap();
        same(
            "softmax",
            &gpu.softmax(&logits, noise, scale, log).unwrap(),
            &y,
        );
        same(
            "softmax backward",
            &gpu.softmax_backward(&y, &dy, scale, log).unwrap(),
            &cpu.softmax_backward(&y, &dy, scale, log).unwrap(),
        );
    }
    let classes: Vec<usize> = (0..n * h)
        .map(|i| (i * 7 + seed as usize) % (c + 1))
        .collect();
    let row_weights = Tensor::randn(&[n * h], 1.0, seed + 43);
    // The labels from the host, and resident on the device (as a step uploads them once).
    for labels in [
        hwnas_kernels::Labels::on_host(&classes).unwrap(),
        hwnas_kernels::Labels::new(gpu, &classes).unwrap(),
    ] {
        same(
            "cross-entropy",
            &gpu.cross_entropy(&logits, &labels).unwrap(),
            &cpu.cross_entropy(&logits, &labels).unwrap(),
        );
        same(
            "weighted cross-entropy",
            &gpu.weighted_cross_entropy(&logits, &labels, &row_weights)
                .unwrap(),
            &cpu.weighted_cross_entropy(&logits, &labels, &row_weights)
                .unwrap(),
        );
        same(
            "per-sample cross-entropy",
            &gpu.per_sample_cross_entropy(&logits, &labels).unwrap(),
            &cpu.per_sample_cross_entropy(&logits, &labels).unwrap(),
        );
        same(
            "cross-entropy backward",
            &gpu.cross_entropy_backward(&logits, &labels).unwrap(),
            &cpu.cross_entropy_backward(&logits, &labels).unwrap(),
        );
        // Rows with equal maxima too (the last of them counts on both).
        let mut tied = logits.clone();
        for row in tied.data_mut().chunks_mut(c + 1).step_by(2) {
            row.iter_mut().for_each(|v| *v = v.round().min(1.0));
        }
        for l in [&logits, &tied] {
            assert_eq!(
                gpu.correct_count(l, &labels).unwrap().data(),
                cpu.correct_count(l, &labels).unwrap().data(),
                "correct count"
            );
        }
    }
    let other = Tensor::randn(x.shape(), 1.0, seed + 44);
    same(
        "axpby",
        &gpu.axpby(&x, &other, 0.9, -0.3).unwrap(),
        &cpu.axpby(&x, &other, 0.9, -0.3).unwrap(),
    );
    same(
        "full",
        &gpu.full(x.shape(), -1.5).unwrap(),
        &cpu.full(x.shape(), -1.5).unwrap(),
    );
    checked
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn layer_ops_match(n in 1usize..3, c in 1usize..6, h in 1usize..9, w in 1usize..9, seed in 0u64..1000) {
        compare_layer_ops(n, c, h, w, seed);
    }
}

/// Every op of the `Backend` trait, forward and backward, on wgpu against the CPU
/// reference at one fixed odd shape, with the count printed.
#[test]
fn every_backend_op_matches_the_reference_on_wgpu() {
    if wgpu_backend().is_none() {
        return;
    }
    let checked = compare_layer_ops(2, 5, 9, 7, 17);
    println!("{checked} comparisons of layer ops (wgpu vs cpu) at [2, 5, 9, 7]");
    assert!(checked >= 50, "only {checked} comparisons ran");
}

/// The context counts what crosses between host and device, and results stay on the device
/// until read: one matrix product uploads its two operands and its 16-byte parameters (once:
/// a repeated shape reuses them), submits nothing until its result is read, then reads back
/// the result in one submission; a product of a resident result uploads only the new operand.
#[test]
fn traffic_counts_every_transfer() {
    let Some(gpu) = own_gpu() else { return };
    let (a, b) = (
        Tensor::randn(&[3, 5], 1.0, 1),
        Tensor::randn(&[5, 7], 1.0, 2),
    );
    let before = gpu.traffic();
    let c = gpu.matmul(&a, &b).unwrap();
    let spent = gpu.traffic().since(&before);
    assert!(c.is_on_device());
    assert_eq!(spent.uploaded_bytes, (15 + 35) * 4 + 16, "{spent:?}");
    assert_eq!((spent.read_back_bytes, spent.submits), (0, 0), "{spent:?}");
    let values = c.data().to_vec();
    let spent = gpu.traffic().since(&before);
    assert_eq!(spent.read_back_bytes, 21 * 4, "{spent:?}");
    assert_eq!(spent.submits, 1, "{spent:?}");
    // Read once, kept.
    assert_eq!(c.data(), values.as_slice());
    assert_eq!(gpu.traffic().since(&before).read_back_bytes, 21 * 4);

    let before = gpu.traffic();
    let again = gpu.matmul(&a, &b).unwrap();
    assert_eq!(
        gpu.traffic().since(&before).uploaded_bytes,
        (15 + 35) * 4,
        "parameters cached"
    );
    let d = Tensor::randn(&[7, 2], 1.0, 3);
    let before = gpu.traffic();
    let e = gpu.matmul(&again, &d).unwrap();
    let spent = gpu.traffic().since(&before);
    assert_eq!(spent.uploaded_bytes, 14 * 4 + 16, "{spent:?}");
    let reference =
        hwnas_kernels::cpu::matmul(&hwnas_kernels::cpu::matmul(&a, &b).unwrap(), &d).unwrap();
    assert!(
        Tolerance::REORDERED
            .first_mismatch(e.data(), reference.data())
            .is_none()
    );
}

/// A buffer given back by a dropped tensor is reused by the next output of its size.
#[test]
fn dropped_outputs_are_reused() {
    let Some(gpu) = own_gpu() else { return };
    let (a, b) = (
        Tensor::randn(&[33, 17], 1.0, 4),
        Tensor::randn(&[17, 29], 1.0, 5),
    );
    drop(gpu.matmul(&a, &b).unwrap());
    let (created, _) = gpu.pool_stats();
    for _ in 0..5 {
        let c = gpu.matmul(&a, &b).unwrap();
        assert_eq!(c.shape(), [33, 29]);
    }
    assert_eq!(
        gpu.pool_stats().0,
        created,
        "every later product reused the buffer"
    );
    gpu.finish().unwrap();
}

/// The device's SGD update (clipping, momentum, Nesterov, weight decay) matches the host's
/// over three steps, and leaves weights and velocity on the device.
#[test]
fn sgd_on_the_device_matches_the_host() {
    let Some(gpu) = gpu() else { return };
    let shapes = [vec![3, 4], vec![7], vec![2, 3, 3, 3]];
    for (nesterov, max_norm) in [(false, Some(0.5)), (true, None), (false, Some(100.0))] {
        let step = hwnas_kernels::optim::SgdStep {
            learning_rate: 0.1,
            momentum: 0.9,
            nesterov,
            weight_decay: 5e-4,
            max_norm,
        };
        let mut host: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| Tensor::randn(s, 1.0, 40 + i as u64))
            .collect();
        let mut device = host.clone();
        let mut host_v: Vec<Tensor> = host.iter().map(|p| Tensor::zeros(&[p.len()])).collect();
        let mut device_v: Vec<Tensor> = host
            .iter()
            .map(|p| gpu.zeros(&[p.len()]).unwrap())
            .collect();
        for round in 0..3u64 {
            let grads: Vec<Tensor> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| Tensor::randn(s, 2.0, 50 + 10 * round + i as u64))
                .collect();
            hwnas_kernels::optim::sgd_step_on_host(&step, &mut host, &grads, &mut host_v).unwrap();
            gpu.sgd_step(&step, &mut device, &grads, &mut device_v)
                .unwrap();
        }
        for (d, h) in device.iter().zip(&host).chain(device_v.iter().zip(&host_v)) {
            assert!(d.is_on_device());
            assert_eq!(d.shape(), h.shape());
            assert_close("sgd", d, h);
        }
    }
}

/// The backend's convolution with a bias (added on the device) and its three gradients (the
/// bias gradient a per-channel sum on the device), and the transposed backward products of
/// a matrix product, match the CPU.
#[test]
fn backend_bias_and_transposed_products_match() {
    use hwnas_kernels::Backend;
    let Some(gpu) = wgpu_backend() else { return };
    let cpu = hwnas_kernels::Cpu;
    let spec = Conv2dSpec {
        stride: 1,
        padding: 1,
        dilation: 1,
        groups: 1,
    };
    let x = Tensor::randn(&[3, 4, 6, 5], 1.0, 60);
    let weight = Tensor::randn(&[5, 4, 3, 3], 0.3, 61);
    let bias = Tensor::randn(&[5], 1.0, 62);
    let y = cpu.conv2d(&x, &weight, Some(&bias), &spec).unwrap();
    assert_close(
        "conv + bias",
        &gpu.conv2d(&x, &weight, Some(&bias), &spec).unwrap(),
        &y,
    );
    let dy = Tensor::randn(y.shape(), 1.0, 63);
    let (dx, dw, db) = cpu.conv2d_backward(&x, &weight, &dy, &spec).unwrap();
    let (gdx, gdw, gdb) = gpu.conv2d_backward(&x, &weight, &dy, &spec).unwrap();
    assert_close("conv dx", &gdx, &dx);
    assert_close("conv dweight", &gdw, &dw);
    assert_close("conv dbias", &gdb, &db);
    let (a, b) = (
        Tensor::randn(&[7, 5], 1.0, 64),
        Tensor::randn(&[5, 9], 1.0, 65),
    );
    let dc = Tensor::randn(&[7, 9], 1.0, 66);
    let (da, db) = cpu.matmul_backward(&a, &b, &dc).unwrap();
    let (gda, gdb) = gpu.matmul_backward(&a, &b, &dc).unwrap();
    assert_close("matmul da", &gda, &da);
    assert_close("matmul db", &gdb, &db);
}
