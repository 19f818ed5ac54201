//! Peak tape memory and time of one training step of the NAS-Bench-201 supernet: every
//! candidate weighted (DARTS) against one sampled path (GDAS, AdvantageNAS), at the
//! benchmark's size (16 channels, 5 cells per stage) on 32x32 inputs, batch 64.
//!
//! `cargo run --release -p hwnas-core --example supernet_memory`

use std::time::Instant;

use hwnas_core::images::batches::Batch;
use hwnas_core::supernet::nb201::CANDIDATES;
use hwnas_core::supernet::{BnMode, Nb201Supernet, Nb201SupernetConfig, Route, StepRequest};
use hwnas_kernels::{Cpu, Tensor};
use rand::{Rng, SeedableRng};

fn main() {
    let batch = Batch {
        images: Tensor::randn(&[64, 3, 32, 32], 1.0, 0),
        labels: (0..64).map(|i| i % 10).collect(),
    };
    let net = Nb201Supernet::new(Nb201SupernetConfig::full(3, 10), 0).expect("valid size");
    let step = |routes: &[Route]| {
        let t = Instant::now();
        let out = net
            .step(
                &Cpu,
                &batch,
                &StepRequest {
                    routes,
                    bn: BnMode::Batch,
                    weight_grads: true,
                    route_grads: true,
                    sample_weights: None,
                },
            )
            .expect("a step");
        (
            out.tape_bytes as f64 / (1 << 20) as f64,
            t.elapsed().as_secs_f64(),
        )
    };
    let (dense, dense_s) = step(&vec![Route::Dense(vec![0.2; CANDIDATES]); 6]);
    println!("full mixed op (all 5 candidates): {dense:.0} MiB, {dense_s:.2} s");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let samples = 20;
    let (mut total, mut total_s, mut worst) = (0.0, 0.0, 0.0f64);
    for _ in 0..samples {
        let routes: Vec<Route> = (0..6)
            .map(|_| Route::one_hot(rng.random_range(0..CANDIDATES), CANDIDATES))
            .collect();
        let (mib, s) = step(&routes);
        total += mib;
        total_s += s;
        worst = worst.max(mib);
    }
    let mean = total / samples as f64;
    println!(
        "one sampled path, mean of {samples} uniform samples: {mean:.0} MiB (ratio {:.3}), worst {worst:.0} MiB (ratio {:.3}), {:.2} s",
        mean / dense,
        worst / dense,
        total_s / samples as f64
    );
    let (all_conv, _) = step(&vec![Route::one_hot(3, CANDIDATES); 6]);
    println!(
        "one path, every edge conv3x3 (the largest path): {all_conv:.0} MiB (ratio {:.3})",
        all_conv / dense
    );
}
