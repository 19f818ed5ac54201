//! Every space's networks export to ONNX, load and run in ONNX Runtime, and the folded
//! batch norm computes what the unfolded network computes.

mod common;

use common::onnx_runtime;
use hwnas_core::space::{DartsSpace, Nb201Space, OfaSpace, SearchSpace};
use hwnas_latency::export::{ExportOptions, export_arch};
use hwnas_latency::onnx::RandomWeights;
use hwnas_latency::onnx::builder::encode;
use hwnas_latency::profile::ModelRunner;
use rand::SeedableRng;

fn run(space: &str, arch: &str, fold: bool, optimise: bool) -> (Vec<i64>, Vec<f32>) {
    let options = ExportOptions {
        batch: 1,
        fold_batch_norm: fold,
    };
    let model = export_arch(space, arch, &mut RandomWeights::new(42), options).unwrap();
    let mut runner = ModelRunner::new(&encode(&model), 1, optimise).unwrap();
    let shape = runner.input_shape().to_vec();
    (shape, runner.run().unwrap())
}

/// `|x - y| <= rtol * max|y| + atol` for every element: relative to the output's scale,
/// since random-weight networks reach large activations where float rounding of the two
/// computation orders differs in absolute terms.
fn assert_close(a: &[f32], b: &[f32], rtol: f32, atol: f32) {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let bound = rtol * scale + atol;
        assert!(
            (x - y).abs() <= bound,
            "element {i}: {x} vs {y} (scale {scale})"
        );
    }
}

fn samples(space: &dyn SearchSpace, count: usize) -> Vec<String> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    (0..count)
        .map(|_| space.format(&space.sample(&mut rng)))
        .collect()
}

#[test]
fn nb201_networks_load_run_and_fold_exactly() {
    if !onnx_runtime() {
        return;
    }
    let space = Nb201Space::new();
    let mut archs = samples(&space, 3);
    archs.push("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|".into());
    archs.push("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|".into());
    for arch in archs {
        let (shape, folded) = run("nb201", &arch, true, true);
        assert_eq!(shape, vec![1, 3, 32, 32]);
        assert_eq!(folded.len(), 10, "{arch}");
        assert!(folded.iter().all(|v| v.is_finite()), "{arch}");
        let (_, unfolded) = run("nb201", &arch, false, false);
        assert_close(&folded, &unfolded, 1e-4, 1e-5);
    }
}

#[test]
fn ofa_subnets_load_run_and_fold_exactly() {
    if !onnx_runtime() {
        return;
    }
    let space = OfaSpace::default();
    for arch in samples(&space, 2) {
        let (shape, folded) = run("ofa-mbv3", &arch, true, true);
        assert_eq!(shape[..2], [1, 3]);
        assert_eq!(folded.len(), 1000);
        let (_, unfolded) = run("ofa-mbv3", &arch, false, false);
        assert_close(&folded, &unfolded, 1e-4, 1e-5);
    }
}

#[test]
fn darts_networks_load_run_and_fold_exactly() {
    if !onnx_runtime() {
        return;
    }
    let space = DartsSpace::new();
    let v2 = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";
    let mut archs = samples(&space, 1);
    archs.push(v2.to_string());
    for arch in archs {
        let (_, folded) = run("darts", &arch, true, true);
        assert_eq!(folded.len(), 10);
        assert!(folded.iter().all(|v| v.is_finite()));
        let (_, unfolded) = run("darts", &arch, false, false);
        assert_close(&folded, &unfolded, 1e-4, 1e-5);
    }
}

#[test]
fn bad_architecture_text_is_an_export_error() {
    let error = export_arch(
        "nb201",
        "|conv~0|",
        &mut RandomWeights::new(0),
        ExportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("cannot export"), "{error}");
    let error = export_arch(
        "resnet",
        "x",
        &mut RandomWeights::new(0),
        ExportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("nb201, darts, ofa-mbv3"), "{error}");
}
