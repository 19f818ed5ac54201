//! One-shot search on generated images: a stopped search resumed from its checkpoint
//! continues bit for bit on the CPU backend (every strategy); sparse steps hold less than
//! dense ones; an additive latency table is recovered by its fit.

use hwnas_core::LatencyModel;
use hwnas_core::images::ImageSet;
use hwnas_core::images::batches::{Augmentation, Normalisation};
use hwnas_core::oneshot::{
    AdditiveLatency, ArchSchedule, LatencyPenalty, NAMES, OneShotConfig, OneShotData, OneShotRun,
    SupernetTrainer, WeightSchedule, by_name,
};
use hwnas_core::space::{Arch, Nb201Space, SearchSpace};
use hwnas_core::supernet::{
    BnMode, Nb201Supernet, Nb201SupernetConfig, Route, StepRequest, Supernet, SupernetKind,
};
use hwnas_kernels::Cpu;
use rand::{Rng, SeedableRng};

/// Two classes of 8x8 images: a bright left half or a bright right half, with noise.
fn images(n: usize, seed: u64) -> ImageSet {
    let noise = hwnas_kernels::Tensor::randn(&[n * 64], 0.1, seed);
    let mut data = Vec::with_capacity(n * 64);
    let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
    for (i, &label) in labels.iter().enumerate() {
        for y in 0..8 {
            for x in 0..8 {
                let bright = (x < 4) == (label == 0);
                let _ = y;
                data.push(f32::from(u8::from(bright)) * 0.8 + noise.data()[i * 64 + y * 8 + x]);
            }
        }
    }
    ImageSet {
        images: data,
        labels,
        shape: [n, 1, 8, 8],
    }
}

fn data() -> OneShotData {
    let train = images(32, 1);
    OneShotData {
        normalisation: Normalisation::of(&train),
        valid: images(32, 2),
        eval: images(16, 3),
        train,
        augmentation: Augmentation::standard(8),
    }
}

fn config() -> OneShotConfig {
    OneShotConfig {
        epochs: 2,
        batch_size: 8,
        seed: 7,
        eval_every: 3,
        recalibration_batches: 2,
        warmup_share: 0.0,
        finetune_share: 0.0,
    }
}

/// An additive latency model, to test the fit and to give UNAS a table.
struct Additive(AdditiveLatency);

impl LatencyModel for Additive {
    fn name(&self) -> String {
        "additive".into()
    }

    fn latency_ms(&self, arch: &Arch) -> hwnas_core::Result<f64> {
        Ok(self.0.arch_ms(arch))
    }
}

fn table() -> AdditiveLatency {
    AdditiveLatency {
        base: 1.0,
        cost: (0..6)
            .map(|e| vec![0.0, 0.01, 0.2 + 0.01 * e as f64, 0.9, 0.1])
            .collect(),
    }
}

fn strategy(name: &str) -> Box<dyn hwnas_core::oneshot::OneShotStrategy> {
    let latency = LatencyPenalty {
        table: table(),
        model: None,
        target_ms: 2.5,
        weight: 0.1,
        ramp: 0.25,
    };
    by_name(
        name,
        SupernetKind::Nb201,
        ArchSchedule::default(),
        Some(latency),
        Some(1 << 30),
    )
    .unwrap()
}

fn trainer() -> SupernetTrainer {
    let net = Nb201Supernet::new(
        Nb201SupernetConfig {
            in_channels: 1,
            channels: 4,
            cells: 1,
            classes: 2,
        },
        3,
    )
    .unwrap();
    SupernetTrainer::new(Supernet::Nb201(net), WeightSchedule::default())
}

#[test]
fn a_stopped_search_resumes_bit_for_bit() {
    let data = data();
    // Stopped in the architecture phase, resumed through the fine-tuning (from step 6).
    let config = OneShotConfig {
        warmup_share: 0.2,
        finetune_share: 0.25,
        ..config()
    };
    for name in NAMES {
        let mut straight = OneShotRun::new(trainer(), strategy(name));
        let mut traces = Vec::new();
        straight
            .run(&Cpu, &data, &config, None, None, &mut |t| {
                traces.push(t.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(straight.step, 8, "{name}: 2 epochs of 4 steps");
        assert_eq!(traces.len(), 3, "{name}: traces at 3, 6 and 8");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.bin");
        let mut first = OneShotRun::new(trainer(), strategy(name));
        first
            .run(&Cpu, &data, &config, Some(&path), Some(5), &mut |_| Ok(()))
            .unwrap();
        assert_eq!(first.step, 5);
        drop(first);
        let mut resumed = OneShotRun::resume(&path, strategy(name)).unwrap();
        assert_eq!(resumed.step, 5);
        let mut resumed_traces = Vec::new();
        resumed
            .run(&Cpu, &data, &config, Some(&path), None, &mut |t| {
                resumed_traces.push(t.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(
            resumed.trainer.net, straight.trainer.net,
            "{name}: weights differ after resuming"
        );
        assert_eq!(
            resumed.trainer.bn, straight.trainer.bn,
            "{name}: batch norm"
        );
        assert_eq!(
            resumed.strategy.logits().alpha,
            straight.strategy.logits().alpha,
            "{name}: architecture logits differ after resuming"
        );
        let last = |t: &[hwnas_core::oneshot::Trace]| {
            let t = t.last().unwrap();
            (t.arch.clone(), t.eval_accuracy, t.eval_loss)
        };
        assert_eq!(last(&resumed_traces), last(&traces), "{name}");
        // The weights moved, and a wrong strategy or a damaged file is refused.
        assert_ne!(
            straight.trainer.net,
            trainer().net,
            "{name}: nothing trained"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.bin");
    OneShotRun::new(trainer(), strategy("gdas"))
        .save(&path)
        .unwrap();
    let err = OneShotRun::resume(&path, strategy("darts"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("gdas"), "{err}");
    std::fs::write(&path, b"hwnasck1garbage").unwrap();
    assert!(OneShotRun::resume(&path, strategy("gdas")).is_err());
}

/// UNAS's paired probe (both forward passes, then each weighted backward pass) returns
/// what a plain probe followed by a weighted one returns, and hands its closure the images'
/// losses; weights of the wrong length are refused with the batch named.
#[test]
fn a_paired_weighted_probe_equals_a_probe_then_a_weighted_probe() {
    let trainer = trainer();
    let set = images(16, 5);
    let norm = Normalisation::of(&set);
    let first = set.batch(&(0..8).collect::<Vec<_>>(), &norm);
    let second = set.batch(&(8..16).collect::<Vec<_>>(), &norm);
    let routes = vec![Route::Dense(vec![0.1, 0.3, 0.2, 0.25, 0.15]); 6];
    let weigh = |a: &[f32], b: &[f32]| -> (Vec<f32>, Vec<f32>) {
        a.iter()
            .zip(b)
            .map(|(a, b)| if a > b { (1.5, -0.5) } else { (0.5, 0.5) })
            .unzip()
    };
    let ta = trainer.probe(&Cpu, &first, &routes, false).unwrap();
    let tb = trainer.probe(&Cpu, &second, &routes, false).unwrap();
    let (wa, wb) = weigh(&ta.sample_losses, &tb.sample_losses);
    assert!(
        wa.contains(&1.5) && wa.contains(&0.5),
        "both signs of the gap: {wa:?}"
    );
    let ga = trainer.probe_weighted(&Cpu, &first, &routes, &wa).unwrap();
    let gb = trainer.probe_weighted(&Cpu, &second, &routes, &wb).unwrap();
    let mut seen = Vec::new();
    let (pa, pb) = trainer
        .probe_paired_weighted(&Cpu, (&first, &second), &routes, |a, b| {
            seen = vec![a.to_vec(), b.to_vec()];
            weigh(a, b)
        })
        .unwrap();
    assert_eq!(
        seen,
        vec![ta.sample_losses.clone(), tb.sample_losses.clone()]
    );
    for (paired, separate) in [(&pa, &ga), (&pb, &gb)] {
        assert_eq!(paired.loss, separate.loss);
        assert_eq!(paired.sample_losses, separate.sample_losses);
        assert_eq!(paired.route_grads, separate.route_grads);
        assert!(paired.route_grads.iter().flatten().any(|g| *g != 0.0));
    }
    let err = trainer
        .probe_paired_weighted(&Cpu, (&first, &second), &routes, |a, _| {
            (vec![1.0; a.len()], vec![1.0; 3])
        })
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("3 weights for the second batch's 8 images"),
        "{err}"
    );
}

#[test]
fn sparse_steps_hold_less_than_dense_ones_and_agree_with_fixed_routes() {
    let net = trainer().net;
    let set = images(8, 4);
    let norm = Normalisation::of(&set);
    let batch = set.batch(&(0..8).collect::<Vec<_>>(), &norm);
    let run = |routes: &[Route]| {
        net.step(
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
        .unwrap()
    };
    let dense = run(&vec![Route::Dense(vec![0.2; 5]); 6]);
    let sparse = run(&vec![Route::one_hot(3, 5); 6]);
    let fixed = run(&vec![Route::Fixed(3); 6]);
    assert!(
        sparse.tape_bytes < dense.tape_bytes * 3 / 4,
        "{} vs {}",
        sparse.tape_bytes,
        dense.tape_bytes
    );
    // At NAS-Bench-201's depth (5 cells per stage), uniformly sampled paths hold at most a
    // quarter of the dense step on average (the one-hot output shares its path's values).
    let deep = Nb201Supernet::new(
        Nb201SupernetConfig {
            in_channels: 1,
            channels: 4,
            cells: 5,
            classes: 2,
        },
        3,
    )
    .unwrap();
    let bytes = |routes: &[Route]| {
        let request = StepRequest {
            routes,
            bn: BnMode::Batch,
            weight_grads: true,
            route_grads: true,
            sample_weights: None,
        };
        deep.step(&Cpu, &batch, &request).unwrap().tape_bytes as f64
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let samples = 20;
    let mean = (0..samples)
        .map(|_| {
            let routes: Vec<Route> = (0..6)
                .map(|_| Route::one_hot(rng.random_range(0..5), 5))
                .collect();
            bytes(&routes)
        })
        .sum::<f64>()
        / samples as f64;
    let ratio = mean / bytes(&vec![Route::Dense(vec![0.2; 5]); 6]);
    assert!(
        ratio <= 0.25,
        "sampled paths hold {ratio:.3} of the dense step"
    );
    // A one-hot sparse route computes exactly the fixed subnet.
    assert!((sparse.loss - fixed.loss).abs() < 1e-6);
    // Only the sampled candidate's weight gets a gradient.
    for g in &sparse.route_grads {
        assert!(g.iter().enumerate().all(|(k, v)| k == 3 || *v == 0.0));
        assert!(g[3] != 0.0);
    }
}

#[test]
fn the_additive_latency_fit_recovers_an_additive_table() {
    let truth = Additive(table());
    let space = Nb201Space::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let archs: Vec<Arch> = (0..300).map(|_| space.sample(&mut rng)).collect();
    let samples: Vec<(Vec<usize>, f64)> = archs
        .iter()
        .map(|a| {
            (
                SupernetKind::Nb201.edge_choices(a),
                truth.latency_ms(a).unwrap(),
            )
        })
        .collect();
    let per_edge: Vec<usize> = (0..6).collect();
    let fitted = Additive(AdditiveLatency::fit(&samples, 5, &per_edge).unwrap());
    for arch in archs.iter().take(50) {
        let one_hot: Vec<Vec<f32>> = arch
            .0
            .iter()
            .map(|&k| (0..5).map(|i| f32::from(i == usize::from(k))).collect())
            .collect();
        assert!((truth.0.weighted_ms(&one_hot) - truth.0.arch_ms(arch)).abs() < 1e-9);
        let (a, b) = (
            truth.latency_ms(arch).unwrap(),
            fitted.latency_ms(arch).unwrap(),
        );
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

/// Edges that share costs share a group; a shared fit of a table whose costs depend on the
/// group only recovers it from fewer samples than unknowns per edge; a malformed sample is
/// refused by name.
#[test]
fn edge_groups_share_costs_and_a_grouped_fit_recovers_a_shared_table() {
    assert_eq!(SupernetKind::Nb201.edge_groups(), vec![0; 6]);
    let darts = SupernetKind::Darts.edge_groups();
    assert_eq!(darts.len(), 28);
    for (group, count) in [(0, 8), (1, 6), (2, 8), (3, 6)] {
        assert_eq!(
            darts.iter().filter(|&&g| g == group).count(),
            count,
            "{darts:?}"
        );
    }
    // node 0 reads inputs 0 and 1 (edges 0, 1); node 1 reads 0, 1 and node 0 (edges 2-4).
    assert_eq!(&darts[..5], &[0, 0, 0, 0, 1]);
    let per_op = [0.0, 0.3, 0.5, 0.05, 1.2];
    let truth = AdditiveLatency {
        base: 2.0,
        cost: (0..6).map(|_| per_op.to_vec()).collect(),
    };
    let space = Nb201Space::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let samples: Vec<(Vec<usize>, f64)> = (0..12)
        .map(|_| {
            let a = space.sample(&mut rng);
            (SupernetKind::Nb201.edge_choices(&a), truth.arch_ms(&a))
        })
        .collect();
    let fitted = AdditiveLatency::fit(&samples, 5, &[0; 6]).unwrap();
    for _ in 0..20 {
        let a = space.sample(&mut rng);
        let (x, y) = (truth.arch_ms(&a), fitted.arch_ms(&a));
        assert!((x - y).abs() < 1e-3, "{x} vs {y}");
    }
    let error = AdditiveLatency::fit(&[(vec![0, 9], 1.0)], 5, &[0, 0]).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("does not fit 2 edges of 5 candidates"),
        "{error}"
    );
}

/// Every one-shot strategy's latency term moves its distribution toward cheaper cells: on
/// the same data, seeds and steps, the expected table latency at the end is lower with the
/// term than without it.
#[test]
fn every_strategy_s_latency_term_lowers_the_expected_latency() {
    let data = data();
    let config = OneShotConfig {
        epochs: 6,
        ..config()
    };
    let penalty = LatencyPenalty {
        table: table(),
        model: None,
        target_ms: 1.0,
        weight: 5.0,
        ramp: 0.0,
    };
    for name in NAMES {
        let expected = |latency: Option<LatencyPenalty>| {
            let strategy = by_name(
                name,
                SupernetKind::Nb201,
                ArchSchedule::default(),
                latency,
                Some(1 << 30),
            )
            .unwrap();
            let mut run = OneShotRun::new(trainer(), strategy);
            run.run(&Cpu, &data, &config, None, None, &mut |_| Ok(()))
                .unwrap();
            table().weighted_ms(&run.strategy.logits().probabilities())
        };
        let (with, without) = (expected(Some(penalty.clone())), expected(None));
        assert!(
            with < without - 0.01,
            "{name}: {with} ms with the term, {without} without"
        );
    }
}

/// AdvantageNAS searches NAS-Bench-201 without `none`, as its authors do: never sampled,
/// never the answer.
/// Every strategy searches NAS-Bench-201 without `none` (its credit is structurally 0):
/// never sampled, never derived, its probability pinned near 0 while the others move.
#[test]
fn every_strategy_searches_nas_bench_201_without_none() {
    let data = data();
    for name in NAMES {
        let strategy = by_name(
            name,
            SupernetKind::Nb201,
            ArchSchedule::default(),
            None,
            Some(1 << 30),
        )
        .unwrap();
        let mut run = OneShotRun::new(trainer(), strategy);
        let mut archs = Vec::new();
        run.run(&Cpu, &data, &config(), None, None, &mut |t| {
            archs.push(t.arch.clone());
            Ok(())
        })
        .unwrap();
        assert!(
            archs.iter().all(|a| a.0.iter().all(|&k| k != 0)),
            "{name}: {archs:?}"
        );
        for p in run.strategy.logits().probabilities() {
            assert!(p[0] < 1e-9, "{name}: {p:?}");
            assert!(p[1..].iter().all(|&q| q > 0.05), "{name}: {p:?}");
        }
    }
}

/// The phases of a run: the first steps train the weights alone (the architecture stays
/// uniform), the last ones train the found cell's path alone (the architecture frozen at
/// what the search ended with, the weights still moving), and a trace point marks the
/// architecture phase's end.
#[test]
fn warm_up_and_fine_tuning_leave_the_architecture_alone() {
    let data = data();
    let config = OneShotConfig {
        epochs: 4,
        eval_every: 4,
        warmup_share: 0.25,
        finetune_share: 0.25,
        ..config()
    };
    // 16 steps: 12 of search (3 of them warm-up), 4 of fine-tuning.
    assert_eq!(config.search_steps(16), 12);
    for name in ["gdas", "darts", "reinforce"] {
        let mut run = OneShotRun::new(trainer(), strategy(name));
        run.run(&Cpu, &data, &config, None, Some(3), &mut |_| Ok(()))
            .unwrap();
        let uniform = run.strategy.logits().probabilities();
        assert!(
            uniform
                .iter()
                .all(|p| p[1..].iter().all(|&q| (q - 0.25).abs() < 1e-6)),
            "{name}: the architecture moved in the warm-up: {uniform:?}"
        );
        let mut traces = Vec::new();
        run.run(&Cpu, &data, &config, None, None, &mut |t| {
            traces.push(t.clone());
            Ok(())
        })
        .unwrap();
        let steps: Vec<(usize, bool)> = traces.iter().map(|t| (t.step, t.finetuning)).collect();
        assert_eq!(
            steps,
            [(4, false), (8, false), (12, false), (16, true)],
            "{name}"
        );
        let searched = &traces[2];
        assert_ne!(
            searched.probabilities, uniform,
            "{name}: the search never moved"
        );
        assert_eq!(
            traces[3].probabilities, searched.probabilities,
            "{name}: the architecture moved while fine-tuning"
        );
        assert_eq!(traces[3].arch, searched.arch, "{name}");
        // The fine-tuning trained the weights: a run stopped at the phase's end differs.
        let mut stopped = OneShotRun::new(trainer(), strategy(name));
        stopped
            .run(&Cpu, &data, &config, None, Some(12), &mut |_| Ok(()))
            .unwrap();
        assert_eq!(
            stopped.strategy.logits().alpha,
            run.strategy.logits().alpha,
            "{name}"
        );
        assert_ne!(
            stopped.trainer.net, run.trainer.net,
            "{name}: the fine-tuning trained nothing"
        );
    }
}

/// RADARS with half the dense step's memory: the controller prunes until the pruned
/// dense step fits, DARTS searches what is left, and no step of the search holds more than
/// the budget (the tape's accounting); the estimate it prunes by is the step's bytes
/// extrapolated from 2 and 4 images, checked here against the full batch's.
#[test]
fn radars_prunes_until_the_dense_step_fits_and_searches_within_the_budget() {
    let data = data();
    let config = OneShotConfig {
        epochs: 6,
        ..config()
    };
    let net = trainer();
    let batch = data
        .train
        .epoch_batches(8, 0, 0, &data.normalisation, Augmentation::NONE)
        .next()
        .unwrap();
    let dense: Vec<Route> = (0..6).map(|_| Route::Dense(vec![0.2; 5])).collect();
    let dense_bytes = net
        .net
        .step(
            &Cpu,
            &batch,
            &StepRequest {
                routes: &dense,
                bn: BnMode::Batch,
                weight_grads: true,
                route_grads: true,
                sample_weights: None,
            },
        )
        .unwrap()
        .tape_bytes;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut trainer_for_estimate = trainer();
    let ctx = hwnas_core::oneshot::StepContext {
        trainer: &mut trainer_for_estimate,
        backend: &Cpu,
        train: &batch,
        valid: &batch,
        progress: 0.0,
        weights_progress: 0.0,
        warmup: 0.0,
        rng: &mut rng,
    };
    let sparse: Vec<Route> = (0..6).map(|_| Route::Sparse(vec![0.2; 5])).collect();
    let estimate = hwnas_core::oneshot::radars::estimate_step_bytes(&ctx, &batch, &sparse).unwrap();
    let error = (estimate as f64 - dense_bytes as f64).abs() / dense_bytes as f64;
    assert!(error < 0.05, "estimate {estimate} vs {dense_bytes} bytes");

    let budget = dense_bytes / 2;
    let strategy = by_name(
        "radars",
        SupernetKind::Nb201,
        ArchSchedule::default(),
        None,
        Some(budget),
    )
    .unwrap();
    let mut run = OneShotRun::new(trainer(), strategy);
    let mut last = None;
    run.run(&Cpu, &data, &config, None, None, &mut |t| {
        last = Some(t.clone());
        Ok(())
    })
    .unwrap();
    assert!(
        run.peak_tape_bytes <= budget,
        "peak {} over the budget {budget}",
        run.peak_tape_bytes
    );
    let notes = run.strategy.notes().join(" ");
    assert!(
        notes.contains("then DARTS searched the pruned space"),
        "{notes}"
    );
    let last = last.unwrap();
    // The answer only uses candidates that survived; pruned ones have probability 0.
    for (e, p) in last.probabilities.iter().enumerate() {
        let k = usize::from(last.arch.0[e]);
        assert!(p[k] > 0.0, "edge {e}: {p:?}");
        assert!(
            p.iter().filter(|&&q| q < 1e-9).count() >= 1,
            "edge {e} unpruned: {p:?}"
        );
    }
    // Without the budget, the same search needs no pruning and holds the dense step.
    let error = by_name(
        "radars",
        SupernetKind::Nb201,
        ArchSchedule::default(),
        None,
        None,
    )
    .err()
    .unwrap();
    assert!(error.to_string().contains("--memory-mib"), "{error}");
}
