//! What a run tells the user while it goes on, as typed events: phase changes, notes, and the
//! load's counters once a second. Whoever raises them (the runner, the schedule, the cluster
//! layer, a family) only emits; what the user sees is decided by the reporters that consume
//! them (`report::live`: a live display on a terminal, plain timestamped lines elsewhere).

use std::time::{Duration, Instant};

/// One thing the run tells the user.
#[derive(Clone, Debug, PartialEq)]
pub enum ProgressEvent {
    /// A new phase of the run ("starting cluster", "fault 0: kill n2").
    Phase(String),
    /// A note inside the current phase.
    Note(String),
    /// The load's counters, once a second while it runs.
    Load(LoadStatus),
    /// A transient state of a long wait (an image pull, a broker not ready yet), replaced by
    /// the next one.
    Status(String),
}

/// The load generator's counters at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadStatus {
    /// Seconds since the load started, and how long it runs.
    pub elapsed_s: f64,
    pub duration_s: f64,
    pub acked: u64,
    /// Acknowledgements in the last second.
    pub acked_per_s: u64,
    pub failed: u64,
    pub unknown: u64,
    pub in_flight: u64,
    /// The rate the load offers (msg/s).
    pub rate: f64,
    /// Latency from the intended send time of what was acknowledged in the last second, p50
    /// and p99 (ms, to within a tenth); `None` when nothing was.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

impl std::fmt::Display for LoadStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "load {:>5.1}/{:.0}s  acked {} ({}/s)  failed {}  unknown {}  in flight {}",
            self.elapsed_s,
            self.duration_s,
            self.acked,
            self.acked_per_s,
            self.failed,
            self.unknown,
            self.in_flight
        )?;
        if let (Some(p50), Some(p99)) = (self.latency_p50_ms, self.latency_p99_ms) {
            write!(f, "  latency p50 {p50:.1} p99 {p99:.1} ms")?;
        }
        Ok(())
    }
}

/// An event with the time since the run started.
#[derive(Clone, Debug, PartialEq)]
pub struct Stamped {
    pub at: Duration,
    pub event: ProgressEvent,
}

type Sink = Box<dyn Fn(Stamped) + Send + Sync>;

/// The handle every part of a run emits its progress through.
pub struct Progress {
    start: Instant,
    sink: Sink,
}

impl Progress {
    /// Progress events go to `sink`, stamped with the time since this call.
    pub fn new(sink: impl Fn(Stamped) + Send + Sync + 'static) -> Self {
        Progress {
            start: Instant::now(),
            sink: Box::new(sink),
        }
    }

    /// A handle that drops every event (for library callers and tests that show nothing).
    pub fn silent() -> Self {
        Self::new(|_| {})
    }

    fn emit(&self, event: ProgressEvent) {
        (self.sink)(Stamped {
            at: self.start.elapsed(),
            event,
        });
    }

    /// A new phase of the run.
    pub fn phase(&self, name: &str) {
        self.emit(ProgressEvent::Phase(name.to_string()));
    }

    /// A note inside the current phase.
    pub fn note(&self, text: &str) {
        self.emit(ProgressEvent::Note(text.to_string()));
    }

    /// The load's counters.
    pub fn load(&self, status: LoadStatus) {
        self.emit(ProgressEvent::Load(status));
    }

    /// A transient state of a long wait.
    pub fn status(&self, text: &str) {
        self.emit(ProgressEvent::Status(text.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn events_reach_the_sink_in_order_and_stamped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let p = Progress::new(move |s| sink.lock().unwrap().push(s));
        p.phase("starting cluster");
        p.note("n1 up");
        let events: Vec<ProgressEvent> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.event.clone())
            .collect();
        assert_eq!(
            events,
            vec![
                ProgressEvent::Phase("starting cluster".into()),
                ProgressEvent::Note("n1 up".into())
            ]
        );
        let stamps: Vec<Duration> = seen.lock().unwrap().iter().map(|s| s.at).collect();
        assert!(stamps[0] <= stamps[1]);
    }
}
