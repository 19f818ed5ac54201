//! Helpers for the end-to-end tests in `tests/tests/`: finding the built `hwnas` binary
//! and running it.

use std::path::PathBuf;
use std::process::{Command, Output};

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
