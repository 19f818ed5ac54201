//! A model's accuracy in ONNX Runtime on a labelled image set: what a user checks before
//! shipping the file a search wrote.

use hwnas_core::images::ImageSet;

use crate::error::{Error, Result};
use crate::profile::ModelRunner;

/// How a model classified a set of images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// Top-1 accuracy in percent.
    pub accuracy: f64,
    /// Images classified.
    pub images: usize,
    /// Of which correctly.
    pub correct: usize,
}

/// Classifies every image of `set` (values as the set holds them) with the model
/// `runner` holds, one image per run, and counts the top-1 hits. The model must take
/// `[1, C, H, W]` inputs of the set's image shape and answer with one score per class.
pub fn accuracy(runner: &mut ModelRunner, set: &ImageSet) -> Result<Accuracy> {
    let [n, c, h, w] = set.shape;
    let wanted: Vec<i64> = [1, c, h, w].iter().map(|&d| d as i64).collect();
    if runner.input_shape() != wanted.as_slice() {
        return Err(Error::Setting(format!(
            "the model takes inputs of shape {:?}, the images are {c}x{h}x{w} (channels x height x width); evaluate it on images like those it was trained on",
            runner.input_shape()
        )));
    }
    if n == 0 {
        return Err(Error::Setting("the image set is empty".into()));
    }
    let plane = c * h * w;
    let mut correct = 0;
    for (i, (image, &label)) in set.images.chunks(plane).zip(&set.labels).enumerate() {
        runner.set_input(image.to_vec())?;
        let scores = runner.run()?;
        if label >= scores.len() {
            return Err(Error::Setting(format!(
                "image {i} has label {label}, the model answers {} classes; is this the data set it was trained for?",
                scores.len()
            )));
        }
        if let Some(bad) = scores.iter().find(|v| !v.is_finite()) {
            return Err(Error::Ort(format!(
                "the model answered {bad} for image {i}; its weights are damaged"
            )));
        }
        let predicted = scores
            .iter()
            .enumerate()
            .fold(0, |best, (k, &v)| if v > scores[best] { k } else { best });
        correct += usize::from(predicted == label);
    }
    Ok(Accuracy {
        accuracy: 100.0 * correct as f64 / n as f64,
        images: n,
        correct,
    })
}
