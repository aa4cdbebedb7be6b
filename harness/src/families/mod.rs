//! The boundary between the generic harness and one broker family.
//!
//! A family is one folder here holding its scenario settings, its workload driver and its
//! probes. The harness talks to it only through [`Broker`] (prepare the cluster's data
//! structures, open producers, resolve roles such as "stream-leader", probe, drain) and
//! [`Producer`] (send one message, get its completion). Adding a family means adding a folder
//! and a line in each registry function below.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::cluster::compose::Topology;
use crate::history::{Clock, HistorySink};
use crate::progress::Progress;
use crate::yaml::{Diagnostics, Node, Pos};

pub mod kafka;
pub mod mqtt;
pub mod nats;
pub mod pulsar;

/// Names of the families, as written in a topology's `x-faultline.family`.
pub const FAMILIES: &[&str] = &["nats", "mqtt", "kafka", "pulsar"];

/// The brokers a family tells apart, as written in a topology's `x-faultline.broker`
/// (empty: the family has one broker, and the key is not used).
pub fn brokers(family: &str) -> &'static [&'static str] {
    match family {
        "mqtt" => mqtt::BROKERS,
        "kafka" => kafka::BROKERS,
        "pulsar" => pulsar::BROKERS,
        _ => &[],
    }
}

/// Family-specific workload settings (the `workload.<family>` section of a scenario).
#[derive(Clone, Debug)]
pub enum WorkloadSettings {
    Nats(nats::NatsWorkload),
    Mqtt(Box<mqtt::MqttWorkload>),
    Kafka(Box<kafka::KafkaWorkload>),
    Pulsar(Box<pulsar::PulsarWorkload>),
}

/// Reads `workload.<family>`.
pub fn parse_workload(family: &str, node: &Node, d: &mut Diagnostics) -> Option<WorkloadSettings> {
    match family {
        "nats" => nats::NatsWorkload::parse(node, d).map(WorkloadSettings::Nats),
        "mqtt" => mqtt::MqttWorkload::parse(node, d).map(|w| WorkloadSettings::Mqtt(Box::new(w))),
        "kafka" => {
            kafka::KafkaWorkload::parse(node, d).map(|w| WorkloadSettings::Kafka(Box::new(w)))
        }
        "pulsar" => {
            pulsar::PulsarWorkload::parse(node, d).map(|w| WorkloadSettings::Pulsar(Box::new(w)))
        }
        _ => None,
    }
}

/// Checks the family's settings against the topology and the load: nodes they name exist,
/// replicas fit in the cluster, schedules fit in the load. `at` is the workload section.
pub fn check_settings(
    settings: &WorkloadSettings,
    topology: &Topology,
    load: Duration,
    at: Pos,
    d: &mut Diagnostics,
) {
    let started: Vec<&str> = topology
        .services
        .iter()
        .filter(|s| !s.is_spare())
        .map(|s| s.name.as_str())
        .collect();
    match settings {
        WorkloadSettings::Nats(n) => {
            if n.replicas as usize > started.len() {
                d.error(
                    at,
                    format!(
                        "workload: {} replicas asked for, but the cluster starts with {} node(s)",
                        n.replicas,
                        started.len()
                    ),
                );
            }
        }
        WorkloadSettings::Mqtt(m) => {
            for (name, pos) in m.named_nodes() {
                if !started.contains(&name.as_str()) {
                    d.error(
                        *pos,
                        format!(
                            "workload.mqtt: no node named {name:?}: expected one of {}",
                            started.join(", ")
                        ),
                    );
                }
            }
            m.check_duration(load, d);
            if let Some(why) = mqtt::refuse(m, topology.broker.as_deref()) {
                d.error(m.pos, why);
            }
        }
        WorkloadSettings::Kafka(k) => {
            let brokers = if topology.gateways.is_empty() {
                started.len()
            } else {
                let mut named: Vec<&String> =
                    topology.gateways.iter().flat_map(|g| &g.services).collect();
                named.sort();
                named.dedup();
                named.len()
            };
            if k.replication_factor as usize > brokers {
                d.error(
                    k.pos,
                    format!(
                        "workload.kafka: replication factor {} asked for, but the cluster has {brokers} broker(s)",
                        k.replication_factor
                    ),
                );
            }
        }
        WorkloadSettings::Pulsar(p) => {
            let bookies = topology.roles.get("bookie").map_or(0, Vec::len);
            match (&p.persistence, topology.broker.as_deref()) {
                (Some(_), Some("pulsar-lite")) => d.error(
                    p.pos,
                    "workload.pulsar.persistence: pulsar-lite has no BookKeeper; remove it, or run on real Pulsar (docker-compose/pulsar-3.yml)",
                ),
                (Some(q), _) if q.ensemble as usize > bookies => d.error(
                    p.pos,
                    format!(
                        "workload.pulsar.persistence: an ensemble of {} asked for, but the topology names {bookies} bookie(s) (x-faultline.roles.bookie)",
                        q.ensemble
                    ),
                ),
                _ => {}
            }
        }
    }
}

/// The roles a fault target can name for this family, resolved to a node at fault time.
pub fn roles(family: &str) -> &'static [&'static str] {
    match family {
        "nats" => nats::ROLES,
        "mqtt" => mqtt::ROLES,
        "kafka" => kafka::ROLES,
        "pulsar" => pulsar::ROLES,
        _ => &[],
    }
}

/// Why this family cannot do a fault kind with these settings, if it cannot.
pub fn refuse_fault(
    settings: &WorkloadSettings,
    kind: crate::scenario::FaultKind,
) -> Option<String> {
    match settings {
        WorkloadSettings::Nats(w) => w.refuse_fault(kind),
        WorkloadSettings::Kafka(_) => kind.is_topology_change().then(|| {
            format!(
                "{} is not supported on Kafka clusters yet (reassigning partitions to a new or retiring broker is not automated); alternatives: kill, restart or rolling-restart",
                kind.name()
            )
        }),
        WorkloadSettings::Pulsar(_) => kind.is_topology_change().then(|| {
            format!(
                "{} is not supported on Pulsar yet (adding or retiring a broker or bookie is not automated); alternatives: kill, restart or rolling-restart",
                kind.name()
            )
        }),
        WorkloadSettings::Mqtt(_) => kind.is_topology_change().then(|| {
            format!(
                "{} is not supported on MQTT brokers yet (joining and retiring a RabbitMQ node or a bridged Mosquitto is not automated); alternatives: kill, restart or rolling-restart",
                kind.name()
            )
        }),
    }
}

/// Connects the family's driver to a started cluster.
pub fn connect(
    settings: &WorkloadSettings,
    topology: &Topology,
    nodes: Vec<NodeEndpoint>,
) -> Box<dyn Broker> {
    match settings {
        WorkloadSettings::Nats(w) => Box::new(nats::Nats::new(w.clone(), nodes)),
        WorkloadSettings::Mqtt(w) => Box::new(mqtt::Mqtt::new(
            (**w).clone(),
            topology.broker.as_deref(),
            nodes,
        )),
        WorkloadSettings::Kafka(w) => Box::new(kafka::Kafka::new((**w).clone(), topology, nodes)),
        WorkloadSettings::Pulsar(w) => {
            Box::new(pulsar::PulsarFamily::new((**w).clone(), topology, nodes))
        }
    }
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

/// A node as the driver and probes reach it.
#[derive(Clone, Debug)]
pub struct NodeEndpoint {
    pub name: String,
    pub ip: Ipv4Addr,
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
#[derive(Clone, Debug, Default)]
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

#[async_trait]
pub trait Broker: Send + Sync {
    /// Waits until the cluster's own health reports it ready, then creates what the workload
    /// needs (stream, topic) and waits until that is replicated.
    async fn prepare(&self, timeout: Duration, progress: &Progress) -> Result<(), BrokerError>;

    /// Waits until the cluster reports itself healthy again (between the steps of a rolling
    /// restart).
    async fn wait_healthy(&self, timeout: Duration) -> Result<(), BrokerError>;

    /// Scale-out: `node` was just started. From now on the driver and probes reach it; returns
    /// once the cluster's own monitoring shows it joined, saying what showed it.
    async fn add_node(&self, node: NodeEndpoint, timeout: Duration) -> Result<String, BrokerError>;

    /// Scale-in: `node` was just stopped. Removes it from the cluster's membership the way an
    /// operator would, and returns once the cluster no longer counts on it (its data
    /// re-placed), saying what showed it. The driver and probes stop reaching it at once.
    async fn remove_node(&self, node: &str, timeout: Duration) -> Result<String, BrokerError>;

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

    /// Resolves a role (one of [`roles`]) to the node holding it now.
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

#[cfg(test)]
mod tests {
    use super::*;

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
