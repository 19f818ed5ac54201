//! `hwnas targets list|show`: the built-in host, user files, and errors that name the file,
//! the line and the key.

use hwnas_tests::{hwnas, stderr_text, stdout_text};

#[test]
fn targets_are_listed_shown_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    // The token file a description names must exist (checked where the file is read).
    std::fs::write(dir.path().join("pi4.token"), "secret\n").unwrap();
    std::fs::write(
        dir.path().join("pi4.toml"),
        "name = \"pi4\"\nkind = \"agent\"\nagents = [\"10.0.0.21:7878\", \"10.0.0.22:7878\"]\ntoken_file = \"pi4.token\"\n[ort]\nthreads = 4\n",
    )
    .unwrap();
    let list = |dir: &std::path::Path| {
        hwnas(&["targets", "list"])
            .env("HWNAS_TARGETS_DIR", dir)
            .output()
            .unwrap()
    };
    let output = list(dir.path());
    assert!(output.status.success(), "{}", stderr_text(&output));
    let text = stdout_text(&output);
    assert!(
        text.contains("host") && text.contains("pi4") && text.contains("10.0.0.22:7878"),
        "{text}"
    );

    let output = hwnas(&["targets", "show", "pi4"])
        .env("HWNAS_TARGETS_DIR", dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    let text = stdout_text(&output);
    assert!(
        text.contains("threads = 4") && text.contains("kind = \"agent\""),
        "{text}"
    );

    std::fs::write(
        dir.path().join("bad.toml"),
        "name = \"bad\"\nkind = \"agent\"\nagents = [\"a:1\"]\n\n[protocol]\nmin_runz = 3\n",
    )
    .unwrap();
    let output = hwnas(&[
        "targets",
        "show",
        dir.path().join("bad.toml").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("line 6") && stderr.contains("min_runz"),
        "{stderr}"
    );
    let output = list(dir.path());
    assert!(!output.status.success(), "a broken file fails the listing");
    assert!(stdout_text(&output).contains("bad.toml"));
}
