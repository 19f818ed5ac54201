//! Batch-norm statistics of a supernet: running averages during training, and the
//! recalibration one-shot evaluation needs (a subnet's statistics differ from the
//! supernet's, so they are re-estimated on training batches before the subnet is scored).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One batch's statistics: per training-mode layer, its name, mean and variance.
pub type BatchStats = Vec<(String, Vec<f32>, Vec<f32>)>;

/// Per batch-norm layer (by name): mean and variance per channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BnStats {
    layers: BTreeMap<String, (Vec<f32>, Vec<f32>)>,
}

impl BnStats {
    /// Statistics of one layer.
    pub fn get(&self, name: &str) -> Option<(&[f32], &[f32])> {
        self.layers
            .get(name)
            .map(|(m, v)| (m.as_slice(), v.as_slice()))
    }

    /// Running averages: `stat <- (1 - momentum) stat + momentum batch` (PyTorch's
    /// convention, momentum 0.1), the unbiased variance as PyTorch keeps it.
    pub fn update_running(
        &mut self,
        batch: &[(String, Vec<f32>, Vec<f32>)],
        momentum: f32,
        count: usize,
    ) {
        let unbias = if count > 1 {
            count as f32 / (count - 1) as f32
        } else {
            1.0
        };
        for (name, mean, var) in batch {
            let entry = self
                .layers
                .entry(name.clone())
                .or_insert_with(|| (vec![0.0; mean.len()], vec![1.0; var.len()]));
            for (s, b) in entry.0.iter_mut().zip(mean) {
                *s = (1.0 - momentum) * *s + momentum * b;
            }
            for (s, b) in entry.1.iter_mut().zip(var) {
                *s = (1.0 - momentum) * *s + momentum * b * unbias;
            }
        }
    }

    /// The average of several batches' statistics (recalibration): the mean of the batch
    /// means, and the mean of the batch variances.
    pub fn average(batches: &[BatchStats]) -> BnStats {
        let mut sums: BTreeMap<String, (Vec<f32>, Vec<f32>, usize)> = BTreeMap::new();
        for batch in batches {
            for (name, mean, var) in batch {
                let entry = sums
                    .entry(name.clone())
                    .or_insert_with(|| (vec![0.0; mean.len()], vec![0.0; var.len()], 0));
                entry.0.iter_mut().zip(mean).for_each(|(s, v)| *s += v);
                entry.1.iter_mut().zip(var).for_each(|(s, v)| *s += v);
                entry.2 += 1;
            }
        }
        BnStats {
            layers: sums
                .into_iter()
                .map(|(name, (m, v, n))| {
                    let n = n as f32;
                    (
                        name,
                        (
                            m.into_iter().map(|x| x / n).collect(),
                            v.into_iter().map(|x| x / n).collect(),
                        ),
                    )
                })
                .collect(),
        }
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
