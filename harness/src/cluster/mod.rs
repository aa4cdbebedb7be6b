//! The cluster under test: a topology started as containers on a network of the run's own,
//! each node at a fixed address.

pub mod backend;
pub mod compose;
pub mod docker;
pub mod images;
pub mod kubernetes;
mod on_docker;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use crate::endpoint::NodeEndpoint;
use crate::progress::Progress;
use compose::Topology;
use docker::{DockerBackend, DockerError, NodeSpec};
use images::ResolvedImage;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("find a network for the run: every /24 of 10.213.0.0/16 overlaps an existing network")]
    NoSubnet,
    #[error("start node {node}: {dependency} (which it depends on) was not reported healthy within {timeout:?} (last health: {last})")]
    NotHealthy {
        node: String,
        dependency: String,
        timeout: std::time::Duration,
        last: String,
    },
}

#[derive(Clone, Debug)]
pub struct ClusterNode {
    pub name: String,
    pub container: String,
    pub ip: Ipv4Addr,
}

impl ClusterNode {
    pub fn endpoint(&self) -> NodeEndpoint {
        NodeEndpoint {
            name: self.name.clone(),
            ip: self.ip,
        }
    }
}

/// Every node the topology defines (spares included, created but not started), and which of
/// them are members of the cluster now: `scale-out` adds a spare, `scale-in` removes a member.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub subnet: String,
    pub nodes: Vec<ClusterNode>,
    members: Arc<RwLock<BTreeSet<String>>>,
}

/// First host address given to a node (`.10`, `.11`, ...): low addresses stay free for the
/// gateway and, later, for sidecars and proxies.
const FIRST_NODE_HOST: u8 = 10;

/// Waits until Docker reports `node` healthy.
async fn wait_healthy(
    backend: &DockerBackend,
    node: &ClusterNode,
    waiting: &str,
    deadline: std::time::Instant,
    timeout: std::time::Duration,
) -> Result<(), ClusterError> {
    let mut last = String::from("not inspected yet");
    while std::time::Instant::now() < deadline {
        match backend.health(&node.container, &node.name).await? {
            Some(h) if h == "healthy" => return Ok(()),
            Some(h) => last = h,
            None => last = "no health check".into(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Err(ClusterError::NotHealthy {
        node: waiting.to_string(),
        dependency: node.name.clone(),
        timeout,
        last,
    })
}

impl Cluster {
    /// Creates the run's network and starts every node. Whatever was created before an error
    /// carries the run's label, so the caller's teardown removes it.
    pub async fn start(
        backend: &DockerBackend,
        run_id: &str,
        topology: &Topology,
        images: &BTreeMap<String, ResolvedImage>,
        ready_timeout: std::time::Duration,
        progress: &Progress,
    ) -> Result<Cluster, ClusterError> {
        let deadline = std::time::Instant::now() + ready_timeout;
        let salt = run_id
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        let mut attempt = 0;
        let (subnet, base) = loop {
            let used = backend.used_subnets().await?;
            let Some((subnet, base)) = docker::pick_subnet(&used, salt.wrapping_add(attempt))
            else {
                return Err(ClusterError::NoSubnet);
            };
            // Another run may take the same subnet between the check and the creation.
            match backend.create_network(run_id, run_id, &subnet).await {
                Ok(_) => break (subnet, base),
                Err(e) if attempt < 5 => {
                    progress.note(&format!("{e}; trying another subnet"));
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        progress.note(&format!("network {run_id} ({subnet})"));
        let octets = base.octets();
        let mut nodes = Vec::new();
        let mut members = BTreeSet::new();
        for (i, service) in topology.services.iter().enumerate() {
            let ip = Ipv4Addr::new(octets[0], octets[1], octets[2], FIRST_NODE_HOST + i as u8);
            let image = images
                .get(&service.image)
                .map(|r| r.used.as_str())
                .unwrap_or(&service.image);
            let files: Vec<(String, String)> = service
                .files
                .iter()
                .map(|f| (f.target.clone(), f.content.clone()))
                .collect();
            let container = backend
                .create_node(&NodeSpec {
                    run_id,
                    node: &service.name,
                    hostname: &service.hostname,
                    image,
                    command: &service.command,
                    environment: &service.environment,
                    network: run_id,
                    ip,
                    tmpfs: service
                        .tmpfs
                        .iter()
                        .map(|t| (t.path.clone(), t.options.clone()))
                        .collect(),
                    files: &files,
                    healthcheck: service.healthcheck.as_ref(),
                    aliases: &service.aliases,
                    durable: service.durable.as_ref(),
                })
                .await?;
            if service.is_spare() {
                progress.note(&format!(
                    "spare node {} at {ip} (container {}, created, not started)",
                    service.name,
                    docker::short(&container)
                ));
            } else {
                for dep in service.depends_on.iter().filter(|d| d.healthy) {
                    let Some(other) = nodes.iter().find(|n: &&ClusterNode| n.name == dep.service)
                    else {
                        continue;
                    };
                    progress.note(&format!(
                        "{} waits for {} to be healthy (depends_on, condition service_healthy)",
                        service.name, dep.service
                    ));
                    wait_healthy(backend, other, &service.name, deadline, ready_timeout).await?;
                }
                backend.start(&container, &service.name).await?;
                members.insert(service.name.clone());
                progress.note(&format!(
                    "node {} at {ip} (container {})",
                    service.name,
                    docker::short(&container)
                ));
            }
            nodes.push(ClusterNode {
                name: service.name.clone(),
                container,
                ip,
            });
        }
        Ok(Cluster {
            subnet,
            nodes,
            members: Arc::new(RwLock::new(members)),
        })
    }

    /// A cluster of already started nodes, all members (for tests of the fault logic).
    pub fn of(subnet: &str, nodes: Vec<ClusterNode>) -> Cluster {
        let members = nodes.iter().map(|n| n.name.clone()).collect();
        Cluster {
            subnet: subnet.to_string(),
            nodes,
            members: Arc::new(RwLock::new(members)),
        }
    }

    fn members_now(&self) -> BTreeSet<String> {
        self.members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Names of the cluster's members now, in topology order.
    pub fn names(&self) -> Vec<String> {
        self.members().into_iter().map(|n| n.name).collect()
    }

    /// The cluster's members now, in topology order.
    pub fn members(&self) -> Vec<ClusterNode> {
        let members = self.members_now();
        self.nodes
            .iter()
            .filter(|n| members.contains(&n.name))
            .cloned()
            .collect()
    }

    /// Spares not (or no longer) members.
    pub fn outside(&self) -> Vec<String> {
        let members = self.members_now();
        self.nodes
            .iter()
            .filter(|n| !members.contains(&n.name))
            .map(|n| n.name.clone())
            .collect()
    }

    pub fn set_member(&self, name: &str, member: bool) {
        let mut m = self.members.write().unwrap_or_else(|e| e.into_inner());
        if member {
            m.insert(name.to_string());
        } else {
            m.remove(name);
        }
    }

    /// Any node of the topology, member or not.
    pub fn node(&self, name: &str) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The members as the driver and probes reach them.
    pub fn endpoints(&self) -> Vec<NodeEndpoint> {
        self.members().iter().map(ClusterNode::endpoint).collect()
    }
}
