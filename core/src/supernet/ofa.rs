//! The Once-for-All MobileNetV3 supernet: one set of weights holds every subnet of the
//! Once-for-All space. A subnet's depthwise kernel is the centre of the block's 7x7 kernel
//! (elastic kernel), its expanded width the first channels of the block's widest layers
//! (elastic expand: the expand conv's outputs, the depthwise conv, squeeze-excite, batch
//! norm and the projection's inputs are sliced together), and a stage of depth `d` runs its
//! first `d` blocks (elastic depth). One subnet is sampled per step; the network is the
//! Once-for-All one (first conv, fixed first block, 5 stages, final expand, feature mix,
//! classifier, squeeze-excite and h-swish where MobileNetV3 has them) at a width the
//! configuration sets.
//!
//! Routes: one per decision of [`crate::space::OfaSpace`] except the resolution (the
//! supernet runs at the images' size): 20 kernel, 20 expand and 5 depth decisions of 3
//! choices each, all [`Route::Fixed`]. Mixing kernels or widths inside one step is not a
//! Once-for-All operation; dense and sparse routes are refused.

use hwnas_kernels::{Activation, Backend, Conv2dSpec, Var};
use serde::{Deserialize, Serialize};

use super::forward::{Forward, PendingStep, begin_step};
use super::params::ParamStore;
use super::{Route, StepOutput, StepRequest};
use crate::error::{Error, Result};
use crate::images::batches::Batch;
use crate::space::ofa::{
    BLOCKS, DEPTHS, EXPANDS, KERNELS, MAX_DEPTH, OfaSpace, RESOLUTIONS, STAGES,
};
use crate::space::{Arch, SearchSpace};

/// Routes a step takes: a kernel and an expand decision per block, a depth per stage.
pub const EDGES: usize = 2 * BLOCKS + STAGES;
/// Choices per decision.
pub const CANDIDATES: usize = 3;
/// The largest kernel, which every smaller one is cropped from.
const MAX_KERNEL: usize = 7;
/// The largest expand ratio, which every smaller width is sliced from.
const MAX_EXPAND: usize = 6;

/// One stage of the network: output width, stride of its first block, squeeze-excite,
/// h-swish (else ReLU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfaStage {
    /// Output channels.
    pub width: usize,
    /// Stride of the stage's first block.
    pub stride: usize,
    /// Squeeze-and-excite in every block.
    pub se: bool,
    /// h-swish activations (else ReLU).
    pub hswish: bool,
}

/// The supernet's widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfaSupernetConfig {
    /// Input channels (1 for Fashion-MNIST, 3 for RGB).
    pub in_channels: usize,
    /// Width of the first conv (stride 2) and the fixed first block.
    pub stem: usize,
    /// The five searchable stages.
    pub stages: [OfaStage; STAGES],
    /// Width of the final 1x1 expand.
    pub final_expand: usize,
    /// Width of the feature-mix layer after global pooling.
    pub feature_mix: usize,
    /// Classes.
    pub classes: usize,
}

const fn stage(width: usize, stride: usize, se: bool, hswish: bool) -> OfaStage {
    OfaStage {
        width,
        stride,
        se,
        hswish,
    }
}

impl OfaSupernetConfig {
    /// Once-for-All's MobileNetV3 w1.2 (stem 24, stages 32/48/96/136/192, 1152, 1536).
    pub fn full(in_channels: usize, classes: usize) -> Self {
        OfaSupernetConfig {
            in_channels,
            stem: 24,
            stages: [
                stage(32, 2, false, false),
                stage(48, 2, true, false),
                stage(96, 2, false, true),
                stage(136, 1, true, true),
                stage(192, 2, true, true),
            ],
            final_expand: 1152,
            feature_mix: 1536,
            classes,
        }
    }

    /// A quarter of the full width (stem 8, stages 8/12/24/36/48, 288, 384), same strides,
    /// squeeze-excite and activations: the size used on CPU-only machines.
    pub fn reduced(in_channels: usize, classes: usize) -> Self {
        let full = Self::full(in_channels, classes);
        let quarter = |c: usize| (c / 4).div_ceil(4).max(2) * 4;
        let mut stages = full.stages;
        for s in &mut stages {
            s.width = quarter(s.width);
        }
        OfaSupernetConfig {
            stem: quarter(full.stem),
            stages,
            final_expand: quarter(full.final_expand),
            feature_mix: quarter(full.feature_mix),
            ..full
        }
    }

    fn check(&self) -> Result<()> {
        let widths = self.stages.iter().map(|s| s.width);
        let bad = self.in_channels == 0
            || self.classes < 2
            || [self.stem, self.final_expand, self.feature_mix]
                .into_iter()
                .chain(widths)
                .any(|w| w == 0)
            || self.stages.iter().any(|s| !(1..=2).contains(&s.stride));
        if bad {
            return Err(Error::Setting {
                name: "supernet".into(),
                problem: format!(
                    "{self:?}: widths and input channels must be positive, strides 1 or 2, classes at least 2"
                ),
            });
        }
        Ok(())
    }

    /// Input channels of block `block` (0..20): the previous stage's width for a stage's
    /// first block, the stage's own after it.
    pub fn block_input(&self, block: usize) -> usize {
        let (s, i) = (block / MAX_DEPTH, block % MAX_DEPTH);
        match (s, i) {
            (0, 0) => self.stem,
            (_, 0) => self.stages[s - 1].width,
            _ => self.stages[s].width,
        }
    }
}

/// Once-for-All's `make_divisible(v, 8)`: the squeeze-excite width of `mid` channels.
fn squeezed(mid: usize) -> usize {
    let v = mid / 4;
    let rounded = ((v + 4) / 8 * 8).max(8);
    if (rounded as f64) < 0.9 * v as f64 {
        rounded + 8
    } else {
        rounded
    }
}

/// A subnet as the step runs it: per block kernel and expand ratio, per stage depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Subnet {
    kernel: [usize; BLOCKS],
    expand: [usize; BLOCKS],
    depth: [usize; STAGES],
}

impl Subnet {
    fn from_routes(routes: &[Route]) -> Result<Self> {
        let mut choice = [0usize; EDGES];
        for (i, route) in routes.iter().enumerate() {
            choice[i] = match route {
                Route::Fixed(k) => *k,
                Route::Dense(_) | Route::Sparse(_) => {
                    return Err(Error::Setting {
                        name: "route".into(),
                        problem: "the Once-for-All supernet runs one sampled subnet per step (fixed routes); kernels, widths and depths are not mixed ops".into(),
                    });
                }
            };
        }
        let pick = |table: &[u32], i: usize| table[choice[i]] as usize;
        Ok(Subnet {
            kernel: std::array::from_fn(|b| pick(&KERNELS, b)),
            expand: std::array::from_fn(|b| pick(&EXPANDS, BLOCKS + b)),
            depth: std::array::from_fn(|s| pick(&DEPTHS, 2 * BLOCKS + s)),
        })
    }
}

/// The supernet: its widths and weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfaSupernet {
    /// Its widths.
    pub config: OfaSupernetConfig,
    /// Its weights (every block at kernel 7 and expand 6).
    pub params: ParamStore,
}

fn add_bn(p: &mut ParamStore, name: &str, c: usize) {
    p.add(format!("{name}.gamma"), &[c], vec![1.0; c]);
    p.add(format!("{name}.beta"), &[c], vec![0.0; c]);
}

impl OfaSupernet {
    /// A supernet with He-normal weights from `seed`.
    pub fn new(config: OfaSupernetConfig, seed: u64) -> Result<Self> {
        config.check()?;
        let mut rng = ParamStore::rng(seed);
        let mut p = ParamStore::default();
        let (cin, stem) = (config.in_channels, config.stem);
        p.add_he("first.conv".into(), &[stem, cin, 3, 3], cin * 9, &mut rng);
        add_bn(&mut p, "first.conv.bn", stem);
        p.add_he("first.depth".into(), &[stem, 1, 3, 3], 9, &mut rng);
        add_bn(&mut p, "first.depth.bn", stem);
        p.add_he("first.point".into(), &[stem, stem, 1, 1], stem, &mut rng);
        add_bn(&mut p, "first.point.bn", stem);
        for block in 0..BLOCKS {
            let cin = config.block_input(block);
            let s = config.stages[block / MAX_DEPTH];
            let mid = cin * MAX_EXPAND;
            let b = format!("b{block}");
            p.add_he(format!("{b}.expand"), &[mid, cin, 1, 1], cin, &mut rng);
            add_bn(&mut p, &format!("{b}.expand.bn"), mid);
            let k = MAX_KERNEL;
            p.add_he(format!("{b}.depth"), &[mid, 1, k, k], k * k, &mut rng);
            add_bn(&mut p, &format!("{b}.depth.bn"), mid);
            if s.se {
                let sq = squeezed(mid);
                p.add_he(format!("{b}.se.reduce"), &[sq, mid, 1, 1], mid, &mut rng);
                p.add(format!("{b}.se.reduce.bias"), &[sq], vec![0.0; sq]);
                p.add_he(format!("{b}.se.expand"), &[mid, sq, 1, 1], sq, &mut rng);
                p.add(format!("{b}.se.expand.bias"), &[mid], vec![0.0; mid]);
            }
            p.add_he(format!("{b}.point"), &[s.width, mid, 1, 1], mid, &mut rng);
            add_bn(&mut p, &format!("{b}.point.bn"), s.width);
        }
        let last = config.stages[STAGES - 1].width;
        let (fe, fm) = (config.final_expand, config.feature_mix);
        p.add_he("final.expand".into(), &[fe, last, 1, 1], last, &mut rng);
        add_bn(&mut p, "final.expand.bn", fe);
        p.add_he("final.mix".into(), &[fm, fe, 1, 1], fe, &mut rng);
        p.add_he("classifier.w".into(), &[fm, config.classes], fm, &mut rng);
        p.add(
            "classifier.b".into(),
            &[config.classes],
            vec![0.0; config.classes],
        );
        Ok(OfaSupernet { config, params: p })
    }

    /// The routes of an architecture of the Once-for-All space (its resolution decision,
    /// the 46th, is not a route: the supernet runs at the images' size).
    pub fn fixed_routes(arch: &Arch) -> Vec<Route> {
        arch.0
            .iter()
            .take(EDGES)
            .map(|&c| Route::Fixed(usize::from(c)))
            .collect()
    }

    /// The architecture (resolution choice 0) whose decisions are the strongest weight of
    /// each route; blocks past their stage's depth take the first choice, as the space's
    /// canonical form has them.
    pub fn derive(weights: &[Vec<f32>]) -> Result<Arch> {
        if weights.len() != EDGES {
            return Err(Error::Setting {
                name: "architecture weights".into(),
                problem: format!(
                    "{} rows for the {EDGES} Once-for-All decisions",
                    weights.len()
                ),
            });
        }
        let choice: Vec<u8> = weights
            .iter()
            .map(|w| hwnas_kernels::cpu::argmax(w) as u8)
            .chain([0])
            .collect();
        // Which decisions are active does not depend on the resolutions a space has.
        let space = OfaSpace::new(vec![*RESOLUTIONS.start()])?;
        Ok(space.canonical(&Arch(choice)))
    }

    /// The largest subnet's routes (kernel 7, expand 6, depth 4).
    pub fn largest() -> Vec<Route> {
        vec![Route::Fixed(CANDIDATES - 1); EDGES]
    }

    /// The smallest subnet's routes (kernel 3, expand 3, depth 2).
    pub fn smallest() -> Vec<Route> {
        vec![Route::Fixed(0); EDGES]
    }

    /// Runs one batch forward (and backward where asked) through the subnet the routes
    /// name.
    pub fn step(
        &self,
        backend: &dyn Backend,
        batch: &Batch,
        request: &StepRequest<'_>,
    ) -> Result<StepOutput> {
        self.begin_step(backend, batch, request)?
            .finish(request.sample_weights)
    }

    /// The forward half of [`Self::step`].
    pub(crate) fn begin_step<'b, 's>(
        &'s self,
        backend: &'b dyn Backend,
        batch: &Batch,
        request: &StepRequest<'s>,
    ) -> Result<PendingStep<'b, 's>> {
        let config = self.config;
        begin_step(
            &self.params,
            backend,
            batch,
            request,
            (EDGES, CANDIDATES),
            |f, x| {
                let subnet = Subnet::from_routes(request.routes)?;
                network(f, &config, &subnet, x)
            },
        )
    }
}

impl Forward<'_, '_, '_> {
    /// Parameter `name`, its first `len` entries along `axis` (all where it has no more).
    fn param_prefix(&mut self, name: &str, axis: usize, len: usize) -> Result<Var> {
        let p = self.param(name)?;
        self.tape_prefix(p, axis, len)
    }

    /// Affine batch norm `name` over the first `c` of its channels.
    fn sliced_bn(&mut self, x: Var, name: &str, c: usize) -> Result<Var> {
        let gamma = self.param_prefix(&format!("{name}.gamma"), 0, c)?;
        let beta = self.param_prefix(&format!("{name}.beta"), 0, c)?;
        self.batch_norm(x, name.to_string(), Some((gamma, beta)))
    }

    fn act(&mut self, x: Var, hswish: bool) -> Result<Var> {
        let f = if hswish {
            Activation::HardSwish
        } else {
            Activation::Relu
        };
        Ok(self.tape.activation(x, f)?)
    }

    /// Block `block` of stage `s` at this kernel and expand ratio.
    fn mb_block(
        &mut self,
        x: Var,
        config: &OfaSupernetConfig,
        block: usize,
        (kernel, expand): (usize, usize),
        stride: usize,
    ) -> Result<Var> {
        let s = config.stages[block / MAX_DEPTH];
        let cin = config.block_input(block);
        let mid = cin * expand;
        let b = format!("b{block}");
        let w = self.param_prefix(&format!("{b}.expand"), 0, mid)?;
        let y = self.tape.conv2d(x, w, None, Conv2dSpec::unit())?;
        let y = self.sliced_bn(y, &format!("{b}.expand.bn"), mid)?;
        let y = self.act(y, s.hswish)?;
        let w = self.param_prefix(&format!("{b}.depth"), 0, mid)?;
        let w = if kernel == MAX_KERNEL {
            w
        } else {
            self.tape.centre_crop(w, kernel)?
        };
        let spec = Conv2dSpec {
            stride,
            padding: kernel / 2,
            dilation: 1,
            groups: mid,
        };
        let y = self.tape.conv2d(y, w, None, spec)?;
        let y = self.sliced_bn(y, &format!("{b}.depth.bn"), mid)?;
        let mut y = self.act(y, s.hswish)?;
        if s.se {
            let sq = squeezed(mid);
            let pooled = self.tape.global_avg_pool(y)?;
            let w = self.param_prefix(&format!("{b}.se.reduce"), 0, sq)?;
            let w = self.tape_prefix(w, 1, mid)?;
            let bias = self.param_prefix(&format!("{b}.se.reduce.bias"), 0, sq)?;
            let g = self
                .tape
                .conv2d(pooled, w, Some(bias), Conv2dSpec::unit())?;
            let g = self.tape.activation(g, Activation::Relu)?;
            let w = self.param_prefix(&format!("{b}.se.expand"), 0, mid)?;
            let w = self.tape_prefix(w, 1, sq)?;
            let bias = self.param_prefix(&format!("{b}.se.expand.bias"), 0, mid)?;
            let g = self.tape.conv2d(g, w, Some(bias), Conv2dSpec::unit())?;
            let gate = self.tape.activation(g, Activation::HardSigmoid)?;
            y = self.tape.mul(y, gate)?;
        }
        let w = self.param_prefix(&format!("{b}.point"), 1, mid)?;
        let y = self.tape.conv2d(y, w, None, Conv2dSpec::unit())?;
        let y = self.sliced_bn(y, &format!("{b}.point.bn"), s.width)?;
        if stride == 1 && cin == s.width {
            Ok(self.tape.add(x, y)?)
        } else {
            Ok(y)
        }
    }

    /// The first `len` entries of `v` along `axis` (`v` itself where it has no more).
    fn tape_prefix(&mut self, v: Var, axis: usize, len: usize) -> Result<Var> {
        if self.tape.value(v).shape()[axis] == len {
            return Ok(v);
        }
        Ok(self.tape.slice(v, axis, 0, len)?)
    }
}

fn network(
    f: &mut Forward<'_, '_, '_>,
    config: &OfaSupernetConfig,
    subnet: &Subnet,
    x: Var,
) -> Result<Var> {
    let spec = |stride: usize, k: usize, groups: usize| Conv2dSpec {
        stride,
        padding: k / 2,
        dilation: 1,
        groups,
    };
    let w = f.param("first.conv")?;
    let h = f.tape.conv2d(x, w, None, spec(2, 3, 1))?;
    let h = f.sliced_bn(h, "first.conv.bn", config.stem)?;
    let h = f.act(h, true)?;
    let w = f.param("first.depth")?;
    let y = f.tape.conv2d(h, w, None, spec(1, 3, config.stem))?;
    let y = f.sliced_bn(y, "first.depth.bn", config.stem)?;
    let y = f.act(y, false)?;
    let w = f.param("first.point")?;
    let y = f.tape.conv2d(y, w, None, Conv2dSpec::unit())?;
    let y = f.sliced_bn(y, "first.point.bn", config.stem)?;
    let mut h = f.tape.add(h, y)?;
    for (s, stage) in config.stages.iter().enumerate() {
        for i in 0..subnet.depth[s] {
            let block = s * MAX_DEPTH + i;
            let stride = if i == 0 { stage.stride } else { 1 };
            let choice = (subnet.kernel[block], subnet.expand[block]);
            h = f.mb_block(h, config, block, choice, stride)?;
        }
    }
    let w = f.param("final.expand")?;
    let h = f.tape.conv2d(h, w, None, Conv2dSpec::unit())?;
    let h = f.sliced_bn(h, "final.expand.bn", config.final_expand)?;
    let h = f.act(h, true)?;
    let h = f.tape.global_avg_pool(h)?;
    let w = f.param("final.mix")?;
    let h = f.tape.conv2d(h, w, None, Conv2dSpec::unit())?;
    let h = f.act(h, true)?;
    let h = f.tape.flatten(h)?;
    let w = f.param("classifier.w")?;
    let b = f.param("classifier.b")?;
    Ok(f.tape.linear(h, w, b)?)
}
