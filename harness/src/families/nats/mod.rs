//! NATS JetStream: a stream replicated by Raft across a full-mesh cluster.
//!
//! - `config`: the `workload.nats` settings (stream, replicas, storage).
//! - `driver`: producers publishing through async-nats with JetStream acknowledgements, and the
//!   drain that reads the stream to its end.
//! - `probe`: the cluster's own monitoring on port 8222 (`/healthz`, `/routez`, `/jsz`).
//!
//! Node names are the servers' names (`-n <service>` in the topology), so a route's
//! `remote_name` and a stream's `cluster.leader` name nodes directly.

mod config;
mod driver;
mod family;
mod probe;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{wait_for, Broker, BrokerError, DrainReport, NodeEndpoint, Probe, Producer, Scaling};
use crate::history::{Clock, HistorySink};
use crate::progress::Progress;
pub use config::NatsWorkload;
pub use family::FAMILY;

/// Roles a fault can target on a NATS cluster.
pub const ROLES: &[&str] = &["stream-leader", "meta-leader"];

const CLIENT_PORT: u16 = 4222;
const MONITOR_PORT: u16 = 8222;
/// Bound on one monitoring request; a frozen node must not stall a probe round.
const MONITOR_TIMEOUT: Duration = Duration::from_millis(500);

/// The cluster's members as the driver reaches them; scale-out and scale-in change it, and
/// the probe reads it every round.
type Members = Arc<RwLock<Vec<NodeEndpoint>>>;

pub struct Nats {
    workload: NatsWorkload,
    nodes: Members,
}

fn monitor(node: &NodeEndpoint) -> SocketAddr {
    SocketAddr::from((node.ip, MONITOR_PORT))
}

/// The meta group as the meta leader reports it: the leader and every peer with whether it
/// is current.
async fn meta_group(addr: SocketAddr) -> Result<(String, Vec<(String, bool)>), String> {
    let jsz = crate::http::get_json(addr, "/jsz", MONITOR_TIMEOUT).await?;
    let meta = &jsz["meta_cluster"];
    let leader = probe::meta_leader(&jsz).ok_or("no meta leader reported")?;
    let mut peers = vec![(leader.clone(), true)];
    for r in meta["replicas"].as_array().into_iter().flatten() {
        let name = r["name"].as_str().unwrap_or_default().to_string();
        let current =
            r["current"].as_bool().unwrap_or(false) && !r["offline"].as_bool().unwrap_or(false);
        peers.push((name, current));
    }
    Ok((leader, peers))
}

impl Nats {
    pub fn new(workload: NatsWorkload, nodes: Vec<NodeEndpoint>) -> Self {
        Nats {
            workload,
            nodes: Arc::new(RwLock::new(nodes)),
        }
    }

    fn nodes(&self) -> Vec<NodeEndpoint> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn monitor(&self, node: &NodeEndpoint) -> SocketAddr {
        monitor(node)
    }

    /// Client URLs, starting at node `first` so producers spread over the cluster.
    fn urls(&self, first: usize) -> Vec<String> {
        let nodes = self.nodes();
        let n = nodes.len();
        (0..n)
            .map(|i| {
                let node = &nodes[(first + i) % n];
                format!("nats://{}:{CLIENT_PORT}", node.ip)
            })
            .collect()
    }

    /// Every node has a route to every other member.
    async fn full_mesh(&self) -> Result<(), String> {
        let nodes = self.nodes();
        for node in &nodes {
            let routez =
                crate::http::get_json(self.monitor(node), "/routez", MONITOR_TIMEOUT).await?;
            let peers = probe::route_peers(&routez);
            let missing: Vec<&str> = nodes
                .iter()
                .map(|n| n.name.as_str())
                .filter(|n| *n != node.name && !peers.contains(*n))
                .collect();
            if !missing.is_empty() {
                return Err(format!("{} has no route to {missing:?}", node.name));
            }
        }
        Ok(())
    }

    /// The meta leader reports exactly the members as its group, every one current.
    async fn meta_group_is_members(&self) -> Result<String, String> {
        let names: BTreeSet<String> = self.nodes().into_iter().map(|n| n.name).collect();
        let first = self.nodes().first().cloned().ok_or("no member left")?;
        let (leader, _) = meta_group(self.monitor(&first)).await?;
        let at = self
            .nodes()
            .into_iter()
            .find(|n| n.name == leader)
            .ok_or_else(|| format!("meta leader {leader} is not a member"))?;
        let (_, peers) = meta_group(self.monitor(&at)).await?;
        let group: BTreeSet<String> = peers.iter().map(|(n, _)| n.clone()).collect();
        let behind: Vec<&String> = peers.iter().filter(|(_, c)| !c).map(|(n, _)| n).collect();
        if group != names {
            return Err(format!(
                "meta leader {leader} reports the group {group:?}, members are {names:?}"
            ));
        }
        if !behind.is_empty() {
            return Err(format!(
                "meta leader {leader} reports {behind:?} not current"
            ));
        }
        Ok(leader)
    }

    /// Every node's /healthz answers 200 (which includes JetStream being current).
    async fn all_healthy(&self) -> Result<(), String> {
        for node in &self.nodes() {
            let (status, body) = crate::http::get(self.monitor(node), "/healthz", MONITOR_TIMEOUT)
                .await
                .map_err(|e| format!("{}: {e}", node.name))?;
            if status != 200 {
                return Err(format!(
                    "{}: /healthz {status} {}",
                    node.name,
                    String::from_utf8_lossy(&body).trim()
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Broker for Nats {
    async fn prepare(&self, timeout: Duration, progress: &Progress) -> Result<(), BrokerError> {
        let deadline = Instant::now() + timeout;

        wait_for("every node's /healthz answers ok", deadline, || async {
            self.all_healthy().await?;
            for node in &self.nodes() {
                let varz = crate::http::get_json(self.monitor(node), "/varz", MONITOR_TIMEOUT).await?;
                let server = varz["server_name"].as_str().unwrap_or_default();
                if server != node.name {
                    return Err(format!(
                        "node {} runs a server named {server:?}: the topology must name each server after its service (-n {})",
                        node.name, node.name
                    ));
                }
            }
            Ok(())
        })
        .await?;
        progress.note("every node healthy");

        wait_for("full mesh of routes", deadline, || self.full_mesh()).await?;
        progress.note("routes up between every pair of nodes");

        let meta = wait_for(
            "one JetStream meta leader agreed by all",
            deadline,
            || async {
                let mut leaders = Vec::new();
                for node in &self.nodes() {
                    let jsz =
                        crate::http::get_json(self.monitor(node), "/jsz", MONITOR_TIMEOUT).await?;
                    leaders.push(
                        jsz["meta_cluster"]["leader"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    );
                }
                match leaders.first() {
                    Some(l) if !l.is_empty() && leaders.iter().all(|x| x == l) => Ok(l.clone()),
                    _ => Err(format!("meta leaders reported: {leaders:?}")),
                }
            },
        )
        .await?;
        progress.note(&format!("JetStream meta leader: {meta}"));

        let client = driver::connect(&self.urls(0), "faultline-admin", deadline).await?;
        let leader = driver::create_stream(&client, &self.workload, deadline).await?;
        progress.note(&format!(
            "stream {} ({} replica(s), {} storage) created and current on every replica; leader {leader}",
            self.workload.stream, self.workload.replicas, self.workload.storage.name()
        ));
        Ok(())
    }

    async fn wait_healthy(&self, timeout: Duration) -> Result<(), BrokerError> {
        let deadline = Instant::now() + timeout;
        // /healthz also checks that JetStream is current with the meta leader and every stream
        // replica has caught up, so a restarted node counts only once it has.
        wait_for("every node's /healthz answers ok", deadline, || {
            self.all_healthy()
        })
        .await
    }

    fn scaling(&self) -> Option<&dyn Scaling> {
        Some(self)
    }

    fn client_port(&self) -> u16 {
        CLIENT_PORT
    }

    fn peer(
        &self,
        messages: u64,
        payload_bytes: usize,
        max_in_flight: usize,
    ) -> Option<super::PeerCommand> {
        let url = self.urls(0).into_iter().next()?;
        Some(super::PeerCommand {
            tool: "nats-jspub (the official Go client, nats.go, JetStream asynchronous publish)"
                .into(),
            program: super::peers_dir().join("nats-jspub"),
            args: [
                "-url",
                &url,
                "-subject",
                &self.workload.subject,
                "-n",
                &messages.to_string(),
                "-size",
                &payload_bytes.to_string(),
                "-pending",
                &max_in_flight.to_string(),
            ]
            .map(String::from)
            .to_vec(),
            stdin_lines: None,
            counters: None,
        })
    }

    async fn producer(&self, index: u32) -> Result<Box<dyn Producer>, BrokerError> {
        let urls = self.urls(index as usize % self.nodes().len().max(1));
        let deadline = Instant::now() + Duration::from_secs(10);
        let client =
            driver::connect_producer(&urls, &format!("faultline-producer-{index}"), deadline)
                .await?;
        Ok(Box::new(
            driver::NatsProducer::new(client, &self.workload).await?,
        ))
    }

    async fn resolve_role(&self, role: &str) -> Result<String, BrokerError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let addrs: Vec<SocketAddr> = self.nodes().iter().map(|n| self.monitor(n)).collect();
        let stream = self.workload.stream.clone();
        wait_for(&format!("{role} known"), deadline, || {
            let addrs = addrs.clone();
            let stream = stream.clone();
            async move {
                // Ask every node and take the leader the majority reports, so one node with a
                // stale view cannot pick the target.
                let mut votes: Vec<String> = Vec::new();
                for addr in addrs {
                    let Ok(jsz) =
                        crate::http::get_json(addr, probe::JSZ_STREAMS, MONITOR_TIMEOUT).await
                    else {
                        continue;
                    };
                    let leader = match role {
                        "meta-leader" => probe::meta_leader(&jsz),
                        _ => probe::stream_leader(&jsz, &stream),
                    };
                    if let Some(l) = leader {
                        votes.push(l);
                    }
                }
                votes.sort();
                let best = votes
                    .chunk_by(|a, b| a == b)
                    .max_by_key(|c| c.len())
                    .map(|c| c[0].clone());
                best.ok_or_else(|| format!("no node reports a {role}"))
            }
        })
        .await
    }

    fn probe(&self) -> Box<dyn Probe> {
        Box::new(probe::NatsProbe::new(
            self.nodes.clone(),
            self.workload.stream.clone(),
        ))
    }

    async fn drain(
        &self,
        history: &HistorySink,
        clock: &Clock,
        timeout: Duration,
    ) -> Result<DrainReport, BrokerError> {
        driver::drain(&self.urls(0), &self.workload, history, clock, timeout).await
    }
}

#[async_trait]
impl Scaling for Nats {
    async fn add_node(&self, node: NodeEndpoint, timeout: Duration) -> Result<String, BrokerError> {
        let deadline = Instant::now() + timeout;
        let name = node.name.clone();
        // Probes poll the node from when its monitoring port answers, not before.
        wait_for(
            &format!("{name}'s monitoring port answering"),
            deadline,
            || async {
                let varz = crate::http::get_json(monitor(&node), "/varz", MONITOR_TIMEOUT).await?;
                match varz["server_name"].as_str() {
                    Some(server) if server == name => Ok(()),
                    other => Err(format!("{name} runs a server named {other:?}")),
                }
            },
        )
        .await?;
        {
            let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
            if !nodes.iter().any(|n| n.name == name) {
                nodes.push(node);
            }
        }
        wait_for(
            &format!("{name} routed to and from every member"),
            deadline,
            || self.full_mesh(),
        )
        .await?;
        let leader = wait_for(
            &format!("{name} in the JetStream meta group and current"),
            deadline,
            || self.meta_group_is_members(),
        )
        .await?;
        wait_for("every node's /healthz answers ok", deadline, || {
            self.all_healthy()
        })
        .await?;
        Ok(format!(
            "{name} joined: routes to and from every member, meta leader {leader} counts it current, /healthz ok on all {}",
            self.nodes().len()
        ))
    }

    async fn remove_node(&self, node: &str, timeout: Duration) -> Result<String, BrokerError> {
        let deadline = Instant::now() + timeout;
        self.nodes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| n.name != node);
        let creds = self
            .workload
            .system_account
            .as_ref()
            .ok_or_else(|| BrokerError("scale-in needs workload.nats.system_account".into()))?;
        let system = driver::connect_as(&self.urls(0), "faultline-system", creds, deadline).await?;
        // The meta leader answers; if the removed node led the group, a new leader must be
        // elected first, so the request is retried until it succeeds.
        wait_for(
            &format!("the meta group accepting the removal of {node}"),
            deadline,
            || driver::remove_server(&system, node),
        )
        .await?;
        let leader = wait_for(
            &format!("{node} gone from the JetStream meta group"),
            deadline,
            || self.meta_group_is_members(),
        )
        .await?;
        let client = driver::connect(&self.urls(0), "faultline-admin", deadline).await?;
        let replicas = wait_for(
            &format!("stream {} re-placed off {node}", self.workload.stream),
            deadline,
            || driver::placed_off(&client, &self.workload.stream, node),
        )
        .await?;
        Ok(format!(
            "{node} removed: meta leader {leader} no longer counts it; stream {} on {} (all current)",
            self.workload.stream,
            replicas.join(", ")
        ))
    }
}
