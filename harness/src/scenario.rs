//! The scenario: what cluster to start, what load to drive, which faults to inject when, and
//! which checks decide the verdict.
//!
//! [`load`] reads the YAML file and the compose topology it names, and reports every problem it
//! finds (unknown keys, bad durations, fault targets that name no node, settings the family
//! does not have) with `file:line:column`, before anything touches Docker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::verdict::Checks;
use crate::cluster::compose::{self, Topology};
use crate::families::{self, WorkloadSettings};
use crate::yaml::{self, Diagnostic, Diagnostics, Fields, Node, Pos};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Send a signal to the node's main process (SIGKILL by default); heal starts it again.
    Kill,
    /// Freeze every process of the node (cgroup freezer); heal thaws it.
    Pause,
    /// Stop the node gracefully and start it again; it heals itself.
    Restart,
}

impl FaultKind {
    pub const NAMES: &'static [&'static str] = &["kill", "pause", "restart"];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Restart => "restart",
        }
    }
}

/// Who a fault hits, decided when it is injected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Node(String),
    /// A node picked with the run's seed.
    Random,
    /// A role the family's probes resolve at fault time ("stream-leader").
    Role(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node(n) => write!(f, "{n}"),
            Target::Random => write!(f, "random"),
            Target::Role(r) => write!(f, "{r}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct FaultSpec {
    pub at: Duration,
    pub kind: FaultKind,
    pub target: Target,
    /// Heal this long after injection; `None` heals when the load ends.
    pub heal_after: Option<Duration>,
    /// Signal for `kill`.
    pub signal: String,
}

const SIGNALS: &[&str] = &["SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT"];

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

fn read(path: &Path, d: &mut Diagnostics) -> Option<Scenario> {
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            d.error(Pos::default(), format!("cannot read scenario: {e}"));
            return None;
        }
    };
    let root = match yaml::parse(&src) {
        Ok(Some(root)) => root,
        Ok(None) => {
            d.error(Pos::default(), "scenario is empty");
            return None;
        }
        Err((pos, msg)) => {
            d.error(pos, format!("invalid YAML: {msg}"));
            return None;
        }
    };
    let top = Fields::new(
        &root,
        &[
            "name",
            "description",
            "cluster",
            "workload",
            "probes",
            "faults",
            "checks",
        ],
        "",
        d,
    )?;

    let name = top
        .require("name", "a short scenario name", d)
        .and_then(|n| yaml::string(n, "name", d))
        .map(String::from);
    if let (Some(n), Some(node)) = (&name, top.get("name")) {
        if !n
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
            let f = Fields::new(n, &["interval"], "probes", d)?;
            f.get("interval")
                .and_then(|i| yaml::duration(i, "probes.interval", d))
        })
        .unwrap_or(Duration::from_millis(100));
    if probe_interval < Duration::from_millis(10) {
        if let Some(n) = top.get("probes") {
            d.error(n.pos, "probes.interval: expected at least 10ms");
        }
    }

    let nodes = topology
        .as_ref()
        .map(|t| t.node_names())
        .unwrap_or_default();
    let roles = family.as_deref().map(families::roles).unwrap_or(&[]);
    let faults = match top.get("faults") {
        Some(n) => yaml::list(n, "faults", d)
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        read_fault(item, &format!("faults[{i}]"), &nodes, roles, d)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let checks = match top.get("checks") {
        Some(n) => read_checks(n, d),
        None => Some(Checks::default()),
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
    };
    cross_check(&scenario, &top, d);
    Some(scenario)
}

fn read_cluster(node: &Node, dir: &Path, d: &mut Diagnostics) -> (Option<Topology>, Duration) {
    let mut ready = Duration::from_secs(60);
    let Some(f) = Fields::new(node, &["compose", "ready_timeout"], "cluster", d) else {
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
            compose::load(&file, families::FAMILIES, d)
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
    allowed.extend_from_slice(families::FAMILIES);
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
    for other in families::FAMILIES {
        let Some(n) = f.get(other) else { continue };
        match family {
            Some(fam) if fam == *other => settings = families::parse_workload(fam, n, d),
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

fn read_fault(
    node: &Node,
    path: &str,
    nodes: &[String],
    roles: &[&str],
    d: &mut Diagnostics,
) -> Option<FaultSpec> {
    let f = Fields::new(node, &["at", "kind", "target", "for", "signal"], path, d)?;
    let at = f
        .require("at", "when the fault starts, from the start of the load", d)
        .and_then(|n| yaml::duration(n, &f.path_of("at"), d));
    let kind = f
        .require(
            "kind",
            &format!("one of {}", FaultKind::NAMES.join(", ")),
            d,
        )
        .and_then(|n| yaml::choice(n, &f.path_of("kind"), FaultKind::NAMES, d))
        .map(|k| match k {
            "kill" => FaultKind::Kill,
            "pause" => FaultKind::Pause,
            _ => FaultKind::Restart,
        });
    let target = f
        .require("target", "a node name, `random` or a role", d)
        .and_then(|n| {
            let t = yaml::string(n, &f.path_of("target"), d)?;
            if t == "random" {
                Some(Target::Random)
            } else if roles.contains(&t) {
                Some(Target::Role(t.to_string()))
            } else if nodes.iter().any(|n| n == t) || nodes.is_empty() {
                Some(Target::Node(t.to_string()))
            } else {
                d.error(
                    n.pos,
                    format!(
                        "{}: no node or role named {t:?}: expected one of {}, random{}",
                        f.path_of("target"),
                        nodes.join(", "),
                        roles.iter().map(|r| format!(", {r}")).collect::<String>()
                    ),
                );
                None
            }
        });
    let heal_after = match f.get("for") {
        Some(n) => yaml::duration(n, &f.path_of("for"), d).map(Some),
        None => Some(None),
    };
    let signal = match f.get("signal") {
        Some(n) => {
            if kind.is_some() && kind != Some(FaultKind::Kill) {
                d.error(
                    n.pos,
                    format!("{}: only a kill takes a signal", f.path_of("signal")),
                );
            }
            yaml::choice(n, &f.path_of("signal"), SIGNALS, d).map(String::from)
        }
        None => Some("SIGKILL".to_string()),
    };
    if let (Some(FaultKind::Restart), Some(n)) = (kind, f.get("for")) {
        d.error(
            n.pos,
            format!(
                "{}: a restart heals itself; `for` applies to kill and pause",
                f.path_of("for")
            ),
        );
    }
    Some(FaultSpec {
        at: at?,
        kind: kind?,
        target: target?,
        heal_after: heal_after?,
        signal: signal?,
    })
}

fn read_checks(node: &Node, d: &mut Diagnostics) -> Option<Checks> {
    let f = Fields::new(
        node,
        &[
            "max_lost",
            "max_unexpected",
            "max_duplicated",
            "max_failover",
            "max_detection",
            "max_recovery",
            "max_stall_percent",
        ],
        "checks",
        d,
    )?;
    let mut c = Checks::default();
    let count = |key: &str, d: &mut Diagnostics| {
        f.get(key)
            .and_then(|n| yaml::integer(n, &f.path_of(key), 0, u64::MAX, d))
    };
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
    let Some(faults_node) = top.get("faults") else {
        return;
    };
    let items = match &faults_node.value {
        yaml::Value::Seq(items) => items,
        _ => return,
    };
    for (fault, node) in s.faults.iter().zip(items) {
        let end = fault.at + fault.heal_after.unwrap_or_default();
        if fault.at >= s.workload.duration {
            d.error(
                node.pos,
                format!(
                    "fault at {:?} starts after the load ends (workload.duration {:?})",
                    fault.at, s.workload.duration
                ),
            );
        } else if end >= s.workload.duration {
            d.error(
                node.pos,
                format!(
                    "fault at {:?} heals at {:?}, after the load ends ({:?}): nothing would measure the recovery",
                    fault.at, end, s.workload.duration
                ),
            );
        }
    }
    let replicas = match &s.workload.settings {
        WorkloadSettings::Nats(n) => n.replicas as usize,
    };
    if replicas > s.topology.services.len() {
        d.error(
            top.get("workload").map(|n| n.pos).unwrap_or_default(),
            format!(
                "workload: {replicas} replicas asked for, but the cluster has {} node(s)",
                s.topology.services.len()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPOSE: &str = "services:\n  n1: { image: nats:2.15.1 }\n  n2: { image: nats:2.15.1 }\n  n3: { image: nats:2.15.1 }\nx-faultline:\n  family: nats\n";

    fn load_str(text: &str) -> Result<Scenario, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.yml"), COMPOSE).unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(&file, text).unwrap();
        load(&file).map_err(|errs| {
            errs.into_iter()
                .map(|e| {
                    let file = e.file.file_name().unwrap().to_string_lossy().to_string();
                    format!("{file}:{}:{}: {}", e.pos.line, e.pos.col, e.message)
                })
                .collect()
        })
    }

    const GOOD: &str = "name: ok
cluster:
  compose: c.yml
workload:
  rate: 100
  duration: 30s
  nats: { stream: S, replicas: 3, storage: file }
faults:
  - at: 10s
    kind: kill
    target: stream-leader
    for: 5s
checks:
  max_failover: 15s
";

    #[test]
    fn a_good_scenario_loads() {
        let s = load_str(GOOD).unwrap();
        assert_eq!(s.name, "ok");
        assert_eq!(s.faults[0].target, Target::Role("stream-leader".into()));
        assert_eq!(s.faults[0].heal_after, Some(Duration::from_secs(5)));
        assert_eq!(s.checks.max_failover, Some(Duration::from_secs(15)));
        assert_eq!(s.probe_interval, Duration::from_millis(100));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_position() {
        let errs = load_str(
            "name: bad
cluster:
  compose: c.yml
workload:
  rate: fast
  duration: 30
  colour: blue
  nats: { stream: S, replicas: 5, storage: tape }
faults:
  - at: 10s
    kind: explode
    target: n9
  - at: 40s
    kind: pause
    target: n1
",
        )
        .unwrap_err();
        assert_eq!(
            errs,
            vec![
                "s.yaml:7:3: workload: unknown key `colour`: expected one of rate, duration, producers, payload_bytes, max_in_flight, ack_timeout, drain_timeout, nats",
                "s.yaml:5:9: workload.rate: expected a number greater than zero, found \"fast\"",
                "s.yaml:6:13: workload.duration: expected a duration such as \"30s\", \"250ms\" or \"1m30s\", found \"30\"",
                "s.yaml:8:44: workload.nats.storage: expected one of file, memory, found \"tape\"",
                "s.yaml:11:11: faults[0].kind: expected one of kill, pause, restart, found \"explode\"",
                "s.yaml:12:13: faults[0].target: no node or role named \"n9\": expected one of n1, n2, n3, random, stream-leader, meta-leader",
            ]
        );
    }

    #[test]
    fn cross_section_problems() {
        let errs = load_str(
            &GOOD
                .replace("for: 5s", "for: 25s")
                .replace("replicas: 3", "replicas: 4"),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("s.yaml:9:5: fault at 10s heals at 35s"));
        assert!(errs[1].contains("4 replicas asked for, but the cluster has 3 node(s)"));
    }

    #[test]
    fn compose_problems_name_the_compose_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("c.yml"),
            "services:\n  n1: { image: x, ports: [1] }\nx-faultline: { family: nats }\n",
        )
        .unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(&file, GOOD).unwrap();
        let errs = load(&file).unwrap_err();
        assert!(errs[0].file.ends_with("c.yml"), "{errs:?}");
        assert_eq!((errs[0].pos.line, errs[0].pos.col), (2, 19));
    }
}
