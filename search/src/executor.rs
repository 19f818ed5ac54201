//! Who evaluates a batch of proposals: this machine, several at a time (`--executor
//! local --jobs N`), or a Slurm cluster (`--executor slurm`, [`crate::slurm`]). Neither
//! changes the answer: a candidate scores the same wherever it is evaluated, so the
//! history depends on the plan alone.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use hwnas_core::{Arch, BatchEvaluator, Evaluation, Evaluator};

use crate::plan::ExecutorKind;
use crate::slurm::SlurmSettings;

/// The most evaluations `--jobs` runs at a time.
pub const MAX_JOBS: usize = 1024;

/// How the search's evaluations are run, beside its plan.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// Local threads or Slurm job arrays.
    pub kind: ExecutorKind,
    /// Evaluations at a time on this machine (`local`).
    pub jobs: usize,
    /// How job arrays are submitted (`slurm`).
    pub slurm: SlurmSettings,
    /// The `hwnas` binary the cluster's tasks run (`hwnas worker`); on a filesystem the
    /// nodes see.
    pub worker_binary: Option<PathBuf>,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            kind: ExecutorKind::Local,
            jobs: 1,
            slurm: SlurmSettings::default(),
            worker_binary: None,
        }
    }
}

/// Evaluates a batch on this machine, `jobs` architectures at a time, each on a thread
/// of its own; answers in the order asked, the first error (in that order) if any failed.
pub struct LocalExecutor<'a> {
    /// What scores each architecture.
    pub evaluator: &'a dyn Evaluator,
    /// Evaluations at a time.
    pub jobs: usize,
}

impl BatchEvaluator for LocalExecutor<'_> {
    fn evaluate_batch(&self, archs: &[Arch]) -> hwnas_core::Result<Vec<Evaluation>> {
        let jobs = self.jobs.clamp(1, archs.len().max(1));
        if jobs == 1 {
            return archs.iter().map(|a| self.evaluator.evaluate(a)).collect();
        }
        let next = AtomicUsize::new(0);
        let answers: Mutex<Vec<Option<hwnas_core::Result<Evaluation>>>> =
            Mutex::new((0..archs.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(arch) = archs.get(i) else { break };
                        let answer = self.evaluator.evaluate(arch);
                        answers.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(answer);
                    }
                });
            }
        });
        answers
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .map(|a| a.expect("every architecture evaluated"))
            .collect()
    }
}
