//! NAS-Bench-201 and Once-for-All subnets exported with the weights they inherit from a
//! supernet load in ONNX Runtime and compute what the supernet computes for them
//! (inference mode, after batch-norm recalibration).

mod common;

use common::onnx_runtime;
use hwnas_core::images::batches::Batch;
use hwnas_core::kernels::{Cpu, Tensor};
use hwnas_core::oneshot::{SupernetTrainer, WeightSchedule};
use hwnas_core::space::{Nb201Space, OfaSpace, SearchSpace};
use hwnas_core::supernet::{
    BnMode, Nb201Supernet, Nb201SupernetConfig, OfaSupernet, OfaSupernetConfig, Route, StepRequest,
    Supernet,
};
use hwnas_latency::export::ExportOptions;
use hwnas_latency::export::inherited::{nb201_inherited, ofa_inherited};
use hwnas_latency::onnx::builder::encode;
use hwnas_latency::onnx::normalise::prepend_normalisation;
use hwnas_latency::profile::ModelRunner;

fn batch_of(n: usize, side: usize, seed: u64) -> Batch {
    Batch {
        images: Tensor::randn(&[n, 1, side, side], 1.0, seed),
        labels: (0..n).map(|i| i % 3).collect(),
    }
}

fn batch(n: usize, seed: u64) -> Batch {
    batch_of(n, 8, seed)
}

/// The supernet's logits for `routes` in inference mode with `stats`.
fn supernet_logits(
    net: &Supernet,
    batch: &Batch,
    routes: &[Route],
    stats: &hwnas_core::supernet::BnStats,
) -> Tensor {
    net.step(
        &Cpu,
        batch,
        &StepRequest {
            routes,
            bn: BnMode::Fixed(stats),
            weight_grads: false,
            route_grads: false,
            sample_weights: None,
        },
    )
    .unwrap()
    .logits
}

/// Runs `model` in ONNX Runtime on `batch` (folded models with graph optimisations) and
/// checks its output against `expected`.
fn assert_runs_like(model: &[u8], batch: &Batch, fold: bool, expected: &Tensor, what: &str) {
    let mut runner = ModelRunner::new(model, 1, fold).unwrap();
    assert_eq!(
        runner.input_shape(),
        batch
            .images
            .shape()
            .iter()
            .map(|&d| d as i64)
            .collect::<Vec<_>>()
    );
    runner.set_input(batch.images.data().to_vec()).unwrap();
    let got = runner.run().unwrap();
    assert_eq!(got.len(), expected.len());
    let scale = expected.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (a, b) in got.iter().zip(expected.data()) {
        assert!(
            (a - b).abs() <= 1e-4 * scale + 1e-5,
            "{what} (fold {fold}): {a} vs {b}"
        );
    }
}

#[test]
fn an_inherited_nb201_subnet_matches_the_supernet_in_onnx_runtime() {
    if !onnx_runtime() {
        return;
    }
    let net = Nb201Supernet::new(
        Nb201SupernetConfig {
            in_channels: 1,
            channels: 4,
            cells: 2,
            classes: 3,
        },
        7,
    )
    .unwrap();
    let mut trainer = SupernetTrainer::new(Supernet::Nb201(net), WeightSchedule::default());
    // A few training steps, so the weights are not the initial ones.
    let space = Nb201Space::new();
    let train = batch(16, 1);
    for i in 0..3u8 {
        let routes = vec![hwnas_core::supernet::Route::Fixed(usize::from(i) + 2); 6];
        trainer.train_weights(&Cpu, &train, &routes, 0.0).unwrap();
    }
    let eval = batch(4, 2);
    for text in [
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
        "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|",
        "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|",
    ] {
        let arch = space.parse(text).unwrap();
        let stats = trainer
            .recalibrate(&Cpu, &arch, &[batch(16, 3), batch(16, 4)])
            .unwrap();
        let routes = Nb201Supernet::fixed_routes(&arch);
        let expected = supernet_logits(&trainer.net, &eval, &routes, &stats);
        let Supernet::Nb201(net) = &trainer.net else {
            unreachable!()
        };
        for fold in [false, true] {
            let options = ExportOptions {
                batch: 4,
                fold_batch_norm: fold,
            };
            let model = nb201_inherited(net, &stats, &arch, 8, options).unwrap();
            assert_runs_like(&encode(&model), &eval, fold, &expected, text);
            // With its input normalisation inside, the model takes the images before it:
            // raw x with (x - 0.3) / 0.5 = the batch above answers as the batch did.
            let inside = prepend_normalisation(model, &[0.3], &[0.5]).unwrap();
            let raw = Batch {
                images: Tensor::new(
                    eval.images.shape(),
                    eval.images.data().iter().map(|v| v * 0.5 + 0.3).collect(),
                )
                .unwrap(),
                labels: eval.labels.clone(),
            };
            assert_runs_like(&encode(&inside), &raw, fold, &expected, text);
        }
    }
    // Statistics of another subnet do not fit: the export says so.
    let arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|").unwrap();
    let other = space
        .parse("|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|")
        .unwrap();
    let stats = trainer.recalibrate(&Cpu, &other, &[batch(16, 3)]).unwrap();
    let Supernet::Nb201(net) = &trainer.net else {
        unreachable!()
    };
    let err = nb201_inherited(net, &stats, &arch, 8, ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("recalibrate"), "{err}");
}

#[test]
fn an_inherited_ofa_subnet_matches_the_supernet_in_onnx_runtime() {
    if !onnx_runtime() {
        return;
    }
    let mut config = OfaSupernetConfig::reduced(1, 3);
    config.stem = 4;
    for (s, w) in config.stages.iter_mut().zip([4, 4, 8, 8, 8]) {
        s.width = w;
    }
    config.final_expand = 16;
    config.feature_mix = 12;
    let net = OfaSupernet::new(config, 5).unwrap();
    let mut trainer = SupernetTrainer::new(Supernet::Ofa(net), WeightSchedule::default());
    let train = batch_of(16, 16, 1);
    for routes in [OfaSupernet::largest(), OfaSupernet::smallest()] {
        trainer.train_weights(&Cpu, &train, &routes, 0.0).unwrap();
    }
    let space = OfaSpace::new(vec![16]).unwrap();
    let eval = batch_of(3, 16, 2);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
    let mut archs = vec![
        space.canonical(&hwnas_core::space::Arch(vec![0; 46])),
        hwnas_core::space::Arch([vec![2; 45], vec![0]].concat()),
    ];
    archs.extend((0..3).map(|_| space.sample(&mut rng)));
    for arch in archs {
        let subnet = space.config(&arch);
        let stats = trainer
            .recalibrate(&Cpu, &arch, &[batch_of(16, 16, 3), batch_of(16, 16, 4)])
            .unwrap();
        let routes = OfaSupernet::fixed_routes(&arch);
        let expected = supernet_logits(&trainer.net, &eval, &routes, &stats);
        let Supernet::Ofa(net) = &trainer.net else {
            unreachable!()
        };
        let what = space.format(&arch);
        for fold in [false, true] {
            let options = ExportOptions {
                batch: 3,
                fold_batch_norm: fold,
            };
            let model = ofa_inherited(net, &stats, &subnet, options).unwrap();
            assert_runs_like(&encode(&model), &eval, fold, &expected, &what);
        }
    }
}
