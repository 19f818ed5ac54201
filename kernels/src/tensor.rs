//! Host tensors: a shape and row-major `f32` data (NCHW for images).

use std::sync::Arc;

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};

/// An `f32` tensor in host memory, row-major. Clones share the values (copy on write), so
/// an op that passes its input through unchanged holds no second copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Arc<Vec<f32>>,
}

impl Tensor {
    /// A tensor from a shape and data of matching length.
    pub fn new(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(Error::Shape(format!(
                "shape {shape:?} holds {expected} values, got {}",
                data.len()
            )));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data: Arc::new(data),
        })
    }

    /// Zeros of a shape.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: Arc::new(vec![0.0; shape.iter().product()]),
        }
    }

    /// Standard-normal values times `scale`, from a seed.
    pub fn randn(shape: &[usize], scale: f32, seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let data = (0..shape.iter().product::<usize>())
            .map(|_| {
                scale * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng)
            })
            .collect();
        Tensor {
            shape: shape.to_vec(),
            data: Arc::new(data),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, mutably (copied first when another tensor shares them).
    pub fn data_mut(&mut self) -> &mut [f32] {
        Arc::make_mut(&mut self.data).as_mut_slice()
    }

    /// The values, by value (copied when another tensor shares them).
    pub fn into_data(self) -> Vec<f32> {
        Arc::try_unwrap(self.data).unwrap_or_else(|shared| (*shared).clone())
    }

    /// Identifies the buffer holding the values: equal for a tensor and its clones (which
    /// share it), different for tensors that hold their own (memory accounting).
    pub fn storage_id(&self) -> usize {
        Arc::as_ptr(&self.data) as usize
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The same values under another shape of equal size.
    pub fn reshape(self, shape: &[usize]) -> Result<Self> {
        let expected: usize = shape.iter().product();
        if expected != self.data.len() {
            return Err(Error::Shape(format!(
                "shape {shape:?} holds {expected} values, got {}",
                self.data.len()
            )));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data: self.data,
        })
    }

    /// The four dimensions of an NCHW tensor.
    pub fn nchw(&self) -> Result<[usize; 4]> {
        match self.shape.as_slice() {
            &[n, c, h, w] => Ok([n, c, h, w]),
            other => Err(Error::Shape(format!(
                "expected an NCHW tensor, got shape {other:?}"
            ))),
        }
    }
}

/// How closely two results must agree: `|x - y| <= max(rtol * |x + y|, atol)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Relative part.
    pub rtol: f32,
    /// Absolute floor.
    pub atol: f32,
}

impl Tolerance {
    /// Same arithmetic in another order (GPU vs CPU sums).
    pub const REORDERED: Tolerance = Tolerance {
        rtol: 1e-4,
        atol: 1e-4,
    };
    /// Central finite differences in `f32`.
    pub const FINITE_DIFFERENCE: Tolerance = Tolerance {
        rtol: 2e-2,
        atol: 2e-3,
    };

    /// The first index where `a` and `b` disagree, with both values.
    pub fn first_mismatch(&self, a: &[f32], b: &[f32]) -> Option<(usize, f32, f32)> {
        if a.len() != b.len() {
            return Some((a.len().min(b.len()), f32::NAN, f32::NAN));
        }
        a.iter()
            .zip(b)
            .enumerate()
            .find(|(_, (x, y))| {
                let within = (*x - *y).abs() <= (self.rtol * (*x + *y).abs()).max(self.atol);
                // NaN anywhere is a mismatch.
                !within
            })
            .map(|(i, (x, y))| (i, *x, *y))
    }
}
