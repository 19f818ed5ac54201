//! The search library's observer for a terminal: each stage a progress bar (indicatif) on
//! standard error, notes beside it unless quiet (`--json`), warnings always.

use std::sync::Mutex;

use hwnas_search::Observer;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws a search's stages as bars.
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

    fn current(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prints a line above the bar, or plainly when there is none.
    fn line(&self, text: String) {
        match self.current().as_ref() {
            Some(bar) if !bar.is_hidden() => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }
}

impl Observer for Bars {
    fn stage(&self, name: &str, total: u64) {
        let style = ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {pos}/{len} {elapsed} ETA {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let bar = ProgressBar::new(total).with_style(style);
        bar.set_prefix(name.to_string());
        if self.quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        if let Some(old) = self.current().replace(bar) {
            old.finish_and_clear();
        }
    }

    fn progress(&self, done: u64, total: u64, message: &str) {
        if let Some(bar) = self.current().as_ref() {
            bar.set_length(total);
            bar.set_position(done);
            if !message.is_empty() {
                bar.set_message(message.to_string());
            }
        }
    }

    fn waiting_on(&self, message: &str) {
        if let Some(bar) = self.current().as_ref() {
            bar.set_message(message.to_string());
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.current().take() {
            bar.finish_and_clear();
        }
    }

    fn note(&self, line: &str) {
        if !self.quiet {
            self.line(line.to_string());
        }
    }

    fn warn(&self, line: &str) {
        self.line(format!("warning: {line}"));
    }
}
