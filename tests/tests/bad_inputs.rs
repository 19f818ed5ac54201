//! Bad input, as a new user gives it, driven through the built binary: every row is a
//! command, the exit code it must end with, the words its message must hold (the input,
//! the value, the fix), and under `RUST_BACKTRACE=1` no panic.

use std::path::Path;
use std::process::Stdio;

use hwnas_tests::{hwnas, stderr_text};

/// Writes the files the rows refer to into `dir`.
fn fixtures(dir: &Path) {
    let table = |name: &str, val: &'static str, latency: &'static str| {
        hwnas_testkit::write_nb201_table(&dir.join(name), "toy", "toyphone", move |cell| {
            let wrong = cell.index == 3;
            let v = if wrong { val.parse().unwrap() } else { 60.0 };
            let l = if wrong { latency.parse().unwrap() } else { 1.0 };
            (v, 60.0, l)
        });
    };
    table("nan.csv", "NaN", "1");
    table("huge.csv", "1084", "1");
    table("negative.csv", "60", "-2");
    table("infinite.csv", "60", "inf");
    table("good.csv", "60", "1");
    std::fs::write(dir.join("garbage.onnx"), [7u8; 300]).unwrap();
    let devices = |name: &str, odd: &str| {
        let rows: String = (0..10)
            .map(|i| {
                let b = if i == 4 { odd.to_string() } else { (2 * i + 3).to_string() };
                let op = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"][i % 5];
                format!("|nor_conv_3x3~0|+|none~0|{op}~1|+|nor_conv_1x1~0|avg_pool_3x3~1|skip_connect~2|,{},{b}\n", i + 1)
            })
            .collect();
        std::fs::write(dir.join(name), format!("arch_str,dev_a,dev_b\n{rows}")).unwrap();
    };
    devices("devices.csv", "11");
    devices("devices-text.csv", "fast");
    std::fs::write(dir.join("garbage.json"), "{ not json").unwrap();
    let lut = |name: &str, median: f64, slope: f64| {
        std::fs::write(
            dir.join(name),
            format!(
                r#"{{"version":1,"fingerprint":{{"ort_version":"1.31.1","execution_provider":"CPUExecutionProvider","cpu_model":"cpu","cores":2,"threads":1,"governor":null,"arch":"x86_64"}},"protocol":{{"warmup":10,"min_runs":50,"max_runs":1000,"rel_ci":0.01,"max_seconds":30.0,"threads":1}},"resolutions":[224],"entries":[{{"layer":{{"FirstConv":{{"r":224}}}},"stats":{{"median_ms":{median},"p10_ms":0.9,"p90_ms":1.1,"mean_ms":1.0,"std_ms":0.1,"runs":50,"median_rel_ci":0.01}}}}],"calibration":{{"slope":{slope},"intercept":0.1,"subnets":12,"fit_rmse_ms":0.05}}}}"#
            ),
        )
        .unwrap();
    };
    lut("lut-negative.json", -1.0, 1.0);
    lut("lut-steep.json", 1.0, 1e300);
    let target = |name: &str, agents: &str, token: &str| {
        std::fs::write(
            dir.join(name),
            format!(
                "name = \"board\"\nkind = \"agent\"\nagents = [\"{agents}\"]\ntoken_file = \"{token}\"\n"
            ),
        )
        .unwrap();
    };
    std::fs::write(dir.join("board.token"), "secret\n").unwrap();
    target("address.toml", "not an address", "board.token");
    target("port.toml", "127.0.0.1:99999", "board.token");
    target("token.toml", "127.0.0.1:7000", "missing.token");
    let note10 = dir.join("ofa-nan").join("latency_table@note10");
    std::fs::create_dir_all(&note10).unwrap();
    std::fs::write(
        note10.join("224_lookup_table.yaml"),
        "first_conv: {count: 1, mean: .nan, std: 0.0}\n",
    )
    .unwrap();
    for (run, manifest) in [
        ("damaged-run", "{ \"schema\": 1, "),
        (
            "future-run",
            r#"{"schema": 99, "command": [], "hwnas_version": "9.0.0"}"#,
        ),
    ] {
        std::fs::create_dir_all(dir.join(run)).unwrap();
        std::fs::write(dir.join(run).join("manifest.json"), manifest).unwrap();
    }
}

/// `(command, exit code, words the message must hold)`; `DIR` is the fixtures' folder.
const CASES: &[(&str, i32, &[&str])] = &[
    // search: every setting against its range, before anything expensive.
    ("search --budget 0 --out DIR/r", 1, &["--budget 0"]),
    ("search --budget -3 --out DIR/r", 2, &["'-3'", "--budget"]),
    (
        "search --space nb201 --budget 99999 --out DIR/r",
        1,
        &["--budget 99999", "15625"],
    ),
    (
        "search --latency-ms -1 --out DIR/r",
        1,
        &["--latency-ms -1", "positive"],
    ),
    (
        "search --latency-ms nan --out DIR/r",
        1,
        &["--latency-ms NaN"],
    ),
    (
        "search --latency-ms inf --out DIR/r",
        1,
        &["--latency-ms inf"],
    ),
    (
        "search --threads 0 --out DIR/r",
        1,
        &["--threads 0", "1 to 1024"],
    ),
    (
        "search --threads 4294967295 --out DIR/r",
        1,
        &["--threads 4294967295"],
    ),
    ("search --runs 0 --out DIR/r", 1, &["--runs 0"]),
    (
        "search --runs 4294967295 --out DIR/r",
        1,
        &["--runs 4294967295", "100000"],
    ),
    (
        "search --strategy annealing --out DIR/r",
        1,
        &["--strategy annealing", "rea"],
    ),
    (
        "search --space mars --out DIR/r",
        1,
        &["--space mars", "nb201"],
    ),
    (
        "search --evaluator oracle --out DIR/r",
        1,
        &["--evaluator oracle", "predictor"],
    ),
    (
        "search --target table: --out DIR/r",
        1,
        &["--target table:", "device"],
    ),
    (
        "search --target table:pixel9000 --out DIR/r",
        1,
        &["table:note10"],
    ),
    (
        "search --backend tpu --out DIR/r",
        1,
        &["--backend tpu", "cpu or wgpu"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy gdas --data cifar: --out DIR/r",
        1,
        &["--data cifar:", "folder"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy gdas --data imagenet --out DIR/r",
        1,
        &["--data imagenet", "fashion-mnist"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy gdas --channels 0 --out DIR/r",
        1,
        &["--channels 0"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy gdas --epochs 0 --out DIR/r",
        1,
        &["--epochs 0"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy gdas --batch-size 0 --out DIR/r",
        1,
        &["--batch-size 0"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy gdas --train-images 1 --out DIR/r",
        1,
        &["--train-images 1", "two batches"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy gdas --train-images 18446744073709551615 --out DIR/r",
        1,
        &["--train-images 18446744073709551615"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy rea --out DIR/r",
        1,
        &["--strategy rea", "advantagenas"],
    ),
    (
        "search --space darts --evaluator supernet --strategy radars --out DIR/r",
        1,
        &["--strategy radars", "--memory-mib M"],
    ),
    (
        "search --space darts --evaluator supernet --strategy radars --memory-mib 0 --out DIR/r",
        1,
        &["--memory-mib 0", "positive number of MiB"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy gdas --latency-weight nan --out DIR/r",
        1,
        &["--latency-weight NaN", "weighs 0"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy gdas --finetune-share 1 --out DIR/r",
        1,
        &["--finetune-share 1", "below 1"],
    ),
    (
        "search --space nb201 --strategy rea --warmup-share 0.2 --out DIR/r",
        1,
        &["--warmup-share 0.2", "one-shot"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy gdas --warmup-share 0.9 --finetune-share 0.6 --out DIR/r",
        1,
        &["--finetune-share 0.6", "under 5% of the steps"],
    ),
    (
        "search --space ofa-mbv3 --evaluator supernet --channels 4 --out DIR/r",
        1,
        &["--channels 4", "Once-for-All"],
    ),
    // Bad numbers in the files a search reads.
    (
        "search --space nb201 --table DIR/nan.csv --dataset toy --target table:toyphone --out DIR/r",
        1,
        &["nan.csv", "line 5", "toy_val_12ep", "NaN"],
    ),
    (
        "search --space nb201 --table DIR/huge.csv --dataset toy --target table:toyphone --out DIR/r",
        1,
        &["huge.csv", "1084", "0 to 100"],
    ),
    (
        "search --space nb201 --table DIR/negative.csv --dataset toy --target table:toyphone --out DIR/r",
        1,
        &["negative.csv", "lat_help_toyphone", "-2"],
    ),
    (
        "search --space nb201 --table DIR/infinite.csv --dataset toy --target table:toyphone --out DIR/r",
        1,
        &["infinite.csv", "inf"],
    ),
    (
        "search --space nb201 --table DIR/good.csv --dataset toy --target table:pixel3 --out DIR/r",
        1,
        &["--target", "pixel3", "toyphone"],
    ),
    (
        "search --target table:note10 --ofa-dir DIR/ofa-nan --out DIR/r",
        1,
        &["224_lookup_table.yaml", "first_conv", "NaN"],
    ),
    // Run directories.
    ("search --resume DIR/nowhere", 1, &["manifest.json"]),
    (
        "search --resume DIR/damaged-run",
        1,
        &["not an hwnas manifest"],
    ),
    ("search --resume DIR/future-run", 1, &["schema 99", "newer"]),
    (
        "search --out /dev/null/run --target table:note10",
        1,
        &["cannot create", "/dev/null/run"],
    ),
    // Profiling and lookup tables.
    ("profile DIR/missing.onnx", 1, &["missing.onnx"]),
    ("profile DIR/garbage.onnx", 1, &["garbage.onnx", "protobuf"]),
    (
        "profile DIR/garbage.onnx --runs 4294967295",
        1,
        &["--runs 4294967295"],
    ),
    ("profile DIR/garbage.onnx --threads 0", 1, &["--threads 0"]),
    (
        "profile DIR/garbage.onnx --warmup 99999999",
        1,
        &["--warmup 99999999"],
    ),
    (
        "profile DIR/garbage.onnx --target DIR/address.toml",
        1,
        &["not an address", "host:port"],
    ),
    // latency fit: the table, the device and the sample count named.
    (
        "latency fit --table DIR/good.csv --device toyphone",
        1,
        &["good.csv", "1 latency column", "at least one other"],
    ),
    (
        "latency fit --table DIR/devices.csv --device dev_c",
        1,
        &["--device", "dev_c", "dev_a, dev_b"],
    ),
    (
        "latency fit --table DIR/devices.csv --device dev_b --samples 2",
        1,
        &["--samples 2", "3 to 9"],
    ),
    (
        "latency fit --table DIR/devices.csv --device dev_b --samples 5000",
        1,
        &["--samples 5000", "at most 2000"],
    ),
    (
        "latency fit --table DIR/devices-text.csv --device dev_b",
        1,
        &[
            "devices-text.csv",
            "row 5, column `dev_b`",
            "`fast` is not a number",
        ],
    ),
    (
        "latency fit --table DIR/devices.csv --space darts --device dev_b",
        1,
        &["devices.csv", "row 1"],
    ),
    (
        "latency fit --table DIR/absent.csv --device dev_b",
        1,
        &["absent.csv"],
    ),
    ("latency fit --table DIR/devices.csv", 2, &["--device"]),
    (
        "latency fit --table DIR/devices.csv --device dev_b --runs 5",
        1,
        &["--runs", "--target"],
    ),
    (
        "latency fit --table DIR/devices.csv --target host --samples 3 --runs 0",
        1,
        &["runs", "0", "1 to 100000"],
    ),
    (
        "latency fit --table DIR/devices.csv --space fbnet --target DIR/address.toml",
        1,
        &["--space fbnet", "nb201"],
    ),
    (
        "latency fit --space fbnet --device dev_b",
        1,
        &["--table", "fbnet"],
    ),
    (
        "lut eval --lut DIR/garbage.json",
        1,
        &["garbage.json", "not an hwnas lookup table"],
    ),
    (
        "lut eval --lut DIR/lut-negative.json",
        1,
        &["lut-negative.json", "positive number"],
    ),
    (
        "lut eval --lut DIR/lut-steep.json",
        1,
        &["lut-steep.json", "plausible line"],
    ),
    (
        "lut eval --lut DIR/lut-steep.json --samples 0",
        1,
        &["--samples 0"],
    ),
    (
        "lut eval --lut DIR/lut-steep.json --samples 100000000",
        1,
        &["--samples 100000000"],
    ),
    (
        "lut eval --lut DIR/lut-steep.json --samples -5",
        2,
        &["'-5'", "--samples"],
    ),
    (
        "lut build --resolutions 5000 -o DIR/lut.json",
        1,
        &["--resolutions 5000"],
    ),
    (
        "lut build --space nb201 -o DIR/lut.json",
        1,
        &["--space nb201", "ofa-mbv3"],
    ),
    // Targets and the agent.
    (
        "targets show DIR/address.toml",
        1,
        &["address.toml", "not an address", "host:port"],
    ),
    ("targets show DIR/port.toml", 1, &["port.toml", "99999"]),
    (
        "targets show DIR/token.toml",
        1,
        &["token.toml", "missing.token", "does not exist"],
    ),
    ("targets show nothing-by-this-name", 1, &["no such target"]),
    (
        "agent --listen not-an-address",
        1,
        &["--listen not-an-address"],
    ),
    (
        "agent --listen 0.0.0.0:7000",
        1,
        &["loopback", "--token-file"],
    ),
    (
        "agent --token-file DIR/missing.token",
        1,
        &["missing.token"],
    ),
    // Export, proxies, bench.
    (
        "export --space nb201 --arch nonsense -o DIR/x.onnx",
        1,
        &["nonsense", "e.g."],
    ),
    (
        "export --space resnet --arch x -o DIR/x.onnx",
        1,
        &["resnet", "nb201"],
    ),
    (
        "export --space nb201 --arch x -o DIR/x.onnx --batch 0",
        1,
        &["--batch"],
    ),
    (
        "proxies --table DIR/good.csv --dataset toy --samples 2",
        1,
        &["--samples 2", "--whole-space"],
    ),
    (
        "proxies --table DIR/good.csv --dataset toy --samples 100000000",
        1,
        &["--samples 100000000", "15625"],
    ),
    (
        "proxies --table DIR/good.csv --dataset toy --samples 10 --data DIR",
        1,
        &["--data", "Fashion-MNIST"],
    ),
    ("proxies --space darts", 1, &["--space darts", "nb201"]),
    (
        "bench --table DIR/good.csv --dataset toy --seeds 0 --out DIR/b",
        1,
        &["--seeds 0"],
    ),
    (
        "bench --table DIR/good.csv --dataset toy --queries 0 --out DIR/b",
        1,
        &["--queries 0"],
    ),
    (
        "bench --table DIR/good.csv --dataset toy --checkpoints 0 --out DIR/b",
        1,
        &["--checkpoints 0"],
    ),
    (
        "bench --table DIR/good.csv --dataset toy --target table:toyphone --latency-ms -5 --out DIR/b",
        1,
        &["--latency-ms -5"],
    ),
    (
        "bench --table DIR/good.csv --dataset toy --target table:toyphone --latency-weight -1 --out DIR/b",
        1,
        &["--latency-weight -1"],
    ),
    (
        "bench --table DIR/good.csv --dataset toy --latency-ms 5 --out DIR/b",
        1,
        &["--latency-ms 5", "--target"],
    ),
    (
        "bench --table DIR/good.csv --dataset nope --out DIR/b",
        1,
        &["nope", "toy"],
    ),
    (
        "search --executor cloud --out DIR/r",
        1,
        &["--executor cloud", "local or slurm"],
    ),
    (
        "search --space nb201 --table DIR/good.csv --dataset toy --jobs 0 --out DIR/r",
        1,
        &["--jobs 0", "1 to 1024"],
    ),
    (
        "search --space nb201 --table DIR/good.csv --dataset toy --executor slurm --out DIR/r",
        1,
        &["--executor slurm", "--evaluator train"],
    ),
    (
        "search --space nb201 --proposals 0 --out DIR/r",
        1,
        &["--proposals 0", "1 to 4096"],
    ),
    (
        "search --space nb201 --evaluator supernet --strategy darts --proposals 4 --out DIR/r",
        1,
        &["--proposals 4", "one-shot"],
    ),
    (
        "search --space nb201 --evaluator train --executor slurm --slurm-cpus 0 --out DIR/r",
        1,
        &["--slurm-cpus 0", "1 to 4096"],
    ),
    (
        "search --space nb201 --evaluator train --executor slurm --slurm-option account=lab --out DIR/r",
        1,
        &["--slurm-option `account=lab`", "dashes"],
    ),
    (
        "worker --run DIR --task 0",
        1,
        &["no manifest.json", "run directory"],
    ),
];

#[test]
fn every_bad_input_fails_with_a_message_naming_it_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    fixtures(dir.path());
    let root = dir.path().to_str().unwrap();
    let mut failures = Vec::new();
    for (command, code, words) in CASES {
        let command = command.replace("DIR", root);
        let args: Vec<&str> = command.split(' ').collect();
        let output = hwnas(&args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = stderr_text(&output);
        let mut problems = Vec::new();
        if output.status.code() != Some(*code) {
            problems.push(format!("exit {:?}, not {code}", output.status.code()));
        }
        if stderr.contains("panicked") {
            problems.push("panicked".into());
        }
        for word in *words {
            if !stderr.contains(&word.replace("DIR", root)) {
                problems.push(format!("no `{word}`"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "`hwnas {command}`: {}\n  {stderr}",
                problems.join(", ")
            ));
        }
    }
    println!("{} bad-input cases", CASES.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn output_that_cannot_be_written_ends_well() {
    // A reader that goes away ends the command quietly and successfully.
    let mut child = hwnas(&["doctor"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        !stderr_text(&output).contains("panicked"),
        "{}",
        stderr_text(&output)
    );
    // A full disk is an error message, not a panic.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = hwnas(&["doctor", "--json"]).stdout(full).output().unwrap();
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write to standard output"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
