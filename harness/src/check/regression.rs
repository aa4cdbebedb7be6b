//! The baseline regression gate: a run's headline numbers against the same numbers of earlier
//! runs (a baseline), each with a tolerance.
//!
//! For every fault, by its index and kind: failover, detection, the p99 latency of messages due
//! in the fault's window, and the acknowledgements per second in that window. A baseline of
//! several runs gives a median and a spread; a run is a regression on a number only when it is
//! worse than both the median moved by the relative tolerance and the worst baseline run, by
//! more than the absolute slack. These machines are noisy: a difference inside the spread that
//! the baseline itself shows is not a regression.
//!
//! Both sides are read from result.json as JSON (the run's own result is serialised first), so
//! a baseline written by an older faultline still compares on the numbers it has.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How far one number may move before it is a regression.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Tolerance {
    /// Share of the baseline median, e.g. 0.2 for 20 %.
    pub relative: f64,
    /// Absolute slack in the number's own unit (ms, or messages/s).
    pub slack: f64,
}

/// The scenario's `regression:` section.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Limits {
    pub failover: Tolerance,
    pub detection: Tolerance,
    pub p99: Tolerance,
    pub fault_throughput: Tolerance,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            failover: Tolerance {
                relative: 0.20,
                slack: 500.0,
            },
            detection: Tolerance {
                relative: 0.20,
                slack: 500.0,
            },
            p99: Tolerance {
                relative: 0.25,
                slack: 5.0,
            },
            fault_throughput: Tolerance {
                relative: 0.15,
                slack: 10.0,
            },
        }
    }
}

impl Limits {
    pub const KEYS: &'static [&'static str] = &["failover", "detection", "p99", "fault_throughput"];

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Tolerance> {
        match key {
            "failover" => Some(&mut self.failover),
            "detection" => Some(&mut self.detection),
            "p99" => Some(&mut self.p99),
            "fault_throughput" => Some(&mut self.fault_throughput),
            _ => None,
        }
    }
}

/// One number of a run that the gate compares.
#[derive(Clone, Debug, PartialEq)]
struct Measure {
    /// "fault 0 (kill): failover".
    name: String,
    value: f64,
    kind: MeasureKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum MeasureKind {
    Failover,
    Detection,
    P99,
    Throughput,
}

impl MeasureKind {
    fn unit(self) -> &'static str {
        match self {
            MeasureKind::Throughput => "msg/s",
            _ => "ms",
        }
    }

    fn higher_is_better(self) -> bool {
        self == MeasureKind::Throughput
    }

    fn tolerance(self, l: &Limits) -> Tolerance {
        match self {
            MeasureKind::Failover => l.failover,
            MeasureKind::Detection => l.detection,
            MeasureKind::P99 => l.p99,
            MeasureKind::Throughput => l.fault_throughput,
        }
    }
}

/// The numbers of one result.json that the gate compares.
fn measures(result: &Value) -> Vec<Measure> {
    let mut out = Vec::new();
    let faults = result["faults"].as_array().map_or(&[][..], |f| &f[..]);
    for f in faults {
        let label = format!(
            "fault {} ({})",
            f["index"].as_u64().unwrap_or(0),
            f["kind"].as_str().unwrap_or("?")
        );
        let window_count = f
            .pointer("/window_latency_ms/count")
            .and_then(Value::as_u64);
        let numbers = [
            ("failover", MeasureKind::Failover, f["failover_ms"].as_f64()),
            (
                "detection",
                MeasureKind::Detection,
                f["detection_ms"].as_f64(),
            ),
            (
                "p99 in the fault window",
                MeasureKind::P99,
                f.pointer("/window_latency_ms/p99")
                    .and_then(Value::as_f64)
                    .filter(|_| window_count.unwrap_or(0) > 0),
            ),
            (
                "acknowledged/s in the fault window",
                MeasureKind::Throughput,
                f["window_acks_per_s"].as_f64(),
            ),
        ];
        for (what, kind, value) in numbers {
            if let Some(value) = value {
                out.push(Measure {
                    name: format!("{label}: {what}"),
                    value,
                    kind,
                });
            }
        }
    }
    out
}

/// One number of the run against the baseline's.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Comparison {
    pub name: String,
    pub unit: &'static str,
    pub value: f64,
    pub baseline_median: f64,
    pub baseline_min: f64,
    pub baseline_max: f64,
    pub baseline_runs: usize,
    /// The run is a regression beyond this value (above it for times, below it for rates).
    pub limit: f64,
    pub regressed: bool,
    /// In words: the number, from what to what, against which limit.
    pub message: String,
}

/// What the gate found: a comparison per number both sides have, and notes on the numbers
/// only one side has.
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Gate {
    pub baseline: String,
    pub baseline_runs: usize,
    pub comparisons: Vec<Comparison>,
    pub notes: Vec<String>,
}

impl Gate {
    pub fn regressed(&self) -> impl Iterator<Item = &Comparison> {
        self.comparisons.iter().filter(|c| c.regressed)
    }
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn show(v: f64, unit: &str) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// Compares `run` (a result.json) with `baseline` (one or more result.json of earlier runs
/// of the same scenario).
pub fn compare(run: &Value, baseline: &[Value], limits: &Limits, label: &str) -> Gate {
    let mut gate = Gate {
        baseline: label.to_string(),
        baseline_runs: baseline.len(),
        ..Default::default()
    };
    let theirs: Vec<Vec<Measure>> = baseline.iter().map(measures).collect();
    for m in measures(run) {
        let mut values: Vec<f64> = theirs
            .iter()
            .filter_map(|ms| ms.iter().find(|b| b.name == m.name).map(|b| b.value))
            .collect();
        if values.is_empty() {
            gate.notes
                .push(format!("{}: not in the baseline, not compared", m.name));
            continue;
        }
        values.sort_by(f64::total_cmp);
        let (min, max, med) = (values[0], values[values.len() - 1], median(&values));
        let t = m.kind.tolerance(limits);
        let unit = m.kind.unit();
        let (limit, regressed) = if m.kind.higher_is_better() {
            let limit = (med * (1.0 - t.relative)).min(min) - t.slack;
            (limit, m.value < limit)
        } else {
            let limit = (med * (1.0 + t.relative)).max(max) + t.slack;
            (limit, m.value > limit)
        };
        let spread = if values.len() > 1 {
            format!(
                "median of {} runs, {}–{}",
                values.len(),
                show(min, unit),
                show(max, unit)
            )
        } else {
            "one run".to_string()
        };
        let message = format!(
            "{}: {} against {} in the baseline ({spread}); {} {} ({:+.0} % and {} slack){}",
            m.name,
            show(m.value, unit),
            show(med, unit),
            if m.kind.higher_is_better() {
                "lowest allowed"
            } else {
                "highest allowed"
            },
            show(limit, unit),
            if m.kind.higher_is_better() {
                -t.relative * 100.0
            } else {
                t.relative * 100.0
            },
            show(t.slack, unit),
            if regressed { ": REGRESSION" } else { "" }
        );
        gate.comparisons.push(Comparison {
            name: m.name,
            unit,
            value: m.value,
            baseline_median: med,
            baseline_min: min,
            baseline_max: max,
            baseline_runs: values.len(),
            limit,
            regressed,
            message,
        });
    }
    let ours: Vec<String> = measures(run).into_iter().map(|m| m.name).collect();
    let mut missing: Vec<&str> = theirs
        .iter()
        .flatten()
        .map(|m| m.name.as_str())
        .filter(|n| !ours.iter().any(|o| o == n))
        .collect();
    missing.sort();
    missing.dedup();
    for name in missing {
        gate.notes.push(format!(
            "{name}: measured in the baseline but not in this run, not compared"
        ));
    }
    gate
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(failover: f64, detection: f64, p99: f64, acks: f64) -> Value {
        json!({"faults": [{
            "index": 0, "kind": "kill",
            "failover_ms": failover, "detection_ms": detection,
            "window_latency_ms": {"count": 100, "p99": p99},
            "window_acks_per_s": acks,
        }]})
    }

    #[test]
    fn a_run_compared_with_itself_holds_everything() {
        let r = result(5000.0, 200.0, 30.0, 180.0);
        let g = compare(&r, std::slice::from_ref(&r), &Limits::default(), "b");
        assert_eq!(g.comparisons.len(), 4);
        assert_eq!(g.regressed().count(), 0, "{g:?}");
    }

    #[test]
    fn a_slower_failover_is_named_with_both_numbers() {
        let base = result(1000.0, 200.0, 30.0, 180.0);
        let run = result(5000.0, 200.0, 30.0, 180.0);
        let g = compare(&run, &[base], &Limits::default(), "b");
        let bad: Vec<_> = g.regressed().collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].name, "fault 0 (kill): failover");
        assert_eq!(bad[0].limit, 1700.0, "1000 ms + 20 % + 500 ms");
        assert!(
            bad[0].message.contains("5000 ms against 1000 ms"),
            "{}",
            bad[0].message
        );
    }

    #[test]
    fn a_number_inside_the_baselines_own_spread_is_not_a_regression() {
        // Three baseline runs: 1000, 1100 and 4000 ms. 3900 ms is far above the median plus
        // 20 %, but one baseline run was slower still.
        let base: Vec<Value> = [1000.0, 1100.0, 4000.0]
            .iter()
            .map(|&f| result(f, 200.0, 30.0, 180.0))
            .collect();
        let g = compare(
            &result(3900.0, 200.0, 30.0, 180.0),
            &base,
            &Limits::default(),
            "b",
        );
        assert_eq!(g.regressed().count(), 0, "{g:?}");
        let f = &g.comparisons[0];
        assert_eq!((f.baseline_median, f.baseline_runs), (1100.0, 3));
        let g = compare(
            &result(4600.0, 200.0, 30.0, 180.0),
            &base,
            &Limits::default(),
            "b",
        );
        assert_eq!(g.regressed().count(), 1);
    }

    #[test]
    fn lower_throughput_is_the_regression_for_a_rate() {
        let base = result(1000.0, 200.0, 30.0, 200.0);
        let g = compare(
            &result(1000.0, 200.0, 30.0, 150.0),
            std::slice::from_ref(&base),
            &Limits::default(),
            "b",
        );
        let bad: Vec<_> = g.regressed().map(|c| c.name.as_str()).collect();
        assert_eq!(bad, ["fault 0 (kill): acknowledged/s in the fault window"]);
        // 200 msg/s - 15 % - 10 = 160: 165 holds.
        let g = compare(
            &result(1000.0, 200.0, 30.0, 165.0),
            &[base],
            &Limits::default(),
            "b",
        );
        assert_eq!(g.regressed().count(), 0);
    }

    #[test]
    fn numbers_only_one_side_has_are_noted_not_compared() {
        let base = result(1000.0, 200.0, 30.0, 200.0);
        let run = json!({"faults": [{"index": 0, "kind": "kill", "detection_ms": 150.0}]});
        let g = compare(&run, &[base], &Limits::default(), "b");
        assert_eq!(g.comparisons.len(), 1);
        assert!(g
            .notes
            .iter()
            .any(|n| n.starts_with("fault 0 (kill): failover: measured in the baseline")));
    }
}
