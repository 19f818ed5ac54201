//! Discovery of the wgpu adapters this machine offers, honouring wgpu's environment
//! conventions (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`).

use serde::{Deserialize, Serialize};

/// One adapter as a user needs to see it before a search: what it is and its key limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. `llvmpipe (LLVM 19.1.7, 256 bits)` or `NVIDIA H100`.
    pub name: String,
    /// The graphics API backend, e.g. `vulkan`, `metal`, `dx12`.
    pub backend: String,
    /// `discrete_gpu`, `integrated_gpu`, `virtual_gpu`, `cpu` or `other`.
    pub device_type: String,
    /// The driver's name and version, where the backend reports it.
    pub driver: String,
    /// Largest storage buffer binding in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer in bytes.
    pub max_buffer_size: u64,
    /// Most invocations in one compute workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Bytes of workgroup (shared) memory per workgroup.
    pub max_compute_workgroup_storage_size: u32,
    /// Largest workgroup count per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
}

impl AdapterSummary {
    /// The summary of an adapter.
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let driver = [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        AdapterSummary {
            name: info.name,
            backend: info.backend.to_str().to_string(),
            device_type: device_type_name(info.device_type).to_string(),
            driver,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        }
    }
}

fn device_type_name(kind: wgpu::DeviceType) -> &'static str {
    match kind {
        wgpu::DeviceType::DiscreteGpu => "discrete_gpu",
        wgpu::DeviceType::IntegratedGpu => "integrated_gpu",
        wgpu::DeviceType::VirtualGpu => "virtual_gpu",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

/// A wgpu instance over the backends `WGPU_BACKEND` allows (all by default).
pub fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env())
}

/// Every adapter wgpu finds on this machine, in wgpu's order.
pub fn list_adapters() -> Vec<AdapterSummary> {
    let instance = instance();
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.iter().map(AdapterSummary::from_adapter).collect()
}
