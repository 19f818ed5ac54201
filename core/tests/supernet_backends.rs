//! The supernets on the WGSL kernels: one training step of each supernet (NAS-Bench-201
//! dense and sparse, DARTS sparse, Once-for-All's sampled subnet) on the wgpu backend gives
//! the CPU reference's loss, route gradients and weight gradients, and UNAS's paired probe its
//! losses and route gradients. Skipped, with the reason
//! on standard error, where wgpu finds no adapter (lavapipe serves CPU-only machines), and
//! failed instead under `HWNAS_REQUIRE=gpu`.

mod common;

use hwnas_core::images::batches::Batch;
use hwnas_core::oneshot::{SupernetTrainer, WeightSchedule};
use hwnas_core::supernet::{
    BnMode, DartsSupernet, DartsSupernetConfig, Nb201Supernet, Nb201SupernetConfig, OfaSupernet,
    Route, StepOutput, StepRequest, Supernet,
};
use hwnas_kernels::{Backend, Cpu, Tensor, Wgpu};

fn wgpu() -> Option<Wgpu> {
    let backend =
        hwnas_testkit::require(hwnas_testkit::Resource::Gpu, "a wgpu adapter", Wgpu::new())?;
    println!("wgpu backend: {}", backend.name());
    Some(backend)
}

fn step(net: &Supernet, backend: &dyn Backend, batch: &Batch, routes: &[Route]) -> StepOutput {
    net.step(
        backend,
        batch,
        &StepRequest {
            routes,
            bn: BnMode::Batch,
            weight_grads: true,
            route_grads: true,
            sample_weights: None,
        },
    )
    .unwrap()
}

/// `|a - b| <= 2e-3 max|b| + floor`: relative to the tensor's own scale, with a floor for
/// gradients that are zero but for rounding (a shift ahead of batch norm cancels).
fn assert_close(what: &str, a: &[f32], b: &[f32], floor: f32) {
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 2e-3 * scale + floor,
            "{what}[{i}]: wgpu {x} vs cpu {y} (scale {scale})"
        );
    }
}

fn assert_same_step(what: &str, net: &Supernet, gpu: &Wgpu, batch: &Batch, routes: &[Route]) {
    let cpu = step(net, &Cpu, batch, routes);
    let wgpu = step(net, gpu, batch, routes);
    assert!(
        (cpu.loss - wgpu.loss).abs() <= 1e-3 * cpu.loss.abs(),
        "{what}: loss {} vs {}",
        wgpu.loss,
        cpu.loss
    );
    assert_close(
        &format!("{what} logits"),
        wgpu.logits.data(),
        cpu.logits.data(),
        1e-5,
    );
    let flat = |g: &[Vec<f32>]| g.concat();
    assert_close(
        &format!("{what} route gradients"),
        &flat(&wgpu.route_grads),
        &flat(&cpu.route_grads),
        1e-5,
    );
    // The floor: 2e-4 of the largest weight gradient anywhere in the network.
    let largest = cpu
        .weight_grads
        .iter()
        .flat_map(|g| g.data())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    for (name, (a, b)) in net
        .params()
        .names()
        .iter()
        .zip(wgpu.weight_grads.iter().zip(&cpu.weight_grads))
    {
        assert_close(
            &format!("{what} d/d{name}"),
            a.data(),
            b.data(),
            2e-4 * largest,
        );
    }
}

fn batch(side: usize) -> Batch {
    Batch {
        images: Tensor::randn(&[4, 1, side, side], 1.0, 11),
        labels: vec![0, 1, 2, 1],
    }
}

#[test]
fn every_supernet_steps_on_the_wgsl_kernels_as_on_the_cpu() {
    let Some(gpu) = wgpu() else {
        return;
    };
    let nb201 = Supernet::Nb201(
        Nb201Supernet::new(
            Nb201SupernetConfig {
                in_channels: 1,
                channels: 4,
                cells: 1,
                classes: 3,
            },
            1,
        )
        .unwrap(),
    );
    let dense: Vec<Route> = (0..6)
        .map(|e| Route::Dense(vec![0.1, 0.15, 0.2, 0.25 + e as f32 * 0.01, 0.3]))
        .collect();
    assert_same_step("nb201 dense", &nb201, &gpu, &batch(8), &dense);
    let sparse: Vec<Route> = (0..6).map(|e| Route::one_hot(e % 5, 5)).collect();
    assert_same_step("nb201 sparse", &nb201, &gpu, &batch(8), &sparse);

    let darts = Supernet::Darts(
        DartsSupernet::new(
            DartsSupernetConfig {
                in_channels: 1,
                channels: 2,
                cells: 3,
                classes: 3,
            },
            2,
        )
        .unwrap(),
    );
    let routes: Vec<Route> = (0..darts.edges())
        .map(|e| Route::one_hot(1 + e % 7, 8))
        .collect();
    assert_same_step("darts sparse", &darts, &gpu, &batch(8), &routes);

    let ofa = Supernet::Ofa(OfaSupernet::new(common::narrow_ofa(3), 3).unwrap());
    let mixed: Vec<Route> = (0..ofa.edges()).map(|e| Route::Fixed(e % 3)).collect();
    assert_same_step("ofa subnet", &ofa, &gpu, &batch(16), &mixed);
}

/// The running batch-norm statistics, which the wgpu backend keeps and updates on the
/// device, follow the host's: Once-for-All's largest subnet, then an elastic one whose
/// narrower layers update only the first channels of the widest statistics.
#[test]
fn running_statistics_on_the_device_follow_the_host() {
    let Some(gpu) = wgpu() else {
        return;
    };
    let net = Supernet::Ofa(OfaSupernet::new(common::narrow_ofa(3), 3).unwrap());
    let narrower: Vec<Route> = (0..net.edges()).map(|e| Route::Fixed(e % 3)).collect();
    let routes = [OfaSupernet::largest(), narrower];
    let train = |backend: &dyn Backend| {
        let mut trainer = SupernetTrainer::new(net.clone(), WeightSchedule::default());
        for (i, r) in routes.iter().enumerate() {
            trainer
                .train_weights(backend, &batch(16), r, i as f32 * 0.5)
                .unwrap();
        }
        trainer.bn
    };
    let (cpu, wgpu) = (train(&Cpu), train(&gpu));
    assert!(cpu.len() > 10, "{} layers", cpu.len());
    // The second subnet is narrower somewhere: some of its layers update part of a layer.
    let probe = SupernetTrainer::new(net.clone(), WeightSchedule::default())
        .probe(&Cpu, &batch(16), &routes[1], false)
        .unwrap();
    assert!(
        probe
            .batch_stats
            .iter()
            .any(|(name, mean, _)| mean.len() < cpu.get(name).unwrap().0.len()),
        "no narrower layer"
    );
    assert_eq!(
        cpu.names().collect::<Vec<_>>(),
        wgpu.names().collect::<Vec<_>>()
    );
    for name in cpu.names() {
        let ((cm, cv), (gm, gv)) = (cpu.get(name).unwrap(), wgpu.get(name).unwrap());
        assert_close(&format!("{name} running mean"), gm, cm, 1e-4);
        assert_close(&format!("{name} running variance"), gv, cv, 1e-4);
    }
}

/// UNAS's paired probe (two forward passes, one readback of both batches' losses, two
/// weighted backward passes) on the WGSL kernels gives the CPU's losses and route gradients.
#[test]
fn the_paired_weighted_probe_runs_on_the_wgsl_kernels_as_on_the_cpu() {
    let Some(gpu) = wgpu() else {
        return;
    };
    let net = Nb201Supernet::new(
        Nb201SupernetConfig {
            in_channels: 1,
            channels: 4,
            cells: 1,
            classes: 3,
        },
        1,
    )
    .unwrap();
    let trainer = SupernetTrainer::new(Supernet::Nb201(net), WeightSchedule::default());
    let routes: Vec<Route> = (0..6)
        .map(|e| Route::Dense(vec![0.1, 0.15, 0.2, 0.25 + e as f32 * 0.01, 0.3]))
        .collect();
    let first = batch(8);
    let second = Batch {
        images: Tensor::randn(&[4, 1, 8, 8], 1.0, 12),
        labels: vec![2, 0, 1, 1],
    };
    let weigh = |a: &[f32], b: &[f32]| -> (Vec<f32>, Vec<f32>) {
        a.iter()
            .zip(b)
            .map(|(a, b)| if a > b { (1.5, -0.5) } else { (0.5, 0.5) })
            .unzip()
    };
    let (ca, cb) = trainer
        .probe_paired_weighted(&Cpu, (&first, &second), &routes, weigh)
        .unwrap();
    let (ga, gb) = trainer
        .probe_paired_weighted(&gpu, (&first, &second), &routes, weigh)
        .unwrap();
    for (what, cpu, wgpu) in [("first", &ca, &ga), ("second", &cb, &gb)] {
        assert_close(
            &format!("{what} sample losses"),
            &wgpu.sample_losses,
            &cpu.sample_losses,
            1e-5,
        );
        assert_close(
            &format!("{what} route gradients"),
            &wgpu.route_grads.concat(),
            &cpu.route_grads.concat(),
            1e-5,
        );
    }
}
