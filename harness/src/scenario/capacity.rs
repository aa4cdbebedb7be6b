//! The scenario's `capacity:` section (`faultline capacity`): the latency SLO a rate must hold,
//! how the rate is searched, how long each step lasts, the fault held for the N−1 search and
//! the planned peak.
//!
//! ```yaml
//! capacity:
//!   slo: {p99: 50ms, p999: 200ms, max_error_rate: 0.1%, min_achieved: 99%}
//!   search: {start: 500, max: 50000, factor: 2, precision: 5%}
//!   step: {warmup: 5s, hold: 20s}
//!   n_minus_1: {kind: kill, target: stream-leader}
//!   planned_peak: 2000
//!   failover_load: 70%
//! ```

use std::time::Duration;

use super::{read_what, FaultKind, Target};
use crate::faults;
use crate::yaml::{self, Diagnostics, Fields, Node, Pos};

/// A latency percentile an SLO can bound, measured from the intended send time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Percentile {
    P50,
    P90,
    P99,
    P999,
    Max,
}

impl Percentile {
    pub const ALL: [Percentile; 5] = [
        Percentile::P50,
        Percentile::P90,
        Percentile::P99,
        Percentile::P999,
        Percentile::Max,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Percentile::P50 => "p50",
            Percentile::P90 => "p90",
            Percentile::P99 => "p99",
            Percentile::P999 => "p999",
            Percentile::Max => "max",
        }
    }

    /// The quantile (1.0 for the maximum).
    pub fn quantile(self) -> f64 {
        match self {
            Percentile::P50 => 0.5,
            Percentile::P90 => 0.9,
            Percentile::P99 => 0.99,
            Percentile::P999 => 0.999,
            Percentile::Max => 1.0,
        }
    }
}

/// What a step must hold to pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Slo {
    /// Latency bounds, from the intended send time to the acknowledgement.
    pub latency: Vec<(Percentile, Duration)>,
    /// Failed and unknown publishes over all publishes of the step (fraction).
    pub max_error_rate: f64,
    /// Acknowledged rate over offered rate, at least (fraction).
    pub min_achieved: f64,
}

/// How the rate is searched: multiplied by `factor` from `start` until a step fails (or
/// `max` passes), then halved between the last pass and the first failure until they are
/// within `precision` of each other.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Search {
    pub start: f64,
    pub max: f64,
    pub factor: f64,
    /// Fraction of the failing rate the bracket must shrink to.
    pub precision: f64,
}

/// The fault held during the whole N−1 search: what it is, whom it hits.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldFault {
    pub kind: FaultKind,
    pub target: Option<Target>,
    pub settings: faults::Settings,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CapacitySpec {
    pub slo: Slo,
    pub search: Search,
    /// Each step's first part, left out of its figures.
    pub warmup: Duration,
    /// Each step's measured part.
    pub hold: Duration,
    pub n_minus_1: Option<HeldFault>,
    /// The load the cluster must carry; with it, the report gives the headroom.
    pub planned_peak: Option<f64>,
    /// The failover run's load, as a share of the N−1 maximum.
    pub failover_load: f64,
    pub pos: Pos,
}

pub(super) const KEYS: &[&str] = &[
    "slo",
    "search",
    "step",
    "n_minus_1",
    "planned_peak",
    "failover_load",
];
pub(super) const SLO_KEYS: &[&str] = &[
    "p50",
    "p90",
    "p99",
    "p999",
    "max",
    "max_error_rate",
    "min_achieved",
];
pub(super) const SEARCH_KEYS: &[&str] = &["start", "max", "factor", "precision"];
pub(super) const STEP_KEYS: &[&str] = &["warmup", "hold"];

/// Kinds that undo themselves cannot be held for a step.
pub(super) const HELD_KINDS: &[FaultKind] = &[
    FaultKind::Kill,
    FaultKind::Pause,
    FaultKind::Stop,
    FaultKind::Partition,
    FaultKind::Loss,
    FaultKind::Bandwidth,
    FaultKind::Delay,
    FaultKind::Reorder,
    FaultKind::Duplicate,
    FaultKind::Corrupt,
    FaultKind::DiskFull,
    FaultKind::ClockSkew,
    FaultKind::PowerLoss,
];

pub(super) fn read(
    node: &Node,
    cx: &faults::ReadCtx,
    family: Option<&str>,
    d: &mut Diagnostics,
) -> Option<CapacitySpec> {
    let f = Fields::new(node, KEYS, "capacity", d)?;
    let slo = f
        .require("slo", "the latency SLO, such as {p99: 50ms}", d)
        .and_then(|n| read_slo(n, d));
    let search = f
        .require(
            "search",
            "the rates to search, such as {start: 500, max: 50000}",
            d,
        )
        .and_then(|n| read_search(n, d));
    let (warmup, hold) = match f.get("step") {
        Some(n) => read_step(n, d),
        None => (Some(Duration::from_secs(5)), Some(Duration::from_secs(20))),
    };
    let n_minus_1 = match f.get("n_minus_1") {
        Some(n) => read_held(n, cx, family, d).map(Some),
        None => Some(None),
    };
    let planned_peak = match f.get("planned_peak") {
        Some(n) => yaml::positive_number(n, "capacity.planned_peak", d).map(Some),
        None => Some(None),
    };
    let failover_load = match f.get("failover_load") {
        Some(n) => yaml::share(
            n,
            "capacity.failover_load",
            100.0,
            "a share such as \"70%\"",
            d,
        )
        .and_then(|v| {
            if v > 0.0 {
                Some(v)
            } else {
                d.error(n.pos, "capacity.failover_load: expected more than 0%");
                None
            }
        }),
        None => Some(0.7),
    };
    Some(CapacitySpec {
        slo: slo?,
        search: search?,
        warmup: warmup?,
        hold: hold?,
        n_minus_1: n_minus_1?,
        planned_peak: planned_peak?,
        failover_load: failover_load?,
        pos: node.pos,
    })
}

fn read_slo(node: &Node, d: &mut Diagnostics) -> Option<Slo> {
    let f = Fields::new(node, SLO_KEYS, "capacity.slo", d)?;
    let mut latency = Vec::new();
    let mut ok = true;
    for p in Percentile::ALL {
        if let Some(n) = f.get(p.key()) {
            match yaml::duration(n, &f.path_of(p.key()), d) {
                Some(v) => latency.push((p, v)),
                None => ok = false,
            }
        }
    }
    if latency.is_empty() && ok {
        d.error(
            f.pos,
            "capacity.slo: expected at least one latency bound (p50, p90, p99, p999 or max)",
        );
        ok = false;
    }
    let share = |key: &str, default: f64, expected: &str, d: &mut Diagnostics| match f.get(key) {
        Some(n) => yaml::share(n, &f.path_of(key), 100.0, expected, d),
        None => Some(default),
    };
    let max_error_rate = share("max_error_rate", 0.0, "a share such as \"0.1%\"", d);
    let min_achieved = share("min_achieved", 0.99, "a share such as \"99%\"", d);
    Some(Slo {
        latency: ok.then_some(latency)?,
        max_error_rate: max_error_rate?,
        min_achieved: min_achieved?,
    })
}

fn read_search(node: &Node, d: &mut Diagnostics) -> Option<Search> {
    let f = Fields::new(node, SEARCH_KEYS, "capacity.search", d)?;
    let rate = |key: &str, what: &str, d: &mut Diagnostics| {
        f.require(key, what, d)
            .and_then(|n| yaml::positive_number(n, &f.path_of(key), d))
    };
    let start = rate("start", "the first step's rate, in messages per second", d);
    let max = rate("max", "the highest rate to try, in messages per second", d);
    let factor = match f.get("factor") {
        Some(n) => yaml::positive_number(n, &f.path_of("factor"), d).and_then(|v| {
            if (1.1..=10.0).contains(&v) {
                Some(v)
            } else {
                d.error(
                    n.pos,
                    format!("capacity.search.factor: expected 1.1 to 10, found {v}"),
                );
                None
            }
        }),
        None => Some(2.0),
    };
    let precision = match f.get("precision") {
        Some(n) => yaml::share(
            n,
            &f.path_of("precision"),
            50.0,
            "a share from 0.1% to 50% such as \"5%\"",
            d,
        )
        .and_then(|v| {
            if v >= 0.001 {
                Some(v)
            } else {
                d.error(n.pos, "capacity.search.precision: expected at least 0.1%");
                None
            }
        }),
        None => Some(0.05),
    };
    if let (Some(s), Some(m)) = (start, max) {
        if s > m {
            d.error(
                f.pos,
                format!("capacity.search: start ({s}) is above max ({m})"),
            );
            return None;
        }
    }
    Some(Search {
        start: start?,
        max: max?,
        factor: factor?,
        precision: precision?,
    })
}

fn read_step(node: &Node, d: &mut Diagnostics) -> (Option<Duration>, Option<Duration>) {
    let Some(f) = Fields::new(node, STEP_KEYS, "capacity.step", d) else {
        return (None, None);
    };
    let warmup = match f.get("warmup") {
        Some(n) => yaml::duration(n, &f.path_of("warmup"), d),
        None => Some(Duration::from_secs(5)),
    };
    let hold = match f.get("hold") {
        Some(n) => yaml::duration(n, &f.path_of("hold"), d).and_then(|h| {
            if h >= Duration::from_secs(1) {
                Some(h)
            } else {
                d.error(n.pos, "capacity.step.hold: expected at least 1s");
                None
            }
        }),
        None => Some(Duration::from_secs(20)),
    };
    (warmup, hold)
}

fn held_keys() -> Vec<&'static str> {
    let mut keys = vec!["kind", "target"];
    keys.extend(
        faults::KIND_KEYS
            .iter()
            .flat_map(|(_, k)| k.iter().copied()),
    );
    keys
}

fn read_held(
    node: &Node,
    cx: &faults::ReadCtx,
    family: Option<&str>,
    d: &mut Diagnostics,
) -> Option<HeldFault> {
    let path = "capacity.n_minus_1";
    let f = Fields::new(node, &held_keys(), path, d)?;
    let (kind, target, settings) = read_what(&f, path, cx, family, d);
    if let (Some(k), Some(n)) = (kind, f.get("kind")) {
        if !HELD_KINDS.contains(&k) {
            let held: Vec<&str> = HELD_KINDS.iter().map(|k| k.name()).collect();
            d.error(
                n.pos,
                format!(
                    "{path}.kind: a {} undoes itself; the N-1 condition needs a fault held for the whole search: {}",
                    k.name(),
                    held.join(", ")
                ),
            );
            return None;
        }
    }
    Some(HeldFault {
        kind: kind?,
        target: target?,
        settings: settings?,
        pos: node.pos,
    })
}
