//! Once-for-All's evolutionary search (Cai et al. 2020, the `EvolutionFinder` of its code):
//! generations of a large population; the best quarter are the parents of the next, the
//! rest children: half the population mutated from a random parent (each decision drawn
//! anew with a small probability), the remainder crossed over from two (each decision from
//! either). Made for evaluators whose queries cost microseconds (a predictor, a table),
//! where thousands of queries fit in a second; the search loop keeps every proposal within
//! a latency budget by drawing again ([`crate::search::MAX_SCREENED`]).

use rand::{Rng, RngCore};

use super::Strategy;
use crate::history::{History, Record};
use crate::space::{Arch, SearchSpace};

/// Once-for-All's settings by default: population 100, parents 25%, mutations 50%,
/// mutation probability 0.1 per decision.
#[derive(Debug, Clone)]
pub struct GenerationalEvolution {
    /// Members of a generation.
    pub population_size: usize,
    /// Share of a generation kept as the next one's parents.
    pub parent_ratio: f64,
    /// Share of a generation made by mutation (the rest beyond the parents by crossover).
    pub mutation_ratio: f64,
    /// Chance each decision is drawn anew in a mutation.
    pub mutate_prob: f64,
    parents: Vec<(Arch, f64)>,
    children: Vec<(Arch, f64)>,
}

impl Default for GenerationalEvolution {
    fn default() -> Self {
        GenerationalEvolution {
            population_size: 100,
            parent_ratio: 0.25,
            mutation_ratio: 0.5,
            mutate_prob: 0.1,
            parents: Vec::new(),
            children: Vec::new(),
        }
    }
}

impl GenerationalEvolution {
    fn parent_count(&self) -> usize {
        ((self.population_size as f64 * self.parent_ratio).round() as usize).max(1)
    }

    /// Children a generation needs before the next parents are chosen (the first
    /// generation is the whole population, drawn at random).
    fn children_wanted(&self) -> usize {
        if self.parents.is_empty() {
            self.population_size.max(1)
        } else {
            self.population_size
                .saturating_sub(self.parents.len())
                .max(1)
        }
    }

    fn mutated(&self, space: &dyn SearchSpace, parent: &Arch, rng: &mut dyn RngCore) -> Arch {
        let decisions = space.decisions();
        let mut child = parent.clone();
        for (i, decision) in decisions.iter().enumerate() {
            if rng.random_bool(self.mutate_prob) {
                child.0[i] = rng.random_range(0..decision.choices.len()) as u8;
            }
        }
        if space.canonical(&child) == space.canonical(parent) {
            // Nothing that matters changed: one decision that does, as REA mutates.
            return space.mutate(parent, rng);
        }
        child
    }

    fn crossed(a: &Arch, b: &Arch, rng: &mut dyn RngCore) -> Arch {
        Arch(
            a.0.iter()
                .zip(&b.0)
                .map(|(&x, &y)| if rng.random_bool(0.5) { x } else { y })
                .collect(),
        )
    }
}

impl Strategy for GenerationalEvolution {
    fn name(&self) -> &'static str {
        "evolution"
    }

    fn propose(&mut self, space: &dyn SearchSpace, _: &History, rng: &mut dyn RngCore) -> Arch {
        if self.parents.is_empty() {
            return space.sample(rng);
        }
        let parent =
            |rng: &mut dyn RngCore| &self.parents[rng.random_range(0..self.parents.len())].0;
        let bred = self
            .population_size
            .saturating_sub(self.parents.len())
            .max(1) as f64;
        let mutations = (self.population_size as f64 * self.mutation_ratio).min(bred);
        if self.parents.len() < 2 || rng.random_bool((mutations / bred).clamp(0.0, 1.0)) {
            let p = parent(rng).clone();
            self.mutated(space, &p, rng)
        } else {
            let (a, b) = (parent(rng).clone(), parent(rng).clone());
            Self::crossed(&a, &b, rng)
        }
    }

    fn observe(&mut self, _: &dyn SearchSpace, _: &History, record: &Record) {
        // A repeat (the loop tells of a known architecture again) is no new member.
        let known = |members: &[(Arch, f64)]| members.iter().any(|(a, _)| *a == record.arch);
        if known(&self.parents) || known(&self.children) {
            return;
        }
        self.children.push((record.arch.clone(), record.reward));
        if self.children.len() >= self.children_wanted() {
            let mut generation = std::mem::take(&mut self.parents);
            generation.append(&mut self.children);
            generation.sort_by(|a, b| b.1.total_cmp(&a.1));
            generation.truncate(self.parent_count());
            self.parents = generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Nb201Space;

    fn record(ops: [u8; 6], reward: f64) -> Record {
        Record::scored(1, Arch(ops.to_vec()), reward)
    }

    #[test]
    fn generations_keep_the_best_quarter_once_each_whatever_is_told_twice() {
        let space = Nb201Space::new();
        let history = History::new();
        let mut evolution = GenerationalEvolution {
            population_size: 8,
            ..GenerationalEvolution::default()
        };
        // The first generation: 8 distinct members, the best told three times.
        for i in 0..8u8 {
            let r = record([i % 5, i / 5, 0, 0, 0, 0], f64::from(i));
            evolution.observe(&space, &history, &r);
            if i == 7 {
                evolution.observe(&space, &history, &r);
                evolution.observe(&space, &history, &r);
            }
        }
        let rewards: Vec<f64> = evolution.parents.iter().map(|p| p.1).collect();
        assert_eq!(rewards, [7.0, 6.0], "the best two of eight, once each");
        assert!(evolution.children.is_empty());
        // Children come from the parents, mutated or crossed: each shares most of its
        // decisions with one (a uniform sample shares about one in five).
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        for _ in 0..20 {
            let child = evolution.propose(&space, &history, &mut rng);
            let shared = |p: &Arch| p.0.iter().zip(&child.0).filter(|(a, b)| a == b).count();
            let most = evolution.parents.iter().map(|(p, _)| shared(p)).max();
            assert!(most >= Some(4), "{child:?}");
            assert!(space.validate(&child).is_ok());
        }
    }
}
