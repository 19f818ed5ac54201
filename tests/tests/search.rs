//! `hwnas search` end to end: the JSON scripts read, the run directory, and a run killed
//! with SIGKILL and resumed giving the same answer as an uninterrupted run.

use std::path::Path;
use std::time::{Duration, Instant};

use hwnas_tests::{
    TINY_SUPERNET, assert_refused, fashion_mnist, hwnas, nb201_table, ofa_files, stderr_text,
    stdout_text,
};
use serde_json::Value;

/// The Once-for-All search the run-directory tests share: the Note10 table, 30 ms, 150
/// queries, seed 3, JSON.
const NOTE10_SEARCH: [&str; 10] = [
    "search",
    "--target",
    "table:note10",
    "--latency-ms",
    "30",
    "--budget",
    "150",
    "--seed",
    "3",
    "--json",
];

fn search_json(out: &Path, extra: &[&str]) -> Value {
    let mut args = NOTE10_SEARCH.to_vec();
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let output = hwnas(&args).output().unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    serde_json::from_str(&stdout_text(&output)).unwrap()
}

#[test]
fn search_prints_the_json_and_writes_the_run_directory() {
    if ofa_files().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let json = search_json(&out, &[]);
    assert_eq!(json["space"], "ofa-mbv3");
    assert_eq!(json["strategy"], "rea");
    assert_eq!(json["latency_budget_ms"], 30.0);
    assert!(json["latency_ms"].as_f64().unwrap() <= 30.0);
    let accuracy = json["accuracy_estimate"].as_f64().unwrap();
    assert!((75.0..85.0).contains(&accuracy), "{accuracy}");
    let arch = json["arch"].as_str().unwrap();
    assert!(arch.contains("\"ks\""), "{arch}");
    assert_eq!(json["onnx"], out.join("best.onnx").display().to_string());
    for file in [
        "manifest.json",
        "history.jsonl",
        "pareto.csv",
        "pareto.svg",
        "best.onnx",
        "report.md",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["latency_budget_ms"], 30.0);
    assert_eq!(manifest["seed"], 3);
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 150);

    // The same directory again is refused with the fix.
    let output = hwnas(&[
        "search",
        "--target",
        "table:note10",
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_refused(&output, &["--resume"]);
    // Flags beside --resume: another value than the run's is refused by name, the same
    // value is accepted.
    let resume = |extra: &[&str]| {
        let mut args = vec!["search", "--resume", out.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        hwnas(&args).output().unwrap()
    };
    let output = resume(&["--budget", "900"]);
    assert_refused(&output, &["--budget 900 (the run has 150)"]);
    let output = resume(&["--seed", "3"]);
    assert!(output.status.success(), "{}", stderr_text(&output));
}

#[test]
fn a_killed_search_resumes_to_the_uninterrupted_answer() {
    if ofa_files().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let expected = search_json(&whole, &[]);

    let killed = dir.path().join("killed");
    let mut args = NOTE10_SEARCH.to_vec();
    args.extend(["--out", killed.to_str().unwrap(), "--throttle-ms", "20"]);
    let mut child = hwnas(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let history = killed.join("history.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&history).map_or(0, |h| h.lines().count()) < 40 {
        assert!(Instant::now() < deadline, "the search never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let lines_at_kill = std::fs::read_to_string(&history).unwrap().lines().count();
    assert!(
        lines_at_kill < 150,
        "killed mid-run ({lines_at_kill} lines)"
    );

    let output = hwnas(&["search", "--resume", killed.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let resumed: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    for key in [
        "arch",
        "latency_ms",
        "accuracy_estimate",
        "latency_budget_ms",
        "queries",
    ] {
        assert_eq!(resumed[key], expected[key], "{key}");
    }
    let strip = |text: String| -> Vec<Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let a = strip(std::fs::read_to_string(whole.join("history.jsonl")).unwrap());
    let b = strip(std::fs::read_to_string(&history).unwrap());
    assert_eq!(a, b, "the resumed history equals the uninterrupted one");
}

#[test]
fn search_on_nb201_with_a_device_table_meets_the_budget() {
    let Some(table) = nb201_table() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = hwnas(&[
        "search",
        "--space",
        "nb201",
        "--target",
        "table:raspi4",
        "--latency-ms",
        "40",
        "--budget",
        "200",
        "--table",
        table.to_str().unwrap(),
        "--json",
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert!(json["latency_ms"].as_f64().unwrap() <= 40.0);
    assert!(json["arch"].as_str().unwrap().starts_with('|'));
    assert!(json["accuracy_estimate"].as_f64().unwrap() > 80.0);
}

#[test]
fn bad_search_flags_name_the_flag_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cases: [(&[&str], &str); 4] = [
        (&["--strategy", "annealing"], "annealing"),
        (&["--latency-ms=-3"], "--latency-ms"),
        (&["--evaluator", "oracle"], "--evaluator oracle"),
        (
            &["--target", "table:pixel9000", "--space", "ofa-mbv3"],
            "table:note10",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["search", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let output = hwnas(&args).output().unwrap();
        assert!(!output.status.success(), "{extra:?}");
        let stderr = stderr_text(&output);
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let output = hwnas(&[
        "search",
        "--resume",
        dir.path().join("nothing").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(stderr_text(&output).contains("manifest.json"));
}

#[test]
fn proxies_report_rank_correlations() {
    let Some(table) = nb201_table() else {
        return;
    };
    let output = hwnas(&[
        "proxies",
        "--samples",
        "6",
        "--batch",
        "4",
        "--table",
        table.to_str().unwrap(),
        "--json",
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    // `{"samples", "proxies": {NAME: {"spearman_test", "kendall_test"}}, "seconds"}`.
    assert_eq!(json["samples"], 6);
    assert!(json["seconds"].as_f64().unwrap() > 0.0);
    let proxies = json["proxies"].as_object().unwrap();
    for name in [
        "synflow",
        "naswot",
        "grad_norm",
        "snip",
        "params",
        "synflow_periodic",
        "combined",
    ] {
        let c = &proxies[name];
        for key in ["spearman_test", "kendall_test"] {
            let rho = c[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{name} {key}: {c}"));
            assert!((-1.0..=1.0).contains(&rho), "{name}: {c}");
        }
    }
    let agreement = json["periodic_vs_zero_padded"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&agreement), "{agreement}");
    // The whole-space search alone: every cell by synflow's closed form.
    let output = hwnas(&[
        "proxies",
        "--samples",
        "0",
        "--whole-space",
        "--table",
        table.to_str().unwrap(),
        "--json",
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(json["samples"], 0);
    let whole = &json["whole_space"];
    assert_eq!(whole["cells"], 15_625, "{whole}");
    assert_eq!(whole["proxy"], "synflow_periodic", "{whole}");
    // Synflow grows with every parameterised path: the all-3x3 cell is its first choice.
    assert_eq!(
        whole["arch"],
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "{whole}"
    );
    assert!(whole["test_accuracy"].as_f64().is_some(), "{whole}");
    let rho = whole["spearman_test"].as_f64().unwrap();
    assert!(rho > 0.0 && rho <= 1.0, "{whole}");
    // NASLib's published scores for the same cells: each proxy is compared with its own.
    let dir = tempfile::tempdir().unwrap();
    let naslib = dir.path().join("naslib.csv");
    let cells = [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
        "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_3x3~0|none~1|nor_conv_1x1~2|",
    ];
    let mut text = String::from("dataset,arch_str,synflow,nwot,grad_norm,snip,params\n");
    for (i, cell) in cells.iter().enumerate() {
        let v = (4 - i) as f64;
        text.push_str(&format!("cifar10,{cell},{v},{v},{v},{v},{v}\n"));
    }
    std::fs::write(&naslib, text).unwrap();
    let output = hwnas(&[
        "proxies",
        "--batch",
        "4",
        "--table",
        table.to_str().unwrap(),
        "--compare",
        naslib.to_str().unwrap(),
        "--json",
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(json["samples"], 4);
    let synflow = &json["proxies"]["synflow"];
    assert!(
        synflow["spearman_with_naslib"].as_f64().is_some(),
        "{synflow}"
    );
    assert!(
        synflow["naslib_spearman_test"].as_f64().is_some(),
        "{synflow}"
    );
}

#[test]
fn a_one_shot_search_trains_the_supernet_and_answers_with_a_cell() {
    // Latency from the table's pixel3 column; images from Fashion-MNIST.
    if !fashion_mnist() || nb201_table().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = hwnas(&[
        "search",
        "--space",
        "nb201",
        "--strategy",
        "advantagenas",
        "--evaluator",
        "supernet",
        "--data",
        "fashion-mnist",
        "--epochs",
        "1",
        "--train-images",
        "256",
        "--eval-images",
        "64",
        "--batch-size",
        "32",
        "--target",
        "table:pixel3",
        // Four steps learn nothing: any cell may answer, so any must be within budget.
        "--latency-ms",
        "1000",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stderr = stderr_text(&output);
    assert!(output.status.success(), "{stderr}");
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    let arch = json["arch"].as_str().unwrap();
    assert!(
        arch.starts_with('|') && arch.matches('~').count() == 6,
        "{arch}"
    );
    assert_eq!(json["steps"], 4);
    // The default recipe's last 30% of the steps (1 of 4) fine-tune the found cell; the
    // cell's accuracy before them is reported beside.
    assert_eq!(json["finetune_steps"], 1);
    let searched = json["searched_heldout_accuracy"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&searched), "{json}");
    assert!(json["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(json["table_test_accuracy"].as_f64().is_some());
    let accuracy = json["accuracy_estimate"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&accuracy));
    // The one-shot answer's held-out accuracy with inherited weights is named as such.
    assert_eq!(json["heldout_accuracy"].as_f64(), Some(accuracy));
    for file in [
        "checkpoint.bin",
        "trace.jsonl",
        "report.md",
        "best.onnx",
        "best-inherited.onnx",
        "manifest.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    // The inherited-weight network takes the images' shape and answers per class.
    let inherited = out.join("best-inherited.onnx");
    assert_eq!(json["inherited_onnx"], inherited.display().to_string());
    let model = std::fs::read(&inherited).unwrap();
    let mut runner = hwnas_latency::profile::ModelRunner::new(&model, 1, true).unwrap();
    assert_eq!(runner.input_shape(), &[1, 1, 28, 28]);
    let logits = runner.run().unwrap();
    assert_eq!(logits.len(), 10);
    assert!(logits.iter().all(|v| v.is_finite()));
    // `hwnas eval` scores it on Fashion-MNIST's test images, raw: its normalisation is
    // inside. Four steps learn little, but a broken normalisation would answer one class.
    let output = hwnas(&[
        "eval",
        inherited.to_str().unwrap(),
        "--data",
        "fashion-mnist",
        "--limit",
        "200",
        "--json",
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let eval: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(eval["images"], 200);
    assert_eq!(eval["split"], "test");
    let accuracy = eval["accuracy"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&accuracy), "{eval}");
    // `hwnas train --from` the run starts the found cell from the weights it inherits.
    let trained = dir.path().join("trained-from");
    let output = train_briefly(&trained, &["--arch", arch, "--from", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(json["from"], out.display().to_string());
    assert!(trained.join("trained.onnx").is_file());
    // A folder without a supernet checkpoint is refused, naming it.
    let output = hwnas(&[
        "train",
        "--arch",
        arch,
        "--from",
        trained.to_str().unwrap(),
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_refused(&output, &["checkpoint.bin"]);
    // Images of another shape are refused, naming both shapes.
    let cifar = dir.path().join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    std::fs::write(cifar.join("test_batch.bin"), vec![1u8; 3073 * 2]).unwrap();
    let output = hwnas(&[
        "eval",
        inherited.to_str().unwrap(),
        "--data",
        &format!("cifar:{}", cifar.display()),
    ])
    .output()
    .unwrap();
    assert_refused(&output, &["[1, 1, 28, 28]", "3x32x32"]);
    // A wrong strategy name for a one-shot search is refused with the allowed names.
    let output = hwnas(&[
        "search",
        "--space",
        "nb201",
        "--strategy",
        "rea",
        "--evaluator",
        "supernet",
        "--out",
        dir.path().join("other").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_refused(&output, &["advantagenas"]);
}

/// `hwnas train` for one epoch of 256 images into `out`, with `args` (`--arch` and more).
fn train_briefly(out: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "train",
        "--epochs",
        "1",
        "--train-images",
        "256",
        "--eval-images",
        "64",
        "--batch-size",
        "32",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    all.extend_from_slice(args);
    hwnas(&all).output().unwrap()
}

#[test]
fn a_trained_architecture_ships_as_onnx_that_scores_what_the_report_says() {
    if !fashion_mnist() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trained");
    let cell = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|skip_connect~1|nor_conv_1x1~2|";
    let train = |out: &std::path::Path, arch: &str, space: &str| {
        train_briefly(out, &["--arch", arch, "--space", space])
    };
    let output = train(&out, cell, "nb201");
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(json["arch"], cell);
    assert_eq!(json["test_images"], 10000);
    let heldout = json["heldout_accuracy"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&heldout), "{json}");
    assert!(out.join("report.md").is_file());
    // The written file scores in `hwnas eval` exactly what the report says.
    let onnx = out.join("trained.onnx");
    let output = hwnas(&["eval", onnx.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let eval: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(eval["accuracy"], json["test_accuracy"]);
    // Nothing is overwritten; a bad cell and the DARTS space are refused by name.
    let again = train(&out, cell, "nb201");
    assert_refused(&again, &["already exists"]);
    let bad = train(&dir.path().join("bad"), "|conv_9x9~0|", "nb201");
    assert_refused(&bad, &["conv_9x9"]);
    let darts = train(&dir.path().join("darts"), "x", "darts");
    assert_refused(&darts, &["DARTS"]);
}

#[test]
fn a_darts_space_one_shot_search_answers_with_a_genotype_measured_on_this_machine() {
    if !fashion_mnist() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // Two steps of GDAS on 128 images, within `budget` ms.
    let search = |out: &Path, budget: &str| {
        let mut args = vec![
            "search",
            "--space",
            "darts",
            "--strategy",
            "gdas",
            "--evaluator",
            "supernet",
        ];
        args.extend(TINY_SUPERNET);
        // The latency term's table would measure 48 genotypes first (36 s here): this test
        // is about the answer, not the term.
        args.extend([
            "--latency-weight",
            "0",
            "--latency-ms",
            budget,
            "--json",
            "--out",
            out.to_str().unwrap(),
        ]);
        hwnas(&args).output().unwrap()
    };
    // Two steps learn nothing: any genotype may answer, so any must be within budget.
    let output = search(&out, "1000");
    let stderr = stderr_text(&output);
    assert!(output.status.success(), "{stderr}");
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    let arch = json["arch"].as_str().unwrap();
    use hwnas_core::SearchSpace;
    let parsed = hwnas_core::space::DartsSpace::new().parse(arch).unwrap();
    assert_eq!(parsed.0.len(), 24, "{arch}");
    assert!(!arch.contains("'none'"), "DARTS never picks none: {arch}");
    assert_eq!(json["space"], "darts");
    assert_eq!(json["steps"], 2);
    assert_eq!(json["measured"], true);
    assert!(json["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(json["supernet"].as_str().unwrap().starts_with("DARTS"));
    assert!(out.join("best.onnx").is_file());
    // One outcome rule for every search: an answer over the budget is written and
    // printed, and the command fails saying so.
    let over = dir.path().join("over");
    let output = search(&over, "0.001");
    assert_refused(&output, &["over the 0.001 ms budget"]);
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(json["within_budget"], false);
    let report = std::fs::read_to_string(over.join("report.md")).unwrap();
    assert!(report.contains("Not within budget"), "{report}");
    // A table target has no DARTS table.
    let other = dir.path().join("refused");
    let output = hwnas(&[
        "search",
        "--space",
        "darts",
        "--evaluator",
        "supernet",
        "--strategy",
        "gdas",
        "--target",
        "table:pixel3",
        "--out",
        other.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_refused(&output, &["no published latency table"]);
}

#[test]
fn an_ofa_search_trains_the_supernet_once_then_searches_it_and_resumes() {
    if !fashion_mnist() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = |budget: &'static str| {
        let mut args = vec![
            "search",
            "--space",
            "ofa-mbv3",
            "--evaluator",
            "supernet",
            "--strategy",
            "rea",
        ];
        args.extend(TINY_SUPERNET);
        // Three random subnets: any of them may answer.
        args.extend(["--budget", budget, "--latency-ms", "1000", "--json"]);
        args
    };
    let mut first = args("3");
    first.extend(["--out", out.to_str().unwrap()]);
    let output = hwnas(&first).output().unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(json["space"], "ofa-mbv3");
    assert_eq!(json["queries"], 3);
    assert_eq!(json["measured"], true);
    let arch = json["arch"].as_str().unwrap();
    let config = hwnas_core::space::ofa::parse_config(arch).unwrap();
    assert_eq!(config.r, 28, "measured at the images' resolution: {arch}");
    // The answer ships with the weights it inherits, at the supernet's width.
    let inherited = out.join("best-inherited.onnx");
    assert_eq!(json["inherited_onnx"], inherited.display().to_string());
    let model = std::fs::read(&inherited).unwrap();
    let mut runner = hwnas_latency::profile::ModelRunner::new(&model, 1, true).unwrap();
    assert_eq!(runner.input_shape(), &[1, 1, 28, 28]);
    assert_eq!(runner.run().unwrap().len(), 10);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("best-inherited.onnx"), "{report}");
    // Four steps of 32 over the 128 search images; the trace follows the largest subnet.
    let trace = std::fs::read_to_string(out.join("trace.jsonl")).unwrap();
    let last: Value = serde_json::from_str(trace.lines().last().unwrap()).unwrap();
    assert_eq!(last["step"], 4);
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 3);
    for line in history.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let accuracy = record["accuracy"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&accuracy), "{line}");
    }
    // A resumed run keeps the trained supernet (no new steps) and the history.
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["evaluator"], "supernet:ofa-mbv3");
    let output = hwnas(&["search", "--resume", out.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let trace_after = std::fs::read_to_string(out.join("trace.jsonl")).unwrap();
    assert_eq!(trace_after, trace, "no supernet step is repeated");
    // Mixed-op strategies cannot drive it; other targets than this machine are refused.
    for (extra, expected) in [
        (["--strategy", "gdas"], "give a sampling strategy"),
        (["--target", "table:note10"], "--target host"),
    ] {
        let mut refused = args("3");
        refused.retain(|a| *a != "rea" && *a != "--strategy");
        if extra[0] != "--strategy" {
            refused.extend(["--strategy", "rea"]);
        }
        refused.extend(extra);
        let other = dir.path().join(extra[1].replace(':', "-"));
        refused.extend(["--out", other.to_str().unwrap()]);
        let output = hwnas(&refused).output().unwrap();
        assert!(!output.status.success(), "{extra:?}");
        let stderr = stderr_text(&output);
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
    }
}

#[test]
fn a_one_shot_search_runs_its_supernet_on_the_wgsl_kernels() {
    if !fashion_mnist() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = vec![
        "search",
        "--space",
        "nb201",
        "--strategy",
        "gdas",
        "--evaluator",
        "supernet",
        "--backend",
        "wgpu",
    ];
    args.extend(TINY_SUPERNET);
    args.extend([
        "--latency-weight",
        "0",
        "--latency-ms",
        "1000",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let output = hwnas(&args).output().unwrap();
    let stderr = stderr_text(&output);
    let adapter = if stderr.contains("no wgpu adapter") {
        Err(stderr.as_str())
    } else {
        Ok(())
    };
    if hwnas_testkit::require(hwnas_testkit::Resource::Gpu, "a wgpu adapter", adapter).is_none() {
        return;
    }
    assert!(output.status.success(), "{stderr}");
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert!(
        json["kernels"].as_str().unwrap().starts_with("wgpu:"),
        "{json}"
    );
    assert_eq!(json["steps"], 2);
    let accuracy = json["accuracy_estimate"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&accuracy));
    // An unknown backend is refused before anything runs.
    let output = hwnas(&[
        "search",
        "--space",
        "nb201",
        "--evaluator",
        "supernet",
        "--strategy",
        "gdas",
        "--backend",
        "tpu",
        "--out",
        dir.path().join("other").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    assert!(stderr_text(&output).contains("use cpu or wgpu"));
}

#[test]
fn a_search_killed_at_random_moments_many_times_ends_as_the_uninterrupted_one() {
    if ofa_files().is_none() {
        return;
    }
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let expected = search_json(&whole, &[]);
    let run = dir.path().join("killed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut kills = 0;
    let mut args = NOTE10_SEARCH.to_vec();
    args.extend(["--throttle-ms", "4", "--out", run.to_str().unwrap()]);
    let mut lines_at_kill = Vec::new();
    let history_lines = || {
        std::fs::read_to_string(run.join("history.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let mut attempts = 0;
    let final_output = loop {
        attempts += 1;
        assert!(
            attempts <= 40,
            "40 attempts landed only {kills} kills at {lines_at_kill:?} history lines"
        );
        let mut child = hwnas(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if kills == 6 {
            break child.wait_with_output().unwrap();
        }
        // A random moment: every other kill at a random time (before the manifest, while
        // starting up), the rest a few records further into the history than the last kill,
        // so kills land mid-history however fast this machine starts a search.
        if kills % 2 == 0 {
            std::thread::sleep(Duration::from_millis(rng.random_range(5..150)));
        } else {
            let target = history_lines() + rng.random_range(1..=20);
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while history_lines() < target
                && child.try_wait().unwrap().is_none()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
            lines_at_kill.push(history_lines());
        }
        child.wait().unwrap();
        // Every later attempt continues the run (or starts it, if it never got going).
        if run.join("manifest.json").exists() {
            args = vec![
                "search",
                "--resume",
                run.to_str().unwrap(),
                "--json",
                "--throttle-ms",
                "4",
            ];
        }
    };
    println!("killed at {lines_at_kill:?} history lines");
    assert!(
        lines_at_kill.iter().any(|&l| l > 0 && l < 150),
        "some kill must land mid-history: {lines_at_kill:?}"
    );
    assert_eq!(kills, 6);
    assert!(
        final_output.status.success(),
        "{}",
        stderr_text(&final_output)
    );
    let resumed: Value = serde_json::from_str(&stdout_text(&final_output)).unwrap();
    assert_eq!(resumed["arch"], expected["arch"]);
    assert_eq!(resumed["queries"], expected["queries"]);
    assert_eq!(
        std::fs::read_to_string(run.join("history.jsonl")).unwrap(),
        std::fs::read_to_string(whole.join("history.jsonl")).unwrap(),
        "after {kills} kills the history is the uninterrupted one, line for line"
    );
}

/// `--strategy radars` needs `--memory-mib`, and searches the DARTS space within it: every
/// step of the search (single paths while the controller prunes) holds at most the budget,
/// here half of what plain DARTS's dense step holds; the outcome says what was pruned.
#[test]
fn radars_searches_the_darts_space_within_a_memory_budget_plain_darts_exceeds() {
    if !fashion_mnist() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let search = |strategy: &str, out: &str, memory: Option<&str>| {
        let out = dir.path().join(out);
        let mut args = vec![
            "search",
            "--space",
            "darts",
            "--evaluator",
            "supernet",
            "--strategy",
            strategy,
        ];
        args.extend(TINY_SUPERNET);
        args.extend(["--latency-weight", "0", "--latency-ms", "1000", "--json"]);
        // Both steps architecture steps: no weights-only warm-up, no fine-tuning.
        args.extend(["--warmup-share", "0", "--finetune-share", "0"]);
        args.extend(["--out", out.to_str().unwrap()]);
        if let Some(m) = memory {
            args.extend(["--memory-mib", m]);
        }
        hwnas(&args).output().unwrap()
    };
    let output = search("darts", "darts", None);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    let dense = json["peak_step_mib"].as_f64().unwrap();
    assert!(dense > 0.0, "{json}");
    let budget = format!("{:.3}", dense / 2.0);
    let output = search("radars", "radars", Some(&budget));
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    let peak = json["peak_step_mib"].as_f64().unwrap();
    assert!(peak <= dense / 2.0, "peak {peak} MiB over {budget}");
    let notes = json["strategy_notes"][0].as_str().unwrap();
    assert!(
        notes.contains("RADARS: the dense step was estimated at") && notes.contains("candidates"),
        "{notes}"
    );
    let output = search("radars", "refused", None);
    assert_refused(&output, &["--memory-mib"]);
}
