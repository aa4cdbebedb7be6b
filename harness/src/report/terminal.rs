//! The summary printed at the end of a run, for people.

use std::fmt::Write;
use std::path::Path;

use super::RunResult;

pub(super) fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Some(v) if v >= 100.0 => format!("{v:.0} ms"),
        Some(v) => format!("{v:.1} ms"),
        None => "n/a".into(),
    }
}

/// Each phase's latency as shown: (phase, count, [p50, p90, p99, p99.9, max]).
pub(super) fn latency_rows(r: &RunResult) -> Vec<(&'static str, u64, [String; 5])> {
    ["baseline", "fault", "recovery"]
        .into_iter()
        .filter_map(|phase| {
            let l = r.latency_ms.get(phase)?;
            let cells = [l.p50, l.p90, l.p99, l.p999, l.max].map(ms);
            Some((phase, l.count, cells))
        })
        .collect()
}

pub fn render(r: &RunResult, out_dir: &Path) -> String {
    let mut s = String::new();
    let m = &r.messages;
    let _ = writeln!(s, "\nfaultline: {} ({})", r.scenario, r.run_id);
    let _ = writeln!(
        s,
        "messages   acked {}  lost {}  duplicated {}  unexpected {}  recovered {}  failed {}  unknown {}  (published {}, received {})",
        m.acked, m.lost, m.duplicated, m.unexpected, m.recovered, m.failed, m.unknown, m.invoked, m.received
    );
    for f in &r.faults {
        let _ = writeln!(
            s,
            "fault {}    {} {} at {}: detection {}{}, new leader {}, client error {}, failover {}, longest ack gap {}, recovery {}",
            f.index,
            f.kind,
            f.target,
            ms(f.t_fault_ms),
            ms(f.detection_ms),
            if f.detection_ms.is_some() {
                format!(" (±{})", ms(Some(r.validity.probe_interval_ms)))
            } else {
                String::new()
            },
            match (&f.new_leader, f.new_leader_ms) {
                (Some(n), t) => format!("{n} after {}", ms(t)),
                _ => "n/a".into(),
            },
            ms(f.client_error_ms),
            ms(f.failover_ms),
            ms(f.max_ack_gap_ms),
            ms(f.recovery_ms),
        );
        if let Some(description) = &f.description {
            let _ = writeln!(s, "           {description}");
        }
        if f.settled_ms.is_some() {
            let _ = writeln!(s, "           settled after {}", ms(f.settled_ms));
        }
        let w = &f.window_latency_ms;
        if w.count > 0 || f.window_acks_per_s.is_some() {
            let _ = writeln!(
                s,
                "           during it: {} acks/s (baseline {}), latency p50 {} p99 {} max {} over {} publishes",
                f.window_acks_per_s
                    .map_or("n/a".to_string(), |v| format!("{v:.0}")),
                r.baseline_acks_per_s
                    .map_or("n/a".to_string(), |v| format!("{v:.0}")),
                ms(w.p50),
                ms(w.p99),
                ms(w.max),
                w.count
            );
        }
        if let Some(signal) = &f.detection_signal {
            let _ = writeln!(s, "           detected: {signal}");
        }
        for n in &f.notes {
            let _ = writeln!(s, "           note: {n}");
        }
    }
    let _ = writeln!(
        s,
        "latency    (intended send to ack)   count      p50      p90      p99    p99.9      max"
    );
    for (phase, count, [p50, p90, p99, p999, max]) in latency_rows(r) {
        let _ = writeln!(
            s,
            "           {phase:<24} {count:>7} {p50:>8} {p90:>8} {p99:>8} {p999:>8} {max:>8}"
        );
    }
    match (&r.health_after.healthy, &r.health_after.detail) {
        (true, _) => {
            let _ = writeln!(s, "health     cluster healthy after the run");
        }
        (false, detail) => {
            let _ = writeln!(
                s,
                "health     cluster NOT healthy after the run: {}",
                detail.as_deref().unwrap_or("no detail")
            );
        }
    }
    for line in &r.checks.failed {
        let _ = writeln!(s, "FAILED     {line}");
    }
    for line in &r.checks.undecided {
        let _ = writeln!(s, "UNDECIDED  {line}");
    }
    for line in &r.checks.held {
        let _ = writeln!(s, "held       {line}");
    }
    for n in &r.notes {
        let _ = writeln!(s, "note       {n}");
    }
    let verdict = r.verdict.word();
    let _ = writeln!(
        s,
        "verdict    {verdict}    (report: {}; result.json beside it)",
        out_dir.join("report.html").display()
    );
    s
}
