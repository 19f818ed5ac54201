//! Standard output that ends well: a reader that went away (`hwnas doctor | head -1`) ends
//! the command quietly; a full disk is an error message, not a panic.

use std::io::Write;

use serde::Serialize;

/// Standard output closed by its reader: the command stops writing and exits successfully.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct ReaderGone;

/// Writes `text` (a newline added) to standard output.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ReaderGone.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// Writes `value` as pretty JSON to standard output.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    print(&serde_json::to_string_pretty(value)?)
}

/// Writes `value` as JSON when `json`, else the text `text` makes of it.
pub fn emit<T: Serialize>(
    json: bool,
    value: &T,
    text: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    match json {
        true => print_json(value),
        false => print(&text(value)),
    }
}

/// `println!` that returns the write's error instead of panicking: `say!(text, "{x}")`
/// appends a line to the `String` `text`.
#[macro_export]
macro_rules! say {
    ($text:expr) => {
        $text.push('\n')
    };
    ($text:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($text, $($arg)*);
    }};
}

/// An error and its causes on one line, each said once; a core setting error names the
/// flag that sets it (`--data: ...`).
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let core = cause.downcast_ref::<hwnas_core::Error>().or(
            match cause.downcast_ref::<hwnas_search::Error>() {
                Some(hwnas_search::Error::Core(e)) => Some(e),
                _ => None,
            },
        );
        let line = match core {
            Some(hwnas_core::Error::Setting { name, problem }) => format!("--{name}: {problem}"),
            _ => cause.to_string(),
        };
        if !text.contains(&line) {
            text.push_str(if text.is_empty() { "" } else { ": " });
            text.push_str(&line);
        }
    }
    text
}
