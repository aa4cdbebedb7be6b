//! Detection (MEASUREMENT.md, "Timings for each fault"): when the cluster's own monitoring
//! first showed that it noticed a fault, and when it named a new leader; and the detection
//! times of a run grouped by fault kind.

use std::collections::{BTreeMap, BTreeSet};

use super::ingest::FaultEvent;
use super::{ms, DetectionSummary, FaultTiming};
use crate::fault_kind::FaultKind;
use crate::history::{Probe, ProbeKind};

/// Detection: the first probe observation after the fault, by a node other than the target,
/// showing the cluster noticed: the target reported down, or a role the target held reported
/// with another leader (or none).
///
/// The window opens when the harness issued the fault, not when the Docker call returned: a
/// killed process can be noticed by its peers before the call returns. Such an observation is
/// reported as 0 ms with a note saying by how much it came early.
pub(super) fn detection(t: &mut FaultTiming, f: &FaultEvent, tf: u64, probes: &[Probe]) {
    let start = f.t_invoke.unwrap_or(tf).min(tf);
    let scale_out = FaultKind::parse(&f.kind) == Some(FaultKind::ScaleOut);
    let targets: Vec<&str> = f.target.split(',').filter(|x| !x.is_empty()).collect();
    let is_target = |n: Option<&str>| n.is_some_and(|n| targets.contains(&n));
    let mut held: Vec<String> = Vec::new();
    let mut latest: BTreeMap<(&str, &str), Option<&str>> = BTreeMap::new();
    for p in probes
        .iter()
        .filter(|p| p.t_done < start && p.event == ProbeKind::Leader)
    {
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
        .filter(|p| p.t_done >= start && p.t_done <= end && !is_target(Some(&p.observer)));
    for p in window {
        let subject = p.subject.as_deref();
        let held_role = p.role.as_ref().is_some_and(|r| held.contains(r));
        let previous = p
            .role
            .as_deref()
            .and_then(|r| latest.get(&(r, p.observer.as_str())).copied().flatten());
        let signal = match &p.event {
            // A node that joins is noticed when the others report it up.
            ProbeKind::PeerUp if scale_out && is_target(subject) => Some(format!(
                "{} reports {} up ({})",
                p.observer,
                subject.unwrap_or("?"),
                p.detail.as_deref().unwrap_or("probe")
            )),
            _ if scale_out => None,
            ProbeKind::PeerDown if targets.is_empty() || is_target(subject) => Some(format!(
                "{} reports {} down ({})",
                p.observer,
                subject.unwrap_or("?"),
                p.detail.as_deref().unwrap_or("probe")
            )),
            ProbeKind::Leader if held_role && !is_target(subject) && subject != previous => {
                Some(format!(
                    "{} reports {} leader {}",
                    p.observer,
                    p.role.as_deref().unwrap_or("?"),
                    subject.unwrap_or("none")
                ))
            }
            _ => None,
        };
        if let Some(signal) = signal {
            if t.detection_ms.is_none() {
                t.detection_ms = Some(ms(p.t_done.saturating_sub(tf)));
                t.detection_signal = Some(signal);
                if p.t_done < tf {
                    t.notes.push(format!(
                        "detection: observed {:.1} ms before the Docker call that applied the fault returned; reported as 0",
                        ms(tf - p.t_done)
                    ));
                }
            }
            if p.event == ProbeKind::Leader && t.new_leader.is_none() {
                if let Some(leader) = subject {
                    t.new_leader_ms = Some(ms(p.t_done.saturating_sub(tf)));
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

/// Detection times grouped by fault kind: a killed process and a partitioned one are noticed
/// by very different means.
pub(super) fn by_kind(faults: &[FaultTiming]) -> BTreeMap<String, DetectionSummary> {
    let mut by_kind: BTreeMap<String, DetectionSummary> = BTreeMap::new();
    for f in faults {
        let d = by_kind.entry(f.kind.clone()).or_default();
        d.faults += 1;
        if let Some(ms) = f.detection_ms {
            d.detected += 1;
            d.min = Some(d.min.map_or(ms, |m: f64| m.min(ms)));
            d.max = Some(d.max.map_or(ms, |m: f64| m.max(ms)));
        }
    }
    by_kind
}
