//! The boundary between the generic harness and one broker family.
//!
//! A family is one folder here holding its scenario settings, its workload driver and its
//! probes. The harness talks to it only through [`Broker`] (prepare the cluster's data
//! structures, open producers, resolve roles such as "stream-leader", probe, drain) and
//! [`Producer`] (send one message, get its completion). What the harness knows of a family
//! before a cluster runs ([`Family`]: names, roles, refusals, its settings reader) is in the
//! one table [`FAMILIES`]; adding a family is one folder and one line there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::cluster::compose::{self, Topology};
pub use crate::endpoint::NodeEndpoint;
use crate::fault_kind::FaultKind;
use crate::history::{Clock, HistorySink};
use crate::progress::Progress;
use crate::yaml::{Diagnostics, Node, Pos};

pub mod answers;
pub mod kafka;
pub mod mqtt;
pub mod nats;
pub mod pulsar;

/// Every family faultline knows. Adding a family is one folder and one line here.
pub static FAMILIES: &[&dyn Family] = &[
    &nats::FAMILY,
    &mqtt::FAMILY,
    &kafka::FAMILY,
    &pulsar::FAMILY,
];

/// The family written as `name` in a topology's `x-faultline.family`.
pub fn family(name: &str) -> Option<&'static dyn Family> {
    FAMILIES.iter().copied().find(|f| f.name() == name)
}

/// One broker family: what the harness knows of it before any cluster runs.
pub trait Family: Sync {
    /// As written in a topology's `x-faultline.family` and as the scenario's `workload.<name>`.
    fn name(&self) -> &'static str;
    /// The brokers the family tells apart, as written in `x-faultline.broker` (empty: the
    /// family has one broker, and the key is not used).
    fn brokers(&self) -> &'static [&'static str] {
        &[]
    }
    /// The kinds of node `x-faultline.roles` may name, for families with several (empty: every
    /// node is a broker).
    fn node_roles(&self) -> &'static [&'static str] {
        &[]
    }
    /// The roles a fault target can name, resolved to a node at fault time.
    fn roles(&self) -> &'static [&'static str];
    /// Why a fault kind can never be run on this family, whatever its settings.
    fn refuse_kind(&self, _kind: FaultKind) -> Option<String> {
        None
    }
    /// Log targets of the family's client crates, silenced unless the user asks for them
    /// (their own retries would drown the terminal during a fault).
    fn quiet_logs(&self) -> &'static [&'static str] {
        &[]
    }
    /// Reads `workload.<name>`.
    fn read_workload(&self, node: &Node, d: &mut Diagnostics) -> Option<WorkloadSettings>;
    /// The JSON Schema of `workload.<name>` (`faultline schema scenario`): the keys
    /// `read_workload` accepts, which a test per family holds it to.
    fn workload_schema(&self, g: &mut SchemaGenerator) -> Schema;
}

/// What the cluster layer must know of each family to read a topology.
pub fn topology_vocabulary() -> Vec<compose::KnownFamily> {
    FAMILIES
        .iter()
        .map(|f| compose::KnownFamily {
            name: f.name(),
            brokers: f.brokers(),
            node_roles: f.node_roles(),
        })
        .collect()
}

/// A family's workload settings (the `workload.<family>` section of a scenario), and what the
/// family does with them.
pub trait Settings: std::fmt::Debug + Send + Sync {
    /// Checks the settings against the topology and the load: nodes they name exist, replicas
    /// fit in the cluster, schedules fit in the load. `started` are the nodes started with
    /// the cluster; `at` is the workload section.
    fn check(
        &self,
        topology: &Topology,
        started: &[&str],
        load: Duration,
        at: Pos,
        d: &mut Diagnostics,
    );
    /// Why this family cannot do a fault kind with these settings, if it cannot.
    fn refuse_fault(&self, kind: FaultKind) -> Option<String>;
    /// Connects the family's driver to a started cluster.
    fn connect(&self, topology: &Topology, nodes: Vec<NodeEndpoint>) -> Box<dyn Broker>;
    /// What the run drove, for result.json's `workload.settings`: the family's settings, the
    /// protocol and client as they were used, and the broker's known limits.
    fn describe(&self, topology: &Topology) -> serde_json::Value;
}

/// The workload settings of whichever family the topology names.
#[derive(Clone, Debug)]
pub struct WorkloadSettings(Arc<dyn Settings>);

impl WorkloadSettings {
    pub fn new(settings: impl Settings + 'static) -> Self {
        WorkloadSettings(Arc::new(settings))
    }

    /// Checks the settings against the topology and the load (see [`Settings::check`]).
    pub fn check(&self, topology: &Topology, load: Duration, at: Pos, d: &mut Diagnostics) {
        let started: Vec<&str> = topology
            .services
            .iter()
            .filter(|s| !s.is_spare())
            .map(|s| s.name.as_str())
            .collect();
        self.0.check(topology, &started, load, at, d);
    }
}

impl std::ops::Deref for WorkloadSettings {
    type Target = dyn Settings;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// The refusal of a topology change by a family that does not automate it.
pub fn refuse_topology_change(kind: FaultKind, on: &str, why: &str) -> Option<String> {
    kind.is_topology_change().then(|| {
        format!(
            "{} is not supported on {on} yet ({why}); alternatives: kill, restart or rolling-restart",
            kind.name()
        )
    })
}

/// Checks until `check` holds or `deadline` passes, every 100 ms (the precision of the
/// timings that end with such a wait, such as a scale-out's `settled_ms`). The error names
/// what did not hold and the last reason.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    deadline: Instant,
    mut check: F,
) -> Result<T, BrokerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::from("not checked yet");
    while Instant::now() < deadline {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BrokerError(format!(
        "{what} did not hold before the timeout (last: {last})"
    )))
}

// What `Credentials::parse` reads, described for the scenario's JSON Schema.
/// A user and its password.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "Credentials")]
pub struct CredentialsKeys {
    pub user: String,
    pub password: String,
}

/// A user and password a family's client logs in with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    /// Reads `{user, password}` at `path`; `who` says whose user it is, for messages.
    pub fn parse(node: &Node, path: &str, who: &str, d: &mut Diagnostics) -> Option<Self> {
        let c = crate::yaml::Fields::new(node, &["user", "password"], path, d)?;
        let user = c
            .require("user", &format!("a user {who}"), d)
            .and_then(|n| crate::yaml::string(n, &c.path_of("user"), d));
        let password = c
            .require("password", "that user's password", d)
            .and_then(|n| crate::yaml::string(n, &c.path_of("password"), d));
        Some(Credentials {
            user: user?.to_string(),
            password: password?.to_string(),
        })
    }
}

/// How one publish ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// Acknowledged by the broker, with its position (stream sequence, offset) where known.
    Ok {
        position: Option<u64>,
        /// The partition it went to, where the broker has partitions (Kafka).
        partition: Option<u32>,
    },
    /// Definitely not applied (e.g. refused before it was stored).
    Fail(String),
    /// Unknown: a timeout or a connection lost after sending. It may or may not have been applied.
    Info(String),
}

/// The result of handing one message to the client.
pub enum Sent {
    /// Sent; the future resolves when the broker answers. The harness bounds it with the
    /// scenario's acknowledgement timeout.
    Pending {
        node: Option<String>,
        ack: BoxFuture<'static, Completion>,
    },
    /// Sent; the broker's answer comes from [`Producer::poll_answers`] under `token`. One
    /// producer's tokens increase from send to send. For a client whose answers arrive on one
    /// stream (a reply subscription), this costs no future, box or channel per message.
    Tagged { node: Option<String>, token: u64 },
    /// Finished without waiting (e.g. refused by the client before sending).
    Done {
        node: Option<String>,
        completion: Completion,
    },
}

#[async_trait]
pub trait Producer: Send {
    /// Hands one message to the client. Returns once it is sent (or definitely not).
    async fn send(&mut self, payload: Bytes) -> Sent;

    /// Hands every answer that is in for a [`Sent::Tagged`] send to `answer`, with its token,
    /// without waiting, and registers `cx` to be woken when the next comes. An answer for a
    /// token the harness no longer waits for (past its deadline) is ignored. A producer that
    /// never returns `Tagged` has nothing to hand on.
    fn poll_answers(
        &mut self,
        _cx: &mut std::task::Context<'_>,
        _answer: &mut dyn FnMut(u64, Completion),
    ) {
    }
}

/// Sends one message and waits at most `timeout` for its answer: for a caller outside the
/// generator (a probe write) that needs one acknowledgement. `None` when none came in time.
pub async fn send_one(
    producer: &mut dyn Producer,
    payload: Bytes,
    timeout: Duration,
) -> Option<Completion> {
    match producer.send(payload).await {
        Sent::Done { completion, .. } => Some(completion),
        Sent::Pending { ack, .. } => tokio::time::timeout(timeout, ack).await.ok(),
        Sent::Tagged { token, .. } => {
            let answer = std::future::poll_fn(|cx| {
                let mut found = None;
                producer.poll_answers(cx, &mut |t, completion| {
                    if t == token {
                        found = Some(completion);
                    }
                });
                match found {
                    Some(c) => std::task::Poll::Ready(c),
                    None => std::task::Poll::Pending,
                }
            });
            tokio::time::timeout(timeout, answer).await.ok()
        }
    }
}

/// What a probe saw change, from one node's point of view (or the harness's, for
/// `Unreachable`/`Reachable`, which say the monitoring endpoint itself stopped answering).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// The observer lost its connection to a peer (route gone, peer marked offline).
    PeerDown {
        peer: String,
        signal: String,
    },
    PeerUp {
        peer: String,
        signal: String,
    },
    /// The observer reports a (new) leader for a role ("stream:ORDERS", "meta"); `None` means
    /// it reports no leader at all.
    Leader {
        role: String,
        leader: Option<String>,
    },
    Unreachable {
        detail: String,
    },
    Reachable,
    /// The observer reports that it started again since the last observation (its uptime went
    /// back): never detection, the node speaks of itself.
    Restarted {
        detail: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub t_us: u64,
    pub observer: String,
    pub what: Observed,
}

/// Whether each node's monitoring endpoint answers: the harness's own view, reported as
/// `unreachable` when a node stops answering and `reachable` when it answers again, under the
/// observer `harness/<node>` (never detection: the cluster noticed nothing).
#[derive(Debug, Default)]
pub struct Reachability(std::collections::BTreeMap<String, bool>);

impl Reachability {
    /// Records this round's answer from `node`; the observation, if it changed.
    pub fn observe(
        &mut self,
        node: &str,
        answer: Result<(), String>,
        t_us: u64,
    ) -> Option<Observation> {
        let was = self
            .0
            .insert(node.to_string(), answer.is_ok())
            .unwrap_or(true);
        let what = match answer {
            Err(detail) if was => Observed::Unreachable { detail },
            Ok(()) if !was => Observed::Reachable,
            _ => return None,
        };
        Some(Observation {
            t_us,
            observer: format!("harness/{node}"),
            what,
        })
    }
}

/// What changed in the set of members one node reports running: those gone are reported down
/// with `down`, those new up with `up` (the signals, in the broker's words).
pub fn membership_diff(
    old: &std::collections::BTreeSet<String>,
    new: &std::collections::BTreeSet<String>,
    down: &str,
    up: &str,
) -> Vec<Observed> {
    let mut out: Vec<Observed> = old
        .difference(new)
        .map(|peer| Observed::PeerDown {
            peer: peer.clone(),
            signal: down.into(),
        })
        .collect();
    out.extend(new.difference(old).map(|peer| Observed::PeerUp {
        peer: peer.clone(),
        signal: up.into(),
    }));
    out
}

/// A family's cluster monitoring; `observe` polls once and returns what changed since the
/// last call.
#[async_trait]
pub trait Probe: Send {
    async fn observe(&mut self, clock: &Clock) -> Vec<Observation>;
}

/// What draining found.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, JsonSchema)]
pub struct DrainReport {
    pub received: u64,
    /// Messages read that carry no faultline identity (written by someone else).
    pub foreign: u64,
    /// True when every stream/partition was read to its end before the timeout.
    pub complete: bool,
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(pub String);

/// A peer tool's command line: what a user would run instead of faultline to push the
/// workload (`faultline bench peers`).
#[derive(Clone, Debug)]
pub struct PeerCommand {
    /// What it is, for the figures.
    pub tool: String,
    pub program: std::path::PathBuf,
    pub args: Vec<String>,
    /// Messages the peer reads from its standard input, one per line: (count, bytes per
    /// line with its newline); the harness writes them to a file first.
    pub stdin_lines: Option<(u64, usize)>,
    /// Reads the client library's counters from the peer's standard output, where the
    /// client library's statistics go (the same counters as [`Broker::client_counters`]).
    pub counters: Option<fn(&str) -> Option<ClientCounters>>,
}

/// What a client library counts of its own work, where it says (librdkafka's statistics):
/// for comparing two tools built on the same library.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct ClientCounters {
    /// Messages the client sent to the brokers.
    pub messages: u64,
    /// Produce requests those messages went in.
    pub requests: u64,
    /// Times the client's broker threads woke from their poll loop.
    pub wakeups: u64,
}

impl ClientCounters {
    /// Broker-thread wake-ups per message sent (0 when none was sent).
    pub fn wakeups_per_message(&self) -> f64 {
        if self.messages > 0 {
            self.wakeups as f64 / self.messages as f64
        } else {
            0.0
        }
    }

    /// "100000 sent in 2113 Produce requests (47 per request), 40121 broker-thread wake-ups
    /// (0.401 per message)".
    pub fn summary(&self) -> String {
        let per_request = if self.requests > 0 {
            self.messages as f64 / self.requests as f64
        } else {
            0.0
        };
        format!(
            "{} sent in {} Produce requests ({per_request:.0} per request), {} broker-thread wake-ups ({} per message)",
            self.messages,
            self.requests,
            self.wakeups,
            three_figures(self.wakeups_per_message())
        )
    }

    pub fn since(self, before: ClientCounters) -> ClientCounters {
        ClientCounters {
            messages: self.messages.saturating_sub(before.messages),
            requests: self.requests.saturating_sub(before.requests),
            wakeups: self.wakeups.saturating_sub(before.wakeups),
        }
    }
}

/// `v` with three significant figures (at most six decimals): 0.0035 stays 0.00350 rather than
/// 0.00, and 39.2 stays 39.2.
fn three_figures(v: f64) -> String {
    let decimals = if v > 0.0 {
        (2 - v.log10().floor() as i32).clamp(0, 6) as usize
    } else {
        2
    };
    format!("{v:.decimals$}")
}

/// Where scripts/install-peers.sh puts the peers it builds: `$FAULTLINE_CACHE/peers`, by
/// default `~/.cache/faultline/peers`.
pub fn peers_dir() -> std::path::PathBuf {
    let cache = std::env::var_os("FAULTLINE_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/faultline")
        });
    cache.join("peers")
}

#[async_trait]
pub trait Broker: Send + Sync {
    /// Waits until the cluster's own health reports it ready, then creates what the workload
    /// needs (stream, topic) and waits until that is replicated.
    async fn prepare(&self, timeout: Duration, progress: &Progress) -> Result<(), BrokerError>;

    /// Waits until the cluster reports itself healthy again (between the steps of a rolling
    /// restart).
    async fn wait_healthy(&self, timeout: Duration) -> Result<(), BrokerError>;

    /// The family's part of a scale-out or scale-in, where the family automates it.
    fn scaling(&self) -> Option<&dyn Scaling> {
        None
    }

    /// The port clients connect to (what a `client` partition cuts).
    fn client_port(&self) -> u16;

    /// Opens producer `index`.
    async fn producer(&self, index: u32) -> Result<Box<dyn Producer>, BrokerError>;

    /// Starts what reads the workload's messages while the load runs (MQTT's subscriber),
    /// and returns once it is ready to receive (subscribed), so the first publish cannot
    /// miss it. Families that read only when draining keep the default.
    async fn start_readers(
        &self,
        _history: &HistorySink,
        _clock: &Clock,
    ) -> Result<(), BrokerError> {
        Ok(())
    }

    /// When the load starts: readers' own schedules (a subscriber that goes offline at 5 s)
    /// count from it.
    fn load_starts(&self, _at: std::time::Instant) {}

    /// The peer tool that publishes `messages` of `payload_bytes` to the workload's stream or
    /// topic as fast as the cluster acknowledges them, at most `max_in_flight` unacknowledged;
    /// `None` where no peer is wired up for the family.
    fn peer(
        &self,
        _messages: u64,
        _payload_bytes: usize,
        _max_in_flight: usize,
    ) -> Option<PeerCommand> {
        None
    }

    /// CPU seconds used so far by what the family runs inside faultline's process for the
    /// cluster rather than for the load: Kafka's client gateways, which stand in for the
    /// load balancer such brokers sit behind and carry every client's traffic (a peer
    /// tool's too). `None` where the family runs nothing of the kind.
    fn infrastructure_cpu_seconds(&self) -> Option<f64> {
        None
    }

    /// The client library's own counters over every producer opened so far, where it keeps
    /// some (librdkafka's statistics, every 250 ms: the last quarter-second of a producer
    /// that was dropped may be missing).
    fn client_counters(&self) -> Option<ClientCounters> {
        None
    }

    /// Resolves a role (one of [`Family::roles`]) to the node holding it now.
    async fn resolve_role(&self, role: &str) -> Result<String, BrokerError>;

    /// A new probe over the cluster's monitoring endpoints.
    fn probe(&self) -> Box<dyn Probe>;

    /// Reads everything the cluster holds for the workload, recording a `receive` op per
    /// message, until it is all read or `timeout` passes.
    async fn drain(
        &self,
        history: &HistorySink,
        clock: &Clock,
        timeout: Duration,
    ) -> Result<DrainReport, BrokerError>;
}

/// Changing the cluster's membership under load: an ability only some families have.
#[async_trait]
pub trait Scaling: Send + Sync {
    /// Scale-out: `node` was just started. From now on the driver and probes reach it; returns
    /// once the cluster's own monitoring shows it joined, saying what showed it.
    async fn add_node(&self, node: NodeEndpoint, timeout: Duration) -> Result<String, BrokerError>;

    /// Scale-in: `node` was just stopped. Removes it from the cluster's membership the way an
    /// operator would, and returns once the cluster no longer counts on it (its data
    /// re-placed), saying what showed it. The driver and probes stop reaching it at once.
    async fn remove_node(&self, node: &str, timeout: Duration) -> Result<String, BrokerError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_per_message_keeps_three_figures() {
        assert_eq!(three_figures(0.0035), "0.00350");
        assert_eq!(three_figures(2.3), "2.30");
        assert_eq!(three_figures(39.24), "39.2");
        assert_eq!(three_figures(1234.5), "1234");
        assert_eq!(three_figures(0.0), "0.00");
    }

    #[test]
    fn reachability_reports_each_change_once() {
        let mut r = Reachability::default();
        assert_eq!(r.observe("n1", Ok(()), 1), None);
        let down = r.observe("n1", Err("refused".into()), 2).unwrap();
        assert_eq!(down.observer, "harness/n1");
        assert_eq!(
            down.what,
            Observed::Unreachable {
                detail: "refused".into()
            }
        );
        assert_eq!(r.observe("n1", Err("refused".into()), 3), None);
        assert_eq!(
            r.observe("n1", Ok(()), 4).unwrap().what,
            Observed::Reachable
        );
        assert_eq!(r.observe("n2", Err("timeout".into()), 5).unwrap().t_us, 5);
    }
}
