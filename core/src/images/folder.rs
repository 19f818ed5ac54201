//! A folder of images per class (`root/<class>/*.png|jpg`), the layout of torchvision's
//! `ImageFolder`: classes are the sub-folders in name order, every image is decoded to RGB
//! and resized to one square size.

use std::path::Path;

use image::imageops::FilterType;

use super::ImageSet;
use crate::error::{Error, Result};

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

impl ImageSet {
    /// Reads `root/<class>/<image>` files, resized to `size`x`size` RGB; returns the set
    /// and the class names (label `i` is `names[i]`).
    pub fn read_folder(root: &Path, size: usize) -> Result<(Self, Vec<String>)> {
        let io = |source| Error::Io {
            path: root.to_path_buf(),
            source,
        };
        let mut classes: Vec<_> = std::fs::read_dir(root)
            .map_err(io)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .collect();
        classes.sort_by_key(|e| e.file_name());
        if classes.is_empty() {
            return Err(Error::Data {
                path: root.to_path_buf(),
                problem: "no class sub-folders; expected ROOT/<class>/<image>.png|jpg".into(),
            });
        }
        let side = u32::try_from(size).map_err(|_| Error::Setting {
            name: "image-size".into(),
            problem: format!("{size} is too large"),
        })?;
        let mut names = Vec::new();
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            names.push(class.file_name().to_string_lossy().into_owned());
            let mut files: Vec<_> = std::fs::read_dir(class.path())
                .map_err(io)?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            files.sort();
            for file in files {
                let decoded = image::open(&file).map_err(|e| Error::Data {
                    path: file.clone(),
                    problem: format!("cannot decode the image: {e}"),
                })?;
                let rgb = decoded
                    .resize_exact(side, side, FilterType::Triangle)
                    .to_rgb8();
                for channel in 0..3 {
                    images.extend(rgb.pixels().map(|p| f32::from(p.0[channel]) / 255.0));
                }
                labels.push(label);
            }
        }
        if labels.is_empty() {
            return Err(Error::Data {
                path: root.to_path_buf(),
                problem: format!(
                    "the class folders hold no images with extension {}",
                    EXTENSIONS.join(", ")
                ),
            });
        }
        Ok((
            ImageSet {
                shape: [labels.len(), 3, size, size],
                images,
                labels,
            },
            names,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_generated_folder_per_class() {
        let dir = tempfile::tempdir().unwrap();
        for (class, colour) in [("cat", [255u8, 0, 0]), ("dog", [0, 0, 255])] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for i in 0..2 {
                let img = image::RgbImage::from_pixel(6 + i, 5, image::Rgb(colour));
                img.save(dir.path().join(class).join(format!("{i}.png")))
                    .unwrap();
            }
        }
        std::fs::write(dir.path().join("dog").join("notes.txt"), "ignored").unwrap();
        let (set, names) = ImageSet::read_folder(dir.path(), 4).unwrap();
        assert_eq!(names, vec!["cat", "dog"]);
        assert_eq!(set.shape, [4, 3, 4, 4]);
        assert_eq!(set.labels, vec![0, 0, 1, 1]);
        // The first image is red: its red plane is 1, its blue plane 0.
        assert!((set.images[0] - 1.0).abs() < 1e-6);
        assert!(set.images[32].abs() < 1e-6);

        std::fs::write(dir.path().join("cat").join("broken.png"), b"not a png").unwrap();
        let err = ImageSet::read_folder(dir.path(), 4)
            .unwrap_err()
            .to_string();
        assert!(err.contains("broken.png"), "{err}");
    }
}
