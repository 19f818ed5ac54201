//! Progress bars for long steps (indicatif), drawn on standard error.

use indicatif::{ProgressBar, ProgressStyle};

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

/// A `(done, total, what)` callback driving `bar`.
pub fn callback(bar: &ProgressBar) -> impl Fn(usize, usize, &str) + '_ {
    move |done, total, what| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(what.to_string());
    }
}
