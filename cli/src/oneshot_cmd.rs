//! `hwnas search --evaluator supernet`: a one-shot search (DARTS, GDAS, AdvantageNAS, UNAS,
//! REINFORCE) of NAS-Bench-201 or DARTS cells on a weight-sharing supernet trained on real images,
//! checkpointed every trace point, resumable, answered with the same JSON object as every
//! search, the architecture's latency measured on the target, and its NAS-Bench-201
//! CIFAR-10 test accuracy looked up as a transfer check where the table is present.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hwnas_core::Evaluator;
use hwnas_core::images::ImageSet;
use hwnas_core::images::batches::{Augmentation, Normalisation};
use hwnas_core::kernels::{Backend, Wgpu};
use hwnas_core::oneshot::{
    AdditiveLatency, ArchSchedule, LatencyPenalty, LatencySource, OneShotConfig, OneShotData,
    OneShotRun, SandwichSampling, SupernetEvaluator, SupernetTrainer, WeightSchedule, by_name,
    scoring_batches,
};
use hwnas_core::space::{Nb201Space, SearchSpace, space_by_name};
use hwnas_core::supernet::{
    DartsSupernet, DartsSupernetConfig, Nb201Supernet, Nb201SupernetConfig, OfaSupernet,
    OfaSupernetConfig, Supernet,
};
use hwnas_latency::export::inherited::{nb201_inherited, ofa_inherited};
use hwnas_latency::export::{ExportOptions, export_arch};
use hwnas_latency::onnx::RandomWeights;
use hwnas_latency::onnx::builder::encode;
use rand::SeedableRng;
use serde::Serialize;

use crate::progress;
use crate::search::{SearchArgs, World};

/// The object `--json` prints: the main job's fields, and the one-shot search's own.
#[derive(Debug, Serialize)]
struct OneShotJson {
    space: String,
    strategy: String,
    arch: String,
    latency_ms: f64,
    latency_budget_ms: f64,
    within_budget: bool,
    accuracy_estimate: f64,
    onnx: String,
    measured: bool,
    queries: usize,
    steps: usize,
    epochs: usize,
    data: String,
    supernet: String,
    /// The kernels the supernet ran on.
    kernels: String,
    table_test_accuracy: Option<f64>,
    /// The found subnet at the supernet's size with its inherited weights (NAS-Bench-201).
    inherited_onnx: Option<String>,
    /// Per-channel mean and standard deviation its inputs (values in [0, 1]) are
    /// normalised with.
    input_normalisation: (Vec<f32>, Vec<f32>),
    wall_seconds: f64,
}

/// Reads `--data`.
fn load_images(args: &SearchArgs) -> Result<ImageSet> {
    let data = args.data.as_str();
    if data == "fashion-mnist" {
        return Ok(ImageSet::fashion_mnist_train(None)?);
    }
    if let Some(dir) = data.strip_prefix("cifar:") {
        return Ok(ImageSet::cifar_train(Path::new(dir))?);
    }
    if let Some(dir) = data.strip_prefix("folder:") {
        return Ok(ImageSet::read_folder(Path::new(dir), args.image_size)?.0);
    }
    bail!(
        "--data {data}: use fashion-mnist, cifar:DIR (CIFAR-10/100 binary batches) or folder:DIR (a folder of images per class)"
    )
}

/// The kernels `--backend` names.
pub(crate) fn backend(args: &SearchArgs) -> Result<Box<dyn Backend + Send + Sync>> {
    match args.backend.as_str() {
        "cpu" => Ok(Box::new(hwnas_core::kernels::Cpu)),
        "wgpu" => {
            let wgpu = Wgpu::new().context(
                "--backend wgpu: no wgpu adapter; install a GPU driver or Mesa's lavapipe (`bash scripts/setup.sh`), or use --backend cpu",
            )?;
            if !args.json {
                eprintln!("supernet kernels: {}", wgpu.name());
            }
            Ok(Box::new(wgpu))
        }
        other => bail!("--backend {other}: use cpu or wgpu"),
    }
}

/// Edges and candidates per edge of the supernet of `space`.
pub(crate) fn supernet_shape(space: &str) -> Result<(usize, usize)> {
    match space {
        "nb201" => Ok((
            hwnas_core::space::nb201::EDGES.len(),
            hwnas_core::supernet::nb201::CANDIDATES,
        )),
        "darts" => Ok((
            hwnas_core::supernet::darts::EDGES,
            hwnas_core::supernet::darts::CANDIDATES,
        )),
        "ofa-mbv3" | "ofa" => Ok((
            hwnas_core::supernet::ofa::EDGES,
            hwnas_core::supernet::ofa::CANDIDATES,
        )),
        other => bail!(
            "--evaluator supernet searches --space nb201, darts or ofa-mbv3 (the spaces with a supernet), not {other}"
        ),
    }
}

/// The supernet of `args.space` at the size the arguments ask (reduced by default).
fn build_supernet(args: &SearchArgs, in_channels: usize, classes: usize) -> Result<Supernet> {
    Ok(if args.space == "darts" {
        Supernet::Darts(DartsSupernet::new(
            DartsSupernetConfig {
                in_channels,
                channels: args.channels.unwrap_or(4),
                cells: args.cells.unwrap_or(3),
                classes,
            },
            args.seed,
        )?)
    } else {
        Supernet::Nb201(Nb201Supernet::new(
            Nb201SupernetConfig {
                in_channels,
                channels: args.channels.unwrap_or(8),
                cells: args.cells.unwrap_or(1),
                classes,
            },
            args.seed,
        )?)
    })
}

/// The images of a one-shot search from `--data`: the search images split in halves for
/// the weights and the architecture (with `one_set`, both are the whole search set: a
/// supernet trained without an architecture to learn uses every image for its weights),
/// and the held-out images. Returns them with the images' channels and classes.
fn search_data(args: &SearchArgs, one_set: bool) -> Result<(OneShotData, usize, usize)> {
    if args.epochs == 0 || args.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    let images = load_images(args)?;
    let wanted = if args.train_images == 0 {
        images.len().saturating_sub(args.eval_images)
    } else {
        args.train_images
    };
    if wanted + args.eval_images > images.len() || wanted < 2 * args.batch_size {
        bail!(
            "--data {} holds {} images: not enough for --train-images {wanted} (at least two batches of {}) plus --eval-images {}",
            args.data,
            images.len(),
            args.batch_size,
            args.eval_images
        );
    }
    let (search, rest) = images.split(wanted, args.seed);
    let (train, valid) = if one_set {
        (search.clone(), search)
    } else {
        search.split(wanted / 2, args.seed.wrapping_add(1))
    };
    let eval = rest.subset(&(0..args.eval_images).collect::<Vec<_>>());
    let [_, channels, side, _] = images.shape;
    let data = OneShotData {
        normalisation: Normalisation::of(&train),
        augmentation: Augmentation::standard(side),
        train,
        valid,
        eval,
    };
    let classes = images.classes();
    Ok((data, channels, classes))
}

/// The loop's settings from the flags: four trace points per epoch, four batches to
/// recalibrate batch norm.
fn search_config(args: &SearchArgs, data: &OneShotData) -> OneShotConfig {
    let mut config = OneShotConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        seed: args.seed,
        eval_every: 1,
        recalibration_batches: 4,
    };
    let per_epoch = OneShotRun::steps_per_epoch(data, &config);
    config.eval_every = (per_epoch / 4).max(1);
    config
}

/// Runs `run` to the end of its epochs on the CPU backend, checkpointing to
/// `out/checkpoint.bin` and appending the trace to `out/trace.jsonl`, with a progress bar
/// unless the output is JSON.
fn train(
    args: &SearchArgs,
    out: &Path,
    (run, backend): (&mut OneShotRun, &dyn Backend),
    data: &OneShotData,
    config: &OneShotConfig,
) -> Result<()> {
    let total = OneShotRun::steps_per_epoch(data, config) * config.epochs;
    let checkpoint = out.join("checkpoint.bin");
    let trace_path = out.join("trace.jsonl");
    let mut trace_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&trace_path)
        .with_context(|| format!("cannot write {}", trace_path.display()))?;
    let bar = progress::bar("supernet steps", total as u64);
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_position(run.step as u64);
    run.run(
        backend,
        data,
        config,
        Some(&checkpoint),
        None,
        &mut |trace| {
            let mut line = serde_json::to_string(trace).expect("traces serialise");
            line.push('\n');
            trace_file
                .write_all(line.as_bytes())
                .and_then(|()| trace_file.flush())
                .map_err(|source| hwnas_core::Error::Io {
                    path: trace_path.clone(),
                    source,
                })?;
            bar.set_position(trace.step as u64);
            bar.set_message(format!("{:.1}% held-out", trace.eval_accuracy));
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    Ok(())
}

/// Once-for-All's "train once": the Once-for-All supernet (a quarter of MobileNetV3 w1.2)
/// trained on `--data` for `--epochs` by the sandwich rule (checkpointed, resumable), then
/// handed back as the evaluator the search scores subnets with (held-out accuracy with
/// inherited weights after batch-norm recalibration).
pub fn train_ofa(args: &SearchArgs, out: &Path, resume: bool) -> Result<Arc<SupernetEvaluator>> {
    if args.channels.is_some() || args.cells.is_some() {
        bail!(
            "--channels and --cells size the cell supernets (nb201, darts); the Once-for-All supernet is a quarter of MobileNetV3 w1.2's width"
        );
    }
    if args.epochs == 0 || args.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    let (data, channels, classes) = search_data(args, true)?;
    let shape = supernet_shape("ofa-mbv3")?;
    let strategy = Box::new(SandwichSampling::new(shape.0, shape.1));
    let checkpoint = out.join("checkpoint.bin");
    let mut run = if resume && checkpoint.exists() {
        OneShotRun::resume(&checkpoint, strategy)?
    } else {
        let net = OfaSupernet::new(OfaSupernetConfig::reduced(channels, classes), args.seed)?;
        OneShotRun::new(
            SupernetTrainer::new(Supernet::Ofa(net), WeightSchedule::default()),
            strategy,
        )
    };
    let config = search_config(args, &data);
    let backend = backend(args)?;
    train(args, out, (&mut run, backend.as_ref()), &data, &config)?;
    if !args.json {
        eprintln!(
            "supernet trained: {} steps ({}); searching with it",
            run.step,
            run.trainer.net.describe()
        );
    }
    Ok(Arc::new(SupernetEvaluator::new(
        run.trainer,
        backend,
        &data,
        &config,
    )))
}

/// Writes `out/best-inherited.onnx`: the Once-for-All subnet `arch_text` at the supernet's
/// width with the weights it inherits, batch norm recalibrated on the scoring batches.
pub fn write_ofa_inherited(
    supernet: &SupernetEvaluator,
    arch: &hwnas_core::Arch,
    arch_text: &str,
    out: &Path,
) -> Result<std::path::PathBuf> {
    let Supernet::Ofa(net) = &supernet.trainer().net else {
        bail!("the trained supernet is not a Once-for-All one");
    };
    let config = hwnas_core::space::ofa::parse_config(arch_text)?;
    let stats = supernet.recalibrate(arch)?;
    let model = ofa_inherited(net, &stats, &config, ExportOptions::default())?;
    save_inherited(&model, out)
}

/// Writes an inherited-weight model to `out/best-inherited.onnx`.
fn save_inherited(
    model: &hwnas_latency::onnx::proto::ModelProto,
    out: &Path,
) -> Result<std::path::PathBuf> {
    let path = out.join("best-inherited.onnx");
    std::fs::write(&path, encode(model))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Writes `out/best-inherited.onnx`: the found NAS-Bench-201 cell at the supernet's size
/// with the weights it inherits and its batch norm recalibrated on the scoring batches
/// (`None` for the DARTS space, whose evaluation network is trained from scratch).
fn write_inherited(
    (run, backend): (&OneShotRun, &dyn Backend),
    arch: &hwnas_core::Arch,
    data: &OneShotData,
    config: &OneShotConfig,
    out: &Path,
) -> Result<Option<std::path::PathBuf>> {
    let Supernet::Nb201(net) = &run.trainer.net else {
        return Ok(None);
    };
    let (recalibration, _) = scoring_batches(data, config);
    let stats = run.trainer.recalibrate(backend, arch, &recalibration)?;
    let side = data.train.shape[2];
    let model = nb201_inherited(net, &stats, arch, side, ExportOptions::default())?;
    save_inherited(&model, out).map(Some)
}

/// Runs the one-shot search into `out`.
pub fn run(
    args: &SearchArgs,
    world: World,
    out: &Path,
    resume: bool,
    started: Instant,
) -> Result<ExitCode> {
    let shape = supernet_shape(&args.space)?;
    if args.space == "darts" && args.strategy == "unas" {
        bail!(
            "--strategy unas: its latency term is built on NAS-Bench-201's one-decision-per-edge cells; use --space nb201, or another strategy with --space darts"
        );
    }
    let (data, channels, classes) = search_data(args, false)?;

    // UNAS's latency term: a table target is fitted to a linear table (differentiable);
    // a measured target enters through the REINFORCE term only.
    let space = space_by_name(&args.space)?;
    let latency_model: Arc<dyn hwnas_core::LatencyModel> = Arc::from(world.search_latency);
    let source = if args.target.starts_with("table:") && args.strategy == "unas" {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
        let nb201 = Nb201Space::new();
        let archs: Vec<_> = (0..2000).map(|_| nb201.sample(&mut rng)).collect();
        LatencySource::Table(AdditiveLatency::fit(
            latency_model.as_ref(),
            &archs,
            shape.0,
            shape.1,
        )?)
    } else {
        LatencySource::Measured(Arc::clone(&latency_model))
    };
    let penalty = LatencyPenalty {
        source,
        target_ms: world.budget_ms,
        weight: (1.0 / world.budget_ms) as f32,
    };
    let strategy = by_name(
        &args.strategy,
        shape,
        ArchSchedule::default(),
        Some(penalty),
    )?;
    let checkpoint = out.join("checkpoint.bin");
    let mut run = if resume && checkpoint.exists() {
        OneShotRun::resume(&checkpoint, strategy)?
    } else {
        let net = build_supernet(args, channels, classes)?;
        OneShotRun::new(
            SupernetTrainer::new(net, WeightSchedule::default()),
            strategy,
        )
    };
    let config = search_config(args, &data);
    let backend = backend(args)?;
    train(args, out, (&mut run, backend.as_ref()), &data, &config)?;

    let (arch, accuracy, _) = run.evaluate(backend.as_ref(), &data, &config)?;
    let arch_text = space.format(&arch);
    let (latency_ms, measured) = match &world.measured {
        Some(m) => (m.arch_ms(&arch)?, true),
        None => (latency_model.latency_ms(&arch)?, false),
    };
    let onnx_path = out.join("best.onnx");
    let model = export_arch(
        space.name(),
        &arch_text,
        &mut RandomWeights::new(0),
        ExportOptions::default(),
    )?;
    std::fs::write(&onnx_path, encode(&model))
        .with_context(|| format!("cannot write {}", onnx_path.display()))?;
    let inherited_onnx = write_inherited((&run, backend.as_ref()), &arch, &data, &config, out)?;
    // The table the world already loaded (for --dataset, cifar10 by default).
    let table_test_accuracy = world
        .nb201_table
        .as_ref()
        .and_then(|t| t.evaluate(&arch).ok())
        .and_then(|e| e.test_accuracy);
    let json = OneShotJson {
        space: space.name().into(),
        strategy: args.strategy.clone(),
        arch: arch_text.clone(),
        latency_ms,
        latency_budget_ms: world.budget_ms,
        within_budget: latency_ms <= world.budget_ms,
        accuracy_estimate: accuracy,
        onnx: onnx_path.display().to_string(),
        measured,
        queries: 0,
        steps: run.step,
        epochs: config.epochs,
        data: args.data.clone(),
        supernet: run.trainer.net.describe(),
        kernels: backend.name(),
        table_test_accuracy,
        inherited_onnx: inherited_onnx.as_ref().map(|p| p.display().to_string()),
        input_normalisation: (
            data.normalisation.mean.clone(),
            data.normalisation.std.clone(),
        ),
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    let report = format!(
        "# hwnas one-shot search\n\n- strategy: {}\n- data: {} ({} + {} search images, {} held out)\n- supernet: {} (kernels: {})\n- steps: {} ({} epochs)\n- architecture: `{}`\n- held-out accuracy with inherited weights (after batch-norm recalibration): {:.2}%\n- NAS-Bench-201 {} test accuracy of this cell (transfer check): {}\n- latency: {:.3} ms ({}), budget {:.3} ms ({})\n- best.onnx: the cell in the benchmark's network, as measured for latency (random weights)\n{}- wall time: {:.0} s\n",
        json.strategy,
        json.data,
        data.train.len(),
        data.valid.len(),
        data.eval.len(),
        json.supernet,
        json.kernels,
        json.steps,
        json.epochs,
        json.arch,
        json.accuracy_estimate,
        args.dataset,
        match (space.name(), table_test_accuracy) {
            ("nb201", Some(a)) => format!("{a:.2}%"),
            ("nb201", None) => "table not found".into(),
            _ => "no table covers this space".into(),
        },
        latency_ms,
        if measured {
            "measured end to end"
        } else {
            "from the latency model"
        },
        world.budget_ms,
        world.budget_origin,
        match &json.inherited_onnx {
            Some(path) => format!(
                "- {path}: the cell at the supernet's size with the weights it inherits (batch norm recalibrated and folded): the network the held-out accuracy was measured with; inputs are images in [0, 1] normalised per channel with mean {:?} and std {:?}\n",
                json.input_normalisation.0, json.input_normalisation.1
            ),
            None => String::new(),
        },
        json.wall_seconds
    );
    std::fs::write(out.join("report.md"), &report)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
