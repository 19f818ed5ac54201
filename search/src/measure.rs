//! End-to-end measurement on a target: this machine through ONNX Runtime, or a board
//! through the agents of a target description.

use std::sync::Mutex;
use std::time::Duration;

use hwnas_core::{Arch, LatencyModel, SearchSpace};
use hwnas_latency::measured::{MeasuredLatency, export_for_profiling};
use hwnas_latency::profile::{Measurement, Protocol, Stats, profile, profile_interleaved};
use hwnas_latency::wire::measurement_of;
use hwnas_targets::client::{FleetResult, profile_fleet};
use hwnas_targets::description::{self, Target, TargetKind};

use crate::error::{Error, Result};

/// How long one profiling job on an agent may take before it is given up.
pub const AGENT_JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// End-to-end measurement of finalists on the target.
pub trait FinalMeasure: Send + Sync {
    /// Median latency of an architecture (through the measurement cache, where there is one).
    fn arch_ms(&self, arch: &Arch) -> Result<f64>;
    /// Median latency of a model's bytes, measured afresh.
    fn model_ms(&self, model: &[u8]) -> Result<f64>;
    /// Medians of a model and a reference model measured afresh side by side (in one
    /// interleaved run where the target allows, so that load falls on both alike).
    fn paired_ms(&self, model: &[u8], reference: &[u8]) -> Result<(f64, f64)> {
        let first = self.model_ms(reference)?;
        let ms = self.model_ms(model)?;
        let last = self.model_ms(reference)?;
        Ok((ms, (first + last) / 2.0))
    }
    /// The target's load beside the measurements (the one-minute load average less the
    /// measuring threads), where known.
    fn other_load(&self) -> Option<f64> {
        None
    }
    /// Warnings gathered since the last call (damaged cache entries).
    fn take_warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// This machine, through ONNX Runtime.
pub struct LocalMeasure {
    /// Cached measurements of architectures.
    pub measured: MeasuredLatency,
    /// The protocol fresh profiles use.
    pub protocol: Protocol,
    /// Fresh profiles whose median the protocol could not pin down.
    noisy: Mutex<Vec<String>>,
}

impl LocalMeasure {
    /// Measures by `protocol`, architectures through `measured`'s cache.
    pub fn new(measured: MeasuredLatency, protocol: Protocol) -> Self {
        LocalMeasure {
            measured,
            protocol,
            noisy: Mutex::new(Vec::new()),
        }
    }

    /// Notes a fresh profile whose median's confidence interval stayed wider than the
    /// protocol asks: its runs ran out (time or count) on a noisy machine.
    fn watch(&self, stats: &Stats, what: &str) -> f64 {
        if stats.median_rel_ci > self.protocol.rel_ci {
            self.noisy.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
                "{what}: the median ({:.3} ms) is known to ±{:.1}% only after {} runs (the protocol asks ±{:.1}%): the machine is noisy",
                stats.median_ms,
                stats.median_rel_ci * 100.0,
                stats.runs,
                self.protocol.rel_ci * 100.0
            ));
        }
        stats.median_ms
    }
}

impl FinalMeasure for LocalMeasure {
    fn arch_ms(&self, arch: &Arch) -> Result<f64> {
        Ok(self.measured.measure(arch)?.stats.median_ms)
    }
    fn model_ms(&self, model: &[u8]) -> Result<f64> {
        let stats = profile(model, &self.protocol)?.stats;
        Ok(self.watch(&stats, "a finalist"))
    }
    fn paired_ms(&self, model: &[u8], reference: &[u8]) -> Result<(f64, f64)> {
        let both = profile_interleaved(&[model, reference], &self.protocol)?;
        Ok((
            self.watch(&both[0].stats, "a finalist"),
            self.watch(&both[1].stats, "the reference beside a finalist"),
        ))
    }
    fn other_load(&self) -> Option<f64> {
        hwnas_targets::host::load_average().map(|l| (l - self.protocol.threads as f64).max(0.0))
    }
    fn take_warnings(&self) -> Vec<String> {
        let mut warnings = self.measured.take_warnings();
        warnings.append(&mut self.noisy.lock().unwrap_or_else(|p| p.into_inner()));
        warnings
    }
}

/// What a command line may change in a target's own protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// ONNX Runtime threads instead of the target's.
    pub threads: Option<usize>,
    /// Exactly this many timed runs instead of the target's adaptive protocol.
    pub runs: Option<usize>,
    /// Warm-up runs instead of the target's.
    pub warmup: Option<usize>,
}

/// Profiles one model on the first free agent of `target`; the measurement and the agent
/// that took it.
pub fn profile_on_agents(
    target: &Target,
    token: &[u8],
    model: &[u8],
    overrides: Overrides,
) -> Result<(Measurement, String)> {
    let mut protocol = target.wire_protocol();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    if let Some(threads) = overrides.threads {
        protocol.threads = count(threads);
    }
    if let Some(runs) = overrides.runs {
        protocol.min_runs = count(runs);
        protocol.max_runs = count(runs);
        protocol.max_seconds = 1e9;
    }
    if let Some(warmup) = overrides.warmup {
        protocol.warmup = count(warmup);
    }
    let log = |line: &str| eprintln!("{line}");
    let results = profile_fleet(
        &target.agents,
        token,
        &[model.to_vec()],
        &protocol,
        AGENT_JOB_TIMEOUT,
        &log,
    )?;
    let Some(FleetResult { agent, outcome }) = results.into_iter().next() else {
        return Err(Error::NoAnswer(format!(
            "target {}: no agent answered",
            target.name
        )));
    };
    let (stats, fingerprint) = outcome.map_err(|reason| {
        Error::NoAnswer(format!(
            "agent {agent} could not profile the model: {reason}"
        ))
    })?;
    Ok((measurement_of(stats, fingerprint), agent))
}

/// Profiles one model through the agents of a target (a name or a TOML file): what
/// `hwnas profile --target` does.
pub fn profile_through(
    target_name: &str,
    model: &[u8],
    overrides: Overrides,
) -> Result<(Measurement, String)> {
    let target = description::find(target_name)?;
    if target.kind != TargetKind::Agent {
        return Err(Error::plan(
            "target",
            target_name,
            format!(
                "`{}` is a {:?} target; profiling through a target needs kind = \"agent\"",
                target.name, target.kind
            ),
        ));
    }
    let token = target.token()?;
    profile_on_agents(&target, &token, model, overrides)
}

/// A board, through the agents of a target description.
pub struct RemoteMeasure {
    /// The space its architectures come from.
    pub space: Box<dyn SearchSpace>,
    /// The target.
    pub target: Target,
    /// Its shared token.
    pub token: Vec<u8>,
}

impl FinalMeasure for RemoteMeasure {
    fn arch_ms(&self, arch: &Arch) -> Result<f64> {
        let model = export_for_profiling(self.space.as_ref(), arch)?;
        self.model_ms(&model)
    }
    fn model_ms(&self, model: &[u8]) -> Result<f64> {
        Ok(
            profile_on_agents(&self.target, &self.token, model, Overrides::default())?
                .0
                .stats
                .median_ms,
        )
    }
}

impl LatencyModel for RemoteMeasure {
    fn name(&self) -> String {
        format!("agents:{}", self.target.name)
    }
    fn latency_ms(&self, arch: &Arch) -> hwnas_core::Result<f64> {
        self.arch_ms(arch).map_err(|e| hwnas_core::Error::Failed {
            source_name: self.name(),
            arch: self.space.format(arch),
            source: Box::new(e),
        })
    }
}
