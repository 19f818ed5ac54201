//! Seconds per training step of each supernet at the CLI's default (reduced) size on the
//! CPU reference and on the WGSL kernels (wgpu: a GPU, or lavapipe on CPU-only machines),
//! measured in one run so the ratio is comparable: NAS-Bench-201 (8 channels, 1 cell per
//! stage) dense and one sampled path, DARTS (4 channels, 3 cells) one sampled path, and
//! the Once-for-All supernet (a quarter of w1.2) at its largest subnet; Fashion-MNIST-sized
//! inputs (28x28x1), batch 64, forward + backward.
//!
//! `cargo run --release -p hwnas-core --example supernet_step_time [REPEATS]`

use std::time::Instant;

use hwnas_core::images::batches::Batch;
use hwnas_core::supernet::{
    BnMode, DartsSupernet, DartsSupernetConfig, Nb201Supernet, Nb201SupernetConfig, OfaSupernet,
    OfaSupernetConfig, Route, StepRequest, Supernet,
};
use hwnas_kernels::{Backend, Cpu, Tensor, Wgpu};

fn seconds(
    net: &Supernet,
    backend: &dyn Backend,
    batch: &Batch,
    routes: &[Route],
    n: usize,
) -> f64 {
    let request = StepRequest {
        routes,
        bn: BnMode::Batch,
        weight_grads: true,
        route_grads: true,
    };
    net.step(backend, batch, &request).expect("a step"); // warm-up (pipelines, caches)
    let start = Instant::now();
    for _ in 0..n {
        net.step(backend, batch, &request).expect("a step");
    }
    start.elapsed().as_secs_f64() / n as f64
}

fn main() {
    let repeats: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let batch = Batch {
        images: Tensor::randn(&[64, 1, 28, 28], 1.0, 0),
        labels: (0..64).map(|i| i % 10).collect(),
    };
    let nb201 = Supernet::Nb201(
        Nb201Supernet::new(Nb201SupernetConfig::reduced(1, 10), 0).expect("valid size"),
    );
    let darts = Supernet::Darts(
        DartsSupernet::new(
            DartsSupernetConfig {
                in_channels: 1,
                channels: 4,
                cells: 3,
                classes: 10,
            },
            0,
        )
        .expect("valid size"),
    );
    let ofa =
        Supernet::Ofa(OfaSupernet::new(OfaSupernetConfig::reduced(1, 10), 0).expect("valid size"));
    let cases: Vec<(&str, &Supernet, Vec<Route>)> = vec![
        (
            "NAS-Bench-201, dense (all 5 candidates)",
            &nb201,
            vec![Route::Dense(vec![0.2; 5]); 6],
        ),
        (
            "NAS-Bench-201, one sampled path (3x3 convs)",
            &nb201,
            vec![Route::one_hot(3, 5); 6],
        ),
        (
            "DARTS, one sampled path (sep conv 3x3)",
            &darts,
            vec![Route::one_hot(4, 8); darts.edges()],
        ),
        ("Once-for-All, largest subnet", &ofa, OfaSupernet::largest()),
    ];
    let gpu = match Wgpu::new() {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            println!("no wgpu adapter ({e}): CPU only");
            None
        }
    };
    if let Some(gpu) = &gpu {
        println!("wgpu: {}", gpu.name());
    }
    println!("| supernet step | cpu | wgpu | wgpu / cpu |");
    println!("|---|---|---|---|");
    for (what, net, routes) in cases {
        let cpu = seconds(net, &Cpu, &batch, &routes, repeats);
        match &gpu {
            Some(gpu) => {
                let wgpu = seconds(net, gpu, &batch, &routes, repeats);
                println!("| {what} | {cpu:.3} s | {wgpu:.3} s | {:.1}x |", wgpu / cpu);
            }
            None => println!("| {what} | {cpu:.3} s | - | - |"),
        }
    }
}
