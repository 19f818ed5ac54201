//! Latency measured on this machine: export, profile (through the cache), as a
//! [`LatencyModel`] the search can ask.

use std::sync::Mutex;

use hwnas_core::space::SearchSpace;
use hwnas_core::{Arch, LatencyModel};

use crate::cache::{Lookup, MeasurementCache};
use crate::error::{Error, Result};
use crate::export::{ExportOptions, export_arch};
use crate::onnx::RandomWeights;
use crate::onnx::builder::encode;
use crate::profile::{Fingerprint, Measurement, Protocol, profile};
use crate::runtime::OrtRuntime;

/// Profiles a model's bytes, answering from `cache` when it holds a sound entry; damaged
/// entries are reported through `warn` and measured again. Returns the measurement and
/// whether it came from the cache.
pub fn profile_cached(
    model: &[u8],
    protocol: &Protocol,
    cache: Option<&MeasurementCache>,
    warn: &dyn Fn(&str),
) -> Result<(Measurement, bool)> {
    let Some(cache) = cache else {
        return Ok((profile(model, protocol)?, false));
    };
    let fingerprint = Fingerprint::local(OrtRuntime::load()?, protocol.threads);
    let key = MeasurementCache::key(model, &fingerprint, protocol);
    match cache.get(&key) {
        Lookup::Hit(measurement) => return Ok((measurement, true)),
        Lookup::Miss => {}
        Lookup::Damaged(why) => warn(&format!("damaged cache entry, measuring again: {why}")),
    }
    let measurement = profile(model, protocol)?;
    cache.put(&key, &measurement)?;
    Ok((measurement, false))
}

/// Exports an architecture with random weights (latency does not depend on the values).
pub fn export_for_profiling(space: &dyn SearchSpace, arch: &Arch) -> Result<Vec<u8>> {
    let model = export_arch(
        space.name(),
        &space.format(arch),
        &mut RandomWeights::new(0),
        ExportOptions::default(),
    )?;
    Ok(encode(&model))
}

/// End-to-end latency measured on this machine with ONNX Runtime.
pub struct MeasuredLatency {
    space: Box<dyn SearchSpace>,
    protocol: Protocol,
    cache: Option<MeasurementCache>,
    warnings: Mutex<Vec<String>>,
}

impl MeasuredLatency {
    /// Measures architectures of `space` by `protocol`, caching in `cache`.
    pub fn new(
        space: Box<dyn SearchSpace>,
        protocol: Protocol,
        cache: Option<MeasurementCache>,
    ) -> Self {
        MeasuredLatency {
            space,
            protocol,
            cache,
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// The full measurement of one architecture.
    pub fn measure(&self, arch: &Arch) -> Result<Measurement> {
        let model = export_for_profiling(self.space.as_ref(), arch)?;
        let warn = |w: &str| {
            self.warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(w.to_string())
        };
        Ok(profile_cached(&model, &self.protocol, self.cache.as_ref(), &warn)?.0)
    }

    /// Warnings gathered so far (damaged cache entries).
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl LatencyModel for MeasuredLatency {
    fn name(&self) -> String {
        format!("measured:host({} threads)", self.protocol.threads)
    }

    fn take_warnings(&self) -> Vec<String> {
        MeasuredLatency::take_warnings(self)
    }

    fn latency_ms(&self, arch: &Arch) -> hwnas_core::Result<f64> {
        self.measure(arch)
            .map(|m| m.stats.median_ms)
            .map_err(|e: Error| hwnas_core::Error::Failed {
                source_name: self.name(),
                arch: self.space.format(arch),
                source: Box::new(e),
            })
    }
}
