//! What a user needs to know before a search: ONNX Runtime, wgpu adapters, CPU and memory.

use std::fmt::Write as _;

use hwnas_core::kernels::{AdapterSummary, list_adapters};
use hwnas_latency::OrtRuntime;
use hwnas_targets::HostInfo;
use serde::Serialize;

/// ONNX Runtime as found.
#[derive(Debug, Serialize)]
pub struct OrtReport {
    /// version.
    pub version: Option<String>,
    /// path.
    pub path: Option<String>,
    /// origin.
    pub origin: Option<String>,
    /// providers.
    pub providers: Vec<String>,
    /// error.
    pub error: Option<String>,
}

/// The CPU.
#[derive(Debug, Serialize)]
pub struct CpuReport {
    /// model.
    pub model: String,
    /// cores.
    pub cores: usize,
    /// physical cores.
    pub physical_cores: Option<usize>,
    /// arch.
    pub arch: String,
    /// governor.
    pub governor: Option<String>,
}

/// Everything `hwnas doctor` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// hwnas.
    pub hwnas: String,
    /// onnxruntime.
    pub onnxruntime: OrtReport,
    /// adapters.
    pub adapters: Vec<AdapterSummary>,
    /// cpu.
    pub cpu: CpuReport,
    /// memory bytes.
    pub memory_bytes: u64,
    /// os.
    pub os: String,
}

impl Report {
    /// Looks at this machine.
    pub fn detect() -> Report {
        let ort = match OrtRuntime::load() {
            Ok(runtime) => OrtReport {
                version: Some(runtime.version.clone()),
                path: Some(runtime.path.display().to_string()),
                origin: Some(runtime.origin.clone()),
                providers: runtime.providers.clone(),
                error: None,
            },
            Err(error) => OrtReport {
                version: None,
                path: None,
                origin: None,
                providers: Vec::new(),
                error: Some(error.to_string()),
            },
        };
        let host = HostInfo::detect();
        Report {
            hwnas: env!("CARGO_PKG_VERSION").to_string(),
            onnxruntime: ort,
            adapters: list_adapters(),
            cpu: CpuReport {
                model: host.model,
                cores: host.cores,
                physical_cores: host.physical_cores,
                arch: host.arch,
                governor: host.governor,
            },
            memory_bytes: host.memory_bytes,
            os: host.os,
        }
    }

    /// The report as text for a person.
    pub fn text(&self) -> String {
        let report = self;
        let mut text = String::new();
        _ = writeln!(text, "hwnas {}", report.hwnas);
        text.push('\n');
        _ = writeln!(text, "ONNX Runtime");
        match &report.onnxruntime.error {
            None => {
                let ort = &report.onnxruntime;
                _ = writeln!(
                    text,
                    "  version    {}",
                    ort.version.as_deref().unwrap_or("?")
                );
                _ = writeln!(
                    text,
                    "  library    {} ({})",
                    ort.path.as_deref().unwrap_or("?"),
                    ort.origin.as_deref().unwrap_or("?")
                );
                _ = writeln!(text, "  providers  {}", ort.providers.join(", "));
            }
            Some(_) => text.push_str("  not loaded (see the error below)\n"),
        }
        text.push('\n');
        _ = writeln!(text, "wgpu adapters");
        if report.adapters.is_empty() {
            _ = writeln!(text, "  none: WGSL kernels will run on the CPU backend");
            _ = writeln!(
                text,
                "  fix: `bash scripts/setup.sh` installs Mesa's Vulkan CPU driver (lavapipe)"
            );
        }
        for adapter in &report.adapters {
            _ = writeln!(
                text,
                "  {} [{} {}] {}",
                adapter.name, adapter.backend, adapter.device_type, adapter.driver
            );
            _ = writeln!(
                text,
                "    max storage binding {} MiB, max buffer {} MiB, workgroup {} invocations, {} KiB shared",
                adapter.max_storage_buffer_binding_size >> 20,
                adapter.max_buffer_size >> 20,
                adapter.max_compute_invocations_per_workgroup,
                adapter.max_compute_workgroup_storage_size >> 10
            );
        }
        text.push('\n');
        _ = writeln!(text, "Machine");
        _ = writeln!(
            text,
            "  cpu        {} ({})",
            report.cpu.model, report.cpu.arch
        );
        _ = writeln!(
            text,
            "  cores      {} logical{}",
            report.cpu.cores,
            report
                .cpu
                .physical_cores
                .map(|n| format!(", {n} physical"))
                .unwrap_or_default()
        );
        if let Some(governor) = &report.cpu.governor {
            _ = writeln!(text, "  governor   {governor}");
        }
        _ = writeln!(
            text,
            "  memory     {:.1} GiB",
            report.memory_bytes as f64 / (1u64 << 30) as f64
        );
        _ = writeln!(text, "  os         {}", report.os);
        text
    }
}
