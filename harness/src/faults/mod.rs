//! Faults: each one a small unit that injects, verifies it took effect, and heals
//! idempotently (heal runs again at teardown, whatever state the run stopped in).
//!
//! Process faults (kill, pause, stop, restart) act through Docker; network faults (partition,
//! loss, bandwidth) through iptables and tc run from a sidecar in the target's network
//! namespace, so they work with any broker image, official ones included; disk-full from a
//! sidecar in the target's process namespace. Topology changes (scale-out, scale-in) start or
//! stop nodes here; the family's part of them runs in the scheduler.

pub mod bandwidth;
pub mod clock;
mod corrupt;
mod corrupt_file;
pub mod data_files;
mod delay;
mod disk;
mod duplicate;
mod kill;
mod loss;
mod network;
pub mod packets;
pub mod partition;
mod pause;
mod power_loss;
pub mod queued;
mod reorder;
mod restart;
mod scale;
pub mod shapes;
mod stop;
mod truncate_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::cluster::backend::{BackendError, ClusterBackend};
use crate::cluster::compose::Topology;
use crate::cluster::images::ResolvedImage;
use crate::cluster::{Cluster, ClusterNode};
use crate::fault_kind::FaultKind;
use crate::yaml::{Diagnostics, Fields, Pos};

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{0}")]
    NotApplied(String),
}

/// What a fault may use: Docker, the cluster's nodes, and the image its sidecars run.
#[derive(Clone)]
pub struct FaultCtx {
    pub backend: Arc<dyn ClusterBackend>,
    pub run_id: String,
    pub cluster: Arc<Cluster>,
    /// An image with iptables and tc (the Debian base), for network faults.
    pub tools_image: Option<String>,
    /// The broker's client port: what a client partition cuts.
    pub client_port: u16,
    /// The run's seed: what a fault's random choices (the bits a corrupt-file flips) start from.
    pub seed: u64,
}

#[async_trait]
pub trait Fault: Send + Sync {
    /// Applies the fault, verifies that it is in effect, and returns when the call that
    /// applied it returned: that instant is `t_fault` (MEASUREMENT.md), not the end of the
    /// verification.
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError>;
    /// Undoes the fault and verifies it is gone; does nothing if it is not in effect.
    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError>;
    /// What exactly was done, in words, when the target alone does not say it.
    fn describe(&self) -> Option<String> {
        None
    }
    /// What the heal found, when there is more to say than that it healed.
    fn healed_detail(&self) -> Option<String> {
        None
    }
}

/// A fault kind's own settings, read by its file (`faults/<kind>.rs`) from the scenario.
#[derive(Clone, Debug, PartialEq)]
pub enum Settings {
    /// Kinds with no settings of their own (pause, stop, restart, rolling-restart, scale-out,
    /// scale-in).
    None,
    Kill {
        signal: String,
    },
    Partition(partition::ShapeSpec),
    Loss {
        /// Share of packets dropped, 0-1.
        probability: f64,
        /// Only packets to these nodes (per link); empty means all.
        peers: Vec<String>,
    },
    Bandwidth {
        /// A tc rate such as "1mbit".
        rate: String,
    },
    /// delay, reorder, duplicate and corrupt: what the packet program does to which packets.
    Packets(queued::Spec),
    DiskFull {
        /// The data directory in the container whose filesystem is filled.
        path: String,
    },
    /// corrupt-file and truncate-file: what is done to which of the data files.
    DataFiles(data_files::Spec),
    ClockSkew {
        /// Seconds added to the nodes' wall clock (negative: behind).
        offset_s: f64,
        /// Seconds the wall clock gains per real second while in effect (negative: loses).
        drift_s: Option<f64>,
    },
}

/// The settings each kind reads, beside the common envelope. A key of one kind given to
/// another is an error that names the kind it belongs to.
pub const KIND_KEYS: &[(FaultKind, &[&str])] = &[
    (FaultKind::Kill, kill::KEYS),
    (FaultKind::Partition, partition::KEYS),
    (FaultKind::Loss, loss::KEYS),
    (FaultKind::Bandwidth, bandwidth::KEYS),
    (FaultKind::Delay, delay::KEYS),
    (FaultKind::Reorder, reorder::KEYS),
    (FaultKind::Duplicate, duplicate::KEYS),
    (FaultKind::Corrupt, corrupt::KEYS),
    (FaultKind::DiskFull, disk::KEYS),
    (FaultKind::ClockSkew, clock::KEYS),
    (FaultKind::CorruptFile, corrupt_file::KEYS),
    (FaultKind::TruncateFile, truncate_file::KEYS),
];

/// Settings of a kind that are envelope keys of every other kind: a delay's `jitter` varies
/// each packet's delay, any other fault's `jitter` varies its `every`.
pub const ENVELOPE_TOO: &[&str] = &["jitter"];

/// The JSON Schema of a kind's own settings (an object schema whose properties are its
/// `KEYS`; tests hold the two together), for `faultline schema scenario`.
pub fn settings_schema(kind: FaultKind, g: &mut SchemaGenerator) -> Schema {
    match kind {
        FaultKind::Kill => kill::Keys::json_schema(g),
        FaultKind::Partition => partition::Keys::json_schema(g),
        FaultKind::Loss => loss::Keys::json_schema(g),
        FaultKind::Bandwidth => bandwidth::Keys::json_schema(g),
        FaultKind::Delay => delay::Keys::json_schema(g),
        FaultKind::Reorder => reorder::Keys::json_schema(g),
        FaultKind::Duplicate => duplicate::Keys::json_schema(g),
        FaultKind::Corrupt => corrupt::Keys::json_schema(g),
        FaultKind::DiskFull => disk::Keys::json_schema(g),
        FaultKind::ClockSkew => clock::Keys::json_schema(g),
        FaultKind::CorruptFile => corrupt_file::Keys::json_schema(g),
        FaultKind::TruncateFile => truncate_file::Keys::json_schema(g),
        FaultKind::Pause
        | FaultKind::Stop
        | FaultKind::Restart
        | FaultKind::RollingRestart
        | FaultKind::ScaleOut
        | FaultKind::ScaleIn
        | FaultKind::PowerLoss => schemars::json_schema!({"type": "object", "properties": {}}),
    }
}

/// A node's data directory when a fault names none.
pub const DEFAULT_PATH: &str = "/data";

/// Reads a fault's `path` (the node's data directory; /data when absent): absolute, of
/// letters, digits and '/._-', no "..", not / itself.
fn read_data_dir(f: &Fields, d: &mut Diagnostics) -> Option<String> {
    let Some(n) = f.get("path") else {
        return Some(DEFAULT_PATH.to_string());
    };
    let p = crate::yaml::string(n, &f.path_of("path"), d)?;
    let plain = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
    if !p.starts_with('/') || p == "/" || !plain || p.split('/').any(|x| x == "..") {
        d.error(
            n.pos,
            format!(
                "{}: expected the data directory's absolute path in the container (letters, digits, '/', '.', '_', '-'; no \"..\"), found {p:?}",
                f.path_of("path")
            ),
        );
        return None;
    }
    Some(p.trim_end_matches('/').to_string())
}

/// What a fault's settings reader may look up: the topology's node names and the family's
/// roles (for settings that name nodes, such as a one-way partition's sides).
pub struct ReadCtx<'a> {
    pub nodes: &'a [String],
    pub roles: &'a [&'a str],
}

/// Reads the settings of a `kind` fault from its scenario entry `f` (at `path`, such as
/// `faults[2]`); every problem goes to `d` with its position.
pub fn read_settings(
    kind: FaultKind,
    f: &Fields,
    path: &str,
    cx: &ReadCtx,
    d: &mut Diagnostics,
) -> Settings {
    let own = KIND_KEYS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&[][..], |(_, keys)| *keys);
    // Each foreign key once, with every kind that takes it.
    let mut foreign: Vec<(&str, Vec<&str>)> = Vec::new();
    for (owner, keys) in KIND_KEYS.iter().filter(|(k, _)| *k != kind) {
        for key in keys
            .iter()
            .filter(|k| !own.contains(k) && !ENVELOPE_TOO.contains(k))
        {
            match foreign.iter_mut().find(|(k, _)| k == key) {
                Some((_, owners)) => owners.push(owner.name()),
                None => foreign.push((key, vec![owner.name()])),
            }
        }
    }
    for (key, owners) in foreign {
        if let Some(n) = f.get(key) {
            let owners = match owners.split_last() {
                Some((last, [])) => last.to_string(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => continue,
            };
            d.error(
                n.pos,
                format!("{}: only a {owners} fault takes `{key}`", f.path_of(key)),
            );
        }
    }
    match kind {
        FaultKind::Kill => kill::read(f, d),
        FaultKind::Partition => partition::read(f, path, cx, d),
        FaultKind::Loss => loss::read(f, cx, d),
        FaultKind::Bandwidth => bandwidth::read(f, d),
        FaultKind::Delay => delay::read(f, cx, d),
        FaultKind::Reorder => reorder::read(f, cx, d),
        FaultKind::Duplicate => duplicate::read(f, cx, d),
        FaultKind::Corrupt => corrupt::read(f, cx, d),
        FaultKind::DiskFull => disk::read(f, d),
        FaultKind::ClockSkew => clock::read(f, path, d),
        FaultKind::CorruptFile => corrupt_file::read(f, d),
        FaultKind::TruncateFile => truncate_file::read(f, d),
        FaultKind::Pause
        | FaultKind::Stop
        | FaultKind::Restart
        | FaultKind::RollingRestart
        | FaultKind::ScaleOut
        | FaultKind::ScaleIn
        | FaultKind::PowerLoss => Settings::None,
    }
}

/// What a fault's check against the topology sees of the fault as written.
pub struct Planned<'a> {
    /// Where the fault is written.
    pub pos: Pos,
    /// The nodes its target names, when it names nodes (not a role or a seeded choice).
    pub named: Option<Vec<&'a str>>,
    pub times: u32,
}

/// Checks a fault against the topology, before anything starts.
pub fn check_topology(
    kind: FaultKind,
    settings: &Settings,
    planned: &Planned,
    topology: &Topology,
    d: &mut Diagnostics,
) {
    match (kind, settings) {
        (FaultKind::ClockSkew, _) => clock::check_topology(planned, topology, d),
        (FaultKind::ScaleOut, _) => scale::check_out(planned, topology, d),
        (FaultKind::ScaleIn, _) => scale::check_in(planned, d),
        (FaultKind::PowerLoss, _) => power_loss::check_topology(planned, topology, d),
        (FaultKind::DiskFull, Settings::DiskFull { path }) => {
            disk::check_topology(path, planned, topology, d)
        }
        _ => {}
    }
}

/// The topology as the run must start it for these faults (clock-skew: every node with its
/// clock under faultline's control from the start), and what to tell the user about it.
pub fn prepare_topology(
    kinds: &[FaultKind],
    topology: &Topology,
    images: &BTreeMap<String, ResolvedImage>,
) -> Result<(Topology, Vec<String>), String> {
    if !kinds.contains(&FaultKind::ClockSkew) {
        return Ok((topology.clone(), Vec::new()));
    }
    let prepared = clock::controlled(topology, images)?;
    let note = format!(
        "clock-skew: every node starts with libfaketime preloaded, offset +0 ({})",
        clock::OFFSET_FILE
    );
    Ok((prepared, vec![note]))
}

/// Why a fault kind that faultline does not build (yet, or on this kernel) is refused, with
/// the alternatives; `None` for every other name.
pub fn refuse_unbuilt(kind: &str) -> Option<String> {
    match kind {
        "delay" | "reorder" | "duplicate" | "corrupt" if !packets::nfqueue_available() && !netem_available() => Some(format!(
            "fault kind {kind} needs netem or NFQUEUE (the kernel's nfnetlink_queue and the iptables NFQUEUE target), and this kernel has neither; alternatives here: loss (iptables, dropped packets) or bandwidth (tc tbf)"
        )),
        "jitter" => Some("fault kind jitter is written as a delay with jitter: `kind: delay`, `delay: 100ms`, `jitter: 20ms`".into()),
        "slow-disk" => Some("fault kind slow-disk is not implemented: a cgroup I/O limit throttles a block device, but a node's data is on the container's overlay storage, written back later through the host's page cache (and, where Docker uses fuse-overlayfs, by a process outside the container's cgroup), or on tmpfs, so the limit would not reliably slow the broker's writes; alternatives: disk-full (a size-limited tmpfs filled up), pause or stop".into()),
        _ => None,
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

/// A fault for one occurrence of a `kind` fault with these settings, on already resolved
/// nodes. `id` is unique in the run (it names the fault's iptables chains).
pub fn build(
    kind: FaultKind,
    settings: &Settings,
    id: usize,
    targets: Vec<ClusterNode>,
    partition: Option<(shapes::Blocked, String)>,
) -> Box<dyn Fault> {
    match (kind, settings) {
        (FaultKind::Kill, Settings::Kill { signal }) => Box::new(kill::Kill {
            signal: signal.clone(),
            nodes: targets,
        }),
        (FaultKind::Pause, _) => Box::new(pause::Pause { nodes: targets }),
        (FaultKind::Stop, _) => Box::new(stop::Stop { nodes: targets }),
        (FaultKind::Restart | FaultKind::RollingRestart, _) => {
            Box::new(restart::Restart { nodes: targets })
        }
        (FaultKind::Partition, Settings::Partition(partition::ShapeSpec::Client)) => {
            Box::new(partition::Partition::client(id, targets))
        }
        (FaultKind::Partition, _) => {
            let (blocked, description) = partition.unwrap_or_default();
            Box::new(partition::Partition::new(id, blocked, description))
        }
        (FaultKind::Loss, Settings::Loss { probability, peers }) => {
            Box::new(loss::Loss::new(id, targets, *probability, peers.clone()))
        }
        (FaultKind::Bandwidth, Settings::Bandwidth { rate }) => {
            Box::new(bandwidth::Bandwidth::new(targets, rate.clone()))
        }
        (FaultKind::DiskFull, Settings::DiskFull { path }) => {
            Box::new(disk::DiskFull::new(id, targets, path.clone()))
        }
        (
            FaultKind::Delay | FaultKind::Reorder | FaultKind::Duplicate | FaultKind::Corrupt,
            Settings::Packets(spec),
        ) => Box::new(queued::Queued::new(id, targets, spec.clone())),
        (FaultKind::ScaleOut, _) => Box::new(scale::ScaleOut { nodes: targets }),
        (FaultKind::ScaleIn, _) => Box::new(scale::ScaleIn { nodes: targets }),
        (FaultKind::PowerLoss, _) => Box::new(power_loss::PowerLoss::new(targets)),
        (FaultKind::CorruptFile | FaultKind::TruncateFile, Settings::DataFiles(spec)) => {
            Box::new(data_files::DataFiles::new(id, targets, spec.clone()))
        }
        (FaultKind::ClockSkew, Settings::ClockSkew { offset_s, drift_s }) => {
            Box::new(clock::ClockSkew::new(targets, *offset_s, *drift_s))
        }
        (kind, settings) => unreachable!(
            "the scenario reader gives each kind its own settings; {} got {settings:?}",
            kind.name()
        ),
    }
}

/// Runs `f` on every node at once; returns the latest instant any call returned.
async fn on_all<'a, F, Fut>(nodes: &'a [ClusterNode], f: F) -> Result<Instant, FaultError>
where
    F: Fn(&'a ClusterNode) -> Fut,
    Fut: std::future::Future<Output = Result<Instant, FaultError>>,
{
    let results = futures::future::join_all(nodes.iter().map(f)).await;
    let mut latest = None;
    for r in results {
        let t = r?;
        latest = Some(latest.map_or(t, |l: Instant| l.max(t)));
    }
    latest.ok_or_else(|| FaultError::NotApplied("no target node".into()))
}

/// Polls the container's state until `want(running, paused)` holds or `within` passes.
async fn wait_state(
    backend: &dyn ClusterBackend,
    node: &ClusterNode,
    within: Duration,
    what: &str,
    want: impl Fn(bool, bool) -> bool,
) -> Result<(), FaultError> {
    let deadline = Instant::now() + within;
    loop {
        let (running, paused) = backend.state(&node.container, &node.name).await?;
        if want(running, paused) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(FaultError::NotApplied(format!(
                "node {} is not {what} after {within:?} (running: {running}, paused: {paused})",
                node.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The heal of faults that stop nodes (kill, restart): start every target not running.
async fn start_all(ctx: &FaultCtx, nodes: &[ClusterNode]) -> Result<(), FaultError> {
    on_all(nodes, |node| async move {
        ensure_running(&*ctx.backend, node).await?;
        Ok(Instant::now())
    })
    .await
    .map(|_| ())
}

/// Grace period of a graceful stop, after which Docker sends SIGKILL.
const GRACE_S: i32 = 10;

/// Stops a node gracefully (SIGTERM, SIGKILL after 10 s) and checks it stopped; returns when
/// Docker's stop call returned.
async fn stop_gracefully(ctx: &FaultCtx, node: &ClusterNode) -> Result<Instant, FaultError> {
    ctx.backend
        .stop(&node.container, &node.name, GRACE_S)
        .await?;
    let stopped = Instant::now();
    wait_state(
        &*ctx.backend,
        node,
        Duration::from_secs(5),
        "stopped",
        |r, _| !r,
    )
    .await?;
    Ok(stopped)
}

/// Starts a node that is not running.
async fn ensure_running(
    backend: &dyn ClusterBackend,
    node: &ClusterNode,
) -> Result<(), FaultError> {
    let (running, paused) = backend.state(&node.container, &node.name).await?;
    if paused {
        backend.unpause(&node.container, &node.name).await?;
    }
    if !running {
        backend.start(&node.container, &node.name).await?;
    }
    wait_state(backend, node, Duration::from_secs(10), "running", |r, p| {
        r && !p
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{generator, property_names, sorted};

    #[test]
    fn each_kinds_schema_has_the_keys_its_reader_takes() {
        let mut g = generator();
        for name in FaultKind::NAMES {
            let kind = FaultKind::parse(name).unwrap();
            let keys = KIND_KEYS
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or(&[][..], |(_, keys)| *keys);
            let schema = settings_schema(kind, &mut g);
            assert_eq!(property_names(&schema), sorted(keys), "{name}");
        }
    }
}
