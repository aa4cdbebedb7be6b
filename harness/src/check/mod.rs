//! Checkers: pure functions from a recorded history to findings.
//!
//! [`analyze`] reads the history twice as a stream (never whole): the first pass builds
//! per-producer bitsets (invoked, acknowledged, failed, unknown, received, received twice), the
//! fault/heal/phase/probe events and a per-millisecond count of acknowledgements; the second
//! pass, which needs the fault times, computes latencies per phase and the fault timings. Every
//! definition follows MEASUREMENT.md; anything that cannot be measured is `None` with a note
//! saying why, never 0.

mod bitset;
pub mod verdict;

use std::collections::{BTreeMap, BTreeSet};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::history::{Kind, Op, Record};
pub use bitset::Bitset;

/// How many example identities of each finding to keep for the report.
const SAMPLE: usize = 20;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MessageRef {
    pub producer: u32,
    pub seq: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
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

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DetectionSummary {
    pub faults: usize,
    /// Faults whose detection was observed.
    pub detected: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Counts for one second of the run (by completion time), for plots of the failover window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Second {
    pub t_s: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub max_latency_ms: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
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

#[derive(Clone, Debug)]
struct ProbeEvent {
    t: u64,
    observer: String,
    event: String,
    subject: Option<String>,
    role: Option<String>,
    detail: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct FaultEvent {
    kind: String,
    target: String,
    spec: Option<usize>,
    description: Option<String>,
    /// When the harness issued the call that applies the fault.
    t_invoke: Option<u64>,
    t_fault: Option<u64>,
    t_heal: Option<u64>,
    notes: Vec<String>,
}

#[derive(Default)]
struct ProducerState {
    invoked: Bitset,
    ok: Bitset,
    fail: Bitset,
    info: Bitset,
    received: Bitset,
    received_twice: Bitset,
}

/// Phase boundaries in µs, from the `phase` records.
#[derive(Clone, Copy, Debug, Default)]
struct Phases {
    load_start: Option<u64>,
    fault: Option<u64>,
    recovery: Option<u64>,
    load_end: Option<u64>,
}

impl Phases {
    fn of(&self, t: u64) -> &'static str {
        match (self.fault, self.recovery) {
            (_, Some(r)) if t >= r => "recovery",
            (Some(f), _) if t >= f => "fault",
            _ => "baseline",
        }
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 1 hour at 3 significant digits (MEASUREMENT.md).
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn summary(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    let q = |q: f64| Some(ms(h.value_at_quantile(q)));
    LatencySummary {
        count: h.len(),
        p50: q(0.50),
        p90: q(0.90),
        p99: q(0.99),
        p999: q(0.999),
        max: Some(ms(h.max())),
    }
}

/// Analyses a history. `open` is called twice and must yield the same records each time.
pub fn analyze<I, F>(mut open: F) -> std::io::Result<Analysis>
where
    I: Iterator<Item = std::io::Result<Record>>,
    F: FnMut() -> std::io::Result<I>,
{
    let mut producers: Vec<ProducerState> = Vec::new();
    let mut faults: BTreeMap<usize, FaultEvent> = BTreeMap::new();
    let mut probes: Vec<ProbeEvent> = Vec::new();
    let mut phases = Phases::default();
    // Acknowledgements per millisecond of completion time.
    let mut acks_per_ms: Vec<u32> = Vec::new();
    let mut foreign = 0u64;
    let mut a = Analysis::default();

    fn state(producers: &mut Vec<ProducerState>, p: u32) -> &mut ProducerState {
        let p = p as usize;
        if p >= producers.len() {
            producers.resize_with(p + 1, Default::default);
        }
        &mut producers[p]
    }

    // Pass 1: identities, events, acknowledgement times.
    for record in open()? {
        let r = record?;
        match r.op() {
            Op::Phase => {
                let t = r.t_done;
                match r.phase.as_deref() {
                    Some("baseline") => phases.load_start = t,
                    Some("fault") => phases.fault = phases.fault.or(t),
                    Some("recovery") => phases.recovery = t,
                    Some("drain") => phases.load_end = t,
                    _ => {}
                }
            }
            Op::Fault | Op::Heal => {
                let Some(index) = r.fault else { continue };
                let f = faults.entry(index).or_default();
                if let Some(kind) = &r.fault_kind {
                    f.kind = kind.clone();
                }
                if let Some(target) = &r.target {
                    f.target = target.clone();
                }
                if r.spec.is_some() {
                    f.spec = r.spec;
                }
                if r.op() == Op::Fault && r.kind() == Kind::Ok {
                    f.description = r.detail.clone();
                }
                let topology = is_topology_change(&f.kind);
                match (r.op(), r.kind()) {
                    (Op::Fault, Kind::Invoke) => f.t_invoke = r.t_done,
                    (Op::Fault, Kind::Ok) => f.t_fault = r.t_done,
                    (Op::Heal, Kind::Ok) => {
                        f.t_heal = f.t_heal.or(r.t_done);
                        match (topology, &r.detail) {
                            (true, Some(d)) => f.notes.push(format!("settled: {d}")),
                            (false, Some(d)) => f.notes.push(format!("at heal: {d}")),
                            _ => {}
                        }
                    }
                    (_, Kind::Fail) | (_, Kind::Info) => f.notes.push(format!(
                        "{} of {} did not complete: {}",
                        match (r.op(), topology) {
                            (Op::Fault, _) => "injection".to_string(),
                            (_, true) => f.kind.clone(),
                            _ => "heal".to_string(),
                        },
                        f.target,
                        r.detail.as_deref().unwrap_or("no detail")
                    )),
                    _ => {}
                }
            }
            Op::Probe => probes.push(ProbeEvent {
                t: r.t_done.unwrap_or(0),
                observer: r.observer.clone().unwrap_or_default(),
                event: r.event.clone().unwrap_or_default(),
                subject: r.subject.clone(),
                role: r.role.clone(),
                detail: r.detail.clone(),
            }),
            Op::Publish => {
                let (Some(p), Some(seq)) = (r.producer, r.seq) else {
                    continue;
                };
                let s = state(&mut producers, p);
                match r.kind() {
                    Kind::Invoke => {
                        s.invoked.set(seq);
                    }
                    Kind::Ok => {
                        s.ok.set(seq);
                        if let Some(t) = r.t_done {
                            let i = (t / 1000) as usize;
                            if i >= acks_per_ms.len() {
                                acks_per_ms.resize(i + 1, 0);
                            }
                            acks_per_ms[i] += 1;
                        }
                    }
                    Kind::Fail => {
                        s.fail.set(seq);
                    }
                    Kind::Info => {
                        s.info.set(seq);
                    }
                }
            }
            Op::Receive => match (r.producer, r.seq) {
                (Some(p), Some(seq)) => {
                    let s = state(&mut producers, p);
                    if s.received.set(seq) {
                        s.received_twice.set(seq);
                    }
                }
                _ => foreign += 1,
            },
        }
    }

    // Safety verdicts from the bitsets.
    let m = &mut a.messages;
    for (p, s) in producers.iter().enumerate() {
        let sample = |set: &Bitset, other: &Bitset, out: &mut Vec<MessageRef>| {
            for seq in set
                .iter_and_not(other)
                .take(SAMPLE.saturating_sub(out.len()))
            {
                out.push(MessageRef {
                    producer: p as u32,
                    seq,
                });
            }
        };
        m.invoked += s.invoked.count();
        m.acked += s.ok.count();
        m.lost += s.ok.count_and_not(&s.received);
        m.duplicated += s.received_twice.count();
        m.unexpected += s.received.count_and_not(&s.invoked);
        m.recovered += s.info.count_and(&s.received);
        m.failed += s.fail.count();
        m.failed_received += s.fail.count_and(&s.received);
        m.received += s.received.count();
        let never_completed = s.invoked.count_and_not_any(&[&s.ok, &s.fail, &s.info]);
        m.unknown += s.info.count_and_not(&s.received) + never_completed;
        if never_completed > 0 {
            a.notes.push(format!(
                "producer {p}: {never_completed} publishes never completed (the run stopped before their acknowledgement timeout); counted as unknown"
            ));
        }
        sample(&s.ok, &s.received, &mut a.lost_sample);
        sample(
            &s.received_twice,
            &Bitset::default(),
            &mut a.duplicated_sample,
        );
        sample(&s.received, &s.invoked, &mut a.unexpected_sample);
    }
    m.unexpected += foreign;
    if foreign > 0 {
        a.notes.push(format!(
            "{foreign} received messages carry no faultline identity"
        ));
    }

    // Per-fault windows: a fault's effects are attributed until the next fault starts.
    let fault_list: Vec<(usize, FaultEvent)> = faults.into_iter().collect();
    // A fault's window ends when the next one is issued: a graceful stop's effects begin
    // before the Docker call that applied it returns.
    let starts: Vec<Option<u64>> = fault_list
        .iter()
        .map(|(_, f)| f.t_fault.map(|t| f.t_invoke.unwrap_or(t).min(t)))
        .collect();
    let window_end = |k: usize| starts[k + 1..].iter().flatten().next().copied();
    let mut client_error: Vec<Option<u64>> = vec![None; fault_list.len()];
    let mut failover_end: Vec<Option<u64>> = vec![None; fault_list.len()];
    let mut saw_failure: Vec<bool> = vec![false; fault_list.len()];
    let mut tail_failure: Vec<bool> = vec![false; fault_list.len()];
    // Failures only of messages already in flight when the fault was issued: the client was
    // not unavailable for anything sent afterwards.
    let mut in_flight_failure: Vec<bool> = vec![false; fault_list.len()];
    // A fault's window: from t_fault to its heal, cut at the next fault's start.
    let windows: Vec<Option<(u64, u64)>> = (0..fault_list.len())
        .map(|k| {
            let f = &fault_list[k].1;
            let tf = f.t_fault?;
            let mut end = f
                .t_heal
                .or(phases.load_end)
                .unwrap_or(u64::MAX)
                .min(window_end(k).unwrap_or(u64::MAX));
            if end <= tf {
                end = tf + 1;
            }
            Some((tf, end))
        })
        .collect();
    let mut window_latency: Vec<Histogram<u64>> =
        (0..fault_list.len()).map(|_| new_histogram()).collect();

    // Pass 2: latencies and client-side fault timings.
    let mut by_phase: BTreeMap<&'static str, Histogram<u64>> = BTreeMap::new();
    let mut service = new_histogram();
    let mut send_delay = new_histogram();
    let mut timeline: Vec<Second> = Vec::new();
    for record in open()? {
        let r = record?;
        if r.op() != Op::Publish || r.kind() == Kind::Invoke {
            continue;
        }
        let (Some(p), Some(seq), Some(t_done)) = (r.producer, r.seq, r.t_done) else {
            continue;
        };
        let second = (t_done / 1_000_000) as usize;
        if second >= timeline.len() {
            timeline.resize_with(second + 1, Default::default);
        }
        let slot = &mut timeline[second];
        match r.kind() {
            Kind::Ok => slot.ok += 1,
            Kind::Fail => slot.fail += 1,
            _ => slot.info += 1,
        }
        if r.kind() == Kind::Ok {
            if let (Some(ti), Some(ts)) = (r.t_intended, r.t_sent) {
                let latency = t_done.saturating_sub(ti).max(1);
                by_phase
                    .entry(phases.of(ti))
                    .or_insert_with(new_histogram)
                    .saturating_record(latency);
                service.saturating_record(t_done.saturating_sub(ts).max(1));
                send_delay.saturating_record(ts.saturating_sub(ti).max(1));
                for (k, w) in windows.iter().enumerate() {
                    if let Some((from, to)) = w {
                        if ti >= *from && ti < *to {
                            window_latency[k].saturating_record(latency);
                        }
                    }
                }
                slot.max_latency_ms = Some(slot.max_latency_ms.unwrap_or(0.0).max(ms(latency)));
            }
        }
        for (k, (_, f)) in fault_list.iter().enumerate() {
            let Some(tf) = f.t_fault else { continue };
            let end = window_end(k).unwrap_or(u64::MAX);
            if r.kind() != Kind::Ok {
                // Like detection, the client can feel a kill before the Docker call returns.
                let issued = f.t_invoke.unwrap_or(tf).min(tf);
                if t_done >= issued && t_done < end {
                    client_error[k] = Some(client_error[k].map_or(t_done, |c| c.min(t_done)));
                    // A message sent before the fault that fails in it says nothing about
                    // the sends after it: its successors may have been acknowledged already.
                    if r.t_sent.or(r.t_intended).is_some_and(|s| s < issued) {
                        in_flight_failure[k] = true;
                    // Only a failure followed by another send can show whether the client
                    // recovered; a producer's last message cannot.
                    } else if producers[p as usize].invoked.get(seq + 1) {
                        saw_failure[k] = true;
                    } else {
                        tail_failure[k] = true;
                    }
                }
                continue;
            }
            // Failover ends at the first acknowledgement of a message sent after the fault
            // whose predecessor (same producer, previous sequence) was not acknowledged.
            // "After the fault" counts from when the harness issued it: a graceful stop
            // returns only once the node is gone, and clients may have failed over by then.
            let sent = r.t_sent.unwrap_or(0);
            let issued = f.t_invoke.unwrap_or(tf).min(tf);
            if sent >= issued && sent < end && seq > 0 && !producers[p as usize].ok.get(seq - 1) {
                failover_end[k] = Some(failover_end[k].map_or(t_done, |e| e.min(t_done)));
            }
        }
    }
    for (phase, h) in &by_phase {
        a.latency_ms.insert(phase.to_string(), summary(h));
    }
    for phase in ["baseline", "fault", "recovery"] {
        a.latency_ms.entry(phase.to_string()).or_default();
    }
    a.service_ms = summary(&service);
    a.send_delay_ms = summary(&send_delay);
    for (i, s) in timeline.iter_mut().enumerate() {
        s.t_s = i as u64;
    }
    a.timeline = timeline;

    // Baseline throughput, skipping the first second of warm-up when the baseline is long
    // enough to afford it.
    let acks = AckIndex::new(&acks_per_ms);
    if let (Some(start), Some(end)) = (phases.load_start, phases.fault.or(phases.load_end)) {
        let from = if end > start + 2_000_000 {
            start + 1_000_000
        } else {
            start
        };
        if end > from + 500_000 {
            let n = acks.count(from, end);
            a.baseline_acks_per_s = Some(n as f64 / ((end - from) as f64 / 1e6));
        } else {
            a.notes
                .push("baseline shorter than 0.5 s: no baseline throughput".into());
        }
    }

    for (k, (index, f)) in fault_list.into_iter().enumerate() {
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
        detection(&mut t, &f, tf, &probes);
        match client_error[k] {
            Some(c) => {
                t.client_error_ms = Some(ms(c.saturating_sub(tf)));
                if c < tf {
                    t.notes.push(format!(
                        "client_error: a publish failed {:.1} ms before the Docker call that applied the fault returned; reported as 0",
                        ms(tf - c)
                    ));
                }
            }
            None => t
                .notes
                .push("client_error: no publish failed or timed out after the fault".into()),
        }
        match (failover_end[k], saw_failure[k]) {
            (Some(e), _) => {
                t.failover_ms = Some(ms(e.saturating_sub(tf)));
                if e < tf {
                    t.notes.push(format!(
                        "failover: the client was acknowledged again {:.1} ms before the Docker call that applied the fault returned; reported as 0",
                        ms(tf - e)
                    ));
                }
            }
            (None, true) => t.notes.push(match window_end(k) {
                Some(_) => "failover: publishes failed after the fault and none was acknowledged before the next fault started".into(),
                None => "failover: publishes failed after the fault and none was acknowledged afterwards: the workload never recovered".into(),
            }),
            (None, false) if in_flight_failure[k] => t.notes.push(
                "failover: only messages already in flight when the fault was issued failed; every message sent after it was acknowledged, so the client saw no unavailability"
                    .into(),
            ),
            (None, false) if tail_failure[k] => t.notes.push(
                "failover: only the producers' last messages failed, and nothing sent after them could show a recovery"
                    .into(),
            ),
            (None, false) => t.notes.push(
                "failover: no publish failed after the fault, so the client saw no unavailability"
                    .into(),
            ),
        }
        let gap_end = f.t_heal.or(phases.load_end).unwrap_or(u64::MAX);
        match acks.longest_gap(tf, gap_end) {
            Some(gap) => t.max_ack_gap_ms = Some(gap as f64),
            None => t
                .notes
                .push("max_ack_gap: no acknowledgement after the fault".into()),
        }
        recovery(&mut t, &f, &acks, a.baseline_acks_per_s, phases.load_end);
        if let Some((from, to)) = windows[k] {
            let to = to.min(phases.load_end.unwrap_or(acks.end_us())).max(from);
            // Shorter than 100 ms, a rate says little; the latency still does.
            if to - from >= 100_000 {
                t.window_acks_per_s =
                    Some(acks.count(from, to) as f64 / ((to - from) as f64 / 1e6));
            }
        }
        t.window_latency_ms = summary(&window_latency[k]);
        if is_topology_change(&f.kind) {
            t.settled_ms = f.t_heal.map(|h| ms(h.saturating_sub(tf)));
        }
        a.faults.push(t);
    }
    for f in &a.faults {
        let d = a.detection_ms_by_kind.entry(f.kind.clone()).or_default();
        d.faults += 1;
        if let Some(ms) = f.detection_ms {
            d.detected += 1;
            d.min = Some(d.min.map_or(ms, |m: f64| m.min(ms)));
            d.max = Some(d.max.map_or(ms, |m: f64| m.max(ms)));
        }
    }
    Ok(a)
}

fn is_topology_change(kind: &str) -> bool {
    matches!(kind, "scale-out" | "scale-in")
}

/// Detection: the first probe observation after the fault, by a node other than the target,
/// showing the cluster noticed: the target reported down, or a role the target held reported
/// with another leader (or none).
///
/// The window opens when the harness issued the fault, not when the Docker call returned: a
/// killed process can be noticed by its peers before the call returns. Such an observation is
/// reported as 0 ms with a note saying by how much it came early.
fn detection(t: &mut FaultTiming, f: &FaultEvent, tf: u64, probes: &[ProbeEvent]) {
    let start = f.t_invoke.unwrap_or(tf).min(tf);
    let targets: Vec<&str> = f.target.split(',').filter(|x| !x.is_empty()).collect();
    let is_target = |n: Option<&str>| n.is_some_and(|n| targets.contains(&n));
    let mut held: Vec<String> = Vec::new();
    let mut latest: BTreeMap<(&str, &str), Option<&str>> = BTreeMap::new();
    for p in probes.iter().filter(|p| p.t < start && p.event == "leader") {
        if let Some(role) = &p.role {
            latest.insert((role, &p.observer), p.subject.as_deref());
        }
    }
    for ((role, _), leader) in &latest {
        // Without targets (a partition of no particular side), any leader change counts.
        if (targets.is_empty() || is_target(*leader)) && !held.iter().any(|h| h == role) {
            held.push(role.to_string());
        }
    }
    let end = f.t_heal.unwrap_or(u64::MAX);
    let window = probes
        .iter()
        .filter(|p| p.t >= start && p.t <= end && !is_target(Some(&p.observer)));
    for p in window {
        let subject = p.subject.as_deref();
        let held_role = p.role.as_ref().is_some_and(|r| held.contains(r));
        let previous = p
            .role
            .as_deref()
            .and_then(|r| latest.get(&(r, p.observer.as_str())).copied().flatten());
        let signal = match p.event.as_str() {
            // A node that joins is noticed when the others report it up.
            "peer-up" if f.kind == "scale-out" && is_target(subject) => Some(format!(
                "{} reports {} up ({})",
                p.observer,
                subject.unwrap_or("?"),
                p.detail.as_deref().unwrap_or("probe")
            )),
            _ if f.kind == "scale-out" => None,
            "peer-down" if targets.is_empty() || is_target(subject) => Some(format!(
                "{} reports {} down ({})",
                p.observer,
                subject.unwrap_or("?"),
                p.detail.as_deref().unwrap_or("probe")
            )),
            "leader" if held_role && !is_target(subject) && subject != previous => Some(format!(
                "{} reports {} leader {}",
                p.observer,
                p.role.as_deref().unwrap_or("?"),
                subject.unwrap_or("none")
            )),
            _ => None,
        };
        if let Some(signal) = signal {
            if t.detection_ms.is_none() {
                t.detection_ms = Some(ms(p.t.saturating_sub(tf)));
                t.detection_signal = Some(signal);
                if p.t < tf {
                    t.notes.push(format!(
                        "detection: observed {:.1} ms before the Docker call that applied the fault returned; reported as 0",
                        ms(tf - p.t)
                    ));
                }
            }
            if p.event == "leader" && t.new_leader.is_none() {
                if let Some(leader) = subject {
                    t.new_leader_ms = Some(ms(p.t.saturating_sub(tf)));
                    t.new_leader = Some(leader.to_string());
                }
            }
        }
    }
    let observers: BTreeSet<&str> = probes.iter().map(|p| p.observer.as_str()).collect();
    if t.detection_ms.is_none()
        && !observers.is_empty()
        && observers.iter().all(|o| is_target(Some(o)))
    {
        t.notes
            .push("detection: every node was a target, so none was left to notice".into());
    } else if t.detection_ms.is_none() {
        t.notes.push(if f.t_heal.is_some() {
            "detection: no probe observation showed the cluster noticing before the heal".into()
        } else {
            "detection: no probe observation showed the cluster noticing".into()
        });
    }
    if !held.is_empty() && t.new_leader.is_none() && !targets.is_empty() {
        t.notes.push(format!(
            "new leader: {} held {} and no other leader was observed before the heal",
            f.target,
            held.join(", ")
        ));
    }
}

/// Recovery: from the heal to the start of the first 1 s window (stepped by 100 ms) whose
/// acknowledgements are within 10 % of the baseline rate.
fn recovery(
    t: &mut FaultTiming,
    f: &FaultEvent,
    acks: &AckIndex,
    baseline: Option<f64>,
    load_end: Option<u64>,
) {
    let Some(heal) = f.t_heal else {
        t.notes
            .push("recovery: the fault was not healed while load ran".into());
        return;
    };
    let Some(base) = baseline.filter(|b| *b > 0.0) else {
        t.notes
            .push("recovery: no baseline throughput to compare with".into());
        return;
    };
    let end = load_end.unwrap_or(acks.end_us());
    let mut start = heal;
    while start + 1_000_000 <= end {
        let n = acks.count(start, start + 1_000_000) as f64;
        if (n - base).abs() <= 0.1 * base {
            t.recovery_ms = Some(ms(start - heal));
            return;
        }
        start += 100_000;
    }
    t.notes.push(
        "recovery: the load ended before throughput came back within 10 % of the baseline".into(),
    );
}

/// Prefix sums over acknowledgements per millisecond.
struct AckIndex {
    per_ms: Vec<u32>,
    prefix: Vec<u64>,
}

impl AckIndex {
    fn new(per_ms: &[u32]) -> Self {
        let mut prefix = Vec::with_capacity(per_ms.len() + 1);
        prefix.push(0);
        let mut sum = 0u64;
        for &c in per_ms {
            sum += c as u64;
            prefix.push(sum);
        }
        AckIndex {
            per_ms: per_ms.to_vec(),
            prefix,
        }
    }

    fn end_us(&self) -> u64 {
        self.per_ms.len() as u64 * 1000
    }

    /// Acknowledgements completed in `[from, to)` (µs, at millisecond resolution).
    fn count(&self, from: u64, to: u64) -> u64 {
        let len = self.per_ms.len();
        let a = ((from / 1000) as usize).min(len);
        let b = ((to / 1000) as usize).min(len);
        self.prefix[b] - self.prefix[a.min(b)]
    }

    /// The longest gap (ms) between consecutive acknowledgements that overlaps `[from, to]`:
    /// from the last acknowledgement at or before `from` (or `from` itself if there is none) up
    /// to the first acknowledgement after `to`. `None` when nothing was acknowledged after
    /// `from`.
    fn longest_gap(&self, from: u64, to: u64) -> Option<u64> {
        let from_ms = (from / 1000) as usize;
        let to_ms = (to / 1000) as usize;
        let last = self.per_ms.len().checked_sub(1)?;
        let mut prev = (0..=from_ms.min(last))
            .rev()
            .find(|&i| self.per_ms[i] > 0)
            .unwrap_or(from_ms);
        let mut longest = None;
        for i in from_ms + 1..=last {
            if self.per_ms[i] == 0 {
                continue;
            }
            longest = Some(longest.unwrap_or(0).max((i - prev) as u64));
            prev = i;
            if i > to_ms {
                break;
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests;
