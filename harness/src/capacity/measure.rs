//! One step's figures from its history: the publishes whose intended send time falls in the
//! hold (the warm-up before it left out), as MEASUREMENT.md defines them.
//!
//! - offered: publishes due in the hold, per second of hold;
//! - achieved: those acknowledged, per second of hold;
//! - latency: from the intended send time to the acknowledgement, acknowledged publishes only
//!   (failed and unknown ones are counted as errors beside it);
//! - send lag: how late the generator handed each publish to the client (p99).

use crate::check::new_histogram;
use crate::history::{Kind, Record};

use super::search::StepMeasure;
use crate::scenario::Percentile;

/// The hold of a step on the history's clock (µs): publishes due in `[from, to)` count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hold {
    pub from_us: u64,
    pub to_us: u64,
}

/// What the runner knows of the step besides its history.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Harness {
    /// CPU seconds the harness used during the hold.
    pub cpu_s: f64,
    /// The machine's cores.
    pub cores: f64,
    /// Time the generator waited for the in-flight cap during the hold (µs): backpressure
    /// from the cluster, not the harness's own lag.
    pub stall_us: u64,
}

/// The step's figures from its records.
pub fn measure(
    records: impl IntoIterator<Item = Record>,
    hold: Hold,
    harness: Harness,
) -> StepMeasure {
    let mut latency = new_histogram();
    let mut lag = new_histogram();
    let (mut due, mut acked, mut errors) = (0u64, 0u64, 0u64);
    for r in records {
        let Record::Publish(p) = r else { continue };
        if p.t_intended < hold.from_us || p.t_intended >= hold.to_us {
            continue;
        }
        match p.kind {
            Kind::Invoke => {
                due += 1;
                let _ = lag.record(p.t_sent.saturating_sub(p.t_intended).max(1));
            }
            Kind::Ok => {
                acked += 1;
                if let Some(done) = p.t_done {
                    let _ = latency.record(done.saturating_sub(p.t_intended).max(1));
                }
            }
            Kind::Fail | Kind::Info => errors += 1,
        }
    }
    let secs = (hold.to_us.saturating_sub(hold.from_us)) as f64 / 1e6;
    let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let ms = |us: u64| us as f64 / 1000.0;
    let mut latency_ms = [None; 5];
    if !latency.is_empty() {
        for (slot, p) in latency_ms.iter_mut().zip(Percentile::ALL) {
            *slot = Some(ms(if p == Percentile::Max {
                latency.max()
            } else {
                latency.value_at_quantile(p.quantile())
            }));
        }
    }
    StepMeasure {
        offered: per_s(due),
        achieved: per_s(acked),
        published: due,
        errors,
        latency_ms,
        send_lag_p99_ms: if lag.is_empty() {
            0.0
        } else {
            ms(lag.value_at_quantile(0.99))
        },
        stall_fraction: if secs > 0.0 {
            harness.stall_us as f64 / 1e6 / secs
        } else {
            0.0
        },
        harness_cpu_share: if secs > 0.0 && harness.cores > 0.0 {
            harness.cpu_s / (secs * harness.cores)
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Publish;

    fn publish(kind: Kind, seq: u64, t_intended: u64, lag: u64, latency: Option<u64>) -> Record {
        Record::Publish(Publish {
            kind,
            producer: 0,
            seq,
            t_intended,
            t_sent: t_intended + lag,
            t_done: latency.map(|l| t_intended + l),
            ..Default::default()
        })
    }

    #[test]
    fn the_warm_up_is_left_out_and_latency_runs_from_the_intended_time() {
        let mut records = Vec::new();
        // 1 000 msg/s for 3 s; the first second is warm-up, with slow acknowledgements.
        for seq in 0..3_000u64 {
            let t = seq * 1_000;
            let warm = t < 1_000_000;
            records.push(publish(Kind::Invoke, seq, t, 50, None));
            let (kind, latency) = match seq {
                _ if warm => (Kind::Ok, 900_000),
                s if s % 100 == 0 => (Kind::Fail, 3_000),
                _ => (Kind::Ok, 2_000 + (seq % 10) * 100),
            };
            records.push(publish(kind, seq, t, 50, Some(latency)));
        }
        let m = measure(
            records,
            Hold {
                from_us: 1_000_000,
                to_us: 3_000_000,
            },
            Harness {
                cpu_s: 0.4,
                cores: 2.0,
                stall_us: 20_000,
            },
        );
        assert_eq!(m.published, 2_000);
        assert_eq!(m.errors, 20);
        assert_eq!(m.offered, 1_000.0);
        assert_eq!(m.achieved, 990.0);
        let p50 = m.latency_ms[0].unwrap();
        let max = m.latency_ms[4].unwrap();
        assert!((2.4..=2.51).contains(&p50), "{p50}");
        assert!(
            (2.89..=2.91).contains(&max),
            "{max}: the warm-up's 900 ms left out"
        );
        assert!(
            (m.send_lag_p99_ms - 0.05).abs() < 0.001,
            "{}",
            m.send_lag_p99_ms
        );
        assert!((m.stall_fraction - 0.01).abs() < 1e-9);
        assert!((m.harness_cpu_share - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_step_with_nothing_acknowledged_has_no_latency() {
        let records = vec![
            publish(Kind::Invoke, 0, 10, 5, None),
            publish(Kind::Info, 0, 10, 5, Some(2_000_000)),
        ];
        let m = measure(
            records,
            Hold {
                from_us: 0,
                to_us: 1_000_000,
            },
            Harness::default(),
        );
        assert_eq!((m.published, m.errors, m.achieved), (1, 1, 0.0));
        assert_eq!(m.latency_ms, [None; 5]);
    }
}
