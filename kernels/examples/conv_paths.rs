//! The convolutions of the NAS-Bench-201 supernets (batch 64, 28 x 28 inputs) on the two
//! CPU paths side by side: the direct kernels and im2col + GEMM, forward then backward,
//! alternating in rounds so that the machine's drift falls on both alike; prints each
//! path's best round and the ratio (docs/BENCHMARKS.md, issue: engine, part 3).
//!
//! `cargo run --release -p hwnas-kernels --example conv_paths -- [ROUNDS]`

use std::time::Instant;

use hwnas_kernels::cpu::conv::{conv2d_backward_im2col, conv2d_im2col};
use hwnas_kernels::cpu::conv_direct;
use hwnas_kernels::{Conv2dSpec, Tensor};

type Path = fn(&Tensor, &Tensor, &Tensor, &Conv2dSpec) -> f32;

fn direct_forward(x: &Tensor, w: &Tensor, _: &Tensor, spec: &Conv2dSpec) -> f32 {
    conv_direct::conv2d(x, w, None, spec)
        .expect("served")
        .data()[0]
}

fn im2col_forward(x: &Tensor, w: &Tensor, _: &Tensor, spec: &Conv2dSpec) -> f32 {
    conv2d_im2col(x, w, None, spec).unwrap().data()[0]
}

fn direct(x: &Tensor, w: &Tensor, dy: &Tensor, spec: &Conv2dSpec) -> f32 {
    let y = conv_direct::conv2d(x, w, None, spec).expect("served by the direct kernels");
    let (dx, dw, _) = conv_direct::conv2d_backward(x, w, dy, spec).expect("served");
    y.data()[0] + dx.data()[0] + dw.data()[0]
}

fn im2col(x: &Tensor, w: &Tensor, dy: &Tensor, spec: &Conv2dSpec) -> f32 {
    let y = conv2d_im2col(x, w, None, spec).unwrap();
    let (dx, dw, _) = conv2d_backward_im2col(x, w, dy, spec).unwrap();
    y.data()[0] + dx.data()[0] + dw.data()[0]
}

fn main() {
    hwnas_kernels::cpu::allocator::keep_freed_buffers();
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(5, |r| r.parse().expect("ROUNDS is a count"));
    let cases = [
        ("stem 1->8, 28x28", 1, 8, 28),
        ("reduced cell 8->8, 28x28", 8, 8, 28),
        ("reduced cell 16->16, 14x14", 16, 16, 14),
        ("reduced cell 32->32, 7x7", 32, 32, 7),
        ("full cell 16->16, 28x28", 16, 16, 28),
        ("full cell 32->32, 14x14", 32, 32, 14),
        ("full cell 64->64, 7x7", 64, 64, 7),
    ];
    println!(
        "| convolution 3x3, batch 64 | forward + backward: direct ms | im2col ms | direct / im2col | forward alone: direct ms | im2col ms | direct / im2col |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, cin, cout, side) in cases {
        let x = Tensor::randn(&[64, cin, side, side], 1.0, 1);
        let w = Tensor::randn(&[cout, cin, 3, 3], 0.3, 2);
        let dy = Tensor::randn(&[64, cout, side, side], 1.0, 3);
        let spec = Conv2dSpec {
            stride: 1,
            padding: 1,
            dilation: 1,
            groups: 1,
        };
        if conv_direct::conv2d(&x, &w, None, &spec).is_none() {
            println!("| {name} | left to im2col on this processor | | | | | |");
            continue;
        }
        let mut best = [f64::INFINITY; 4];
        let paths: [Path; 4] = [direct, im2col, direct_forward, im2col_forward];
        let repeats = 10;
        for _ in 0..rounds {
            for (i, path) in paths.iter().enumerate() {
                let start = Instant::now();
                let mut sink = 0.0;
                for _ in 0..repeats {
                    sink += path(&x, &w, &dy, &spec);
                }
                std::hint::black_box(sink);
                best[i] = best[i].min(start.elapsed().as_secs_f64() / repeats as f64);
            }
        }
        println!(
            "| {name} | {:.3} | {:.3} | {:.2} | {:.3} | {:.3} | {:.2} |",
            best[0] * 1e3,
            best[1] * 1e3,
            best[0] / best[1],
            best[2] * 1e3,
            best[3] * 1e3,
            best[2] / best[3]
        );
    }
}
