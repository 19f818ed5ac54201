//! What a training step moves between host and device on the wgpu backend, for every
//! supernet: after a warm-up step (pipelines, the optimiser's state, parameter blocks), a
//! step uploads at most its batch (images and labels) plus 4 KiB, reads back at most 4 KiB
//! and submits at most 4 times — whatever the GPU, since the counts are the backend's, not
//! the driver's. Checked on lavapipe on CPU-only machines; skipped, with the reason on
//! standard error, where wgpu finds no adapter (a failure under `HWNAS_REQUIRE=gpu`).

use hwnas_core::images::batches::Batch;
use hwnas_core::oneshot::{SupernetTrainer, WeightSchedule};
use hwnas_core::supernet::{
    DartsSupernet, DartsSupernetConfig, Nb201Supernet, Nb201SupernetConfig, OfaSupernet,
    OfaSupernetConfig, Route, Supernet,
};
use hwnas_kernels::gpu::Traffic;
use hwnas_kernels::{Backend, Tensor, Wgpu};

const SLACK: u64 = 4096;
const MAX_SUBMITS: u64 = 4;

fn wgpu() -> Option<Wgpu> {
    let backend =
        hwnas_testkit::require(hwnas_testkit::Resource::Gpu, "a wgpu adapter", Wgpu::new())?;
    println!("wgpu backend: {}", backend.name());
    Some(backend)
}

fn batch(seed: u64) -> Batch {
    Batch {
        images: Tensor::randn(&[8, 1, 28, 28], 1.0, seed),
        labels: (0..8).map(|i| (i * 3 + seed as usize) % 10).collect(),
    }
}

/// The bytes a batch is made of: its images and one 4-byte label per image.
fn batch_bytes(batch: &Batch) -> u64 {
    (batch.images.len() * 4 + batch.labels.len() * 4) as u64
}

fn assert_within(what: &str, spent: Traffic, batch: &Batch) {
    println!("{what}: {spent:?}");
    let allowed = batch_bytes(batch) + SLACK;
    assert!(
        spent.uploaded_bytes <= allowed,
        "{what}: uploaded {} bytes, more than the batch's {} plus {SLACK}",
        spent.uploaded_bytes,
        batch_bytes(batch)
    );
    assert!(
        spent.read_back_bytes <= SLACK,
        "{what}: read back {} bytes, more than {SLACK}",
        spent.read_back_bytes
    );
    assert!(
        spent.submits <= MAX_SUBMITS,
        "{what}: {} submits, more than {MAX_SUBMITS}",
        spent.submits
    );
}

/// Trains `net` through `routes` for a warm-up step and two measured ones (the learning
/// rate moving, as in a search), and checks each measured step's traffic; then a probe with
/// the route gradients (an architecture step) where the routes are weighted.
fn check(what: &str, net: Supernet, routes: &[Route], gpu: &Wgpu) {
    let mut trainer = SupernetTrainer::new(net, WeightSchedule::default());
    trainer
        .train_weights(gpu, &batch(1), routes, 0.0)
        .expect("a step");
    for (step, progress) in [(2u64, 0.3f32), (3, 0.6)] {
        let batch = batch(step);
        let before = gpu.context().traffic();
        let out = trainer
            .train_weights(gpu, &batch, routes, progress)
            .expect("a step");
        assert!(out.loss.is_finite(), "{what}: loss {}", out.loss);
        assert!(out.correct <= batch.labels.len());
        assert_eq!(out.sample_losses.len(), batch.labels.len());
        assert_within(
            &format!("{what}, step {step}"),
            gpu.context().traffic().since(&before),
            &batch,
        );
    }
    if routes.iter().any(|r| !matches!(r, Route::Fixed(_))) {
        let batch = batch(4);
        let before = gpu.context().traffic();
        let out = trainer.probe(gpu, &batch, routes, true).expect("a probe");
        assert!(out.route_grads.iter().flatten().any(|g| *g != 0.0));
        assert_within(
            &format!("{what}, architecture probe"),
            gpu.context().traffic().since(&before),
            &batch,
        );
    }
    // What stayed on the device is still readable: the running statistics, read back.
    assert!(!trainer.bn.is_empty(), "{what}: no running statistics");
    for name in trainer.bn.names() {
        let (mean, var) = trainer.bn.get(name).expect("a layer");
        assert!(
            mean.iter().all(|m| m.is_finite()) && var.iter().all(|v| *v >= 0.0),
            "{what}: {name}'s running statistics {mean:?} / {var:?}"
        );
    }
}

#[test]
fn a_training_step_moves_only_its_batch_and_a_few_kilobytes() {
    let Some(gpu) = wgpu() else {
        return;
    };
    let nb201 =
        || Supernet::Nb201(Nb201Supernet::new(Nb201SupernetConfig::reduced(1, 10), 0).unwrap());
    check(
        "nb201 dense",
        nb201(),
        &vec![Route::Dense(vec![0.2; 5]); 6],
        &gpu,
    );
    check(
        "nb201 sampled",
        nb201(),
        &vec![Route::one_hot(3, 5); 6],
        &gpu,
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
        .unwrap(),
    );
    let routes = vec![Route::one_hot(4, 8); darts.edges()];
    check("darts sampled", darts, &routes, &gpu);
    let ofa = Supernet::Ofa(OfaSupernet::new(OfaSupernetConfig::reduced(1, 10), 0).unwrap());
    check("ofa largest", ofa, &OfaSupernet::largest(), &gpu);
}
