//! The search library in process, on a synthetic NAS-Bench-201 table with a device column:
//! a run writes its directory and outcome; a run stopped part-way and resumed gives the
//! uninterrupted run's history and answer; a budget nothing meets is an error naming it;
//! manifests of the earlier, unversioned schema still resume.

use std::path::Path;

use hwnas_search::{
    DataSource, Quiet, RunOptions, SearchPlan, SearchRequest, SpaceKind, StrategyKind, TargetSpec,
    run,
};

fn table(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("toy.csv");
    hwnas_testkit::write_nb201_table(&path, "toy", "toyphone", |cell| {
        let val =
            60.0 + 5.0 * cell.count(3) - 2.0 * cell.count(0) + (cell.index % 11) as f64 * 0.01;
        (val, val + 1.0, 1.0 + 2.0 * cell.count(3) + cell.count(2))
    });
    path
}

fn plan(table: &Path, out: &Path, strategy: StrategyKind) -> SearchPlan {
    SearchPlan {
        space: SpaceKind::Nb201,
        strategy,
        evaluator: None,
        target: TargetSpec::Table("toyphone".into()),
        latency_ms: Some(7.0),
        budget: Some(60),
        seed: 5,
        out: out.to_path_buf(),
        table: Some(table.to_path_buf()),
        dataset: "toy".into(),
        ofa_dir: None,
        data: DataSource::FashionMnist,
        epochs: 4,
        train_images: 8000,
        eval_images: 1000,
        channels: None,
        cells: None,
        backend: hwnas_search::BackendKind::Cpu,
        batch_size: 64,
        image_size: 32,
        finalists: 5,
        protocol: hwnas_search::ProtocolSettings::default(),
        proposals: None,
        latency_weight: None,
        memory_mib: None,
        augment: false,
        warmup_share: None,
        finetune_share: None,
    }
}

fn new_run(plan: &SearchPlan) -> hwnas_search::Outcome {
    run(
        &SearchRequest::New(Box::new(plan.clone())),
        &RunOptions::default(),
        &Quiet,
    )
    .unwrap()
}

#[test]
fn a_table_search_writes_its_run_and_an_outcome_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let out = dir.path().join("run");
    let outcome = new_run(&plan(&table, &out, StrategyKind::Rea));
    assert!(outcome.within_budget, "{outcome:?}");
    assert!(outcome.latency_ms <= 7.0);
    assert_eq!(outcome.queries, 60);
    assert!(!outcome.measured);
    assert_eq!(outcome.space, "nb201");
    for file in [
        "manifest.json",
        "history.jsonl",
        "best.onnx",
        "report.md",
        "pareto.csv",
        "pareto.svg",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["schema"], hwnas_search::MANIFEST_SCHEMA);
    assert_eq!(manifest["plan"]["target"], "table:toyphone");
    // The same directory again is refused, naming the fix.
    let again = run(
        &SearchRequest::New(Box::new(plan(&table, &out, StrategyKind::Rea))),
        &RunOptions::default(),
        &Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(again.contains("--resume"), "{again}");
}

#[test]
fn a_run_cut_short_resumes_to_the_uninterrupted_history_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    for strategy in [StrategyKind::Rea, StrategyKind::Reinforce] {
        let whole = dir.path().join(format!("whole-{strategy}"));
        let expected = new_run(&plan(&table, &whole, strategy));
        // A run "killed" after 23 records, its last line torn in half.
        let cut = dir.path().join(format!("cut-{strategy}"));
        std::fs::create_dir_all(&cut).unwrap();
        std::fs::copy(whole.join("manifest.json"), cut.join("manifest.json")).unwrap();
        let history = std::fs::read_to_string(whole.join("history.jsonl")).unwrap();
        let mut partial: String = history.lines().take(23).map(|l| format!("{l}\n")).collect();
        let torn = history.lines().nth(23).unwrap();
        partial.push_str(&torn[..torn.len() / 2]);
        std::fs::write(cut.join("history.jsonl"), partial).unwrap();
        let resumed = run(
            &SearchRequest::resume(cut.clone()),
            &RunOptions::default(),
            &Quiet,
        )
        .unwrap();
        assert_eq!(resumed.arch, expected.arch, "{strategy}");
        assert_eq!(resumed.queries, expected.queries);
        assert_eq!(resumed.run_dir, cut.display().to_string());
        assert_eq!(
            std::fs::read_to_string(cut.join("history.jsonl")).unwrap(),
            history,
            "{strategy}: the resumed history is the uninterrupted one, line for line"
        );
    }
}

#[test]
fn no_feasible_architecture_is_an_error_naming_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    // No cell of the table is as fast as 0.5 ms: nothing is feasible, no answer.
    let mut p = plan(&table, &dir.path().join("none"), StrategyKind::Random);
    p.latency_ms = Some(0.5);
    let error = run(
        &SearchRequest::New(Box::new(p)),
        &RunOptions::default(),
        &Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("no architecture met the 0.500 ms budget"),
        "{error}"
    );
}

#[test]
fn a_manifest_of_the_unversioned_schema_still_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let whole = dir.path().join("whole");
    let expected = new_run(&plan(&table, &whole, StrategyKind::Rea));
    // The earlier manifest: no schema, the settings under `settings` with the flags' names.
    let old = dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("manifest.json")).unwrap())
            .unwrap();
    let object = manifest.as_object_mut().unwrap();
    object.remove("schema");
    let settings = object.remove("plan").unwrap();
    object.insert("settings".into(), settings);
    std::fs::write(old.join("manifest.json"), manifest.to_string()).unwrap();
    let resumed = run(&SearchRequest::resume(old), &RunOptions::default(), &Quiet).unwrap();
    assert_eq!(resumed.arch, expected.arch);
}

#[test]
fn a_resume_refuses_changed_settings_and_another_run_s_history() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let whole = dir.path().join("whole");
    let p = plan(&table, &whole, StrategyKind::Rea);
    new_run(&p);
    // Flags given beside --resume: the same value is fine, another is refused by name.
    let mut changed = p.clone();
    changed.budget = Some(90);
    changed.seed = 5;
    let request = |given: &[&str], values: &SearchPlan| SearchRequest::Resume {
        dir: whole.clone(),
        given: given.iter().map(|g| g.to_string()).collect(),
        values: Some(Box::new(values.clone())),
    };
    let error = run(
        &request(&["budget", "seed"], &changed),
        &RunOptions::default(),
        &Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("--budget 90 (the run has 60)"), "{error}");
    assert!(!error.contains("--seed"), "{error}");
    run(
        &request(&["seed"], &changed),
        &RunOptions::default(),
        &Quiet,
    )
    .unwrap();
    // A history of another space (a Once-for-All record) under this run's manifest.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    std::fs::copy(whole.join("manifest.json"), mixed.join("manifest.json")).unwrap();
    let line = std::fs::read_to_string(whole.join("history.jsonl"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .replace("\"arch_text\":\"|", "\"arch_text\":\"{\\\"ks\\\": [3]}|");
    std::fs::write(mixed.join("history.jsonl"), format!("{line}\n")).unwrap();
    let error = run(
        &SearchRequest::resume(mixed),
        &RunOptions::default(),
        &Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("belongs to another run"), "{error}");
}

#[test]
fn a_run_stopped_before_its_first_evaluation_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let whole = dir.path().join("whole");
    let expected = new_run(&plan(&table, &whole, StrategyKind::Rea));
    // What a run killed while building its world leaves: the plan-only manifest.
    let early = dir.path().join("early");
    std::fs::create_dir_all(&early).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("manifest.json")).unwrap())
            .unwrap();
    for key in [
        "evaluator",
        "latency_model",
        "latency_budget_ms",
        "budget_origin",
    ] {
        manifest.as_object_mut().unwrap().remove(key);
    }
    std::fs::write(early.join("manifest.json"), manifest.to_string()).unwrap();
    let resumed = run(
        &SearchRequest::resume(early.clone()),
        &RunOptions::default(),
        &Quiet,
    )
    .unwrap();
    assert_eq!(resumed.arch, expected.arch);
    let rewritten = std::fs::read_to_string(early.join("manifest.json")).unwrap();
    assert!(rewritten.contains("latency_budget_ms"), "{rewritten}");
}

#[test]
fn a_run_whose_world_could_not_be_built_is_replaced_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let out = dir.path().join("run");
    // A table that is not there: the plan is written, the world cannot be built.
    let mut wrong = plan(&table, &out, StrategyKind::Rea);
    wrong.table = Some(dir.path().join("typo.csv"));
    let error = run(
        &SearchRequest::New(Box::new(wrong)),
        &RunOptions::default(),
        &Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("typo.csv"), "{error}");
    // The corrected command runs in the same directory.
    let outcome = new_run(&plan(&table, &out, StrategyKind::Rea));
    assert!(outcome.within_budget);
}

#[test]
fn a_resumed_run_keeps_the_budget_its_manifest_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let whole = dir.path().join("whole");
    new_run(&plan(&table, &whole, StrategyKind::Rea));
    let path = whole.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(manifest["latency_budget_ms"], 7.0);
    manifest["latency_budget_ms"] = serde_json::json!(9.5);
    std::fs::write(&path, manifest.to_string()).unwrap();
    // Replayed under another budget, its records are not proposed again: refused, by query.
    let replay = run(
        &SearchRequest::resume(whole.clone()),
        &RunOptions::default(),
        &Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(replay.contains("proposed another architecture"), "{replay}");
    std::fs::write(whole.join("history.jsonl"), "").unwrap();
    let resumed = run(
        &SearchRequest::resume(whole.clone()),
        &RunOptions::default(),
        &Quiet,
    )
    .unwrap();
    assert_eq!(
        resumed.latency_budget_ms, 9.5,
        "the recorded budget, not the plan's again"
    );
    // World facts that do not read are an error, not silently re-measured.
    manifest["latency_budget_ms"] = serde_json::json!("fast");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let error = run(
        &SearchRequest::resume(whole),
        &RunOptions::default(),
        &Quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("not an hwnas manifest"), "{error}");
}
