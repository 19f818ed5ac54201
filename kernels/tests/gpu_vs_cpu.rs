//! The WGSL kernels against the CPU reference, on proptest-generated shapes, on whatever
//! adapter wgpu finds (lavapipe on CPU-only machines); skipped, with the reason printed,
//! only where no adapter exists at all.

use std::sync::OnceLock;

use hwnas_kernels::gpu::GpuContext;
use hwnas_kernels::{Activation, Conv2dSpec, Tensor, Tolerance, cpu};
use proptest::prelude::*;

fn gpu() -> Option<&'static GpuContext> {
    static GPU: OnceLock<Option<GpuContext>> = OnceLock::new();
    GPU.get_or_init(|| match GpuContext::new() {
        Ok(gpu) => {
            println!(
                "wgpu adapter: {} ({})",
                gpu.adapter().name,
                gpu.adapter().backend
            );
            Some(gpu)
        }
        Err(e) => {
            println!("skipped: {e}");
            None
        }
    })
    .as_ref()
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
    fn matmul_matches(m in 1usize..40, k in 1usize..40, n in 1usize..40, seed in 0u64..1000) {
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
fn a_depthwise_stride_2_convolution_matches() {
    let Some(gpu) = gpu() else { return };
    let spec = Conv2dSpec {
        stride: 2,
        padding: 2,
        dilation: 1,
        groups: 24,
    };
    let x = Tensor::randn(&[2, 24, 17, 17], 1.0, 1);
    let w = Tensor::randn(&[24, 1, 5, 5], 0.5, 2);
    assert_close(
        "depthwise",
        &gpu.conv2d(&x, &w, &spec).unwrap(),
        &cpu::conv2d(&x, &w, None, &spec).unwrap(),
    );
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
    let spec = Conv2dSpec {
        stride: 2,
        padding: 1,
        dilation: 1,
        groups: 1,
    };
    let x = Tensor::randn(&[3, 16, 15, 15], 1.0, 3);
    let w = Tensor::randn(&[24, 16, 3, 3], 0.3, 4);
    assert!(GpuContext::conv_is_tiled(
        [3, 16, 15, 15, 24, 3, 8, 8],
        &spec
    ));
    let y = cpu::conv2d(&x, &w, None, &spec).unwrap();
    assert_close("conv2d", &gpu.conv2d(&x, &w, &spec).unwrap(), &y);
    let dy = Tensor::randn(y.shape(), 1.0, 5);
    let (dx, dw) = gpu.conv2d_backward(&x, &w, &dy, &spec).unwrap();
    let (cdx, cdw, _) = cpu::conv2d_backward(&x, &w, &dy, &spec).unwrap();
    assert_close("conv2d dx", &dx, &cdx);
    assert_close("conv2d dw", &dw, &cdw);
}
