//! The agent on loopback: a fleet survives a killed agent, wrong tokens and oversized
//! frames are refused, and an agent's measurement agrees with a local one.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hwnas_core::space::{Nb201Space, SearchSpace};
use hwnas_latency::export::{ExportOptions, export_arch};
use hwnas_latency::onnx::RandomWeights;
use hwnas_latency::onnx::builder::encode;
use hwnas_targets::client::{AgentClient, profile_fleet};
use hwnas_targets::protocol::WireProtocol;
use hwnas_tests::{hwnas, machine_alone, machine_shared, stderr_text, stdout_text};
use rand::SeedableRng;

struct Agent {
    child: Child,
    address: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(token_file: Option<&std::path::Path>) -> Agent {
        Agent::start_with(token_file, &[])
    }

    fn start_with(token_file: Option<&std::path::Path>, extra: &[&str]) -> Agent {
        let mut args = vec!["agent", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        if let Some(file) = token_file {
            args.extend(["--token-file", file.to_str().unwrap()]);
        }
        let mut child = hwnas(&args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split(';').next().unwrap().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the agent starts");
        Agent {
            child,
            address,
            log,
        }
    }

    fn log_contains(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    fn jobs_done(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(": job "))
            .count()
    }

    fn peak_memory_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_file(dir: &std::path::Path, token: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{token}.token"));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

fn models(count: usize) -> Vec<Vec<u8>> {
    let space = Nb201Space::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    (0..count)
        .map(|_| {
            let arch = space.format(&space.sample(&mut rng));
            encode(
                &export_arch(
                    "nb201",
                    &arch,
                    &mut RandomWeights::new(0),
                    ExportOptions::default(),
                )
                .unwrap(),
            )
        })
        .collect()
}

const QUICK: WireProtocol = WireProtocol {
    warmup: 3,
    min_runs: 30,
    max_runs: 30,
    rel_ci: 0.01,
    max_seconds: 60.0,
    threads: 1,
};

#[test]
fn a_fleet_finishes_the_batch_when_an_agent_dies() {
    let _shared = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "fleet-secret");
    let a = Agent::start(Some(&token));
    let mut b = Agent::start(Some(&token));
    let batch = models(20);
    let b_address = b.address.clone();
    let agents = vec![a.address.clone(), b_address.clone()];
    let killed_after = std::thread::scope(|scope| {
        let killer = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(120);
            while b.jobs_done() < 3 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let done = b.jobs_done();
            b.child.kill().unwrap(); // SIGKILL
            done
        });
        let results = profile_fleet(
            &agents,
            b"fleet-secret",
            &batch,
            &QUICK,
            Duration::from_secs(60),
            &|line| println!("{line}"),
        )
        .unwrap();
        assert_eq!(results.len(), 20, "all 20 results arrive");
        for result in &results {
            let (stats, fingerprint) = result.outcome.as_ref().unwrap();
            assert!(stats.median_ms > 0.0);
            assert_eq!(stats.runs, 30);
            assert!(fingerprint.ort_version.starts_with("1.31."));
        }
        let by_a = results.iter().filter(|r| r.agent == a.address).count();
        let by_b = results.iter().filter(|r| r.agent == b_address).count();
        assert!(
            by_a > 0 && by_b > 0,
            "both agents measured ({by_a} + {by_b})"
        );
        assert!(by_b < 20);
        killer.join().unwrap()
    });
    assert!(
        killed_after >= 3,
        "the second agent was killed mid-batch after {killed_after} jobs"
    );
}

#[test]
fn a_wrong_token_is_refused_and_logged() {
    let _shared = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "right");
    let agent = Agent::start(Some(&token));
    let error = AgentClient::connect(&agent.address, b"wrong", Duration::from_secs(10))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("does not know the token") || error.contains("refused"),
        "{error}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !agent.log_contains("wrong token") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        agent.log_contains("wrong token"),
        "{:?}",
        agent.log.lock().unwrap()
    );
    // The right token still works.
    let client = AgentClient::connect(&agent.address, b"right", Duration::from_secs(10)).unwrap();
    assert!(client.fingerprint().ort_version.starts_with("1.31."));
    client.close();
}

#[test]
fn a_4_gib_frame_is_refused_without_allocating() {
    let _shared = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "cap");
    let agent = Agent::start(Some(&token));
    let before = agent.peak_memory_kib();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(&agent.address).unwrap();
        stream.write_all(&u32::MAX.to_le_bytes()).unwrap();
        stream.write_all(&[0u8; 1024]).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buffer = [0u8; 16];
        // The agent closes the connection instead of reading 4 GiB.
        let _ = std::io::Read::read(&mut stream, &mut buffer);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !agent.log_contains("over the") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        agent.log_contains("announced 4294967295 bytes"),
        "{:?}",
        agent.log.lock().unwrap()
    );
    let after = agent.peak_memory_kib();
    println!(
        "agent peak memory (VmHWM): {before} KiB before, {after} KiB after three 4 GiB announcements"
    );
    assert!(
        after < before + 64 * 1024,
        "peak memory grew from {before} to {after} KiB"
    );
    // Still serving.
    AgentClient::connect(&agent.address, b"cap", Duration::from_secs(10))
        .unwrap()
        .close();
}

#[test]
fn an_agent_measurement_agrees_with_a_local_profile() {
    let _alone = machine_alone();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "agree");
    let model = dir.path().join("model.onnx");
    std::fs::write(&model, &models(1)[0]).unwrap();
    let target = dir.path().join("board.toml");
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["profile", model.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let output = hwnas(&args).output().unwrap();
        assert!(output.status.success(), "{}", stderr_text(&output));
        serde_json::from_str(&stdout_text(&output)).unwrap()
    };
    // Interleaved, five each: a burst of load from outside this test (CI machines are shared)
    // then hits both sides, and the fastest median of each side is compared. A burst that
    // still lands on one side (seen once in CI: 1.39 vs 1.84 ms, with the other tests of the
    // suite running) gets up to two more rounds; a broken agent is off in every round.
    let fastest = |runs: &[serde_json::Value]| {
        runs.iter()
            .map(|j| j["median_ms"].as_f64().unwrap())
            .fold(f64::INFINITY, f64::min)
    };
    let mut rounds = Vec::new();
    for _ in 0..3 {
        // A fresh agent each round: a process keeps the speed it starts with on this VM
        // (fresh local processes' fastest medians land near 1.1-1.2 or 1.4-1.5 ms), so one
        // agent for all rounds would be one draw against fifteen.
        let agent = Agent::start(Some(&token));
        std::fs::write(
            &target,
            format!("name = \"board\"\nkind = \"agent\"\nagents = [\"{}\"]\ntoken_file = \"agree.token\"\n[protocol]\nmin_runs = 100\n", agent.address),
        )
        .unwrap();
        let mut remote_runs = Vec::new();
        let mut local_runs = Vec::new();
        for _ in 0..5 {
            remote_runs.push(run(&["--target", target.to_str().unwrap()]));
            local_runs.push(run(&[]));
        }
        for remote in &remote_runs {
            assert_eq!(remote["agent"], agent.address.as_str());
        }
        for local in &local_runs {
            assert!(local.get("agent").is_none());
        }
        let (rm, lm) = (fastest(&remote_runs), fastest(&local_runs));
        // The same model under the same protocol and thread count: the medians agree within
        // the noise of a shared two-core machine (20%; 22% was seen with a compile beside the
        // test). A broken agent -- timing the transfer, a different thread count, a different
        // model -- is off by far more.
        let allowed = 0.2 * lm;
        // The machine's one-minute load average beside each round: what was running when
        // the two sides disagreed (one CI run saw the agent 22-29% slower in every round).
        let load = hwnas_targets::host::load_average().unwrap_or(f64::NAN);
        println!(
            "agent median {rm:.4} ms, local median {lm:.4} ms (fastest of 5 each), allowed difference {allowed:.4} ms, load average {load:.2}"
        );
        rounds.push((rm, lm, load));
        if (rm - lm).abs() <= allowed {
            return;
        }
    }
    panic!(
        "the agent's and the local medians (ms) disagree by over 20% in every round (agent, local, load average): {rounds:?}"
    );
}

#[test]
fn without_a_token_the_agent_stays_on_loopback() {
    let _shared = machine_shared();
    let output = hwnas(&["agent", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains("loopback") && stderr.contains("--token-file"),
        "{stderr}"
    );
    let agent = Agent::start(None);
    assert!(agent.log_contains("loopback only"));
    AgentClient::connect(&agent.address, b"", Duration::from_secs(10))
        .unwrap()
        .close();
}

#[test]
fn search_measures_through_an_agent_target() {
    let _shared = machine_shared();
    let Some(table) = hwnas_tests::nb201_table() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "search");
    let agent = Agent::start(Some(&token));
    let target = dir.path().join("board.toml");
    std::fs::write(
        &target,
        format!("name = \"board\"\nkind = \"agent\"\nagents = [\"{}\"]\ntoken_file = \"search.token\"\n[protocol]\nwarmup = 2\nmin_runs = 15\nmax_runs = 15\n", agent.address),
    )
    .unwrap();
    let out = dir.path().join("run");
    let output = hwnas(&[
        "search",
        "--space",
        "nb201",
        "--target",
        target.to_str().unwrap(),
        "--budget",
        "12",
        "--finalists",
        "2",
        "--table",
        table.to_str().unwrap(),
        "--json",
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert!(json["latency_ms"].as_f64().unwrap() <= json["latency_budget_ms"].as_f64().unwrap());
    assert!(
        agent.jobs_done() >= 12,
        "the agent measured the search's architectures"
    );
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains("agents:board"), "{manifest}");
}

/// A target description for `address`, with the token file `token.token` beside it.
fn target_file(dir: &std::path::Path, address: &str, token: &str) -> std::path::PathBuf {
    token_file(dir, token);
    let target = dir.join(format!("{token}.toml"));
    std::fs::write(
        &target,
        format!("name = \"board\"\nkind = \"agent\"\nagents = [\"{address}\"]\ntoken_file = \"{token}.token\"\n"),
    )
    .unwrap();
    target
}

#[test]
fn profile_flags_reach_the_agent_and_its_cap_is_named() {
    let _shared = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    std::fs::write(&model, &models(1)[0]).unwrap();
    let agent = Agent::start_with(Some(&token_file(dir.path(), "runs")), &[]);
    let target = target_file(dir.path(), &agent.address, "runs");
    let profile = |target: &std::path::Path| {
        hwnas(&[
            "profile",
            model.to_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
            "--runs",
            "7",
            "--json",
        ])
        .output()
        .unwrap()
    };
    let output = profile(&target);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(json["runs"], 7, "--runs reaches the agent");
    // An agent that takes no model that large says so, rather than resetting.
    let capped = Agent::start_with(
        Some(&token_file(dir.path(), "capped")),
        &["--max-model-mib", "0"],
    );
    let target = target_file(dir.path(), &capped.address, "capped");
    let output = profile(&target);
    assert!(!output.status.success());
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains("over this agent's cap of 0 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("reset"), "{stderr}");
}

#[test]
fn a_peer_that_never_answers_fails_the_profile_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    std::fs::write(&model, &models(1)[0]).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    // Accepts, reads nothing, answers nothing, until the test is done.
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let silent = std::thread::spawn(move || {
        let held = listener.accept();
        let _ = wait.recv_timeout(Duration::from_secs(60));
        drop(held);
    });
    let target = target_file(dir.path(), &address, "silent");
    let started = Instant::now();
    let output = hwnas(&[
        "profile",
        model.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let waited = started.elapsed();
    assert!(!output.status.success());
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains("did not complete the handshake"),
        "{stderr}"
    );
    assert!(waited < Duration::from_secs(22), "waited {waited:?}");
    done.send(()).unwrap();
    silent.join().unwrap();
}

/// A board's latency predictor from 8 architectures it measured through its agent, the
/// other devices of the shared table teaching the shape: the agent ran exactly those 8,
/// and the written predictions cover every cell, positive, with the 8 marked.
#[test]
fn a_board_is_fitted_from_a_few_of_its_own_measurements() {
    let _shared = machine_shared();
    let Some(table) = hwnas_tests::nb201_table() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "fit");
    let agent = Agent::start(Some(&token));
    let target = dir.path().join("board.toml");
    std::fs::write(
        &target,
        format!("name = \"board\"\nkind = \"agent\"\nagents = [\"{}\"]\ntoken_file = \"fit.token\"\n[protocol]\nwarmup = 2\nmin_runs = 15\nmax_runs = 15\n", agent.address),
    )
    .unwrap();
    let out = dir.path().join("board.csv");
    let output = hwnas(&[
        "latency",
        "fit",
        "--table",
        table.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--samples",
        "8",
        "--json",
        "-o",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout_text(&output)).unwrap();
    assert_eq!(json["samples"], 8);
    assert_eq!(json["measured_by"], agent.address.as_str());
    assert!(
        json["spearman"].is_null(),
        "a board has no column to score against"
    );
    assert!(json["loo_log_rmse"].as_f64().unwrap().is_finite());
    assert_eq!(agent.jobs_done(), 8);
    let written = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<&str> = written.lines().skip(1).collect();
    assert_eq!(rows.len(), 15_625);
    assert_eq!(rows.iter().filter(|l| l.ends_with(",1")).count(), 8);
    for row in rows {
        let ms: f64 = row.rsplit(',').nth(1).unwrap().parse().unwrap();
        assert!(ms.is_finite() && ms > 0.0, "{row}");
    }
}
