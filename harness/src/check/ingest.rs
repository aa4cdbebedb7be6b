//! Pass 1 over the history: every record read once, as a stream, into what the measures
//! need: per-producer bitsets of identities (invoked, acknowledged, failed, unknown, received,
//! received twice), the faults with their issue, effect and heal times, the probe observations,
//! the phase boundaries and a per-millisecond count of acknowledgements.

use std::collections::BTreeMap;

use super::bitset::Bitset;
use crate::fault_kind::FaultKind;
use crate::history::{FaultStep, Kind, Op, Phase, PhaseMark, Probe, Record};

#[derive(Clone, Debug, Default)]
pub(super) struct FaultEvent {
    pub(super) kind: String,
    pub(super) target: String,
    pub(super) spec: Option<usize>,
    pub(super) description: Option<String>,
    /// When the harness issued the call that applies the fault.
    pub(super) t_invoke: Option<u64>,
    pub(super) t_fault: Option<u64>,
    pub(super) t_heal: Option<u64>,
    pub(super) notes: Vec<String>,
}

#[derive(Default)]
pub(super) struct ProducerState {
    pub(super) invoked: Bitset,
    pub(super) ok: Bitset,
    pub(super) fail: Bitset,
    pub(super) info: Bitset,
    pub(super) received: Bitset,
    pub(super) received_twice: Bitset,
}

/// Phase boundaries in µs, from the `phase` records.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Phases {
    pub(super) load_start: Option<u64>,
    pub(super) fault: Option<u64>,
    pub(super) recovery: Option<u64>,
    pub(super) load_end: Option<u64>,
}

impl Phases {
    pub(super) fn of(&self, t: u64) -> &'static str {
        match (self.fault, self.recovery) {
            (_, Some(r)) if t >= r => "recovery",
            (Some(f), _) if t >= f => "fault",
            _ => "baseline",
        }
    }
}

/// Topology changes settle by themselves; their heal record says what showed it.
pub(super) fn is_topology_change(kind: &str) -> bool {
    FaultKind::parse(kind).is_some_and(FaultKind::is_topology_change)
}

/// Everything pass 1 gathers.
#[derive(Default)]
pub(super) struct Ingested {
    pub(super) producers: Vec<ProducerState>,
    pub(super) faults: BTreeMap<usize, FaultEvent>,
    pub(super) probes: Vec<Probe>,
    pub(super) phases: Phases,
    /// Acknowledgements per millisecond of completion time.
    pub(super) acks_per_ms: Vec<u32>,
    /// Messages received that carry no faultline identity.
    pub(super) foreign: u64,
}

fn state(producers: &mut Vec<ProducerState>, p: u32) -> &mut ProducerState {
    let p = p as usize;
    if p >= producers.len() {
        producers.resize_with(p + 1, Default::default);
    }
    &mut producers[p]
}

/// Reads the history once.
pub(super) fn ingest(
    records: impl Iterator<Item = std::io::Result<Record>>,
) -> std::io::Result<Ingested> {
    let mut i = Ingested::default();
    for record in records {
        match record? {
            Record::Phase(m) => phase(m, &mut i.phases),
            Record::Fault(f) => fault(Op::Fault, f, &mut i.faults),
            Record::Heal(f) => fault(Op::Heal, f, &mut i.faults),
            Record::Probe(p) => i.probes.push(p),
            // The run's facts are the reports' business.
            Record::Start(_) | Record::End(_) => {}
            Record::Publish(r) => {
                let s = state(&mut i.producers, r.producer);
                match r.kind {
                    Kind::Invoke => {
                        s.invoked.set(r.seq);
                    }
                    Kind::Ok => {
                        s.ok.set(r.seq);
                        if let Some(t) = r.t_done {
                            let ms = (t / 1000) as usize;
                            if ms >= i.acks_per_ms.len() {
                                i.acks_per_ms.resize(ms + 1, 0);
                            }
                            i.acks_per_ms[ms] += 1;
                        }
                    }
                    Kind::Fail => {
                        s.fail.set(r.seq);
                    }
                    Kind::Info => {
                        s.info.set(r.seq);
                    }
                }
            }
            Record::Receive(r) => match r.id {
                Some((p, seq)) => {
                    let s = state(&mut i.producers, p);
                    if s.received.set(seq) {
                        s.received_twice.set(seq);
                    }
                }
                None => i.foreign += 1,
            },
        }
    }
    Ok(i)
}

/// A `phase` record: the boundaries of baseline, fault, recovery and the end of the load.
fn phase(m: PhaseMark, phases: &mut Phases) {
    let t = Some(m.t_done);
    match m.phase {
        Phase::Baseline => phases.load_start = t,
        Phase::Fault => phases.fault = phases.fault.or(t),
        Phase::Recovery => phases.recovery = t,
        Phase::Drain => phases.load_end = t,
    }
}

/// A `fault` or `heal` step: issue, effect and heal times, and what went wrong.
fn fault(op: Op, r: FaultStep, faults: &mut BTreeMap<usize, FaultEvent>) {
    let f = faults.entry(r.fault).or_default();
    if let Some(kind) = r.fault_kind {
        f.kind = kind;
    }
    if let Some(target) = r.target {
        f.target = target;
    }
    if r.spec.is_some() {
        f.spec = r.spec;
    }
    let t = Some(r.t_done);
    let topology = is_topology_change(&f.kind);
    match (op, r.kind) {
        (Op::Fault, Kind::Invoke) => f.t_invoke = t,
        (Op::Fault, Kind::Ok) => {
            f.t_fault = t;
            f.description = r.detail;
        }
        (Op::Heal, Kind::Ok) => {
            f.t_heal = f.t_heal.or(t);
            match (topology, r.detail) {
                (true, Some(d)) => f.notes.push(format!("settled: {d}")),
                (false, Some(d)) => f.notes.push(format!("at heal: {d}")),
                _ => {}
            }
        }
        (_, Kind::Fail) | (_, Kind::Info) => f.notes.push(format!(
            "{} of {} did not complete: {}",
            match (op, topology) {
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
