//! CIFAR-10 and CIFAR-100 in their binary form: records of one label byte (CIFAR-100: a
//! coarse and a fine label byte) followed by 3072 pixel bytes, the red, green and blue
//! 32x32 planes in turn.

use std::path::{Path, PathBuf};

use super::{ImageSet, read_all};
use crate::error::{Error, Result};

const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarVariant {
    /// 10 classes, one label byte per record.
    Cifar10,
    /// 100 classes, a coarse and a fine label byte per record (the fine one is used).
    Cifar100,
}

impl CifarVariant {
    fn label_bytes(self) -> usize {
        match self {
            CifarVariant::Cifar10 => 1,
            CifarVariant::Cifar100 => 2,
        }
    }

    fn classes(self) -> usize {
        match self {
            CifarVariant::Cifar10 => 10,
            CifarVariant::Cifar100 => 100,
        }
    }

    /// The training files inside the extracted `cifar-*-binary` folder.
    pub fn train_files(self) -> Vec<&'static str> {
        match self {
            CifarVariant::Cifar10 => vec![
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            CifarVariant::Cifar100 => vec!["train.bin"],
        }
    }

    /// The test file inside the extracted `cifar-*-binary` folder.
    pub fn test_file(self) -> &'static str {
        match self {
            CifarVariant::Cifar10 => "test_batch.bin",
            CifarVariant::Cifar100 => "test.bin",
        }
    }
}

impl ImageSet {
    /// Reads CIFAR binary batch files (gzip allowed) into one set `[N, 3, 32, 32]`.
    pub fn read_cifar(files: &[PathBuf], variant: CifarVariant) -> Result<Self> {
        let record = variant.label_bytes() + PIXELS;
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for path in files {
            let bytes = read_all(path)?;
            if bytes.is_empty() || bytes.len() % record != 0 {
                return Err(Error::Data {
                    path: path.clone(),
                    problem: format!(
                        "{} bytes is not a whole number of {record}-byte {variant:?} records; is this a CIFAR binary batch of that variant?",
                        bytes.len()
                    ),
                });
            }
            for chunk in bytes.chunks(record) {
                let label = usize::from(chunk[variant.label_bytes() - 1]);
                if label >= variant.classes() {
                    return Err(Error::Data {
                        path: path.clone(),
                        problem: format!(
                            "label {label} is out of range for {} classes",
                            variant.classes()
                        ),
                    });
                }
                labels.push(label);
                images.extend(
                    chunk[variant.label_bytes()..]
                        .iter()
                        .map(|&p| f32::from(p) / 255.0),
                );
            }
        }
        Ok(ImageSet {
            shape: [labels.len(), 3, 32, 32],
            images,
            labels,
        })
    }

    /// The test set of an extracted `cifar-10-batches-bin` or `cifar-100-binary` folder;
    /// the variant is told by the file present.
    pub fn cifar_test(dir: &Path) -> Result<Self> {
        for variant in [CifarVariant::Cifar10, CifarVariant::Cifar100] {
            let file = dir.join(variant.test_file());
            if file.is_file() {
                return Self::read_cifar(&[file], variant);
            }
        }
        Err(Error::Setting {
            name: "data".into(),
            problem: format!(
                "{} holds neither CIFAR-10's test_batch.bin nor CIFAR-100's test.bin; pass the extracted binary-version folder",
                dir.display()
            ),
        })
    }

    /// The training set of an extracted `cifar-10-batches-bin` or `cifar-100-binary`
    /// folder; the variant is told by the files present.
    pub fn cifar_train(dir: &Path) -> Result<Self> {
        for variant in [CifarVariant::Cifar10, CifarVariant::Cifar100] {
            let files: Vec<PathBuf> = variant.train_files().iter().map(|f| dir.join(f)).collect();
            if files.iter().all(|f| f.is_file()) {
                return Self::read_cifar(&files, variant);
            }
        }
        Err(Error::Setting {
            name: "data".into(),
            problem: format!(
                "{} holds neither CIFAR-10's data_batch_1..5.bin nor CIFAR-100's train.bin; pass the extracted binary-version folder",
                dir.display()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_generated_cifar10_and_cifar100_records() {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in CifarVariant::Cifar10.train_files().iter().enumerate() {
            let mut bytes = vec![i as u8];
            bytes.extend((0..PIXELS).map(|p| (p % 256) as u8));
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let set = ImageSet::cifar_train(dir.path()).unwrap();
        assert_eq!(set.shape, [5, 3, 32, 32]);
        assert_eq!(set.labels, vec![0, 1, 2, 3, 4]);
        assert!((set.images[255] - 1.0).abs() < 1e-6);

        let hundred = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for fine in [7u8, 99] {
            bytes.extend([3, fine]);
            bytes.extend(std::iter::repeat_n(0u8, PIXELS));
        }
        std::fs::write(hundred.path().join("train.bin"), &bytes).unwrap();
        let set = ImageSet::cifar_train(hundred.path()).unwrap();
        assert_eq!(set.labels, vec![7, 99]);

        // A CIFAR-100 file read as CIFAR-10 is refused with the record size in the message.
        let err = ImageSet::read_cifar(&[hundred.path().join("train.bin")], CifarVariant::Cifar10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("3073-byte"), "{err}");
        assert!(ImageSet::cifar_train(tempfile::tempdir().unwrap().path()).is_err());
    }
}
