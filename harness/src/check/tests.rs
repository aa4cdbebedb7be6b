//! The checker on hand-written histories: planted losses, duplicates and strays that it must
//! flag, and a fault whose timings are known exactly.

use std::time::Duration;

use super::fixtures::*;
use super::*;
use crate::history::{Phase, ProbeKind, Receive};

fn run(records: &[Record]) -> Analysis {
    analyze(|| Ok(records.iter().cloned().map(Ok))).unwrap()
}

/// `n` messages per producer, all acknowledged 1 ms after sending, 10 ms apart.
fn acked(producers: u32, n: u64) -> Vec<Record> {
    let mut h = vec![phase(Phase::Baseline, 0)];
    for p in 0..producers {
        for seq in 0..n {
            h.push(publish(Kind::Invoke, p, seq, seq * 10, 0));
            h.push(publish(Kind::Ok, p, seq, seq * 10, (seq * 10 + 1) * MS));
        }
    }
    h.push(phase(Phase::Drain, n * 10));
    h
}

fn receive_all(h: &mut Vec<Record>, producers: u32, n: u64) {
    for p in 0..producers {
        for seq in 0..n {
            h.push(receive(p, seq));
        }
    }
}

#[test]
fn everything_received_is_clean() {
    let mut h = acked(3, 500);
    receive_all(&mut h, 3, 500);
    let a = run(&h);
    assert_eq!(
        a.messages,
        Messages {
            invoked: 1500,
            acked: 1500,
            received: 1500,
            ..Default::default()
        }
    );
    assert!(a.lost_sample.is_empty());
}

#[test]
fn a_planted_loss_is_found_and_named() {
    let mut h = acked(2, 300);
    receive_all(&mut h, 2, 300);
    // Producer 1's message 137 was acknowledged but the drain never saw it.
    h.retain(|r| {
        !matches!(
            r,
            Record::Receive(Receive {
                id: Some((1, 137)),
                ..
            })
        )
    });
    let a = run(&h);
    assert_eq!(a.messages.lost, 1);
    assert_eq!(
        a.lost_sample,
        vec![MessageRef {
            producer: 1,
            seq: 137
        }]
    );
}

#[test]
fn duplicates_strays_and_foreign_messages() {
    let mut h = acked(1, 100);
    receive_all(&mut h, 1, 100);
    h.push(receive(0, 42));
    h.push(receive(0, 42));
    h.push(receive(0, 7));
    h.push(receive(5, 1)); // a producer that never existed
    h.push(Record::Receive(Receive::default())); // no identity at all
    let a = run(&h);
    assert_eq!(
        a.messages.duplicated, 2,
        "42 and 7 were received more than once"
    );
    assert_eq!(a.messages.unexpected, 2);
    assert_eq!(a.messages.lost, 0);
    assert_eq!(
        a.unexpected_sample,
        vec![MessageRef {
            producer: 5,
            seq: 1
        }]
    );
}

#[test]
fn unknown_outcomes_split_into_recovered_and_unknown() {
    let mut h = vec![phase(Phase::Baseline, 0)];
    for seq in 0..4 {
        h.push(publish(Kind::Invoke, 0, seq, seq, 0));
    }
    h.push(publish(Kind::Info, 0, 0, 0, 5 * MS)); // timed out, but it was stored
    h.push(publish(Kind::Info, 0, 1, 1, 5 * MS)); // timed out, never stored
    h.push(publish(Kind::Fail, 0, 2, 2, 5 * MS)); // refused, yet it shows up: a finding
                                                  // seq 3 never completed.
    h.push(receive(0, 0));
    h.push(receive(0, 2));
    let a = run(&h);
    let m = &a.messages;
    assert_eq!(
        (m.recovered, m.unknown, m.failed, m.failed_received),
        (1, 2, 1, 1)
    );
    assert_eq!(m.lost, 0);
    assert!(a.notes.iter().any(|n| n.contains("never completed")));
}

#[test]
fn fault_timings_match_the_ground_truth() {
    let a = run(&fault_history());
    assert_eq!(a.faults.len(), 1);
    let f = &a.faults[0];
    assert_eq!((f.kind.as_str(), f.target.as_str()), ("kill", "n2"));
    assert_eq!(f.t_fault_ms, Some(3000.0));
    assert_eq!(f.detection_ms, Some(200.0));
    assert_eq!(
        f.detection_signal.as_deref(),
        Some("n1 reports n2 down (route gone)")
    );
    assert_eq!(f.new_leader_ms, Some(1000.0));
    assert_eq!(f.new_leader.as_deref(), Some("n3"));
    assert_eq!(f.client_error_ms, Some(500.0));
    // First acknowledgement after a failure: sent at 5000 ms, acknowledged at 5001 ms.
    assert_eq!(f.failover_ms, Some(2001.0));
    // Last acknowledgement before the fault at 2991 ms, next at 5001 ms.
    assert_eq!(f.max_ack_gap_ms, Some(2010.0));
    // Baseline 100/s; the window [7.3 s, 8.3 s) is the first with 90 acknowledgements.
    assert_eq!(a.baseline_acks_per_s, Some(100.0));
    assert_eq!(f.recovery_ms, Some(1300.0));
    assert!(f.notes.is_empty(), "{:?}", f.notes);
}

#[test]
fn latency_is_split_by_the_phase_a_message_was_due_in() {
    let a = run(&fault_history());
    assert_eq!(a.latency_ms["baseline"].count, 300);
    assert_eq!(a.latency_ms["fault"].count, 100);
    assert_eq!(a.latency_ms["recovery"].count, 325);
    assert_eq!(a.latency_ms["baseline"].p99, Some(1.0));
    assert_eq!(a.timeline[3].ok, 0);
    assert_eq!(
        a.timeline[3].info, 50,
        "the 3.0-3.5 s timeouts complete in second 3"
    );
}

#[test]
fn a_peer_noticing_before_the_docker_call_returned_counts_as_zero() {
    let mut h = fault_history();
    // The kill was issued at 2950 ms; n1 saw the route go at 2990 ms, before the call
    // returned at 3000 ms.
    let invoke = fault_step(Kind::Invoke, 2950, "", "");
    let early = probe(2990, "n1", ProbeKind::PeerDown, "n2");
    h.insert(2, Record::Fault(invoke));
    h.insert(3, Record::Probe(early));
    let a = run(&h);
    let f = &a.faults[0];
    assert_eq!(f.detection_ms, Some(0.0));
    assert!(
        f.notes[0].contains("10.0 ms before the Docker call"),
        "{:?}",
        f.notes
    );
}

#[test]
fn a_client_that_failed_over_before_the_docker_call_returned_has_failover_zero() {
    // A graceful stop issued at 1000 ms returns at 1300 ms, once the node has exited. The
    // message sent at 1000 ms was lost with the node (timed out); the client reconnected and
    // the one sent at 1010 ms was acknowledged at 1011 ms.
    let mut h = vec![phase(Phase::Baseline, 0)];
    h.push(Record::Fault(fault_step(
        Kind::Invoke,
        1000,
        "restart",
        "n1",
    )));
    h.push(Record::Fault(fault_step(Kind::Ok, 1300, "restart", "n1")));
    for seq in 0..300u64 {
        let t = seq * 10;
        h.push(publish(Kind::Invoke, 0, seq, t, 0));
        h.push(if t == 1000 {
            publish(Kind::Info, 0, seq, t, 3000 * MS)
        } else {
            publish(Kind::Ok, 0, seq, t, (t + 1) * MS)
        });
    }
    h.push(phase(Phase::Drain, 3000));
    let a = run(&h);
    let f = &a.faults[0];
    assert_eq!(f.failover_ms, Some(0.0), "{:?}", f.notes);
    assert!(
        f.notes
            .iter()
            .any(|n| n.contains("289.0 ms before the Docker call")),
        "{:?}",
        f.notes
    );
    assert!(!f.notes.iter().any(|n| n.contains("never recovered")));
}

#[test]
fn a_fault_the_client_never_felt_has_no_failover_and_says_why() {
    let mut h = acked(1, 600);
    h.insert(1, Record::Fault(fault_step(Kind::Ok, 2000, "pause", "n3")));
    let a = run(&h);
    let t = &a.faults[0];
    assert_eq!(t.failover_ms, None);
    assert_eq!(t.client_error_ms, None);
    assert_eq!(t.detection_ms, None);
    assert!(t.notes.iter().any(|n| n.contains("no unavailability")));
    assert!(t.notes.iter().any(|n| n.starts_with("detection:")));
    assert!(t.notes.iter().any(|n| n.starts_with("recovery:")));
    assert_eq!(t.max_ack_gap_ms, Some(10.0));
}

#[test]
fn a_message_in_flight_when_the_fault_struck_that_failed_is_not_unavailability() {
    // As in a rolling restart seen on NATS: message 190 (sent at 1.9 s) times out at 3.9 s,
    // inside a fault issued at 2 s, while every message after it, sent before and after the
    // fault, is acknowledged within a millisecond.
    let mut h = vec![phase(Phase::Baseline, 0)];
    for seq in 0..600u64 {
        let t = seq * 10;
        h.push(publish(Kind::Invoke, 0, seq, t, 0));
        h.push(if seq == 190 {
            publish(Kind::Info, 0, seq, t, 3900 * MS)
        } else {
            publish(Kind::Ok, 0, seq, t, (t + 1) * MS)
        });
    }
    h.insert(
        1,
        Record::Fault(fault_step(Kind::Ok, 2000, "restart", "n3")),
    );
    h.push(phase(Phase::Drain, 6000));
    receive_all(&mut h, 1, 600);
    let a = run(&h);
    let t = &a.faults[0];
    assert_eq!(t.client_error_ms, Some(1900.0));
    assert_eq!(t.failover_ms, None);
    assert!(
        t.notes.iter().any(|n| n.contains("already in flight")),
        "{:?}",
        t.notes
    );
    assert!(!t.notes.iter().any(|n| n.contains("never recovered")));
    let j = verdict::judge(
        &verdict::Checks {
            max_failover: Some(Duration::from_secs(15)),
            ..Default::default()
        },
        &a,
        &verdict::Validity {
            drain_complete: true,
            stall_fraction: 0.0,
            interrupted: false,
            health_after: Some((true, None)),
        },
    );
    assert!(j.failed.is_empty(), "{:?}", j.failed);
}
