//! `hwnas doctor`: what a user needs to know before a search.

use std::process::ExitCode;

use clap::Args;
use hwnas_core::kernels::{AdapterSummary, list_adapters};
use hwnas_latency::OrtRuntime;
use hwnas_targets::HostInfo;
use serde::Serialize;

/// Options of `hwnas doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct OrtReport {
    version: Option<String>,
    path: Option<String>,
    origin: Option<String>,
    providers: Vec<String>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct CpuReport {
    model: String,
    cores: usize,
    physical_cores: Option<usize>,
    arch: String,
    governor: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    hwnas: String,
    onnxruntime: OrtReport,
    adapters: Vec<AdapterSummary>,
    cpu: CpuReport,
    memory_bytes: u64,
    os: String,
}

/// Runs `hwnas doctor`; exits non-zero when ONNX Runtime cannot be loaded.
pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
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
    let report = Report {
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
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    if let Some(error) = &report.onnxruntime.error {
        eprintln!("error: {error}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(report: &Report) {
    println!("hwnas {}", report.hwnas);
    println!();
    println!("ONNX Runtime");
    match &report.onnxruntime.error {
        None => {
            let ort = &report.onnxruntime;
            println!("  version    {}", ort.version.as_deref().unwrap_or("?"));
            println!(
                "  library    {} ({})",
                ort.path.as_deref().unwrap_or("?"),
                ort.origin.as_deref().unwrap_or("?")
            );
            println!("  providers  {}", ort.providers.join(", "));
        }
        Some(_) => println!("  not loaded (see the error below)"),
    }
    println!();
    println!("wgpu adapters");
    if report.adapters.is_empty() {
        println!("  none: WGSL kernels will run on the CPU backend");
        println!("  fix: `bash scripts/setup.sh` installs Mesa's Vulkan CPU driver (lavapipe)");
    }
    for adapter in &report.adapters {
        println!(
            "  {} [{} {}] {}",
            adapter.name, adapter.backend, adapter.device_type, adapter.driver
        );
        println!(
            "    max storage binding {} MiB, max buffer {} MiB, workgroup {} invocations, {} KiB shared",
            adapter.max_storage_buffer_binding_size >> 20,
            adapter.max_buffer_size >> 20,
            adapter.max_compute_invocations_per_workgroup,
            adapter.max_compute_workgroup_storage_size >> 10
        );
    }
    println!();
    println!("Machine");
    println!("  cpu        {} ({})", report.cpu.model, report.cpu.arch);
    println!(
        "  cores      {} logical{}",
        report.cpu.cores,
        report
            .cpu
            .physical_cores
            .map(|n| format!(", {n} physical"))
            .unwrap_or_default()
    );
    if let Some(governor) = &report.cpu.governor {
        println!("  governor   {governor}");
    }
    println!(
        "  memory     {:.1} GiB",
        report.memory_bytes as f64 / (1u64 << 30) as f64
    );
    println!("  os         {}", report.os);
}
