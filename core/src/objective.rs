//! Turning an accuracy and a latency into the one number a strategy maximises.

use serde::{Deserialize, Serialize};

/// How a strategy's reward is formed from accuracy and latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum Objective {
    /// Reward is the accuracy; latency is recorded but does not count.
    #[default]
    Accuracy,
    /// A latency budget (ProxylessNAS / MnasNet-style): within it the reward is the
    /// accuracy, past it the accuracy times `(budget / latency)^exponent`, and the
    /// architecture is infeasible: it is never selected as the answer.
    LatencyBudget {
        /// The budget in milliseconds.
        budget_ms: f64,
        /// How steeply the reward falls past the budget.
        exponent: f64,
    },
    /// MONAS's weighted form: `accuracy - weight * latency_ms`; every architecture is
    /// feasible, and the trade-off is set by `weight` (accuracy points per millisecond).
    Weighted {
        /// Accuracy points one millisecond is worth.
        weight: f64,
    },
}

impl Objective {
    /// A latency budget with the default fall-off (exponent 2: 10% over costs about 17%).
    pub fn latency_budget(budget_ms: f64) -> Self {
        Objective::LatencyBudget {
            budget_ms,
            exponent: 2.0,
        }
    }

    /// The reward of an accuracy and, where known, a latency.
    pub fn reward(&self, accuracy: f64, latency_ms: Option<f64>) -> f64 {
        match (*self, latency_ms) {
            (Objective::Weighted { weight }, Some(latency)) => accuracy - weight * latency,
            (
                Objective::LatencyBudget {
                    budget_ms,
                    exponent,
                },
                Some(latency),
            ) if latency > budget_ms => accuracy * (budget_ms / latency).powf(exponent),
            _ => accuracy,
        }
    }

    /// Whether an architecture with this latency may be the answer.
    pub fn feasible(&self, latency_ms: Option<f64>) -> bool {
        match (*self, latency_ms) {
            (Objective::LatencyBudget { budget_ms, .. }, Some(latency)) => latency <= budget_ms,
            (Objective::LatencyBudget { .. }, None) => false,
            (Objective::Accuracy, _) | (Objective::Weighted { .. }, _) => true,
        }
    }

    /// Whether the objective needs a latency model.
    pub fn needs_latency(&self) -> bool {
        matches!(
            self,
            Objective::LatencyBudget { .. } | Objective::Weighted { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_penalises_only_past_the_budget() {
        let objective = Objective::latency_budget(10.0);
        assert_eq!(objective.reward(90.0, Some(9.0)), 90.0);
        assert!(objective.reward(90.0, Some(11.0)) < 90.0);
        assert!(objective.reward(90.0, Some(20.0)) < objective.reward(90.0, Some(11.0)));
        assert!(objective.feasible(Some(10.0)) && !objective.feasible(Some(10.01)));
        assert_eq!(Objective::Accuracy.reward(90.0, Some(1e9)), 90.0);
        let weighted = Objective::Weighted { weight: 0.5 };
        assert_eq!(weighted.reward(90.0, Some(4.0)), 88.0);
        assert!(weighted.feasible(Some(1e6)));
    }
}
