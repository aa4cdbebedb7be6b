//! The client's side of each fault (MEASUREMENT.md, "Timings for each fault"): the fault's
//! window, the first client error, failover (the end of the client's unavailability) and the
//! longest gap between acknowledgements.

use super::ingest::{FaultEvent, Phases, ProducerState};
use super::recovery::AckIndex;
use super::{ms, FaultTiming};
use crate::history::{Kind, Publish};

/// Each fault's window: from `t_fault` to its heal (or the end of the load), cut where the next
/// fault was issued, so that effects are attributed to one fault only.
pub(super) struct Windows {
    /// When each fault was issued (its invoke, or its effect if that came first).
    starts: Vec<Option<u64>>,
    windows: Vec<Option<(u64, u64)>>,
}

impl Windows {
    pub(super) fn new(faults: &[(usize, FaultEvent)], phases: &Phases) -> Self {
        // A fault's window ends when the next one is issued: a graceful stop's effects begin
        // before the Docker call that applied it returns.
        let starts: Vec<Option<u64>> = faults
            .iter()
            .map(|(_, f)| f.t_fault.map(|t| f.t_invoke.unwrap_or(t).min(t)))
            .collect();
        let next_start = |k: usize| starts[k + 1..].iter().flatten().next().copied();
        let windows = (0..faults.len())
            .map(|k| {
                let f = &faults[k].1;
                let tf = f.t_fault?;
                let mut end = f
                    .t_heal
                    .or(phases.load_end)
                    .unwrap_or(u64::MAX)
                    .min(next_start(k).unwrap_or(u64::MAX));
                if end <= tf {
                    end = tf + 1;
                }
                Some((tf, end))
            })
            .collect();
        Windows { starts, windows }
    }

    /// When the fault after fault `k` was issued, if one was.
    pub(super) fn next_start(&self, k: usize) -> Option<u64> {
        self.starts[k + 1..].iter().flatten().next().copied()
    }

    /// Fault `k`'s window, if it took effect.
    pub(super) fn of(&self, k: usize) -> Option<(u64, u64)> {
        self.windows[k]
    }

    pub(super) fn all(&self) -> &[Option<(u64, u64)>] {
        &self.windows
    }
}

/// What pass 2 learns of the client's side of each fault.
pub(super) struct ClientSide {
    client_error: Vec<Option<u64>>,
    failover_end: Vec<Option<u64>>,
    saw_failure: Vec<bool>,
    tail_failure: Vec<bool>,
    /// Failures only of messages already in flight when the fault was issued: the client was
    /// not unavailable for anything sent afterwards.
    in_flight_failure: Vec<bool>,
}

impl ClientSide {
    pub(super) fn new(faults: usize) -> Self {
        ClientSide {
            client_error: vec![None; faults],
            failover_end: vec![None; faults],
            saw_failure: vec![false; faults],
            tail_failure: vec![false; faults],
            in_flight_failure: vec![false; faults],
        }
    }

    /// One publish completion (`ok`, `fail` or `info`), completed at `t_done`.
    pub(super) fn observe(
        &mut self,
        r: &Publish,
        t_done: u64,
        producers: &[ProducerState],
        faults: &[(usize, FaultEvent)],
        windows: &Windows,
    ) {
        for (k, (_, f)) in faults.iter().enumerate() {
            let Some(tf) = f.t_fault else { continue };
            let end = windows.next_start(k).unwrap_or(u64::MAX);
            if r.kind != Kind::Ok {
                // Like detection, the client can feel a kill before the Docker call returns.
                let issued = f.t_invoke.unwrap_or(tf).min(tf);
                if t_done >= issued && t_done < end {
                    self.client_error[k] =
                        Some(self.client_error[k].map_or(t_done, |c| c.min(t_done)));
                    // A message sent before the fault that fails in it says nothing about
                    // the sends after it: its successors may have been acknowledged already.
                    if r.t_sent < issued {
                        self.in_flight_failure[k] = true;
                    // Only a failure followed by another send can show whether the client
                    // recovered; a producer's last message cannot.
                    } else if producers[r.producer as usize].invoked.get(r.seq + 1) {
                        self.saw_failure[k] = true;
                    } else {
                        self.tail_failure[k] = true;
                    }
                }
                continue;
            }
            // Failover ends at the first acknowledgement of a message sent after the fault
            // whose predecessor (same producer, previous sequence) was not acknowledged.
            // "After the fault" counts from when the harness issued it: a graceful stop
            // returns only once the node is gone, and clients may have failed over by then.
            let sent = r.t_sent;
            let issued = f.t_invoke.unwrap_or(tf).min(tf);
            let previous_acked = r.seq > 0 && producers[r.producer as usize].ok.get(r.seq - 1);
            if sent >= issued && sent < end && r.seq > 0 && !previous_acked {
                self.failover_end[k] = Some(self.failover_end[k].map_or(t_done, |e| e.min(t_done)));
            }
        }
    }

    /// Fault `k`'s client error, failover and longest acknowledgement gap, into `t`.
    pub(super) fn finish(
        &self,
        k: usize,
        t: &mut FaultTiming,
        f: &FaultEvent,
        windows: &Windows,
        acks: &AckIndex,
        phases: &Phases,
    ) {
        let Some(tf) = f.t_fault else { return };
        match self.client_error[k] {
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
        match (self.failover_end[k], self.saw_failure[k]) {
            (Some(e), _) => {
                t.failover_ms = Some(ms(e.saturating_sub(tf)));
                if e < tf {
                    t.notes.push(format!(
                        "failover: the client was acknowledged again {:.1} ms before the Docker call that applied the fault returned; reported as 0",
                        ms(tf - e)
                    ));
                }
            }
            (None, true) => t.notes.push(match windows.next_start(k) {
                Some(_) => "failover: publishes failed after the fault and none was acknowledged before the next fault started".into(),
                None => "failover: publishes failed after the fault and none was acknowledged afterwards: the workload never recovered".into(),
            }),
            (None, false) if self.in_flight_failure[k] => t.notes.push(
                "failover: only messages already in flight when the fault was issued failed; every message sent after it was acknowledged, so the client saw no unavailability"
                    .into(),
            ),
            (None, false) if self.tail_failure[k] => t.notes.push(
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
    }
}
