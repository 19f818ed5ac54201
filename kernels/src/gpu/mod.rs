//! The wgpu backend: one device and queue, compute pipelines compiled once and cached by a
//! typed key, buffers uploaded with bytemuck, results read back after the queue finishes.
//! Runs on any Vulkan, Metal or DX12 adapter, and on the CPU through Mesa's lavapipe.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wgpu::util::DeviceExt;

use crate::adapters::{AdapterSummary, instance};
use crate::error::{Error, Result};
use crate::ops::{Activation, Conv2dSpec};
use crate::tensor::Tensor;
use crate::wgsl::{ActivationParams, Conv2dParams, MatmulParams, Shader};

mod layers;
mod runtime_dir;

pub use runtime_dir::vulkan_runtime_dir;

/// A compiled pipeline: a shader's entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    /// The shader.
    pub shader: Shader,
    /// The entry point.
    pub entry: &'static str,
}

/// One dispatch of a recorded submission.
struct Pass<'a> {
    key: PipelineKey,
    bindings: Vec<(u32, &'a wgpu::Buffer)>,
    workgroups: (u32, u32, u32),
}

/// What crossed between host and device since a context was made: exact counts, kept as
/// the transfers are issued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes written to the device (tensor inputs and every dispatch's parameters).
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

/// A wgpu device with its pipeline cache.
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: AdapterSummary,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    traffic: TrafficCounters,
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
            device,
            queue,
            adapter: summary,
            pipelines: Mutex::new(HashMap::new()),
            traffic: TrafficCounters::default(),
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

    fn count_upload(&self, bytes: usize) {
        self.traffic
            .uploaded_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    fn pipeline(&self, key: PipelineKey) -> wgpu::ComputePipeline {
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
                self.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(key.entry),
                        layout: None,
                        module: &module,
                        entry_point: Some(key.entry),
                        compilation_options: Default::default(),
                        cache: None,
                    })
            })
            .clone()
    }

    fn storage<T: bytemuck::Pod>(&self, data: &[T]) -> wgpu::Buffer {
        // wgpu refuses empty bindings: pad to one value.
        let zero = [T::zeroed()];
        let padded: &[T] = if data.is_empty() { &zero } else { data };
        self.count_upload(std::mem::size_of_val(padded));
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(padded),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
    }

    fn output(&self, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    fn uniform<T: bytemuck::Pod>(&self, value: &T) -> wgpu::Buffer {
        self.count_upload(std::mem::size_of::<T>());
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// One dispatch of `key` with `params` at binding 0, `inputs` at their bindings and a
    /// fresh output of `len` values at binding 3 (every shader's output binding), read back.
    fn launch<P: bytemuck::Pod>(
        &self,
        key: PipelineKey,
        params: &P,
        inputs: &[(u32, &wgpu::Buffer)],
        workgroups: (u32, u32, u32),
        len: usize,
    ) -> Result<Vec<f32>> {
        let (params, out) = (self.uniform(params), self.output(len));
        let mut bindings = vec![(0, &params), (3, &out)];
        bindings.extend_from_slice(inputs);
        let pass = Pass {
            key,
            bindings,
            workgroups,
        };
        Ok(self
            .execute(&[pass], &[(&out, len)])?
            .pop()
            .expect("one output"))
    }

    /// Records `passes` in order in one submission and reads back `outputs` (buffer,
    /// values) once the queue is done.
    fn execute(
        &self,
        passes: &[Pass<'_>],
        outputs: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<f32>>> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        for step in passes {
            let pipeline = self.pipeline(step.key);
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
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            let (x, y, z) = step.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
        let readbacks: Vec<wgpu::Buffer> = outputs
            .iter()
            .map(|(output, len)| {
                let size = (len.max(&1) * 4) as u64;
                let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                encoder.copy_buffer_to_buffer(output, 0, &readback, 0, size);
                self.traffic
                    .read_back_bytes
                    .fetch_add(size, Ordering::Relaxed);
                readback
            })
            .collect();
        self.queue.submit([encoder.finish()]);
        self.traffic.submits.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = std::sync::mpsc::channel();
        for readback in &readbacks {
            let sender = sender.clone();
            readback.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = sender.send(r);
            });
        }
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        for _ in &readbacks {
            receiver
                .recv()
                .map_err(|_| Error::Gpu("the readback never completed".into()))?
                .map_err(|e| Error::Gpu(format!("reading back: {e}")))?;
        }
        let mut values = Vec::with_capacity(outputs.len());
        for (readback, (_, len)) in readbacks.iter().zip(outputs) {
            let slice = readback.slice(..);
            {
                let view = slice
                    .get_mapped_range()
                    .map_err(|e| Error::Gpu(format!("mapping the readback: {e:?}")))?;
                values.push(bytemuck::cast_slice::<u8, f32>(&view)[..*len].to_vec());
            }
            readback.unmap();
        }
        Ok(values)
    }

    /// `a x b` for `[M, K] x [K, N]`.
    pub fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let (&[m, k], &[k2, n]) = (a.shape(), b.shape()) else {
            return Err(Error::Shape(format!(
                "matmul: {:?} x {:?}",
                a.shape(),
                b.shape()
            )));
        };
        if k != k2 {
            return Err(Error::Shape(format!(
                "matmul: {:?} x {:?}",
                a.shape(),
                b.shape()
            )));
        }
        let params = MatmulParams {
            m: m as u32,
            k: k as u32,
            n: n as u32,
            pad: 0,
        };
        let key = PipelineKey {
            shader: Shader::Matmul,
            entry: "main",
        };
        let groups = (n.div_ceil(128) as u32, m.div_ceil(128) as u32, 1);
        let inputs = [(1, &self.storage(a.data())), (2, &self.storage(b.data()))];
        Tensor::new(&[m, n], self.launch(key, &params, &inputs, groups, m * n)?)
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
        let xb = self.storage(x.data());
        let dyb = dy.map(|dy| self.storage(dy.data()));
        let mut inputs = vec![(1, &xb)];
        // The forward entry point does not read `dy`, so its layout has no binding 2.
        inputs.extend(dyb.as_ref().map(|b| (2, b)));
        Tensor::new(x.shape(), self.launch(key, &params, &inputs, groups, len)?)
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
        let (xb, wb) = (self.storage(x.data()), self.storage(weight.data()));
        let values = if Self::conv_is_tiled(geometry, spec) {
            let dims = Self::tiled_groups(cout / groups, n * oh * ow, groups)?;
            let dummy = self.storage::<f32>(&[]);
            let inputs = [(1, &xb), (2, &wb), (4, &dummy)];
            self.launch(Self::conv_key("tiled"), &params, &inputs, dims, len)?
        } else if let Some(dims) = Self::depthwise_groups(geometry, spec, false) {
            let inputs = [(1, &xb), (2, &wb)];
            self.launch(Self::conv_key("depthwise"), &params, &inputs, dims, len)?
        } else {
            let dims = Self::workgroups_2d(len.div_ceil(64));
            let inputs = [(1, &xb), (2, &wb)];
            self.launch(Self::conv_key("main"), &params, &inputs, dims, len)?
        };
        Tensor::new(&[n, cout, oh, ow], values)
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
        let (xb, wb, dyb) = (
            self.storage(x.data()),
            self.storage(weight.data()),
            self.storage(dy.data()),
        );
        let (dx_len, dw_len) = (x.len(), weight.len());
        let (dxb, dwb) = (self.output(dx_len), self.output(dw_len));
        let dummy = self.storage::<f32>(&[]);
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
        let mut out = self.execute(&passes, &[(&dxb, dx_len), (&dwb, dw_len)])?;
        let dw = out.pop().expect("two outputs");
        let dx = out.pop().expect("two outputs");
        Ok((
            Tensor::new(x.shape(), dx)?,
            Tensor::new(weight.shape(), dw)?,
        ))
    }

    fn conv_key(entry: &'static str) -> PipelineKey {
        PipelineKey {
            shader: Shader::Conv2d,
            entry,
        }
    }
}
