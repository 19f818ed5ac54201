//! The world a search runs in, built from a validated plan: the space, what scores accuracy,
//! what predicts latency during the search, what measures the finalists, and the budget.

use std::sync::Arc;

use hwnas_core::benchmark::ofa::{NOTE10_DIR, PREDICTOR_FILE, locate_ofa_dir};
use hwnas_core::benchmark::{Nb201Table, Note10Lut, OfaPredictor};
use hwnas_core::oneshot::SupernetEvaluator;
use hwnas_core::proxies::SynflowEvaluator;
use hwnas_core::space::ofa::OfaConfig;
use hwnas_core::space::{DartsSpace, Nb201Space, OfaSpace};
use hwnas_core::{Arch, Evaluator, LatencyModel, SearchSpace};
use hwnas_latency::lut::{LutLatency, host_lut};
use hwnas_latency::measured::MeasuredLatency;
use hwnas_latency::profile::{Fingerprint, Protocol};
use hwnas_latency::runtime::OrtRuntime;
use hwnas_targets::description::{self, Target, TargetKind};

use crate::error::{Error, Result, StepContext};
use crate::latency_tools::open_cache;
use crate::measure::{FinalMeasure, LocalMeasure, RemoteMeasure};
use crate::observer::Observer;
use crate::plan::{DataSource, EvaluatorKind, SearchKind, SearchPlan, SpaceKind, TargetSpec};

/// Share of the reference network's measured latency used as the default budget.
pub const DEFAULT_BUDGET_FRACTION: f64 = 0.5;

/// DARTS-V2's published cells (Liu et al., 2019), the reference of a DARTS search's budget.
pub const DARTS_V2: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";

/// The NAS-Bench-201 cell of all 3x3 convolutions, the reference of its budget.
pub const NB201_ALL_CONV3: &str = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|";
const NB201_REFERENCE: &str = "the NAS-Bench-201 cell of all 3x3 convolutions";

/// The largest Once-for-All subnet (kernel 7, expand 6, depth 4) at resolution `r`.
pub fn largest_ofa(r: u32) -> OfaConfig {
    OfaConfig {
        ks: vec![7; 20],
        e: vec![6; 20],
        d: vec![4; 5],
        r,
    }
}

/// The latency budget and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyBudget {
    /// Milliseconds.
    pub ms: f64,
    /// How it was set, for the report.
    pub origin: String,
    /// The reference network and its latency on the target.
    pub reference: (String, f64),
    /// The reference architecture, where the budget is a share of its measured latency
    /// (finalists are then measured beside it).
    pub relative_to: Option<Arch>,
}

impl LatencyBudget {
    /// The plan's budget, or [`DEFAULT_BUDGET_FRACTION`] of the reference's latency.
    pub fn new(given_ms: Option<f64>, what: &str, reference_ms: f64) -> Self {
        let (ms, origin) = match given_ms {
            Some(b) => (b, "given with --latency-ms".to_string()),
            None => (
                DEFAULT_BUDGET_FRACTION * reference_ms,
                format!(
                    "{:.0}% of {what}, which measured {reference_ms:.3} ms on the target",
                    DEFAULT_BUDGET_FRACTION * 100.0
                ),
            ),
        };
        LatencyBudget {
            ms,
            origin,
            reference: (what.to_string(), reference_ms),
            relative_to: None,
        }
    }

    /// The budget, relative to `reference` where no budget was given.
    fn measured_beside(mut self, given_ms: Option<f64>, reference: &Arch) -> Self {
        if given_ms.is_none() {
            self.relative_to = Some(reference.clone());
        }
        self
    }
}

/// Everything a search needs.
pub struct World {
    /// The space searched.
    pub space: Box<dyn SearchSpace>,
    /// Scores architectures (none where only a supernet can: one-shot searches; set after
    /// training for Once-for-All's supernet).
    pub evaluator: Option<Box<dyn Evaluator>>,
    /// The evaluator's name for the manifest and the report.
    pub evaluator_name: String,
    /// Latency during the search.
    pub search_latency: Box<dyn LatencyModel>,
    /// End-to-end measurement of finalists (measured targets).
    pub measured: Option<Box<dyn FinalMeasure>>,
    /// Where measurements are taken (this machine).
    pub fingerprint: Option<Fingerprint>,
    /// The budget.
    pub budget: LatencyBudget,
    /// The NAS-Bench-201 table, when the space is nb201 and the table was found.
    pub nb201_table: Option<Arc<Nb201Table>>,
    /// The trained Once-for-All supernet scoring the search.
    pub supernet: Option<Arc<SupernetEvaluator>>,
}

impl World {
    /// Builds the world `plan` describes (validated first); `observer` hears of progress
    /// and warnings.
    pub fn build(plan: &SearchPlan, observer: &dyn Observer) -> Result<World> {
        plan.validate()?;
        let mut protocol = plan.protocol.protocol()?;
        let mut target = plan.target.clone();
        if let TargetSpec::Described(name) = &plan.target {
            let described = description::find(name)?;
            protocol.threads = described.ort.threads as usize;
            match described.kind {
                TargetKind::Local => target = TargetSpec::Host,
                TargetKind::Table => {
                    let table = described.table.clone().unwrap_or_default();
                    let device = table.split_once(':').map(|(_, d)| d).unwrap_or(&table);
                    target = TargetSpec::Table(device.to_string());
                    // The described table must suit the space as a flag would.
                    let mut resolved = plan.clone();
                    resolved.target = target.clone();
                    resolved.validate()?;
                }
                TargetKind::Agent => {
                    if plan.space != SpaceKind::Nb201 || plan.kind() != SearchKind::Sampling {
                        return Err(Error::plan(
                            "target",
                            name,
                            "an agent target measures every architecture end to end, which suits a sampling search of nb201; for ofa-mbv3 run `hwnas search` on the board itself, where it builds the board's lookup table",
                        ));
                    }
                    return nb201_remote(plan, described, observer);
                }
            }
        }
        match (plan.space, plan.kind()) {
            (SpaceKind::Ofa, SearchKind::TrainOnceThenSample) => {
                ofa_supernet(plan, &protocol, observer)
            }
            (SpaceKind::Ofa, _) if plan.evaluator() == EvaluatorKind::Train => {
                ofa_supernet(plan, &protocol, observer)
            }
            (SpaceKind::Ofa, _) => ofa(plan, &target, &protocol, observer),
            (SpaceKind::Darts, _) => {
                let space = DartsSpace::new();
                let reference = space.parse(DARTS_V2)?;
                host(
                    plan,
                    &protocol,
                    space,
                    (&reference, "DARTS-V2's published cells"),
                    trained_or(plan, (None, "supernet".into()), observer)?,
                    None,
                    observer,
                )
            }
            (SpaceKind::Nb201, _) => nb201(plan, &target, &protocol, observer),
        }
    }

    /// Warnings the world's measurements gathered since the last call.
    pub fn take_warnings(&self) -> Vec<String> {
        let mut warnings = self.search_latency.take_warnings();
        if let Some(m) = &self.measured {
            warnings.extend(m.take_warnings());
        }
        warnings
    }
}

fn ofa(
    plan: &SearchPlan,
    target: &TargetSpec,
    protocol: &Protocol,
    observer: &dyn Observer,
) -> Result<World> {
    let dir = locate_ofa_dir(plan.ofa_dir.as_deref())?;
    if let TargetSpec::Table(_) = target {
        let lut = Note10Lut::load(&dir.join(NOTE10_DIR))?;
        let space = lut.space().clone();
        let budget = LatencyBudget::new(
            plan.latency_ms,
            "the largest Once-for-All subnet on the Note10 table",
            lut.latency_of(&largest_ofa(224))?,
        );
        let predictor = OfaPredictor::load(&dir.join(PREDICTOR_FILE), space.clone())?;
        return Ok(World {
            evaluator_name: "ofa-predictor".into(),
            evaluator: Some(Box::new(predictor)),
            search_latency: Box::new(lut),
            measured: None,
            fingerprint: None,
            budget,
            space: Box::new(space),
            nb201_table: None,
            supernet: None,
        });
    }
    let resolutions: Vec<u32> = (160..=224).step_by(16).collect();
    observer.stage("lookup table", 1);
    let progress =
        |done: usize, total: usize, what: &str| observer.progress(done as u64, total as u64, what);
    let warn = |w: &str| observer.warn(w);
    let (lut, path) = host_lut(
        &resolutions,
        protocol,
        hwnas_latency::lut::DEFAULT_CALIBRATION_SUBNETS,
        &progress,
        &warn,
    )
    .step(|| "building the latency lookup table for this machine".into())?;
    observer.finish();
    let latency = LutLatency::new(lut)?;
    let space = latency.space().clone();
    let predictor = OfaPredictor::load(&dir.join(PREDICTOR_FILE), space.clone())?;
    let reference = space.from_config(&largest_ofa(224))?;
    let here = Here::measure(
        plan,
        protocol,
        &space,
        (
            &reference,
            "the largest Once-for-All subnet (kernel 7, expand 6, depth 4, r 224)",
        ),
        observer,
    )?;
    observer.note(&format!(
        "lookup table: {} ({} layers)",
        path.display(),
        latency.lut().entries.len()
    ));
    Ok(here.world(
        space,
        Box::new(latency),
        (Some(Box::new(predictor)), "ofa-predictor".into()),
        None,
    ))
}

/// This machine measuring a space's architectures: the finalists' measurement, the budget
/// from a reference measured here (unless given), where it measures, and the cache (opened
/// once) the search's own measurements share.
struct Here {
    measure: LocalMeasure,
    budget: LatencyBudget,
    fingerprint: Fingerprint,
    cache: Option<hwnas_latency::cache::MeasurementCache>,
}

impl Here {
    fn measure<S: SearchSpace + Clone + 'static>(
        plan: &SearchPlan,
        protocol: &Protocol,
        space: &S,
        (reference, what): (&Arch, &str),
        observer: &dyn Observer,
    ) -> Result<Here> {
        let runtime = OrtRuntime::load()?;
        let cache = open_cache(observer);
        let measured = MeasuredLatency::new(Box::new(space.clone()), *protocol, cache.clone());
        let budget = LatencyBudget::new(
            plan.latency_ms,
            what,
            measured.measure(reference)?.stats.median_ms,
        )
        .measured_beside(plan.latency_ms, reference);
        Ok(Here {
            measure: LocalMeasure::new(measured, *protocol),
            budget,
            fingerprint: Fingerprint::local(runtime, protocol.threads),
            cache,
        })
    }

    /// The world of `space` measured here, searched with `search_latency`.
    fn world<S: SearchSpace + 'static>(
        self,
        space: S,
        search_latency: Box<dyn LatencyModel>,
        (evaluator, evaluator_name): (Option<Box<dyn Evaluator>>, String),
        nb201_table: Option<Arc<Nb201Table>>,
    ) -> World {
        World {
            evaluator_name,
            evaluator,
            search_latency,
            measured: Some(Box::new(self.measure)),
            fingerprint: Some(self.fingerprint),
            budget: self.budget,
            space: Box::new(space),
            nb201_table,
            supernet: None,
        }
    }
}

fn nb201(
    plan: &SearchPlan,
    target: &TargetSpec,
    protocol: &Protocol,
    observer: &dyn Observer,
) -> Result<World> {
    // The proxy and the supernet need no table: on this machine's own latency they run
    // without it, and then only the report's transfer check is missing.
    let table_optional = matches!(
        plan.evaluator(),
        EvaluatorKind::Proxy | EvaluatorKind::Supernet | EvaluatorKind::Train
    ) && *target == TargetSpec::Host;
    let table = match Nb201Table::locate(plan.table.as_deref()) {
        Ok(path) => Some(Arc::new(Nb201Table::load(&path, &plan.dataset)?)),
        Err(e) if table_optional => {
            observer.note(&format!(
                "no NAS-Bench-201 table ({e}); the report will have no table accuracy"
            ));
            None
        }
        Err(e) => return Err(e.into()),
    };
    let (table_evaluator, name) = nb201_evaluator(plan, table.as_ref());
    let evaluator = trained_or(plan, (Some(table_evaluator), name), observer)?;
    let space = Nb201Space::new();
    let reference = space.parse(NB201_ALL_CONV3)?;
    let TargetSpec::Table(device) = target else {
        return host(
            plan,
            protocol,
            space,
            (&reference, NB201_REFERENCE),
            evaluator,
            table,
            observer,
        );
    };
    let table = table.ok_or_else(|| {
        Error::plan(
            "target",
            target,
            "a table target needs the NAS-Bench-201 table; pass --table FILE or set HWNAS_NB201_TABLE",
        )
    })?;
    let latency = table.latency_column(device)?;
    let budget = LatencyBudget::new(
        plan.latency_ms,
        NB201_REFERENCE,
        latency.latency_ms(&reference)?,
    );
    Ok(World {
        evaluator_name: evaluator.1,
        evaluator: evaluator.0,
        search_latency: Box::new(latency),
        measured: None,
        fingerprint: None,
        budget,
        space: Box::new(space),
        nb201_table: Some(table),
        supernet: None,
    })
}

/// With `--evaluator train`, the training evaluator (the images loaded now, so a bad
/// `--data` fails before any measurement); otherwise `other`.
fn trained_or(
    plan: &SearchPlan,
    other: (Option<Box<dyn Evaluator>>, String),
    observer: &dyn Observer,
) -> Result<(Option<Box<dyn Evaluator>>, String)> {
    if plan.evaluator() != EvaluatorKind::Train {
        return Ok(other);
    }
    let trained = crate::oneshot::training_evaluator(plan, observer)?;
    let name = trained.name();
    Ok((Some(Box::new(trained)), name))
}

/// The NAS-Bench-201 evaluator the plan asks for: the table, or synflow (with the table
/// only reporting test accuracy).
fn nb201_evaluator(
    plan: &SearchPlan,
    table: Option<&Arc<Nb201Table>>,
) -> (Box<dyn Evaluator>, String) {
    match table {
        Some(table) if plan.evaluator() != EvaluatorKind::Proxy => {
            (Box::new(Arc::clone(table)), table.name())
        }
        _ => {
            let proxy = SynflowEvaluator {
                table: table.cloned(),
            };
            let name = proxy.name();
            (Box::new(proxy), name)
        }
    }
}

/// The space of an `--evaluator train` search (Once-for-All at the images' resolution),
/// as a worker builds it without the rest of the world.
pub fn training_space(plan: &SearchPlan) -> Result<Box<dyn SearchSpace>> {
    Ok(match plan.space {
        SpaceKind::Nb201 => Box::new(Nb201Space::new()),
        SpaceKind::Darts => Box::new(DartsSpace::new()),
        SpaceKind::Ofa => Box::new(OfaSpace::new(vec![image_side(plan)])?),
    })
}

/// The images' side a supernet sees (and its subnets are measured at).
pub fn image_side(plan: &SearchPlan) -> u32 {
    match plan.data {
        DataSource::FashionMnist => 28,
        DataSource::Cifar(_) => 32,
        DataSource::Folder(_) => plan.image_size as u32,
    }
}

/// Once-for-All subnets scored by a supernet trained on the plan's images, measured end to
/// end on this machine at the images' resolution (the supernet sees no other).
fn ofa_supernet(plan: &SearchPlan, protocol: &Protocol, observer: &dyn Observer) -> Result<World> {
    let r = image_side(plan);
    let space = OfaSpace::new(vec![r])?;
    let reference = space.from_config(&largest_ofa(r))?;
    host(
        plan,
        protocol,
        space,
        (
            &reference,
            &format!("the largest Once-for-All subnet (kernel 7, expand 6, depth 4) at {r} px"),
        ),
        trained_or(plan, (None, "supernet:ofa-mbv3".into()), observer)?,
        None,
        observer,
    )
}

/// A world measuring on this machine: the budget from `reference` (an architecture and
/// what to call it) measured here, unless given.
fn host<S: SearchSpace + Clone + 'static>(
    plan: &SearchPlan,
    protocol: &Protocol,
    space: S,
    (reference, what): (&Arch, &str),
    evaluator: (Option<Box<dyn Evaluator>>, String),
    nb201_table: Option<Arc<Nb201Table>>,
    observer: &dyn Observer,
) -> Result<World> {
    let here = Here::measure(plan, protocol, &space, (reference, what), observer)?;
    let search = MeasuredLatency::new(Box::new(space.clone()), *protocol, here.cache.clone());
    Ok(here.world(space, Box::new(search), evaluator, nb201_table))
}

fn nb201_remote(plan: &SearchPlan, target: Target, observer: &dyn Observer) -> Result<World> {
    let path = Nb201Table::locate(plan.table.as_deref())?;
    let table = Arc::new(Nb201Table::load(&path, &plan.dataset)?);
    let (table_evaluator, name) = nb201_evaluator(plan, Some(&table));
    let (evaluator, evaluator_name) = trained_or(plan, (Some(table_evaluator), name), observer)?;
    let space = Nb201Space::new();
    let token = target.token()?;
    let remote = || RemoteMeasure {
        space: Box::new(space.clone()),
        target: target.clone(),
        token: token.clone(),
    };
    let reference = space.parse(NB201_ALL_CONV3)?;
    let search = remote();
    let budget = LatencyBudget::new(
        plan.latency_ms,
        NB201_REFERENCE,
        search.arch_ms(&reference)?,
    )
    .measured_beside(plan.latency_ms, &reference);
    Ok(World {
        evaluator_name,
        evaluator,
        search_latency: Box::new(search),
        measured: Some(Box::new(remote())),
        fingerprint: None,
        budget,
        space: Box::new(space),
        nb201_table: Some(table),
        supernet: None,
    })
}
