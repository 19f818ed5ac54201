//! The agent protocol's wire types to and from this crate's measurements, and the ONNX
//! Runtime profiler an agent is given to serve requests with.

use hwnas_targets::agent::Profiler;
use hwnas_targets::protocol::{WireFingerprint, WireProtocol, WireStats};

use crate::profile::{Fingerprint, Measurement, Protocol, Stats, profile};
use crate::runtime::OrtRuntime;

impl From<&Fingerprint> for WireFingerprint {
    fn from(f: &Fingerprint) -> Self {
        WireFingerprint {
            ort_version: f.ort_version.clone(),
            execution_provider: f.execution_provider.clone(),
            cpu_model: f.cpu_model.clone(),
            cores: u32::try_from(f.cores).unwrap_or(u32::MAX),
            threads: u32::try_from(f.threads).unwrap_or(u32::MAX),
            governor: f.governor.clone(),
            arch: f.arch.clone(),
        }
    }
}

impl From<WireFingerprint> for Fingerprint {
    fn from(f: WireFingerprint) -> Self {
        Fingerprint {
            ort_version: f.ort_version,
            execution_provider: f.execution_provider,
            cpu_model: f.cpu_model,
            cores: f.cores as usize,
            threads: f.threads as usize,
            governor: f.governor,
            arch: f.arch,
        }
    }
}

impl From<&Stats> for WireStats {
    fn from(s: &Stats) -> Self {
        WireStats {
            median_ms: s.median_ms,
            p10_ms: s.p10_ms,
            p90_ms: s.p90_ms,
            mean_ms: s.mean_ms,
            std_ms: s.std_ms,
            runs: u32::try_from(s.runs).unwrap_or(u32::MAX),
            median_rel_ci: s.median_rel_ci,
        }
    }
}

impl From<WireStats> for Stats {
    fn from(s: WireStats) -> Self {
        Stats {
            median_ms: s.median_ms,
            p10_ms: s.p10_ms,
            p90_ms: s.p90_ms,
            mean_ms: s.mean_ms,
            std_ms: s.std_ms,
            runs: s.runs as usize,
            median_rel_ci: s.median_rel_ci,
        }
    }
}

impl From<&WireProtocol> for Protocol {
    fn from(p: &WireProtocol) -> Self {
        Protocol {
            warmup: p.warmup as usize,
            min_runs: p.min_runs as usize,
            max_runs: p.max_runs as usize,
            rel_ci: p.rel_ci,
            max_seconds: p.max_seconds,
            threads: p.threads as usize,
        }
    }
}

/// A measurement as an agent answered it.
pub fn measurement_of(stats: WireStats, fingerprint: WireFingerprint) -> Measurement {
    Measurement {
        stats: stats.into(),
        fingerprint: fingerprint.into(),
    }
}

/// Profiles with ONNX Runtime on this machine: what `hwnas agent` serves with.
pub struct OrtProfiler;

impl Profiler for OrtProfiler {
    fn fingerprint(&self, threads: u32) -> WireFingerprint {
        match OrtRuntime::load() {
            Ok(runtime) => (&Fingerprint::local(runtime, threads as usize)).into(),
            Err(e) => WireFingerprint {
                ort_version: format!("unavailable: {e}"),
                execution_provider: String::new(),
                cpu_model: String::new(),
                cores: 0,
                threads,
                governor: None,
                arch: std::env::consts::ARCH.into(),
            },
        }
    }

    fn profile(
        &self,
        model: &[u8],
        protocol: &WireProtocol,
    ) -> std::result::Result<(WireStats, WireFingerprint), String> {
        let m = profile(model, &Protocol::from(protocol)).map_err(|e| e.to_string())?;
        Ok(((&m.stats).into(), (&m.fingerprint).into()))
    }
}
