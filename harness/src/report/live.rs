//! The live display of a run: what the user watches while it goes on.
//!
//! On a terminal (and not under `CI=true`), an indicatif bar at the bottom shows the load's
//! progress and counters while phases and notes scroll above it. Elsewhere (CI logs, pipes)
//! every phase and note is a plain timestamped line, and the counters a line at most every
//! five seconds, so logs stay readable and other programs can follow them:
//!
//! ```text
//! [  12.3s] ==> fault 0: kill n2
//! [  12.4s]     n1 reports n2 down
//! [  15.0s]     load  15.0/40s  acked 5990 (400/s)  failed 0  unknown 0  in flight 1
//! ```

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Reporter, RunEvent};
use crate::progress::{ProgressEvent, Stamped};

/// How often the counters (or a wait's state) are written as a plain line.
const PLAIN_STATUS_EVERY: Duration = Duration::from_secs(5);

pub struct LiveDisplay {
    /// The bar on a terminal; `None` for plain lines.
    bar: Option<ProgressBar>,
    /// Where plain lines go (stderr; a buffer in tests).
    plain: Box<dyn Write + Send>,
    last_plain_status: Option<Duration>,
}

impl LiveDisplay {
    /// A bar on a terminal, plain lines under CI or when stderr is not a terminal.
    pub fn new() -> Self {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        if std::io::stderr().is_terminal() && !ci {
            Self::bar()
        } else {
            Self::plain()
        }
    }

    /// Plain timestamped lines on stderr.
    pub fn plain() -> Self {
        Self::plain_to(Box::new(std::io::stderr()))
    }

    /// Plain timestamped lines to `out`.
    pub fn plain_to(out: Box<dyn Write + Send>) -> Self {
        LiveDisplay {
            bar: None,
            plain: out,
            last_plain_status: None,
        }
    }

    fn bar() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        LiveDisplay {
            bar: Some(bar),
            plain: Box::new(std::io::sink()),
            last_plain_status: None,
        }
    }

    /// A state replaced by the next one: the bar's message, or a plain line at most every
    /// five seconds.
    fn transient(&mut self, s: &Stamped, text: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(text.to_string()),
            None => {
                if self
                    .last_plain_status
                    .is_none_or(|t| s.at.saturating_sub(t) >= PLAIN_STATUS_EVERY)
                {
                    self.last_plain_status = Some(s.at);
                    self.line(s, &format!("    {text}"));
                }
            }
        }
    }

    fn line(&mut self, s: &Stamped, text: &str) {
        let line = format!("[{:>6.1}s] {text}", s.at.as_secs_f64());
        match &self.bar {
            Some(bar) => bar.println(line),
            None => {
                let _ = writeln!(self.plain, "{line}");
            }
        }
    }
}

impl Default for LiveDisplay {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for LiveDisplay {
    fn on(&mut self, event: &RunEvent) -> std::io::Result<()> {
        let RunEvent::Progress(s) = event else {
            return Ok(());
        };
        match &s.event {
            ProgressEvent::Phase(name) => {
                self.line(s, &format!("==> {name}"));
                if let Some(bar) = &self.bar {
                    bar.set_message(name.clone());
                }
            }
            ProgressEvent::Note(text) => self.line(s, &format!("    {text}")),
            ProgressEvent::Load(load) => self.transient(s, &load.to_string()),
            ProgressEvent::Status(text) => self.transient(s, text),
        }
        Ok(())
    }

    fn close(&mut self) -> std::io::Result<()> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::progress::LoadStatus;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn at(s: f64, event: ProgressEvent) -> RunEvent {
        RunEvent::Progress(Stamped {
            at: Duration::from_secs_f64(s),
            event,
        })
    }

    #[test]
    fn plain_lines_keep_the_format_logs_and_tests_follow() {
        let buffer = Buffer::default();
        let mut live = LiveDisplay::plain_to(Box::new(buffer.clone()));
        let load = |elapsed_s| {
            ProgressEvent::Load(LoadStatus {
                elapsed_s,
                duration_s: 40.0,
                acked: 400,
                acked_per_s: 400,
                ..Default::default()
            })
        };
        for event in [
            at(0.0, ProgressEvent::Phase("run fl-x: scenario s".into())),
            at(12.3, ProgressEvent::Phase("fault 0: kill n2".into())),
            at(12.4, ProgressEvent::Note("n1 reports n2 down".into())),
            at(13.0, load(1.0)),
            // Within five seconds of the last one: not written.
            at(14.0, load(2.0)),
            at(18.0, load(6.0)),
        ] {
            live.on(&event).unwrap();
        }
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "[   0.0s] ==> run fl-x: scenario s\n\
             [  12.3s] ==> fault 0: kill n2\n\
             [  12.4s]     n1 reports n2 down\n\
             [  13.0s]     load   1.0/40s  acked 400 (400/s)  failed 0  unknown 0  in flight 0\n\
             [  18.0s]     load   6.0/40s  acked 400 (400/s)  failed 0  unknown 0  in flight 0\n"
        );
    }
}
