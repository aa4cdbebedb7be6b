//! Pulsar: topics served by brokers over BookKeeper (real Pulsar), or by one pulsar-lite
//! broker over RocksDB (offline).
//!
//! - `config`: the `workload.pulsar` settings (topic, the drain's subscription, batching).
//! - `driver`: producers recording every send receipt's message id, and the drain that reads
//!   the topic from its start to its end with a fresh subscription.
//!
//! Probes: each broker's Prometheus endpoint (`/metrics` on 8080), polled at the scenario's
//! probe interval, which says only whether the broker answers (the harness's view, never
//! detection). pulsar-lite has no admin API and no second broker, so nothing in the cluster
//! can notice a broker's death; with real Pulsar the admin REST API would.

mod config;
mod driver;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    wait_for, Broker, BrokerError, DrainReport, NodeEndpoint, Observation, Observed, Probe,
    Producer,
};
use crate::history::{Clock, HistorySink};
use crate::progress::Progress;
pub use config::PulsarWorkload;

/// Roles a fault can target on a Pulsar cluster.
pub const ROLES: &[&str] = &["topic-owner"];

/// The brokers faultline tells apart.
pub const BROKERS: &[&str] = &["pulsar-lite"];

const CLIENT_PORT: u16 = 6650;
const METRICS_PORT: u16 = 8080;
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What every result of a run on pulsar-lite says about it.
pub const PULSAR_LITE_LIMITS: &str = "pulsar-lite: one Pulsar-protocol broker over RocksDB (PyPI pulsar-lite 0.2.0, alpha), with no BookKeeper, no replication, no second broker to take a topic over and no admin API; a publish is acknowledged once the broker wrote it to RocksDB, without an fsync. It exercises the driver (send receipts, reconnection, reading the topic back) and what survives a broker crash, not Pulsar's quorum or ownership claims, which need real Pulsar; detection is null because nothing is left in the cluster to notice.";

pub struct PulsarFamily {
    workload: PulsarWorkload,
    broker: Option<String>,
    nodes: Vec<NodeEndpoint>,
    highest: driver::HighestAcked,
}

impl PulsarFamily {
    pub fn new(workload: PulsarWorkload, broker: Option<&str>, nodes: Vec<NodeEndpoint>) -> Self {
        PulsarFamily {
            workload,
            broker: broker.map(String::from),
            nodes,
            highest: Default::default(),
        }
    }

    fn url(&self, first: usize) -> String {
        let n = &self.nodes[first % self.nodes.len().max(1)];
        format!("pulsar://{}:{CLIENT_PORT}", n.ip)
    }

    fn lite(&self) -> bool {
        self.broker.as_deref() == Some("pulsar-lite")
    }

    /// Every broker accepts connections on the binary protocol's port (pulsar-lite binds it
    /// last, once its storage is open).
    async fn all_listening(&self) -> Result<(), String> {
        for n in &self.nodes {
            let addr = SocketAddr::from((n.ip, CLIENT_PORT));
            match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("{}: {e}", n.name)),
                Err(_) => return Err(format!("{}: no answer in {PROBE_TIMEOUT:?}", n.name)),
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

    async fn add_node(&self, _: NodeEndpoint, _: Duration) -> Result<String, BrokerError> {
        Err(BrokerError("scale-out is not supported on Pulsar".into()))
    }

    async fn remove_node(&self, _: &str, _: Duration) -> Result<String, BrokerError> {
        Err(BrokerError("scale-in is not supported on Pulsar".into()))
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
        Box::new(MetricsProbe {
            nodes: self.nodes.clone(),
            up: BTreeMap::new(),
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
    up: BTreeMap<String, bool>,
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
            let was = self.up.insert(node.clone(), answer.is_ok()).unwrap_or(true);
            let observer = format!("harness/{node}");
            let t_us = clock.now_us();
            match answer {
                Err(detail) if was => out.push(Observation {
                    t_us,
                    observer,
                    what: Observed::Unreachable { detail },
                }),
                Ok(()) if !was => out.push(Observation {
                    t_us,
                    observer,
                    what: Observed::Reachable,
                }),
                _ => {}
            }
        }
        out
    }
}
