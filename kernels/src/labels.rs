//! A batch's class labels, held twice: as integers for the host, and as an `f32` tensor
//! where the backend computes, so that the loss, its gradient and the accuracy count of one
//! step read one upload of the labels instead of one each.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Labels `0..classes` of a batch's rows.
#[derive(Debug, Clone)]
pub struct Labels {
    classes: Vec<usize>,
    /// The same values as `f32` (exact below 2^24), `[rows]`, where the backend computes.
    values: Tensor,
}

/// The largest label an `f32` holds exactly.
const MAX_EXACT: usize = 1 << 24;

impl Labels {
    /// `classes` moved to where `backend` computes (one upload for the wgpu backend).
    pub fn new(backend: &dyn Backend, classes: &[usize]) -> Result<Self> {
        let host = Self::on_host(classes)?;
        Ok(Labels {
            values: backend.to_device(&host.values)?,
            classes: host.classes,
        })
    }

    /// `classes` in host memory (what the CPU backend reads; the wgpu backend uploads them at
    /// each use).
    pub fn on_host(classes: &[usize]) -> Result<Self> {
        if let Some(bad) = classes.iter().find(|&&c| c >= MAX_EXACT) {
            return Err(Error::Shape(format!(
                "label {bad} is too large: labels must be below {MAX_EXACT}"
            )));
        }
        let values = classes.iter().map(|&c| c as f32).collect();
        Ok(Labels {
            classes: classes.to_vec(),
            values: Tensor::new(&[classes.len()], values)?,
        })
    }

    /// The labels as integers.
    pub fn classes(&self) -> &[usize] {
        &self.classes
    }

    /// The labels as an `f32` tensor `[rows]`.
    pub fn values(&self) -> &Tensor {
        &self.values
    }

    /// Rows labelled.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_their_integers_and_values() {
        let labels = Labels::on_host(&[3, 0, 9]).unwrap();
        assert_eq!(labels.classes(), &[3, 0, 9]);
        assert_eq!(labels.values().data(), &[3.0, 0.0, 9.0]);
        assert_eq!(labels.len(), 3);
    }

    #[test]
    fn a_label_an_f32_cannot_hold_is_refused() {
        let err = Labels::on_host(&[1, MAX_EXACT]).unwrap_err().to_string();
        assert!(err.contains("16777216"), "{err}");
    }
}
