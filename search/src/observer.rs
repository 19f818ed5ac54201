//! How a search tells its caller what it is doing: stages with progress, notes and
//! warnings. The binary draws progress bars; tests and quiet runs keep only the warnings.

/// Receives a search's progress. Every method has a quiet default.
pub trait Observer: Sync {
    /// A stage with `total` steps begins (`lookup table`, `search`, `finalists`, ...).
    fn stage(&self, _name: &str, _total: u64) {}
    /// The current stage reached `done` of `total` steps; `message` says what it is on.
    fn progress(&self, _done: u64, _total: u64, _message: &str) {}
    /// What the current stage is waiting on (`slurm: 3 running, 5 pending`), its count
    /// unchanged.
    fn waiting_on(&self, _message: &str) {}
    /// The current stage ended.
    fn finish(&self) {}
    /// Information a person may want (where a table was read from); not a problem.
    fn note(&self, _line: &str) {}
    /// Something the user must know: a damaged cache entry, a noisy measurement.
    fn warn(&self, line: &str) {
        eprintln!("warning: {line}");
    }
}

/// Prints warnings only.
pub struct Quiet;

impl Observer for Quiet {}
