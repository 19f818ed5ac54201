//! Errors of the latency crate.

use std::path::PathBuf;

/// What can go wrong while finding ONNX Runtime, exporting or profiling a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No ONNX Runtime library was found in any place hwnas looks.
    #[error(
        "ONNX Runtime {pinned} was not found (looked at: {}).\n  fix: run `{fix}` in the hwnas checkout, or set ORT_DYLIB_PATH to a libonnxruntime.so of version {pinned}",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    OrtNotFound {
        /// The places searched, in order.
        looked: Vec<PathBuf>,
        /// The version hwnas is built for.
        pinned: &'static str,
        /// The command that installs it.
        fix: &'static str,
    },
    /// A file was found but could not be loaded as ONNX Runtime.
    #[error(
        "could not load ONNX Runtime from {} ({origin}): {reason}\n  fix: run `{fix}` in the hwnas checkout, or point ORT_DYLIB_PATH at a libonnxruntime.so of version {pinned}",
        path.display()
    )]
    OrtLoad {
        /// The file that failed to load.
        path: PathBuf,
        /// Where the path came from (`ORT_DYLIB_PATH`, the project cache, ...).
        origin: String,
        /// The loader's explanation.
        reason: String,
        /// The version hwnas is built for.
        pinned: &'static str,
        /// The command that installs it.
        fix: &'static str,
    },
    /// The library loaded, but its version is not the one hwnas is built for.
    #[error(
        "ONNX Runtime at {} is version {found}, but hwnas needs {pinned}.\n  fix: run `{fix}` in the hwnas checkout, or point ORT_DYLIB_PATH at a libonnxruntime.so of version {pinned}",
        path.display()
    )]
    OrtVersion {
        /// The library's path.
        path: PathBuf,
        /// The version it reports.
        found: String,
        /// The version hwnas is built for.
        pinned: &'static str,
        /// The command that installs it.
        fix: &'static str,
    },
    /// A file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The measurement cache could not encode an entry.
    #[error("measurement cache: {0}")]
    Cache(String),
    /// A file with unexpected content (a lookup table); the text says what and the fix.
    #[error("{}: {problem}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A setting out of range; the text names the setting.
    #[error("invalid setting {0}")]
    Setting(String),
    /// An architecture could not be exported.
    #[error("cannot export: {0}")]
    Export(String),
    /// Architecture text the space does not accept, with the space's reason.
    #[error("cannot export")]
    Arch(#[source] hwnas_core::Error),
    /// ONNX Runtime reported an error.
    #[error("ONNX Runtime: {0}")]
    Ort(String),
}

/// The latency crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
