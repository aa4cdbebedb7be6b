//! Throughput and recovery (MEASUREMENT.md): the baseline rate of acknowledgements, each fault
//! window's rate, and recovery, the time from a heal until throughput is back within 10 % of
//! the baseline; all from a per-millisecond index of acknowledgements.

use super::ingest::{FaultEvent, Phases};
use super::{ms, FaultTiming};

/// Acknowledgements per second before the first fault, skipping the first second of warm-up
/// when the baseline is long enough to afford it; `None` (with a note) when it is too short.
pub(super) fn baseline(acks: &AckIndex, phases: &Phases, notes: &mut Vec<String>) -> Option<f64> {
    let (Some(start), Some(end)) = (phases.load_start, phases.fault.or(phases.load_end)) else {
        return None;
    };
    let from = if end > start + 2_000_000 {
        start + 1_000_000
    } else {
        start
    };
    if end > from + 500_000 {
        let n = acks.count(from, end);
        Some(n as f64 / ((end - from) as f64 / 1e6))
    } else {
        notes.push("baseline shorter than 0.5 s: no baseline throughput".into());
        None
    }
}

/// Acknowledgements per second in a fault's window (cut at the end of the load); `None` for a
/// window shorter than 100 ms, where a rate says little (the latency still does).
pub(super) fn window_rate(
    window: (u64, u64),
    acks: &AckIndex,
    load_end: Option<u64>,
) -> Option<f64> {
    let (from, to) = window;
    let to = to.min(load_end.unwrap_or(acks.end_us())).max(from);
    (to - from >= 100_000).then(|| acks.count(from, to) as f64 / ((to - from) as f64 / 1e6))
}

/// Recovery: from the heal to the start of the first 1 s window (stepped by 100 ms) whose
/// acknowledgements are within 10 % of the baseline rate.
pub(super) fn recovery(
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
pub(super) struct AckIndex {
    per_ms: Vec<u32>,
    prefix: Vec<u64>,
}

impl AckIndex {
    pub(super) fn new(per_ms: &[u32]) -> Self {
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

    pub(super) fn end_us(&self) -> u64 {
        self.per_ms.len() as u64 * 1000
    }

    /// Acknowledgements completed in `[from, to)` (µs, at millisecond resolution).
    pub(super) fn count(&self, from: u64, to: u64) -> u64 {
        let len = self.per_ms.len();
        let a = ((from / 1000) as usize).min(len);
        let b = ((to / 1000) as usize).min(len);
        self.prefix[b] - self.prefix[a.min(b)]
    }

    /// The longest gap (ms) between consecutive acknowledgements that overlaps `[from, to]`:
    /// from the last acknowledgement at or before `from` (or `from` itself if there is none) up
    /// to the first acknowledgement after `to`. `None` when nothing was acknowledged after
    /// `from`.
    pub(super) fn longest_gap(&self, from: u64, to: u64) -> Option<u64> {
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
