//! Seconds per training step of each supernet on the CPU backend and on the WGSL kernels
//! (wgpu: a GPU, or lavapipe on CPU-only machines), measured in one run so the ratios are
//! comparable. A step is forward, backward and the optimiser's update (SGD with momentum and
//! weight decay, gradient clipping), batch 64, Fashion-MNIST-sized inputs (28x28x1), as
//! `../shared/bench/torch_nb201_step.py` times PyTorch. Cases: NAS-Bench-201 reduced (8
//! channels, 1 cell per stage) and full (16 channels, 5 cells), dense (all 5 candidates at
//! 0.2) and one sampled path (every edge a 3x3 convolution); DARTS (4 channels, 3 cells) one
//! sampled path; the Once-for-All supernet (a quarter of w1.2) at its largest subnet. Per
//! step, the bytes a wgpu backend uploaded and read back and its queue submissions (exact
//! counts kept by the context; 0 on the CPU).
//!
//! `cargo run --release -p hwnas-core --example supernet_step_time -- [--json]
//! [--repeats N] [--backends cpu,wgpu] [--cases nb201-reduced,nb201-full,darts,ofa]
//! [--routes dense,sampled,largest]`

use std::time::Instant;

use hwnas_core::images::batches::Batch;
use hwnas_core::oneshot::{SupernetTrainer, WeightSchedule};
use hwnas_core::supernet::{
    DartsSupernet, DartsSupernetConfig, Nb201Supernet, Nb201SupernetConfig, OfaSupernet,
    OfaSupernetConfig, Route, Supernet,
};
use hwnas_kernels::gpu::Traffic;
use hwnas_kernels::{Backend, Cpu, Tensor, Wgpu};

/// One measured case.
struct Case {
    supernet: &'static str,
    size: &'static str,
    route: &'static str,
    net: Supernet,
    routes: Vec<Route>,
}

/// Seconds per step, and per step the host-device traffic a wgpu backend counted.
fn seconds(
    case: &Case,
    backend: &dyn Backend,
    gpu: Option<&Wgpu>,
    batch: &Batch,
    n: usize,
) -> (f64, Traffic) {
    let mut trainer = SupernetTrainer::new(case.net.clone(), WeightSchedule::default());
    // Warm-up: pipelines, caches, the optimiser's state.
    trainer
        .train_weights(backend, batch, &case.routes, 0.0)
        .expect("a step");
    let traffic = || gpu.map(|g| g.context().traffic()).unwrap_or_default();
    let before = traffic();
    let start = Instant::now();
    for _ in 0..n {
        trainer
            .train_weights(backend, batch, &case.routes, 0.0)
            .expect("a step");
    }
    let seconds = start.elapsed().as_secs_f64() / n as f64;
    let spent = traffic().since(&before);
    let per = |v: u64| v / n as u64;
    (
        seconds,
        Traffic {
            uploaded_bytes: per(spent.uploaded_bytes),
            read_back_bytes: per(spent.read_back_bytes),
            submits: per(spent.submits),
        },
    )
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn cases(wanted: &[String]) -> Vec<Case> {
    let mut cases = Vec::new();
    let nb201 = |config| Supernet::Nb201(Nb201Supernet::new(config, 0).expect("valid size"));
    for (key, size, config) in [
        (
            "nb201-reduced",
            "reduced",
            Nb201SupernetConfig::reduced(1, 10),
        ),
        ("nb201-full", "full", Nb201SupernetConfig::full(1, 10)),
    ] {
        if !wanted.iter().any(|w| w == key) {
            continue;
        }
        let net = nb201(config);
        cases.push(Case {
            supernet: "nb201",
            size,
            route: "dense",
            net: net.clone(),
            routes: vec![Route::Dense(vec![0.2; 5]); 6],
        });
        cases.push(Case {
            supernet: "nb201",
            size,
            route: "sampled",
            net,
            routes: vec![Route::one_hot(3, 5); 6],
        });
    }
    if wanted.iter().any(|w| w == "darts") {
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
        let routes = vec![Route::one_hot(4, 8); darts.edges()];
        cases.push(Case {
            supernet: "darts",
            size: "reduced",
            route: "sampled",
            net: darts,
            routes,
        });
    }
    if wanted.iter().any(|w| w == "ofa") {
        cases.push(Case {
            supernet: "ofa",
            size: "reduced",
            route: "largest",
            net: Supernet::Ofa(
                OfaSupernet::new(OfaSupernetConfig::reduced(1, 10), 0).expect("valid size"),
            ),
            routes: OfaSupernet::largest(),
        });
    }
    cases
}

fn main() {
    hwnas_kernels::cpu::allocator::keep_freed_buffers();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let repeats: usize = flag(&args, "--repeats")
        .and_then(|a| a.parse().ok())
        .unwrap_or(3)
        .max(1);
    let list = |name: &str, default: &str| -> Vec<String> {
        flag(&args, name)
            .unwrap_or_else(|| default.to_string())
            .split(',')
            .map(str::to_string)
            .collect()
    };
    let backends = list("--backends", "cpu,wgpu");
    let wanted = list("--cases", "nb201-reduced,nb201-full,darts,ofa");
    let routes = list("--routes", "dense,sampled,largest");
    let batch = Batch {
        images: Tensor::randn(&[64, 1, 28, 28], 1.0, 0),
        labels: (0..64).map(|i| i % 10).collect(),
    };
    let gpu = if backends.iter().any(|b| b == "wgpu") {
        match Wgpu::new() {
            Ok(gpu) => Some(gpu),
            Err(e) => {
                eprintln!("no wgpu adapter ({e}): CPU only");
                None
            }
        }
    } else {
        None
    };
    let mut rows = Vec::new();
    if !json {
        println!(
            "| supernet | size | route | backend | adapter | seconds per step | uploaded bytes | read-back bytes | submits |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
    }
    for case in cases(&wanted)
        .into_iter()
        .filter(|c| routes.iter().any(|r| r == c.route))
    {
        let mut run = |backend: &dyn Backend, wgpu: Option<&Wgpu>, name: &str, adapter: String| {
            let (s, t) = seconds(&case, backend, wgpu, &batch, repeats);
            if !json {
                println!(
                    "| {} | {} | {} | {name} | {adapter} | {s:.4} | {} | {} | {} |",
                    case.supernet,
                    case.size,
                    case.route,
                    t.uploaded_bytes,
                    t.read_back_bytes,
                    t.submits
                );
            }
            rows.push(serde_json::json!({
                "supernet": case.supernet,
                "size": case.size,
                "route": case.route,
                "backend": name,
                "adapter": adapter,
                "seconds_per_step": s,
                "uploaded_bytes_per_step": t.uploaded_bytes,
                "read_back_bytes_per_step": t.read_back_bytes,
                "submits_per_step": t.submits,
            }));
        };
        if backends.iter().any(|b| b == "cpu") {
            run(&Cpu, None, "cpu", "host".into());
        }
        if let Some(gpu) = &gpu {
            run(gpu, Some(gpu), "wgpu", gpu.name());
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
    }
}
