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
    /// Send a signal to the nodes' main process (SIGKILL by default); heal starts them again.
    /// With several targets (`all`, `majority`) they are killed together: a coordinated crash.
    Kill,
    /// Freeze every process of the nodes (cgroup freezer); heal thaws them.
    Pause,
    /// SIGSTOP to the main process; heal sends SIGCONT.
    Stop,
    /// Stop the nodes gracefully and start them again; it heals itself.
    Restart,
    /// Restart every target node in turn, waiting for the cluster's health between nodes.
    RollingRestart,
    /// Cut links between nodes (iptables in each node's network namespace).
    Partition,
    /// Drop a share of the packets the target nodes send.
    Loss,
    /// Limit the target nodes' outgoing bandwidth (tc tbf).
    Bandwidth,
    /// Fill the size-limited filesystem holding the target's data directory; heal frees it.
    DiskFull,
    /// Start spare nodes and wait until the cluster reports them joined.
    ScaleOut,
    /// Stop member nodes and remove them from the cluster's membership, waiting until the
    /// cluster reports them gone (and their data re-placed).
    ScaleIn,
    /// Shift the nodes' wall clock by an offset (libfaketime in images faultline builds);
    /// heal sets it back.
    ClockSkew,
}

impl FaultKind {
    pub const NAMES: &'static [&'static str] = &[
        "kill",
        "pause",
        "stop",
        "restart",
        "rolling-restart",
        "partition",
        "loss",
        "bandwidth",
        "disk-full",
        "scale-out",
        "scale-in",
        "clock-skew",
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Stop => "stop",
            FaultKind::Restart => "restart",
            FaultKind::RollingRestart => "rolling-restart",
            FaultKind::Partition => "partition",
            FaultKind::Loss => "loss",
            FaultKind::Bandwidth => "bandwidth",
            FaultKind::DiskFull => "disk-full",
            FaultKind::ScaleOut => "scale-out",
            FaultKind::ScaleIn => "scale-in",
            FaultKind::ClockSkew => "clock-skew",
        }
    }

    const ALL: &'static [FaultKind] = &[
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Stop,
        FaultKind::Restart,
        FaultKind::RollingRestart,
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::Bandwidth,
        FaultKind::DiskFull,
        FaultKind::ScaleOut,
        FaultKind::ScaleIn,
        FaultKind::ClockSkew,
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Topology changes: they settle by themselves once the cluster reports the change.
    pub fn is_topology_change(self) -> bool {
        matches!(self, FaultKind::ScaleOut | FaultKind::ScaleIn)
    }

    /// Faults that act from a sidecar and need the tools image.
    pub fn needs_tools(self) -> bool {
        self.is_network() || self == FaultKind::DiskFull
    }

    /// Faults that change the network from a sidecar (and need the tools image).
    pub fn is_network(self) -> bool {
        matches!(
            self,
            FaultKind::Partition | FaultKind::Loss | FaultKind::Bandwidth
        )
    }

    /// Faults whose `for` means something (the others heal themselves).
    fn takes_duration(self) -> bool {
        !matches!(
            self,
            FaultKind::Restart
                | FaultKind::RollingRestart
                | FaultKind::ScaleOut
                | FaultKind::ScaleIn
        )
    }
}

/// Who a fault hits, decided when it is injected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Node(String),
    Nodes(Vec<String>),
    /// A node picked with the run's seed.
    Random,
    /// floor((n-1)/2) nodes, or the rest, or every node, picked with the run's seed.
    Minority,
    Majority,
    All,
    /// A role the family's probes resolve at fault time ("stream-leader").
    Role(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node(n) => write!(f, "{n}"),
            Target::Nodes(n) => write!(f, "{}", n.join(",")),
            Target::Random => write!(f, "random"),
            Target::Minority => write!(f, "minority"),
            Target::Majority => write!(f, "majority"),
            Target::All => write!(f, "all"),
            Target::Role(r) => write!(f, "{r}"),
        }
    }
}

/// A partition's shape as written; one-way sides are target expressions resolved at fault
/// time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeSpec {
    Isolate,
    MajorityMinority,
    Halves,
    Bridge,
    Ring,
    OneWay {
        from: Target,
        to: Target,
    },
    Links(Vec<(String, String)>),
    /// The harness's clients lose the targets (client port only; monitoring still answers).
    Client,
}

#[derive(Clone, Debug)]
pub struct FaultSpec {
    pub at: Duration,
    pub kind: FaultKind,
    /// `None` only for partition shapes that need no target (halves, ring, one-way, links).
    pub target: Option<Target>,
    /// Heal this long after injection; `None` heals when the load ends.
    pub heal_after: Option<Duration>,
    /// Signal for `kill`.
    pub signal: String,
    pub shape: Option<ShapeSpec>,
    /// Loss: share of packets dropped, 0-1.
    pub probability: Option<f64>,
    /// Loss: only packets to these nodes (per link); empty means all.
    pub peers: Vec<String>,
    /// Bandwidth: a tc rate such as "1mbit".
    pub rate: Option<String>,
    /// Disk-full: the data directory in the container whose filesystem is filled.
    pub path: Option<String>,
    /// Clock-skew: seconds added to the nodes' wall clock (negative: behind).
    pub offset_s: Option<f64>,
    /// Clock-skew: seconds the nodes' wall clock gains per real second while the fault is in
    /// effect (negative: loses).
    pub drift_s: Option<f64>,
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
    pub fn occurrences(&self, mut rng: Option<&mut crate::run::Rng>) -> Vec<Duration> {
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
                        read_fault(
                            item,
                            &format!("faults[{i}]"),
                            &nodes,
                            roles,
                            family.as_deref(),
                            d,
                        )
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

fn read_target(
    node: &Node,
    path: &str,
    nodes: &[String],
    roles: &[&str],
    d: &mut Diagnostics,
) -> Option<Target> {
    let known = |t: &str, pos, d: &mut Diagnostics| {
        if nodes.iter().any(|n| n == t) || nodes.is_empty() {
            return true;
        }
        d.error(
            pos,
            format!(
                "{path}: no node or role named {t:?}: expected one of {}, random, minority, majority, all{}",
                nodes.join(", "),
                roles.iter().map(|r| format!(", {r}")).collect::<String>()
            ),
        );
        false
    };
    if let yaml::Value::Seq(items) = &node.value {
        let mut names = Vec::new();
        for item in items {
            let name = yaml::string(item, path, d)?;
            if known(name, item.pos, d) {
                names.push(name.to_string());
            }
        }
        return (names.len() == items.len() && !names.is_empty()).then_some(Target::Nodes(names));
    }
    let t = yaml::string(node, path, d)?;
    match t {
        "random" => Some(Target::Random),
        "minority" => Some(Target::Minority),
        "majority" => Some(Target::Majority),
        "all" => Some(Target::All),
        _ if roles.contains(&t) => Some(Target::Role(t.to_string())),
        _ => known(t, node.pos, d).then(|| Target::Node(t.to_string())),
    }
}

/// True when the running kernel has (or can load) the netem queueing discipline.
pub fn netem_available() -> bool {
    if Path::new("/sys/module/sch_netem").exists() {
        return true;
    }
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let dir = PathBuf::from(format!("/lib/modules/{}/kernel/net/sched", release.trim()));
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("sch_netem"))
        })
        .unwrap_or(false)
}

/// Why a fault kind this machine or family cannot do is refused, with an alternative.
fn unsupported(kind: &str, family: Option<&str>) -> Option<String> {
    match kind {
        "delay" | "jitter" | "duplicate" | "corrupt" => Some(if netem_available() {
            format!("fault kind {kind} is not implemented yet; alternatives: loss (dropped packets) or bandwidth (tc tbf)")
        } else {
            format!(
                "fault kind {kind} needs the kernel's netem queueing discipline (sch_netem), which this kernel does not have; alternatives here: loss (iptables, dropped packets) or bandwidth (tc tbf), or run on a kernel with netem"
            )
        }),
        "slow-disk" => Some("fault kind slow-disk is not implemented: a cgroup I/O limit throttles a block device, but a node's data is on the container's overlay storage, written back later through the host's page cache (and, where Docker uses fuse-overlayfs, by a process outside the container's cgroup), or on tmpfs, so the limit would not reliably slow the broker's writes; alternatives: disk-full (a size-limited tmpfs filled up), pause or stop".into()),
        "clock-skew" if family == Some("nats") => Some("fault kind clock-skew shifts a broker's clock with libfaketime, which only works on dynamically linked programs; nats-server is a static Go binary that reads the clock without libc, so its clock cannot be skewed this way; alternative: pause or stop the node to make its timers fall behind".into()),
        _ => None,
    }
}

const FAULT_KEYS: &[&str] = &[
    "at", "kind", "target", "for", "signal", "shape", "from", "to", "links", "percent", "peers",
    "rate", "path", "offset", "drift", "every", "jitter", "times",
];

fn read_fault(
    node: &Node,
    path: &str,
    nodes: &[String],
    roles: &[&str],
    family: Option<&str>,
    d: &mut Diagnostics,
) -> Option<FaultSpec> {
    let f = Fields::new(node, FAULT_KEYS, path, d)?;
    let at = f
        .require("at", "when the fault starts, from the start of the load", d)
        .and_then(|n| yaml::duration(n, &f.path_of("at"), d));
    let kind_node = f.require(
        "kind",
        &format!("one of {}", FaultKind::NAMES.join(", ")),
        d,
    );
    let kind = kind_node.and_then(|n| {
        let text = yaml::string(n, &f.path_of("kind"), d)?;
        if let Some(reason) = unsupported(text, family) {
            d.error(n.pos, format!("{}: {reason}", f.path_of("kind")));
            return None;
        }
        yaml::choice(n, &f.path_of("kind"), FaultKind::NAMES, d).and_then(FaultKind::parse)
    });
    let target_expr = |key: &str, d: &mut Diagnostics| {
        f.get(key)
            .map(|n| read_target(n, &f.path_of(key), nodes, roles, d))
    };
    let target = target_expr("target", d);
    let forbid = |key: &str, why: &str, d: &mut Diagnostics| {
        if let Some(n) = f.get(key) {
            d.error(n.pos, format!("{}: {why}", f.path_of(key)));
        }
    };

    let mut shape = None;
    let mut probability = None;
    let mut rate = None;
    let mut peers = Vec::new();
    let mut data_path = None;
    let mut offset_s = None;
    let mut drift_s = None;
    match kind {
        Some(FaultKind::Partition) => {
            let name = f
                .require(
                    "shape",
                    &format!("one of {}", crate::faults::shapes::Shape::NAMES.join(", ")),
                    d,
                )
                .and_then(|n| {
                    yaml::choice(
                        n,
                        &f.path_of("shape"),
                        crate::faults::shapes::Shape::NAMES,
                        d,
                    )
                });
            shape = match name {
                Some("isolate") => Some(ShapeSpec::Isolate),
                Some("majority-minority") => Some(ShapeSpec::MajorityMinority),
                Some("halves") => Some(ShapeSpec::Halves),
                Some("bridge") => Some(ShapeSpec::Bridge),
                Some("ring") => Some(ShapeSpec::Ring),
                Some("client") => Some(ShapeSpec::Client),
                Some("one-way") => {
                    let from = target_expr("from", d);
                    let to = target_expr("to", d);
                    if from.is_none() || to.is_none() {
                        d.error(f.pos, format!("{path}: a one-way partition needs `from` and `to` (nodes or roles)"));
                    }
                    match (from, to) {
                        (Some(Some(from)), Some(Some(to))) => Some(ShapeSpec::OneWay { from, to }),
                        _ => None,
                    }
                }
                Some("links") => f
                    .require("links", "a list of node pairs such as [[n1, n2]]", d)
                    .and_then(|n| yaml::list(n, &f.path_of("links"), d))
                    .and_then(|items| {
                        let mut links = Vec::new();
                        for item in items {
                            let pair = yaml::list(item, &f.path_of("links"), d)?;
                            let names: Vec<String> = pair
                                .iter()
                                .filter_map(|p| read_target(p, &f.path_of("links"), nodes, &[], d))
                                .filter_map(|t| match t {
                                    Target::Node(n) => Some(n),
                                    _ => None,
                                })
                                .collect();
                            if names.len() != 2 || names[0] == names[1] {
                                d.error(
                                    item.pos,
                                    format!(
                                        "{}: expected a pair of two different nodes",
                                        f.path_of("links")
                                    ),
                                );
                                return None;
                            }
                            links.push((names[0].clone(), names[1].clone()));
                        }
                        Some(ShapeSpec::Links(links))
                    }),
                _ => None,
            };
            let needs_target = matches!(
                shape,
                Some(
                    ShapeSpec::Isolate
                        | ShapeSpec::MajorityMinority
                        | ShapeSpec::Bridge
                        | ShapeSpec::Client
                )
            );
            if needs_target && target.is_none() {
                d.error(
                    f.pos,
                    format!("{path}: this partition shape needs a `target` (the side to cut off)"),
                );
            }
            if matches!(
                shape,
                Some(ShapeSpec::Ring | ShapeSpec::OneWay { .. } | ShapeSpec::Links(_))
            ) {
                forbid("target", "this partition shape takes no target", d);
            }
        }
        Some(FaultKind::Loss) => {
            probability = f
                .require("percent", "the share of packets dropped, in percent", d)
                .and_then(|n| yaml::positive_number(n, &f.path_of("percent"), d))
                .and_then(|p| {
                    if p > 100.0 {
                        d.error(
                            f.get("percent")?.pos,
                            format!("{}: expected at most 100", f.path_of("percent")),
                        );
                        return None;
                    }
                    Some(p / 100.0)
                });
            if let Some(n) = f.get("peers") {
                if let Some(Target::Nodes(list)) =
                    read_target(n, &f.path_of("peers"), nodes, &[], d)
                {
                    peers = list;
                } else {
                    d.error(
                        n.pos,
                        format!("{}: expected a list of node names", f.path_of("peers")),
                    );
                }
            }
        }
        Some(FaultKind::Bandwidth) => {
            rate = f
                .require("rate", "a rate such as \"1mbit\" or \"512kbit\"", d)
                .and_then(|n| {
                    let text = yaml::string(n, &f.path_of("rate"), d)?;
                    let ok = crate::faults::bandwidth::rate_bytes(text).is_some();
                    if !ok {
                        d.error(n.pos, format!("{}: expected a rate such as \"1mbit\", \"512kbit\" or \"10mbit\", found {text:?}", f.path_of("rate")));
                    }
                    ok.then(|| text.to_string())
                });
        }
        Some(FaultKind::DiskFull) => {
            data_path = match f.get("path") {
                Some(n) => yaml::string(n, &f.path_of("path"), d).and_then(|p| {
                    if !p.starts_with('/') {
                        d.error(
                            n.pos,
                            format!(
                                "{}: expected the data directory's absolute path in the container, found {p:?}",
                                f.path_of("path")
                            ),
                        );
                        return None;
                    }
                    Some(p.trim_end_matches('/').to_string())
                }),
                None => Some("/data".to_string()),
            };
        }
        Some(FaultKind::ClockSkew) => {
            let signed = |key: &str, suffix: &str, example: &str, d: &mut Diagnostics| {
                let n = f.get(key)?;
                let text = yaml::string(n, &f.path_of(key), d)?;
                let (sign, rest) = match text.strip_prefix('-') {
                    Some(rest) => (-1.0, rest),
                    None => (1.0, text.strip_prefix('+').unwrap_or(text)),
                };
                match rest.strip_suffix(suffix).and_then(yaml::parse_duration) {
                    Some(v) if !v.is_zero() => Some(sign * v.as_secs_f64()),
                    _ => {
                        d.error(
                            n.pos,
                            format!("{}: expected {example}, found {text:?}", f.path_of(key)),
                        );
                        None
                    }
                }
            };
            offset_s = signed(
                "offset",
                "",
                "a signed duration such as \"+30s\" or \"-2m\"",
                d,
            );
            drift_s = signed(
                "drift",
                "/s",
                "a signed duration per second such as \"+200ms/s\" or \"-1s/s\"",
                d,
            );
            if f.get("offset").is_none() && f.get("drift").is_none() {
                d.error(
                    f.pos,
                    format!("{path}: a clock-skew needs `offset` (how far the clock jumps, such as \"+30s\"), `drift` (how fast it runs away, such as \"+200ms/s\"), or both"),
                );
            }
        }
        _ => {}
    }
    for (key, kinds) in [
        ("shape", "partition"),
        ("links", "partition"),
        ("from", "partition"),
        ("to", "partition"),
        ("percent", "loss"),
        ("peers", "loss"),
        ("rate", "bandwidth"),
        ("path", "disk-full"),
        ("offset", "clock-skew"),
        ("drift", "clock-skew"),
    ] {
        if kind.is_some_and(|k| k.name() != kinds) {
            forbid(key, &format!("only a {kinds} fault takes `{key}`"), d);
        }
    }
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
    let every = match f.get("every") {
        Some(n) => yaml::duration(n, &f.path_of("every"), d).map(Some),
        None => Some(None),
    };
    let jitter = match f.get("jitter") {
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
    Some(FaultSpec {
        at: at?,
        kind: kind?,
        target: target?,
        heal_after: heal_after?,
        signal: signal?,
        shape,
        probability,
        peers,
        rate,
        path: data_path,
        offset_s,
        drift_s,
        every: every?,
        jitter: jitter?,
        times: times?,
        pos: node.pos,
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
    families::check_settings(
        &s.workload.settings,
        &s.topology,
        s.workload.duration,
        top.get("workload").map(|n| n.pos).unwrap_or_default(),
        d,
    );
    for fault in &s.faults {
        check_fault_topology(s, fault, d);
    }
}

/// Checks a fault against the topology: scale-out starts spares, scale-in stops members, and
/// disk-full fills only a size-limited tmpfs (never the host's disk).
fn check_fault_topology(s: &Scenario, fault: &FaultSpec, d: &mut Diagnostics) {
    let services = &s.topology.services;
    let spares: Vec<&str> = services
        .iter()
        .filter(|x| x.is_spare())
        .map(|x| x.name.as_str())
        .collect();
    let named: Option<Vec<&str>> = match &fault.target {
        Some(Target::Node(n)) => Some(vec![n.as_str()]),
        Some(Target::Nodes(list)) => Some(list.iter().map(String::as_str).collect()),
        _ => None,
    };
    if let Some(reason) = crate::families::refuse_fault(&s.workload.settings, fault.kind) {
        d.error(fault.pos, reason);
    }
    match fault.kind {
        FaultKind::ClockSkew => {
            for service in services.iter().filter(|x| !x.is_spare()) {
                let local = s.topology.local_images.get(&service.image);
                if local.is_none_or(|l| l.faketime.is_none()) {
                    d.error(
                        fault.pos,
                        format!(
                            "clock-skew needs libfaketime in every node's image, and node {}'s image {} has no local recipe that provides it (x-faultline.local-image.\"{}\".faketime); alternative: pause or stop the node to make its timers fall behind",
                            service.name, service.image, service.image
                        ),
                    );
                }
            }
        }
        FaultKind::ScaleOut => {
            let hint = if spares.is_empty() {
                "this topology has none: give a service `profiles: [spare]` so it is created but not started".to_string()
            } else {
                format!("spares here: {}", spares.join(", "))
            };
            match &named {
                None => d.error(
                    fault.pos,
                    format!("scale-out: expected the spare node(s) to start by name ({hint})"),
                ),
                Some(names) => {
                    for n in names.iter().filter(|n| !spares.contains(n)) {
                        d.error(
                            fault.pos,
                            format!(
                                "scale-out: {n} is started with the cluster, not a spare ({hint})"
                            ),
                        );
                    }
                }
            }
            if fault.times > 1 {
                d.error(
                    fault.pos,
                    "scale-out: a spare can join only once; `times` must be 1",
                );
            }
        }
        FaultKind::ScaleIn if fault.times > 1 => {
            d.error(
                fault.pos,
                "scale-in: a node can leave only once; `times` must be 1",
            );
        }
        FaultKind::DiskFull => {
            let path = fault.path.as_deref().unwrap_or("/data");
            let checked: Vec<&crate::cluster::compose::Service> = services
                .iter()
                .filter(|x| match &named {
                    Some(names) => names.contains(&x.name.as_str()),
                    None => !x.is_spare(),
                })
                .collect();
            for service in checked {
                match service.tmpfs_holding(path).map(|t| t.size_bytes) {
                    Some(Some(size)) if size <= MAX_DISK_FULL_BYTES => {}
                    Some(Some(size)) => d.error(
                        fault.pos,
                        format!(
                            "disk-full: the tmpfs holding {path} on {} is {size} bytes; filling it would take that much memory: give it at most {} MiB (size=64m)",
                            service.name,
                            MAX_DISK_FULL_BYTES >> 20
                        ),
                    ),
                    _ => d.error(
                        fault.pos,
                        format!(
                            "disk-full fills the filesystem holding {path} on the target, and on {} that is not a size-limited tmpfs, so faultline would fill the host's disk; give services.{}.tmpfs an entry such as \"{path}:size=64m\" (its contents then live in memory and do not survive a restart of the container)",
                            service.name, service.name
                        ),
                    ),
                }
            }
        }
        _ => {}
    }
}

/// The largest tmpfs disk-full will fill (it takes that much memory).
const MAX_DISK_FULL_BYTES: u64 = 1 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    const COMPOSE: &str = "services:\n  n1: { image: nats:2.15.1 }\n  n2: { image: nats:2.15.1 }\n  n3: { image: nats:2.15.1 }\nx-faultline:\n  family: nats\n";

    fn load_str(text: &str) -> Result<Scenario, Vec<String>> {
        load_with(COMPOSE, text)
    }

    fn load_with(compose: &str, text: &str) -> Result<Scenario, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images/m")).unwrap();
        std::fs::write(dir.path().join("images/m/build.sh"), "true").unwrap();
        std::fs::write(dir.path().join("c.yml"), compose).unwrap();
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
        assert_eq!(
            s.faults[0].target,
            Some(Target::Role("stream-leader".into()))
        );
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
                "s.yaml:7:3: workload: unknown key `colour`: expected one of rate, duration, producers, payload_bytes, max_in_flight, ack_timeout, drain_timeout, nats, mqtt, kafka, pulsar",
                "s.yaml:5:9: workload.rate: expected a number greater than zero, found \"fast\"",
                "s.yaml:6:13: workload.duration: expected a duration such as \"30s\", \"250ms\" or \"1m30s\", found \"30\"",
                "s.yaml:8:44: workload.nats.storage: expected one of file, memory, found \"tape\"",
                "s.yaml:11:11: faults[0].kind: expected one of kill, pause, stop, restart, rolling-restart, partition, loss, bandwidth, disk-full, scale-out, scale-in, clock-skew, found \"explode\"",
                "s.yaml:12:13: faults[0].target: no node or role named \"n9\": expected one of n1, n2, n3, random, minority, majority, all, stream-leader, meta-leader",
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
        assert!(errs[1].contains("4 replicas asked for, but the cluster starts with 3 node(s)"));
    }

    fn with_faults(faults: &str) -> Result<Scenario, Vec<String>> {
        let head = GOOD.split("faults:").next().unwrap();
        load_str(&format!("{head}faults:\n{faults}"))
    }

    #[test]
    fn topology_and_disk_faults_are_checked_against_the_compose_file() {
        // The default compose file has no spare, no tmpfs and the scenario no system account.
        let errs = with_faults(
            "  - { at: 5s, kind: scale-out, target: n3 }
  - { at: 6s, kind: scale-in, target: n1 }
  - { at: 7s, kind: disk-full, target: n2, for: 2s }
  - { at: 8s, kind: slow-disk, target: n2 }
",
        )
        .unwrap_err();
        assert!(
            errs.iter().any(
                |e| e.contains("n3 is started with the cluster, not a spare")
                    && e.contains("profiles: [spare]")
            ),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("scale-in on NATS") && e.contains("system_account")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("disk-full")
                && e.contains("not a size-limited tmpfs")
                && e.contains("/data:size=64m")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("slow-disk is not implemented") && e.contains("alternatives")),
            "{errs:?}"
        );
        assert_eq!(errs.len(), 4, "{errs:?}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("c.yml"),
            "configs:\n  acc: { content: \"x\" }\nservices:\n  n1: { image: nats:2.15.1, tmpfs: [\"/data:size=64m\"], configs: [acc] }\n  n2: { image: nats:2.15.1, tmpfs: /data:size=2g }\n  n3: { image: nats:2.15.1, profiles: [spare] }\nx-faultline:\n  family: nats\n",
        )
        .unwrap();
        let file = dir.path().join("s.yaml");
        let head = GOOD
            .split("faults:")
            .next()
            .unwrap()
            .replace("replicas: 3", "replicas: 2");
        std::fs::write(
            &file,
            format!("{head}faults:\n  - {{ at: 5s, kind: scale-out, target: n3 }}\n  - {{ at: 7s, kind: disk-full, target: n1, for: 2s }}\n  - {{ at: 9s, kind: disk-full, target: n2, for: 2s }}\n"),
        )
        .unwrap();
        let errs: Vec<String> = load(&file)
            .unwrap_err()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("the tmpfs holding /data on n2 is 2147483648 bytes"),
            "{errs:?}"
        );
    }

    #[test]
    fn network_faults_and_repeats() {
        let s = with_faults(
            "  - { at: 5s, kind: partition, shape: isolate, target: stream-leader, for: 5s }
  - { at: 5s, kind: partition, shape: one-way, from: n1, to: [n2, n3], for: 2s }
  - { at: 2s, kind: loss, target: n2, percent: 20, peers: [n1], for: 3s }
  - { at: 1s, kind: bandwidth, target: all, rate: 1mbit, for: 2s, every: 5s, times: 4 }
  - { at: 3s, kind: rolling-restart }
",
        )
        .unwrap();
        assert_eq!(s.faults[0].shape, Some(ShapeSpec::Isolate));
        assert_eq!(
            s.faults[1].shape,
            Some(ShapeSpec::OneWay {
                from: Target::Node("n1".into()),
                to: Target::Nodes(vec!["n2".into(), "n3".into()])
            })
        );
        assert_eq!(s.faults[2].probability, Some(0.2));
        assert_eq!(s.faults[2].peers, vec!["n1"]);
        let starts: Vec<u64> = s.faults[3]
            .occurrences(None)
            .iter()
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(starts, vec![1, 6, 11, 16]);
        assert_eq!(s.faults[4].target, Some(Target::All));
    }

    #[test]
    fn random_intervals_come_from_the_seed() {
        let s = with_faults(
            "  - { at: 1s, kind: pause, target: n1, for: 1s, every: 5s, jitter: 2s, times: 4 }\n",
        )
        .unwrap();
        let f = &s.faults[0];
        let a = f.occurrences(Some(&mut crate::run::Rng::new(9)));
        let b = f.occurrences(Some(&mut crate::run::Rng::new(9)));
        let c = f.occurrences(Some(&mut crate::run::Rng::new(10)));
        assert_eq!(a, b, "the same seed gives the same schedule");
        assert_ne!(a, c);
        for pair in a.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_secs(3) && gap <= Duration::from_secs(7),
                "{gap:?}"
            );
        }
        // Validation bounds the latest possible schedule: 1 + 3 x 7 = 22 s.
        assert_eq!(f.occurrences(None).last(), Some(&Duration::from_secs(22)));
        let errs = with_faults(
            "  - { at: 1s, kind: pause, target: n1, for: 3s, every: 5s, jitter: 2s, times: 4 }\n",
        )
        .unwrap_err();
        assert!(
            errs[0].contains("each occurrence must heal before the next"),
            "{errs:?}"
        );
    }

    #[test]
    fn faults_this_machine_cannot_do_are_refused_with_a_reason_and_an_alternative() {
        let errs = with_faults("  - { at: 5s, kind: clock-skew, target: n1 }\n").unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("s.yaml:"), "{errs:?}");
        assert!(
            errs[0].contains("clock-skew")
                && errs[0].contains("static Go binary")
                && errs[0].contains("alternative")
        );
        let errs = with_faults("  - { at: 5s, kind: delay, target: n1 }\n").unwrap_err();
        assert!(
            errs[0].contains("fault kind delay") && errs[0].contains("alternative"),
            "{errs:?}"
        );
        if !netem_available() {
            assert!(errs[0].contains("netem"), "{errs:?}");
        }
    }

    #[test]
    fn clock_skew_needs_libfaketime_in_every_image() {
        let compose = |faketime: &str| {
            format!("services:\n  m1:\n    image: eclipse-mosquitto:2.0.11\n  m2:\n    image: eclipse-mosquitto:2.0.11\nx-faultline:\n  family: mqtt\n  broker: mosquitto\n  local-image:\n    \"eclipse-mosquitto:2.0.11\": {{ tag: local/m, recipe: images/m{faketime} }}\n")
        };
        let scenario = "name: skew\ncluster:\n  compose: c.yml\nworkload:\n  rate: 10\n  duration: 30s\n  mqtt: { topic: t }\nfaults:\n  - { at: 5s, kind: clock-skew, target: m1, offset: \"-90s\", for: 5s }\n";
        let s = load_with(&compose(", faketime: /lib/libfaketimeMT.so.1"), scenario).unwrap();
        assert_eq!(s.faults[0].kind, FaultKind::ClockSkew);
        assert_eq!(s.faults[0].offset_s, Some(-90.0));
        let errs = load_with(&compose(""), scenario).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("s.yaml:9:5: clock-skew needs libfaketime in every node's image, and node m1's image eclipse-mosquitto:2.0.11 has no local recipe that provides it")
                && errs[0].contains("alternative"),
            "{errs:?}"
        );
        let errs = load_with(
            &compose(", faketime: /lib/libfaketimeMT.so.1"),
            &scenario.replace("offset: \"-90s\"", "offset: soon"),
        )
        .unwrap_err();
        assert_eq!(
            errs,
            vec!["s.yaml:9:53: faults[0].offset: expected a signed duration such as \"+30s\" or \"-2m\", found \"soon\""]
        );
        let compose = compose(", faketime: /lib/libfaketimeMT.so.1");
        let s = load_with(
            &compose,
            &scenario.replace("offset: \"-90s\"", "drift: \"-250ms/s\""),
        )
        .unwrap();
        assert_eq!(s.faults[0].offset_s, None);
        assert_eq!(s.faults[0].drift_s, Some(-0.25));
        let errs = load_with(
            &compose,
            &scenario.replace("offset: \"-90s\"", "drift: \"+2s\""),
        )
        .unwrap_err();
        assert_eq!(
            errs,
            vec!["s.yaml:9:52: faults[0].drift: expected a signed duration per second such as \"+200ms/s\" or \"-1s/s\", found \"+2s\""]
        );
        let errs = load_with(&compose, &scenario.replace("offset: \"-90s\", ", "")).unwrap_err();
        assert!(
            errs[0].starts_with("s.yaml:9:5: faults[0]: a clock-skew needs `offset`"),
            "{errs:?}"
        );
    }

    #[test]
    fn fault_settings_that_do_not_fit_the_kind() {
        let errs = with_faults(
            "  - { at: 5s, kind: partition, shape: ring, target: n1 }
  - { at: 5s, kind: kill, target: n1, rate: 1mbit }
  - { at: 5s, kind: loss, target: n1, percent: 120 }
  - { at: 5s, kind: partition, shape: isolate }
  - { at: 1s, kind: pause, target: n1, for: 6s, every: 5s, times: 2 }
",
        )
        .unwrap_err();
        let joined = errs.join("\n");
        for expected in [
            "faults[0].target: this partition shape takes no target",
            "faults[1].rate: only a bandwidth fault takes `rate`",
            "faults[2].percent: expected at most 100",
            "faults[3]: this partition shape needs a `target`",
            "each occurrence must heal before the next",
        ] {
            assert!(
                joined.contains(expected),
                "missing {expected:?} in\n{joined}"
            );
        }
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
