//! Reporters (cargo-nextest's shape): the runner emits [`RunEvent`]s on a channel, and each
//! reporter consumes them on a thread of its own: the live display (`live`), `result.json`
//! (the contract other tools read), `junit.xml` (`junit`), `summary.md` (`markdown`) and the
//! terminal summary (`terminal`). Nothing here runs
//! anything; a new report is one more [`Reporter`].

pub mod baseline;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod live;
pub mod markdown;
pub mod metrics;
pub mod terminal;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::check::regression::{Gate, Limits};
use crate::check::verdict::{self, Checks, Judgement, Verdict};
use crate::check::{self, Analysis, FaultTiming, LatencySummary, MessageRef, Messages, Second};
use crate::cluster::images::ResolvedImage;
use crate::cluster::Cluster;
use crate::families::DrainReport;
use crate::history::{self, Record};
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

    /// The live display, the report files and the summary on stdout: a run's reporters.
    pub fn standard() -> Self {
        Self::standard_with(Vec::new())
    }

    /// The standard reporters and `extra` ones (the `--metrics` reporter).
    pub fn standard_with(extra: Vec<Box<dyn Reporter>>) -> Self {
        let mut all: Vec<Box<dyn Reporter>> = vec![Box::new(live::LiveDisplay::new())];
        all.extend(Self::files());
        all.push(Box::new(SummaryReport));
        all.extend(extra);
        Self::start(all)
    }

    /// The report files and the summary on stdout, without a live display: `faultline report`.
    pub fn again() -> Self {
        let mut all = Self::files();
        all.push(Box::new(SummaryReport));
        Self::start(all)
    }

    /// The reporters that write files into the run directory: result.json, junit.xml,
    /// summary.md, latency.hlog and report.html.
    fn files() -> Vec<Box<dyn Reporter>> {
        vec![
            Box::new(JsonReport),
            Box::new(junit::JunitReport),
            Box::new(markdown::MarkdownReport),
            Box::new(hlog::HlogReport),
            Box::new(html::HtmlReport),
        ]
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

/// What a run is, written as the history's `start` record once the cluster is up: with the
/// `end` record, everything a report needs besides the operations, so that `faultline report`
/// can rebuild every report from the history alone.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunStart {
    pub scenario: String,
    #[serde(default)]
    pub description: Option<String>,
    pub scenario_file: String,
    pub run_id: String,
    pub started_at: String,
    pub seed: u64,
    pub checks: Checks,
    /// How far each number may move against a baseline.
    #[serde(default)]
    pub regression: Limits,
    pub probe_interval_ms: f64,
    pub ack_timeout_ms: f64,
    pub cluster: ClusterFacts,
    pub workload: WorkloadFacts,
}

impl RunStart {
    pub fn new(
        s: &Scenario,
        run_id: &str,
        seed: u64,
        started_at: &str,
        cluster: &Cluster,
        images: &BTreeMap<String, ResolvedImage>,
    ) -> RunStart {
        let w = &s.workload;
        RunStart {
            scenario: s.name.clone(),
            description: s.description.clone(),
            scenario_file: s.file.display().to_string(),
            run_id: run_id.to_string(),
            started_at: started_at.to_string(),
            seed,
            checks: s.checks.clone(),
            regression: s.regression,
            probe_interval_ms: s.probe_interval.as_secs_f64() * 1000.0,
            ack_timeout_ms: w.ack_timeout.as_secs_f64() * 1000.0,
            cluster: ClusterFacts {
                family: s.topology.family.clone(),
                compose: s.topology.file.display().to_string(),
                subnet: cluster.subnet.clone(),
                nodes: cluster
                    .nodes
                    .iter()
                    .map(|n| (n.name.clone(), n.ip.to_string()))
                    .collect(),
                images: images.values().cloned().collect(),
            },
            workload: WorkloadFacts {
                rate: w.rate,
                duration_s: w.duration.as_secs_f64(),
                producers: w.producers,
                payload_bytes: w.payload_bytes,
                max_in_flight: w.max_in_flight,
                settings: w.settings.describe(&s.topology),
            },
        }
    }
}

/// What the run saw after the load, written as the history's last record.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunEnd {
    pub drain: DrainReport,
    pub health_after: HealthAfter,
    /// Time the generator waited for the in-flight cap (us).
    pub stall_us: u64,
    /// CPU the harness used during the load (s).
    pub harness_cpu_s: Option<f64>,
}

/// The version of result.json's layout: raised when a field changes meaning or goes away
/// (a new field does not raise it). `schemas/result.schema.json` describes this version.
pub const RESULT_SCHEMA_VERSION: u32 = 1;

/// The JSON Schema of result.json (`faultline schema result`).
pub fn result_schema() -> schemars::Schema {
    let mut s = schemars::generate::SchemaSettings::draft07()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<RunResult>();
    s.insert("title".into(), "faultline result.json".into());
    s
}

/// A history's records as the reports read them.
pub fn start_record(start: &RunStart) -> Record {
    Record::Start(serde_json::to_value(start).expect("run facts serialise"))
}

pub fn end_record(end: &RunEnd) -> Record {
    Record::End(serde_json::to_value(end).expect("run facts serialise"))
}

/// Rebuilds a run's result from its history alone: the run's facts from the `start` and `end`
/// records, every measure from the operations, the verdict from the checks the start record
/// keeps. The run itself makes its result this way, so `faultline report` on the same history
/// writes the same result. A run that was killed has no `end` record (its drain is then
/// incomplete, which leaves loss undecided) and may end in a cut line; both are said in the
/// notes.
pub fn recheck(history_path: &Path) -> Result<RunResult, String> {
    let facts: Rc<RefCell<(Option<serde_json::Value>, Option<serde_json::Value>)>> =
        Default::default();
    let seen = facts.clone();
    let analysis = check::analyze(|| {
        let seen = seen.clone();
        Ok(history::read(history_path)?.inspect(move |r| match r {
            Ok(Record::Start(v)) => seen.borrow_mut().0 = Some(v.clone()),
            Ok(Record::End(v)) => seen.borrow_mut().1 = Some(v.clone()),
            _ => {}
        }))
    });
    let unreadable = |e: &dyn std::fmt::Display| format!("{}: {e}", history_path.display());
    if let Err(e) = &analysis {
        // Without the start record nothing can be said; with it, a broken history is a
        // checker that broke (verdict unknown), as in the run.
        if facts.borrow().0.is_none() {
            return Err(unreadable(e));
        }
    }
    let (start, end) = facts.take();
    let start: RunStart = serde_json::from_value(start.ok_or_else(|| {
        unreadable(&"no start record (the run stopped before its cluster was up, or an older faultline wrote it)")
    })?)
    .map_err(|e| unreadable(&format!("start record: {e}")))?;
    let end: Option<RunEnd> = end
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| unreadable(&format!("end record: {e}")))?;
    let cut = history::last_line_cut(history_path).unwrap_or(false);
    Ok(RunResult::new(
        start,
        end,
        analysis.map_err(|e| e.to_string()),
        cut,
    ))
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RunResult {
    /// The version of this layout ([`RESULT_SCHEMA_VERSION`]); `faultline schema result`
    /// prints its JSON Schema.
    pub schema_version: u32,
    pub verdict: Verdict,
    pub scenario: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
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
    /// The tolerances of the baseline gate (the scenario's `regression:`).
    pub regression_limits: Limits,
    /// The run against a baseline, when one was given (`--baseline`, `faultline compare`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regression: Option<Gate>,
}

/// A run's result in a few figures, for what runs a scenario as one part of more (the
/// failover run of `faultline capacity`).
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Headline {
    pub verdict: Verdict,
    pub acked: u64,
    pub lost: u64,
    /// Publishes whose outcome stayed unknown (neither acknowledged nor refused, nor found).
    pub unknown: u64,
    /// The longest failover of the run's faults (ms), where one was measured.
    pub failover_ms: Option<f64>,
    /// The longest time without an acknowledgement during a fault (ms).
    pub max_ack_gap_ms: Option<f64>,
    /// Latency from the intended send time, per phase ("baseline", "fault", "recovery").
    pub latency_ms: BTreeMap<String, LatencySummary>,
}

impl Headline {
    pub fn of(r: &RunResult) -> Headline {
        let longest =
            |f: fn(&FaultTiming) -> Option<f64>| r.faults.iter().filter_map(f).reduce(f64::max);
        Headline {
            verdict: r.verdict,
            acked: r.messages.acked,
            lost: r.messages.lost,
            unknown: r.messages.unknown,
            failover_ms: longest(|f| f.failover_ms),
            max_ack_gap_ms: longest(|f| f.max_ack_gap_ms),
            latency_ms: r.latency_ms.clone(),
        }
    }
}

/// What could make the numbers wrong (MEASUREMENT.md, "Validity").
#[derive(Debug, Serialize, schemars::JsonSchema)]
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

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthAfter {
    pub healthy: bool,
    /// What the cluster said when it was not healthy.
    pub detail: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClusterFacts {
    pub family: String,
    pub compose: String,
    pub subnet: String,
    pub nodes: BTreeMap<String, String>,
    pub images: Vec<ResolvedImage>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkloadFacts {
    pub rate: f64,
    pub duration_s: f64,
    pub producers: u32,
    pub payload_bytes: usize,
    pub max_in_flight: usize,
    pub settings: serde_json::Value,
}

impl RunResult {
    /// The result of a run from its facts and the analysis of its history (or why the
    /// history could not be analysed); `cut`: the history's last line was cut.
    pub fn new(
        start: RunStart,
        end: Option<RunEnd>,
        analysis: Result<Analysis, String>,
        cut: bool,
    ) -> Self {
        let load_us = start.workload.duration_s * 1e6;
        let judged = verdict::Validity {
            drain_complete: end.as_ref().is_some_and(|e| e.drain.complete),
            stall_fraction: end
                .as_ref()
                .map_or(0.0, |e| e.stall_us as f64 / load_us.max(1.0)),
            interrupted: end.is_none(),
            health_after: end
                .as_ref()
                .map(|e| (e.health_after.healthy, e.health_after.detail.clone())),
        };
        let (analysis, judgement) = match analysis {
            Ok(a) => {
                let j = verdict::judge(&start.checks, &a, &judged);
                (a, j)
            }
            // A checker that breaks yields "unknown", never a pass.
            Err(e) => (
                Analysis::default(),
                Judgement::checker_broke(format!("the checker could not read the history: {e}")),
            ),
        };
        let mut notes = analysis.notes.clone();
        if cut {
            notes.push(
                "the history's last line was cut (the run was killed while writing it): it was left out"
                    .into(),
            );
        }
        let (drain, health_after, stall_us, cpu_s) = match end {
            Some(e) => (e.drain, e.health_after, e.stall_us, e.harness_cpu_s),
            None => {
                notes.push(
                    "the history has no end record: the run stopped before its drain ended, so loss cannot be decided"
                        .into(),
                );
                let unknown = HealthAfter {
                    healthy: false,
                    detail: Some("not asked: the run stopped before".into()),
                };
                (DrainReport::default(), unknown, 0, None)
            }
        };
        notes.extend(drain.notes.iter().cloned());
        if drain.foreign > 0 {
            notes.push(format!(
                "the drain read {} message(s) without a faultline identity",
                drain.foreign
            ));
        }
        RunResult {
            schema_version: RESULT_SCHEMA_VERSION,
            verdict: judgement.verdict,
            scenario: start.scenario,
            description: start.description,
            scenario_file: start.scenario_file,
            run_id: start.run_id,
            started_at: start.started_at,
            seed: start.seed,
            messages: analysis.messages,
            faults: analysis.faults,
            latency_ms: analysis.latency_ms,
            service_ms: analysis.service_ms,
            send_delay_ms: analysis.send_delay_ms,
            checks: judgement,
            validity: Validity {
                clock: "harness monotonic clock (std::time::Instant), ms since the run started",
                probe_interval_ms: start.probe_interval_ms,
                ack_timeout_ms: start.ack_timeout_ms,
                drain_complete: drain.complete,
                drain_notes: drain.notes,
                generator_stall_ms: stall_us as f64 / 1000.0,
                harness_cpu_percent: cpu_s
                    .map(|cpu| (cpu / start.workload.duration_s * 1000.0).round() / 10.0),
            },
            cluster: start.cluster,
            health_after,
            workload: start.workload,
            baseline_acks_per_s: analysis.baseline_acks_per_s,
            detection_ms_by_kind: analysis.detection_ms_by_kind,
            lost_sample: analysis.lost_sample,
            duplicated_sample: analysis.duplicated_sample,
            unexpected_sample: analysis.unexpected_sample,
            timeline: analysis.timeline,
            notes,
            regression_limits: start.regression,
            regression: None,
        }
    }
}

pub fn write_json(result: &RunResult, path: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(result).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

#[cfg(test)]
mod tests;
