//! One outcome for every kind of search: the answer, whether it meets the budget, and where
//! its files are. The rule is the same for all: a search whose answer is over the budget
//! still writes its run directory and its outcome, and the caller reports failure.

use serde::Serialize;

/// What a supernet-backed search adds to its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct SupernetFacts {
    /// Supernet training steps taken.
    pub steps: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// The images it trained on.
    pub data: String,
    /// The supernet, in one line.
    pub supernet: String,
    /// The kernels it ran on.
    pub kernels: String,
    /// Per-channel mean and standard deviation the inputs (values in [0, 1]) of the
    /// inherited-weight network are normalised with.
    pub input_normalisation: (Vec<f32>, Vec<f32>),
    /// Steps at the end that trained the found cell's path alone (its architecture frozen).
    #[serde(default)]
    pub finetune_steps: usize,
    /// The found cell's held-out accuracy with the weights the architecture search left,
    /// before the fine-tuning steps (where there were any and this process saw that point).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub searched_heldout_accuracy: Option<f64>,
    /// The most MiB a training step's tape held in this process (activations, saved
    /// intermediates and live gradients).
    pub peak_step_mib: f64,
    /// What the strategy says of its search beyond the answer (RADARS: its memory
    /// estimates and pruning).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub strategy_notes: Vec<String>,
}

/// The outcome of a search, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The space's name.
    pub space: String,
    /// The strategy.
    pub strategy: String,
    /// What scored accuracy.
    pub evaluator: String,
    /// The answer, in its space's format.
    pub arch: String,
    /// Its latency: measured end to end where the target is measured, else the table's.
    pub latency_ms: f64,
    /// The budget.
    pub latency_budget_ms: f64,
    /// Whether the answer meets the budget (measured with the confirmation margin where
    /// measured): the search succeeded.
    pub within_budget: bool,
    /// The search signal of the answer.
    pub accuracy_estimate: f64,
    /// `best.onnx`: the answer as the target ran it (random weights).
    pub onnx: String,
    /// Whether `latency_ms` was measured end to end.
    pub measured: bool,
    /// Distinct architectures evaluated (one-shot searches: scored trace points).
    pub queries: usize,
    /// The answer with the weights it inherits from a supernet, where one scored it.
    pub inherited_onnx: Option<String>,
    /// Where a supernet scored the answer: its accuracy (%) on the held-out images with the
    /// weights it inherits, after batch-norm recalibration (what `inherited_onnx` scores).
    pub heldout_accuracy: Option<f64>,
    /// The answer's NAS-Bench-201 test accuracy (a transfer check for supernet searches).
    pub table_test_accuracy: Option<f64>,
    /// The run directory.
    pub run_dir: String,
    /// Seconds the command took.
    pub wall_seconds: f64,
    /// Finalists the closed loop measured end to end.
    pub finalists_measured: usize,
    /// Runnable threads beside hwnas's own while finalists were measured (the one-minute
    /// load average), where the target tells.
    pub other_load: Option<f64>,
    /// A supernet-backed search's facts.
    #[serde(flatten)]
    pub supernet: Option<SupernetFacts>,
}

impl Outcome {
    /// The failure to report when the answer is over the budget.
    pub fn over_budget_message(&self) -> Option<String> {
        (!self.within_budget).then(|| {
            format!(
                "the answer {} is over the {:.3} ms budget at {:.3} ms ({}); the run directory {} says what was measured; raise --latency-ms{}",
                self.arch,
                self.latency_budget_ms,
                self.latency_ms,
                if self.measured {
                    "measured end to end"
                } else {
                    "from the latency model"
                },
                self.run_dir,
                if self.evaluator == "supernet" {
                    ", raise --latency-weight (the latency term's weight, default 1) or search longer (--epochs)"
                } else {
                    ", --budget or --finalists, or run again on a quiet machine"
                }
            )
        })
    }

    /// The few lines a person reads at the end of a search.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "hwnas search: {} with {} ({} queries)\n",
            self.space, self.strategy, self.queries
        );
        text.push_str(&format!("  chosen     {}\n", self.arch));
        text.push_str(&format!(
            "  accuracy   {:.2} (estimate: {})\n",
            self.accuracy_estimate, self.evaluator
        ));
        text.push_str(&format!(
            "  latency    {:.3} ms {} (budget {:.3} ms{})\n",
            self.latency_ms,
            if self.measured {
                "measured end to end"
            } else {
                "from the table"
            },
            self.latency_budget_ms,
            if self.within_budget {
                ""
            } else {
                ": OVER BUDGET"
            }
        ));
        if let Some(t) = self.table_test_accuracy {
            text.push_str(&format!(
                "  transfer   NAS-Bench-201 test accuracy {t:.2}\n"
            ));
        }
        text.push_str(&format!(
            "  run dir    {}  (report.md first)\n",
            self.run_dir
        ));
        text.push_str(&format!("  time       {:.1} s\n", self.wall_seconds));
        text
    }
}
