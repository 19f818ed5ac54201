//! Turning command-line flags into a search space, an evaluator and a latency model from
//! the published benchmark data.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use hwnas_core::benchmark::ofa::{NOTE10_DIR, PREDICTOR_FILE, locate_ofa_dir};
use hwnas_core::benchmark::{Nb201Table, Note10Lut, OfaPredictor};
use hwnas_core::space::{OfaSpace, SearchSpace, space_by_name};
use hwnas_core::{Arch, Evaluator, LatencyModel, Objective};

/// Flags naming the benchmark data a table-backed run reads.
#[derive(Debug, Clone, Args)]
pub struct TableArgs {
    /// Search space: nb201 (NAS-Bench-201 table) or ofa-mbv3 (Once-for-All predictor).
    #[arg(long, default_value = "nb201")]
    pub space: String,
    /// NAS-Bench-201 table (CSV or CSV.gz); default: $HWNAS_NB201_TABLE or the shared data.
    #[arg(long, value_name = "FILE")]
    pub table: Option<PathBuf>,
    /// Dataset columns of the table to use: searches on NAME_val_12ep, reports NAME_test_200ep.
    #[arg(long, default_value = "cifar10", value_name = "NAME")]
    pub dataset: String,
    /// Folder with Once-for-All's predictor and Note10 lookup tables; default:
    /// $HWNAS_OFA_DIR or the shared data.
    #[arg(long, value_name = "DIR")]
    pub ofa_dir: Option<PathBuf>,
    /// Latency target: table:DEVICE (a NAS-Bench-201 device column such as table:pixel3,
    /// or table:note10 for Once-for-All).
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// Latency budget in milliseconds: architectures over it are never the answer
    /// (the constrained reward).
    #[arg(long, value_name = "MS", conflicts_with = "latency_weight")]
    pub latency_ms: Option<f64>,
    /// MONAS's weighted reward instead: accuracy minus this many points per millisecond.
    #[arg(long, value_name = "POINTS_PER_MS")]
    pub latency_weight: Option<f64>,
}

/// A space with its evaluator, latency model and the best feasible architecture.
pub struct TableWorld {
    /// The search space.
    pub space: Box<dyn SearchSpace>,
    /// Scores accuracy.
    pub evaluator: Box<dyn Evaluator>,
    /// Latency, when a target was given.
    pub latency: Option<Box<dyn LatencyModel>>,
    /// What strategies maximise.
    pub objective: Objective,
    /// The dataset or evaluator name for reports.
    pub dataset: String,
    /// The best feasible architecture by the search signal, where the space can be enumerated.
    pub target_best: Option<Arch>,
    /// Its reported (test) accuracy.
    pub target_best_test: Option<f64>,
}

impl TableArgs {
    /// Loads the data the flags name.
    pub fn load(&self) -> Result<TableWorld> {
        if let Some(budget) = self.latency_ms {
            if !(budget.is_finite() && budget > 0.0) {
                bail!("--latency-ms must be a positive number of milliseconds, got {budget}");
            }
            if self.target.is_none() {
                bail!("--latency-ms needs a latency target: add --target table:DEVICE");
            }
        }
        if let Some(weight) = self.latency_weight {
            if !(weight.is_finite() && weight >= 0.0) {
                bail!("--latency-weight must be a non-negative number, got {weight}");
            }
            if self.target.is_none() {
                bail!("--latency-weight needs a latency target: add --target table:DEVICE");
            }
        }
        let objective = match (self.latency_ms, self.latency_weight) {
            (Some(budget), _) => Objective::latency_budget(budget),
            (None, Some(weight)) => Objective::Weighted { weight },
            (None, None) => Objective::Accuracy,
        };
        let device = match &self.target {
            None => None,
            Some(t) => Some(
                t.strip_prefix("table:")
                    .with_context(|| format!("--target `{t}`: table runs take table:DEVICE targets (e.g. table:pixel3)"))?
                    .to_string(),
            ),
        };
        match space_by_name(&self.space)?.name() {
            "nb201" => self.load_nb201(device, objective),
            "ofa-mbv3" => self.load_ofa(device, objective),
            other => bail!("--space {other}: table-backed runs support nb201 and ofa-mbv3"),
        }
    }

    fn load_nb201(&self, device: Option<String>, objective: Objective) -> Result<TableWorld> {
        let path = Nb201Table::locate(self.table.as_deref())?;
        let table = Arc::new(Nb201Table::load(&path, &self.dataset)?);
        let latency = device.map(|d| table.latency_column(&d)).transpose()?;
        let feasible = |arch: &Arch| {
            objective.feasible(latency.as_ref().and_then(|l| l.latency_ms(arch).ok()))
        };
        let target_best = table.archs().filter(|a| feasible(a)).max_by(|a, b| {
            table
                .validation(a)
                .unwrap()
                .total_cmp(&table.validation(b).unwrap())
                .then(table.index_of(b).cmp(&table.index_of(a)))
        });
        let target_best_test = target_best.as_ref().and_then(|a| table.test(a));
        Ok(TableWorld {
            space: Box::new(hwnas_core::space::Nb201Space::new()),
            evaluator: Box::new(Arc::clone(&table)),
            latency: latency.map(|l| Box::new(l) as Box<dyn LatencyModel>),
            objective,
            dataset: self.dataset.clone(),
            target_best,
            target_best_test,
        })
    }

    fn load_ofa(&self, device: Option<String>, objective: Objective) -> Result<TableWorld> {
        let dir = locate_ofa_dir(self.ofa_dir.as_deref())?;
        let (space, latency): (OfaSpace, Option<Box<dyn LatencyModel>>) = match device.as_deref() {
            None => (OfaSpace::default(), None),
            Some("note10") => {
                let lut = Note10Lut::load(&dir.join(NOTE10_DIR))?;
                (lut.space().clone(), Some(Box::new(lut)))
            }
            Some(other) => bail!(
                "--target table:{other}: the Once-for-All space has the table target table:note10"
            ),
        };
        let predictor = OfaPredictor::load(&dir.join(PREDICTOR_FILE), space.clone())?;
        Ok(TableWorld {
            space: Box::new(space),
            evaluator: Box::new(predictor),
            latency,
            objective,
            dataset: "imagenet-predictor".to_string(),
            target_best: None,
            target_best_test: None,
        })
    }
}
