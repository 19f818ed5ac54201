//! Errors of the core crate.

use std::path::PathBuf;

/// What can go wrong in a search: bad architecture text, a bad table, a failed evaluation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Architecture text that does not parse in a space's format.
    #[error("cannot parse {space} architecture `{input}`: {problem}")]
    Parse {
        /// The space's name.
        space: &'static str,
        /// The text given (shortened when long).
        input: String,
        /// What is wrong and which values are allowed.
        problem: String,
    },
    /// An architecture whose decisions are outside the space.
    #[error("architecture is outside the {space} space: {problem}")]
    InvalidArch {
        /// The space's name.
        space: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A file that could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A data file (table, lookup table, predictor) with unexpected content.
    #[error("{}: {problem}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong and, where it helps, the fix.
        problem: String,
    },
    /// An architecture the benchmark or model has no answer for.
    #[error("{source_name} has no entry for {arch}: {problem}")]
    Missing {
        /// The table or model asked.
        source_name: String,
        /// The architecture, in its space's format.
        arch: String,
        /// Why.
        problem: String,
    },
    /// A latency model or evaluator failed for an architecture; the cause is kept.
    #[error("{source_name} could not answer for {arch}")]
    Failed {
        /// The model or evaluator asked.
        source_name: String,
        /// The architecture, in its space's format.
        arch: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A setting out of range. Callers with a command line name the flag (`--{name}`).
    #[error("invalid setting `{name}`: {problem}")]
    Setting {
        /// The setting's name (`latency-ms`, `data`), without any command line's spelling.
        name: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A kernel op failed (a shape mismatch inside a network, or the GPU device).
    #[error("kernel: {0}")]
    Kernel(#[from] hwnas_kernels::Error),
}

/// The core crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shortens long input for an error message.
pub(crate) fn excerpt(text: &str) -> String {
    const LIMIT: usize = 120;
    if text.chars().count() <= LIMIT {
        text.to_string()
    } else {
        let head: String = text.chars().take(LIMIT).collect();
        format!("{head}...")
    }
}
