//! Latency (MEASUREMENT.md, "Latency"): `t_done - t_intended` of acknowledged publishes in
//! HdrHistograms (1 µs to 1 h, 3 significant digits) per phase and per fault window, service
//! time and send delay, and the per-second timeline of outcomes.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::failover::Windows;
use super::ingest::Phases;
use super::{ms, Analysis, LatencySummary, Second};
use crate::history::{Kind, Publish};

/// A latency histogram as MEASUREMENT.md defines it; every report that keeps latencies uses it.
pub fn new_histogram() -> Histogram<u64> {
    // 1 µs to 1 hour at 3 significant digits (MEASUREMENT.md).
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub(super) fn summary(h: &Histogram<u64>) -> LatencySummary {
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

/// The latency measures, filled by pass 2 one completion at a time.
pub(super) struct Latencies {
    by_phase: BTreeMap<&'static str, Histogram<u64>>,
    service: Histogram<u64>,
    send_delay: Histogram<u64>,
    timeline: Vec<Second>,
    /// One per fault: the latency of the publishes due in its window.
    window: Vec<Histogram<u64>>,
}

impl Latencies {
    pub(super) fn new(faults: usize) -> Self {
        Latencies {
            by_phase: BTreeMap::new(),
            service: new_histogram(),
            send_delay: new_histogram(),
            timeline: Vec::new(),
            window: (0..faults).map(|_| new_histogram()).collect(),
        }
    }

    /// One publish completion (`ok`, `fail` or `info`) that completed at `t_done`.
    pub(super) fn observe(&mut self, r: &Publish, t_done: u64, phases: &Phases, windows: &Windows) {
        let second = (t_done / 1_000_000) as usize;
        if second >= self.timeline.len() {
            self.timeline.resize_with(second + 1, Default::default);
        }
        let slot = &mut self.timeline[second];
        match r.kind {
            Kind::Ok => slot.ok += 1,
            Kind::Fail => slot.fail += 1,
            _ => slot.info += 1,
        }
        if r.kind != Kind::Ok {
            return;
        }
        let (ti, ts) = (r.t_intended, r.t_sent);
        let latency = t_done.saturating_sub(ti).max(1);
        self.by_phase
            .entry(phases.of(ti))
            .or_insert_with(new_histogram)
            .saturating_record(latency);
        self.service
            .saturating_record(t_done.saturating_sub(ts).max(1));
        self.send_delay
            .saturating_record(ts.saturating_sub(ti).max(1));
        for (k, w) in windows.all().iter().enumerate() {
            if let Some((from, to)) = w {
                if ti >= *from && ti < *to {
                    self.window[k].saturating_record(latency);
                }
            }
        }
        slot.max_latency_ms = Some(slot.max_latency_ms.unwrap_or(0.0).max(ms(latency)));
    }

    /// Writes the per-phase summaries, service time, send delay and timeline into `a`; returns
    /// each fault window's summary.
    pub(super) fn finish(mut self, a: &mut Analysis) -> Vec<LatencySummary> {
        for (phase, h) in &self.by_phase {
            a.latency_ms.insert(phase.to_string(), summary(h));
        }
        for phase in ["baseline", "fault", "recovery"] {
            a.latency_ms.entry(phase.to_string()).or_default();
        }
        a.service_ms = summary(&self.service);
        a.send_delay_ms = summary(&self.send_delay);
        for (i, s) in self.timeline.iter_mut().enumerate() {
            s.t_s = i as u64;
        }
        a.timeline = self.timeline;
        self.window.iter().map(summary).collect()
    }
}
