//! The wgpu backend: one device and queue, compute pipelines compiled once and cached by a
//! typed key, outputs kept on the device in pooled buffers ([`DeviceValues`]), dispatches
//! recorded into one open command encoder that is submitted only when something is read
//! back. Runs on any Vulkan, Metal or DX12 adapter, and on the CPU through Mesa's lavapipe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::adapters::{AdapterSummary, instance};
use crate::error::{Error, Result};
use crate::ops::{Activation, Conv2dSpec};
use crate::tensor::Tensor;
use crate::wgsl::{ActivationParams, Conv2dParams, MatmulParams, Shader};

mod layers;
mod optim;
mod resident;
mod runtime_dir;

pub use resident::DeviceValues;
pub use runtime_dir::vulkan_runtime_dir;

/// A compiled pipeline: a shader's entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    /// The shader.
    pub shader: Shader,
    /// The entry point.
    pub entry: &'static str,
}

/// One dispatch to record.
struct Pass<'a> {
    key: PipelineKey,
    bindings: Vec<(u32, &'a wgpu::Buffer)>,
    workgroups: (u32, u32, u32),
}

/// What crossed between host and device since a context was made: exact counts, kept as
/// the transfers are issued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes written to the device (tensor inputs and every new dispatch parameter block).
    pub uploaded_bytes: u64,
    /// Bytes copied back to the host.
    pub read_back_bytes: u64,
    /// Queue submissions.
    pub submits: u64,
}

impl Traffic {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            uploaded_bytes: self.uploaded_bytes.saturating_sub(earlier.uploaded_bytes),
            read_back_bytes: self.read_back_bytes.saturating_sub(earlier.read_back_bytes),
            submits: self.submits.saturating_sub(earlier.submits),
        }
    }
}

#[derive(Debug, Default)]
struct TrafficCounters {
    uploaded_bytes: AtomicU64,
    read_back_bytes: AtomicU64,
    submits: AtomicU64,
}

/// Parameter blocks kept once uploaded, by their bytes (a training step repeats the same
/// shapes, so after the first step no parameters are uploaded). Cleared when it grows past
/// this many entries.
const MAX_CACHED_UNIFORMS: usize = 16_384;

/// The device, its queue and what the context keeps for them (all private); shared by the context and
/// every tensor resident on it.
pub struct Shared {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: AdapterSummary,
    /// Each entry point's pipeline with its bind-group layout (derived once, reused by
    /// every dispatch).
    pipelines: Mutex<HashMap<PipelineKey, (wgpu::ComputePipeline, wgpu::BindGroupLayout)>>,
    uniforms: Mutex<HashMap<Vec<u8>, wgpu::Buffer>>,
    pool: resident::BufferPool,
    /// The open command encoder: dispatches recorded, not yet submitted.
    pending: Mutex<Option<wgpu::CommandEncoder>>,
    /// A one-value buffer bound where an entry point does not read a binding.
    dummy: std::sync::OnceLock<wgpu::Buffer>,
    traffic: TrafficCounters,
}

impl Shared {
    /// Runs `record` on the open command encoder (opened if none is).
    fn with_encoder<R>(&self, record: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let encoder = pending.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("hwnas"),
                })
        });
        record(encoder)
    }

    /// Submits what the open encoder holds (nothing when none is open). The lock is held
    /// through the submission, so encoders reach the queue in the order they were closed: a
    /// buffer given back to the pool after its last recorded use may be written by the next
    /// encoder, which must not run first.
    fn submit(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(encoder) = pending.take() {
            self.queue.submit([encoder.finish()]);
            self.traffic.submits.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count_read_back(&self, bytes: u64) {
        self.traffic
            .read_back_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }

    fn read_back(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        resident::read_back(self, buffer, len)
    }
}

/// A wgpu device with its pipeline cache, buffer pool and open command encoder.
pub struct GpuContext {
    shared: Arc<Shared>,
}

impl std::ops::Deref for GpuContext {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl GpuContext {
    /// The first adapter wgpu offers (honouring `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`).
    pub fn new() -> Result<Self> {
        let instance = instance();
        let filter = std::env::var("WGPU_ADAPTER_NAME")
            .ok()
            .or_else(|| std::env::var("WGPU_BACKEND").ok());
        let adapter = pollster::block_on(wgpu::util::initialize_adapter_from_env_or_default(
            &instance, None,
        ))
        .map_err(|_| Error::NoAdapter {
            filter: filter.clone(),
        })?;
        let summary = AdapterSummary::from_adapter(&adapter);
        let limits = wgpu::Limits::downlevel_defaults().using_resolution(adapter.limits());
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: adapter.limits().max_storage_buffer_binding_size,
            max_buffer_size: adapter.limits().max_buffer_size,
            // The SGD update binds seven storage buffers (WebGPU's default allows eight).
            max_storage_buffers_per_shader_stage: adapter
                .limits()
                .max_storage_buffers_per_shader_stage,
            ..limits
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("hwnas"),
            required_limits: limits,
            ..Default::default()
        }))
        .map_err(|e| Error::RequestDevice {
            adapter: summary.name.clone(),
            message: e.to_string(),
        })?;
        Ok(GpuContext {
            shared: Arc::new(Shared {
                device,
                queue,
                adapter: summary,
                pipelines: Mutex::new(HashMap::new()),
                uniforms: Mutex::new(HashMap::new()),
                pool: resident::BufferPool::default(),
                pending: Mutex::new(None),
                dummy: std::sync::OnceLock::new(),
                traffic: TrafficCounters::default(),
            }),
        })
    }

    /// Host-device traffic so far (take two readings and [`Traffic::since`] for a span).
    pub fn traffic(&self) -> Traffic {
        Traffic {
            uploaded_bytes: self.traffic.uploaded_bytes.load(Ordering::Relaxed),
            read_back_bytes: self.traffic.read_back_bytes.load(Ordering::Relaxed),
            submits: self.traffic.submits.load(Ordering::Relaxed),
        }
    }

    /// `(storage buffers created so far, bytes of idle buffers the pool keeps)`.
    pub fn pool_stats(&self) -> (u64, u64) {
        self.pool.stats()
    }

    /// Submits every recorded dispatch and waits for the device to finish them.
    pub fn finish(&self) -> Result<()> {
        self.submit();
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        Ok(())
    }

    fn count_upload(&self, bytes: usize) {
        self.traffic
            .uploaded_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    /// A tensor's values as a buffer on this device: its own buffer when it is resident
    /// here, else an upload of its host values.
    fn input(&self, t: &Tensor) -> wgpu::Buffer {
        match t.device_values() {
            Some(values) if values.is_on(&self.shared) => values.buffer().clone(),
            _ => self.storage(t.data()),
        }
    }

    /// `t` resident on this device (uploaded when it is not).
    pub fn upload(&self, t: &Tensor) -> Result<Tensor> {
        if t.device_values().is_some_and(|v| v.is_on(&self.shared)) {
            return Ok(t.clone());
        }
        let out = self.output(t.len());
        let staging = self.input(t);
        let bytes = (t.len() * 4) as u64;
        if bytes > 0 {
            self.with_encoder(|e| e.copy_buffer_to_buffer(&staging, 0, &out, 0, bytes));
        }
        self.resident(t.shape(), out)
    }

    /// Reads every tensor of `tensors` resident here (and not read yet) back in one
    /// submission; their host copies are kept.
    pub fn read_back_all(&self, tensors: &[&Tensor]) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        let wanted: Vec<&DeviceValues> = tensors
            .iter()
            .filter_map(|t| t.device_values())
            .filter(|v| v.is_on(&self.shared) && !v.has_host())
            .filter(|v| seen.insert(*v as *const DeviceValues))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let buffers: Vec<(&wgpu::Buffer, usize)> =
            wanted.iter().map(|v| (v.buffer(), v.len())).collect();
        let values = resident::read_back_many(&self.shared, &buffers)?;
        for (v, host) in wanted.iter().zip(values) {
            v.set_host(host);
        }
        Ok(())
    }

    /// Wraps a buffer this context wrote as a resident tensor of `shape`.
    fn resident(&self, shape: &[usize], buffer: wgpu::Buffer) -> Result<Tensor> {
        let len = shape.iter().product();
        Tensor::on_device(shape, DeviceValues::new(self.shared.clone(), buffer, len))
    }

    fn pipeline(&self, key: PipelineKey) -> (wgpu::ComputePipeline, wgpu::BindGroupLayout) {
        let mut cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(key)
            .or_insert_with(|| {
                let module = self
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(key.shader.path()),
                        source: wgpu::ShaderSource::Wgsl(key.shader.source().into()),
                    });
                let pipeline =
                    self.device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(key.entry),
                            layout: None,
                            module: &module,
                            entry_point: Some(key.entry),
                            compilation_options: Default::default(),
                            cache: None,
                        });
                let layout = pipeline.get_bind_group_layout(0);
                (pipeline, layout)
            })
            .clone()
    }

    /// A one-value buffer for bindings an entry point does not read (made once).
    fn dummy(&self) -> wgpu::Buffer {
        self.shared
            .dummy
            .get_or_init(|| self.storage::<f32>(&[0.0]))
            .clone()
    }

    /// A fresh buffer holding `data` (host values going in).
    fn storage<T: bytemuck::Pod>(&self, data: &[T]) -> wgpu::Buffer {
        // wgpu refuses empty bindings: pad to one value.
        let zero = [T::zeroed()];
        let padded: &[T] = if data.is_empty() { &zero } else { data };
        self.count_upload(std::mem::size_of_val(padded));
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(padded),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// A zeroed buffer for `len` values: an idle one from the pool, cleared, or a new one.
    fn output(&self, len: usize) -> wgpu::Buffer {
        let bucket = resident::bucket_of((len * 4) as u64);
        match self.pool.take(bucket) {
            Some(buffer) => {
                self.with_encoder(|e| e.clear_buffer(&buffer, 0, None));
                buffer
            }
            None => {
                self.pool.count_created();
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: bucket,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }
        }
    }

    /// A parameter block: uploaded the first time these bytes are asked for, then kept.
    fn uniform<T: bytemuck::Pod>(&self, value: &T) -> wgpu::Buffer {
        let bytes = bytemuck::bytes_of(value);
        let mut cache = self.uniforms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(buffer) = cache.get(bytes) {
            return buffer.clone();
        }
        if cache.len() >= MAX_CACHED_UNIFORMS {
            cache.clear();
        }
        self.count_upload(bytes.len());
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        cache.insert(bytes.to_vec(), buffer.clone());
        buffer
    }

    /// One dispatch of `key` with `params` at binding 0, `inputs` at their bindings and a
    /// fresh output of `shape` at binding 3 (every shader's output binding), left on the
    /// device.
    fn launch<P: bytemuck::Pod>(
        &self,
        key: PipelineKey,
        params: &P,
        inputs: &[(u32, &wgpu::Buffer)],
        workgroups: (u32, u32, u32),
        shape: &[usize],
    ) -> Result<Tensor> {
        let len = shape.iter().product();
        let (params, out) = (self.uniform(params), self.output(len));
        let mut bindings = vec![(0, &params), (3, &out)];
        bindings.extend_from_slice(inputs);
        let pass = Pass {
            key,
            bindings,
            workgroups,
        };
        self.record(&[pass]);
        self.resident(shape, out)
    }

    /// Records `passes`, in order, into the open command encoder.
    fn record(&self, passes: &[Pass<'_>]) {
        let prepared: Vec<(wgpu::ComputePipeline, wgpu::BindGroup, (u32, u32, u32))> = passes
            .iter()
            .map(|step| {
                let (pipeline, layout) = self.pipeline(step.key);
                let entries: Vec<wgpu::BindGroupEntry> = step
                    .bindings
                    .iter()
                    .map(|(binding, b)| wgpu::BindGroupEntry {
                        binding: *binding,
                        resource: b.as_entire_binding(),
                    })
                    .collect();
                let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &layout,
                    entries: &entries,
                });
                (pipeline, bind_group, step.workgroups)
            })
            .collect();
        self.with_encoder(|encoder| {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            for (pipeline, bind_group, (x, y, z)) in &prepared {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(*x, *y, *z);
            }
        });
    }

    /// `a x b` for `[M, K] x [K, N]`.
    pub fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.matmul_transposed(a, false, b, false)
    }

    /// `op(a) x op(b)`, `op` transposing a `[R, C]` operand when its flag says so: the
    /// backward products `dc b^T` and `a^T dc` read their operands where they lie.
    pub fn matmul_transposed(
        &self,
        a: &Tensor,
        transpose_a: bool,
        b: &Tensor,
        transpose_b: bool,
    ) -> Result<Tensor> {
        let mismatch = || {
            Error::Shape(format!(
                "matmul: {:?}{} x {:?}{}",
                a.shape(),
                if transpose_a { "^T" } else { "" },
                b.shape(),
                if transpose_b { "^T" } else { "" }
            ))
        };
        let (&[a0, a1], &[b0, b1]) = (a.shape(), b.shape()) else {
            return Err(mismatch());
        };
        let (m, k) = if transpose_a { (a1, a0) } else { (a0, a1) };
        let (k2, n) = if transpose_b { (b1, b0) } else { (b0, b1) };
        if k != k2 {
            return Err(mismatch());
        }
        let params = MatmulParams {
            m: m as u32,
            k: k as u32,
            n: n as u32,
            transposed: u32::from(transpose_a) | (u32::from(transpose_b) << 1),
        };
        let key = PipelineKey {
            shader: Shader::Matmul,
            entry: "main",
        };
        let groups = (n.div_ceil(128) as u32, m.div_ceil(128) as u32, 1);
        let inputs = [(1, &self.input(a)), (2, &self.input(b))];
        self.launch(key, &params, &inputs, groups, &[m, n])
    }

    /// `f(x)`.
    pub fn activation(&self, x: &Tensor, f: Activation) -> Result<Tensor> {
        self.activation_pass(x, None, f, "activation_forward")
    }

    /// `dy * f'(x)`.
    pub fn activation_backward(&self, x: &Tensor, dy: &Tensor, f: Activation) -> Result<Tensor> {
        if x.shape() != dy.shape() {
            return Err(Error::Shape(format!(
                "activation backward: x {:?}, dy {:?}",
                x.shape(),
                dy.shape()
            )));
        }
        self.activation_pass(x, Some(dy), f, "activation_backward")
    }

    fn activation_pass(
        &self,
        x: &Tensor,
        dy: Option<&Tensor>,
        f: Activation,
        entry: &'static str,
    ) -> Result<Tensor> {
        let len = x.len();
        let params = ActivationParams {
            len: len as u32,
            kind: f.code(),
            pad: [0; 2],
        };
        let key = PipelineKey {
            shader: Shader::Activation,
            entry,
        };
        // 256 invocations per workgroup in `activation.wgsl`.
        let groups = Self::workgroups_2d(len.div_ceil(256));
        let xb = self.input(x);
        let dyb = dy.map(|dy| self.input(dy));
        let mut inputs = vec![(1, &xb)];
        // The forward entry point does not read `dy`, so its layout has no binding 2.
        inputs.extend(dyb.as_ref().map(|b| (2, b)));
        self.launch(key, &params, &inputs, groups, x.shape())
    }

    fn conv_params(geometry: [usize; 8], spec: &Conv2dSpec, mode: u32) -> Conv2dParams {
        let [n, cin, h, w, cout, k, oh, ow] = geometry.map(|v| v as u32);
        Conv2dParams {
            n,
            cin,
            h,
            w,
            cout,
            k,
            oh,
            ow,
            stride: spec.stride as u32,
            padding: spec.padding as u32,
            dilation: spec.dilation as u32,
            groups: spec.groups.max(1) as u32,
            mode,
            pad: [0; 3],
        }
    }

    /// Whether a convolution's groups are wide enough for the tiled kernel (its product has
    /// at least 8 rows and 8 taps per output); depthwise and other narrow groups take the
    /// direct kernels.
    pub fn conv_is_tiled(geometry: [usize; 8], spec: &Conv2dSpec) -> bool {
        let groups = spec.groups.max(1);
        let [_, cin, _, _, cout, ..] = geometry;
        cin / groups >= 8 && cout / groups >= 8
    }

    /// The dispatch of the depthwise kernels (16 x 16 tiles of output planes forward, of input
    /// planes for the input gradient), or `None` where they do not apply: more than one input
    /// channel per group, or a window too big for the kernel's 2,304-value staging array.
    pub fn depthwise_groups(
        geometry: [usize; 8],
        spec: &Conv2dSpec,
        input_gradient: bool,
    ) -> Option<(u32, u32, u32)> {
        const PATCH: usize = 2304;
        let groups = spec.groups.max(1);
        let [n, cin, h, w, cout, k, oh, ow] = geometry;
        // The kernel's taps are staged too (at most 256 of them).
        if cin / groups != 1 || k > 16 {
            return None;
        }
        let reach = (k - 1) * spec.dilation;
        let (span, (rows, columns), planes) = if input_gradient {
            ((15 + reach) / spec.stride + 2, (h, w), n * cin)
        } else {
            (15 * spec.stride + reach + 1, (oh, ow), n * cout)
        };
        let tiles = rows.div_ceil(16) * columns.div_ceil(16);
        if span * span > PATCH || tiles > 65_535 || planes.div_ceil(65_535) > 65_535 {
            return None;
        }
        Some((
            tiles as u32,
            planes.min(65_535) as u32,
            planes.div_ceil(65_535) as u32,
        ))
    }

    /// `count` workgroups spread over x and y (each axis holds at most 65,535).
    fn workgroups_2d(count: usize) -> (u32, u32, u32) {
        let x = count.clamp(1, 65_535);
        (x as u32, count.div_ceil(x) as u32, 1)
    }

    /// The tiled dispatch for a product of `rows x columns` per group.
    fn tiled_groups(rows: usize, columns: usize, groups: usize) -> Result<(u32, u32, u32)> {
        let (x, y) = (columns.div_ceil(128), rows.div_ceil(64));
        if x > 65_535 || y > 65_535 || groups > 65_535 {
            return Err(Error::Gpu(format!(
                "a convolution product of {rows} x {columns} in {groups} groups exceeds one dispatch; use a smaller batch"
            )));
        }
        Ok((x as u32, y as u32, groups as u32))
    }

    /// Convolution without bias (same contract as [`crate::cpu::conv2d`]).
    pub fn conv2d(&self, x: &Tensor, weight: &Tensor, spec: &Conv2dSpec) -> Result<Tensor> {
        let geometry = crate::cpu::conv::geometry_of(x, weight, spec)?;
        let [n, _, _, _, cout, _, oh, ow] = geometry;
        let groups = spec.groups.max(1);
        let len = n * cout * oh * ow;
        let params = Self::conv_params(geometry, spec, 0);
        let (xb, wb) = (self.input(x), self.input(weight));
        let shape = [n, cout, oh, ow];
        if Self::conv_is_tiled(geometry, spec) {
            let dims = Self::tiled_groups(cout / groups, n * oh * ow, groups)?;
            let dummy = self.dummy();
            let inputs = [(1, &xb), (2, &wb), (4, &dummy)];
            self.launch(Self::conv_key("tiled"), &params, &inputs, dims, &shape)
        } else if let Some(dims) = Self::depthwise_groups(geometry, spec, false) {
            let inputs = [(1, &xb), (2, &wb)];
            self.launch(Self::conv_key("depthwise"), &params, &inputs, dims, &shape)
        } else {
            let dims = Self::workgroups_2d(len.div_ceil(64));
            let inputs = [(1, &xb), (2, &wb)];
            self.launch(Self::conv_key("main"), &params, &inputs, dims, &shape)
        }
    }

    /// The input and weight gradients of a convolution without bias (the bias gradient is
    /// the per-channel sum of `dy`), both in one submission.
    pub fn conv2d_backward(
        &self,
        x: &Tensor,
        weight: &Tensor,
        dy: &Tensor,
        spec: &Conv2dSpec,
    ) -> Result<(Tensor, Tensor)> {
        let geometry = crate::cpu::conv::geometry_of(x, weight, spec)?;
        let [n, cin, h, w, cout, k, oh, ow] = geometry;
        if dy.shape() != [n, cout, oh, ow] {
            return Err(Error::Shape(format!(
                "conv backward: dy {:?} for an output of [{n}, {cout}, {oh}, {ow}]",
                dy.shape()
            )));
        }
        let groups = spec.groups.max(1);
        let (xb, wb, dyb) = (self.input(x), self.input(weight), self.input(dy));
        let (dx_len, dw_len) = (x.len(), weight.len());
        let (dxb, dwb) = (self.output(dx_len), self.output(dw_len));
        let dummy = self.dummy();
        let tiled = Self::conv_is_tiled(geometry, spec);
        // Tiled: mode 1 (input gradient) and mode 2 (weight gradient) of one entry point.
        let (input_params, weight_params) = if tiled {
            (
                self.uniform(&Self::conv_params(geometry, spec, 1)),
                self.uniform(&Self::conv_params(geometry, spec, 2)),
            )
        } else {
            let params = Self::conv_params(geometry, spec, 0);
            (self.uniform(&params), self.uniform(&params))
        };
        let passes = if tiled {
            [
                Pass {
                    key: Self::conv_key("tiled"),
                    bindings: vec![
                        (0, &input_params),
                        (1, &dummy),
                        (2, &wb),
                        (3, &dxb),
                        (4, &dyb),
                    ],
                    workgroups: Self::tiled_groups(cin / groups, n * h * w, groups)?,
                },
                Pass {
                    key: Self::conv_key("tiled"),
                    bindings: vec![
                        (0, &weight_params),
                        (1, &xb),
                        (2, &dummy),
                        (3, &dwb),
                        (4, &dyb),
                    ],
                    workgroups: Self::tiled_groups(cout / groups, (cin / groups) * k * k, groups)?,
                },
            ]
        } else {
            let (entry, workgroups) = match Self::depthwise_groups(geometry, spec, true) {
                Some(dims) => ("depthwise_backward_input", dims),
                None => (
                    "backward_input_direct",
                    Self::workgroups_2d(dx_len.div_ceil(64)),
                ),
            };
            [
                Pass {
                    key: Self::conv_key(entry),
                    bindings: vec![(0, &input_params), (2, &wb), (3, &dxb), (4, &dyb)],
                    workgroups,
                },
                if cin == groups {
                    Pass {
                        key: Self::conv_key("depthwise_backward_weight"),
                        bindings: vec![(0, &weight_params), (1, &xb), (3, &dwb), (4, &dyb)],
                        workgroups: (1, cout.min(65_535) as u32, cout.div_ceil(65_535) as u32),
                    }
                } else {
                    Pass {
                        key: Self::conv_key("backward_weight_direct"),
                        bindings: vec![(0, &weight_params), (1, &xb), (3, &dwb), (4, &dyb)],
                        workgroups: Self::workgroups_2d(dw_len),
                    }
                },
            ]
        };
        self.record(&passes);
        Ok((
            self.resident(x.shape(), dxb)?,
            self.resident(weight.shape(), dwb)?,
        ))
    }

    fn conv_key(entry: &'static str) -> PipelineKey {
        PipelineKey {
            shader: Shader::Conv2d,
            entry,
        }
    }
}
