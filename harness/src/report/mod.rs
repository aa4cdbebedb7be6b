//! Reporters (cargo-nextest's shape): the runner emits [`RunEvent`]s on a channel, and each
//! reporter consumes them on a thread of its own: the live display (`live`), `result.json`
//! (the contract other tools read), `junit.xml` (`junit`), `summary.md` (`markdown`) and the
//! terminal summary (`terminal`). Nothing here runs
//! anything; a new report is one more [`Reporter`].

pub mod junit;
pub mod live;
pub mod markdown;
pub mod terminal;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;

use crate::check::verdict::{Judgement, Verdict};
use crate::check::{Analysis, FaultTiming, LatencySummary, MessageRef, Messages, Second};
use crate::cluster::images::ResolvedImage;
use crate::cluster::Cluster;
use crate::families::DrainReport;
use crate::progress::{Progress, Stamped};
use crate::scenario::Scenario;

/// What the runner tells the reporters, in the order it happened.
pub enum RunEvent {
    /// A phase, a note, the load's counters.
    Progress(Stamped),
    /// The checked result (sent before teardown; the run's exit follows from its verdict).
    Finished {
        result: Box<RunResult>,
        out_dir: PathBuf,
    },
}

/// A consumer of a run's events. An error makes the run exit 3 (the reports are part of the
/// contract), after every reporter has had every event.
pub trait Reporter: Send {
    fn on(&mut self, event: &RunEvent) -> std::io::Result<()>;

    /// The run is over: no event will follow.
    fn close(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `result.json` into the run directory.
pub struct JsonReport;

impl Reporter for JsonReport {
    fn on(&mut self, event: &RunEvent) -> std::io::Result<()> {
        match event {
            RunEvent::Finished { result, out_dir } => {
                let path = out_dir.join("result.json");
                write_json(result, &path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("write {}: {e}", path.display()))
                })
            }
            RunEvent::Progress(_) => Ok(()),
        }
    }
}

/// Prints the summary on stdout.
pub struct SummaryReport;

impl Reporter for SummaryReport {
    fn on(&mut self, event: &RunEvent) -> std::io::Result<()> {
        if let RunEvent::Finished { result, out_dir } = event {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(terminal::render(result, out_dir).as_bytes())?;
            out.flush()?;
        }
        Ok(())
    }
}

/// The reporters of a run, fed in order from a channel on a thread of their own, so a slow
/// terminal never holds up the run.
pub struct Reporters {
    tx: mpsc::Sender<Message>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

/// What goes down the reporters' channel: an event, or the end of the run. The end is a
/// message of its own because tasks of an interrupted run may still hold a sender when the
/// run is over: waiting for every sender to go would wait for them.
enum Message {
    Event(RunEvent),
    Close,
}

impl Reporters {
    pub fn start(mut reporters: Vec<Box<dyn Reporter>>) -> Self {
        let (tx, rx) = mpsc::channel::<Message>();
        let thread = std::thread::spawn(move || {
            let mut errors = Vec::new();
            for message in rx {
                let Message::Event(event) = message else {
                    break;
                };
                for r in reporters.iter_mut() {
                    if let Err(e) = r.on(&event) {
                        errors.push(e.to_string());
                    }
                }
            }
            for r in reporters.iter_mut() {
                if let Err(e) = r.close() {
                    errors.push(e.to_string());
                }
            }
            errors
        });
        Reporters { tx, thread }
    }

    /// The live display, result.json, junit.xml, summary.md and the summary on stdout.
    pub fn standard() -> Self {
        Self::start(vec![
            Box::new(live::LiveDisplay::new()),
            Box::new(JsonReport),
            Box::new(junit::JunitReport),
            Box::new(markdown::MarkdownReport),
            Box::new(SummaryReport),
        ])
    }

    /// The handle the runner emits through.
    pub fn events(&self) -> Events {
        Events(self.tx.clone())
    }

    /// Waits until every reporter has had every event sent so far; the errors they met. Events
    /// sent afterwards are dropped.
    pub fn close(self) -> Vec<String> {
        let _ = self.tx.send(Message::Close);
        self.thread
            .join()
            .unwrap_or_else(|_| vec!["a reporter panicked".into()])
    }
}

/// Where the runner sends its events.
#[derive(Clone)]
pub struct Events(mpsc::Sender<Message>);

impl Events {
    /// A progress handle whose events go to the reporters.
    pub fn progress(&self) -> Progress {
        let tx = self.0.clone();
        Progress::new(move |s| {
            // The reporters outlive the run; a send fails only once they are gone.
            let _ = tx.send(Message::Event(RunEvent::Progress(s)));
        })
    }

    /// The checked result.
    pub fn finished(&self, result: RunResult, out_dir: &Path) {
        let _ = self.0.send(Message::Event(RunEvent::Finished {
            result: Box::new(result),
            out_dir: out_dir.to_path_buf(),
        }));
    }
}

/// Everything a run knows at the end, for the reporters.
pub struct RunFacts<'a> {
    pub scenario: &'a Scenario,
    pub run_id: &'a str,
    pub seed: u64,
    pub started_at: &'a str,
    pub cluster: &'a Cluster,
    pub images: &'a BTreeMap<String, ResolvedImage>,
    pub analysis: Analysis,
    pub judgement: Judgement,
    pub drain: DrainReport,
    pub health_after: HealthAfter,
    pub stall_us: u64,
    pub harness_cpu_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct RunResult {
    pub verdict: Verdict,
    pub scenario: String,
    pub scenario_file: String,
    pub run_id: String,
    pub started_at: String,
    pub seed: u64,
    pub messages: Messages,
    pub faults: Vec<FaultTiming>,
    pub latency_ms: BTreeMap<String, LatencySummary>,
    pub service_ms: LatencySummary,
    pub send_delay_ms: LatencySummary,
    pub checks: Judgement,
    pub validity: Validity,
    pub cluster: ClusterFacts,
    /// The cluster's own health once the load ended, every fault healed and the stream drained.
    pub health_after: HealthAfter,
    pub workload: WorkloadFacts,
    pub baseline_acks_per_s: Option<f64>,
    pub detection_ms_by_kind: BTreeMap<String, crate::check::DetectionSummary>,
    pub lost_sample: Vec<MessageRef>,
    pub duplicated_sample: Vec<MessageRef>,
    pub unexpected_sample: Vec<MessageRef>,
    pub timeline: Vec<Second>,
    pub notes: Vec<String>,
}

/// What could make the numbers wrong (MEASUREMENT.md, "Validity").
#[derive(Debug, Serialize)]
pub struct Validity {
    pub clock: &'static str,
    /// Probe polling interval: the error bar of every detection time.
    pub probe_interval_ms: f64,
    pub ack_timeout_ms: f64,
    pub drain_complete: bool,
    pub drain_notes: Vec<String>,
    pub generator_stall_ms: f64,
    /// CPU the harness used during the load, in % of one core (the machine's cores are
    /// shared with the cluster under test).
    pub harness_cpu_percent: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HealthAfter {
    pub healthy: bool,
    /// What the cluster said when it was not healthy.
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ClusterFacts {
    pub family: String,
    pub compose: String,
    pub subnet: String,
    pub nodes: BTreeMap<String, String>,
    pub images: Vec<ResolvedImage>,
}

#[derive(Debug, Serialize)]
pub struct WorkloadFacts {
    pub rate: f64,
    pub duration_s: f64,
    pub producers: u32,
    pub payload_bytes: usize,
    pub max_in_flight: usize,
    pub settings: serde_json::Value,
}

impl RunResult {
    pub fn new(f: RunFacts<'_>) -> Self {
        let s = f.scenario;
        let w = &s.workload;
        let settings = w.settings.describe(&s.topology);
        let mut notes = f.analysis.notes.clone();
        notes.extend(f.drain.notes.iter().cloned());
        if f.drain.foreign > 0 {
            notes.push(format!(
                "the drain read {} message(s) without a faultline identity",
                f.drain.foreign
            ));
        }
        RunResult {
            verdict: f.judgement.verdict,
            scenario: s.name.clone(),
            scenario_file: s.file.display().to_string(),
            run_id: f.run_id.to_string(),
            started_at: f.started_at.to_string(),
            seed: f.seed,
            messages: f.analysis.messages.clone(),
            faults: f.analysis.faults.clone(),
            latency_ms: f.analysis.latency_ms.clone(),
            service_ms: f.analysis.service_ms.clone(),
            send_delay_ms: f.analysis.send_delay_ms.clone(),
            checks: f.judgement,
            validity: Validity {
                clock: "harness monotonic clock (std::time::Instant), ms since the run started",
                probe_interval_ms: s.probe_interval.as_secs_f64() * 1000.0,
                ack_timeout_ms: w.ack_timeout.as_secs_f64() * 1000.0,
                drain_complete: f.drain.complete,
                drain_notes: f.drain.notes.clone(),
                generator_stall_ms: f.stall_us as f64 / 1000.0,
                harness_cpu_percent: f
                    .harness_cpu_s
                    .map(|cpu| (cpu / w.duration.as_secs_f64() * 1000.0).round() / 10.0),
            },
            cluster: ClusterFacts {
                family: s.topology.family.clone(),
                compose: s.topology.file.display().to_string(),
                subnet: f.cluster.subnet.clone(),
                nodes: f
                    .cluster
                    .nodes
                    .iter()
                    .map(|n| (n.name.clone(), n.ip.to_string()))
                    .collect(),
                images: f.images.values().cloned().collect(),
            },
            health_after: f.health_after.clone(),
            workload: WorkloadFacts {
                rate: w.rate,
                duration_s: w.duration.as_secs_f64(),
                producers: w.producers,
                payload_bytes: w.payload_bytes,
                max_in_flight: w.max_in_flight,
                settings,
            },
            baseline_acks_per_s: f.analysis.baseline_acks_per_s,
            detection_ms_by_kind: f.analysis.detection_ms_by_kind.clone(),
            lost_sample: f.analysis.lost_sample.clone(),
            duplicated_sample: f.analysis.duplicated_sample.clone(),
            unexpected_sample: f.analysis.unexpected_sample.clone(),
            timeline: f.analysis.timeline.clone(),
            notes,
        }
    }
}

pub fn write_json(result: &RunResult, path: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(result).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

#[cfg(test)]
mod tests;
