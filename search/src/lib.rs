//! The hwnas search library: what `hwnas search` does, under a thin binary.
//!
//! A [`SearchPlan`] is validated whole before anything expensive runs; [`World::build`]
//! turns it into the space, evaluator, latency model and budget; [`run`] creates or
//! continues the run directory, runs the sampling, one-shot or train-once search the plan
//! describes, confirms the answer on the target, and returns one [`Outcome`] for every kind
//! of search. Nothing below this crate depends on it: cli -> search -> core, latency,
//! targets.

pub mod benchmarks;
pub mod device_fit;
pub mod doctor;
pub mod error;
pub mod executor;
pub mod finalists;
pub mod latency_tools;
pub mod measure;
pub mod model_eval;
pub mod observer;
pub mod oneshot;
pub mod outcome;
pub mod plan;
pub mod plot;
pub mod run_dir;
pub mod sampling;
pub mod sampling_report;
pub mod slurm;
pub mod tables;
pub mod tasks;
pub mod train_arch;
pub mod worker;
pub mod world;
pub mod zero_cost;

use std::path::PathBuf;
use std::time::Instant;

pub use error::{Error, Result};
pub use observer::{Observer, Quiet};
pub use outcome::Outcome;
pub use plan::{
    BackendKind, DataSource, EvaluatorKind, ExecutorKind, ProtocolSettings, SearchKind, SearchPlan,
    SpaceKind, StrategyKind, TargetSpec,
};
pub use run_dir::{MANIFEST_SCHEMA, Manifest, RunDir, WorldFacts};
pub use world::World;

/// What to run: a new plan, or the run directory of an earlier one to continue.
#[derive(Debug, Clone)]
pub enum SearchRequest {
    /// A new search.
    New(Box<SearchPlan>),
    /// Continue the run in `dir` with the plan its manifest holds. `given` names the
    /// settings the caller set explicitly (`budget`, `seed`: the flags given beside
    /// `--resume`) and `values` holds them; any that differ from the run's are refused.
    Resume {
        /// The run directory.
        dir: PathBuf,
        /// The settings given explicitly.
        given: Vec<String>,
        /// Their values (the rest of the plan is ignored).
        values: Option<Box<SearchPlan>>,
    },
}

impl SearchRequest {
    /// Continue the run in `dir`, nothing else given.
    pub fn resume(dir: impl Into<PathBuf>) -> Self {
        SearchRequest::Resume {
            dir: dir.into(),
            given: Vec::new(),
            values: None,
        }
    }
}

/// How the search is run, beside its plan (nothing here changes its answer).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The command line, for the manifest.
    pub command: Vec<String>,
    /// Testing aid: sleep this long after each evaluation.
    pub throttle_ms: u64,
    /// Who evaluates the proposals (this machine's threads, or a Slurm cluster).
    pub executor: executor::ExecutorSettings,
}

/// Runs a search to its outcome: creates (or reopens) the run directory, writes the
/// manifest, runs the search and writes its files. An over-budget answer is an outcome
/// with `within_budget: false`, not an error. A resumed run keeps the budget its manifest
/// recorded, and its history must belong to its space.
pub fn run(
    request: &SearchRequest,
    options: &RunOptions,
    observer: &dyn Observer,
) -> Result<Outcome> {
    let started = Instant::now();
    let (plan, dir, recorded) = match request {
        SearchRequest::New(plan) => {
            plan.validate()?;
            let dir = RunDir::create(&plan.out)?;
            dir.write_manifest(&manifest(plan, options))?;
            (plan.as_ref().clone(), dir, None)
        }
        SearchRequest::Resume {
            dir: path,
            given,
            values,
        } => {
            let (dir, manifest) = RunDir::open(path)?;
            if let Some(values) = values {
                refuse_changes(&dir, &manifest.plan, values, given)?;
            }
            manifest.plan.validate()?;
            let mut plan = manifest.plan.clone();
            plan.out = path.clone();
            (plan, dir, Some(manifest))
        }
    };
    let options = &RunOptions {
        executor: executor_for(&plan, &options.executor)?,
        ..options.clone()
    };
    let mut world = World::build(&plan, observer)?;
    let prior = dir.read_history()?;
    check_history(&dir, world.space.as_ref(), &prior)?;
    match recorded.as_ref().and_then(|m| m.world.as_ref()) {
        // The budget is the run's, not a new measurement of its reference.
        Some(facts) => {
            world.budget.ms = facts.latency_budget_ms;
            world.budget.origin = facts.budget_origin.clone();
            if let Some(reference) = &facts.budget_reference {
                world.budget.reference = reference.clone();
            }
        }
        None => {
            let mut manifest = recorded.unwrap_or_else(|| manifest(&plan, options));
            manifest.world = Some(world_facts(&world));
            dir.write_manifest(&manifest)?;
        }
    }
    let resumed = matches!(request, SearchRequest::Resume { .. });
    let timing = (options, started);
    match plan.kind() {
        SearchKind::OneShot => oneshot::run(&plan, world, &dir, resumed, started, observer),
        SearchKind::TrainOnceThenSample => {
            let (supernet, facts) = oneshot::train_ofa(&plan, &dir, resumed, observer)?;
            world.evaluator = Some(Box::new(std::sync::Arc::clone(&supernet)));
            world.supernet = Some(supernet);
            sampling::run(&plan, &world, &dir, &prior, Some(facts), timing, observer)
        }
        SearchKind::Sampling => sampling::run(&plan, &world, &dir, &prior, None, timing, observer),
    }
}

/// The executor settings, checked against the plan (a cluster trains candidates, so it
/// needs `--evaluator train`; `--jobs` is a count of evaluations at a time), with the
/// Slurm settings a described target's `[slurm]` table gives where no flag did.
fn executor_for(
    plan: &SearchPlan,
    executor: &executor::ExecutorSettings,
) -> Result<executor::ExecutorSettings> {
    if executor.jobs == 0 || executor.jobs > executor::MAX_JOBS {
        return Err(Error::plan(
            "jobs",
            executor.jobs,
            format!("run 1 to {} evaluations at a time", executor::MAX_JOBS),
        ));
    }
    if executor.kind == ExecutorKind::Slurm
        && (plan.kind() != SearchKind::Sampling || plan.evaluator() != EvaluatorKind::Train)
    {
        return Err(Error::plan(
            "executor",
            "slurm",
            format!(
                "cluster tasks train candidates: use it with --evaluator train (this search's evaluator, {}, answers in {} on this machine)",
                plan.evaluator(),
                if plan.kind() == SearchKind::Sampling {
                    "microseconds"
                } else {
                    "one supernet"
                }
            ),
        ));
    }
    let mut executor = executor.clone();
    if executor.kind == ExecutorKind::Slurm
        && let TargetSpec::Described(name) = &plan.target
    {
        let target = hwnas_targets::description::find(name)?;
        executor.slurm = executor.slurm.or_from(&target.slurm);
    }
    executor.slurm.validate()?;
    Ok(executor)
}

/// Refuses settings given with a resume that differ from the run's own.
fn refuse_changes(
    dir: &RunDir,
    run: &SearchPlan,
    values: &SearchPlan,
    given: &[String],
) -> Result<()> {
    let changed: Vec<String> = run
        .differences(values)
        .into_iter()
        .filter(|(setting, _, _)| given.iter().any(|g| g == setting))
        .map(|(setting, was, now)| format!("--{setting} {now} (the run has {was})"))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::RunDir {
        dir: dir.path().to_path_buf(),
        problem: format!(
            "a resumed run continues with its own settings, but {} differ; drop them, or start a new run with --out",
            changed.join(", ")
        ),
    })
}

/// Every record of a resumed history must be an architecture of the run's space, as its
/// text says.
fn check_history(
    dir: &RunDir,
    space: &dyn hwnas_core::SearchSpace,
    prior: &[hwnas_core::Record],
) -> Result<()> {
    for (line, record) in prior.iter().enumerate() {
        let parsed = space.parse(&record.arch_text).ok();
        if parsed.as_ref() != Some(&record.arch) || record.query != line + 1 {
            return Err(Error::RunDir {
                dir: dir.path().to_path_buf(),
                problem: format!(
                    "history.jsonl line {} is not query {} of a {} search (`{}`); the history belongs to another run: start a new run with --out",
                    line + 1,
                    line + 1,
                    space.name(),
                    record.arch_text
                ),
            });
        }
    }
    Ok(())
}

fn manifest(plan: &SearchPlan, options: &RunOptions) -> Manifest {
    Manifest {
        schema: MANIFEST_SCHEMA,
        command: options.command.clone(),
        hwnas_version: env!("CARGO_PKG_VERSION").to_string(),
        plan: plan.clone(),
        seed: plan.seed,
        space: plan.space.to_string(),
        strategy: plan.strategy.to_string(),
        target: plan.target.to_string(),
        world: None,
    }
}

fn world_facts(world: &World) -> WorldFacts {
    WorldFacts {
        evaluator: world.evaluator_name.clone(),
        latency_model: world.search_latency.name(),
        latency_budget_ms: world.budget.ms,
        budget_origin: world.budget.origin.clone(),
        target_fingerprint: world.fingerprint.clone(),
        onnxruntime: world.fingerprint.as_ref().map(|f| f.ort_version.clone()),
        budget_reference: Some(world.budget.reference.clone()),
    }
}
