//! Regularized (aging) evolution, Real et al. 2019: a population of the most recent
//! architectures; each child mutates the best of a random sample of it; the oldest dies.

use std::collections::VecDeque;

use rand::{Rng, RngCore};

use super::Strategy;
use crate::history::{History, Record};
use crate::space::{Arch, SearchSpace};

/// Regularized evolution with the NAS-Bench-201 paper's settings by default (population 10,
/// tournament sample 3, one mutation per child).
#[derive(Debug, Clone)]
pub struct RegularizedEvolution {
    /// Architectures kept alive.
    pub population_size: usize,
    /// Members drawn (with replacement) for each tournament.
    pub sample_size: usize,
    population: VecDeque<(Arch, f64)>,
}

impl Default for RegularizedEvolution {
    fn default() -> Self {
        Self::new(10, 3)
    }
}

impl RegularizedEvolution {
    /// Evolution with the given population and tournament sizes (both at least 1).
    pub fn new(population_size: usize, sample_size: usize) -> Self {
        RegularizedEvolution {
            population_size: population_size.max(1),
            sample_size: sample_size.max(1),
            population: VecDeque::new(),
        }
    }
}

impl Strategy for RegularizedEvolution {
    fn name(&self) -> &'static str {
        "rea"
    }

    fn propose(&mut self, space: &dyn SearchSpace, _: &History, rng: &mut dyn RngCore) -> Arch {
        if self.population.len() < self.population_size {
            return space.sample(rng);
        }
        let mut parent: Option<&(Arch, f64)> = None;
        for _ in 0..self.sample_size {
            let candidate = &self.population[rng.random_range(0..self.population.len())];
            if parent.is_none_or(|p| candidate.1 > p.1) {
                parent = Some(candidate);
            }
        }
        let parent = parent.expect("the population is not empty").0.clone();
        space.mutate(&parent, rng)
    }

    fn observe(&mut self, _: &dyn SearchSpace, _: &History, record: &Record) {
        self.population
            .push_back((record.arch.clone(), record.reward));
        if self.population.len() > self.population_size {
            self.population.pop_front();
        }
    }
}
