//! Trains one fixed NAS-Bench-201 cell on the reduced supernet for a few hundred steps and
//! prints the loss: a check that the supernet's weights learn on their own.
//!
//! `cargo run --release -p hwnas-core --example fixed_training -- [STEPS] [LR]`

use hwnas_core::images::ImageSet;
use hwnas_core::images::batches::{Augmentation, Normalisation};
use hwnas_core::oneshot::{SupernetTrainer, WeightSchedule};
use hwnas_core::space::{Nb201Space, SearchSpace};
use hwnas_core::supernet::{Nb201Supernet, Nb201SupernetConfig};
use hwnas_kernels::Cpu;

fn main() {
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let lr: f32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.025);
    let set = ImageSet::fashion_mnist_train(None).expect("Fashion-MNIST");
    let norm = Normalisation::of(&set);
    let arch = Nb201Space::new()
        .parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
        .expect("a cell");
    let net = Nb201Supernet::new(Nb201SupernetConfig::reduced(1, 10), 0).expect("size");
    let schedule = WeightSchedule {
        initial_lr: lr,
        ..WeightSchedule::default()
    };
    let mut trainer = SupernetTrainer::new(hwnas_core::supernet::Supernet::Nb201(net), schedule);
    let routes = Nb201Supernet::fixed_routes(&arch);
    let mut losses = Vec::new();
    for (i, batch) in set
        .epoch_batches(64, 0, 0, &norm, Augmentation::standard(28))
        .take(steps)
        .enumerate()
    {
        let out = trainer
            .train_weights(&Cpu, &batch, &routes, i as f32 / steps as f32)
            .expect("a step");
        losses.push(out.loss);
        if (i + 1) % 25 == 0 {
            let mean = losses.iter().sum::<f32>() / losses.len() as f32;
            println!("step {}: mean training loss {mean:.3}", i + 1);
            losses.clear();
        }
    }
}
