//! `hwnas bench` end to end on a small generated table: the files it writes and the
//! fields of summary.json that scripts rely on.

use hwnas_tests::{hwnas, stderr_text, stdout_text};
use serde_json::Value;

fn write_table(path: &std::path::Path) {
    hwnas_testkit::write_nb201_table(path, "toy", "toyphone", |cell| {
        let val = 60.0 + 5.0 * cell.count(3) + ((cell.index * 31) % 97) as f64 / 97.0;
        (val, val + 1.0, 1.0 + cell.count(3))
    });
}

#[test]
fn bench_writes_summary_runs_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("toy.csv");
    write_table(&table);
    let out = dir.path().join("out");
    let output = hwnas(&[
        "bench",
        "--space",
        "nb201",
        "--table",
        table.to_str().unwrap(),
        "--dataset",
        "toy",
        "--strategies",
        "random,rea,reinforce",
        "--seeds",
        "4",
        "--queries",
        "120",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let printed: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(printed, summary);
    let rows = summary.as_array().unwrap();
    for strategy in ["random", "rea", "reinforce"] {
        for queries in [10, 100, 120] {
            let row = rows
                .iter()
                .find(|r| r["strategy"] == strategy && r["queries"] == queries)
                .unwrap_or_else(|| panic!("row {strategy} at {queries}"));
            assert_eq!(row["dataset"], "toy");
            assert_eq!(row["seeds"], 4);
            assert!(row["mean_test"].as_f64().unwrap() > 60.0);
            assert!(row["std_test"].as_f64().unwrap() >= 0.0);
            let hit = row["hit_rate"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&hit));
            assert!(
                row["median_queries_to_best"].is_null()
                    || row["median_queries_to_best"].is_number()
            );
        }
    }
    let runs = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    assert_eq!(runs.lines().count(), 3 * 4 * 120);
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("rea"));
    assert!(out.join("summary.csv").is_file());
}

#[test]
fn bench_refuses_bad_flags_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("toy.csv");
    write_table(&table);
    let out = dir.path().join("out");
    let output = hwnas(&[
        "bench",
        "--table",
        table.to_str().unwrap(),
        "--dataset",
        "cifar100",
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains("cifar100_val_12ep") && stderr.contains("toy"),
        "{stderr}"
    );

    let output = hwnas(&[
        "bench",
        "--table",
        table.to_str().unwrap(),
        "--dataset",
        "toy",
        "--strategies",
        "annealing",
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains("annealing") && stderr.contains("random, rea, evolution, reinforce"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));

    let output = hwnas(&[
        "bench",
        "--table",
        table.to_str().unwrap(),
        "--dataset",
        "toy",
        "--queries",
        "50",
        "--batch",
        "0",
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains("batch") && stderr.contains("1 to --queries (50)"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn bench_in_rounds_answers_every_query_once() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("toy.csv");
    write_table(&table);
    let out = dir.path().join("out");
    let output = hwnas(&[
        "bench",
        "--space",
        "nb201",
        "--table",
        table.to_str().unwrap(),
        "--dataset",
        "toy",
        "--strategies",
        "l2nas,ganas,rea",
        "--seeds",
        "2",
        "--queries",
        "60",
        "--batch",
        "25",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let runs = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let lines: Vec<Value> = runs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3 * 2 * 60);
    for strategy in ["l2nas", "ganas", "rea"] {
        for seed in 0..2u64 {
            let archs: std::collections::HashSet<&str> = lines
                .iter()
                .filter(|l| l["strategy"] == strategy && l["seed"] == seed)
                .map(|l| l["arch_text"].as_str().unwrap())
                .collect();
            assert_eq!(archs.len(), 60, "{strategy} seed {seed}");
        }
    }
}
