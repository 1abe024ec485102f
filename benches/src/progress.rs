//! The progress bar shown on a terminal during a run (indicatif), and the
//! log lines printed beside it.
//!
//! Scenarios announce how many measurements they are about to make
//! ([`add`]); [`crate::scenarios::isolated_try`] names the running one
//! ([`begin`]) and counts it when it ends ([`done`]). Every log line goes
//! through [`line()`] (or the `say!` macro), which prints above the bar, or
//! plainly on stderr when stderr is not a terminal (CI), where the bar is
//! hidden.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `f` on the bar, if one was started.
fn with_bar(f: impl FnOnce(&ProgressBar)) {
    if let Ok(bar) = BAR.lock()
        && let Some(bar) = bar.as_ref()
    {
        f(bar);
    }
}

/// Starts the bar on stderr (hidden unless stderr is a terminal), with no
/// measurement counted yet.
pub fn start() {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} measurements  {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    if let Ok(mut slot) = BAR.lock() {
        *slot = Some(bar);
    }
}

/// `n` more measurements are planned.
pub fn add(n: usize) {
    with_bar(|b| b.inc_length(n as u64));
}

/// The measurement `label` is running.
pub fn begin(label: &str) {
    with_bar(|b| b.set_message(label.to_owned()));
}

/// One measurement ended.
pub fn done() {
    with_bar(|b| b.inc(1));
}

/// Prints a log line on stderr, above the bar when one is drawn.
pub fn line(text: &str) {
    let mut printed = false;
    with_bar(|b| {
        if !b.is_hidden() {
            b.println(text);
            printed = true;
        }
    });
    if !printed {
        eprintln!("{text}");
    }
}

/// Removes the bar (at the end of the run).
pub fn finish() {
    if let Ok(mut slot) = BAR.lock()
        && let Some(bar) = slot.take()
    {
        bar.finish_and_clear();
    }
}
