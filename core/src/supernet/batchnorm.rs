//! Batch-norm statistics of a supernet: running averages during training, and the
//! recalibration one-shot evaluation needs (a subnet's statistics differ from the
//! supernet's, so they are re-estimated on training batches before the subnet is scored).

use std::collections::BTreeMap;

use hwnas_kernels::{Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One batch's statistics: per training-mode layer, its name, mean and variance (`[C]`
/// tensors, where the backend computed them).
pub type BatchStats = Vec<(String, Tensor, Tensor)>;

/// Per batch-norm layer (by name): mean and variance per channel. Running averages stay
/// where the backend computes (a wgpu device during training); [`BnStats::get`] reads a
/// layer back when the host asks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BnStats {
    #[serde(with = "layer_values")]
    layers: BTreeMap<String, (Tensor, Tensor)>,
}

impl BnStats {
    /// Statistics of one layer, on the host.
    pub fn get(&self, name: &str) -> Option<(&[f32], &[f32])> {
        self.layers.get(name).map(|(m, v)| (m.data(), v.data()))
    }

    /// Statistics of one layer, where they were computed: `(mean, var)`, `[C]` each.
    pub fn tensors(&self, name: &str) -> Option<(&Tensor, &Tensor)> {
        self.layers.get(name).map(|(m, v)| (m, v))
    }

    /// The same statistics where `backend` computes (one upload per layer for the wgpu
    /// backend, so the steps that read them upload nothing).
    pub fn to_device(&self, backend: &dyn Backend) -> Result<BnStats> {
        let mut layers = BTreeMap::new();
        for (name, (m, v)) in &self.layers {
            layers.insert(name.clone(), (backend.to_device(m)?, backend.to_device(v)?));
        }
        Ok(BnStats { layers })
    }

    /// Running averages: `stat <- (1 - momentum) stat + momentum batch` (PyTorch's
    /// convention, momentum 0.1), the unbiased variance as PyTorch keeps it; computed where
    /// `backend` computes (nothing is read back).
    pub fn update_running(
        &mut self,
        backend: &dyn Backend,
        batch: &BatchStats,
        momentum: f32,
        count: usize,
    ) -> Result<()> {
        let unbias = if count > 1 {
            count as f32 / (count - 1) as f32
        } else {
            1.0
        };
        for (name, mean, var) in batch {
            let (old_mean, old_var) = match self.layers.remove(name) {
                Some(pair) => pair,
                None => (
                    backend.zeros(mean.shape())?,
                    backend.full(var.shape(), 1.0)?,
                ),
            };
            let new_mean = blend(backend, &old_mean, mean, 1.0 - momentum, momentum)?;
            let new_var = blend(backend, &old_var, var, 1.0 - momentum, momentum * unbias)?;
            self.layers.insert(name.clone(), (new_mean, new_var));
        }
        Ok(())
    }

    /// The average of several batches' statistics (recalibration): the mean of the batch
    /// means, and the mean of the batch variances (on the host: read back once per batch).
    pub fn average(batches: &[BatchStats]) -> BnStats {
        let mut sums: BTreeMap<String, (Vec<f32>, Vec<f32>, usize)> = BTreeMap::new();
        for batch in batches {
            for (name, mean, var) in batch {
                let entry = sums
                    .entry(name.clone())
                    .or_insert_with(|| (vec![0.0; mean.len()], vec![0.0; var.len()], 0));
                entry
                    .0
                    .iter_mut()
                    .zip(mean.data())
                    .for_each(|(s, v)| *s += v);
                entry
                    .1
                    .iter_mut()
                    .zip(var.data())
                    .for_each(|(s, v)| *s += v);
                entry.2 += 1;
            }
        }
        BnStats {
            layers: sums
                .into_iter()
                .map(|(name, (m, v, n))| {
                    let n = n as f32;
                    let flat = |values: Vec<f32>| {
                        let values: Vec<f32> = values.into_iter().map(|x| x / n).collect();
                        Tensor::new(&[values.len()], values).expect("a flat tensor")
                    };
                    (name, (flat(m), flat(v)))
                })
                .collect(),
        }
    }

    /// The layers' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.layers.keys().map(String::as_str)
    }

    /// Number of layers with statistics.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

/// `alpha old + beta batch` over the channels both have; `old`'s further channels kept as
/// they are (an elastic-width subnet's narrower layer updates the first channels of the
/// widest one's statistics, Once-for-All's rule).
fn blend(
    backend: &dyn Backend,
    old: &Tensor,
    batch: &Tensor,
    alpha: f32,
    beta: f32,
) -> Result<Tensor> {
    let shared = old.len().min(batch.len());
    let first = |t: &Tensor| -> Result<Tensor> {
        Ok(match t.len() > shared {
            true => backend.slice_axis(t, 0, 0, shared)?,
            false => t.clone(),
        })
    };
    let head = backend.axpby(&first(old)?, &first(batch)?, alpha, beta)?;
    if old.len() == shared {
        return Ok(head);
    }
    let rest = old.len() - shared;
    let tail = backend.slice_axis(old, 0, shared, rest)?;
    let as_channels = |t: Tensor, c: usize| t.reshape(&[1, c, 1, 1]);
    let joined =
        backend.concat_channels(&[&as_channels(head, shared)?, &as_channels(tail, rest)?])?;
    Ok(joined.reshape(&[old.len()])?)
}

/// Serde for the layers as plain value lists (the format before they became tensors): a
/// device tensor is read back; deserialised ones are flat, on the host.
mod layer_values {
    use std::collections::BTreeMap;

    use hwnas_kernels::Tensor;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Layers = BTreeMap<String, (Tensor, Tensor)>;

    pub fn serialize<S: Serializer>(layers: &Layers, s: S) -> Result<S::Ok, S::Error> {
        let values: BTreeMap<&str, (&[f32], &[f32])> = layers
            .iter()
            .map(|(name, (m, v))| (name.as_str(), (m.data(), v.data())))
            .collect();
        values.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Layers, D::Error> {
        let values = BTreeMap::<String, (Vec<f32>, Vec<f32>)>::deserialize(d)?;
        let flat = |v: Vec<f32>| Tensor::new(&[v.len()], v).map_err(serde::de::Error::custom);
        values
            .into_iter()
            .map(|(name, (m, v))| Ok((name, (flat(m)?, flat(v)?))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use hwnas_kernels::Cpu;

    use super::*;

    fn flat(values: &[f32]) -> Tensor {
        Tensor::new(&[values.len()], values.to_vec()).unwrap()
    }

    /// PyTorch's update, `(1 - m) s + m b` and `(1 - m) s + m b n / (n - 1)`, over the
    /// channels a batch has: a narrower layer (an elastic width) leaves the rest as they
    /// were, and a layer seen first starts from mean 0 and variance 1.
    #[test]
    fn running_statistics_blend_the_channels_a_batch_has() {
        let mut stats = BnStats::default();
        let batch = |m: &[f32], v: &[f32]| vec![("l".to_string(), flat(m), flat(v))];
        stats
            .update_running(&Cpu, &batch(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 0.1, 5)
            .unwrap();
        let unbias = 5.0f32 / 4.0;
        let (m, v) = stats.get("l").unwrap();
        assert_eq!(m, &[1.0, 2.0, 3.0].map(|b: f32| 0.9 * 0.0 + 0.1 * b));
        let expected_var: Vec<f32> = [4.0f32, 5.0, 6.0]
            .iter()
            .map(|b| 0.9 * 1.0 + 0.1 * unbias * b)
            .collect();
        assert_eq!(v, expected_var.as_slice());
        let before: Vec<f32> = m.to_vec();
        stats
            .update_running(&Cpu, &batch(&[10.0], &[0.0]), 0.1, 5)
            .unwrap();
        let (m, _) = stats.get("l").unwrap();
        assert_eq!(m[0], 0.9 * before[0] + 0.1 * 10.0);
        assert_eq!(&m[1..], &before[1..]);
        assert_eq!(m.len(), 3);
    }
}
