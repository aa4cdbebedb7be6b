//! Checkers: pure functions from a recorded history to findings.
//!
//! [`analyze`] reads the history twice as a stream (never whole). Pass 1 (`ingest`) builds
//! per-producer bitsets (invoked, acknowledged, failed, unknown, received, received twice), the
//! fault/heal/phase/probe events and a per-millisecond count of acknowledgements; pass 2, which
//! needs the fault times, feeds each completion to the latency and failover measures. One file
//! per measure: `loss` (safety verdicts), `latency`, `failover` (client error, failover, longest
//! ack gap, the fault windows), `detection`, `recovery` (baseline and window throughput,
//! recovery). Every definition follows docs/measurement.md; anything that cannot be measured is
//! `None` with a note saying why, never 0.

mod bitset;
mod detection;
mod failover;
mod ingest;
mod latency;
pub use latency::new_histogram;
mod loss;
mod recovery;
pub mod regression;
pub mod verdict;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::{Kind, Record};
pub use bitset::Bitset;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Messages {
    /// Publishes attempted.
    pub invoked: u64,
    /// Acknowledged by the broker (`ok`).
    pub acked: u64,
    /// Acknowledged and never received.
    pub lost: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// Received but never published.
    pub unexpected: u64,
    /// Unknown outcome (`info`) and received.
    pub recovered: u64,
    /// Definitely not applied (`fail`).
    pub failed: u64,
    /// Unknown outcome and not received (most likely not applied, but it may have been), plus
    /// publishes that never completed.
    pub unknown: u64,
    /// Reported as failed, yet received: the client or broker said "not applied" wrongly.
    pub failed_received: u64,
    /// Distinct messages received while draining.
    pub received: u64,
}

/// A message identity, for examples in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct MessageRef {
    pub producer: u32,
    pub seq: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FaultTiming {
    /// The occurrence's run-unique id.
    pub index: usize,
    /// The fault's index in the scenario.
    pub spec: Option<usize>,
    pub kind: String,
    /// The node(s) hit, comma-separated (for a partition: the side cut off, if any).
    pub target: String,
    /// What exactly was done, when the target alone does not say it (the partition's sides).
    pub description: Option<String>,
    pub t_fault_ms: Option<f64>,
    pub t_heal_ms: Option<f64>,
    pub detection_ms: Option<f64>,
    /// The observation that counted as detection, in words.
    pub detection_signal: Option<String>,
    pub new_leader_ms: Option<f64>,
    pub new_leader: Option<String>,
    pub client_error_ms: Option<f64>,
    pub failover_ms: Option<f64>,
    pub recovery_ms: Option<f64>,
    pub max_ack_gap_ms: Option<f64>,
    /// Topology changes: from `t_fault` until the cluster reported the change done (the new
    /// node joined; the removed node's data re-placed).
    pub settled_ms: Option<f64>,
    /// The fault's window, from `t_fault` to its heal (or the next fault, or the end of the
    /// load): acknowledgements per second, against `baseline_acks_per_s`...
    pub window_acks_per_s: Option<f64>,
    /// ...and the latency of the publishes due in it.
    pub window_latency_ms: LatencySummary,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DetectionSummary {
    pub faults: usize,
    /// Faults whose detection was observed.
    pub detected: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Counts for one second of the run (by completion time), for plots of the failover window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Second {
    pub t_s: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub max_latency_ms: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Analysis {
    pub messages: Messages,
    pub lost_sample: Vec<MessageRef>,
    pub duplicated_sample: Vec<MessageRef>,
    pub unexpected_sample: Vec<MessageRef>,
    pub faults: Vec<FaultTiming>,
    /// Latency (`t_done - t_intended`) of acknowledged publishes, by the phase in which they
    /// were due: baseline, fault, recovery.
    pub latency_ms: BTreeMap<String, LatencySummary>,
    /// Service time (`t_done - t_sent`) and send delay (`t_sent - t_intended`), all phases.
    pub service_ms: LatencySummary,
    pub send_delay_ms: LatencySummary,
    pub baseline_acks_per_s: Option<f64>,
    /// Detection times grouped by fault kind: a killed process and a partitioned one are
    /// noticed by very different means.
    pub detection_ms_by_kind: BTreeMap<String, DetectionSummary>,
    pub timeline: Vec<Second>,
    pub notes: Vec<String>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Analyses a history. `open` is called twice and must yield the same records each time.
pub fn analyze<I, F>(mut open: F) -> std::io::Result<Analysis>
where
    I: Iterator<Item = std::io::Result<Record>>,
    F: FnMut() -> std::io::Result<I>,
{
    let mut a = Analysis::default();
    let ingest::Ingested {
        producers,
        faults,
        probes,
        phases,
        acks_per_ms,
        foreign,
    } = ingest::ingest(open()?)?;
    loss::count(&producers, foreign, &mut a);

    // Pass 2, which needs the fault times: latencies and the client's side of each fault.
    let faults: Vec<(usize, ingest::FaultEvent)> = faults.into_iter().collect();
    let windows = failover::Windows::new(&faults, &phases);
    let mut latencies = latency::Latencies::new(faults.len());
    let mut client = failover::ClientSide::new(faults.len());
    for record in open()? {
        let Record::Publish(r) = record? else {
            continue;
        };
        let Some(t_done) = r.t_done.filter(|_| r.kind != Kind::Invoke) else {
            continue;
        };
        latencies.observe(&r, t_done, &phases, &windows);
        client.observe(&r, t_done, &producers, &faults, &windows);
    }
    let window_latency = latencies.finish(&mut a);

    let acks = recovery::AckIndex::new(&acks_per_ms);
    a.baseline_acks_per_s = recovery::baseline(&acks, &phases, &mut a.notes);
    for (k, (index, f)) in faults.into_iter().enumerate() {
        let mut t = FaultTiming {
            index,
            spec: f.spec,
            kind: f.kind.clone(),
            target: f.target.clone(),
            description: f.description.clone(),
            t_fault_ms: f.t_fault.map(ms),
            t_heal_ms: f.t_heal.map(ms),
            notes: f.notes.clone(),
            ..Default::default()
        };
        let Some(tf) = f.t_fault else {
            t.notes
                .push("the fault never took effect: no timing can be measured".into());
            a.faults.push(t);
            continue;
        };
        detection::detection(&mut t, &f, tf, &probes);
        client.finish(k, &mut t, &f, &windows, &acks, &phases);
        recovery::recovery(&mut t, &f, &acks, a.baseline_acks_per_s, phases.load_end);
        if let Some(window) = windows.of(k) {
            t.window_acks_per_s = recovery::window_rate(window, &acks, phases.load_end);
        }
        t.window_latency_ms = window_latency[k].clone();
        if ingest::is_topology_change(&f.kind) {
            t.settled_ms = f.t_heal.map(|h| ms(h.saturating_sub(tf)));
        }
        a.faults.push(t);
    }
    a.detection_ms_by_kind = detection::by_kind(&a.faults);
    Ok(a)
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
