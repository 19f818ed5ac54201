//! The run directory's task files: one spec per candidate a cluster evaluates
//! (`tasks/000012.json`, the architecture), and its result once a worker has evaluated it
//! (`tasks/000012.result.json`, written whole by the worker). The files are the whole
//! state shared with the cluster, so a search killed and resumed, or a worker rerun,
//! finds every finished task where it left it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::run_dir::{RunDir, read_json, write_json};

/// One candidate to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Its number (the Slurm array index).
    pub task: usize,
    /// The architecture, in its space's format.
    pub arch: String,
}

/// What a worker answered for a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The task.
    pub task: usize,
    /// The architecture evaluated.
    pub arch: String,
    /// Its held-out accuracy in percent (absent where the evaluation failed).
    pub accuracy: Option<f64>,
    /// Its test accuracy, where the evaluator knows one.
    pub test_accuracy: Option<f64>,
    /// Wall seconds of the evaluation.
    pub seconds: f64,
    /// The machine that evaluated it.
    pub host: String,
    /// Why the evaluation failed (a failure that a rerun would repeat).
    pub error: Option<String>,
}

/// The tasks folder of a run.
#[derive(Debug, Clone)]
pub struct TaskBoard {
    dir: PathBuf,
}

impl TaskBoard {
    /// The tasks folder of `run` (created with its `logs/` folder where missing).
    pub fn open(run: &RunDir) -> Result<TaskBoard> {
        let dir = run.file("tasks");
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::io("create", &logs, e))?;
        Ok(TaskBoard { dir })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn spec_path(&self, task: usize) -> PathBuf {
        self.dir.join(format!("{task:06}.json"))
    }

    /// Where the worker writes task `task`'s result.
    pub fn result_path(&self, task: usize) -> PathBuf {
        self.dir.join(format!("{task:06}.result.json"))
    }

    /// The log files of task `task`'s attempts (`logs/12-<job>.log`, the worker's output;
    /// Slurm's own messages, a cancel or a time limit, are in `logs/slurm-<job>_<index>.log`).
    pub fn log_pattern(&self, task: usize) -> PathBuf {
        self.dir.join("logs").join(format!("{task}-*.log"))
    }

    /// Every task spec written so far: architecture text to task number.
    fn index(&self) -> Result<HashMap<String, usize>> {
        let mut index = HashMap::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io("read", &self.dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| Error::io("read", &self.dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(number) = name.strip_suffix(".json") else {
                continue;
            };
            if number.parse::<usize>().is_err() {
                continue;
            }
            let spec: TaskSpec = read_json(&path, "an hwnas task spec")?;
            index.insert(spec.arch, spec.task);
        }
        Ok(index)
    }

    /// The task of each architecture text: the one already written for it (a resumed
    /// search), or a new one numbered after every other.
    pub fn assign(&self, archs: &[String]) -> Result<Vec<usize>> {
        let mut index = self.index()?;
        let mut next = index.values().max().map_or(0, |m| m + 1);
        let mut tasks = Vec::with_capacity(archs.len());
        for arch in archs {
            let task = match index.get(arch) {
                Some(&task) => task,
                None => {
                    let task = next;
                    next += 1;
                    let spec = TaskSpec {
                        task,
                        arch: arch.clone(),
                    };
                    write_json(&self.spec_path(task), &spec)?;
                    index.insert(arch.clone(), task);
                    task
                }
            };
            tasks.push(task);
        }
        Ok(tasks)
    }

    /// Task `task`'s spec.
    pub fn spec(&self, task: usize) -> Result<TaskSpec> {
        let path = self.spec_path(task);
        if !path.exists() {
            return Err(Error::RunDir {
                dir: self.dir.clone(),
                problem: format!(
                    "no task {task} here ({} is missing); give a task the search submitted",
                    path.display()
                ),
            });
        }
        read_json(&path, "an hwnas task spec")
    }

    /// Task `task`'s result, once a worker wrote it.
    pub fn result(&self, task: usize) -> Result<Option<TaskResult>> {
        let path = self.result_path(task);
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path, "an hwnas task result").map(Some)
    }

    /// Writes a result (whole, then renamed into place).
    pub fn write_result(&self, result: &TaskResult) -> Result<()> {
        write_json(&self.result_path(result.task), result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_keep_their_numbers_and_results_across_boards() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(&tmp.path().join("run")).unwrap();
        let board = TaskBoard::open(&run).unwrap();
        let first = board.assign(&["a".into(), "b".into()]).unwrap();
        assert_eq!(first, vec![0, 1]);
        let result = TaskResult {
            task: 1,
            arch: "b".into(),
            accuracy: Some(71.5),
            test_accuracy: None,
            seconds: 2.0,
            host: "node1".into(),
            error: None,
        };
        board.write_result(&result).unwrap();
        // A second board over the same folder (a resumed search) sees the same tasks.
        let again = TaskBoard::open(&run).unwrap();
        assert_eq!(again.assign(&["b".into(), "c".into()]).unwrap(), vec![1, 2]);
        assert_eq!(again.result(1).unwrap(), Some(result));
        assert_eq!(again.result(0).unwrap(), None);
        assert_eq!(again.spec(2).unwrap().arch, "c");
        let missing = again.spec(9).unwrap_err().to_string();
        assert!(missing.contains("no task 9"), "{missing}");
    }
}
