//! The search side of hwnas: search spaces, strategies, evaluators and the search loop.

pub mod bench;
pub mod benchmark;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod history;
pub mod images;
pub mod objective;
pub mod oneshot;
pub mod pareto;
pub mod proxies;
pub mod search;
pub mod space;
pub mod strategy;
pub mod supernet;

pub use error::{Error, Result};
pub use evaluate::{BatchEvaluator, Evaluation, Evaluator, LatencyModel};
pub use history::{History, Record};
pub use hwnas_kernels as kernels;
pub use objective::Objective;
pub use pareto::pareto_front;
pub use search::{Budget, Oracle, SearchConfig, run_search};
pub use space::{Arch, Decision, SearchSpace};
pub use strategy::Strategy;
