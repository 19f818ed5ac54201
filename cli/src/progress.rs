//! Progress bars for long steps (indicatif), drawn on standard error, and the search
//! library's observer drawing them.

use std::sync::Mutex;

use hwnas_search::Observer;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar with a count, elapsed time, ETA and a message.
pub fn bar(prefix: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {pos}/{len} {elapsed} ETA {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// Draws a search's stages as bars and prints its notes, unless quiet (`--json`);
/// warnings are always printed.
pub struct Bars {
    quiet: bool,
    current: Mutex<Option<ProgressBar>>,
}

impl Bars {
    /// Bars, or only warnings when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Bars {
            quiet,
            current: Mutex::new(None),
        }
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            f(bar);
        }
    }
}

impl Observer for Bars {
    fn stage(&self, name: &str, total: u64) {
        let bar = bar(name, total);
        if self.quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = current.replace(bar) {
            old.finish_and_clear();
        }
    }

    fn progress(&self, done: u64, total: u64, message: &str) {
        self.with_bar(|bar| {
            bar.set_length(total);
            bar.set_position(done);
            if !message.is_empty() {
                bar.set_message(message.to_string());
            }
        });
    }

    fn finish(&self) {
        if let Some(bar) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
    }

    fn note(&self, line: &str) {
        if !self.quiet {
            self.warn_or_note(line, false);
        }
    }

    fn warn(&self, line: &str) {
        self.warn_or_note(line, true);
    }
}

impl Bars {
    fn warn_or_note(&self, line: &str, warning: bool) {
        let text = if warning {
            format!("warning: {line}")
        } else {
            line.to_string()
        };
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match current.as_ref() {
            Some(bar) if !bar.is_hidden() => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }
}
