//! Random search: uniform samples of the space.

use rand::RngCore;

use super::Strategy;
use crate::history::{History, Record};
use crate::space::{Arch, SearchSpace};

/// Uniform random sampling, the baseline every strategy must beat.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomSearch;

impl Strategy for RandomSearch {
    fn name(&self) -> &'static str {
        "random"
    }

    fn propose(&mut self, space: &dyn SearchSpace, _: &History, rng: &mut dyn RngCore) -> Arch {
        space.sample(rng)
    }

    fn observe(&mut self, _: &dyn SearchSpace, _: &History, _: &Record) {}
}
