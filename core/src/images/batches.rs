//! From an image set to training batches: the papers' split of the training set (half to
//! train weights, half to train the architecture), per-channel normalisation, the standard
//! augmentation (random crop after zero padding, horizontal flip) and shuffled batches
//! that depend only on a seed and the epoch.

use hwnas_kernels::Tensor;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ImageSet;

/// Per-channel mean and standard deviation subtracted and divided out.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalisation {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Standard deviation per channel.
    pub std: Vec<f32>,
}

impl Normalisation {
    /// The statistics of `set` itself (computed on the training data, applied everywhere).
    pub fn of(set: &ImageSet) -> Self {
        let [n, c, h, w] = set.shape;
        let plane = h * w;
        let mut sum = vec![0.0f64; c];
        let mut squares = vec![0.0f64; c];
        for (i, values) in set.images.chunks(plane).enumerate() {
            for &v in values {
                sum[i % c] += f64::from(v);
                squares[i % c] += f64::from(v) * f64::from(v);
            }
        }
        let count = (n * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = squares
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / count - m * m).max(0.0).sqrt().max(1e-3)) as f32)
            .collect();
        Normalisation {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }
}

/// Training-time augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augmentation {
    /// Zero padding on each side before a random crop back to the original size (0: none).
    pub crop_padding: usize,
    /// Random horizontal flips.
    pub flip: bool,
}

impl Augmentation {
    /// No augmentation (validation and evaluation).
    pub const NONE: Augmentation = Augmentation {
        crop_padding: 0,
        flip: false,
    };

    /// The papers' CIFAR augmentation scaled to the image size: padding of 1/8 of the side
    /// (4 for 32x32) and flips.
    pub fn standard(side: usize) -> Self {
        Augmentation {
            crop_padding: (side / 8).max(1),
            flip: true,
        }
    }
}

/// One batch: `[B, C, H, W]` images and their labels.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Normalised (and augmented) images.
    pub images: Tensor,
    /// Labels.
    pub labels: Vec<usize>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// One more than the largest label.
    pub fn classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |m| m + 1)
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let [_, c, h, w] = self.shape;
        let size = c * h * w;
        let mut images = Vec::with_capacity(indices.len() * size);
        for &i in indices {
            images.extend_from_slice(&self.images[i * size..(i + 1) * size]);
        }
        ImageSet {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: [indices.len(), c, h, w],
        }
    }

    /// A seeded shuffle of the set cut in two: the first `first` images and the rest (the
    /// one-shot papers train weights on one half of the training set and the architecture on
    /// the other).
    pub fn split(&self, first: usize, seed: u64) -> (ImageSet, ImageSet) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let first = first.min(order.len());
        (self.subset(&order[..first]), self.subset(&order[first..]))
    }

    /// The batches of one epoch: a shuffle that depends only on `(seed, epoch)`, the last
    /// incomplete batch dropped (unless the set is smaller than one batch).
    pub fn epoch_batches(
        &self,
        batch_size: usize,
        seed: u64,
        epoch: usize,
        normalisation: &Normalisation,
        augmentation: Augmentation,
    ) -> EpochBatches<'_> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut rng);
        EpochBatches {
            set: self,
            order,
            next: 0,
            batch_size: batch_size.max(1),
            normalisation: normalisation.clone(),
            augmentation,
            rng,
        }
    }

    /// The images at `indices` as a batch, normalised, without augmentation.
    pub fn batch(&self, indices: &[usize], normalisation: &Normalisation) -> Batch {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        make_batch(self, indices, normalisation, Augmentation::NONE, &mut rng)
    }
}

fn make_batch(
    set: &ImageSet,
    indices: &[usize],
    normalisation: &Normalisation,
    augmentation: Augmentation,
    rng: &mut ChaCha8Rng,
) -> Batch {
    let [_, c, h, w] = set.shape;
    let pad = augmentation.crop_padding as isize;
    let mut out = vec![0.0f32; indices.len() * c * h * w];
    for (b, &i) in indices.iter().enumerate() {
        let (dy, dx) = if pad > 0 {
            let pad = pad as i64;
            (
                rng.random_range(-pad..=pad) as isize,
                rng.random_range(-pad..=pad) as isize,
            )
        } else {
            (0, 0)
        };
        let flip = augmentation.flip && rng.random_bool(0.5);
        for ch in 0..c {
            let (mean, std) = (normalisation.mean[ch], normalisation.std[ch]);
            let source = &set.images[((i * c) + ch) * h * w..((i * c) + ch + 1) * h * w];
            let target = &mut out[((b * c) + ch) * h * w..((b * c) + ch + 1) * h * w];
            for y in 0..h {
                for x in 0..w {
                    let sx = if flip { w - 1 - x } else { x } as isize + dx;
                    let sy = y as isize + dy;
                    // Zero padding is zero in the raw image, so (0 - mean) / std here.
                    let raw = if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        source[sy as usize * w + sx as usize]
                    } else {
                        0.0
                    };
                    target[y * w + x] = (raw - mean) / std;
                }
            }
        }
    }
    Batch {
        images: Tensor::new(&[indices.len(), c, h, w], out).expect("sizes agree"),
        labels: indices.iter().map(|&i| set.labels[i]).collect(),
    }
}

/// The batches of one epoch, see [`ImageSet::epoch_batches`].
pub struct EpochBatches<'a> {
    set: &'a ImageSet,
    order: Vec<usize>,
    next: usize,
    batch_size: usize,
    normalisation: Normalisation,
    augmentation: Augmentation,
    rng: ChaCha8Rng,
}

impl EpochBatches<'_> {
    /// Batches this epoch yields in all.
    pub fn batches_per_epoch(&self) -> usize {
        (self.order.len() / self.batch_size).max(usize::from(!self.order.is_empty()))
    }
}

impl Iterator for EpochBatches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.batches_per_epoch() {
            return None;
        }
        let start = self.next * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        self.next += 1;
        Some(make_batch(
            self.set,
            &self.order[start..end],
            &self.normalisation,
            self.augmentation,
            &mut self.rng,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> ImageSet {
        ImageSet {
            images: (0..n * 2 * 4 * 4).map(|v| (v % 7) as f32 / 7.0).collect(),
            labels: (0..n).map(|i| i % 3).collect(),
            shape: [n, 2, 4, 4],
        }
    }

    #[test]
    fn split_is_a_seeded_partition() {
        let set = ramp(10);
        let (a, b) = set.split(5, 1);
        assert_eq!((a.len(), b.len()), (5, 5));
        let (a2, _) = set.split(5, 1);
        assert_eq!(a.images, a2.images);
        let (a3, _) = set.split(5, 2);
        assert_ne!(a.labels.len() + a3.labels.len(), 0);
        let mut all: Vec<f32> = a.images.iter().chain(&b.images).copied().collect();
        let mut original = set.images.clone();
        all.sort_by(f32::total_cmp);
        original.sort_by(f32::total_cmp);
        assert_eq!(all, original);
    }

    #[test]
    fn normalised_batches_have_zero_mean_and_unit_spread() {
        let set = ramp(12);
        let norm = Normalisation::of(&set);
        let batches: Vec<Batch> = set
            .epoch_batches(12, 0, 0, &norm, Augmentation::NONE)
            .collect();
        assert_eq!(batches.len(), 1);
        let values = batches[0].images.data();
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32;
        assert!(
            mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
            "{mean} {var}"
        );
    }

    #[test]
    fn epochs_shuffle_deterministically_and_drop_the_last_partial_batch() {
        let set = ramp(10);
        let norm = Normalisation::of(&set);
        let aug = Augmentation::standard(4);
        let labels = |seed, epoch| -> Vec<Vec<usize>> {
            set.epoch_batches(4, seed, epoch, &norm, aug)
                .map(|b| b.labels)
                .collect()
        };
        assert_eq!(labels(3, 0).len(), 2);
        assert_eq!(labels(3, 0), labels(3, 0));
        let images = |epoch| -> Vec<f32> {
            set.epoch_batches(4, 3, epoch, &norm, aug)
                .flat_map(|b| b.images.into_data())
                .collect()
        };
        assert_eq!(images(1), images(1));
        assert_ne!(images(0), images(1));
    }

    #[test]
    fn flips_mirror_and_crops_shift_in_zeros() {
        let set = ImageSet {
            images: vec![0.0, 1.0, 0.0, 0.0],
            labels: vec![0],
            shape: [1, 1, 2, 2],
        };
        let norm = Normalisation {
            mean: vec![0.0],
            std: vec![1.0],
        };
        let mut seen = std::collections::HashSet::new();
        for epoch in 0..64 {
            let flip_only = Augmentation {
                crop_padding: 0,
                flip: true,
            };
            let b = set
                .epoch_batches(1, 0, epoch, &norm, flip_only)
                .next()
                .unwrap();
            seen.insert(b.images.data().iter().map(|v| *v as u8).collect::<Vec<_>>());
        }
        let expected: std::collections::HashSet<Vec<u8>> =
            [vec![0, 1, 0, 0], vec![1, 0, 0, 0]].into_iter().collect();
        assert_eq!(seen, expected);
        let crop = Augmentation {
            crop_padding: 1,
            flip: false,
        };
        let sums: std::collections::HashSet<u8> = (0..64)
            .map(|e| {
                let b = set.epoch_batches(1, 0, e, &norm, crop).next().unwrap();
                b.images.data().iter().sum::<f32>() as u8
            })
            .collect();
        assert_eq!(sums, [0u8, 1].into_iter().collect());
    }
}
