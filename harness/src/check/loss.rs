//! Safety verdicts (MEASUREMENT.md, "Safety verdicts"): lost, duplicated, unexpected,
//! recovered, failed and unknown, counted from the per-producer bitsets with set operations,
//! never from a set of strings, with a few example identities of each for the report.

use super::bitset::Bitset;
use super::ingest::ProducerState;
use super::{Analysis, MessageRef};

/// How many example identities of each finding to keep for the report.
const SAMPLE: usize = 20;

/// Counts every message's fate into `a.messages` and keeps samples of the findings; `foreign`
/// messages (received without a faultline identity) count as unexpected.
pub(super) fn count(producers: &[ProducerState], foreign: u64, a: &mut Analysis) {
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
}
