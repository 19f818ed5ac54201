//! A NAS-Bench-201 subnet exported with the weights it inherits from a supernet loads in
//! ONNX Runtime and computes what the supernet computes for it (inference mode, after
//! batch-norm recalibration).

use hwnas_core::images::batches::Batch;
use hwnas_core::kernels::{Cpu, Tensor};
use hwnas_core::oneshot::{SupernetTrainer, WeightSchedule};
use hwnas_core::space::{Nb201Space, SearchSpace};
use hwnas_core::supernet::{BnMode, Nb201Supernet, Nb201SupernetConfig, StepRequest, Supernet};
use hwnas_latency::export::ExportOptions;
use hwnas_latency::export::inherited::nb201_inherited;
use hwnas_latency::onnx::builder::encode;
use hwnas_latency::profile::ModelRunner;

fn batch(n: usize, seed: u64) -> Batch {
    Batch {
        images: Tensor::randn(&[n, 1, 8, 8], 1.0, seed),
        labels: (0..n).map(|i| i % 3).collect(),
    }
}

#[test]
fn an_inherited_nb201_subnet_matches_the_supernet_in_onnx_runtime() {
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
        let Supernet::Nb201(net) = &trainer.net else {
            unreachable!()
        };
        let routes = Nb201Supernet::fixed_routes(&arch);
        let expected = net
            .step(
                &Cpu,
                &eval,
                &StepRequest {
                    routes: &routes,
                    bn: BnMode::Fixed(&stats),
                    weight_grads: false,
                    route_grads: false,
                },
            )
            .unwrap()
            .logits;
        for fold in [false, true] {
            let options = ExportOptions {
                batch: 4,
                fold_batch_norm: fold,
            };
            let model = nb201_inherited(net, &stats, &arch, 8, options).unwrap();
            let mut runner = ModelRunner::new(&encode(&model), 1, fold).unwrap();
            assert_eq!(runner.input_shape(), &[4, 1, 8, 8]);
            runner.set_input(eval.images.data().to_vec()).unwrap();
            let got = runner.run().unwrap();
            assert_eq!(got.len(), expected.len());
            let scale = expected.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (a, b) in got.iter().zip(expected.data()) {
                assert!(
                    (a - b).abs() <= 1e-4 * scale + 1e-5,
                    "{text} (fold {fold}): {a} vs {b}"
                );
            }
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
