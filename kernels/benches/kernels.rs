//! Forward + backward of the ops that dominate a supernet step, on the CPU reference and on
//! the wgpu backend (lavapipe on a CPU-only machine, a GPU where one exists), with
//! throughput in floating-point operations: criterion's "elem/s" below is FLOP/s.
//!
//! `cargo bench -p hwnas-kernels --bench kernels`; set `HWNAS_BENCH_BACKENDS=cpu` or `=wgpu`
//! to run one side only.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use hwnas_kernels::{Activation, Backend, Conv2dSpec, Cpu, Tape, Tensor, Wgpu};

/// The backends to compare, by name.
fn backends() -> Vec<(String, Box<dyn Backend>)> {
    let wanted = std::env::var("HWNAS_BENCH_BACKENDS").unwrap_or_else(|_| "cpu,wgpu".into());
    let mut out: Vec<(String, Box<dyn Backend>)> = Vec::new();
    if wanted.contains("cpu") {
        out.push(("cpu".into(), Box::new(Cpu)));
    }
    if wanted.contains("wgpu") {
        match Wgpu::new() {
            Ok(w) => {
                eprintln!("wgpu adapter: {}", w.name());
                out.push(("wgpu".into(), Box::new(w)));
            }
            Err(e) => eprintln!("wgpu skipped: {e}"),
        }
    }
    out
}

/// A convolution case: input shape, weight shape and settings.
struct ConvCase {
    name: &'static str,
    x: [usize; 4],
    w: [usize; 4],
    spec: Conv2dSpec,
}

impl ConvCase {
    /// Multiply-adds x 2 of the forward pass; backward costs twice that (input and weight
    /// gradients).
    fn forward_flops(&self) -> u64 {
        let [n, _, h, w] = self.x;
        let [cout, cin_g, k, _] = self.w;
        let oh = self.spec.output_size(h, k).unwrap();
        let ow = self.spec.output_size(w, k).unwrap();
        2 * (n * cout * oh * ow * cin_g * k * k) as u64
    }
}

fn conv_cases() -> Vec<ConvCase> {
    let same = |k: usize, groups: usize| Conv2dSpec {
        stride: 1,
        padding: k / 2,
        dilation: 1,
        groups,
    };
    vec![
        ConvCase {
            name: "conv3x3_64ch_32x32_b64",
            x: [64, 64, 32, 32],
            w: [64, 64, 3, 3],
            spec: same(3, 1),
        },
        ConvCase {
            name: "depthwise5x5_64ch_32x32_b64",
            x: [64, 64, 32, 32],
            w: [64, 1, 5, 5],
            spec: same(5, 64),
        },
        ConvCase {
            name: "pointwise_64to64_32x32_b64",
            x: [64, 64, 32, 32],
            w: [64, 64, 1, 1],
            spec: same(1, 1),
        },
    ]
}

fn convolutions(c: &mut Criterion) {
    let backends = backends();
    for case in conv_cases() {
        let mut group = c.benchmark_group(case.name);
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Elements(3 * case.forward_flops()));
        let x = Tensor::randn(&case.x, 1.0, 1);
        let w = Tensor::randn(&case.w, 0.1, 2);
        for (name, backend) in &backends {
            group.bench_function(BenchmarkId::new("forward+backward", name), |b| {
                b.iter(|| {
                    let y = backend.conv2d(&x, &w, None, &case.spec).unwrap();
                    backend.conv2d_backward(&x, &w, &y, &case.spec).unwrap()
                })
            });
        }
        group.finish();
    }
}

fn matmul(c: &mut Criterion) {
    let backends = backends();
    let mut group = c.benchmark_group("matmul_1024");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(3 * 2 * 1024u64.pow(3)));
    let a = Tensor::randn(&[1024, 1024], 1.0, 1);
    let b = Tensor::randn(&[1024, 1024], 1.0, 2);
    for (name, backend) in &backends {
        group.bench_function(BenchmarkId::new("forward+backward", name), |bench| {
            bench.iter(|| {
                let c = backend.matmul(&a, &b).unwrap();
                backend.matmul_backward(&a, &b, &c).unwrap()
            })
        });
    }
    group.finish();
}

/// One NAS-Bench-201 cell (4 nodes, 6 edges) at the first stage's size (16 channels,
/// 32x32, batch 64), every edge the mixed op of its five candidates (none, skip,
/// ReLU-conv1x1-BN, ReLU-conv3x3-BN, avg-pool 3x3) weighted by a softmax, forward and
/// backward through the tape.
fn nb201_cell_step(backend: &dyn Backend, x: &Tensor, params: &CellParams) -> f32 {
    let mut tape = Tape::new(backend);
    let input = tape.leaf(x.clone(), true);
    let spec = |k: usize| Conv2dSpec {
        stride: 1,
        padding: k / 2,
        dilation: 1,
        groups: 1,
    };
    let mut nodes = vec![input];
    let mut edge = 0;
    for to in 1..4 {
        let mut incoming = Vec::new();
        for source in nodes[..to].iter().copied() {
            let alpha = tape.leaf(params.alphas[edge].clone(), true);
            let weights = tape.softmax(alpha).unwrap();
            let conv = |tape: &mut Tape, w: &Tensor, k: usize| {
                let wv = tape.leaf(w.clone(), true);
                let gamma = tape.leaf(params.gamma.clone(), true);
                let beta = tape.leaf(params.beta.clone(), true);
                let r = tape.activation(source, Activation::Relu).unwrap();
                let c = tape.conv2d(r, wv, None, spec(k)).unwrap();
                tape.batch_norm(c, gamma, beta).unwrap()
            };
            let c1 = conv(&mut tape, &params.conv1[edge], 1);
            let c3 = conv(&mut tape, &params.conv3[edge], 3);
            let pool = tape.avg_pool(source, 3, 1, 1).unwrap();
            let zero = tape.scale(source, 0.0).unwrap();
            let mixed = tape
                .mixed(
                    &[Some(zero), Some(source), Some(c1), Some(c3), Some(pool)],
                    weights,
                )
                .unwrap();
            incoming.push(mixed);
            edge += 1;
        }
        let mut sum = incoming[0];
        for &next in &incoming[1..] {
            sum = tape.add(sum, next).unwrap();
        }
        nodes.push(sum);
    }
    let loss = tape.mean(nodes[3]).unwrap();
    tape.backward(loss).unwrap();
    tape.value(loss).data()[0]
}

/// The cell's parameters.
struct CellParams {
    alphas: Vec<Tensor>,
    conv1: Vec<Tensor>,
    conv3: Vec<Tensor>,
    gamma: Tensor,
    beta: Tensor,
}

fn nb201_cell(c: &mut Criterion) {
    let backends = backends();
    let channels = 16;
    let params = CellParams {
        alphas: (0..6).map(|e| Tensor::randn(&[5], 0.1, e)).collect(),
        conv1: (0..6)
            .map(|e| Tensor::randn(&[channels, channels, 1, 1], 0.2, 10 + e))
            .collect(),
        conv3: (0..6)
            .map(|e| Tensor::randn(&[channels, channels, 3, 3], 0.1, 20 + e))
            .collect(),
        gamma: Tensor::new(&[channels], vec![1.0; channels]).unwrap(),
        beta: Tensor::zeros(&[channels]),
    };
    let x = Tensor::randn(&[64, channels, 32, 32], 1.0, 3);
    // Convolution FLOPs only (forward and both gradients) of the 6 edges.
    let positions = 64 * 32 * 32 * channels * channels;
    let flops = 3 * 2 * 6 * (positions * 9 + positions) as u64;
    let mut group = c.benchmark_group("nb201_mixed_cell_16ch_32x32_b64");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(flops));
    for (name, backend) in &backends {
        group.bench_function(BenchmarkId::new("forward+backward", name), |b| {
            b.iter(|| nb201_cell_step(backend.as_ref(), &x, &params))
        });
    }
    group.finish();
}

criterion_group!(benches, convolutions, matmul, nb201_cell);
criterion_main!(benches);
