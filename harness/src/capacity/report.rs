//! What `faultline capacity` writes: capacity.json (its schema: `faultline schema capacity`),
//! capacity.md and capacity.csv, from the steps of both searches.

use std::collections::BTreeMap;

use serde::Serialize;

use super::search::{Bound, StepMeasure, StepVerdict};
use crate::report::Headline;

/// The version of capacity.json's layout (raised when a field changes meaning or goes away).
pub const CAPACITY_SCHEMA_VERSION: u32 = 1;

/// Which search a step belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum Condition {
    /// Every node up.
    #[serde(rename = "n")]
    N,
    /// The scenario's `n_minus_1` fault held for the whole step.
    #[serde(rename = "n-1")]
    NMinus1,
}

/// One step as capacity.json keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Step {
    pub condition: Condition,
    /// The rate the step was asked to offer (msg/s).
    pub rate: f64,
    /// Messages per second offered and acknowledged over the hold.
    pub offered: f64,
    pub achieved: f64,
    /// Latency from the intended send time (ms); absent when nothing was acknowledged.
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Publishes of the hold, and those that failed or stayed unknown.
    pub published: u64,
    pub errors: u64,
    pub send_lag_p99_ms: f64,
    pub stall_fraction: f64,
    pub harness_cpu_share: f64,
    /// CPU each broker node used over the hold, in cores (Docker's stats); a node that was
    /// down is absent.
    pub broker_cpu_cores: BTreeMap<String, f64>,
    /// The whole machine's CPU busy over the hold (0..1): cluster and harness share it.
    pub machine_cpu_share: Option<f64>,
    /// Held the SLO.
    pub pass: bool,
    /// The harness was not the limit; an invalid step says nothing of the cluster.
    pub valid: bool,
    /// Why it failed or was invalid.
    pub reasons: Vec<String>,
}

impl Step {
    pub fn new(condition: Condition, rate: f64, m: &StepMeasure, v: &StepVerdict) -> Step {
        let [p50_ms, p90_ms, p99_ms, p999_ms, max_ms] = m.latency_ms;
        Step {
            condition,
            rate,
            offered: m.offered,
            achieved: m.achieved,
            p50_ms,
            p90_ms,
            p99_ms,
            p999_ms,
            max_ms,
            published: m.published,
            errors: m.errors,
            send_lag_p99_ms: m.send_lag_p99_ms,
            stall_fraction: m.stall_fraction,
            harness_cpu_share: m.harness_cpu_share,
            broker_cpu_cores: BTreeMap::new(),
            machine_cpu_share: None,
            pass: v.pass,
            valid: v.valid,
            reasons: v.reasons.clone(),
        }
    }
}

/// The highest passing rate of each search, and what bounded it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct MaxRate {
    /// Every node up; `None` when no step passed.
    pub n: Option<f64>,
    /// With the `n_minus_1` fault held; `None` when no step passed or there was no N-1 search.
    pub n_minus_1: Option<f64>,
    /// What ended each search, in words ("the first failure at 8000/s", "max passed",
    /// "the harness could not drive 4000/s: the maximum is at least the last pass").
    pub n_bound: Option<String>,
    pub n_minus_1_bound: Option<String>,
}

/// capacity.json.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CapacityReport {
    pub schema_version: u32,
    pub scenario: String,
    pub max_rate: MaxRate,
    /// The planned peak, when the scenario gives one, and the headroom the N-1 maximum leaves
    /// above it: (N-1 maximum - peak) / peak.
    pub planned_peak: Option<f64>,
    pub headroom: Option<f64>,
    /// The SLO's latency bounds (ms), by percentile ("p99", "p999"...).
    pub slo_ms: BTreeMap<String, f64>,
    /// The fault held for the N-1 search, as it was applied ("kill n2").
    pub held_fault: Option<String>,
    pub steps: Vec<Step>,
    /// The failover run at the planned load, with the scenario's faults.
    pub failover: Option<FailoverRun>,
}

/// The failover run: the scenario's faults at the planned load, on a fresh cluster.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FailoverRun {
    /// The load it offered (msg/s): `failover_load` of the N-1 maximum.
    pub load: f64,
    /// Its run directory, relative to the capacity directory.
    pub dir: String,
    pub result: Headline,
}

/// The words for what ended a search.
pub fn bound_words(bound: Option<Bound>) -> Option<String> {
    Some(match bound? {
        Bound::Failure { first_fail } => format!("the first failure at {first_fail:.0}/s"),
        Bound::MaxPassed => "the search's max passed".into(),
        Bound::Harness { at } => {
            format!("the harness could not drive {at:.0}/s: the maximum is at least the last pass")
        }
    })
}

impl CapacityReport {
    pub fn new(
        scenario: &str,
        max_rate: MaxRate,
        planned_peak: Option<f64>,
        steps: Vec<Step>,
    ) -> Self {
        let headroom = planned_peak
            .zip(max_rate.n_minus_1)
            .map(|(peak, max)| (max - peak) / peak);
        CapacityReport {
            schema_version: CAPACITY_SCHEMA_VERSION,
            scenario: scenario.to_string(),
            max_rate,
            planned_peak,
            headroom,
            slo_ms: BTreeMap::new(),
            held_fault: None,
            steps,
            failover: None,
        }
    }

    /// When the N-1 maximum is above the N maximum, what that means (it is measured, not an
    /// error: a failed node does less work, and on a machine the cluster shares, its CPU goes
    /// to the rest).
    pub fn n_minus_1_above_n(&self) -> Option<String> {
        let (n, n1) = (self.max_rate.n?, self.max_rate.n_minus_1?);
        if n1 <= n {
            return None;
        }
        let harness_bound = self
            .max_rate
            .n_bound
            .as_deref()
            .is_some_and(|b| b.starts_with("the harness"));
        Some(format!(
            "The N-1 maximum ({n1:.0} msg/s) is above the N maximum ({n:.0} msg/s).{} With one node down the cluster does less work (a write needs a majority, which the survivors still form, and no longer waits on the third copy), and where the nodes share the machine's cores with each other and the harness, the failed node's CPU goes to the rest: compare the steps' broker and machine CPU.",
            if harness_bound {
                " The N search ended where the harness fell behind its schedule, so the N figure is a lower bound."
            } else {
                ""
            }
        ))
    }

    /// What makes the capacity fall short: the N-1 maximum (or N's, without an N-1 search)
    /// below the planned peak, or a failover run that did not pass.
    pub fn shortfalls(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(peak) = self.planned_peak {
            let (max, which) = match self.max_rate.n_minus_1 {
                Some(m) => (Some(m), "N-1"),
                None if self.held_fault.is_some() => (None, "N-1"),
                None => (self.max_rate.n, "N"),
            };
            match max {
                Some(m) if m >= peak => {}
                Some(m) => out.push(format!(
                    "the {which} maximum {m:.0} msg/s is below the planned peak {peak:.0} msg/s"
                )),
                None => out.push(format!(
                    "no {which} step held the SLO; the planned peak is {peak:.0} msg/s"
                )),
            }
        }
        if let Some(f) = &self.failover {
            if f.result.verdict != crate::check::verdict::Verdict::Pass {
                out.push(format!(
                    "the failover run at {:.0} msg/s ended {} ({}/)",
                    f.load,
                    f.result.verdict.word(),
                    f.dir
                ));
            }
        }
        out
    }

    /// capacity.csv: one line per step.
    pub fn csv(&self) -> String {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
        let mut out = String::from("condition,rate,offered,achieved,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,published,errors,send_lag_p99_ms,stall_fraction,harness_cpu_share,broker_cpu_cores,machine_cpu_share,pass,valid\n");
        for s in &self.steps {
            out.push_str(&format!(
                "{},{:.1},{:.1},{:.1},{},{},{},{},{},{},{},{:.3},{:.4},{:.3},{:.3},{},{},{}\n",
                condition_name(s.condition),
                s.rate,
                s.offered,
                s.achieved,
                opt(s.p50_ms),
                opt(s.p90_ms),
                opt(s.p99_ms),
                opt(s.p999_ms),
                opt(s.max_ms),
                s.published,
                s.errors,
                s.send_lag_p99_ms,
                s.stall_fraction,
                s.harness_cpu_share,
                s.broker_cpu_cores.values().sum::<f64>(),
                opt(s.machine_cpu_share),
                s.pass,
                s.valid
            ));
        }
        out
    }

    /// capacity.md: the maxima, the headroom, and every step.
    pub fn markdown(&self) -> String {
        let rate =
            |v: Option<f64>| v.map_or("none passed".to_string(), |v| format!("{v:.0} msg/s"));
        let mut out = format!("## faultline capacity: {}\n\n", self.scenario);
        out.push_str("| condition | maximum within the SLO | bounded by |\n|---|---|---|\n");
        out.push_str(&format!(
            "| all nodes (N) | {} | {} |\n",
            rate(self.max_rate.n),
            self.max_rate.n_bound.as_deref().unwrap_or("")
        ));
        out.push_str(&format!(
            "| one fault held (N-1) | {} | {} |\n",
            rate(self.max_rate.n_minus_1),
            self.max_rate.n_minus_1_bound.as_deref().unwrap_or("")
        ));
        if let (Some(peak), Some(h)) = (self.planned_peak, self.headroom) {
            out.push_str(&format!(
                "\nPlanned peak {peak:.0} msg/s: headroom {:+.0}% with one fault held.\n",
                h * 100.0
            ));
        }
        if let Some(held) = &self.held_fault {
            out.push_str(&format!("\nN-1: {held}, held for every N-1 step.\n"));
        }
        if let Some(note) = self.n_minus_1_above_n() {
            out.push_str(&format!("\n{note}\n"));
        }
        out.push_str("\n| condition | offered/s | achieved/s | p50 | p99 | p99.9 | max | errors | verdict |\n|---|---|---|---|---|---|---|---|---|\n");
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
        for s in &self.steps {
            let verdict = match (s.valid, s.pass) {
                (false, _) => format!("invalid: {}", s.reasons.join("; ")),
                (true, true) => "pass".into(),
                (true, false) => format!("fail: {}", s.reasons.join("; ")),
            };
            out.push_str(&format!(
                "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
                condition_name(s.condition),
                s.offered,
                s.achieved,
                ms(s.p50_ms),
                ms(s.p99_ms),
                ms(s.p999_ms),
                ms(s.max_ms),
                s.errors,
                verdict
            ));
        }
        if let Some(f) = &self.failover {
            let h = &f.result;
            out.push_str(&format!(
                "\nFailover run at {:.0} msg/s (`{}/`): {}, {} acknowledged, {} lost, {} unknown; failover {}, longest gap in acknowledgements {}.\n",
                f.load,
                f.dir,
                h.verdict.word(),
                h.acked,
                h.lost,
                h.unknown,
                ms(h.failover_ms),
                ms(h.max_ack_gap_ms)
            ));
            for (phase, l) in &h.latency_ms {
                out.push_str(&format!(
                    "- {phase}: p50 {}, p99 {}, max {}\n",
                    ms(l.p50),
                    ms(l.p99),
                    ms(l.max)
                ));
            }
        }
        out
    }
}

/// The condition as the files name it: "n", "n-1".
pub fn condition_name(c: Condition) -> &'static str {
    match c {
        Condition::N => "n",
        Condition::NMinus1 => "n-1",
    }
}

/// The JSON Schema of capacity.json (`faultline schema capacity`).
pub fn capacity_schema() -> schemars::Schema {
    let mut s = schemars::generate::SchemaSettings::draft07()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<CapacityReport>();
    s.insert("title".into(), "faultline capacity.json".into());
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn step(condition: Condition, offered: f64, p99: f64, pass: bool) -> Step {
        let m = StepMeasure {
            offered,
            achieved: offered,
            published: (offered * 20.0) as u64,
            errors: 0,
            latency_ms: [
                Some(1.0),
                Some(2.0),
                Some(p99),
                Some(p99 * 2.0),
                Some(p99 * 3.0),
            ],
            send_lag_p99_ms: 0.2,
            stall_fraction: 0.0,
            harness_cpu_share: 0.1,
        };
        let v = StepVerdict {
            pass,
            valid: true,
            reasons: if pass {
                vec![]
            } else {
                vec![format!("p99 {p99:.1} ms > 50 ms")]
            },
        };
        Step::new(condition, offered, &m, &v)
    }

    /// A report of two searches, one step each side of the N knee.
    pub(crate) fn report() -> CapacityReport {
        CapacityReport::new(
            "jetstream-capacity",
            MaxRate {
                n: Some(6_000.0),
                n_minus_1: Some(4_000.0),
                n_bound: bound_words(Some(Bound::Failure {
                    first_fail: 6_250.0,
                })),
                n_minus_1_bound: bound_words(Some(Bound::Failure {
                    first_fail: 4_200.0,
                })),
            },
            Some(2_500.0),
            vec![
                step(Condition::N, 4_000.0, 3.0, true),
                step(Condition::N, 8_000.0, 400.0, false),
                step(Condition::NMinus1, 4_000.0, 9.0, true),
            ],
        )
    }

    #[test]
    fn an_n_minus_1_maximum_above_n_is_explained_not_hidden() {
        let mut r = report();
        assert_eq!(r.n_minus_1_above_n(), None);
        r.max_rate.n_minus_1 = Some(8_000.0);
        r.max_rate.n_bound = bound_words(Some(Bound::Harness { at: 12_000.0 }));
        let note = r.n_minus_1_above_n().unwrap();
        assert!(
            note.starts_with("The N-1 maximum (8000 msg/s) is above the N maximum (6000 msg/s)."),
            "{note}"
        );
        assert!(note.contains("lower bound"), "{note}");
        assert!(r.markdown().contains(&note));
    }

    #[test]
    fn headroom_is_what_the_n_minus_1_maximum_leaves_above_the_peak() {
        let r = report();
        assert_eq!(r.headroom, Some(0.6));
        assert_eq!(
            CapacityReport::new("x", MaxRate::default(), Some(100.0), vec![]).headroom,
            None
        );
    }

    #[test]
    fn capacity_json_holds_to_its_schema_and_the_tables_say_the_same() {
        let r = report();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["max_rate"]["n"], 6_000.0);
        assert_eq!(json["steps"][2]["condition"], "n-1");
        let schema = capacity_schema();
        let v = jsonschema::validator_for(schema.as_value()).unwrap();
        let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:#?}");
        let csv = r.csv();
        assert_eq!(csv.lines().count(), 4);
        assert!(csv
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("n,8000.0,8000.0,8000.0,1.000,2.000,400.000,"));
        let md = r.markdown();
        assert!(
            md.contains("| all nodes (N) | 6000 msg/s | the first failure at 6250/s |"),
            "{md}"
        );
        assert!(md.contains("headroom +60% with one fault held"), "{md}");
        assert!(md.contains("| fail: p99 400.0 ms > 50 ms |"), "{md}");
    }
}
