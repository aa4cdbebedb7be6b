//! Pulsar: topics served by brokers over BookKeeper (real Pulsar), or by one pulsar-lite
//! broker over RocksDB (offline).
//!
//! - `config`: the `workload.pulsar` settings (topic, the drain's subscription, batching).
//! - `driver`: producers recording every send receipt's message id, and the drain that reads
//!   the topic from its start to its end with a fresh subscription.
//!
//! - `admin`: real Pulsar's admin REST API on every broker: active brokers and registered
//!   bookies (a node gone from either is the cluster noticing, i.e. detection), the topic's
//!   owner (role `topic-owner`; a new owner is the failover the seed describes), and the
//!   namespace's ensemble / write quorum / ack quorum.
//!
//! pulsar-lite has no admin API and no second broker: its probe reads only whether its
//! Prometheus endpoint (`/metrics` on 8080) answers, the harness's view, never detection.
//!
//! Which nodes are brokers, bookies and the metadata store comes from the topology's
//! `x-faultline.roles`; without it every node is a broker.

mod admin;
mod config;
mod driver;
mod family;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    wait_for, Broker, BrokerError, DrainReport, NodeEndpoint, Observation, Probe, Producer,
    Reachability,
};
use crate::cluster::compose::Topology;
use crate::history::{Clock, HistorySink};
use crate::progress::Progress;
pub use config::PulsarWorkload;
pub use family::FAMILY;

/// Roles a fault can target on a Pulsar cluster.
pub const ROLES: &[&str] = &["topic-owner"];

/// The brokers faultline tells apart.
pub const BROKERS: &[&str] = &["pulsar-lite", "apache-pulsar"];

const CLIENT_PORT: u16 = 6650;
const METRICS_PORT: u16 = 8080;
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What every result of a run on pulsar-lite says about it.
pub const PULSAR_LITE_LIMITS: &str = "pulsar-lite: one Pulsar-protocol broker over RocksDB (PyPI pulsar-lite 0.2.0, alpha), with no BookKeeper, no replication, no second broker to take a topic over and no admin API; a publish is acknowledged once the broker wrote it to RocksDB, without an fsync. It exercises the driver (send receipts, reconnection, reading the topic back) and what survives a broker crash, not Pulsar's quorum or ownership claims, which need real Pulsar; detection is null because nothing is left in the cluster to notice.";

pub struct PulsarFamily {
    workload: PulsarWorkload,
    broker: Option<String>,
    /// Every node of the cluster.
    nodes: Vec<NodeEndpoint>,
    /// The nodes that are brokers (clients and probes talk to these).
    brokers: Vec<NodeEndpoint>,
    /// How many bookies the topology names.
    bookies: usize,
    highest: driver::HighestAcked,
}

impl PulsarFamily {
    pub fn new(workload: PulsarWorkload, topology: &Topology, nodes: Vec<NodeEndpoint>) -> Self {
        let brokers = match topology.roles.get("broker") {
            Some(names) => nodes
                .iter()
                .filter(|n| names.contains(&n.name))
                .cloned()
                .collect(),
            None => nodes.clone(),
        };
        PulsarFamily {
            workload,
            broker: topology.broker.clone(),
            nodes,
            brokers,
            bookies: topology.roles.get("bookie").map_or(0, Vec::len),
            highest: Default::default(),
        }
    }

    fn url(&self, first: usize) -> String {
        let n = &self.brokers[first % self.brokers.len().max(1)];
        format!("pulsar://{}:{CLIENT_PORT}", n.ip)
    }

    fn lite(&self) -> bool {
        self.broker.as_deref() == Some("pulsar-lite")
    }

    /// Every broker accepts connections on the binary protocol's port (pulsar-lite binds it
    /// last, once its storage is open).
    async fn all_listening(&self) -> Result<(), String> {
        for n in &self.brokers {
            let addr = SocketAddr::from((n.ip, CLIENT_PORT));
            match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("{}: {e}", n.name)),
                Err(_) => return Err(format!("{}: no answer in {PROBE_TIMEOUT:?}", n.name)),
            }
        }
        Ok(())
    }

    /// Every broker's admin API lists every broker and every bookie of the topology.
    async fn all_registered(&self) -> Result<(), String> {
        for b in &self.brokers {
            let addr = admin::admin(b);
            let brokers = admin::active_brokers(addr).await?;
            if brokers.len() < self.brokers.len() {
                return Err(format!("{} lists brokers {brokers:?}", b.name));
            }
            let bookies = admin::bookies(addr).await?;
            if bookies.len() < self.bookies {
                return Err(format!(
                    "{} lists bookies {bookies:?}, the topology has {}",
                    b.name, self.bookies
                ));
            }
        }
        Ok(())
    }

    /// The node whose address a topic lookup answers with.
    async fn owner(&self) -> Result<String, String> {
        let client = driver::connect(&self.url(0), &self.workload, Duration::from_secs(5))
            .await
            .map_err(|e| e.0)?;
        let lookup = tokio::time::timeout(
            Duration::from_secs(5),
            client.lookup_topic(self.workload.topic.clone()),
        )
        .await
        .map_err(|_| "topic lookup: no answer in 5 s".to_string())?
        .map_err(|e| format!("topic lookup: {e}"))?;
        let url = lookup.url.to_string();
        let host = lookup.url.host_str().unwrap_or_default().to_string();
        self.nodes
            .iter()
            .find(|n| n.ip.to_string() == host || n.name == host)
            .map(|n| n.name.clone())
            .ok_or_else(|| format!("the topic's owner {url} is no node of the cluster"))
    }
}

#[async_trait]
impl Broker for PulsarFamily {
    async fn prepare(&self, timeout: Duration, progress: &Progress) -> Result<(), BrokerError> {
        let deadline = Instant::now() + timeout;
        wait_for("every broker accepts Pulsar connections", deadline, || {
            self.all_listening()
        })
        .await?;
        if !self.lite() {
            wait_for(
                "every broker's admin API lists every broker and bookie",
                deadline,
                || self.all_registered(),
            )
            .await?;
            if let Some(p) = self.workload.persistence {
                admin::set_persistence(admin::admin(&self.brokers[0]), &self.workload.topic, p)
                    .await
                    .map_err(BrokerError)?;
                progress.note(&format!(
                    "namespace persistence: ensemble {}, write quorum {}, ack quorum {}",
                    p.ensemble, p.write_quorum, p.ack_quorum
                ));
            }
        }
        let owner = wait_for(
            &format!("a topic lookup of {}", self.workload.topic),
            deadline,
            || self.owner(),
        )
        .await?;
        progress.note(&format!("topic {} served by {owner}", self.workload.topic));
        if self.lite() {
            progress.note(PULSAR_LITE_LIMITS);
        }
        Ok(())
    }

    async fn wait_healthy(&self, timeout: Duration) -> Result<(), BrokerError> {
        let deadline = Instant::now() + timeout;
        wait_for("every broker accepts Pulsar connections", deadline, || {
            self.all_listening()
        })
        .await?;
        wait_for("the topic's lookup", deadline, || self.owner())
            .await
            .map(|_| ())
    }

    fn client_port(&self) -> u16 {
        CLIENT_PORT
    }

    async fn producer(&self, index: u32) -> Result<Box<dyn Producer>, BrokerError> {
        let url = self.url(index as usize);
        let client = driver::connect(&url, &self.workload, Duration::from_secs(15)).await?;
        let node = self.owner().await.ok();
        let p = driver::PulsarProducer::new(
            &client,
            &self.workload,
            format!("faultline-producer-{index}"),
            node,
            self.workload.operation_timeout,
            self.highest.clone(),
        )
        .await?;
        Ok(Box::new(p))
    }

    async fn resolve_role(&self, role: &str) -> Result<String, BrokerError> {
        match role {
            "topic-owner" => {
                let deadline = Instant::now() + Duration::from_secs(10);
                wait_for("the topic's owner known", deadline, || self.owner()).await
            }
            _ => Err(BrokerError(format!("no role {role} on Pulsar"))),
        }
    }

    fn probe(&self) -> Box<dyn Probe> {
        if self.lite() {
            return Box::new(MetricsProbe {
                nodes: self.brokers.clone(),
                up: Reachability::default(),
            });
        }
        Box::new(admin::AdminProbe {
            brokers: self.brokers.clone(),
            all: self.nodes.clone(),
            topic: self.workload.topic.clone(),
            seen: BTreeMap::new(),
            owners: BTreeMap::new(),
            up: Reachability::default(),
        })
    }

    async fn drain(
        &self,
        history: &HistorySink,
        clock: &Clock,
        timeout: Duration,
    ) -> Result<DrainReport, BrokerError> {
        let highest = *self.highest.lock().unwrap_or_else(|e| e.into_inner());
        let mut report = driver::drain(
            &self.url(0),
            &self.workload,
            highest,
            history,
            clock,
            timeout,
        )
        .await?;
        if self.lite() {
            report.notes.push(PULSAR_LITE_LIMITS.into());
        }
        Ok(report)
    }
}

/// Whether each broker's Prometheus endpoint answers: the harness's view of it.
struct MetricsProbe {
    nodes: Vec<NodeEndpoint>,
    up: Reachability,
}

#[async_trait]
impl Probe for MetricsProbe {
    async fn observe(&mut self, clock: &Clock) -> Vec<Observation> {
        let checks = self.nodes.iter().map(|n| {
            let addr = SocketAddr::from((n.ip, METRICS_PORT));
            let name = n.name.clone();
            async move {
                let answer = match crate::http::get(addr, "/metrics", PROBE_TIMEOUT).await {
                    Ok((200, _)) => Ok(()),
                    Ok((status, _)) => Err(format!("/metrics answered {status}")),
                    Err(e) => Err(format!("/metrics: {e}")),
                };
                (name, answer)
            }
        });
        let mut out = Vec::new();
        for (node, answer) in futures::future::join_all(checks).await {
            out.extend(self.up.observe(&node, answer, clock.now_us()));
        }
        out
    }
}
