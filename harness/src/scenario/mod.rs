//! The scenario: what cluster to start, what load to drive, which faults to inject when, and
//! which checks decide the verdict.
//!
//! [`load`] reads the YAML file and the compose topology it names, and reports every problem it
//! finds (unknown keys, bad durations, fault targets that name no node, settings the family
//! does not have) with `file:line:column`, before anything touches Docker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::regression::Limits;
use crate::check::verdict::Checks;
use crate::cluster::compose::{self, Topology};
use crate::families::{self, WorkloadSettings};
use crate::faults;
use crate::yaml::{self, Diagnostic, Diagnostics, Fields, Node, Pos};

pub use crate::fault_kind::FaultKind;
pub use crate::target::{read_target, Target};

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub file: PathBuf,
    pub topology: Topology,
    /// How long the cluster may take to report itself ready.
    pub ready_timeout: Duration,
    pub workload: Workload,
    pub probe_interval: Duration,
    pub faults: Vec<FaultSpec>,
    pub checks: Checks,
    /// How far each number may move against a baseline (`--baseline`).
    pub regression: Limits,
    /// What `faultline capacity` searches, when the scenario says.
    pub capacity: Option<CapacitySpec>,
}

#[derive(Clone, Debug)]
pub struct Workload {
    /// Messages per second, all producers together.
    pub rate: f64,
    pub duration: Duration,
    pub producers: u32,
    pub payload_bytes: usize,
    pub max_in_flight: usize,
    pub ack_timeout: Duration,
    pub drain_timeout: Duration,
    pub settings: WorkloadSettings,
}

/// One fault of the scenario: the common envelope (when, whom, how long, how often) around
/// the settings its kind reads in `faults/<kind>.rs`.
#[derive(Clone, Debug)]
pub struct FaultSpec {
    pub at: Duration,
    pub kind: FaultKind,
    /// `None` only for partition shapes that need no target (halves, ring, one-way, links).
    pub target: Option<Target>,
    /// Heal this long after injection; `None` heals when the load ends.
    pub heal_after: Option<Duration>,
    /// What the kind reads beside the envelope (signal, shape, percent, rate, path, offset...).
    pub settings: faults::Settings,
    /// Repeat every this long, `times` times in all.
    pub every: Option<Duration>,
    /// Each interval is drawn uniformly from `every ± jitter` with the run's seed.
    pub jitter: Option<Duration>,
    pub times: u32,
    /// Where the fault is written, for messages about it.
    pub pos: Pos,
}

impl FaultSpec {
    /// Start times of every occurrence, from the start of the load. With `jitter`, each
    /// interval is drawn from `rng`; without an rng, the latest possible times (for
    /// validation).
    pub fn occurrences(&self, mut rng: Option<&mut crate::rng::Rng>) -> Vec<Duration> {
        let every = self.every.unwrap_or_default();
        let jitter = self.jitter.unwrap_or_default().min(every);
        let mut at = self.at;
        let mut out = Vec::new();
        for k in 0..self.times {
            if k > 0 {
                at += match rng.as_deref_mut() {
                    Some(rng) if !jitter.is_zero() => {
                        let span = (2 * jitter).as_micros() as u64;
                        every - jitter + Duration::from_micros(rng.next_u64() % (span + 1))
                    }
                    Some(_) => every,
                    None => every + jitter,
                };
            }
            out.push(at);
        }
        out
    }
}

/// Reads and validates a scenario. Every problem found is returned at once.
pub fn load(path: &Path) -> Result<Scenario, Vec<Diagnostic>> {
    let mut d = Diagnostics::new(path);
    let scenario = read(path, &mut d);
    match scenario {
        Some(s) if d.is_empty() => Ok(s),
        _ => {
            let mut errors = d.into_vec();
            if errors.is_empty() {
                errors.push(Diagnostic {
                    file: path.to_path_buf(),
                    pos: Pos::default(),
                    message: "invalid scenario".into(),
                });
            }
            Err(errors)
        }
    }
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "cluster",
    "workload",
    "probes",
    "faults",
    "checks",
    "regression",
    "capacity",
];
const CLUSTER_KEYS: &[&str] = &["compose", "ready_timeout"];
const PROBE_KEYS: &[&str] = &["interval"];
const CHECK_KEYS: &[&str] = &[
    "min_acked",
    "max_lost",
    "max_unexpected",
    "max_duplicated",
    "max_failover",
    "max_detection",
    "max_recovery",
    "max_stall_percent",
    "healthy_after",
];

fn read(path: &Path, d: &mut Diagnostics) -> Option<Scenario> {
    let root = yaml::load_file(path, "scenario", d)?;
    let top = Fields::new(&root, TOP_KEYS, "", d)?;

    let name = top
        .require("name", "a short scenario name", d)
        .and_then(|n| yaml::string(n, "name", d))
        .map(String::from);
    if let (Some(n), Some(node)) = (&name, top.get("name")) {
        if n.is_empty() || n == "." || n == ".." || n.len() > 64 {
            d.error(
                node.pos,
                format!("name: expected 1 to 64 characters, not \".\" or \"..\" (it names the output directory), found {n:?}"),
            );
        } else if !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            d.error(
                node.pos,
                "name: expected letters, digits, '-', '_' or '.' (it names the output directory)",
            );
        }
    }
    let description = top
        .get("description")
        .and_then(|n| yaml::string(n, "description", d))
        .map(String::from);

    let dir = path.parent().unwrap_or(Path::new("."));
    let (topology, ready_timeout) = match top.require("cluster", "the cluster to start", d) {
        Some(node) => read_cluster(node, dir, d),
        None => (None, Duration::from_secs(60)),
    };
    let family = topology.as_ref().map(|t| t.family.clone());
    let workload = top
        .require("workload", "the load to drive", d)
        .and_then(|n| read_workload(n, family.as_deref(), d));
    let probe_interval = top
        .get("probes")
        .and_then(|n| {
            let f = Fields::new(n, PROBE_KEYS, "probes", d)?;
            f.get("interval")
                .and_then(|i| yaml::duration(i, "probes.interval", d))
        })
        .unwrap_or(Duration::from_millis(100));
    if probe_interval < Duration::from_millis(10) {
        let at = top.get("probes").and_then(|p| match &p.value {
            yaml::Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, yaml::Value::Scalar { text, .. } if text == "interval"))
                .map(|(_, v)| v.pos),
            _ => None,
        });
        if let Some(pos) = at.or_else(|| top.get("probes").map(|n| n.pos)) {
            d.error(
                pos,
                format!("probes.interval: expected at least 10ms, found {probe_interval:?}"),
            );
        }
    }

    let nodes = topology
        .as_ref()
        .map(|t| t.node_names())
        .unwrap_or_default();
    let roles = family
        .as_deref()
        .and_then(families::family)
        .map_or(&[][..], |f| f.roles());
    let cx = faults::ReadCtx {
        nodes: &nodes,
        roles,
    };
    let faults = match top.get("faults") {
        Some(n) => yaml::list(n, "faults", d)
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        read_fault(item, &format!("faults[{i}]"), &cx, family.as_deref(), d)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    // What the load is due to send: a run acknowledging less than a tenth of it by default
    // tested nothing.
    let due = workload
        .as_ref()
        .map(|w| (w.rate * w.duration.as_secs_f64()).floor() as u64);
    let default_min_acked = due.map_or(1, |due| due.div_ceil(10).max(1));
    let checks = match top.get("checks") {
        Some(n) => read_checks(n, default_min_acked, d),
        None => Some(Checks {
            min_acked: default_min_acked,
            ..Checks::default()
        }),
    };

    let regression = match top.get("regression") {
        Some(n) => regression::read(n, d),
        None => Some(Limits::default()),
    };
    let capacity = match top.get("capacity") {
        Some(n) => capacity::read(n, &cx, family.as_deref(), d).map(Some),
        None => Some(None),
    };

    let scenario = Scenario {
        name: name?,
        description,
        file: path.to_path_buf(),
        topology: topology?,
        ready_timeout,
        workload: workload?,
        probe_interval,
        faults,
        checks: checks?,
        regression: regression?,
        capacity: capacity?,
    };
    cross_check(&scenario, &top, d);
    Some(scenario)
}

fn read_cluster(node: &Node, dir: &Path, d: &mut Diagnostics) -> (Option<Topology>, Duration) {
    let mut ready = Duration::from_secs(60);
    let Some(f) = Fields::new(node, CLUSTER_KEYS, "cluster", d) else {
        return (None, ready);
    };
    if let Some(n) = f.get("ready_timeout") {
        ready = yaml::duration(n, "cluster.ready_timeout", d).unwrap_or(ready);
    }
    let topology = f
        .require(
            "compose",
            "a compose file path, relative to the scenario",
            d,
        )
        .and_then(|n| {
            let rel = yaml::string(n, "cluster.compose", d)?;
            let file = dir.join(rel);
            if !file.is_file() {
                d.error(
                    n.pos,
                    format!("cluster.compose: no such file: {}", file.display()),
                );
                return None;
            }
            compose::load(&file, &families::topology_vocabulary(), d)
        });
    (topology, ready)
}

const WORKLOAD_KEYS: &[&str] = &[
    "rate",
    "duration",
    "producers",
    "payload_bytes",
    "max_in_flight",
    "ack_timeout",
    "drain_timeout",
];

fn read_workload(node: &Node, family: Option<&str>, d: &mut Diagnostics) -> Option<Workload> {
    let mut allowed: Vec<&str> = WORKLOAD_KEYS.to_vec();
    allowed.extend(families::FAMILIES.iter().map(|f| f.name()));
    let f = Fields::new(node, &allowed, "workload", d)?;
    let rate = f
        .require("rate", "messages per second, all producers together", d)
        .and_then(|n| yaml::positive_number(n, "workload.rate", d));
    let duration = f
        .require("duration", "how long the load runs, such as \"60s\"", d)
        .and_then(|n| yaml::duration(n, "workload.duration", d));
    let producers = match f.get("producers") {
        Some(n) => yaml::integer(n, "workload.producers", 1, 1024, d).map(|v| v as u32),
        None => Some(1),
    };
    let payload_bytes = match f.get("payload_bytes") {
        Some(n) => yaml::integer(n, "workload.payload_bytes", 16, 8 << 20, d).map(|v| v as usize),
        None => Some(256),
    };
    let max_in_flight = match f.get("max_in_flight") {
        Some(n) => yaml::integer(n, "workload.max_in_flight", 1, 1 << 20, d).map(|v| v as usize),
        None => Some(4096),
    };
    let ack_timeout = match f.get("ack_timeout") {
        Some(n) => yaml::duration(n, "workload.ack_timeout", d),
        None => Some(Duration::from_secs(5)),
    };
    let drain_timeout = match f.get("drain_timeout") {
        Some(n) => yaml::duration(n, "workload.drain_timeout", d),
        None => Some(Duration::from_secs(60)),
    };

    let mut settings = None;
    for registered in families::FAMILIES {
        let other = registered.name();
        let Some(n) = f.get(other) else { continue };
        match family {
            Some(fam) if fam == other => settings = registered.read_workload(n, d),
            Some(fam) => d.error(
                n.pos,
                format!("workload.{other}: this cluster is a {fam} cluster; {other} settings do not apply"),
            ),
            None => {}
        }
    }
    if let (Some(fam), None) = (family, f.get(family.unwrap_or_default())) {
        d.error(
            f.pos,
            format!("workload: missing key `{fam}`: expected the {fam} settings (see README)"),
        );
    }
    if let (Some(rate), Some(dur)) = (rate, duration) {
        if rate * dur.as_secs_f64() < 1.0 {
            d.error(f.pos, "workload: rate x duration is less than one message");
        }
    }
    Some(Workload {
        rate: rate?,
        duration: duration?,
        producers: producers?,
        payload_bytes: payload_bytes?,
        max_in_flight: max_in_flight?,
        ack_timeout: ack_timeout?,
        drain_timeout: drain_timeout?,
        settings: settings?,
    })
}

/// The envelope every fault has, whatever its kind.
const ENVELOPE_KEYS: &[&str] = &["at", "kind", "target", "for", "every", "jitter", "times"];

fn fault_keys() -> Vec<&'static str> {
    let mut keys = ENVELOPE_KEYS[..4].to_vec();
    keys.extend(
        faults::KIND_KEYS
            .iter()
            .flat_map(|(_, k)| k.iter().copied())
            .filter(|k| !faults::ENVELOPE_TOO.contains(k)),
    );
    // A key two kinds take (`peers`: loss and delay) is listed once.
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(*k));
    keys.extend_from_slice(&ENVELOPE_KEYS[4..]);
    keys
}

fn read_fault(
    node: &Node,
    path: &str,
    cx: &faults::ReadCtx,
    family: Option<&str>,
    d: &mut Diagnostics,
) -> Option<FaultSpec> {
    let f = Fields::new(node, &fault_keys(), path, d)?;
    let at = f
        .require("at", "when the fault starts, from the start of the load", d)
        .and_then(|n| yaml::duration(n, &f.path_of("at"), d));
    let (kind, target, settings) = read_what(&f, path, cx, family, d);
    let heal_after = match f.get("for") {
        Some(n) => {
            if kind.is_some_and(|k| !k.takes_duration()) {
                d.error(
                    n.pos,
                    format!(
                        "{}: a {} heals itself; `for` does not apply",
                        f.path_of("for"),
                        kind.map(FaultKind::name).unwrap_or_default()
                    ),
                );
            }
            yaml::duration(n, &f.path_of("for"), d).map(Some)
        }
        None => Some(None),
    };
    let (every, jitter, times) = read_repetition(&f, kind, d);
    Some(FaultSpec {
        at: at?,
        kind: kind?,
        target: target?,
        heal_after: heal_after?,
        settings: settings?,
        every: every?,
        jitter: jitter?,
        times: times?,
        pos: node.pos,
    })
}

type What = (
    Option<FaultKind>,
    Option<Option<Target>>,
    Option<faults::Settings>,
);

/// What a fault is, whenever it happens: its kind, its target and the kind's settings.
fn read_what(
    f: &Fields,
    path: &str,
    cx: &faults::ReadCtx,
    family: Option<&str>,
    d: &mut Diagnostics,
) -> What {
    let kind = f
        .require(
            "kind",
            &format!("one of {}", FaultKind::NAMES.join(", ")),
            d,
        )
        .and_then(|n| read_kind(n, &f.path_of("kind"), family, d));
    let target = f
        .get("target")
        .map(|n| read_target(n, &f.path_of("target"), cx.nodes, cx.roles, d));
    let settings = kind.map(|k| faults::read_settings(k, f, path, cx, d));
    let target = match (kind, target) {
        (Some(FaultKind::RollingRestart), None) => Some(Some(Target::All)),
        (Some(FaultKind::Partition), None) => Some(None),
        (Some(_), None) => {
            d.error(f.pos, format!("{path}: missing key `target`: expected a node name, a list of nodes, random, minority, majority, all or a role"));
            None
        }
        (_, Some(Some(t))) => Some(Some(t)),
        (_, Some(None)) | (None, None) => None,
    };
    (kind, target, settings)
}

/// The kind, refused with a reason when faultline does not build it or the family cannot
/// take it whatever its settings.
fn read_kind(n: &Node, path: &str, family: Option<&str>, d: &mut Diagnostics) -> Option<FaultKind> {
    let text = yaml::string(n, path, d)?;
    let refused = faults::refuse_unbuilt(text).or_else(|| {
        let kind = FaultKind::parse(text)?;
        families::family(family?)?.refuse_kind(kind)
    });
    if let Some(reason) = refused {
        d.error(n.pos, format!("{path}: {reason}"));
        return None;
    }
    yaml::choice(n, path, FaultKind::NAMES, d).and_then(FaultKind::parse)
}

type Repetition = (
    Option<Option<Duration>>,
    Option<Option<Duration>>,
    Option<u32>,
);

/// `every`, `jitter` and `times` (a delay's `jitter` is its own: it varies each packet's delay,
/// and a repeated delay has no jitter of its `every`).
fn read_repetition(f: &Fields, kind: Option<FaultKind>, d: &mut Diagnostics) -> Repetition {
    let every = match f.get("every") {
        Some(n) => yaml::duration(n, &f.path_of("every"), d).map(Some),
        None => Some(None),
    };
    let jitter = match f.get("jitter") {
        Some(_) if kind == Some(FaultKind::Delay) => Some(None),
        Some(n) => {
            if f.get("every").is_none() {
                d.error(
                    n.pos,
                    format!(
                        "{}: jitter varies `every`, which is missing",
                        f.path_of("jitter")
                    ),
                );
            }
            yaml::duration(n, &f.path_of("jitter"), d).map(Some)
        }
        None => Some(None),
    };
    let times = match f.get("times") {
        Some(n) => yaml::integer(n, &f.path_of("times"), 1, 10_000, d).map(|t| t as u32),
        None => Some(1),
    };
    if let (Some(None), Some(t), Some(n)) = (&every, times, f.get("times")) {
        if t > 1 {
            d.error(
                n.pos,
                format!("{}: repeating needs `every`", f.path_of("times")),
            );
        }
    }
    (every, jitter, times)
}

fn read_checks(node: &Node, default_min_acked: u64, d: &mut Diagnostics) -> Option<Checks> {
    let f = Fields::new(node, CHECK_KEYS, "checks", d)?;
    let mut c = Checks::default();
    let count = |key: &str, d: &mut Diagnostics| {
        f.get(key)
            .and_then(|n| yaml::integer(n, &f.path_of(key), 0, u64::MAX, d))
    };
    c.min_acked = count("min_acked", d).unwrap_or(default_min_acked);
    if let Some(v) = count("max_lost", d) {
        c.max_lost = v;
    }
    if let Some(v) = count("max_unexpected", d) {
        c.max_unexpected = v;
    }
    c.max_duplicated = count("max_duplicated", d);
    let dur = |key: &str, d: &mut Diagnostics| {
        f.get(key)
            .and_then(|n| yaml::duration(n, &f.path_of(key), d))
    };
    c.max_failover = dur("max_failover", d);
    c.max_detection = dur("max_detection", d);
    c.max_recovery = dur("max_recovery", d);
    if let Some(n) = f.get("healthy_after") {
        c.healthy_after = yaml::choice(n, "checks.healthy_after", &["true", "false"], d)
            .is_some_and(|v| v == "true");
    }
    if let Some(v) = f
        .get("max_stall_percent")
        .and_then(|n| yaml::positive_number(n, "checks.max_stall_percent", d))
    {
        c.max_stall = v / 100.0;
    }
    Some(c)
}

/// Checks that need several sections at once.
fn cross_check(s: &Scenario, top: &Fields, d: &mut Diagnostics) {
    for fault in &s.faults {
        let last = fault.occurrences(None).last().copied().unwrap_or(fault.at);
        let end = last + fault.heal_after.unwrap_or_default();
        if last >= s.workload.duration {
            d.error(
                fault.pos,
                format!(
                    "fault at {:?} starts after the load ends (workload.duration {:?})",
                    last, s.workload.duration
                ),
            );
        } else if end >= s.workload.duration {
            d.error(
                fault.pos,
                format!(
                    "fault at {:?} heals at {:?}, after the load ends ({:?}): nothing would measure the recovery",
                    last, end, s.workload.duration
                ),
            );
        }
        if let (Some(every), Some(for_)) = (fault.every, fault.heal_after) {
            let shortest = every.saturating_sub(fault.jitter.unwrap_or_default());
            if fault.times > 1 && for_ >= shortest {
                d.error(
                    fault.pos,
                    format!("fault repeats every {every:?} but lasts {for_:?}: each occurrence must heal before the next"),
                );
            }
        }
    }
    s.workload.settings.check(
        &s.topology,
        s.workload.duration,
        top.get("workload").map(|n| n.pos).unwrap_or_default(),
        d,
    );
    for fault in &s.faults {
        let named = fault.target.as_ref();
        check_fault_topology(
            s,
            fault.kind,
            named,
            &fault.settings,
            fault.pos,
            fault.times,
            d,
        );
    }
    if let Some(held) = s.capacity.as_ref().and_then(|c| c.n_minus_1.as_ref()) {
        check_fault_topology(
            s,
            held.kind,
            held.target.as_ref(),
            &held.settings,
            held.pos,
            1,
            d,
        );
    }
}

/// Checks a fault against the topology (the fault's own file knows what it needs) and the
/// family's settings.
fn check_fault_topology(
    s: &Scenario,
    kind: FaultKind,
    target: Option<&Target>,
    settings: &faults::Settings,
    pos: Pos,
    times: u32,
    d: &mut Diagnostics,
) {
    if let Some(reason) = s.workload.settings.refuse_fault(kind) {
        d.error(pos, reason);
    }
    let named: Option<Vec<&str>> = match target {
        Some(Target::Node(n)) => Some(vec![n.as_str()]),
        Some(Target::Nodes(list)) => Some(list.iter().map(String::as_str).collect()),
        _ => None,
    };
    let planned = faults::Planned { pos, named, times };
    faults::check_topology(kind, settings, &planned, &s.topology, d);
}

#[cfg(test)]
mod tests;

mod capacity;
pub mod fuzzing;
mod regression;
pub mod schema;

pub use capacity::{CapacitySpec, HeldFault, Percentile, Search, Slo};
