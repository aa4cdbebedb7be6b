//! Turns the analysis and the scenario's checks into a verdict.
//!
//! `fail` when a check did not hold; `unknown` when a check could not be decided (the drain did
//! not finish, the generator stalled so much that the load was not what the scenario asked for,
//! the checker itself broke); `pass` only when every check held.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Analysis, FaultTiming};

/// The checks a scenario can state (`checks:`). Kept in the history's start record (times in
/// milliseconds) so that a stored history can be judged again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Checks {
    /// Fewest acknowledged publishes a run needs to be judged at all: fewer means the load
    /// never reached the cluster (clients cut off, a dead producer), and the run is `unknown`,
    /// never `pass`. By default a tenth of the messages due (rate × duration).
    #[serde(default)]
    pub min_acked: u64,
    pub max_lost: u64,
    pub max_unexpected: u64,
    /// `None`: duplicates are reported but allowed (at-least-once delivery).
    pub max_duplicated: Option<u64>,
    #[serde(with = "opt_ms")]
    #[schemars(with = "Option<f64>")]
    pub max_failover: Option<Duration>,
    #[serde(with = "opt_ms")]
    #[schemars(with = "Option<f64>")]
    pub max_detection: Option<Duration>,
    #[serde(with = "opt_ms")]
    #[schemars(with = "Option<f64>")]
    pub max_recovery: Option<Duration>,
    /// Largest share of the load time the generator may spend waiting for the in-flight cap.
    pub max_stall: f64,
    /// The cluster's own health must hold again after the run (every node back and serving):
    /// a node that cannot start again after a fault fails the run.
    #[serde(default)]
    pub healthy_after: bool,
}

/// An optional duration as milliseconds.
mod opt_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v: Option<f64> = Option::deserialize(d)?;
        Ok(v.map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0)))
    }
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            min_acked: 0,
            max_lost: 0,
            max_unexpected: 0,
            max_duplicated: None,
            max_failover: None,
            max_detection: None,
            max_recovery: None,
            max_stall: 0.01,
            healthy_after: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Unknown,
}

impl Verdict {
    /// The verdict as the terminal summary says it.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "UNKNOWN",
        }
    }
}

/// What the run could vouch for, besides the history.
#[derive(Clone, Debug, Default)]
pub struct Validity {
    pub drain_complete: bool,
    /// Generator stall as a share of the load duration.
    pub stall_fraction: f64,
    /// The run stopped before its end (killed): whatever else held, it cannot pass.
    pub interrupted: bool,
    /// The cluster's own health after the run: `None` when it was not asked; else whether it
    /// held, and what it said when it did not.
    pub health_after: Option<(bool, Option<String>)>,
}

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Held,
    Failed,
    Undecided,
}

/// One check, by a stable name ("lost", "fault 0 (kill n2): failover"), with what was
/// measured against what limit in words: a JUnit test case, a row of a report.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CheckCase {
    pub name: String,
    pub outcome: Outcome,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Judgement {
    pub verdict: Verdict,
    /// Checks that did not hold.
    pub failed: Vec<String>,
    /// Checks that could not be decided, and why.
    pub undecided: Vec<String>,
    /// Checks that held.
    pub held: Vec<String>,
    /// Every check, in the order it was made.
    pub cases: Vec<CheckCase>,
}

impl Judgement {
    /// The judgement when the checker itself could not run: `unknown`, never a pass.
    pub fn checker_broke(why: String) -> Self {
        let mut j = Judgement {
            verdict: Verdict::Unknown,
            failed: Vec::new(),
            undecided: Vec::new(),
            held: Vec::new(),
            cases: Vec::new(),
        };
        j.push("checker", Outcome::Undecided, why);
        j
    }

    /// Records check `name` with its outcome; `message` says what was measured and the limit.
    /// [`Judgement::settle`] brings the verdict up to date afterwards.
    pub fn push(&mut self, name: &str, outcome: Outcome, message: String) {
        let list = match outcome {
            Outcome::Held => &mut self.held,
            Outcome::Failed => &mut self.failed,
            Outcome::Undecided => &mut self.undecided,
        };
        list.push(message.clone());
        self.cases.push(CheckCase {
            name: name.to_string(),
            outcome,
            message,
        });
    }
}

fn limit(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The checks of one fault: it was applied, a topology change settled, and its timings within
/// the scenario's limits.
fn judge_fault(checks: &Checks, f: &FaultTiming, j: &mut Judgement) {
    let name = format!("fault {} ({} {})", f.index, f.kind, f.target);
    if f.t_fault_ms.is_none() {
        // The run did not test what the scenario says.
        let why = f
            .notes
            .first()
            .map(String::as_str)
            .unwrap_or("no reason recorded");
        j.push(
            &format!("{name}: applied"),
            Outcome::Undecided,
            format!("{name} was never applied: {why}"),
        );
        return;
    }
    let topology = matches!(f.kind.as_str(), "scale-out" | "scale-in");
    if !topology && f.t_heal_ms.is_none() {
        // The cluster was not what the scenario said for the rest of the run (and the drain
        // read from it so): nothing after the fault can be vouched for.
        let why = f
            .notes
            .iter()
            .find(|n| n.starts_with("heal of"))
            .map(String::as_str)
            .unwrap_or("no heal was recorded");
        j.push(
            &format!("{name}: healed"),
            Outcome::Undecided,
            format!("{name} was not healed: {why}"),
        );
    }
    if topology && f.settled_ms.is_none() {
        let why = f
            .notes
            .iter()
            .find(|n| n.starts_with(&f.kind))
            .cloned()
            .unwrap_or_else(|| format!("{} did not settle before the load ended", f.kind));
        j.push(
            &format!("{name}: settled"),
            Outcome::Failed,
            format!("{name}: {why}"),
        );
    }
    let timed = |value: Option<f64>, max: Option<Duration>, what: &str, j: &mut Judgement| {
        let Some(max) = max else { return };
        let case = format!("{name}: {what}");
        match value {
            Some(v) if v <= max.as_secs_f64() * 1000.0 => j.push(
                &case,
                Outcome::Held,
                format!("{name}: {what} {:.0} ms <= {}", v, limit(max)),
            ),
            Some(v) => j.push(
                &case,
                Outcome::Failed,
                format!("{name}: {what} {:.0} ms > {}", v, limit(max)),
            ),
            None => {
                let why = f
                    .notes
                    .iter()
                    .find(|n| n.starts_with(what))
                    .cloned()
                    .unwrap_or_else(|| format!("{what} not measured"));
                if what == "failover"
                    && (why.contains("no unavailability")
                        || why.contains("only the producers' last"))
                {
                    j.push(&case, Outcome::Held, format!("{name}: {why}"));
                } else {
                    j.push(
                        &case,
                        Outcome::Failed,
                        format!("{name}: {why} (limit {})", limit(max)),
                    );
                }
            }
        }
    };
    timed(f.failover_ms, checks.max_failover, "failover", j);
    timed(f.detection_ms, checks.max_detection, "detection", j);
    timed(f.recovery_ms, checks.max_recovery, "recovery", j);
}

pub fn judge(checks: &Checks, a: &Analysis, v: &Validity) -> Judgement {
    let mut j = Judgement {
        verdict: Verdict::Pass,
        failed: Vec::new(),
        undecided: Vec::new(),
        held: Vec::new(),
        cases: Vec::new(),
    };
    let m = &a.messages;

    if m.acked < checks.min_acked {
        j.push("acked", Outcome::Undecided, format!(
            "acked: {} publish(es) acknowledged, fewer than the {} required (checks.min_acked): the load did not reach the cluster, so nothing was tested",
            m.acked, checks.min_acked
        ));
    } else {
        j.push(
            "acked",
            Outcome::Held,
            format!(
                "acked: {} publish(es) acknowledged (required {})",
                m.acked, checks.min_acked
            ),
        );
    }

    let lost = format!(
        "lost: {} acknowledged message(s) never received (allowed {})",
        m.lost, checks.max_lost
    );
    if m.lost <= checks.max_lost {
        j.push("lost", Outcome::Held, lost);
    } else if !v.drain_complete {
        j.push("lost", Outcome::Undecided, format!(
            "{lost}; the drain did not read everything before its timeout, so they may still be in the cluster"
        ));
    } else {
        j.push("lost", Outcome::Failed, lost);
    }

    let unexpected = format!(
        "unexpected: {} message(s) received that were never published (allowed {})",
        m.unexpected, checks.max_unexpected
    );
    let outcome = if m.unexpected <= checks.max_unexpected {
        Outcome::Held
    } else {
        Outcome::Failed
    };
    j.push("unexpected", outcome, unexpected);

    if m.failed_received > 0 {
        j.push(
            "failed_received",
            Outcome::Failed,
            format!(
                "failed_received: {} publish(es) reported as definitely failed were received",
                m.failed_received
            ),
        );
    }

    if let Some(max) = checks.max_duplicated {
        let dup = format!("duplicated: {} (allowed {max})", m.duplicated);
        let outcome = if m.duplicated <= max {
            Outcome::Held
        } else {
            Outcome::Failed
        };
        j.push("duplicated", outcome, dup);
    }

    for f in &a.faults {
        judge_fault(checks, f, &mut j);
    }

    if checks.healthy_after {
        match &v.health_after {
            Some((true, _)) => j.push(
                "healthy_after",
                Outcome::Held,
                "healthy_after: the cluster's own health held after the run".into(),
            ),
            Some((false, detail)) => j.push(
                "healthy_after",
                Outcome::Failed,
                format!(
                    "healthy_after: the cluster was not healthy after the run: {}",
                    detail.as_deref().unwrap_or("no detail")
                ),
            ),
            None => j.push(
                "healthy_after",
                Outcome::Undecided,
                "healthy_after: the cluster's health was not asked after the run (it stopped before)".into(),
            ),
        }
    }

    if !v.drain_complete && m.lost <= checks.max_lost {
        j.push(
            "drain",
            Outcome::Held,
            "drain: incomplete, but nothing was missing that could change the verdict".into(),
        );
    }
    if v.interrupted {
        j.push(
            "run",
            Outcome::Undecided,
            "run: stopped before its end (the history has no end record): it cannot pass".into(),
        );
    }
    if v.stall_fraction > checks.max_stall {
        j.push("generator stall", Outcome::Undecided, format!(
            "generator stalled on the in-flight cap for {:.1} % of the load (allowed {:.1} %): the load was not what the scenario asked for; raise workload.max_in_flight or lower the rate",
            v.stall_fraction * 100.0,
            checks.max_stall * 100.0
        ));
    }

    j.settle();
    j
}

impl Judgement {
    /// The verdict from the checks so far: `fail` if one failed, else `unknown` if one could
    /// not be decided, else `pass`.
    pub fn settle(&mut self) {
        self.verdict = if !self.failed.is_empty() {
            Verdict::Fail
        } else if !self.undecided.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Pass
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Messages;

    fn analysis(lost: u64) -> Analysis {
        Analysis {
            messages: Messages {
                acked: 100,
                lost,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn valid() -> Validity {
        Validity {
            drain_complete: true,
            stall_fraction: 0.0,
            interrupted: false,
            health_after: Some((true, None)),
        }
    }

    #[test]
    fn a_cluster_unhealthy_after_the_run_fails_only_when_checked() {
        let sick = Validity {
            health_after: Some((false, Some("r1 does not accept MQTT connections".into()))),
            ..valid()
        };
        let c = Checks::default();
        assert_eq!(judge(&c, &analysis(0), &sick).verdict, Verdict::Pass);
        let c = Checks {
            healthy_after: true,
            ..Default::default()
        };
        assert_eq!(judge(&c, &analysis(0), &valid()).verdict, Verdict::Pass);
        let j = judge(&c, &analysis(0), &sick);
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(
            j.failed[0].contains("not healthy after the run: r1 does not accept"),
            "{:?}",
            j.failed
        );
        let never_asked = Validity {
            health_after: None,
            ..valid()
        };
        assert_eq!(
            judge(&c, &analysis(0), &never_asked).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn loss_fails_unless_the_drain_was_cut_short() {
        let c = Checks::default();
        assert_eq!(judge(&c, &analysis(0), &valid()).verdict, Verdict::Pass);
        assert_eq!(judge(&c, &analysis(3), &valid()).verdict, Verdict::Fail);
        let cut = Validity {
            drain_complete: false,
            ..valid()
        };
        assert_eq!(judge(&c, &analysis(3), &cut).verdict, Verdict::Unknown);
    }

    #[test]
    fn failover_limit() {
        let c = Checks {
            max_failover: Some(Duration::from_secs(15)),
            ..Default::default()
        };
        let mut a = analysis(0);
        a.faults.push(FaultTiming {
            t_fault_ms: Some(1_000.0),
            t_heal_ms: Some(20_000.0),
            failover_ms: Some(15_001.0),
            ..Default::default()
        });
        assert_eq!(judge(&c, &a, &valid()).verdict, Verdict::Fail);
        a.faults[0].failover_ms = Some(4_000.0);
        assert_eq!(judge(&c, &a, &valid()).verdict, Verdict::Pass);
        // A fault that never took effect leaves the scenario untested.
        a.faults[0].t_fault_ms = None;
        let j = judge(&c, &a, &valid());
        assert_eq!(j.verdict, Verdict::Unknown);
        assert!(j.undecided[0].contains("never applied"), "{j:?}");
        a.faults[0].t_fault_ms = Some(1_000.0);
        a.faults[0].failover_ms = None;
        a.faults[0].notes = vec!["failover: publishes failed after the fault and none was acknowledged afterwards: the workload never recovered".into()];
        let j = judge(&c, &a, &valid());
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(j.failed[0].contains("never recovered"));
    }

    #[test]
    fn a_run_that_acknowledged_too_little_is_unknown_never_pass() {
        let c = Checks {
            min_acked: 101,
            ..Default::default()
        };
        let j = judge(&c, &analysis(0), &valid());
        assert_eq!(j.verdict, Verdict::Unknown);
        assert!(
            j.undecided[0]
                .starts_with("acked: 100 publish(es) acknowledged, fewer than the 101 required"),
            "{j:?}"
        );
        // Nothing lost and nothing acknowledged is no pass either.
        let mut none = analysis(0);
        none.messages.acked = 0;
        let j = judge(
            &Checks {
                min_acked: 1,
                ..Default::default()
            },
            &none,
            &valid(),
        );
        assert_eq!(j.verdict, Verdict::Unknown);
        let c = Checks {
            min_acked: 100,
            ..Default::default()
        };
        assert_eq!(judge(&c, &analysis(0), &valid()).verdict, Verdict::Pass);
    }

    #[test]
    fn a_fault_whose_heal_did_not_complete_makes_the_run_unknown() {
        let mut a = analysis(0);
        a.faults.push(FaultTiming {
            kind: "disk-full".into(),
            target: "n1".into(),
            t_fault_ms: Some(1_000.0),
            notes: vec!["heal of n1 did not complete: no such container".into()],
            ..Default::default()
        });
        let j = judge(&Checks::default(), &a, &valid());
        assert_eq!(j.verdict, Verdict::Unknown);
        assert!(
            j.undecided[0]
                .ends_with("was not healed: heal of n1 did not complete: no such container"),
            "{j:?}"
        );
        a.faults[0].t_heal_ms = Some(2_000.0);
        assert_eq!(
            judge(&Checks::default(), &a, &valid()).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn stall_makes_the_run_unknown() {
        let v = Validity {
            stall_fraction: 0.2,
            ..valid()
        };
        let j = judge(&Checks::default(), &analysis(0), &v);
        assert_eq!(j.verdict, Verdict::Unknown);
    }

    #[test]
    fn a_topology_change_that_never_settled_fails() {
        let mut a = analysis(0);
        a.faults.push(FaultTiming {
            kind: "scale-out".into(),
            target: "n4".into(),
            t_fault_ms: Some(1_000.0),
            notes: vec!["scale-out of n4 did not complete: no route".into()],
            ..Default::default()
        });
        let j = judge(&Checks::default(), &a, &valid());
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(
            j.failed[0].contains("scale-out of n4 did not complete: no route"),
            "{j:?}"
        );
        assert_eq!(
            j.cases.last().unwrap().name,
            "fault 0 (scale-out n4): settled"
        );
        a.faults[0].settled_ms = Some(500.0);
        assert_eq!(
            judge(&Checks::default(), &a, &valid()).verdict,
            Verdict::Pass
        );
    }
}
