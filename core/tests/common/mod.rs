//! Test images shared by the supernet tests.

use hwnas_core::images::ImageSet;
use hwnas_kernels::Tensor;

/// Two classes of `side` x `side` one-channel images: a bright top half (class 0) or a
/// bright bottom half (class 1), plus Gaussian noise of standard deviation `noise`.
#[allow(dead_code)] // not every test file that shares this module trains on images
pub fn two_class_images(n: usize, side: usize, noise: f32, seed: u64) -> ImageSet {
    let plane = side * side;
    let noise = Tensor::randn(&[n * plane], noise, seed);
    let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let images = (0..n * plane)
        .map(|i| {
            let (image, y) = (i / plane, (i % plane) / side);
            f32::from(u8::from((y < side / 2) == (labels[image] == 0))) * 0.8 + noise.data()[i]
        })
        .collect();
    ImageSet {
        images,
        labels,
        shape: [n, 1, side, side],
    }
}

/// A narrow Once-for-All supernet configuration (stem 4, stages 4/4/8/8/8, head 16/16)
/// for small one-channel images and `classes` classes.
#[allow(dead_code)] // not every test file that shares this module builds an OFA supernet
pub fn narrow_ofa(classes: usize) -> hwnas_core::supernet::OfaSupernetConfig {
    let mut config = hwnas_core::supernet::OfaSupernetConfig::reduced(1, classes);
    config.stem = 4;
    for (s, w) in config.stages.iter_mut().zip([4, 4, 8, 8, 8]) {
        s.width = w;
    }
    config.final_expand = 16;
    config.feature_mix = 16;
    config
}
