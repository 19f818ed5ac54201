//! The hwnas search library: what `hwnas search` does, under a thin binary.
//!
//! A [`SearchPlan`] is validated whole before anything expensive runs; [`World::build`]
//! turns it into the space, evaluator, latency model and budget; [`run`] creates or
//! continues the run directory, runs the sampling, one-shot or train-once search the plan
//! describes, confirms the answer on the target, and returns one [`Outcome`] for every kind
//! of search. Nothing below this crate depends on it: cli -> search -> core, latency,
//! targets.

pub mod benchmarks;
pub mod doctor;
pub mod error;
pub mod finalists;
pub mod latency_tools;
pub mod measure;
pub mod observer;
pub mod oneshot;
pub mod outcome;
pub mod plan;
pub mod plot;
pub mod run_dir;
pub mod sampling;
pub mod tables;
pub mod world;
pub mod zero_cost;

use std::path::PathBuf;
use std::time::Instant;

pub use error::{Error, Result};
pub use observer::{Observer, Quiet};
pub use outcome::Outcome;
pub use plan::{
    BackendKind, DataSource, EvaluatorKind, ProtocolSettings, SearchKind, SearchPlan, SpaceKind,
    StrategyKind, TargetSpec,
};
pub use run_dir::{MANIFEST_SCHEMA, Manifest, RunDir};
pub use world::World;

/// One error and its causes on one line, outermost first.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What to run: a new plan, or the run directory of an earlier one to continue.
#[derive(Debug, Clone)]
pub enum SearchRequest {
    /// A new search.
    New(Box<SearchPlan>),
    /// Continue the run in this directory with the plan its manifest holds.
    Resume(PathBuf),
}

/// How the search is run, beside its plan (nothing here changes its answer).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The command line, for the manifest.
    pub command: Vec<String>,
    /// Testing aid: sleep this long after each evaluation.
    pub throttle_ms: u64,
}

/// Runs a search to its outcome: creates (or reopens) the run directory, writes the
/// manifest, runs the search and writes its files. An over-budget answer is an outcome
/// with `within_budget: false`, not an error.
pub fn run(
    request: &SearchRequest,
    options: &RunOptions,
    observer: &dyn Observer,
) -> Result<Outcome> {
    let started = Instant::now();
    let (plan, dir, resumed) = match request {
        SearchRequest::New(plan) => {
            plan.validate()?;
            (plan.as_ref().clone(), RunDir::create(&plan.out)?, false)
        }
        SearchRequest::Resume(path) => {
            let (dir, manifest) = RunDir::open(path)?;
            manifest.plan.validate()?;
            let mut plan = manifest.plan;
            plan.out = path.clone();
            (plan, dir, true)
        }
    };
    let prior = if resumed {
        dir.read_history()?
    } else {
        Vec::new()
    };
    let mut world = World::build(&plan, observer)?;
    if !resumed {
        dir.write_manifest(&manifest(&plan, &world, options))?;
    }
    match plan.kind() {
        SearchKind::OneShot => oneshot::run(&plan, world, &dir, resumed, started, observer),
        SearchKind::TrainOnceThenSample => {
            let (supernet, facts) = oneshot::train_ofa(&plan, &dir, resumed, observer)?;
            world.evaluator = Some(Box::new(std::sync::Arc::clone(&supernet)));
            world.supernet = Some(supernet);
            let timing = (options.throttle_ms, started);
            sampling::run(&plan, &world, &dir, &prior, Some(facts), timing, observer)
        }
        SearchKind::Sampling => {
            let timing = (options.throttle_ms, started);
            sampling::run(&plan, &world, &dir, &prior, None, timing, observer)
        }
    }
}

fn manifest(plan: &SearchPlan, world: &World, options: &RunOptions) -> Manifest {
    Manifest {
        schema: MANIFEST_SCHEMA,
        command: options.command.clone(),
        hwnas_version: env!("CARGO_PKG_VERSION").to_string(),
        plan: plan.clone(),
        seed: plan.seed,
        space: world.space.name().to_string(),
        strategy: plan.strategy.to_string(),
        evaluator: world.evaluator_name.clone(),
        target: plan.target.to_string(),
        latency_model: world.search_latency.name(),
        latency_budget_ms: world.budget.ms,
        budget_origin: world.budget.origin.clone(),
        target_fingerprint: world.fingerprint.clone(),
        onnxruntime: world.fingerprint.as_ref().map(|f| f.ort_version.clone()),
    }
}
