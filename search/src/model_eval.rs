//! `hwnas eval`: a shipped model's accuracy in ONNX Runtime on a labelled data set — the
//! check a user runs before shipping what a search wrote.

use std::path::{Path, PathBuf};

use hwnas_core::images::{ImageSet, Split};
use hwnas_latency::profile::ModelRunner;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::plan::DataSource;

/// A model's accuracy, as `hwnas eval --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Top-1 accuracy in percent.
    pub accuracy: f64,
    /// Images classified.
    pub images: usize,
    /// The model file.
    pub model: PathBuf,
    /// The data set, as `--data` names it.
    pub data: String,
    /// `train` or `test` (a folder of images is read whole: `folder`).
    pub split: String,
    /// Wall seconds of the evaluation (loading the images included).
    pub seconds: f64,
}

impl EvalReport {
    /// The report for a person.
    pub fn text(&self) -> String {
        format!(
            "{}: {:.2}% top-1 on {} {} images of {} ({:.1} s)",
            self.model.display(),
            self.accuracy,
            self.images,
            self.split,
            self.data,
            self.seconds
        )
    }
}

/// The images of `data`'s `split`; a folder of images is read at `size` x `size`.
fn images(data: &DataSource, split: Split, size: usize) -> Result<ImageSet> {
    Ok(match (data, split) {
        (DataSource::FashionMnist, split) => ImageSet::fashion_mnist(None, split)?,
        (DataSource::Cifar(dir), Split::Train) => ImageSet::cifar_train(dir)?,
        (DataSource::Cifar(dir), Split::Test) => ImageSet::cifar_test(dir)?,
        (DataSource::Folder(dir), _) => ImageSet::read_folder(dir, size)?.0,
    })
}

/// The test split of a published data set (`None` for a folder of images, which has none).
pub fn test_split(data: &DataSource) -> Result<Option<ImageSet>> {
    match data {
        DataSource::Folder(_) => Ok(None),
        _ => images(data, Split::Test, 32).map(Some),
    }
}

/// Classifies the images of `data` (its `split`; `limit` of them evenly spaced when given)
/// with the ONNX model at `model`, which takes images in [0, 1] as the searches'
/// `best-inherited.onnx` does, on `threads` ONNX Runtime threads.
pub fn evaluate_model(
    model: &Path,
    data: &DataSource,
    split: Split,
    limit: Option<usize>,
    threads: usize,
) -> Result<EvalReport> {
    let started = std::time::Instant::now();
    if limit == Some(0) {
        return Err(Error::Plan {
            setting: "limit",
            value: "0".into(),
            problem: "evaluate at least one image; leave --limit out for the whole split".into(),
        });
    }
    let mut runner = model_runner(model, threads)?;
    // A folder's images are resized to the model's input side.
    let side = runner
        .input_shape()
        .last()
        .map_or(32, |&d| d.max(1) as usize);
    let mut set = images(data, split, side)?;
    if let Some(limit) = limit.filter(|&l| l < set.labels.len()) {
        // Evenly spaced over the set: a folder's images come class after class.
        let n = set.labels.len();
        let picked: Vec<usize> = (0..limit).map(|i| i * n / limit).collect();
        set = set.subset(&picked);
    }
    report(model, data, split, &mut runner, &set, started)
}

/// An ONNX Runtime session over the model file at `model` on `threads` threads.
pub fn model_runner(model: &Path, threads: usize) -> Result<ModelRunner> {
    let bytes = std::fs::read(model).map_err(|e| Error::io("read", model, e))?;
    Ok(ModelRunner::new(&bytes, threads, true)?)
}

/// Classifies `set`, the images of `data`'s `split`, with `runner`'s model (`model`).
pub fn report(
    model: &Path,
    data: &DataSource,
    split: Split,
    runner: &mut ModelRunner,
    set: &ImageSet,
    started: std::time::Instant,
) -> Result<EvalReport> {
    let result = hwnas_latency::accuracy::accuracy(runner, set)?;
    Ok(EvalReport {
        accuracy: result.accuracy,
        images: result.images,
        model: model.to_path_buf(),
        data: data.to_string(),
        split: match (data, split) {
            (DataSource::Folder(_), _) => "folder",
            (_, Split::Train) => "train",
            (_, Split::Test) => "test",
        }
        .to_string(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
