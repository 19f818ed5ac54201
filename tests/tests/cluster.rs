//! `--evaluator train` through both executors: the same seeded search trained on this
//! machine (two jobs at a time) and through a Slurm cluster (the project's one-node one)
//! writes the same history and chooses the same architecture; a task cancelled with
//! `scancel` is resubmitted and the run completes; a search killed and resumed submits no
//! task that had finished.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hwnas_tests::{hwnas, nb201_table, slurm_conf, stderr_text, stdout_text};
use serde_json::Value;

/// Six NAS-Bench-201 cells in two batches of three, each trained for one epoch of 256
/// Fashion-MNIST images, regularized evolution learning between the batches.
fn search_args(out: &Path, table: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "search",
        "--space",
        "nb201",
        "--strategy",
        "rea",
        "--evaluator",
        "train",
        "--epochs",
        "1",
        "--train-images",
        "256",
        "--eval-images",
        "128",
        "--batch-size",
        "64",
        "--budget",
        "6",
        "--proposals",
        "3",
        "--target",
        "table:pixel3",
        "--latency-ms",
        "10",
        "--seed",
        "3",
        "--json",
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--table".into(), table.display().to_string()]);
    args.extend(["--out".into(), out.display().to_string()]);
    args
}

fn slurm_args(mut args: Vec<String>) -> Vec<String> {
    args.extend(["--executor", "slurm", "--slurm-poll", "0.2"].map(String::from));
    args
}

fn run(args: &[String], conf: &Path) -> Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = hwnas(&args).env("SLURM_CONF", conf).output().unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    serde_json::from_str(&stdout_text(&output)).unwrap()
}

fn history(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("history.jsonl")).unwrap()
}

/// The job arrays the run submitted: `(job, tasks)`.
fn jobs(dir: &Path) -> Vec<(String, Vec<u64>)> {
    let text = std::fs::read_to_string(dir.join("tasks/jobs.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let tasks = v["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap());
            (v["job"].as_str().unwrap().to_string(), tasks.collect())
        })
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_training_search_answers_alike_locally_and_through_slurm_through_cancels_and_kills() {
    let (Some(conf), Some(table)) = (slurm_conf(), nb201_table()) else {
        return;
    };
    if !hwnas_tests::fashion_mnist() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| -> PathBuf { tmp.path().join(name) };

    // 1. This machine, two candidates at a time: the reference.
    let mut local = search_args(&dir("local"), &table);
    local.extend(["--jobs".into(), "2".into()]);
    let reference = run(&local, &conf);
    let expected = history(&dir("local"));
    assert_eq!(expected.lines().count(), 6);

    // 2. Through Slurm, the first task cancelled as soon as its array is queued.
    let args = slurm_args(search_args(&dir("slurm"), &table));
    let child = hwnas(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .env("SLURM_CONF", &conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first job array", Duration::from_secs(60), || {
        !jobs(&dir("slurm")).is_empty()
    });
    let (job, tasks) = jobs(&dir("slurm"))[0].clone();
    // Array index 0 runs the array's first task.
    let cancelled = format!("{job}_0");
    let scancel = Command::new("scancel")
        .arg(&cancelled)
        .env("SLURM_CONF", &conf)
        .status();
    assert!(scancel.unwrap().success(), "scancel {cancelled}");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let outcome: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(
        history(&dir("slurm")),
        expected,
        "the same history through Slurm"
    );
    assert_eq!(outcome["arch"], reference["arch"]);
    let submitted = jobs(&dir("slurm"));
    let times_task0 = submitted
        .iter()
        .filter(|(_, t)| t.contains(&tasks[0]))
        .count();
    let result = dir("slurm").join(format!("tasks/{:06}.result.json", tasks[0]));
    assert!(result.exists());
    println!(
        "task {} submitted {times_task0} time(s): {submitted:?}",
        tasks[0]
    );
    assert_eq!(
        times_task0, 2,
        "the cancelled task was resubmitted: {submitted:?}"
    );

    // 3. Killed once its second array is queued, then resumed: no task runs twice.
    let args = slurm_args(search_args(&dir("resumed"), &table));
    let mut child = hwnas(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .env("SLURM_CONF", &conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the second job array", Duration::from_secs(120), || {
        jobs(&dir("resumed")).len() >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let resume = slurm_args(vec![
        "search".into(),
        "--resume".into(),
        dir("resumed").display().to_string(),
        "--json".into(),
    ]);
    let resumed = run(&resume, &conf);
    assert_eq!(
        history(&dir("resumed")),
        expected,
        "the same history after a resume"
    );
    assert_eq!(resumed["arch"], reference["arch"]);
    let mut all: Vec<u64> = jobs(&dir("resumed"))
        .into_iter()
        .flat_map(|(_, t)| t)
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..6).collect::<Vec<_>>(), "every task submitted once");
}
