//! Errors of the search library; the crates below keep their own, chained by `#[source]`.

use std::fmt::Display;
use std::path::PathBuf;

/// What can go wrong in a search.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting of the plan out of range or in a combination that cannot run.
    #[error("--{setting} {value}: {problem}")]
    Plan {
        /// The setting, as the command line spells it (`latency-ms`).
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and the fix.
        problem: String,
    },
    /// A run directory that cannot be continued as asked.
    #[error("{}: {problem}", dir.display())]
    RunDir {
        /// The run directory.
        dir: PathBuf,
        /// What is wrong and the fix.
        problem: String,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// `read`, `write`, `create`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file that does not hold what it should.
    #[error("{} is not {what}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A CSV file could not be written.
    #[error("cannot write {}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The writer's error.
        #[source]
        source: csv::Error,
    },
    /// A plot could not be drawn.
    #[error("cannot draw {}: {problem}", path.display())]
    Plot {
        /// The file.
        path: PathBuf,
        /// The plotting library's message.
        problem: String,
    },
    /// A step of the search failed; `what` says which.
    #[error("{what}")]
    Step {
        /// The step, e.g. "building the latency lookup table for this machine".
        what: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// No answer can be given (no architecture met the budget).
    #[error("{0}")]
    NoAnswer(String),
    /// From the core crate.
    #[error(transparent)]
    Core(#[from] hwnas_core::Error),
    /// From the latency crate.
    #[error(transparent)]
    Latency(#[from] hwnas_latency::Error),
    /// From the targets crate.
    #[error(transparent)]
    Targets(#[from] hwnas_targets::Error),
}

impl Error {
    /// A plan error for `setting` with the value given.
    pub fn plan(setting: &'static str, value: impl Display, problem: impl Into<String>) -> Self {
        Error::Plan {
            setting,
            value: value.to_string(),
            problem: problem.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Wraps an error with the step it happened in.
pub trait StepContext<T> {
    /// Names the step an error came from.
    fn step(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Error>> StepContext<T> for std::result::Result<T, E> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Step {
            what: what(),
            source: Box::new(e.into()),
        })
    }
}

/// The search library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
