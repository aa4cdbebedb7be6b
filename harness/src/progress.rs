//! What the user sees while a run goes on: phase headings, notes, and one live status line.
//!
//! Everything goes to stderr so stdout carries only the summary. On a terminal the status line
//! is redrawn in place; elsewhere (CI logs) it is printed as a plain line at most every few
//! seconds so logs stay readable.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Progress {
    tty: bool,
    start: Instant,
    state: Mutex<State>,
}

struct State {
    status_shown: bool,
    last_plain_status: Option<Instant>,
}

const PLAIN_STATUS_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    pub fn new() -> Self {
        Progress {
            tty: std::io::stderr().is_terminal(),
            start: Instant::now(),
            state: Mutex::new(State {
                status_shown: false,
                last_plain_status: None,
            }),
        }
    }

    fn stamp(&self) -> String {
        let s = self.start.elapsed().as_secs_f64();
        format!("[{:>6.1}s]", s)
    }

    fn line(&self, text: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        if state.status_shown {
            let _ = write!(err, "\r\x1b[2K");
            state.status_shown = false;
        }
        let _ = writeln!(err, "{} {text}", self.stamp());
    }

    /// A new phase of the run ("starting cluster", "fault").
    pub fn phase(&self, name: &str) {
        self.line(&format!("==> {name}"));
    }

    /// A note inside the current phase.
    pub fn note(&self, text: &str) {
        self.line(&format!("    {text}"));
    }

    /// The live status line (acked/s, in flight...).
    pub fn status(&self, text: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{} {text}", self.stamp());
            let _ = err.flush();
            state.status_shown = true;
        } else if state
            .last_plain_status
            .is_none_or(|t| t.elapsed() >= PLAIN_STATUS_EVERY)
        {
            state.last_plain_status = Some(Instant::now());
            let _ = writeln!(err, "{}     {text}", self.stamp());
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
