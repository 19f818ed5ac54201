//! Measuring a model with ONNX Runtime by a sound protocol: one session per model (all
//! graph optimisations, batch 1, fixed intra-op threads, sequential execution), a warm-up,
//! then timed runs until there are enough and the median is pinned down.

use std::time::{Duration, Instant};

use hwnas_targets::HostInfo;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor as OrtTensor;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runtime::OrtRuntime;

/// How a model is timed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// Untimed runs first (at least 10 by default).
    pub warmup: usize,
    /// Timed runs at least.
    pub min_runs: usize,
    /// Timed runs at most.
    pub max_runs: usize,
    /// Stop once the median's 95% confidence half-width is below this share of it.
    pub rel_ci: f64,
    /// Stop after this many seconds of timed runs even if the median is not pinned down
    /// (never before `min_runs`).
    pub max_seconds: f64,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
}

impl Default for Protocol {
    /// 10 warm-up runs, 50 to 1,000 timed runs, 1% half-width, 30 s cap, 1 thread (the most
    /// repeatable setting; pass more threads to match how the model will be deployed).
    fn default() -> Self {
        Protocol {
            warmup: 10,
            min_runs: 50,
            max_runs: 1000,
            rel_ci: 0.01,
            max_seconds: 30.0,
            threads: 1,
        }
    }
}

impl Protocol {
    /// Checks the settings, naming the flag at fault.
    pub fn validate(&self) -> Result<()> {
        let bad = |flag: &str, problem: &str| Err(Error::Setting(format!("{flag}: {problem}")));
        if self.threads == 0 {
            return bad("threads", "must be at least 1");
        }
        if self.min_runs == 0 || self.max_runs < self.min_runs {
            return bad("runs", "needs 1 <= minimum runs <= maximum runs");
        }
        if self.rel_ci.is_nan() || self.rel_ci <= 0.0 {
            return bad("rel-ci", "must be positive");
        }
        Ok(())
    }
}

/// Summary statistics of the timed runs, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Median.
    pub median_ms: f64,
    /// 10th percentile.
    pub p10_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Sample standard deviation.
    pub std_ms: f64,
    /// Timed runs.
    pub runs: usize,
    /// The median's 95% confidence half-width as a share of the median.
    pub median_rel_ci: f64,
}

/// Where a measurement was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// ONNX Runtime's version.
    pub ort_version: String,
    /// The execution provider that ran the model.
    pub execution_provider: String,
    /// CPU model.
    pub cpu_model: String,
    /// Logical CPUs of the machine.
    pub cores: usize,
    /// Intra-op threads used (the cores the measurement occupied).
    pub threads: usize,
    /// CPU frequency governor, when readable.
    pub governor: Option<String>,
    /// CPU architecture.
    pub arch: String,
}

impl Fingerprint {
    /// The local machine with ONNX Runtime's CPU provider.
    pub fn local(runtime: &OrtRuntime, threads: usize) -> Self {
        let host = HostInfo::detect();
        Fingerprint {
            ort_version: runtime.version.clone(),
            execution_provider: "CPUExecutionProvider".to_string(),
            cpu_model: host.model,
            cores: host.cores,
            threads,
            governor: host.governor,
            arch: host.arch,
        }
    }

    /// A stable text key for caches (everything that changes timings).
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.ort_version,
            self.execution_provider,
            self.cpu_model,
            self.cores,
            self.threads,
            self.governor.as_deref().unwrap_or("-"),
            self.arch
        )
    }
}

/// A profile: the statistics and where they were measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Timing statistics.
    pub stats: Stats,
    /// Where.
    pub fingerprint: Fingerprint,
}

fn ort_error(context: &str, error: impl std::fmt::Display) -> Error {
    Error::Ort(format!("{context}: {error}"))
}

/// One ONNX Runtime session over a model, with a fixed random input.
pub struct ModelRunner {
    session: Session,
    input_name: String,
    shape: Vec<i64>,
    input: Vec<f32>,
}

impl ModelRunner {
    /// A session over the model's bytes with `threads` intra-op threads and all graph
    /// optimisations; `optimise: false` disables them (for parity checks).
    pub fn new(model: &[u8], threads: usize, optimise: bool) -> Result<Self> {
        let environment = crate::runtime::environment()?;
        let level = if optimise {
            GraphOptimizationLevel::All
        } else {
            GraphOptimizationLevel::Disable
        };
        let session = Session::builder(environment)
            .map_err(|e| ort_error("creating a session", e))?
            .with_optimization_level(level)
            .map_err(|e| ort_error("setting the optimisation level", e))?
            .with_intra_threads(threads)
            .map_err(|e| ort_error("setting intra-op threads", e))?
            .with_inter_threads(1)
            .map_err(|e| ort_error("setting inter-op threads", e))?
            .with_parallel_execution(false)
            .map_err(|e| ort_error("setting sequential execution", e))?
            .commit_from_memory(model)
            .map_err(|e| ort_error("loading the model", e))?;
        let outlet = session
            .inputs()
            .first()
            .ok_or_else(|| Error::Ort("the model has no input".to_string()))?;
        let input_name = outlet.name().to_string();
        let shape: Vec<i64> = outlet
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().map(|&d| if d < 0 { 1 } else { d }).collect())
            .ok_or_else(|| Error::Ort("the model's input is not a tensor".to_string()))?;
        let count: i64 = shape.iter().product();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
        let input = (0..count).map(|_| rng.random_range(-1.0..1.0)).collect();
        Ok(ModelRunner {
            session,
            input_name,
            shape,
            input,
        })
    }

    /// The input shape (dynamic dimensions taken as 1).
    pub fn input_shape(&self) -> &[i64] {
        &self.shape
    }

    /// Replaces the input values (length must match the shape).
    pub fn set_input(&mut self, values: Vec<f32>) -> Result<()> {
        if values.len() != self.input.len() {
            return Err(Error::Setting(format!(
                "input has {} values, the model takes {}",
                values.len(),
                self.input.len()
            )));
        }
        self.input = values;
        Ok(())
    }

    /// Runs once and returns the first output's values.
    pub fn run(&mut self) -> Result<Vec<f32>> {
        let tensor = OrtTensor::from_array((self.shape.clone(), self.input.clone()))
            .map_err(|e| ort_error("creating the input", e))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| ort_error("running the model", e))?;
        let (_, values) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| ort_error("reading the output", e))?;
        Ok(values.to_vec())
    }

    /// Runs once and returns how long the run took.
    fn time_once(&mut self) -> Result<Duration> {
        let tensor = OrtTensor::from_array((self.shape.clone(), self.input.clone()))
            .map_err(|e| ort_error("creating the input", e))?;
        let inputs = ort::inputs![self.input_name.as_str() => tensor];
        let start = Instant::now();
        let outputs = self
            .session
            .run(inputs)
            .map_err(|e| ort_error("running the model", e))?;
        let elapsed = start.elapsed();
        drop(outputs);
        Ok(elapsed)
    }
}

/// The `q`-quantile of sorted values, linearly interpolated.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

/// Statistics of timings in milliseconds; the median's confidence interval uses the order
/// statistics `n/2 -/+ 1.96 sqrt(n)/2` (distribution-free).
pub fn stats(samples_ms: &[f64]) -> Stats {
    let mut sorted = samples_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let mean = sorted.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    let median = quantile(&sorted, 0.5);
    let spread = 1.96 * (n as f64).sqrt() / 2.0;
    let low = ((n as f64 / 2.0 - spread).floor().max(0.0) as usize).min(n - 1);
    let high = ((n as f64 / 2.0 + spread).ceil() as usize).min(n - 1);
    Stats {
        median_ms: median,
        p10_ms: quantile(&sorted, 0.1),
        p90_ms: quantile(&sorted, 0.9),
        mean_ms: mean,
        std_ms: var.sqrt(),
        runs: n,
        median_rel_ci: if median > 0.0 {
            (sorted[high] - sorted[low]) / 2.0 / median
        } else {
            0.0
        },
    }
}

/// Profiles a model's bytes on this machine by `protocol`.
pub fn profile(model: &[u8], protocol: &Protocol) -> Result<Measurement> {
    protocol.validate()?;
    let runtime = OrtRuntime::load()?;
    let mut runner = ModelRunner::new(model, protocol.threads, true)?;
    for _ in 0..protocol.warmup {
        runner.time_once()?;
    }
    let started = Instant::now();
    let mut samples = Vec::with_capacity(protocol.min_runs);
    loop {
        samples.push(runner.time_once()?.as_secs_f64() * 1e3);
        let n = samples.len();
        if n >= protocol.max_runs {
            break;
        }
        if n >= protocol.min_runs {
            if started.elapsed().as_secs_f64() >= protocol.max_seconds {
                break;
            }
            if n % 10 == 0 && stats(&samples).median_rel_ci < protocol.rel_ci {
                break;
            }
        }
    }
    Ok(Measurement {
        stats: stats(&samples),
        fingerprint: Fingerprint::local(runtime, protocol.threads),
    })
}

/// Profiles several models in one interleaved run: a session each, warmed up, then rounds
/// in which each model runs once (the order rotating each round), until every model has its
/// `min_runs` and a pinned-down median, or `max_runs` rounds, or `max_seconds` for all of
/// them together. Load that comes and goes falls on every model alike, so their ratios hold
/// on a busy machine where separate measurements do not. Each timed run follows an untimed
/// one of the same model ([`Rewarm::EachRun`]), so it finds the caches as a model profiled
/// alone does, not as the other model left them.
pub fn profile_interleaved(models: &[&[u8]], protocol: &Protocol) -> Result<Vec<Measurement>> {
    profile_interleaved_with(models, protocol, Rewarm::EachRun)
}

/// Whether an interleaved profile runs a model once, untimed, before each timed run of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rewarm {
    /// An untimed run before each timed one: the timed run finds the model's weights and
    /// activations in the caches, as when the model is profiled alone. Twice the runs.
    EachRun,
    /// Timed runs back to back with the other models': a small model beside a heavy one
    /// runs on caches the heavy one filled and measures 20-60% slower than alone
    /// (`docs/BENCHMARKS.md`). For measuring that effect, not for tables.
    Never,
}

/// [`profile_interleaved`] with the choice of [`Rewarm`].
pub fn profile_interleaved_with(
    models: &[&[u8]],
    protocol: &Protocol,
    rewarm: Rewarm,
) -> Result<Vec<Measurement>> {
    protocol.validate()?;
    let runtime = OrtRuntime::load()?;
    let mut runners = models
        .iter()
        .map(|m| ModelRunner::new(m, protocol.threads, true))
        .collect::<Result<Vec<_>>>()?;
    for runner in &mut runners {
        for _ in 0..protocol.warmup {
            runner.time_once()?;
        }
    }
    let started = Instant::now();
    let count = runners.len();
    let mut samples = vec![Vec::with_capacity(protocol.min_runs); count];
    for round in 0..protocol.max_runs {
        for k in 0..count {
            let i = (round + k) % count;
            if rewarm == Rewarm::EachRun && count > 1 {
                runners[i].time_once()?;
            }
            samples[i].push(runners[i].time_once()?.as_secs_f64() * 1e3);
        }
        let n = round + 1;
        if n >= protocol.min_runs {
            let limit = protocol.max_seconds * count as f64;
            if started.elapsed().as_secs_f64() >= limit {
                break;
            }
            if n % 10 == 0
                && samples
                    .iter()
                    .all(|s| stats(s).median_rel_ci < protocol.rel_ci)
            {
                break;
            }
        }
    }
    let fingerprint = Fingerprint::local(runtime, protocol.threads);
    Ok(samples
        .iter()
        .map(|s| Measurement {
            stats: stats(s),
            fingerprint: fingerprint.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_known_samples() {
        let samples: Vec<f64> = (1..=101).map(f64::from).collect();
        let s = stats(&samples);
        assert_eq!(s.median_ms, 51.0);
        assert_eq!(s.p10_ms, 11.0);
        assert_eq!(s.p90_ms, 91.0);
        assert_eq!(s.runs, 101);
        assert!((s.mean_ms - 51.0).abs() < 1e-12);
        // Order statistics 41 and 61 around the median: half-width 10 of 51.
        assert!(
            (s.median_rel_ci - 10.0 / 51.0).abs() < 0.03,
            "{}",
            s.median_rel_ci
        );
        let flat = stats(&[2.0; 60]);
        assert_eq!(flat.median_rel_ci, 0.0);
    }
}
