//! Image sets in the formats NAS users have: MNIST-style IDX files (optionally gzip, e.g.
//! Fashion-MNIST), CIFAR-10/100 binary batches ([`cifar`]) and a folder of images per class
//! ([`folder`]); images come back as `f32` in `[0, 1]`, `[N, C, H, W]`. [`batches`] splits,
//! normalises, augments and batches them.

pub mod batches;
pub mod cifar;
pub mod folder;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Which part of a published data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training images (what searches train and hold out from).
    Train,
    /// The test images, never seen by a search.
    Test,
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            other => Err(format!("unknown split `{other}`; use train or test")),
        }
    }
}

/// Images and labels.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// `[N, C, H, W]` values in `[0, 1]`.
    pub images: Vec<f32>,
    /// Labels, one per image.
    pub labels: Vec<usize>,
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
}

pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut bytes = Vec::new();
    let result = if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file).read_to_end(&mut bytes)
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes)
    };
    result.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(bytes)
}

fn idx(path: &Path, expected_type: u8) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = read_all(path)?;
    let bad = |problem: String| Error::Data {
        path: path.to_path_buf(),
        problem,
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != expected_type {
        return Err(bad(
            "not an IDX file of unsigned bytes (magic 0x00 0x00 0x08 ndim)".into(),
        ));
    }
    let ndim = usize::from(bytes[3]);
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad("truncated IDX header".into()));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let count: usize = dims.iter().product();
    if bytes.len() != header + count {
        return Err(bad(format!(
            "the header promises {count} values, the file holds {}",
            bytes.len() - header
        )));
    }
    Ok((dims, bytes[header..].to_vec()))
}

impl ImageSet {
    /// Reads an IDX image file and its label file.
    pub fn read_idx(images: &Path, labels: &Path) -> Result<Self> {
        let (dims, pixels) = idx(images, 8)?;
        let (label_dims, label_bytes) = idx(labels, 8)?;
        if dims.len() != 3 || label_dims.len() != 1 || label_dims[0] != dims[0] {
            return Err(Error::Data {
                path: images.to_path_buf(),
                problem: format!("images {dims:?} and labels {label_dims:?} do not pair up"),
            });
        }
        Ok(ImageSet {
            images: pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
            labels: label_bytes.iter().map(|&l| usize::from(l)).collect(),
            shape: [dims[0], 1, dims[1], dims[2]],
        })
    }

    /// Fashion-MNIST's training set from `dir` (the four `*-ubyte.gz` files) when given —
    /// only there: a folder that lacks them is an error, never replaced by another copy —
    /// else from the Debian package's folder, or the shared data.
    pub fn fashion_mnist_train(dir: Option<&Path>) -> Result<Self> {
        Self::fashion_mnist(dir, Split::Train)
    }

    /// Fashion-MNIST's training or test set, found as for [`ImageSet::fashion_mnist_train`].
    pub fn fashion_mnist(dir: Option<&Path>, split: Split) -> Result<Self> {
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let candidates: Vec<PathBuf> = match dir {
            Some(dir) => vec![dir.to_path_buf()],
            None => [PathBuf::from("/usr/share/datasets/fashion-mnist")]
                .into_iter()
                .chain(crate::data::shared_file("image-datasets/fashion-mnist"))
                .collect(),
        };
        for folder in &candidates {
            let images = folder.join(format!("{prefix}-images-idx3-ubyte.gz"));
            let labels = folder.join(format!("{prefix}-labels-idx1-ubyte.gz"));
            if images.is_file() && labels.is_file() {
                return Self::read_idx(&images, &labels);
            }
        }
        Err(Error::Setting {
            name: "data".into(),
            problem: format!(
                "Fashion-MNIST was not found in {}; install Debian's dataset-fashion-mnist or pass the folder",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// `count` images from `start`, zero-padded to `size`x`size` and repeated to 3 channels
    /// (how NAS-Bench-201's CIFAR networks take a grey image), with their labels.
    pub fn batch_rgb(&self, start: usize, count: usize, size: usize) -> (Vec<f32>, Vec<usize>) {
        let [n, _, h, w] = self.shape;
        let (pad_y, pad_x) = (size.saturating_sub(h) / 2, size.saturating_sub(w) / 2);
        let mut out = vec![0.0; count * 3 * size * size];
        let mut labels = Vec::with_capacity(count);
        for b in 0..count {
            let i = (start + b) % n;
            labels.push(self.labels[i]);
            for y in 0..h.min(size) {
                for x in 0..w.min(size) {
                    let v = self.images[(i * h + y) * w + x];
                    for c in 0..3 {
                        out[((b * 3 + c) * size + y + pad_y) * size + x + pad_x] = v;
                    }
                }
            }
        }
        (out, labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_generated_idx_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        images.extend([0, 255, 128, 64, 1, 2, 3, 4]);
        let labels = vec![0, 0, 8, 1, 0, 0, 0, 2, 7, 3];
        std::fs::write(dir.path().join("i"), &images).unwrap();
        std::fs::write(dir.path().join("l"), &labels).unwrap();
        let set = ImageSet::read_idx(&dir.path().join("i"), &dir.path().join("l")).unwrap();
        assert_eq!(set.shape, [2, 1, 2, 2]);
        assert_eq!(set.labels, vec![7, 3]);
        assert!((set.images[1] - 1.0).abs() < 1e-6);
        let (rgb, l) = set.batch_rgb(1, 1, 4);
        assert_eq!(l, vec![3]);
        assert_eq!(rgb.len(), 3 * 16);
        std::fs::write(dir.path().join("bad"), [1, 2, 3]).unwrap();
        assert!(ImageSet::read_idx(&dir.path().join("bad"), &dir.path().join("l")).is_err());
    }
}
