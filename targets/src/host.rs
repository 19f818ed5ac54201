//! Facts about the machine this process runs on: CPU model, cores, memory and the CPU
//! frequency governor — what a latency measurement must be labelled with to be comparable.

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// A description of the local machine, as far as latency measurements care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// The CPU's brand string, e.g. `AMD EPYC 7B13`.
    pub model: String,
    /// Logical CPUs the operating system exposes.
    pub cores: usize,
    /// Physical cores, where the operating system tells.
    pub physical_cores: Option<usize>,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Operating system and version, e.g. `Debian GNU/Linux 12`.
    pub os: String,
    /// CPU architecture, e.g. `x86_64` or `aarch64`.
    pub arch: String,
    /// The Linux CPU frequency governor of CPU 0 (`performance`, `powersave`, ...), when readable.
    pub governor: Option<String>,
}

impl HostInfo {
    /// Reads the local machine's description.
    pub fn detect() -> Self {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        let model = system
            .cpus()
            .first()
            .map(|cpu| cpu.brand().trim().to_string())
            .filter(|brand| !brand.is_empty())
            .unwrap_or_else(|| "unknown CPU".to_string());
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or_else(|_| system.cpus().len().max(1));
        HostInfo {
            model,
            cores,
            physical_cores: System::physical_core_count(),
            memory_bytes: system.total_memory(),
            os: System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_string()),
            arch: std::env::consts::ARCH.to_string(),
            governor: read_governor(),
        }
    }
}

fn read_governor() -> Option<String> {
    std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The machine's one-minute load average (runnable threads, ours included), where the
/// operating system tells.
pub fn load_average() -> Option<f64> {
    let one = System::load_average().one;
    (one.is_finite() && one > 0.0).then_some(one)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_reports_a_plausible_machine() {
        let host = HostInfo::detect();
        assert!(host.cores >= 1);
        assert!(host.memory_bytes > 64 * 1024 * 1024, "{host:?}");
        assert!(!host.model.is_empty());
        assert_eq!(host.arch, std::env::consts::ARCH);
    }
}
