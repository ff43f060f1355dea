//! Progress on a terminal for long work (ingesting, verifying, prefetching).
//!
//! Drawn on stderr only when stderr is a terminal; otherwise silent, so logs and pipes
//! stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar, or nothing when stderr is not a terminal.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar counting items.
    pub fn new(what: &str, total: u64) -> Bar {
        Bar::styled(
            what,
            total,
            "{msg:>20} [{bar:30}] {pos}/{len} ({per_sec}, {eta})",
        )
    }

    /// A bar counting bytes.
    pub fn bytes(what: &str, total: u64) -> Bar {
        Bar::styled(
            what,
            total,
            "{msg:>20} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
    }

    fn styled(what: &str, total: u64, template: &str) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Bar { bar }
    }

    /// Advances by `n`.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Sets the position.
    pub fn set(&self, pos: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(pos);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
