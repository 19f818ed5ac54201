//! `hwnas doctor` end to end: the JSON fields scripts rely on, and the error for a bad
//! ONNX Runtime library.

use hwnas_tests::{hwnas, stderr_text, stdout_text};
use serde_json::Value;

#[test]
fn doctor_json_reports_onnxruntime_adapters_and_cpu() {
    let output = hwnas(&["doctor", "--json"]).output().expect("hwnas runs");
    let stdout = stdout_text(&output);
    assert!(
        output.status.success(),
        "doctor failed:\n{stdout}\n{}",
        stderr_text(&output)
    );
    let report: Value = serde_json::from_str(&stdout).expect("doctor --json prints JSON");

    let ort = &report["onnxruntime"];
    let version = ort["version"].as_str().expect("onnxruntime.version");
    assert!(
        version.starts_with("1.31."),
        "pinned ORT 1.31.x, got {version}"
    );
    let path = ort["path"].as_str().expect("onnxruntime.path");
    assert!(std::path::Path::new(path).is_file(), "{path} exists");
    let providers = ort["providers"].as_array().expect("providers");
    assert!(
        providers.iter().any(|p| p == "CPUExecutionProvider"),
        "{providers:?}"
    );

    let adapters = report["adapters"].as_array().expect("adapters is an array");
    for adapter in adapters {
        for key in ["name", "backend", "device_type"] {
            assert!(adapter[key].is_string(), "adapter.{key} in {adapter}");
        }
    }
    if adapters.is_empty() {
        println!("note: no wgpu adapter on this machine; the adapter fields were not checked");
    }

    let cpu = &report["cpu"];
    assert!(cpu["model"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(cpu["cores"].as_u64().is_some_and(|n| n >= 1));
    assert!(report["memory_bytes"].as_u64().is_some_and(|m| m > 0));
}

#[test]
fn doctor_names_the_bad_library_and_the_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"this is not a shared library").expect("write fake library");

    let output = hwnas(&["doctor", "--json"])
        .env("ORT_DYLIB_PATH", &fake)
        .output()
        .expect("hwnas runs");
    assert!(!output.status.success(), "a bad library must fail doctor");
    assert_ne!(output.status.code(), Some(101), "no panic");
    let stderr = stderr_text(&output);
    assert!(stderr.contains(&fake.display().to_string()), "{stderr}");
    assert!(stderr.contains("ORT_DYLIB_PATH"), "{stderr}");
    assert!(stderr.contains("bash scripts/setup.sh"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let report: Value = serde_json::from_str(&stdout_text(&output)).expect("still JSON");
    assert!(report["onnxruntime"]["error"].is_string());
}

#[test]
fn version_and_help_answer_like_a_cli() {
    let output = hwnas(&["--version"]).output().expect("hwnas runs");
    assert!(output.status.success());
    assert!(stdout_text(&output).starts_with("hwnas "));

    let output = hwnas(&["--help"]).output().expect("hwnas runs");
    assert!(output.status.success());
    assert!(stdout_text(&output).contains("doctor"));
}
