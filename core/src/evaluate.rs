//! What a search asks of the world: an accuracy for an architecture ([`Evaluator`]) and a
//! latency ([`LatencyModel`]). Tables, predictors, proxies, supernets and measured latency
//! all answer through these two traits, so `core` never needs to know ONNX Runtime exists.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::space::Arch;

/// The answer to one accuracy query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The signal the search sees (validation accuracy, a predictor's or a proxy's score), in
    /// percent where it is an accuracy.
    pub accuracy: f64,
    /// The accuracy reported for the selected architecture (test accuracy after full
    /// training), when the evaluator knows it.
    pub test_accuracy: Option<f64>,
    /// Seconds the query would have cost to train for real (0 when unknown).
    pub cost_seconds: f64,
}

/// Something that scores architectures of one space.
pub trait Evaluator: Send + Sync {
    /// A name for reports, e.g. `nb201-table:cifar10`.
    fn name(&self) -> String;

    /// Scores one architecture.
    fn evaluate(&self, arch: &Arch) -> Result<Evaluation>;

    /// Scores several architectures, in order: a round of proposals the loop asks for
    /// together. By default one at a time; an evaluator that computes (a predictor) does a
    /// round at once.
    fn evaluate_many(&self, archs: &[Arch]) -> Result<Vec<Evaluation>> {
        archs.iter().map(|arch| self.evaluate(arch)).collect()
    }

    /// Whether `cost_seconds` is meaningful (a simulated-time budget needs it).
    fn has_cost(&self) -> bool {
        false
    }
}

/// Something that scores many architectures at once: an executor that fans candidates out
/// over threads or cluster jobs. Answers in the order asked.
pub trait BatchEvaluator: Send + Sync {
    /// Scores every architecture of `archs`, one answer each, in order.
    fn evaluate_batch(&self, archs: &[Arch]) -> Result<Vec<Evaluation>>;
}

/// Something that knows how long an architecture takes to run on a target, in milliseconds.
///
/// Implemented by published tables (NAS-Bench-201 device columns, Once-for-All's Note10
/// lookup table) here, and by measured latency and fitted predictors in `hwnas-latency`.
pub trait LatencyModel: Send + Sync {
    /// A name for reports, e.g. `table:pixel3`.
    fn name(&self) -> String;

    /// Latency of one architecture in milliseconds.
    fn latency_ms(&self, arch: &Arch) -> Result<f64>;

    /// Whether an answer costs next to nothing (a table lookup, a fitted predictor), so
    /// the search may ask it of every proposal before spending a query on it; `false` for
    /// a measurement.
    fn is_cheap(&self) -> bool {
        false
    }

    /// Warnings gathered since the last call that the user must see (a damaged cache
    /// entry measured again); none by default.
    fn take_warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

impl<E: Evaluator + ?Sized> Evaluator for std::sync::Arc<E> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn evaluate(&self, arch: &Arch) -> Result<Evaluation> {
        (**self).evaluate(arch)
    }

    fn has_cost(&self) -> bool {
        (**self).has_cost()
    }
}
