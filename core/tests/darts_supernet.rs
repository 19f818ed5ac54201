//! The DARTS supernet: route-weight gradients against finite differences, a one-hot sparse
//! step equal to the fixed genotype's, DARTS's discretisation recovering the genotype its
//! routes select, a clear refusal of odd feature maps, and a one-shot search that resumes
//! bit for bit.

mod common;

use common::two_class_images;

use hwnas_core::images::batches::{Augmentation, Batch, Normalisation};
use hwnas_core::oneshot::{
    ArchSchedule, OneShotConfig, OneShotData, OneShotRun, SupernetTrainer, WeightSchedule, by_name,
};
use hwnas_core::space::{Arch, DartsSpace, SearchSpace};
use hwnas_core::supernet::darts::{CANDIDATES, CELL_EDGES, EDGES};
use hwnas_core::supernet::{
    BnMode, DartsSupernet, DartsSupernetConfig, Route, StepOutput, StepRequest, Supernet,
};
use hwnas_kernels::{Cpu, Tensor};
use rand::{Rng, SeedableRng};

fn net() -> DartsSupernet {
    DartsSupernet::new(
        DartsSupernetConfig {
            in_channels: 1,
            channels: 2,
            cells: 3,
            classes: 3,
        },
        5,
    )
    .unwrap()
}

fn batch(side: usize) -> Batch {
    Batch {
        images: Tensor::randn(&[8, 1, side, side], 1.0, 9),
        labels: vec![0, 1, 2, 1, 2, 0, 0, 1],
    }
}

fn step(net: &DartsSupernet, batch: &Batch, routes: &[Route]) -> StepOutput {
    net.step(
        &Cpu,
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

fn random_weights(seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..EDGES)
        .map(|_| {
            (0..CANDIDATES)
                .map(|_| rng.random_range(0.05f32..0.3))
                .collect()
        })
        .collect()
}

#[test]
fn dense_route_gradients_match_finite_differences() {
    let (net, batch) = (net(), batch(16));
    let weights = random_weights(1);
    let routes = |w: &[Vec<f32>]| -> Vec<Route> { w.iter().cloned().map(Route::Dense).collect() };
    let out = step(&net, &batch, &routes(&weights));
    assert!(out.loss.is_finite());
    assert_eq!(out.route_grads.len(), EDGES);
    assert_eq!(out.weight_grads.len(), net.params.len());
    // Every candidate of every edge of both cells receives a gradient but `none`'s.
    for (e, g) in out.route_grads.iter().enumerate() {
        assert!(g[1..].iter().all(|v| *v != 0.0), "edge {e}: {g:?}");
    }
    // (edge, candidate): separable convs of the normal cell, a max pool of a reduction
    // edge, a dilated conv on the last node, a factorized-reduce skip, a plain skip. Max
    // pools and ReLUs make the loss piecewise smooth, hence the small step and the
    // absolute allowance.
    for (edge, op) in [
        (0, 4),
        (9, 4),
        (CELL_EDGES + 2, 1),
        (13, 7),
        (CELL_EDGES, 3),
        (0, 3),
    ] {
        let eps = 5e-4;
        let mut up = weights.clone();
        up[edge][op] += eps;
        let mut down = weights.clone();
        down[edge][op] -= eps;
        let numeric = (step(&net, &batch, &routes(&up)).loss
            - step(&net, &batch, &routes(&down)).loss)
            / (2.0 * eps);
        let analytic = out.route_grads[edge][op];
        assert!(
            (numeric - analytic).abs() <= 0.05 * analytic.abs() + 0.02,
            "edge {edge} op {op}: analytic {analytic} vs numeric {numeric}"
        );
    }
}

/// A genotype with no `none` operation (the ones DARTS's discretisation can return).
fn genotype(seed: u64) -> Arch {
    let space = DartsSpace::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut arch = space.sample(&mut rng);
    for (i, choice) in arch.0.iter_mut().enumerate() {
        if i % 3 != 0 && *choice == 0 {
            *choice = rng.random_range(1..CANDIDATES as u8);
        }
    }
    arch
}

#[test]
fn a_one_hot_sparse_step_is_the_fixed_genotype_and_holds_less_than_a_dense_one() {
    let (net, batch) = (net(), batch(8));
    let arch = DartsSpace::new()
        .parse(
            "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), \
             ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), \
             ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), \
             ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), \
             ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])",
        )
        .unwrap();
    let fixed_routes = DartsSupernet::fixed_routes(&arch);
    let chosen: Vec<Option<usize>> = fixed_routes
        .iter()
        .map(|r| match r {
            Route::Fixed(0) => None,
            Route::Fixed(op) => Some(*op),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(chosen.iter().flatten().count(), 16, "two edges per node");
    let sparse_routes: Vec<Route> = chosen
        .iter()
        .map(|op| Route::one_hot(op.unwrap_or(0), CANDIDATES))
        .collect();
    let fixed = step(&net, &batch, &fixed_routes);
    let sparse = step(&net, &batch, &sparse_routes);
    let dense = step(
        &net,
        &batch,
        &vec![Route::Dense(vec![0.125; CANDIDATES]); EDGES],
    );
    assert!(
        (sparse.loss - fixed.loss).abs() < 1e-6,
        "{} vs {}",
        sparse.loss,
        fixed.loss
    );
    for (g, op) in sparse.route_grads.iter().zip(&chosen) {
        let op = op.unwrap_or(0);
        assert!(g.iter().enumerate().all(|(k, v)| k == op || *v == 0.0));
    }
    assert!(
        sparse.tape_bytes * 3 < dense.tape_bytes,
        "sparse {} vs dense {}",
        sparse.tape_bytes,
        dense.tape_bytes
    );
}

#[test]
fn discretising_the_routes_of_a_genotype_returns_it() {
    let space = DartsSpace::new();
    for seed in 0..50 {
        let arch = genotype(seed);
        let weights: Vec<Vec<f32>> = DartsSupernet::fixed_routes(&arch)
            .iter()
            .map(|r| match r {
                Route::Fixed(op) => {
                    let mut w = vec![0.01; CANDIDATES];
                    w[*op] = if *op == 0 { 0.9 } else { 0.5 };
                    w
                }
                other => panic!("{other:?}"),
            })
            .collect();
        let derived = DartsSupernet::derive(&weights).unwrap();
        assert_eq!(space.format(&derived), space.format(&arch), "seed {seed}");
    }
    // `none` never wins an edge, and the two strongest inputs of a node are kept.
    let mut weights = vec![vec![0.1; CANDIDATES]; EDGES];
    weights[0][0] = 0.99; // input 0 of node 0: `none` dominates, its best real op is weak
    weights[1][5] = 0.6; // input 1 of node 0: sep_conv_5x5
    weights[0][2] = 0.3; // input 0 of node 0: avg_pool_3x3
    let text = space.format(&DartsSupernet::derive(&weights).unwrap());
    assert!(
        text.starts_with("Genotype(normal=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1)"),
        "{text}"
    );
    assert!(DartsSupernet::derive(&weights[..3]).is_err());
}

#[test]
fn odd_feature_maps_at_a_reduction_are_refused_with_the_fix() {
    let net = net();
    let err = net
        .step(
            &Cpu,
            &batch(7),
            &StepRequest {
                routes: &vec![Route::one_hot(3, CANDIDATES); EDGES],
                bn: BnMode::Batch,
                weight_grads: false,
                route_grads: false,
                sample_weights: None,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("7x7") && err.contains("even"), "{err}");
    let err = DartsSupernet::new(
        DartsSupernetConfig {
            in_channels: 1,
            channels: 3,
            cells: 3,
            classes: 3,
        },
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("even"), "{err}");
}

#[test]
fn a_darts_space_search_runs_and_resumes_bit_for_bit() {
    let train = two_class_images(24, 8, 0.1, 1);
    let data = OneShotData {
        normalisation: Normalisation::of(&train),
        valid: two_class_images(24, 8, 0.1, 2),
        eval: two_class_images(8, 8, 0.1, 3),
        train,
        augmentation: Augmentation::standard(8),
    };
    let config = OneShotConfig {
        epochs: 1,
        batch_size: 8,
        seed: 3,
        eval_every: 2,
        recalibration_batches: 1,
        warmup_share: 0.0,
        finetune_share: 0.0,
    };
    let trainer = || {
        let mut net = net();
        net.config.classes = 2;
        let net = DartsSupernet::new(net.config, 5).unwrap();
        SupernetTrainer::new(Supernet::Darts(net), WeightSchedule::default())
    };
    let kind = hwnas_core::supernet::SupernetKind::Darts;
    for name in ["darts", "gdas", "advantagenas"] {
        let strategy = || by_name(name, kind, ArchSchedule::default(), None, None).unwrap();
        let mut straight = OneShotRun::new(trainer(), strategy());
        let mut archs = Vec::new();
        straight
            .run(&Cpu, &data, &config, None, None, &mut |t| {
                archs.push(t.arch.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(straight.step, 3);
        let space = DartsSpace::new();
        let last = archs.last().unwrap();
        space.validate(last).unwrap();
        assert!(space.format(last).starts_with("Genotype(normal=["));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.bin");
        let mut first = OneShotRun::new(trainer(), strategy());
        first
            .run(&Cpu, &data, &config, Some(&path), Some(1), &mut |_| Ok(()))
            .unwrap();
        let mut resumed = OneShotRun::resume(&path, strategy()).unwrap();
        resumed
            .run(&Cpu, &data, &config, None, None, &mut |_| Ok(()))
            .unwrap();
        assert_eq!(resumed.trainer.net, straight.trainer.net, "{name}");
        assert_eq!(
            resumed.strategy.logits().alpha,
            straight.strategy.logits().alpha,
            "{name}"
        );
    }
}

#[test]
fn a_fixed_genotype_learns_with_inherited_weights() {
    let set = two_class_images(64, 8, 0.1, 4);
    let norm = Normalisation::of(&set);
    let mut net = net();
    net.config.classes = 2;
    let net = DartsSupernet::new(net.config, 2).unwrap();
    let mut trainer = SupernetTrainer::new(
        Supernet::Darts(net),
        WeightSchedule {
            initial_lr: 0.05,
            ..WeightSchedule::default()
        },
    );
    let arch = genotype(11);
    let routes = DartsSupernet::fixed_routes(&arch);
    let mut losses = Vec::new();
    for step in 0..40 {
        let idx: Vec<usize> = (0..16).map(|i| (step * 16 + i) % 64).collect();
        let batch = set.batch(&idx, &norm);
        let out = trainer
            .train_weights(&Cpu, &batch, &routes, step as f32 / 40.0)
            .unwrap();
        losses.push(out.loss);
    }
    let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let last: f32 = losses[35..].iter().sum::<f32>() / 5.0;
    assert!(last < 0.3 && last < first / 2.0, "{first} -> {last}");
    let eval = [set.batch(&(0..64).collect::<Vec<_>>(), &norm)];
    let (accuracy, _) = trainer.evaluate(&Cpu, &arch, &eval[..1], &eval).unwrap();
    assert!(accuracy > 90.0, "{accuracy}%");
}
