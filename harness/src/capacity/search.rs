//! The rate search of `faultline capacity`: a ramp from `start`, multiplied by `factor` after
//! each passing step until one fails (or `max` passes), then a bisection between the last
//! pass and the first failure until they are within `precision` of the failing rate.
//!
//! A step where the harness, not the cluster, was the limit is never a failure of the cluster:
//! it ends the search, and the maximum is reported as "at least" the last pass.

use crate::scenario::{Percentile, Search, Slo};

/// What one step measured, over its hold (the warm-up left out).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepMeasure {
    /// Messages per second the schedule offered.
    pub offered: f64,
    /// Acknowledged messages per second.
    pub achieved: f64,
    /// Publishes of the hold: all of them, and those that failed or stayed unknown.
    pub published: u64,
    pub errors: u64,
    /// Latency from the intended send time to the acknowledgement (ms), per percentile of
    /// `Percentile::ALL`; `None` when nothing was acknowledged.
    pub latency_ms: [Option<f64>; 5],
    /// How late the generator handed its publishes to the client (ms, p99).
    pub send_lag_p99_ms: f64,
    /// Share of the hold the generator waited for the in-flight cap: backpressure from the
    /// cluster (acknowledgements not coming back), which explains a send lag.
    pub stall_fraction: f64,
    /// CPU the harness used over the hold, as a share of the machine's cores.
    pub harness_cpu_share: f64,
}

/// The harness is the bottleneck beyond these.
pub const MAX_HARNESS_CPU_SHARE: f64 = 0.9;
pub const MAX_SEND_LAG_MS: f64 = 10.0;

/// A step's verdict: pass or fail against the SLO, or invalid (the harness was the limit),
/// with the reasons in words.
#[derive(Clone, Debug, PartialEq)]
pub struct StepVerdict {
    pub pass: bool,
    pub valid: bool,
    pub reasons: Vec<String>,
}

/// Holds a step to the SLO, and the harness to its own limits.
pub fn judge(slo: &Slo, m: &StepMeasure) -> StepVerdict {
    let mut invalid = Vec::new();
    if m.harness_cpu_share >= MAX_HARNESS_CPU_SHARE {
        invalid.push(format!(
            "the harness used {:.0}% of the machine's CPU (limit {:.0}%)",
            m.harness_cpu_share * 100.0,
            MAX_HARNESS_CPU_SHARE * 100.0
        ));
    }
    // A lag while the in-flight cap held the generator back is the cluster's doing, and the
    // latency from the intended send time already carries it; without that, the harness
    // itself could not keep up.
    if m.send_lag_p99_ms > MAX_SEND_LAG_MS && m.stall_fraction == 0.0 {
        invalid.push(format!(
            "the generator fell behind its schedule: p99 send lag {:.1} ms (limit {MAX_SEND_LAG_MS} ms)",
            m.send_lag_p99_ms
        ));
    }
    if !invalid.is_empty() {
        return StepVerdict {
            pass: false,
            valid: false,
            reasons: invalid,
        };
    }
    let mut failed = Vec::new();
    for (p, bound) in &slo.latency {
        let limit = bound.as_secs_f64() * 1000.0;
        let index = Percentile::ALL.iter().position(|q| q == p).unwrap_or(0);
        match m.latency_ms[index] {
            Some(v) if v <= limit => {}
            Some(v) => failed.push(format!("{} {v:.1} ms > {limit} ms", p.key())),
            None => failed.push(format!("{}: nothing acknowledged", p.key())),
        }
    }
    let error_rate = m.errors as f64 / m.published.max(1) as f64;
    if error_rate > slo.max_error_rate {
        failed.push(format!(
            "errors {:.2}% > {:.2}%",
            error_rate * 100.0,
            slo.max_error_rate * 100.0
        ));
    }
    let ratio = if m.offered > 0.0 {
        m.achieved / m.offered
    } else {
        0.0
    };
    if ratio < slo.min_achieved {
        failed.push(format!(
            "achieved {:.0}/s of {:.0}/s offered ({:.1}% < {:.0}%)",
            m.achieved,
            m.offered,
            ratio * 100.0,
            slo.min_achieved * 100.0
        ));
    }
    StepVerdict {
        pass: failed.is_empty(),
        valid: true,
        reasons: failed,
    }
}

/// Why the search ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// The bracket [last pass, first failure] is within the precision.
    Failure { first_fail: f64 },
    /// `max` passed: the cluster sustains at least that.
    MaxPassed,
    /// A step at this rate was invalid: the harness was the limit.
    Harness { at: f64 },
}

/// The search's state: which rate to step next, and what it found.
#[derive(Clone, Debug)]
pub struct RateSearch {
    spec: Search,
    next: Option<f64>,
    last_pass: Option<f64>,
    first_fail: Option<f64>,
    bound: Option<Bound>,
}

impl RateSearch {
    pub fn new(spec: Search) -> Self {
        RateSearch {
            spec,
            next: Some(spec.start),
            last_pass: None,
            first_fail: None,
            bound: None,
        }
    }

    /// The rate of the next step; `None` when the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        self.next
    }

    /// The highest rate that passed (so far, or in the end).
    pub fn max_passed(&self) -> Option<f64> {
        self.last_pass
    }

    /// Why it ended; `None` while it goes on.
    pub fn bound(&self) -> Option<Bound> {
        self.bound
    }

    /// Records the verdict of the step at `rate` (the one `next_rate` gave) and decides the
    /// next.
    pub fn record(&mut self, rate: f64, verdict: &StepVerdict) {
        if !verdict.valid {
            self.bound = Some(Bound::Harness { at: rate });
            self.next = None;
            return;
        }
        if verdict.pass {
            self.last_pass = Some(self.last_pass.map_or(rate, |p| p.max(rate)));
        } else {
            self.first_fail = Some(self.first_fail.map_or(rate, |f| f.min(rate)));
        }
        self.next = match (self.last_pass, self.first_fail) {
            // Ramping: no failure yet.
            (_, None) => {
                if rate >= self.spec.max {
                    self.bound = Some(Bound::MaxPassed);
                    None
                } else {
                    Some((rate * self.spec.factor).min(self.spec.max))
                }
            }
            // Bisecting [last pass (or 0), first failure].
            (pass, Some(fail)) => {
                let lo = pass.unwrap_or(0.0);
                if fail - lo <= self.spec.precision * fail {
                    self.bound = Some(Bound::Failure { first_fail: fail });
                    None
                } else {
                    Some((lo + fail) / 2.0)
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn slo() -> Slo {
        Slo {
            latency: vec![(Percentile::P99, Duration::from_millis(50))],
            max_error_rate: 0.001,
            min_achieved: 0.99,
        }
    }

    fn measure(offered: f64, p99: f64) -> StepMeasure {
        StepMeasure {
            offered,
            achieved: offered,
            published: (offered * 20.0) as u64,
            errors: 0,
            latency_ms: [
                Some(p99 / 3.0),
                Some(p99 / 2.0),
                Some(p99),
                Some(p99 * 1.5),
                Some(p99 * 2.0),
            ],
            send_lag_p99_ms: 0.5,
            stall_fraction: 0.0,
            harness_cpu_share: 0.2,
        }
    }

    /// A cluster whose p99 stays at 5 ms up to `knee` msg/s and explodes above it.
    fn cluster(knee: f64) -> impl Fn(f64) -> StepMeasure {
        move |rate| measure(rate, if rate <= knee { 5.0 } else { 400.0 })
    }

    fn search(spec: Search, cluster: impl Fn(f64) -> StepMeasure) -> (RateSearch, Vec<f64>) {
        let mut s = RateSearch::new(spec);
        let mut steps = Vec::new();
        while let Some(rate) = s.next_rate() {
            steps.push(rate);
            assert!(steps.len() < 100, "the search must end");
            s.record(rate, &judge(&slo(), &cluster(rate)));
        }
        (s, steps)
    }

    const SPEC: Search = Search {
        start: 500.0,
        max: 50_000.0,
        factor: 2.0,
        precision: 0.05,
    };

    #[test]
    fn the_ramp_then_the_bisection_find_the_knee_within_the_precision() {
        let (s, steps) = search(SPEC, cluster(6_300.0));
        assert_eq!(&steps[..5], &[500.0, 1000.0, 2000.0, 4000.0, 8000.0]);
        let max = s.max_passed().unwrap();
        let Some(Bound::Failure { first_fail }) = s.bound() else {
            panic!("{:?}", s.bound())
        };
        assert!(max <= 6_300.0 && first_fail > 6_300.0, "{max} {first_fail}");
        assert!(first_fail - max <= 0.05 * first_fail);
        // A bisection halves the bracket: log2(4000 / 400) rounds up to 4 more steps.
        assert_eq!(steps.len(), 5 + 4, "{steps:?}");
    }

    #[test]
    fn max_passing_ends_the_search_there() {
        let (s, steps) = search(SPEC, cluster(1e9));
        assert_eq!(steps.last(), Some(&50_000.0));
        assert_eq!(s.max_passed(), Some(50_000.0));
        assert_eq!(s.bound(), Some(Bound::MaxPassed));
    }

    #[test]
    fn a_first_step_that_fails_bisects_down_from_it() {
        let (s, _) = search(SPEC, cluster(120.0));
        let max = s.max_passed().unwrap();
        assert!((114.0..=120.0).contains(&max), "{max}");
    }

    #[test]
    fn a_step_the_harness_could_not_drive_ends_the_search_and_is_no_failure_of_the_cluster() {
        let spec = SPEC;
        let (s, steps) = search(spec, |rate| {
            let mut m = measure(rate, 5.0);
            if rate >= 4000.0 {
                m.harness_cpu_share = 0.95;
            }
            m
        });
        assert_eq!(steps, vec![500.0, 1000.0, 2000.0, 4000.0]);
        assert_eq!(s.max_passed(), Some(2000.0));
        assert_eq!(s.bound(), Some(Bound::Harness { at: 4000.0 }));
    }

    #[test]
    fn each_slo_term_fails_a_step_and_says_how() {
        let mut m = measure(1000.0, 60.0);
        m.errors = 100;
        m.achieved = 900.0;
        let v = judge(&slo(), &m);
        assert!(!v.pass && v.valid);
        assert_eq!(
            v.reasons,
            vec![
                "p99 60.0 ms > 50 ms",
                "errors 0.50% > 0.10%",
                "achieved 900/s of 1000/s offered (90.0% < 99%)"
            ]
        );
        let mut lagging = measure(1000.0, 5.0);
        lagging.send_lag_p99_ms = 30.0;
        let v = judge(&slo(), &lagging);
        assert!(!v.valid && !v.pass);
        assert!(v.reasons[0].contains("fell behind its schedule"), "{v:?}");
        // The same lag while the in-flight cap held the generator back: the cluster's.
        lagging.stall_fraction = 0.2;
        assert!(judge(&slo(), &lagging).valid);
    }
}
