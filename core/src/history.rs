//! The record of a search: every distinct architecture evaluated, in order.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::space::Arch;

/// One evaluated architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1-based position among the distinct architectures evaluated.
    pub query: usize,
    /// The architecture's decisions.
    pub arch: Arch,
    /// The architecture in its space's text format.
    pub arch_text: String,
    /// The search signal (validation accuracy, predictor or proxy score). Not a number
    /// where the evaluator has none (an all-`none` cell): JSON writes that as `null`.
    #[serde(deserialize_with = "nan_if_null")]
    pub accuracy: f64,
    /// The reported accuracy, where the evaluator knows it.
    pub test_accuracy: Option<f64>,
    /// Latency in milliseconds, where a latency model was given.
    pub latency_ms: Option<f64>,
    /// What the strategy maximises (see [`crate::Objective`]); `null` in JSON as above.
    #[serde(deserialize_with = "nan_if_null")]
    pub reward: f64,
    /// Whether the architecture meets the objective's constraints.
    pub feasible: bool,
    /// Simulated training seconds spent up to and including this query.
    pub seconds: f64,
}

/// Reads a number that JSON may hold as `null` (how `serde_json` writes NaN) back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// Every distinct architecture evaluated so far, with a look-up by architecture.
#[derive(Debug, Clone, Default)]
pub struct History {
    records: Vec<Record>,
    by_arch: HashMap<Arch, usize>,
    /// Indices of `records`, best reward first (earliest on ties, no number last): kept
    /// sorted on every push so that the top-k the strategies read each query costs O(k).
    ranked: Vec<usize>,
}

#[cfg(test)]
impl Record {
    /// A feasible record of `arch` at `query` whose accuracy and reward are `reward`, for
    /// strategies' tests.
    pub(crate) fn scored(query: usize, arch: Arch, reward: f64) -> Record {
        Record {
            query,
            arch,
            arch_text: String::new(),
            accuracy: reward,
            test_accuracy: None,
            latency_ms: None,
            reward,
            feasible: true,
            seconds: 0.0,
        }
    }
}

/// Whether record `a` ranks above record `b`: higher reward, earlier on ties, a reward that
/// is not a number below every number.
fn ranks_above(a: &Record, b: &Record) -> bool {
    let key = |r: &Record| {
        if r.reward.is_nan() {
            f64::NEG_INFINITY
        } else {
            r.reward
        }
    };
    match key(a).total_cmp(&key(b)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => (a.reward.is_nan(), a.query) < (b.reward.is_nan(), b.query),
    }
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The records in query order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Distinct architectures evaluated.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True before the first evaluation.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record of an architecture, if it was evaluated.
    pub fn get(&self, arch: &Arch) -> Option<&Record> {
        self.by_arch.get(arch).map(|&i| &self.records[i])
    }

    /// Appends a record (its architecture must be new).
    pub fn push(&mut self, record: Record) {
        debug_assert!(!self.by_arch.contains_key(&record.arch));
        let index = self.records.len();
        let at = self
            .ranked
            .partition_point(|&i| ranks_above(&self.records[i], &record));
        self.ranked.insert(at, index);
        self.by_arch.insert(record.arch.clone(), index);
        self.records.push(record);
    }

    /// The answer among the first `queries` records: the feasible record with the highest
    /// reward, earliest on ties. Within a latency budget (or without one) the reward is the
    /// search signal (validation accuracy) — the literature's protocol; under MONAS's
    /// weighted form it is the weighted reward.
    pub fn selected(&self, queries: usize) -> Option<&Record> {
        let mut best: Option<&Record> = None;
        for record in self.records.iter().take(queries).filter(|r| r.feasible) {
            if best.is_none_or(|b| record.reward > b.reward) {
                best = Some(record);
            }
        }
        best
    }

    /// Every record, best reward first (earliest on ties, no number last).
    pub fn ranked(&self) -> impl Iterator<Item = &Record> {
        self.ranked.iter().map(|&i| &self.records[i])
    }

    /// The `k` records with the highest reward, best first.
    pub fn top_k(&self, k: usize) -> Vec<&Record> {
        self.ranked
            .iter()
            .take(k)
            .map(|&i| &self.records[i])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_k_is_best_first_earliest_on_ties_and_not_a_number_last() {
        let mut history = History::new();
        for (query, reward) in [(1, 2.0), (2, f64::NAN), (3, 5.0), (4, 2.0), (5, -1.0)] {
            history.push(Record::scored(query, Arch(vec![query as u8]), reward));
        }
        let queries: Vec<usize> = history.top_k(10).iter().map(|r| r.query).collect();
        assert_eq!(queries, [3, 1, 4, 5, 2]);
        assert_eq!(history.top_k(2).len(), 2);
    }

    #[test]
    fn a_record_without_an_accuracy_reads_back_as_written() {
        let record = Record {
            query: 1,
            arch: Arch(vec![0; 6]),
            arch_text: "none".into(),
            accuracy: f64::NAN,
            test_accuracy: None,
            latency_ms: Some(1.0),
            reward: f64::NAN,
            feasible: true,
            seconds: 0.0,
        };
        let line = serde_json::to_string(&record).unwrap();
        assert!(line.contains("\"accuracy\":null"), "{line}");
        let back: Record = serde_json::from_str(&line).unwrap();
        assert!(back.accuracy.is_nan() && back.reward.is_nan());
        assert_eq!(back.arch, record.arch);
    }
}
