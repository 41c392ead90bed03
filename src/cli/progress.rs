//! Progress of long commands (apply, fork, export, vacuum, gc) drawn on stderr with
//! `indicatif`: a bar with counts, bytes and rate where the total is known, a spinner where
//! it is not.
//!
//! Drawn only when stderr is a terminal and `--quiet` is not given, so scripts, pipes and
//! logs see exactly what they saw before. The bar is cleared when the work is done, so the
//! command's own lines follow on a clean terminal.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use agentfs::progress::Progress;

/// How often a bar or spinner is redrawn while nothing advances (keeps the rate and the
/// spinner moving).
const TICK: Duration = Duration::from_millis(100);

/// A [`Progress`] that draws on stderr, or (disabled) ignores everything.
pub struct Bar {
    /// `None` when disabled.
    state: Option<Mutex<State>>,
}

/// The phase being drawn.
#[derive(Default)]
struct State {
    bar: Option<ProgressBar>,
    what: String,
    items: u64,
    total_items: Option<u64>,
    bytes: u64,
    /// Whether the bar's position counts bytes (else items).
    by_bytes: bool,
}

impl Bar {
    /// A bar drawn on stderr if stderr is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> Bar {
        Bar::enabled_if(!quiet && std::io::stderr().is_terminal())
    }

    /// A bar drawn when `enabled`, else one that draws nothing.
    pub fn enabled_if(enabled: bool) -> Bar {
        Bar {
            state: enabled.then(|| Mutex::new(State::default())),
        }
    }

    /// Runs `f` (which prints) with the bar hidden, so the two do not mix on a terminal.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let bar = self.with(|s| s.bar.clone()).flatten();
        match bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        let state = self.state.as_ref()?;
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        Some(f(&mut s))
    }
}

impl State {
    /// The message beside the bar: what is done, and how many items of how many.
    fn message(&self) -> String {
        let mut m = match self.total_items {
            Some(total) => format!("{} {}/{}", self.what, self.items, total),
            None => format!("{} {}", self.what, self.items),
        };
        if !self.by_bytes && self.bytes > 0 {
            m.push_str(&format!(", {}", HumanBytes(self.bytes)));
        }
        m
    }

    /// Ends the phase being drawn, clearing it from the terminal.
    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn start(&self, what: &str, total_items: Option<u64>, total_bytes: Option<u64>) {
        self.with(|s| {
            s.clear();
            let by_bytes = total_bytes.is_some_and(|b| b > 0);
            let length = if by_bytes { total_bytes } else { total_items };
            let template = match (by_bytes, length) {
                (true, _) => {
                    "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} \
                     ({binary_bytes_per_sec}, {eta})"
                }
                (false, Some(_)) => "{msg} [{wide_bar}] ({per_sec}, {eta})",
                (false, None) => "{spinner} {msg} ({elapsed})",
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = ProgressBar::with_draw_target(length, ProgressDrawTarget::stderr())
                .with_style(style);
            *s = State {
                bar: None,
                what: what.to_string(),
                items: 0,
                total_items,
                bytes: 0,
                by_bytes,
            };
            bar.set_message(s.message());
            bar.enable_steady_tick(TICK);
            bar.tick();
            s.bar = Some(bar);
        });
    }

    fn advance(&self, items: u64, bytes: u64) {
        self.with(|s| {
            s.items += items;
            s.bytes += bytes;
            let message = s.message();
            if let Some(bar) = &s.bar {
                bar.inc(if s.by_bytes { bytes } else { items });
                if items > 0 || !s.by_bytes {
                    bar.set_message(message);
                }
            }
        });
    }

    fn finish(&self) {
        self.with(State::clear);
    }
}

impl Drop for Bar {
    /// A command that fails half-way leaves no bar behind on the terminal.
    fn drop(&mut self) {
        self.with(State::clear);
    }
}
