//! `hwnas worker --run DIR --task I`: one task of a cluster search, run on a node. Reads
//! the run's plan from its manifest and the task's architecture from `tasks/`, trains and
//! scores it as the search's own evaluator would, and writes the result whole into the run
//! directory. A failure is written too, so the search stops with it instead of retrying.

use std::path::Path;
use std::time::Instant;

use hwnas_core::Evaluator;

use crate::error::{Error, Result};
use crate::observer::Observer;
use crate::plan::EvaluatorKind;
use crate::run_dir::RunDir;
use crate::tasks::{TaskBoard, TaskResult};

/// Evaluates task `task` of the run in `run` and writes its result; returns it.
pub fn run_task(run: &Path, task: usize, observer: &dyn Observer) -> Result<TaskResult> {
    let (dir, manifest) = RunDir::open(run)?;
    let board = TaskBoard::open(&dir)?;
    let spec = board.spec(task)?;
    let plan = manifest.plan;
    let started = Instant::now();
    let evaluation = (|| {
        if plan.evaluator() != EvaluatorKind::Train {
            return Err(Error::plan(
                "evaluator",
                plan.evaluator(),
                "a worker trains candidates of an `--evaluator train` search; this run scores them itself",
            ));
        }
        let space = crate::world::training_space(&plan)?;
        let arch = space.parse(&spec.arch)?;
        let evaluator = crate::oneshot::training_evaluator(&plan, observer)?;
        Ok(evaluator.evaluate(&arch)?)
    })();
    let host = std::env::var("SLURMD_NODENAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let result = TaskResult {
        task,
        arch: spec.arch,
        accuracy: evaluation.as_ref().ok().map(|e| e.accuracy),
        test_accuracy: evaluation.as_ref().ok().and_then(|e| e.test_accuracy),
        seconds: started.elapsed().as_secs_f64(),
        host,
        error: evaluation.as_ref().err().map(error_chain),
    };
    board.write_result(&result)?;
    evaluation.map(|_| result)
}

/// An error and its causes on one line.
fn error_chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
