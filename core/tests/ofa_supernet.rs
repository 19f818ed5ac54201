//! The Once-for-All supernet: a subnet's gradient lands only in the weights it inherits
//! (the centre of the 7x7 kernels, the first channels, the first blocks of a stage), a
//! cropped and sliced weight's gradient matches finite differences, discretisation gives
//! the space's canonical architecture, mixed routes are refused, and sandwich training
//! makes the smallest and the largest subnet learn, resuming bit for bit.

mod common;

use common::{narrow_ofa, two_class_images};

use hwnas_core::images::batches::{Augmentation, Batch, Normalisation};
use hwnas_core::oneshot::{
    OneShotConfig, OneShotData, OneShotRun, SandwichSampling, SupernetEvaluator, SupernetTrainer,
    WeightSchedule,
};
use hwnas_core::space::{OfaSpace, SearchSpace};
use hwnas_core::supernet::ofa::{CANDIDATES, EDGES};
use hwnas_core::supernet::{BnMode, OfaSupernet, Route, StepOutput, StepRequest, Supernet};
use hwnas_core::{Evaluator, space::ofa::BLOCKS};
use hwnas_kernels::{Cpu, Tensor};
use rand::SeedableRng;

/// A narrow supernet (stem 4, stages 4/4/8/8/8) for 16x16 one-channel images.
fn net() -> OfaSupernet {
    OfaSupernet::new(narrow_ofa(3), 3).unwrap()
}

fn batch() -> Batch {
    Batch {
        images: Tensor::randn(&[6, 1, 16, 16], 1.0, 4),
        labels: vec![0, 1, 2, 2, 1, 0],
    }
}

fn step(net: &OfaSupernet, batch: &Batch, routes: &[Route]) -> StepOutput {
    net.step(
        &Cpu,
        batch,
        &StepRequest {
            routes,
            bn: BnMode::Batch,
            weight_grads: true,
            route_grads: false,
            sample_weights: None,
        },
    )
    .unwrap()
}

/// The gradient of parameter `name`, as `[rows][rest]`.
fn grad<'a>(net: &OfaSupernet, out: &'a StepOutput, name: &str) -> &'a Tensor {
    &out.weight_grads[net.params.position(name).unwrap()]
}

#[test]
fn a_subnet_trains_only_the_weights_it_inherits() {
    let (net, batch) = (net(), batch());
    // Block 0: kernel 3, expand 3; stage 0 at depth 2; every other decision the largest.
    let mut routes = OfaSupernet::largest();
    routes[0] = Route::Fixed(0);
    routes[BLOCKS] = Route::Fixed(0);
    routes[2 * BLOCKS] = Route::Fixed(0);
    let out = step(&net, &batch, &routes);
    assert!(out.loss.is_finite());
    let cin = net.config.block_input(0);
    let mid = 3 * cin;
    // The depthwise kernel [6 cin, 1, 7, 7]: only the centre 3x3 of the first 3 cin rows.
    let depth = grad(&net, &out, "b0.depth");
    let mut inside = 0.0f32;
    for (i, g) in depth.data().iter().enumerate() {
        let (row, y, x) = (i / 49, (i % 49) / 7, i % 7);
        let used = row < mid && (2..5).contains(&y) && (2..5).contains(&x);
        if used {
            inside += g.abs();
        } else {
            assert_eq!(
                *g, 0.0,
                "b0.depth row {row} tap ({y}, {x}) is outside the subnet"
            );
        }
    }
    assert!(inside > 0.0, "the subnet's own taps learn");
    // The expand conv's outputs and the projection's inputs: the first `mid` channels.
    let expand = grad(&net, &out, "b0.expand");
    for (i, g) in expand.data().iter().enumerate() {
        assert!(i / cin < mid || *g == 0.0, "b0.expand row {}", i / cin);
    }
    let point = grad(&net, &out, "b0.point");
    let width = 6 * cin;
    for (i, g) in point.data().iter().enumerate() {
        assert!(
            i % width < mid || *g == 0.0,
            "b0.point column {}",
            i % width
        );
    }
    assert!(point.data().iter().any(|g| *g != 0.0));
    // Stage 0 runs two blocks: blocks 2 and 3 take no gradient; stage 1's four do.
    for name in ["b2.expand", "b3.depth", "b3.point"] {
        assert!(
            grad(&net, &out, name).data().iter().all(|g| *g == 0.0),
            "{name}"
        );
    }
    for name in ["b4.depth", "b7.depth", "b1.depth"] {
        assert!(
            grad(&net, &out, name).data().iter().any(|g| *g != 0.0),
            "{name}"
        );
    }
    // The largest subnet trains the corners of every kernel.
    let full = step(&net, &batch, &OfaSupernet::largest());
    let corner = grad(&net, &full, "b3.depth").data()[0];
    assert_ne!(corner, 0.0);
}

#[test]
fn a_cropped_and_sliced_weight_gradient_matches_finite_differences() {
    let (net, batch) = (net(), batch());
    // Block 5 (stage 1, squeeze-excite): kernel 5, expand 4.
    let mut routes = OfaSupernet::largest();
    routes[5] = Route::Fixed(1);
    routes[BLOCKS + 5] = Route::Fixed(1);
    let out = step(&net, &batch, &routes);
    for (name, index) in [
        ("b5.depth", 7 + 7 + 2),   // row 0, tap (2, 2): inside the 5x5 centre
        ("b5.depth", 49 * 3 + 24), // row 3, the centre tap
        ("b5.expand", 1),
        ("b5.se.reduce", 2),
        ("b5.point", 3),
    ] {
        let position = net.params.position(name).unwrap();
        let analytic = out.weight_grads[position].data()[index];
        let eps = 2e-3;
        let loss_at = |delta: f32| {
            let mut moved = net.clone();
            let mut tensors = moved.params.tensors();
            let mut data = tensors[position].data().to_vec();
            data[index] += delta;
            tensors[position] = Tensor::new(tensors[position].shape(), data).unwrap();
            moved.params.set_all(tensors);
            step(&moved, &batch, &routes).loss
        };
        let numeric = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps);
        assert!(
            (numeric - analytic).abs() <= 0.05 * analytic.abs() + 2e-3,
            "{name}[{index}]: analytic {analytic} vs numeric {numeric}"
        );
    }
}

#[test]
fn discretisation_gives_the_canonical_architecture_and_mixed_routes_are_refused() {
    let space = OfaSpace::new(vec![224]).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    for _ in 0..50 {
        let arch = space.sample(&mut rng);
        let one_hot: Vec<Vec<f32>> = OfaSupernet::fixed_routes(&arch)
            .iter()
            .map(|r| {
                let Route::Fixed(k) = r else { unreachable!() };
                let mut w = vec![0.1; CANDIDATES];
                w[*k] = 0.9;
                w
            })
            .collect();
        assert_eq!(one_hot.len(), EDGES);
        let derived = OfaSupernet::derive(&one_hot).unwrap();
        assert_eq!(derived, space.canonical(&arch));
        space.validate(&derived).unwrap();
    }
    let (net, batch) = (net(), batch());
    let mut routes = OfaSupernet::largest();
    routes[3] = Route::Sparse(vec![0.0, 1.0, 0.0]);
    let err = net
        .step(
            &Cpu,
            &batch,
            &StepRequest {
                routes: &routes,
                bn: BnMode::Batch,
                weight_grads: false,
                route_grads: false,
                sample_weights: None,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("one sampled subnet per step"), "{err}");
}

fn data() -> OneShotData {
    let train = two_class_images(192, 16, 0.3, 1);
    OneShotData {
        normalisation: Normalisation::of(&train),
        augmentation: Augmentation::NONE,
        valid: train.clone(),
        train,
        eval: two_class_images(96, 16, 0.3, 2),
    }
}

#[test]
fn sandwich_training_teaches_the_smallest_and_largest_subnets_and_resumes_bit_for_bit() {
    let data = data();
    let config = OneShotConfig {
        epochs: 12,
        batch_size: 32,
        seed: 1,
        eval_every: 1000,
        recalibration_batches: 2,
        warmup_share: 0.0,
        finetune_share: 0.0,
    };
    let schedule = WeightSchedule {
        initial_lr: 0.1,
        ..WeightSchedule::default()
    };
    let fresh = || {
        let mut c = net().config;
        c.classes = 2;
        let trainer =
            SupernetTrainer::new(Supernet::Ofa(OfaSupernet::new(c, 3).unwrap()), schedule);
        OneShotRun::new(trainer, Box::new(SandwichSampling::new(EDGES, CANDIDATES)))
    };
    let mut whole = fresh();
    whole
        .run(&Cpu, &data, &config, None, None, &mut |_| Ok(()))
        .unwrap();
    let dir = std::env::temp_dir().join(format!("hwnas-ofa-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("checkpoint.bin");
    let mut first = fresh();
    first
        .run(
            &Cpu,
            &data,
            &config,
            Some(&checkpoint),
            Some(9),
            &mut |_| Ok(()),
        )
        .unwrap();
    assert_eq!(first.step, 9);
    let mut resumed = OneShotRun::resume(
        &checkpoint,
        Box::new(SandwichSampling::new(EDGES, CANDIDATES)),
    )
    .unwrap();
    resumed
        .run(&Cpu, &data, &config, Some(&checkpoint), None, &mut |_| {
            Ok(())
        })
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(resumed.step, whole.step);
    assert_eq!(
        resumed.trainer.net.params().tensors(),
        whole.trainer.net.params().tensors(),
        "a resumed run continues bit for bit"
    );

    let space = OfaSpace::new(vec![224]).unwrap();
    let evaluator = SupernetEvaluator::new(whole.trainer, Box::new(Cpu), &data, &config);
    let smallest = space.canonical(&hwnas_core::space::Arch(vec![0; EDGES + 1]));
    let largest = hwnas_core::space::Arch(
        std::iter::repeat_n(2, EDGES)
            .chain([0])
            .collect::<Vec<u8>>(),
    );
    let scores: Vec<f64> = [&smallest, &largest]
        .map(|arch| evaluator.evaluate(arch).unwrap().accuracy)
        .to_vec();
    assert!(
        scores.iter().all(|a| *a > 90.0),
        "smallest and largest subnets: {scores:?}% held out"
    );
}
