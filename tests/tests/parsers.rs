//! Every parser of what a user or a peer hands hwnas, fed random bytes and damaged copies
//! of valid input: NAS-Bench-201 tables, lookup tables, manifests, histories, target files,
//! Once-for-All predictors and ONNX models. Each answers with a value or an error; none
//! panics. (The agent protocol's frames have the same test in `hwnas-targets`.)

use std::path::Path;

use proptest::prelude::*;

/// `valid` damaged: a byte set to `value` at `at`, then cut to `cut` bytes.
fn damaged(valid: &[u8], at: usize, value: u8, cut: usize) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    if !bytes.is_empty() {
        let i = at % bytes.len();
        bytes[i] = value;
    }
    bytes.truncate(cut % (bytes.len() + 1));
    bytes
}

/// A small valid table (3 rows) as text.
fn table_text() -> String {
    "index,arch_str,toy_val_12ep,toy_test_200ep,lat_help_toyphone\n\
     0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10.0,11.0,1.5\n\
     1,|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|,20.0,21.0,\n\
     2,|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|,30.0,31.0,2.5\n"
        .to_string()
}

fn lut_text() -> String {
    r#"{"version":1,"fingerprint":{"ort_version":"1.31.1","execution_provider":"CPUExecutionProvider","cpu_model":"cpu","cores":2,"threads":1,"governor":null,"arch":"x86_64"},"protocol":{"warmup":10,"min_runs":50,"max_runs":1000,"rel_ci":0.01,"max_seconds":30.0,"threads":1},"resolutions":[224],"entries":[{"layer":{"FirstConv":{"r":224}},"stats":{"median_ms":1.0,"p10_ms":0.9,"p90_ms":1.1,"mean_ms":1.0,"std_ms":0.1,"runs":50,"median_rel_ci":0.01}}],"calibration":{"slope":1.0,"intercept":0.1,"subnets":12,"fit_rmse_ms":0.05}}"#.to_string()
}

fn manifest_text() -> String {
    r#"{"schema":1,"command":["hwnas"],"hwnas_version":"0.1.0","plan":{"space":"nb201","strategy":"rea","evaluator":null,"target":"table:toyphone","latency_ms":7.0,"budget":60,"seed":5,"out":"run","table":"toy.csv","dataset":"toy","ofa_dir":null,"data":"fashion-mnist","epochs":4,"train_images":8000,"eval_images":1000,"channels":null,"cells":null,"backend":"cpu","batch_size":64,"image_size":32,"finalists":5,"protocol":{"threads":1,"runs":null,"warmup":10}},"seed":5,"space":"nb201","strategy":"rea","target":"table:toyphone"}"#.to_string()
}

fn history_text() -> String {
    let line = |q: usize, acc: &str| {
        format!(
            r#"{{"query":{q},"arch":[0,0,0,0,0,{q}],"arch_text":"x","accuracy":{acc},"test_accuracy":null,"latency_ms":1.0,"reward":{acc},"feasible":true,"seconds":0.0}}"#
        )
    };
    format!("{}\n{}\n", line(1, "50.0"), line(2, "null"))
}

fn target_text() -> String {
    "name = \"pi4\"\nkind = \"agent\"\nagents = [\"127.0.0.1:7000\"]\n[ort]\nthreads = 4\n[protocol]\nmin_runs = 60\n".to_string()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn files_of_every_kind_parse_or_are_refused_without_panicking(
        noise in proptest::collection::vec(any::<u8>(), 0..512),
        at in any::<usize>(),
        value in any::<u8>(),
        cut in any::<usize>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for bytes in [noise.clone(), damaged(table_text().as_bytes(), at, value, cut)] {
            let path = write(dir.path(), "table.csv", &bytes);
            let _ = hwnas_core::benchmark::Nb201Table::load(&path, "toy");
        }
        for bytes in [noise.clone(), damaged(lut_text().as_bytes(), at, value, cut)] {
            let path = write(dir.path(), "lut.json", &bytes);
            let _ = hwnas_latency::lut::LayerLut::load(&path);
        }
        for bytes in [noise.clone(), damaged(manifest_text().as_bytes(), at, value, cut)] {
            let run = dir.path().join("run");
            std::fs::create_dir_all(&run).unwrap();
            write(&run, "manifest.json", &bytes);
            let _ = hwnas_search::RunDir::open(&run);
        }
        for bytes in [noise.clone(), damaged(history_text().as_bytes(), at, value, cut)] {
            let path = write(dir.path(), "history.jsonl", &bytes);
            let _ = hwnas_search::run_dir::read_jsonl::<hwnas_core::Record>(&path, "a history");
        }
        for bytes in [noise.clone(), damaged(target_text().as_bytes(), at, value, cut)] {
            let text = String::from_utf8_lossy(&bytes);
            let _ = hwnas_targets::Target::parse(&text, Path::new("/tmp/pi.toml"));
        }
        let predictor = write(dir.path(), "predictor.npz", &noise);
        let _ = hwnas_core::benchmark::OfaPredictor::load(&predictor, hwnas_core::space::OfaSpace::default());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn onnx_runtime_refuses_damaged_models_without_crashing(
        noise in proptest::collection::vec(any::<u8>(), 0..256),
        at in any::<usize>(),
        value in any::<u8>(),
        cut in any::<usize>(),
    ) {
        if !ort_present() {
            return Ok(());
        }
        let model = valid_model();
        for bytes in [noise, damaged(&model, at, value, cut)] {
            let _ = hwnas_latency::profile::ModelRunner::new(&bytes, 1, false);
        }
    }
}

fn ort_present() -> bool {
    static PRESENT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PRESENT.get_or_init(|| {
        hwnas_testkit::require(
            hwnas_testkit::Resource::Ort,
            "ONNX Runtime",
            hwnas_latency::OrtRuntime::load(),
        )
        .is_some()
    })
}

fn valid_model() -> Vec<u8> {
    let model = hwnas_latency::export::export_arch(
        "nb201",
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|skip_connect~2|",
        &mut hwnas_latency::onnx::RandomWeights::new(0),
        hwnas_latency::export::ExportOptions::default(),
    )
    .unwrap();
    hwnas_latency::onnx::builder::encode(&model)
}

/// The valid inputs the properties damage do parse, so the damage starts from real input.
#[test]
fn the_undamaged_inputs_parse() {
    let dir = tempfile::tempdir().unwrap();
    let table = write(dir.path(), "table.csv", table_text().as_bytes());
    assert_eq!(
        hwnas_core::benchmark::Nb201Table::load(&table, "toy")
            .unwrap()
            .len(),
        3
    );
    let lut = write(dir.path(), "lut.json", lut_text().as_bytes());
    assert_eq!(
        hwnas_latency::lut::LayerLut::load(&lut)
            .unwrap()
            .entries
            .len(),
        1
    );
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    write(&run, "manifest.json", manifest_text().as_bytes());
    hwnas_search::RunDir::open(&run).unwrap();
    let history = write(dir.path(), "history.jsonl", history_text().as_bytes());
    let records =
        hwnas_search::run_dir::read_jsonl::<hwnas_core::Record>(&history, "a history").unwrap();
    assert_eq!(records.len(), 2);
    assert!(records[1].accuracy.is_nan());
    hwnas_targets::Target::parse(&target_text(), Path::new("/tmp/pi.toml")).unwrap();
    if ort_present() {
        hwnas_latency::profile::ModelRunner::new(&valid_model(), 1, false).unwrap();
    }
}
