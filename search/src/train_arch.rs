//! `hwnas train`: one architecture — found by any search — trained on the user's images as
//! a network of its own, written as ONNX with its input normalisation inside, and scored
//! on the held-out images and on the data set's test split in ONNX Runtime.

use std::path::{Path, PathBuf};

use hwnas_core::images::Split;
use hwnas_core::oneshot::OneShotRun;
use hwnas_core::space::ofa::parse_config;
use hwnas_core::supernet::Supernet;
use hwnas_latency::export::ExportOptions;
use hwnas_latency::export::inherited::{nb201_inherited, ofa_inherited};
use hwnas_latency::onnx::builder::encode;
use hwnas_latency::onnx::normalise::prepend_normalisation;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model_eval::{model_runner, test_split};
use crate::observer::Observer;
use crate::plan::{SearchPlan, SpaceKind};

/// What `hwnas train --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// The space.
    pub space: String,
    /// The architecture, in the space's text format.
    pub arch: String,
    /// The images, as `--data` names them.
    pub data: String,
    /// Epochs trained.
    pub epochs: usize,
    /// The supernet run directory whose inherited weights training started from (none:
    /// from scratch).
    pub from: Option<PathBuf>,
    /// Training images.
    pub train_images: usize,
    /// Accuracy (%) on the held-out training images, after batch-norm recalibration.
    pub heldout_accuracy: f64,
    /// Accuracy (%) of the written ONNX model in ONNX Runtime on the data set's test split
    /// (none for a folder of images, which has no split).
    pub test_accuracy: Option<f64>,
    /// Test images scored.
    pub test_images: Option<usize>,
    /// The trained network.
    pub onnx: PathBuf,
    /// The report for a person.
    pub report: PathBuf,
    /// Wall seconds.
    pub seconds: f64,
}

impl TrainReport {
    /// The report for a person.
    pub fn text(&self) -> String {
        let test = match (self.test_accuracy, self.test_images) {
            (Some(a), Some(n)) => format!("{a:.2}% on {n} test images (ONNX Runtime)"),
            _ => "no test split (a folder of images)".to_string(),
        };
        format!(
            "trained {} {} for {} epochs on {} images of {}: {:.2}% held out, {test}\nwrote {} and {} ({:.0} s)",
            self.space,
            self.arch,
            self.epochs,
            self.train_images,
            self.data,
            self.heldout_accuracy,
            self.onnx.display(),
            self.report.display(),
            self.seconds
        )
    }
}

/// Trains `arch_text` of `plan.space` as its `--evaluator train` candidates are trained
/// (`plan`'s images, epochs, batch size, seed and supernet sizes), writes
/// `plan.out/trained.onnx` and `plan.out/report.md`, and scores the file.
pub fn train_architecture(
    plan: &SearchPlan,
    arch_text: &str,
    from: Option<&Path>,
    observer: &dyn Observer,
) -> Result<TrainReport> {
    let started = std::time::Instant::now();
    if plan.space == SpaceKind::Darts {
        return Err(Error::plan(
            "space",
            "darts",
            "hwnas train writes NAS-Bench-201 cells and Once-for-All subnets; a DARTS genotype's trained network has no ONNX export yet",
        ));
    }
    if plan.epochs == 0 {
        return Err(Error::plan("epochs", 0, "train for at least one epoch"));
    }
    let space = crate::world::training_space(plan)?;
    let arch = space.parse(arch_text)?;
    let onnx = plan.out.join("trained.onnx");
    let report_path = plan.out.join("report.md");
    for file in [&onnx, &report_path] {
        if file.exists() {
            return Err(Error::plan(
                "out",
                plan.out.display(),
                format!(
                    "{} already exists (another run's?); give another --out",
                    file.display()
                ),
            ));
        }
    }
    // The test split is read before training: a missing one must not cost the training.
    let test_set = test_split(&plan.data)?;
    // A supernet search's run directory: start from the weights the architecture inherits.
    let initial = match from {
        None => None,
        Some(dir) => {
            let checkpoint = dir.join("checkpoint.bin");
            if !checkpoint.is_file() {
                return Err(Error::plan(
                    "from",
                    dir.display(),
                    "holds no checkpoint.bin; give the run directory of a supernet search (--evaluator supernet)",
                ));
            }
            let (net, steps) = OneShotRun::saved_supernet(&checkpoint)?;
            if net.space() != plan.space.as_str() {
                return Err(Error::plan(
                    "from",
                    dir.display(),
                    format!(
                        "its supernet is of the {} space, not --space {}; give the matching --space",
                        net.space(),
                        plan.space.as_str()
                    ),
                ));
            }
            observer.note(&format!(
                "starting from the weights {} inherits from {} ({steps} supernet steps)",
                arch_text,
                checkpoint.display()
            ));
            Some(net)
        }
    };
    std::fs::create_dir_all(&plan.out).map_err(|e| Error::io("create", &plan.out, e))?;
    let evaluator = crate::oneshot::training_evaluator_from(plan, initial, observer)?;
    observer.note(&format!(
        "training {} for {} epochs",
        space.format(&arch),
        plan.epochs
    ));
    let (trainer, heldout) = evaluator.train(&arch)?;
    let stats = evaluator.recalibrate(&trainer, &arch)?;
    let model = match &trainer.net {
        Supernet::Nb201(net) => {
            let side = crate::world::image_side(plan) as usize;
            nb201_inherited(net, &stats, &arch, side, ExportOptions::default())?
        }
        Supernet::Ofa(net) => {
            let config = parse_config(&space.format(&arch))?;
            ofa_inherited(net, &stats, &config, ExportOptions::default())?
        }
        Supernet::Darts(_) => unreachable!("refused above"),
    };
    let norm = evaluator.normalisation();
    let model = prepend_normalisation(model, &norm.mean, &norm.std)?;
    std::fs::write(&onnx, encode(&model)).map_err(|e| Error::io("write", &onnx, e))?;
    let test = match &test_set {
        None => None,
        Some(set) => {
            let mut runner = model_runner(&onnx, 1)?;
            let started = std::time::Instant::now();
            Some(crate::model_eval::report(
                &onnx,
                &plan.data,
                Split::Test,
                &mut runner,
                set,
                started,
            )?)
        }
    };
    let mut report = TrainReport {
        space: plan.space.as_str().to_string(),
        arch: space.format(&arch),
        data: plan.data.to_string(),
        epochs: plan.epochs,
        from: from.map(Path::to_path_buf),
        train_images: evaluator.train_len(),
        heldout_accuracy: heldout,
        test_accuracy: test.as_ref().map(|t| t.accuracy),
        test_images: test.as_ref().map(|t| t.images),
        onnx: onnx.clone(),
        report: report_path.clone(),
        seconds: 0.0,
    };
    report.seconds = started.elapsed().as_secs_f64();
    let md = format!(
        "# hwnas train\n\n- space: {}\n- architecture: `{}`\n- started from: {}\n- data: {} ({} training images, {} held out)\n- epochs: {} (NAS-Bench-201's schedule: SGD, lr 0.1 cosine to 0, momentum 0.9, weight decay 5e-4), batch size {}, seed {}\n- held-out accuracy (after batch-norm recalibration): {:.2}%\n- test accuracy of `trained.onnx` in ONNX Runtime: {}\n- wall time: {:.0} s\n\n`trained.onnx` takes images in [0, 1] (the per-channel normalisation, mean {:?} and std {:?}, is its first two nodes); `hwnas eval {} --data {}` checks it.\n",
        report.space,
        report.arch,
        match from {
            Some(dir) => format!(
                "the weights it inherits from the supernet in {}",
                dir.display()
            ),
            None => "fresh weights (seeded)".to_string(),
        },
        report.data,
        report.train_images,
        plan.eval_images,
        plan.epochs,
        plan.batch_size,
        plan.seed,
        heldout,
        match (report.test_accuracy, report.test_images) {
            (Some(a), Some(n)) => format!("{a:.2}% ({n} images)"),
            _ => "not measured (a folder of images has no test split)".to_string(),
        },
        report.seconds,
        norm.mean,
        norm.std,
        onnx.display(),
        report.data
    );
    std::fs::write(&report_path, md).map_err(|e| Error::io("write", &report_path, e))?;
    Ok(report)
}
