//! Helpers for the end-to-end tests in `tests/tests/`: finding the built `hwnas` binary,
//! running it, and the shared data a test needs (skipped, or failed under
//! `HWNAS_REQUIRE=data`, where it is missing).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The machine as the tests of one test binary share it: tests that time something hold it
/// alone ([`machine_alone`]), the others share it among themselves ([`machine_shared`]), so
/// no profile or agent of a neighbouring test loads the CPU while a timing is taken.
static MACHINE: RwLock<()> = RwLock::new(());

/// Holds the machine beside the other non-timing tests of this binary.
pub fn machine_shared() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

/// Holds the machine alone, for a test whose assertion rests on a timing.
pub fn machine_alone() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|e| e.into_inner())
}

/// The `hwnas` binary built beside this test executable (`target/<profile>/hwnas`).
///
/// # Panics
/// When the binary has not been built; `bash scripts/test.sh` builds it first.
pub fn hwnas_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executables live in target/<profile>/deps");
    let binary = profile_dir.join(format!("hwnas{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build -p hwnas` (scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// A command running the built `hwnas` binary with the given arguments.
pub fn hwnas(args: &[&str]) -> Command {
    let mut command = Command::new(hwnas_binary());
    command.args(args);
    command
}

/// Standard output of a finished command, as text.
pub fn stdout_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error of a finished command, as text.
pub fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that a command failed and that its standard error names every one of `words`.
pub fn assert_refused(output: &Output, words: &[&str]) {
    let stderr = stderr_text(output);
    assert!(!output.status.success(), "expected a failure: {stderr}");
    for word in words {
        assert!(stderr.contains(word), "{word:?} not in: {stderr}");
    }
}

/// Once-for-All's folder with its predictor, where present.
pub fn ofa_files() -> Option<PathBuf> {
    hwnas_testkit::require(
        hwnas_testkit::Resource::Data,
        "Once-for-All's predictor (../shared/data/ofa-mobilenetv3)",
        hwnas_core::benchmark::ofa::locate_ofa_files(None),
    )
}

/// The NAS-Bench-201 CIFAR-10 table, where present.
pub fn nb201_table() -> Option<PathBuf> {
    hwnas_testkit::require(
        hwnas_testkit::Resource::Data,
        "the NAS-Bench-201 table",
        hwnas_core::data::locate(
            "HWNAS_NB201_TABLE",
            hwnas_core::benchmark::nb201::SHARED_TABLE,
        )
        .ok_or("set HWNAS_NB201_TABLE or provide ../shared/data/nas-bench-201"),
    )
}

/// Whether Fashion-MNIST can be read (Debian's package or the shared data).
pub fn fashion_mnist() -> bool {
    hwnas_testkit::require(
        hwnas_testkit::Resource::Data,
        "Fashion-MNIST (install dataset-fashion-mnist or give ../shared/data/image-datasets)",
        hwnas_core::images::ImageSet::fashion_mnist_train(None).map(|_| ()),
    )
    .is_some()
}

/// The flags of a supernet search small enough for a test: Fashion-MNIST, one epoch of
/// 128 search images in batches of 32 (four steps of training, or two per half), 32
/// held-out images.
pub const TINY_SUPERNET: [&str; 10] = [
    "--data",
    "fashion-mnist",
    "--epochs",
    "1",
    "--train-images",
    "128",
    "--eval-images",
    "32",
    "--batch-size",
    "32",
];

/// The Slurm configuration of a running cluster: `$SLURM_CONF` where set (`bash
/// scripts/test.sh` starts the project's one-node cluster and sets it), otherwise the one
/// `bash scripts/slurm.sh start` brings up (installing Slurm where it can).
pub fn slurm_conf() -> Option<PathBuf> {
    let probe = match std::env::var_os("SLURM_CONF") {
        Some(conf) if std::path::Path::new(&conf).exists() => Ok(PathBuf::from(conf)),
        _ => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/slurm.sh");
            match Command::new("bash").args([script, "start"]).output() {
                Ok(out) if out.status.success() => stdout_text(&out)
                    .lines()
                    .find_map(|l| l.strip_prefix("export SLURM_CONF="))
                    .map(PathBuf::from)
                    .ok_or_else(|| "scripts/slurm.sh start printed no SLURM_CONF".to_string()),
                Ok(out) => Err(format!(
                    "scripts/slurm.sh start failed: {}",
                    stderr_text(&out)
                )),
                Err(e) => Err(format!("cannot run bash: {e}")),
            }
        }
    };
    hwnas_testkit::require(
        hwnas_testkit::Resource::Slurm,
        "a Slurm cluster (bash scripts/slurm.sh start)",
        probe,
    )
}
