//! `hwnas export`, `hwnas profile --json` and `hwnas lut build|eval --json` end to end on
//! this machine's ONNX Runtime.

use hwnas_tests::{hwnas, stderr_text, stdout_text};
use serde_json::Value;

#[test]
fn export_then_profile_prints_the_documented_json() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("cell.onnx");
    let output = hwnas(&[
        "export", "--space", "nb201", "--arch",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        "-o", model.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let output = hwnas(&[
        "profile",
        model.to_str().unwrap(),
        "--json",
        "--runs",
        "20",
        "--warmup",
        "3",
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    let median = json["median_ms"].as_f64().unwrap();
    assert!(median > 0.0);
    assert!(
        json["p10_ms"].as_f64().unwrap() <= median && median <= json["p90_ms"].as_f64().unwrap()
    );
    assert!(json["mean_ms"].as_f64().unwrap() > 0.0 && json["std_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(json["runs"], 20);
    let fingerprint = &json["fingerprint"];
    assert!(
        fingerprint["ort_version"]
            .as_str()
            .unwrap()
            .starts_with("1.31.")
    );
    assert_eq!(fingerprint["execution_provider"], "CPUExecutionProvider");
    assert_eq!(fingerprint["threads"], 1);

    let output = hwnas(&["profile", dir.path().join("missing.onnx").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr_text(&output).contains("missing.onnx"));
}

#[test]
fn a_small_lookup_table_builds_resumes_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let lut = dir.path().join("lut.json");
    let build = |extra: &[&str]| {
        let mut args = vec![
            "lut",
            "build",
            "--resolutions",
            "128",
            "--calibration",
            "4",
            "--runs",
            "5",
            "--warmup",
            "2",
            "-o",
            lut.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let output = hwnas(&args)
            .env("HWNAS_CACHE_DIR", dir.path().join("cache"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr_text(&output));
        stdout_text(&output)
    };
    let first = build(&[]);
    assert!(first.contains("93 layers"), "{first}");
    // A second build finds everything measured.
    let again = build(&[]);
    assert!(again.contains("93 layers"), "{again}");
    let output = hwnas(&[
        "lut",
        "eval",
        "--lut",
        lut.to_str().unwrap(),
        "--samples",
        "3",
        "--json",
    ])
    .env("HWNAS_CACHE_DIR", dir.path().join("cache"))
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(json["samples"], 3);
    for key in ["rmse_ms", "mape", "within_5pct", "within_10pct"] {
        assert!(json[key].as_f64().is_some(), "{key}");
    }
    assert!((0.0..=1.0).contains(&json["within_10pct"].as_f64().unwrap()));
}
