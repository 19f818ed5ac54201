//! Search strategies: each proposes architectures and learns from what it is told.

pub mod evolution;
pub mod ganas;
pub mod generational;
pub mod graph;
pub mod l2nas;
pub mod nets;
pub mod random;
pub mod reinforce;

use rand::RngCore;

use crate::error::{Error, Result};
use crate::history::{History, Record};
use crate::space::{Arch, SearchSpace};

pub use evolution::RegularizedEvolution;
pub use ganas::GaNas;
pub use generational::GenerationalEvolution;
pub use l2nas::L2Nas;
pub use random::RandomSearch;
pub use reinforce::Reinforce;

/// A search strategy. The loop calls [`Strategy::propose`] for the next architecture and
/// [`Strategy::observe`] with its record (a new one, or the earlier record of a repeat).
pub trait Strategy: Send {
    /// The strategy's name on the command line.
    fn name(&self) -> &'static str;

    /// The next architecture to evaluate.
    fn propose(
        &mut self,
        space: &dyn SearchSpace,
        history: &History,
        rng: &mut dyn RngCore,
    ) -> Arch;

    /// Learns from the record of the last proposal; `history` already contains it.
    fn observe(&mut self, space: &dyn SearchSpace, history: &History, record: &Record);

    /// The next `n` architectures to evaluate together (a batch an executor scores in
    /// parallel); their records are observed in order once all are answered. By default,
    /// `n` proposals from the same history; the loop drops repeats and asks again.
    fn propose_batch(
        &mut self,
        space: &dyn SearchSpace,
        history: &History,
        rng: &mut dyn RngCore,
        n: usize,
    ) -> Vec<Arch> {
        (0..n).map(|_| self.propose(space, history, rng)).collect()
    }

    /// Told of a proposal the loop drew again without a query: a cheap latency model puts
    /// it at `latency_ms`, over the budget (see [`crate::SearchConfig::screen_infeasible`]).
    /// A strategy that learns from its proposals can learn to avoid such; by default
    /// nothing happens.
    fn screened(&mut self, space: &dyn SearchSpace, arch: &Arch, latency_ms: f64) {
        _ = (space, arch, latency_ms);
    }

    /// Where each new record's proposal came from, as `(query, label)` in query order, for
    /// a strategy that proposes in more than one way (L2NAS: actor, exploration, fallback);
    /// empty otherwise.
    fn sources(&self) -> Vec<(usize, &'static str)> {
        Vec::new()
    }
}

/// The strategies `hwnas bench --strategies` and `hwnas search --strategy` accept.
pub const NAMES: [&str; 6] = ["random", "rea", "evolution", "reinforce", "l2nas", "ganas"];

/// A strategy with its default settings, by name.
pub fn by_name(name: &str, space: &dyn SearchSpace) -> Result<Box<dyn Strategy>> {
    match name {
        "random" => Ok(Box::new(RandomSearch)),
        "rea" => Ok(Box::new(RegularizedEvolution::default())),
        "evolution" => Ok(Box::new(GenerationalEvolution::default())),
        "reinforce" => Ok(Box::new(Reinforce::new(space))),
        "l2nas" => Ok(Box::new(L2Nas::new(space))),
        "ganas" => Ok(Box::new(GaNas::new(space))),
        other => Err(Error::Setting {
            name: "strategy".to_string(),
            problem: format!("unknown strategy `{other}`; allowed: {}", NAMES.join(", ")),
        }),
    }
}
