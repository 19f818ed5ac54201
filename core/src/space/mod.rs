//! Search spaces: every architecture is a vector of categorical decisions, so every
//! strategy works on every space; each space adds its community's text format, its
//! canonical form and which decisions matter.

pub mod darts;
pub mod nb201;
pub mod ofa;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::Result;

pub use darts::DartsSpace;
pub use nb201::Nb201Space;
pub use ofa::OfaSpace;

/// One categorical decision of a space, e.g. "edge 1<-0" with five operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// A name a person can read, e.g. `edge 2<-1` or `stage 3 depth`.
    pub name: String,
    /// The labels of the choices, in index order.
    pub choices: Vec<String>,
}

impl Decision {
    /// A decision from a name and choice labels.
    pub fn new(
        name: impl Into<String>,
        choices: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Decision {
            name: name.into(),
            choices: choices.into_iter().map(Into::into).collect(),
        }
    }
}

/// An architecture: the chosen index of each decision of its space, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Arch(pub Vec<u8>);

impl Arch {
    /// The chosen indices.
    pub fn choices(&self) -> &[u8] {
        &self.0
    }
}

/// A search space: decisions, formats and the operations strategies need.
///
/// Only [`SearchSpace::name`], [`SearchSpace::decisions`], [`SearchSpace::format`] and
/// [`SearchSpace::parse`] are required; sampling, mutation, neighbours, hashing and the
/// vector encodings follow from the decisions, honouring [`SearchSpace::active`] so that
/// decisions that do not change the network (an Once-for-All block past its stage's depth)
/// are never the only thing a mutation changes.
pub trait SearchSpace: Send + Sync {
    /// The space's name on the command line: `nb201`, `darts` or `ofa-mbv3`.
    fn name(&self) -> &'static str;

    /// The decisions, in order.
    fn decisions(&self) -> &[Decision];

    /// The architecture in the community's text format.
    fn format(&self, arch: &Arch) -> String;

    /// Parses the community's text format; errors name the bad token and the allowed values.
    fn parse(&self, text: &str) -> Result<Arch>;

    /// How the decisions connect in the network, as directed edges `(from, to)` between
    /// decision indices: what a graph encoder (GA-NAS's) propagates along. By default a
    /// chain in decision order.
    fn decision_graph(&self) -> Vec<(usize, usize)> {
        (1..self.decisions().len()).map(|i| (i - 1, i)).collect()
    }

    /// Which decisions change the network for this architecture (all, by default).
    fn active(&self, arch: &Arch) -> Vec<bool> {
        vec![true; arch.0.len()]
    }

    /// The canonical member of the class of architectures that compute the same function:
    /// inactive decisions reset to their first choice; spaces may merge more.
    fn canonical(&self, arch: &Arch) -> Arch {
        let active = self.active(arch);
        Arch(
            arch.0
                .iter()
                .zip(active)
                .map(|(&choice, on)| if on { choice } else { 0 })
                .collect(),
        )
    }

    /// A stable 64-bit hash of the canonical form (FNV-1a), equal for equivalent architectures.
    fn canonical_hash(&self, arch: &Arch) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.name().bytes().chain(self.canonical(arch).0) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    /// Checks that every decision's index is within its choices.
    fn validate(&self, arch: &Arch) -> Result<()> {
        let decisions = self.decisions();
        if arch.0.len() != decisions.len() {
            return Err(crate::Error::InvalidArch {
                space: self.name(),
                problem: format!(
                    "{} decisions given, the space has {}",
                    arch.0.len(),
                    decisions.len()
                ),
            });
        }
        for (decision, &choice) in decisions.iter().zip(&arch.0) {
            if usize::from(choice) >= decision.choices.len() {
                return Err(crate::Error::InvalidArch {
                    space: self.name(),
                    problem: format!(
                        "{} has choice {choice}, allowed 0..{}",
                        decision.name,
                        decision.choices.len()
                    ),
                });
            }
        }
        Ok(())
    }

    /// A uniformly random architecture.
    fn sample(&self, rng: &mut dyn rand::RngCore) -> Arch {
        Arch(
            self.decisions()
                .iter()
                .map(|d| rng.random_range(0..d.choices.len()) as u8)
                .collect(),
        )
    }

    /// One active decision changed to another of its choices, chosen uniformly.
    fn mutate(&self, arch: &Arch, rng: &mut dyn rand::RngCore) -> Arch {
        let decisions = self.decisions();
        let mutable: Vec<usize> = self
            .active(arch)
            .iter()
            .enumerate()
            .filter(|&(i, &on)| on && decisions[i].choices.len() > 1)
            .map(|(i, _)| i)
            .collect();
        let mut child = arch.clone();
        if mutable.is_empty() {
            return child;
        }
        let at = mutable[rng.random_range(0..mutable.len())];
        let count = decisions[at].choices.len();
        let offset = rng.random_range(1..count);
        child.0[at] = ((usize::from(arch.0[at]) + offset) % count) as u8;
        child
    }

    /// Every architecture that differs in exactly one active decision.
    fn neighbours(&self, arch: &Arch) -> Vec<Arch> {
        let mut out = Vec::new();
        for (i, (decision, on)) in self.decisions().iter().zip(self.active(arch)).enumerate() {
            if !on {
                continue;
            }
            for choice in 0..decision.choices.len() as u8 {
                if choice != arch.0[i] {
                    let mut next = arch.clone();
                    next.0[i] = choice;
                    out.push(next);
                }
            }
        }
        out
    }

    /// Length of the one-hot encoding: the sum of the decisions' choice counts.
    fn encoding_len(&self) -> usize {
        self.decisions().iter().map(|d| d.choices.len()).sum()
    }

    /// One-hot encoding, decision after decision; inactive decisions are all zero.
    fn one_hot(&self, arch: &Arch) -> Vec<f32> {
        let mut out = vec![0.0; self.encoding_len()];
        let mut offset = 0;
        for ((decision, &choice), on) in self.decisions().iter().zip(&arch.0).zip(self.active(arch))
        {
            if on {
                out[offset + usize::from(choice)] = 1.0;
            }
            offset += decision.choices.len();
        }
        out
    }

    /// The architecture a continuous vector of the encoding's shape stands for: the argmax of
    /// each decision's slice (ties to the lowest index).
    fn decode(&self, values: &[f32]) -> Result<Arch> {
        if values.len() != self.encoding_len() {
            return Err(crate::Error::InvalidArch {
                space: self.name(),
                problem: format!(
                    "encoding has {} values, the space needs {}",
                    values.len(),
                    self.encoding_len()
                ),
            });
        }
        let mut choices = Vec::with_capacity(self.decisions().len());
        let mut offset = 0;
        for decision in self.decisions() {
            let slice = &values[offset..offset + decision.choices.len()];
            let mut best = 0;
            for (i, &v) in slice.iter().enumerate() {
                if v > slice[best] {
                    best = i;
                }
            }
            choices.push(best as u8);
            offset += decision.choices.len();
        }
        Ok(Arch(choices))
    }

    /// log10 of the number of decision vectors (an upper bound on distinct networks).
    fn log10_size(&self) -> f64 {
        self.decisions()
            .iter()
            .map(|d| (d.choices.len() as f64).log10())
            .sum()
    }
}

/// The spaces by their command-line names.
pub fn space_by_name(name: &str) -> Result<Box<dyn SearchSpace>> {
    match name {
        "nb201" => Ok(Box::new(Nb201Space::new())),
        "darts" => Ok(Box::new(DartsSpace::new())),
        "ofa-mbv3" | "ofa" => Ok(Box::new(OfaSpace::default())),
        other => Err(crate::Error::Setting {
            name: "space".to_string(),
            problem: format!("unknown space `{other}`; allowed: nb201, darts, ofa-mbv3"),
        }),
    }
}
