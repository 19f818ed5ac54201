//! Tensors: a shape and row-major `f32` values (NCHW for images), held in host memory or,
//! for the wgpu backend, in a device buffer ([`crate::gpu::DeviceValues`]).

use std::sync::Arc;

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::gpu::DeviceValues;

/// Where a tensor's values live.
#[derive(Debug, Clone)]
enum Storage {
    /// Host memory (the CPU backend's, and every tensor made from host data).
    Host(Arc<Vec<f32>>),
    /// A device buffer written by the wgpu backend.
    Device(Arc<DeviceValues>),
}

/// An `f32` tensor, row-major. Clones share the values (copy on write), so an op that
/// passes its input through unchanged holds no second copy. A tensor the wgpu backend
/// computed stays on its device; [`Tensor::data`] reads it back (once) when the host asks.
#[derive(Debug, Clone)]
pub struct Tensor {
    shape: Vec<usize>,
    storage: Storage,
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data() == other.data()
    }
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
            storage: Storage::Host(Arc::new(data)),
        })
    }

    /// A tensor of values that live on a device.
    pub(crate) fn on_device(shape: &[usize], values: DeviceValues) -> Result<Self> {
        let expected: usize = shape.iter().product();
        if expected != values.len() {
            return Err(Error::Shape(format!(
                "shape {shape:?} holds {expected} values, the device buffer {}",
                values.len()
            )));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            storage: Storage::Device(Arc::new(values)),
        })
    }

    /// Zeros of a shape.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor {
            shape: shape.to_vec(),
            storage: Storage::Host(Arc::new(vec![0.0; shape.iter().product()])),
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
            storage: Storage::Host(Arc::new(data)),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Whether the values live on a device (no host copy is made until asked).
    pub fn is_on_device(&self) -> bool {
        matches!(self.storage, Storage::Device(_))
    }

    /// The device values, for the backend that computed them.
    pub(crate) fn device_values(&self) -> Option<&DeviceValues> {
        match &self.storage {
            Storage::Device(values) => Some(values),
            Storage::Host(_) => None,
        }
    }

    /// The values on the host: a device tensor is read back on the first call (and the
    /// copy kept), which fails only when the device is lost.
    pub fn try_data(&self) -> Result<&[f32]> {
        match &self.storage {
            Storage::Host(data) => Ok(data),
            Storage::Device(values) => values.host(),
        }
    }

    /// The values on the host (see [`Tensor::try_data`]).
    ///
    /// # Panics
    /// When a device tensor cannot be read back: the device was lost, and nothing that
    /// lives on it can be recovered.
    pub fn data(&self) -> &[f32] {
        match self.try_data() {
            Ok(data) => data,
            Err(e) => panic!("a tensor's values could not be read back from the device: {e}"),
        }
    }

    fn make_host(&mut self) {
        if let Storage::Device(values) = &self.storage {
            let data = match Arc::try_unwrap(values.clone()) {
                Ok(owned) => owned.into_host(),
                Err(shared) => shared.host().map(<[f32]>::to_vec),
            };
            let data = match data {
                Ok(data) => data,
                Err(e) => {
                    panic!("a tensor's values could not be read back from the device: {e}")
                }
            };
            self.storage = Storage::Host(Arc::new(data));
        }
    }

    /// The values, mutably, in host memory (read back from a device first; copied first
    /// when another tensor shares them).
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.make_host();
        match &mut self.storage {
            Storage::Host(data) => Arc::make_mut(data).as_mut_slice(),
            Storage::Device(_) => unreachable!("made host above"),
        }
    }

    /// The values, by value (copied when another tensor shares them).
    pub fn into_data(mut self) -> Vec<f32> {
        self.make_host();
        match self.storage {
            Storage::Host(data) => Arc::try_unwrap(data).unwrap_or_else(|shared| (*shared).clone()),
            Storage::Device(_) => unreachable!("made host above"),
        }
    }

    /// Identifies the buffer holding the values: equal for a tensor and its clones (which
    /// share it), different for tensors that hold their own (memory accounting).
    pub fn storage_id(&self) -> usize {
        match &self.storage {
            Storage::Host(data) => Arc::as_ptr(data) as usize,
            Storage::Device(values) => Arc::as_ptr(values) as usize,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same values under another shape of equal size.
    pub fn reshape(self, shape: &[usize]) -> Result<Self> {
        let expected: usize = shape.iter().product();
        if expected != self.len() {
            return Err(Error::Shape(format!(
                "shape {shape:?} holds {expected} values, got {}",
                self.len()
            )));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            storage: self.storage,
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

/// Serde for a list of tensors as plain value lists, `Vec<Vec<f32>>` (a device tensor is
/// read back; deserialised tensors are flat, on the host): `#[serde(with = "...")]`.
pub mod flat_values {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::tensor::Tensor;

    /// Writes each tensor's values.
    pub fn serialize<S: Serializer>(tensors: &[Tensor], s: S) -> Result<S::Ok, S::Error> {
        let values: Vec<&[f32]> = tensors.iter().map(Tensor::data).collect();
        values.serialize(s)
    }

    /// Reads flat host tensors.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Tensor>, D::Error> {
        let values = Vec::<Vec<f32>>::deserialize(d)?;
        values
            .into_iter()
            .map(|v| Tensor::new(&[v.len()], v).map_err(serde::de::Error::custom))
            .collect()
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
