//! Hand-written histories for the checker's tests and the reports' snapshots.

use crate::history::{Kind, Op, Phase, ProbeKind, Record};

pub(crate) const MS: u64 = 1000;

pub(crate) fn publish(
    kind: Kind,
    producer: u32,
    seq: u64,
    t_sent_ms: u64,
    t_done_us: u64,
) -> Record {
    let mut r = Record::new(Op::Publish, kind);
    r.producer = Some(producer);
    r.seq = Some(seq);
    r.t_intended = Some(t_sent_ms * MS);
    r.t_sent = Some(t_sent_ms * MS);
    if kind != Kind::Invoke {
        r.t_done = Some(t_done_us);
    }
    r
}

pub(crate) fn receive(producer: u32, seq: u64) -> Record {
    let mut r = Record::new(Op::Receive, Kind::Ok);
    r.producer = Some(producer);
    r.seq = Some(seq);
    r
}

pub(crate) fn phase(phase: Phase, t_ms: u64) -> Record {
    let mut r = Record::new(Op::Phase, Kind::Ok);
    r.phase = Some(phase);
    r.t_done = Some(t_ms * MS);
    r
}

/// One producer sends every 10 ms for 10 s; acknowledgements take 1 ms. The fault (the stream
/// leader n2 killed) takes effect at 3 s and is healed at 6 s:
/// - sent in [3 s, 4 s): time out 500 ms later (`info`); in [4 s, 5 s): refused at once;
/// - acknowledged again from 5 s; in [6 s, 7.5 s) every other message is refused.
/// - probes: n2 leads stream:S from 0.5 s; n1 reports n2 down at 3.2 s, a new leader n3 at 4 s.
pub(crate) fn fault_history() -> Vec<Record> {
    let mut h = vec![phase(Phase::Baseline, 0)];
    let mut leader = Record::new(Op::Probe, Kind::Ok);
    leader.t_done = Some(500 * MS);
    leader.observer = Some("n1".into());
    leader.event = Some(ProbeKind::Leader);
    leader.role = Some("stream:S".into());
    leader.subject = Some("n2".into());
    h.push(leader.clone());
    for seq in 0..1000u64 {
        let t = seq * 10;
        if t == 3000 {
            h.push(phase(Phase::Fault, 3000));
            let mut f = Record::new(Op::Fault, Kind::Ok);
            f.fault = Some(0);
            f.fault_kind = Some("kill".into());
            f.target = Some("n2".into());
            f.t_done = Some(3000 * MS);
            h.push(f);
        }
        if t == 3200 {
            let mut down = leader.clone();
            down.t_done = Some(3200 * MS);
            down.event = Some(ProbeKind::PeerDown);
            down.role = None;
            down.detail = Some("route gone".into());
            h.push(down);
        }
        if t == 4000 {
            let mut new_leader = leader.clone();
            new_leader.t_done = Some(4000 * MS);
            new_leader.subject = Some("n3".into());
            h.push(new_leader);
        }
        if t == 6000 {
            h.push(phase(Phase::Recovery, 6000));
            let mut heal = Record::new(Op::Heal, Kind::Ok);
            heal.fault = Some(0);
            heal.t_done = Some(6000 * MS);
            h.push(heal);
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
