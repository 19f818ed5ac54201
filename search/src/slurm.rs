//! `--executor slurm`: each batch of proposals becomes one Slurm job array whose tasks run
//! `hwnas worker --run DIR --task I`, each evaluating one candidate and writing its result
//! into the run directory ([`crate::tasks`]). The search waits for the array, collects the
//! results, and resubmits the tasks that ended without one (cancelled, preempted, a node
//! lost), up to [`MAX_ATTEMPTS`] times; a task that failed with an error is not retried.
//! A resumed search submits nothing that finished, and waits for tasks of its earlier
//! jobs that still run. The cluster's own scheduler does the scheduling; hwnas only
//! submits and watches, through `sbatch` and `squeue`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hwnas_core::{Arch, BatchEvaluator, Evaluation, SearchSpace};
use hwnas_targets::description::ClusterSettings;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::observer::Observer;
use crate::run_dir::{JsonLines, RunDir, read_jsonl};
use crate::tasks::TaskBoard;

/// Times a task may end without a result before the search gives up on it.
pub const MAX_ATTEMPTS: usize = 3;

/// Reasons Slurm gives for a pending task that will never start as submitted.
const NEVER_RUNS: [&str; 7] = [
    "BadConstraints",
    "PartitionTimeLimit",
    "PartitionNodeLimit",
    "PartitionConfig",
    "InvalidAccount",
    "InvalidQOS",
    "MaxWallDurationPerJobLimit",
];

/// A task missing from the queue without a visible result is taken for lost only after
/// this long (and two looks at the queue): a result written on a node may take a moment
/// to show on a network filesystem.
const RESULT_GRACE: Duration = Duration::from_secs(3);

/// How long `squeue` may keep failing (the controller unreachable) before the search stops.
const SQUEUE_PATIENCE: Duration = Duration::from_secs(120);

/// What each job array asks of the cluster (`--slurm-*` flags; `None` leaves Slurm's
/// default), and how often the search looks at the queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlurmSettings {
    /// The `sbatch` options: partition, time, CPUs, GRES, more (the same settings a target
    /// description's `[slurm]` table holds).
    pub sbatch: ClusterSettings,
    /// Seconds between looks at the queue (`None`: 2).
    pub poll_seconds: Option<f64>,
}

impl SlurmSettings {
    /// These settings, with those left unset taken from a target description's `[slurm]`
    /// table (its extra options first, then these).
    pub fn or_from(mut self, cluster: &ClusterSettings) -> Self {
        let mine = &mut self.sbatch;
        mine.partition = mine.partition.take().or_else(|| cluster.partition.clone());
        mine.time = mine.time.take().or_else(|| cluster.time.clone());
        mine.cpus = mine.cpus.or(cluster.cpus);
        mine.gres = mine.gres.take().or_else(|| cluster.gres.clone());
        mine.options = cluster
            .options
            .iter()
            .cloned()
            .chain(std::mem::take(&mut mine.options))
            .collect();
        self
    }

    /// Checks what can be checked before anything is submitted.
    pub fn validate(&self) -> Result<()> {
        let words = [
            ("slurm-partition", &self.sbatch.partition),
            ("slurm-time", &self.sbatch.time),
            ("slurm-gres", &self.sbatch.gres),
        ];
        for (setting, value) in words {
            if let Some(v) = value
                && (v.is_empty() || v.chars().any(char::is_whitespace))
            {
                return Err(Error::plan(
                    setting,
                    format!("`{v}`"),
                    "give one word, as sbatch takes it (`gpu`, `01:00:00`, `gpu:1`)",
                ));
            }
        }
        if let Some(c) = self.sbatch.cpus
            && !(1..=4096).contains(&c)
        {
            return Err(Error::plan(
                "slurm-cpus",
                c,
                "ask for 1 to 4096 CPUs per task",
            ));
        }
        if let Some(p) = self.poll_seconds
            && !(p.is_finite() && (0.05..=600.0).contains(&p))
        {
            return Err(Error::plan(
                "slurm-poll",
                p,
                "look at the queue every 0.05 to 600 seconds",
            ));
        }
        if let Some(bad) = self.sbatch.options.iter().find(|o| !o.starts_with('-')) {
            return Err(Error::plan(
                "slurm-option",
                format!("`{bad}`"),
                "each is one sbatch option with its dashes, e.g. --slurm-option=--account=lab",
            ));
        }
        Ok(())
    }

    fn sbatch_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(p) = &self.sbatch.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(t) = &self.sbatch.time {
            args.push(format!("--time={t}"));
        }
        if let Some(c) = self.sbatch.cpus {
            args.push(format!("--cpus-per-task={c}"));
        }
        if let Some(g) = &self.sbatch.gres {
            args.push(format!("--gres={g}"));
        }
        args.extend(self.sbatch.options.iter().cloned());
        args
    }
}

/// One job array submitted, as `tasks/jobs.jsonl` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmittedJob {
    /// Slurm's job id.
    pub job: String,
    /// The tasks it runs, in the order of its array indices (index 0 runs the first).
    pub tasks: Vec<usize>,
}

/// Evaluates batches as Slurm job arrays of `hwnas worker` tasks.
pub struct SlurmExecutor<'a> {
    space: &'a dyn SearchSpace,
    board: TaskBoard,
    script: PathBuf,
    name: String,
    settings: SlurmSettings,
    observer: &'a dyn Observer,
    /// Every array this run submitted (`tasks/jobs.jsonl`, this search's and earlier
    /// ones'), read once and appended to as this search submits.
    jobs: Mutex<Vec<SubmittedJob>>,
}

impl<'a> SlurmExecutor<'a> {
    /// An executor for the run in `dir` whose tasks run `binary` (an `hwnas` on a
    /// filesystem every node sees); checks that `sbatch` answers and writes the tasks'
    /// script, `tasks/worker.sh`.
    pub fn new(
        dir: &RunDir,
        space: &'a dyn SearchSpace,
        settings: SlurmSettings,
        binary: &Path,
        observer: &'a dyn Observer,
    ) -> Result<Self> {
        let version = Command::new("sbatch").arg("--version").output();
        if !version.is_ok_and(|o| o.status.success()) {
            return Err(Error::plan(
                "executor",
                "slurm",
                "`sbatch --version` does not run here: run the search on a machine of the cluster (a login node) with Slurm's commands on PATH and SLURM_CONF set where needed, or use --executor local (`bash scripts/slurm.sh start` brings up a one-node cluster on this machine)",
            ));
        }
        let board = TaskBoard::open(dir)?;
        let run =
            std::fs::canonicalize(dir.path()).map_err(|e| Error::io("read", dir.path(), e))?;
        let script = board.dir().join("worker.sh");
        let text = format!(
            "#!/bin/sh\n# Written by `hwnas search --executor slurm`: one task of the run in {run}.\n# $1: the array's task list, one task per line; array index i runs line i + 1.\nset -eu\ntask=\"$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$1\")\"\nexport RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\nexec {} worker --run {} --task \"$task\" >{}/\"$task-$SLURM_ARRAY_JOB_ID.log\" 2>&1\n",
            shell_quoted(&binary.display().to_string()),
            shell_quoted(&run.display().to_string()),
            shell_quoted(&board.dir().join("logs").display().to_string()),
            run = run.display(),
        );
        std::fs::write(&script, text).map_err(|e| Error::io("write", &script, e))?;
        set_executable(&script)?;
        let name = format!(
            "hwnas-{}",
            run.file_name().and_then(|n| n.to_str()).unwrap_or("run")
        );
        let jobs = read_jsonl(&jobs_path(&board), "the run's Slurm job list")?;
        Ok(SlurmExecutor {
            space,
            board,
            script,
            name,
            settings,
            observer,
            jobs: Mutex::new(jobs),
        })
    }

    /// Every job array this run submitted (this search's and the earlier ones').
    fn recorded_jobs(&self) -> Vec<SubmittedJob> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Submits `tasks` as one job array (indices 0 to n - 1, each mapped to its task by a
    /// list in `tasks/arrays/`, so a run's task numbers never meet the cluster's
    /// `MaxArraySize`); returns its job id.
    fn submit(&self, tasks: &[usize]) -> Result<String> {
        let array = tasks
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let lists = self.board.dir().join("arrays");
        std::fs::create_dir_all(&lists).map_err(|e| Error::io("create", &lists, e))?;
        let list = lists.join(format!("{}.txt", self.recorded_jobs().len()));
        let lines: String = tasks.iter().map(|t| format!("{t}\n")).collect();
        crate::run_dir::write_atomically(&list, lines.as_bytes())?;
        let logs = self.board.dir().join("logs").join("slurm-%A_%a.log");
        let output = Command::new("sbatch")
            .arg("--parsable")
            .arg(format!("--array=0-{}", tasks.len().saturating_sub(1)))
            .arg(format!("--job-name={}", self.name))
            .arg(format!("--output={}", logs.display()))
            .args(self.settings.sbatch_args())
            .arg(&self.script)
            .arg(&list)
            .output()
            .map_err(|e| Error::io("run", "sbatch", e))?;
        if !output.status.success() {
            return Err(Error::plan(
                "executor",
                "slurm",
                format!(
                    "sbatch refused the job array of tasks {array} ({}): {}; check the --slurm-* settings",
                    self.settings.sbatch_args().join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            ));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let job = stdout.trim().split(';').next().unwrap_or("").to_string();
        if job.is_empty() || !job.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::plan(
                "executor",
                "slurm",
                format!(
                    "sbatch --parsable answered `{}`, not a job id",
                    stdout.trim()
                ),
            ));
        }
        let submitted = SubmittedJob {
            job: job.clone(),
            tasks: tasks.to_vec(),
        };
        JsonLines::append(&jobs_path(&self.board))?.push(&submitted)?;
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(submitted);
        self.observer.note(&format!(
            "slurm: job {job} submitted ({} task{}: {array})",
            tasks.len(),
            if tasks.len() == 1 { "" } else { "s" }
        ));
        Ok(job)
    }

    /// The tasks of `jobs` still pending or running, with their states (and, pending,
    /// the reason: `PENDING Resources`).
    fn live(&self, jobs: &[SubmittedJob]) -> Result<HashMap<usize, String>> {
        let mut live = HashMap::new();
        for job in jobs {
            let output = Command::new("squeue")
                .args(["-h", "-r", "-j", &job.job, "-o", "%K %T %r"])
                .output()
                .map_err(|e| Error::io("run", "squeue", e))?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() {
                // A job the controller has already forgotten has nothing left to run.
                if stderr.contains("Invalid job id") {
                    continue;
                }
                return Err(Error::plan(
                    "executor",
                    "slurm",
                    format!("squeue failed: {}", stderr.trim()),
                ));
            }
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                let mut fields = line.splitn(3, ' ');
                let (Some(task), Some(state)) = (fields.next(), fields.next()) else {
                    continue;
                };
                let reason = fields.next().unwrap_or("").trim();
                // The array index names the task through the job's own list.
                let Some(&task) = task.parse::<usize>().ok().and_then(|i| job.tasks.get(i)) else {
                    continue;
                };
                if state == "PENDING" && NEVER_RUNS.iter().any(|r| reason.contains(r)) {
                    // The cluster will never start it as asked: cancel the array, say why.
                    let _ = Command::new("scancel").arg(&job.job).status();
                    return Err(Error::plan(
                        "executor",
                        "slurm",
                        format!(
                            "job {} cannot start: Slurm holds its tasks pending for `{reason}`; change the --slurm-* settings (partition, time, CPUs, GPUs) or the target's [slurm] table, then resume with --resume",
                            job.job
                        ),
                    ));
                }
                let shown = match reason {
                    "" | "None" | "(null)" => state.to_string(),
                    reason => format!("{state} ({reason})"),
                };
                live.insert(task, shown);
            }
        }
        Ok(live)
    }

    /// Waits for `tasks`, submitting those neither finished nor queued; returns their
    /// accuracies in order.
    fn run_tasks(&self, tasks: &[usize]) -> Result<Vec<Evaluation>> {
        let poll = Duration::from_secs_f64(self.settings.poll_seconds.unwrap_or(2.0).max(0.05));
        let mut attempts: HashMap<usize, usize> = HashMap::new();
        let mut squeue_failing_since: Option<Instant> = None;
        let mut last_states = String::new();
        let mut waiting: Vec<usize> = tasks.to_vec();
        // Tasks submitted (now or by an earlier search) and first seen gone, with when.
        let mut gone_since: HashMap<usize, (Instant, usize)> = HashMap::new();
        loop {
            // The queue first, the results second: a task finishing in between has its
            // result seen, never mistaken for one lost. Only the arrays holding a task
            // still waited for are asked after.
            let jobs: Vec<SubmittedJob> = self
                .recorded_jobs()
                .into_iter()
                .filter(|j| j.tasks.iter().any(|t| waiting.contains(t)))
                .collect();
            let live = match self.live(&jobs) {
                Ok(live) => {
                    squeue_failing_since = None;
                    live
                }
                Err(e) => {
                    let since = *squeue_failing_since.get_or_insert_with(Instant::now);
                    let all_done = tasks
                        .iter()
                        .all(|&t| self.board.result(t).is_ok_and(|r| r.is_some()));
                    if all_done {
                        HashMap::new()
                    } else if since.elapsed() > SQUEUE_PATIENCE {
                        return Err(e);
                    } else {
                        std::thread::sleep(poll);
                        continue;
                    }
                }
            };
            waiting.clear();
            for &task in tasks {
                match self.board.result(task)? {
                    Some(result) => {
                        if let Some(error) = result.error {
                            return Err(Error::plan(
                                "executor",
                                "slurm",
                                format!(
                                    "task {task} (`{}`) failed on {}: {error}; its log: {}; once the cause is fixed, delete {} and resume with --resume",
                                    result.arch,
                                    result.host,
                                    self.board.log_pattern(task).display(),
                                    self.board.result_path(task).display()
                                ),
                            ));
                        }
                    }
                    None => waiting.push(task),
                }
            }
            if waiting.is_empty() {
                break;
            }
            let submitted: Vec<usize> = jobs.iter().flat_map(|j| j.tasks.clone()).collect();
            let mut lost = Vec::new();
            for &task in &waiting {
                if live.contains_key(&task) {
                    gone_since.remove(&task);
                } else if !submitted.contains(&task) && !attempts.contains_key(&task) {
                    lost.push(task); // never submitted: at once
                } else {
                    let (since, looks) = gone_since.entry(task).or_insert((Instant::now(), 0));
                    *looks += 1;
                    if *looks >= 2 && since.elapsed() >= RESULT_GRACE {
                        gone_since.remove(&task);
                        lost.push(task);
                    }
                }
            }
            let mut retried = 0;
            for &task in &lost {
                let tries = attempts.entry(task).or_default();
                retried += usize::from(*tries > 0);
                if *tries >= MAX_ATTEMPTS {
                    return Err(Error::plan(
                        "executor",
                        "slurm",
                        format!(
                            "task {task} ended {MAX_ATTEMPTS} times without a result (cancelled, preempted, out of time or memory, or its worker could not read the run directory or start the binary: are both on a filesystem the nodes see?); see {}, raise --slurm-time, or resume the search with --resume to try again",
                            self.board.log_pattern(task).display()
                        ),
                    ));
                }
                *tries += 1;
            }
            if !lost.is_empty() {
                if retried > 0 {
                    self.observer.note(&format!(
                        "slurm: resubmitting {retried} task(s) that ended without a result"
                    ));
                }
                self.submit(&lost)?;
            }
            if lost.is_empty() {
                let mut counts: Vec<(String, usize)> = Vec::new();
                for state in waiting.iter().filter_map(|t| live.get(t)) {
                    match counts.iter_mut().find(|(s, _)| s == state) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((state.clone(), 1)),
                    }
                }
                let states = counts
                    .iter()
                    .map(|(s, n)| format!("{n} {}", s.to_lowercase()))
                    .collect::<Vec<_>>()
                    .join(", ");
                if states != last_states {
                    self.observer.waiting_on(&format!(
                        "slurm: {} of {} done, {states}",
                        tasks.len() - waiting.len(),
                        tasks.len()
                    ));
                    last_states = states;
                }
            }
            std::thread::sleep(poll);
        }
        tasks
            .iter()
            .map(|&task| {
                let result = self.board.result(task)?.expect("a result for every task");
                Ok(Evaluation {
                    accuracy: result.accuracy.unwrap_or(f64::NAN),
                    test_accuracy: result.test_accuracy,
                    cost_seconds: 0.0,
                })
            })
            .collect()
    }
}

impl BatchEvaluator for SlurmExecutor<'_> {
    fn evaluate_batch(&self, archs: &[Arch]) -> hwnas_core::Result<Vec<Evaluation>> {
        let texts: Vec<String> = archs.iter().map(|a| self.space.format(a)).collect();
        let answer = self
            .board
            .assign(&texts)
            .and_then(|tasks| self.run_tasks(&tasks));
        answer.map_err(|e| hwnas_core::Error::Failed {
            source_name: "the slurm executor".into(),
            arch: format!("a batch of {}", texts.len()),
            source: Box::new(e),
        })
    }
}

/// The run's record of its job arrays.
fn jobs_path(board: &TaskBoard) -> PathBuf {
    board.dir().join("jobs.jsonl")
}

/// `text` quoted for `sh`.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn set_executable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io("write", path, e))?;
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_sbatch_options_in_order() {
        let settings = SlurmSettings {
            sbatch: ClusterSettings {
                partition: Some("gpu".into()),
                time: Some("00:30:00".into()),
                cpus: Some(4),
                gres: Some("gpu:1".into()),
                options: vec!["--account=lab".into()],
            },
            poll_seconds: None,
        };
        assert_eq!(
            settings.sbatch_args(),
            [
                "--partition=gpu",
                "--time=00:30:00",
                "--cpus-per-task=4",
                "--gres=gpu:1",
                "--account=lab"
            ]
        );
        assert_eq!(shell_quoted("/a b/it's"), "'/a b/it'\\''s'");
    }

    #[test]
    fn a_target_files_slurm_table_fills_what_no_flag_gave() {
        let from_flags = SlurmSettings {
            sbatch: ClusterSettings {
                partition: Some("short".into()),
                options: vec!["--qos=high".into()],
                ..ClusterSettings::default()
            },
            poll_seconds: None,
        };
        let cluster: ClusterSettings = toml::from_str(
            "partition = \"gpu\"\ngres = \"gpu:1\"\ncpus = 4\noptions = [\"--account=lab\"]\n",
        )
        .unwrap();
        let merged = from_flags.or_from(&cluster);
        assert_eq!(
            merged.sbatch.partition.as_deref(),
            Some("short"),
            "a flag wins"
        );
        assert_eq!(merged.sbatch.gres.as_deref(), Some("gpu:1"));
        assert_eq!(merged.sbatch.cpus, Some(4));
        assert_eq!(merged.sbatch.options, ["--account=lab", "--qos=high"]);
        merged.validate().unwrap();
        let bad = SlurmSettings {
            sbatch: ClusterSettings {
                time: Some("1 hour".into()),
                ..ClusterSettings::default()
            },
            poll_seconds: None,
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("--slurm-time `1 hour`")
        );
    }
}
