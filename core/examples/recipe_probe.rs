//! Trains one fixed NAS-Bench-201 cell alone for STEPS steps with or without augmentation
//! and prints its held-out accuracy: a probe of the training recipe's pieces.
//!
//! `cargo run --release -p hwnas-core --example recipe_probe -- STEPS AUGMENT(0|1) [ARCH]`

use hwnas_core::images::ImageSet;
use hwnas_core::images::batches::{Augmentation, Normalisation};
use hwnas_core::oneshot::{SupernetTrainer, WeightSchedule};
use hwnas_core::space::{Nb201Space, SearchSpace};
use hwnas_core::supernet::{Nb201Supernet, Nb201SupernetConfig};
use hwnas_kernels::Cpu;

fn main() {
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let augment = args.next().is_none_or(|a| a != "0");
    let arch_text = args.next().unwrap_or_else(|| {
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_1x1~2|".into()
    });
    let all = ImageSet::fashion_mnist_train(None).expect("Fashion-MNIST");
    let (train, eval) = all.split(all.len() - 1000, 0);
    let norm = Normalisation::of(&train);
    let arch = Nb201Space::new().parse(&arch_text).expect("a cell");
    let net = Nb201Supernet::new(Nb201SupernetConfig::reduced(1, 10), 0).expect("size");
    let mut trainer = SupernetTrainer::new(
        hwnas_core::supernet::Supernet::Nb201(net),
        WeightSchedule::nas_bench_201(),
    );
    let routes = Nb201Supernet::fixed_routes(&arch);
    let aug = if augment {
        Augmentation::standard(28)
    } else {
        Augmentation {
            crop_padding: 0,
            flip: false,
        }
    };
    let started = std::time::Instant::now();
    let mut done = 0;
    let mut epoch = 0;
    while done < steps {
        for batch in train.epoch_batches(64, 0, epoch, &norm, aug) {
            if done >= steps {
                break;
            }
            trainer
                .train_weights(&Cpu, &batch, &routes, done as f32 / steps as f32)
                .expect("a step");
            done += 1;
        }
        epoch += 1;
    }
    let recal: Vec<_> = (0..16)
        .map(|i| train.batch(&(i * 64..(i + 1) * 64).collect::<Vec<_>>(), &norm))
        .collect();
    let evals: Vec<_> = (0..eval.len())
        .collect::<Vec<_>>()
        .chunks(64)
        .map(|idx| eval.batch(idx, &norm))
        .collect();
    let (acc, loss) = trainer.evaluate(&Cpu, &arch, &recal, &evals).expect("eval");
    println!(
        "steps {steps} augment {augment}: held out {acc:.1}% loss {loss:.3} ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
}
