//! Supernet-backed searches: a one-shot search (DARTS, GDAS, AdvantageNAS, UNAS, REINFORCE)
//! of NAS-Bench-201 or DARTS cells on a weight-sharing supernet trained on real images, and
//! Once-for-All's "train once" before a sampling search. Both checkpoint every trace point,
//! resume, and answer with the same outcome as every search.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hwnas_core::images::ImageSet;
use hwnas_core::images::batches::{Augmentation, Normalisation};
use hwnas_core::kernels::{Backend, Cpu, Wgpu};
use hwnas_core::oneshot::{
    AdditiveLatency, ArchSchedule, DEFAULT_RAMP, LatencyPenalty, OneShotConfig, OneShotData,
    OneShotRun, SandwichSampling, SupernetEvaluator, SupernetTrainer, TrainingEvaluator,
    TrainingSettings, WeightSchedule, by_name, scoring_batches,
};
use hwnas_core::space::SearchSpace;
use hwnas_core::supernet::{
    DartsSupernet, DartsSupernetConfig, Nb201Supernet, Nb201SupernetConfig, OfaSupernet,
    OfaSupernetConfig, Supernet, SupernetKind,
};
use hwnas_core::{LatencyModel, Record};
use hwnas_latency::export::ExportOptions;
use hwnas_latency::export::inherited::{nb201_inherited, ofa_inherited};
use hwnas_latency::measured::export_for_profiling;
use hwnas_latency::onnx::builder::encode;
use hwnas_latency::onnx::normalise::prepend_normalisation;
use hwnas_latency::onnx::proto::ModelProto;
use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::observer::Observer;
use crate::outcome::{Outcome, SupernetFacts};
use crate::plan::{BackendKind, DataSource, SearchPlan, SpaceKind, TargetSpec};
use crate::run_dir::RunDir;
use crate::world::World;

/// Default supernet channels of the first cells (reduced for CPUs; full size: 16).
pub fn default_channels(space: SpaceKind) -> usize {
    if space == SpaceKind::Darts { 4 } else { 8 }
}

/// Default supernet cells (nb201: per stage, full 5; darts: in all, full 8).
pub fn default_cells(space: SpaceKind) -> usize {
    if space == SpaceKind::Darts { 3 } else { 1 }
}

/// Reads the plan's images.
fn load_images(plan: &SearchPlan) -> Result<ImageSet> {
    Ok(match &plan.data {
        DataSource::FashionMnist => ImageSet::fashion_mnist_train(None)?,
        DataSource::Cifar(dir) => ImageSet::cifar_train(dir)?,
        DataSource::Folder(dir) => ImageSet::read_folder(dir, plan.image_size)?.0,
    })
}

/// The kernels the plan names.
pub fn backend(
    plan: &SearchPlan,
    observer: &dyn Observer,
) -> Result<Box<dyn Backend + Send + Sync>> {
    match plan.backend {
        BackendKind::Cpu => Ok(Box::new(Cpu)),
        BackendKind::Wgpu => {
            let wgpu = Wgpu::new().map_err(|e| Error::Step {
                what: "--backend wgpu: no wgpu adapter; install a GPU driver or Mesa's lavapipe (`bash scripts/setup.sh`), or use --backend cpu".into(),
                source: Box::new(hwnas_core::Error::from(e).into()),
            })?;
            observer.note(&format!("supernet kernels: {}", wgpu.name()));
            Ok(Box::new(wgpu))
        }
    }
}

/// The cell supernet of the plan's space at the size it asks (reduced by default).
fn build_cell_supernet(plan: &SearchPlan, in_channels: usize, classes: usize) -> Result<Supernet> {
    let channels = plan.channels.unwrap_or(default_channels(plan.space));
    let cells = plan.cells.unwrap_or(default_cells(plan.space));
    Ok(if plan.space == SpaceKind::Darts {
        Supernet::Darts(DartsSupernet::new(
            DartsSupernetConfig {
                in_channels,
                channels,
                cells,
                classes,
            },
            plan.seed,
        )?)
    } else {
        Supernet::Nb201(Nb201Supernet::new(
            Nb201SupernetConfig {
                in_channels,
                channels,
                cells,
                classes,
            },
            plan.seed,
        )?)
    })
}

/// The images of a supernet search: the search images split in halves for the weights and
/// the architecture (with `one_set`, both are the whole search set: a supernet trained
/// without an architecture to learn uses every image for its weights), and the held-out
/// images. Returns them with the images' channels and classes.
fn search_data(plan: &SearchPlan, one_set: bool) -> Result<(OneShotData, usize, usize)> {
    let images = load_images(plan)?;
    let wanted = if plan.train_images == 0 {
        images.len().saturating_sub(plan.eval_images)
    } else {
        plan.train_images
    };
    if wanted.saturating_add(plan.eval_images) > images.len() || wanted < 2 * plan.batch_size {
        let setting = if plan.train_images == 0 || plan.eval_images >= images.len() {
            "eval-images"
        } else {
            "train-images"
        };
        let value = if setting == "eval-images" {
            plan.eval_images
        } else {
            plan.train_images
        };
        return Err(Error::plan(
            setting,
            value,
            format!(
                "--data {} holds {} images, fewer than --train-images {wanted} plus --eval-images {} (and the training images must fill two batches of {}); ask for fewer",
                plan.data,
                images.len(),
                plan.eval_images,
                plan.batch_size
            ),
        ));
    }
    let (search, rest) = images.split(wanted, plan.seed);
    let (train, valid) = if one_set {
        (search.clone(), search)
    } else {
        search.split(wanted / 2, plan.seed.wrapping_add(1))
    };
    let eval = rest.subset(&(0..plan.eval_images).collect::<Vec<_>>());
    let [_, channels, side, _] = images.shape;
    let data = OneShotData {
        normalisation: Normalisation::of(&train),
        augmentation: if plan.augment {
            Augmentation::standard(side)
        } else {
            Augmentation::NONE
        },
        train,
        valid,
        eval,
    };
    let classes = images.classes();
    Ok((data, channels, classes))
}

/// The loop's settings from the plan: four trace points per epoch, 16 batches (1,024
/// images at the default batch) to recalibrate batch norm.
fn search_config(plan: &SearchPlan, data: &OneShotData) -> OneShotConfig {
    let mut config = OneShotConfig {
        epochs: plan.epochs,
        batch_size: plan.batch_size,
        seed: plan.seed,
        eval_every: 1,
        recalibration_batches: 16,
        warmup_share: plan.phase_shares().0 as f32,
        finetune_share: plan.phase_shares().1 as f32,
    };
    let per_epoch = OneShotRun::steps_per_epoch(data, &config);
    config.eval_every = (per_epoch / 4).max(1);
    config
}

/// Runs `run` to the end of its epochs, checkpointing to `checkpoint.bin` and appending the
/// trace to `trace.jsonl`; returns every trace point written (this process's and any
/// earlier one's).
fn train(
    dir: &RunDir,
    (run, backend): (&mut OneShotRun, &dyn Backend),
    data: &OneShotData,
    config: &OneShotConfig,
    observer: &dyn Observer,
) -> Result<Vec<hwnas_core::oneshot::Trace>> {
    let total = (OneShotRun::steps_per_epoch(data, config) * config.epochs) as u64;
    let checkpoint = dir.file("checkpoint.bin");
    // A line the stop cut short is cut off before appending.
    let _: Vec<serde_json::Value> =
        crate::run_dir::read_jsonl(&dir.file("trace.jsonl"), "a supernet trace")?;
    let mut trace_file = dir.appender("trace.jsonl")?;
    let mut write_error = None;
    observer.stage("supernet steps", total);
    observer.progress(run.step as u64, total, "");
    let result = run.run(
        backend,
        data,
        config,
        Some(&checkpoint),
        None,
        &mut |trace| {
            if let Err(e) = trace_file.push(trace) {
                let path = trace_file.path().to_path_buf();
                write_error = Some(e);
                return Err(hwnas_core::Error::Io {
                    path,
                    source: std::io::Error::other("the trace could not be written"),
                });
            }
            observer.progress(
                trace.step as u64,
                total,
                &format!("{:.1}% held-out", trace.eval_accuracy),
            );
            Ok(())
        },
    );
    if let Some(e) = write_error {
        return Err(e);
    }
    result?;
    observer.finish();
    crate::run_dir::read_jsonl(&dir.file("trace.jsonl"), "a supernet trace")
}

fn facts(
    plan: &SearchPlan,
    run: &OneShotRun,
    backend: &dyn Backend,
    data: &OneShotData,
) -> SupernetFacts {
    SupernetFacts {
        steps: run.step,
        epochs: plan.epochs,
        data: plan.data.to_string(),
        supernet: run.trainer.net.describe(),
        kernels: backend.name(),
        input_normalisation: (
            data.normalisation.mean.clone(),
            data.normalisation.std.clone(),
        ),
        finetune_steps: 0,
        searched_heldout_accuracy: None,
        peak_step_mib: run.peak_tape_bytes as f64 / (1024.0 * 1024.0),
        strategy_notes: run.strategy.notes(),
    }
}

/// The fine-tuning steps of a one-shot search and the found cell's held-out accuracy at
/// the end of its architecture phase (from the trace, where it holds that point).
fn finetune_facts(
    traces: &[hwnas_core::oneshot::Trace],
    data: &OneShotData,
    config: &OneShotConfig,
) -> (usize, Option<f64>) {
    let total = OneShotRun::steps_per_epoch(data, config) * config.epochs.max(1);
    let search_steps = config.search_steps(total);
    let searched = traces
        .iter()
        .rev()
        .find(|t| t.step == search_steps && !t.finetuning)
        .map(|t| t.eval_accuracy);
    (
        total - search_steps,
        searched.filter(|_| search_steps < total),
    )
}

/// The evaluator of `--evaluator train`: each candidate trained on its own on the plan's
/// images (every search image for its weights, scored on the held-out ones), from the
/// initial weights of the space's supernet seeded by the plan, so every candidate starts
/// alike and scores the same on any worker.
pub fn training_evaluator(plan: &SearchPlan, observer: &dyn Observer) -> Result<TrainingEvaluator> {
    training_evaluator_from(plan, None, observer)
}

/// [`training_evaluator`] whose candidates start from `initial`'s weights (a trained
/// supernet's: each candidate then starts from the weights it inherits) instead of fresh
/// ones.
pub fn training_evaluator_from(
    plan: &SearchPlan,
    initial: Option<Supernet>,
    observer: &dyn Observer,
) -> Result<TrainingEvaluator> {
    let (data, channels, classes) = search_data(plan, true)?;
    if let Some(net) = &initial
        && net.channels_and_classes() != (channels, classes)
    {
        let (c, k) = net.channels_and_classes();
        return Err(Error::plan(
            "from",
            net.space(),
            format!(
                "its supernet takes {c}-channel images of {k} classes; --data {} has {channels} channels and {classes} classes: give the data set it was trained on",
                plan.data
            ),
        ));
    }
    let initial = match (initial, plan.space) {
        (Some(net), _) => net,
        (None, SpaceKind::Ofa) => Supernet::Ofa(OfaSupernet::new(
            OfaSupernetConfig::reduced(channels, classes),
            plan.seed,
        )?),
        (None, _) => build_cell_supernet(plan, channels, classes)?,
    };
    let settings = TrainingSettings {
        epochs: plan.epochs,
        batch_size: plan.batch_size,
        seed: plan.seed,
        schedule: WeightSchedule::nas_bench_201(),
    };
    Ok(TrainingEvaluator::new(
        initial,
        backend(plan, observer)?,
        data,
        settings,
    ))
}

/// Once-for-All's "train once": the Once-for-All supernet (a quarter of MobileNetV3 w1.2)
/// trained on the plan's images by the sandwich rule (checkpointed, resumable), handed back
/// as the evaluator the search scores subnets with (held-out accuracy with inherited
/// weights after batch-norm recalibration), with what the outcome reports of it.
pub fn train_ofa(
    plan: &SearchPlan,
    dir: &RunDir,
    resume: bool,
    observer: &dyn Observer,
) -> Result<(Arc<SupernetEvaluator>, SupernetFacts)> {
    let (data, channels, classes) = search_data(plan, true)?;
    let (edges, candidates) = SupernetKind::Ofa.shape();
    let strategy = Box::new(SandwichSampling::new(edges, candidates));
    let checkpoint = dir.file("checkpoint.bin");
    let mut run = if resume && checkpoint.exists() {
        OneShotRun::resume(&checkpoint, strategy)?
    } else {
        let net = OfaSupernet::new(OfaSupernetConfig::reduced(channels, classes), plan.seed)?;
        OneShotRun::new(
            SupernetTrainer::new(Supernet::Ofa(net), WeightSchedule::default()),
            strategy,
        )
    };
    let config = search_config(plan, &data);
    let backend = backend(plan, observer)?;
    train(dir, (&mut run, backend.as_ref()), &data, &config, observer)?;
    observer.note(&format!(
        "supernet trained: {} steps ({}); searching with it",
        run.step,
        run.trainer.net.describe()
    ));
    let facts = facts(plan, &run, backend.as_ref(), &data);
    let evaluator = SupernetEvaluator::new(run.trainer, backend, &data, &config);
    Ok((Arc::new(evaluator), facts))
}

/// Writes `best-inherited.onnx`: the Once-for-All subnet of `record` at the supernet's
/// width with the weights it inherits, batch norm recalibrated on the scoring batches, its
/// input normalisation inside (it takes images in [0, 1]).
pub fn write_ofa_inherited(
    supernet: &SupernetEvaluator,
    record: &Record,
    dir: &RunDir,
) -> Result<PathBuf> {
    let Supernet::Ofa(net) = &supernet.trainer().net else {
        return Err(Error::NoAnswer(
            "the trained supernet is not a Once-for-All one".into(),
        ));
    };
    let config = hwnas_core::space::ofa::parse_config(&record.arch_text)?;
    let stats = supernet.recalibrate(&record.arch)?;
    let model = ofa_inherited(net, &stats, &config, ExportOptions::default())?;
    let norm = supernet.normalisation();
    let model = prepend_normalisation(model, &norm.mean, &norm.std)?;
    save_model(&model, &dir.file("best-inherited.onnx"))
}

fn save_model(model: &ModelProto, path: &Path) -> Result<PathBuf> {
    std::fs::write(path, encode(model)).map_err(|e| Error::io("write", path, e))?;
    Ok(path.to_path_buf())
}

/// Writes `best-inherited.onnx`: the found NAS-Bench-201 cell at the supernet's size with
/// the weights it inherits and its batch norm recalibrated on the scoring batches, its input
/// normalisation inside (it takes images in [0, 1]) (`None`
/// for the DARTS space, whose evaluation network is trained from scratch).
fn write_nb201_inherited(
    (run, backend): (&OneShotRun, &dyn Backend),
    arch: &hwnas_core::Arch,
    data: &OneShotData,
    config: &OneShotConfig,
    dir: &RunDir,
) -> Result<Option<PathBuf>> {
    let Supernet::Nb201(net) = &run.trainer.net else {
        return Ok(None);
    };
    let (recalibration, _) = scoring_batches(data, config);
    let stats = run.trainer.recalibrate(backend, arch, &recalibration)?;
    let side = data.train.shape[2];
    let model = nb201_inherited(net, &stats, arch, side, ExportOptions::default())?;
    let norm = &data.normalisation;
    let model = prepend_normalisation(model, &norm.mean, &norm.std)?;
    save_model(&model, &dir.file("best-inherited.onnx")).map(Some)
}

/// Architectures a one-shot search's latency table is fitted to: many where a query costs
/// microseconds (a published table), few where each is measured end to end.
const TABLE_FIT_SAMPLES: usize = 2000;
const MEASURED_FIT_SAMPLES: usize = 48;

/// The one-shot strategies' latency term (`hwnas_core::oneshot::latency`): a table linear
/// in each edge's choice fitted to the target's latency — per edge over 2,000 sampled
/// architectures of a published table, with costs shared by edges of the same shapes over
/// 48 measured ones — and, where the supernet's edges are the space's decisions
/// (nb201), the target's own latency of a discrete cell. Weight `--latency-weight` per
/// `budget` ms over it; `None` at weight 0.
fn latency_penalty(
    plan: &SearchPlan,
    latency: &Arc<dyn LatencyModel>,
    space: &dyn SearchSpace,
    budget_ms: f64,
    observer: &dyn Observer,
) -> Result<Option<LatencyPenalty>> {
    let weight = plan.latency_weight.unwrap_or(1.0);
    if weight == 0.0 {
        return Ok(None);
    }
    let kind = plan.space.supernet();
    let (edges, candidates) = kind.shape();
    let published = matches!(plan.target, TargetSpec::Table(_));
    let (samples, groups) = if published {
        (TABLE_FIT_SAMPLES, (0..edges).collect())
    } else {
        (MEASURED_FIT_SAMPLES, kind.edge_groups())
    };
    let fit_started = Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(plan.seed ^ 0x1A7E);
    let mut fitted = Vec::with_capacity(samples);
    for _ in 0..samples {
        let arch = space.sample(&mut rng);
        fitted.push((kind.edge_choices(&arch), latency.latency_ms(&arch)?));
    }
    let table = AdditiveLatency::fit(&fitted, candidates, &groups)?;
    let n = fitted.len().max(1) as f64;
    let mean_ms = fitted.iter().map(|(_, ms)| ms).sum::<f64>() / n;
    let error_ms = fitted
        .iter()
        .map(|(choices, ms)| {
            let arch = hwnas_core::Arch(choices.iter().map(|&c| c as u8).collect());
            (table.arch_ms(&arch) - ms).abs()
        })
        .sum::<f64>()
        / n;
    observer.note(&format!(
        "latency term: a linear table fitted to {samples} architectures' latency in {:.1} s (mean error {error_ms:.3} ms, {:.1}% of their mean {mean_ms:.3} ms), weight {weight} / budget",
        fit_started.elapsed().as_secs_f64(),
        100.0 * error_ms / mean_ms.max(1e-9)
    ));
    let model = (plan.space == SpaceKind::Nb201).then(|| Arc::clone(latency));
    Ok(Some(LatencyPenalty {
        table,
        model,
        target_ms: budget_ms,
        weight: (weight / budget_ms) as f32,
        ramp: DEFAULT_RAMP,
    }))
}

/// Runs the one-shot search of `plan` into `dir`.
pub fn run(
    plan: &SearchPlan,
    world: World,
    dir: &RunDir,
    resume: bool,
    started: Instant,
    observer: &dyn Observer,
) -> Result<Outcome> {
    let kind = plan.space.supernet();
    let (data, channels, classes) = search_data(plan, false)?;
    let space = world.space;
    let latency_model: Arc<dyn LatencyModel> = Arc::from(world.search_latency);
    let penalty = latency_penalty(
        plan,
        &latency_model,
        space.as_ref(),
        world.budget.ms,
        observer,
    )?;
    let strategy = by_name(
        plan.strategy.as_str(),
        kind,
        ArchSchedule::default(),
        penalty,
        plan.memory_mib.map(|m| (m * 1024.0 * 1024.0) as usize),
    )?;
    let checkpoint = dir.file("checkpoint.bin");
    let mut run = if resume && checkpoint.exists() {
        OneShotRun::resume(&checkpoint, strategy)?
    } else {
        let net = build_cell_supernet(plan, channels, classes)?;
        // NAS-Bench-201's own schedule (0.1 cosine to 0), over the search and again over
        // the fine-tuning: DARTS' 0.025 is made for 50 epochs, and at a few epochs it
        // leaves the shared weights under-trained when the architecture is judged.
        OneShotRun::new(
            SupernetTrainer::new(net, WeightSchedule::nas_bench_201()),
            strategy,
        )
    };
    let config = search_config(plan, &data);
    let backend = backend(plan, observer)?;
    let traces = train(dir, (&mut run, backend.as_ref()), &data, &config, observer)?;
    let (finetune_steps, searched_heldout_accuracy) = finetune_facts(&traces, &data, &config);
    let traces = traces.len();

    let (arch, accuracy, _) = run.evaluate(backend.as_ref(), &data, &config)?;
    let arch_text = space.format(&arch);
    let (latency_ms, measured) = match &world.measured {
        Some(m) => (m.arch_ms(&arch)?, true),
        None => (latency_model.latency_ms(&arch)?, false),
    };
    if let Some(m) = &world.measured {
        for warning in m.take_warnings() {
            observer.warn(&warning);
        }
    }
    let onnx_path = dir.file("best.onnx");
    let model = export_for_profiling(space.as_ref(), &arch)?;
    std::fs::write(&onnx_path, model).map_err(|e| Error::io("write", &onnx_path, e))?;
    let inherited = write_nb201_inherited((&run, backend.as_ref()), &arch, &data, &config, dir)?;
    let table_test_accuracy = world
        .nb201_table
        .as_ref()
        .and_then(|t| hwnas_core::Evaluator::evaluate(t.as_ref(), &arch).ok())
        .and_then(|e| e.test_accuracy);
    let outcome = Outcome {
        space: space.name().into(),
        strategy: plan.strategy.to_string(),
        evaluator: "supernet".into(),
        arch: arch_text,
        latency_ms,
        latency_budget_ms: world.budget.ms,
        within_budget: latency_ms <= world.budget.ms,
        accuracy_estimate: accuracy,
        onnx: onnx_path.display().to_string(),
        measured,
        queries: traces,
        inherited_onnx: inherited.as_ref().map(|p| p.display().to_string()),
        heldout_accuracy: Some(accuracy),
        table_test_accuracy,
        run_dir: dir.path().display().to_string(),
        wall_seconds: started.elapsed().as_secs_f64(),
        finalists_measured: usize::from(measured),
        other_load: None,
        supernet: Some(SupernetFacts {
            finetune_steps,
            searched_heldout_accuracy,
            ..facts(plan, &run, backend.as_ref(), &data)
        }),
    };
    let report = report(plan, &outcome, &data, &world.budget.origin);
    let path = dir.file("report.md");
    std::fs::write(&path, report).map_err(|e| Error::io("write", &path, e))?;
    Ok(outcome)
}

fn report(plan: &SearchPlan, outcome: &Outcome, data: &OneShotData, budget_origin: &str) -> String {
    let facts = outcome
        .supernet
        .as_ref()
        .expect("a one-shot outcome has facts");
    format!(
        "# hwnas one-shot search\n\n{}- strategy: {}\n- data: {} ({} + {} search images, {} held out)\n- supernet: {} (kernels: {})\n- steps: {} ({} epochs{})\n- architecture: `{}`\n- held-out accuracy with inherited weights (after batch-norm recalibration): {:.2}%{}\n- NAS-Bench-201 {} test accuracy of this cell (transfer check): {}\n- latency: {:.3} ms ({}), budget {:.3} ms ({})\n- best.onnx: the cell in the benchmark's network, as measured for latency (random weights)\n{}- peak step memory: {:.1} MiB (the tape's accounting)\n{}- wall time: {:.0} s\n",
        if outcome.within_budget {
            ""
        } else {
            "**Not within budget**: the found architecture is over the latency budget.\n\n"
        },
        outcome.strategy,
        facts.data,
        data.train.len(),
        data.valid.len(),
        data.eval.len(),
        facts.supernet,
        facts.kernels,
        facts.steps,
        facts.epochs,
        if facts.finetune_steps > 0 {
            format!(
                "; the last {} trained the found cell's path alone",
                facts.finetune_steps
            )
        } else {
            String::new()
        },
        outcome.arch,
        outcome.accuracy_estimate,
        match facts.searched_heldout_accuracy {
            Some(a) => format!(" ({a:.2}% before the fine-tuning steps)"),
            None => String::new(),
        },
        plan.dataset,
        match (plan.space, outcome.table_test_accuracy) {
            (SpaceKind::Nb201, Some(a)) => format!("{a:.2}%"),
            (SpaceKind::Nb201, None) => "table not found".into(),
            _ => "no table covers this space".into(),
        },
        outcome.latency_ms,
        if outcome.measured {
            "measured end to end"
        } else {
            "from the latency model"
        },
        outcome.latency_budget_ms,
        budget_origin,
        match &outcome.inherited_onnx {
            Some(path) => format!(
                "- {path}: the cell at the supernet's size with the weights it inherits (batch norm recalibrated and folded): the network the held-out accuracy was measured with; inputs are images in [0, 1] (the per-channel normalisation, mean {:?} and std {:?}, is the model's first two nodes); `hwnas eval {path} --data DATA` checks its accuracy\n",
                facts.input_normalisation.0, facts.input_normalisation.1
            ),
            None => String::new(),
        },
        facts.peak_step_mib,
        facts
            .strategy_notes
            .iter()
            .map(|n| format!("- {n}\n"))
            .collect::<String>(),
        outcome.wall_seconds
    )
}
