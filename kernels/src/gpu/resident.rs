//! Device-resident tensor storage: values in a pooled wgpu buffer that stays on the device
//! from the op that wrote it to the ops that read it. Nothing crosses to the host unless
//! asked — [`crate::Tensor::data`] on a resident tensor reads it back once (counted as
//! traffic) and keeps the host copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::Shared;
use crate::error::{Error, Result};

/// Buffers are allocated in multiples of this many bytes, so sizes that differ a little
/// share a bucket.
const BUCKET_BYTES: u64 = 256;

/// Idle buffers beyond this many bytes are released to the driver instead of kept.
const MAX_IDLE_BYTES: u64 = 1 << 30;

/// The bucket (allocation size) of a buffer holding `bytes`.
pub(crate) fn bucket_of(bytes: u64) -> u64 {
    bytes.max(4).div_ceil(BUCKET_BYTES) * BUCKET_BYTES
}

/// Idle storage buffers by size, reused by later outputs: a training step allocates the
/// same shapes every step, so after the first one it allocates nothing.
#[derive(Default)]
pub(crate) struct BufferPool {
    idle: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    by_size: HashMap<u64, Vec<wgpu::Buffer>>,
    idle_bytes: u64,
    created: u64,
}

impl BufferPool {
    /// An idle buffer of `bucket` bytes, if one is kept.
    pub(crate) fn take(&self, bucket: u64) -> Option<wgpu::Buffer> {
        let mut state = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let buffer = state.by_size.get_mut(&bucket)?.pop()?;
        state.idle_bytes -= bucket;
        Some(buffer)
    }

    /// Notes one buffer created (for [`super::GpuContext::pool_stats`]).
    pub(crate) fn count_created(&self) {
        let mut state = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        state.created += 1;
    }

    /// Keeps `buffer` for reuse (or lets it go when the pool is full).
    pub(crate) fn give(&self, buffer: wgpu::Buffer) {
        let bucket = buffer.size();
        let mut state = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if state.idle_bytes + bucket > MAX_IDLE_BYTES {
            return;
        }
        state.idle_bytes += bucket;
        state.by_size.entry(bucket).or_default().push(buffer);
    }

    /// `(buffers created so far, idle bytes kept now)`.
    pub(crate) fn stats(&self) -> (u64, u64) {
        let state = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        (state.created, state.idle_bytes)
    }
}

/// A tensor's values on a device: a pooled buffer, given back to the pool when the last
/// tensor holding it is dropped, and the host copy once something read it.
pub struct DeviceValues {
    buffer: Option<wgpu::Buffer>,
    len: usize,
    host: OnceLock<Vec<f32>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DeviceValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceValues")
            .field("len", &self.len)
            .field("adapter", &self.shared.adapter.name)
            .field("read_back", &self.host.get().is_some())
            .finish()
    }
}

impl DeviceValues {
    pub(crate) fn new(shared: Arc<Shared>, buffer: wgpu::Buffer, len: usize) -> Self {
        DeviceValues {
            buffer: Some(buffer),
            len,
            host: OnceLock::new(),
            shared,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer (present until drop).
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("the buffer lives until drop")
    }

    /// Whether these values live on the device of `shared`.
    pub(crate) fn is_on(&self, shared: &Arc<Shared>) -> bool {
        Arc::ptr_eq(&self.shared, shared)
    }

    /// The values on the host: read back on the first call (every recorded dispatch is
    /// submitted first), kept after.
    pub fn host(&self) -> Result<&[f32]> {
        if let Some(values) = self.host.get() {
            return Ok(values);
        }
        let values = self.shared.read_back(self.buffer(), self.len)?;
        Ok(self.host.get_or_init(|| values))
    }

    /// Whether the host copy is kept already.
    pub(crate) fn has_host(&self) -> bool {
        self.host.get().is_some()
    }

    /// Keeps `values` as the host copy (read back elsewhere).
    pub(crate) fn set_host(&self, values: Vec<f32>) {
        let _ = self.host.set(values);
    }

    /// The host copy, taken by value (read back first when none is kept).
    pub fn into_host(mut self) -> Result<Vec<f32>> {
        if self.host.get().is_none() {
            let values = self.shared.read_back(self.buffer(), self.len)?;
            return Ok(values);
        }
        Ok(self.host.take().unwrap_or_default())
    }
}

impl Drop for DeviceValues {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.shared.pool.give(buffer);
        }
    }
}

/// Reads `len` values of `buffer` back to the host through `shared`'s queue.
pub(crate) fn read_back(shared: &Shared, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
    let mut values = read_back_many(shared, &[(buffer, len)])?;
    Ok(values.pop().unwrap_or_default())
}

/// Reads several buffers (each `(buffer, len)`) back in one submission.
pub(crate) fn read_back_many(
    shared: &Shared,
    buffers: &[(&wgpu::Buffer, usize)],
) -> Result<Vec<Vec<f32>>> {
    let offsets: Vec<u64> = buffers
        .iter()
        .scan(0u64, |at, (_, len)| {
            let start = *at;
            *at += (*len as u64) * 4;
            Some(start)
        })
        .collect();
    let total: u64 = buffers.iter().map(|(_, len)| *len as u64 * 4).sum();
    let size = total.max(4);
    let readback = shared.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("hwnas readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    shared.with_encoder(|encoder| {
        for ((buffer, len), offset) in buffers.iter().zip(&offsets) {
            if *len > 0 {
                encoder.copy_buffer_to_buffer(buffer, 0, &readback, *offset, *len as u64 * 4);
            }
        }
    });
    shared.count_read_back(total);
    shared.submit();
    let (sender, receiver) = std::sync::mpsc::channel();
    readback.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = sender.send(r);
    });
    shared
        .device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
    receiver
        .recv()
        .map_err(|_| Error::Gpu("the readback never completed".into()))?
        .map_err(|e| Error::Gpu(format!("reading back: {e}")))?;
    let values = {
        let view = readback
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("mapping the readback: {e:?}")))?;
        let all = bytemuck::cast_slice::<u8, f32>(&view);
        buffers
            .iter()
            .zip(&offsets)
            .map(|((_, len), offset)| all[*offset as usize / 4..][..*len].to_vec())
            .collect()
    };
    readback.unmap();
    Ok(values)
}
