//! Hand-written histories for the checker's tests and the reports' snapshots.

use crate::history::{FaultStep, Kind, Phase, Probe, ProbeKind, Publish, Receive, Record};

pub(crate) const MS: u64 = 1000;

pub(crate) fn publish(
    kind: Kind,
    producer: u32,
    seq: u64,
    t_sent_ms: u64,
    t_done_us: u64,
) -> Record {
    Record::Publish(Publish {
        kind,
        producer,
        seq,
        t_intended: t_sent_ms * MS,
        t_sent: t_sent_ms * MS,
        t_done: (kind != Kind::Invoke).then_some(t_done_us),
        ..Default::default()
    })
}

pub(crate) fn receive(producer: u32, seq: u64) -> Record {
    Record::Receive(Receive {
        id: Some((producer, seq)),
        ..Default::default()
    })
}

pub(crate) fn phase(phase: Phase, t_ms: u64) -> Record {
    Record::phase(phase, t_ms * MS)
}

/// Fault occurrence 0's step `kind` at `t_ms`, of `fault_kind` on `target` where given.
pub(crate) fn fault_step(kind: Kind, t_ms: u64, fault_kind: &str, target: &str) -> FaultStep {
    FaultStep {
        kind,
        fault: 0,
        fault_kind: (!fault_kind.is_empty()).then(|| fault_kind.into()),
        target: (!target.is_empty()).then(|| target.into()),
        t_done: t_ms * MS,
        ..Default::default()
    }
}

/// `observer` reporting `event` about `subject` at `t_ms`.
pub(crate) fn probe(t_ms: u64, observer: &str, event: ProbeKind, subject: &str) -> Probe {
    Probe {
        kind: Kind::Ok,
        t_done: t_ms * MS,
        observer: observer.into(),
        event,
        subject: Some(subject.into()),
        role: None,
        detail: None,
    }
}

/// One producer sends every 10 ms for 10 s; acknowledgements take 1 ms. The fault (the stream
/// leader n2 killed) takes effect at 3 s and is healed at 6 s:
/// - sent in [3 s, 4 s): time out 500 ms later (`info`); in [4 s, 5 s): refused at once;
/// - acknowledged again from 5 s; in [6 s, 7.5 s) every other message is refused.
/// - probes: n2 leads stream:S from 0.5 s; n1 reports n2 down at 3.2 s, a new leader n3 at 4 s.
pub(crate) fn fault_history() -> Vec<Record> {
    let mut h = vec![phase(Phase::Baseline, 0)];
    let leader = Probe {
        role: Some("stream:S".into()),
        ..probe(500, "n1", ProbeKind::Leader, "n2")
    };
    h.push(Record::Probe(leader.clone()));
    for seq in 0..1000u64 {
        let t = seq * 10;
        if t == 3000 {
            h.push(phase(Phase::Fault, 3000));
            h.push(Record::Fault(fault_step(Kind::Ok, 3000, "kill", "n2")));
        }
        if t == 3200 {
            h.push(Record::Probe(Probe {
                detail: Some("route gone".into()),
                ..probe(3200, "n1", ProbeKind::PeerDown, "n2")
            }));
        }
        if t == 4000 {
            h.push(Record::Probe(Probe {
                t_done: 4000 * MS,
                subject: Some("n3".into()),
                ..leader.clone()
            }));
        }
        if t == 6000 {
            h.push(phase(Phase::Recovery, 6000));
            h.push(Record::Heal(fault_step(Kind::Ok, 6000, "", "")));
        }
        h.push(publish(Kind::Invoke, 0, seq, t, 0));
        let done = match t {
            3000..=3999 => publish(Kind::Info, 0, seq, t, (t + 500) * MS),
            4000..=4999 => publish(Kind::Fail, 0, seq, t, t * MS + 500),
            6000..=7499 if seq % 2 == 1 => publish(Kind::Fail, 0, seq, t, t * MS + 500),
            _ => publish(Kind::Ok, 0, seq, t, (t + 1) * MS),
        };
        h.push(done);
    }
    h.push(phase(Phase::Drain, 10_000));
    h
}
