//! Table-backed worlds for benchmarking strategies (`hwnas bench`): a space with a published
//! evaluator and latency table, the objective, and the best feasible answer to score hits
//! against.

use std::path::PathBuf;
use std::sync::Arc;

use hwnas_core::benchmark::ofa::{NOTE10_DIR, PREDICTOR_FILE, locate_ofa_dir};
use hwnas_core::benchmark::{Nb201Table, Note10Lut, OfaPredictor};
use hwnas_core::space::{Nb201Space, OfaSpace};
use hwnas_core::{Arch, Evaluator, LatencyModel, Objective, SearchSpace};

use crate::error::{Error, Result};
use crate::plan::SpaceKind;

/// What a table-backed run reads.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// nb201 (the NAS-Bench-201 table) or ofa-mbv3 (Once-for-All's predictor).
    pub space: SpaceKind,
    /// The NAS-Bench-201 table; `None` for `$HWNAS_NB201_TABLE` or the shared data.
    pub table: Option<PathBuf>,
    /// The table's data set columns.
    pub dataset: String,
    /// Once-for-All's files; `None` for `$HWNAS_OFA_DIR` or the shared data.
    pub ofa_dir: Option<PathBuf>,
    /// The latency table's device (`pixel3`, `note10`), if any.
    pub device: Option<String>,
    /// A latency budget (the constrained reward).
    pub latency_ms: Option<f64>,
    /// MONAS's weighted reward: points of accuracy per millisecond.
    pub latency_weight: Option<f64>,
}

/// A space with its evaluator, latency model and the best feasible architecture.
pub struct TableWorld {
    /// The search space.
    pub space: Box<dyn SearchSpace>,
    /// Scores accuracy.
    pub evaluator: Box<dyn Evaluator>,
    /// Latency, when a device was given.
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

impl TablePlan {
    /// The plan of the flags' texts: `space` by name, `target` as `table:DEVICE`.
    pub fn from_flags(space: &str, target: Option<&str>) -> Result<Self> {
        let device = target
            .map(|t| {
                t.strip_prefix("table:").map(str::to_string).ok_or_else(|| {
                    Error::plan(
                        "target",
                        t,
                        "table runs take table:DEVICE targets (e.g. table:pixel3)",
                    )
                })
            })
            .transpose()?;
        Ok(TablePlan {
            space: space
                .parse()
                .map_err(|problem| Error::plan("space", space, problem))?,
            table: None,
            dataset: "cifar10".to_string(),
            ofa_dir: None,
            device,
            latency_ms: None,
            latency_weight: None,
        })
    }

    /// The objective the plan asks for, checked.
    pub fn objective(&self) -> Result<Objective> {
        if let Some(budget) = self.latency_ms {
            if !(budget.is_finite() && budget > 0.0) {
                return Err(Error::plan(
                    "latency-ms",
                    budget,
                    "the budget must be a positive number of milliseconds",
                ));
            }
            if self.device.is_none() {
                return Err(Error::plan(
                    "latency-ms",
                    budget,
                    "a budget needs a latency target: add --target table:DEVICE",
                ));
            }
        }
        if let Some(weight) = self.latency_weight {
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(Error::plan(
                    "latency-weight",
                    weight,
                    "must be a non-negative number",
                ));
            }
            if self.device.is_none() {
                return Err(Error::plan(
                    "latency-weight",
                    weight,
                    "a latency weight needs a latency target: add --target table:DEVICE",
                ));
            }
        }
        Ok(match (self.latency_ms, self.latency_weight) {
            (Some(budget), _) => Objective::latency_budget(budget),
            (None, Some(weight)) => Objective::Weighted { weight },
            (None, None) => Objective::Accuracy,
        })
    }

    /// Loads the data the plan names.
    pub fn load(&self) -> Result<TableWorld> {
        let objective = self.objective()?;
        match self.space {
            SpaceKind::Nb201 => self.load_nb201(objective),
            SpaceKind::Ofa => self.load_ofa(objective),
            SpaceKind::Darts => Err(Error::plan(
                "space",
                self.space,
                "table-backed runs support nb201 and ofa-mbv3",
            )),
        }
    }

    fn load_nb201(&self, objective: Objective) -> Result<TableWorld> {
        let path = Nb201Table::locate(self.table.as_deref())?;
        let table = Arc::new(Nb201Table::load(&path, &self.dataset)?);
        let latency = self
            .device
            .as_deref()
            .map(|d| table.latency_column(d))
            .transpose()?;
        let target_best = table.best_feasible_by_validation(|arch| {
            objective.feasible(latency.as_ref().and_then(|l| l.latency_ms(arch).ok()))
        });
        let target_best_test = target_best.as_ref().and_then(|a| table.test(a));
        Ok(TableWorld {
            space: Box::new(Nb201Space::new()),
            evaluator: Box::new(Arc::clone(&table)),
            latency: latency.map(|l| Box::new(l) as Box<dyn LatencyModel>),
            objective,
            dataset: self.dataset.clone(),
            target_best,
            target_best_test,
        })
    }

    fn load_ofa(&self, objective: Objective) -> Result<TableWorld> {
        let dir = locate_ofa_dir(self.ofa_dir.as_deref())?;
        let (space, latency): (OfaSpace, Option<Box<dyn LatencyModel>>) =
            match self.device.as_deref() {
                None => (OfaSpace::default(), None),
                Some("note10") => {
                    let lut = Note10Lut::load(&dir.join(NOTE10_DIR))?;
                    (lut.space().clone(), Some(Box::new(lut)))
                }
                Some(other) => {
                    return Err(Error::plan(
                        "target",
                        format!("table:{other}"),
                        "the Once-for-All space has the table target table:note10",
                    ));
                }
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
