//! The cluster under test: a topology started as containers on a network of the run's own,
//! each node at a fixed address.

pub mod compose;
pub mod docker;
pub mod images;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::families::NodeEndpoint;
use crate::progress::Progress;
use compose::Topology;
use docker::{Backend, DockerError, NodeSpec};
use images::ResolvedImage;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("find a network for the run: every /24 of 10.213.0.0/16 overlaps an existing network")]
    NoSubnet,
}

#[derive(Clone, Debug)]
pub struct ClusterNode {
    pub name: String,
    pub container: String,
    pub ip: Ipv4Addr,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub subnet: String,
    pub nodes: Vec<ClusterNode>,
}

/// First host address given to a node (`.10`, `.11`, ...): low addresses stay free for the
/// gateway and, later, for sidecars and proxies.
const FIRST_NODE_HOST: u8 = 10;

impl Cluster {
    /// Creates the run's network and starts every node. Whatever was created before an error
    /// carries the run's label, so the caller's teardown removes it.
    pub async fn start(
        backend: &Backend,
        run_id: &str,
        topology: &Topology,
        images: &BTreeMap<String, ResolvedImage>,
        progress: &Progress,
    ) -> Result<Cluster, ClusterError> {
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
        for (i, service) in topology.services.iter().enumerate() {
            let ip = Ipv4Addr::new(octets[0], octets[1], octets[2], FIRST_NODE_HOST + i as u8);
            let image = images
                .get(&service.image)
                .map(|r| r.used.as_str())
                .unwrap_or(&service.image);
            let container = backend
                .start_node(&NodeSpec {
                    run_id,
                    node: &service.name,
                    hostname: &service.hostname,
                    image,
                    command: &service.command,
                    environment: &service.environment,
                    network: run_id,
                    ip,
                })
                .await?;
            progress.note(&format!(
                "node {} at {ip} (container {})",
                service.name,
                docker::short(&container)
            ));
            nodes.push(ClusterNode {
                name: service.name.clone(),
                container,
                ip,
            });
        }
        Ok(Cluster { subnet, nodes })
    }

    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub fn node(&self, name: &str) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn endpoints(&self) -> Vec<NodeEndpoint> {
        self.nodes
            .iter()
            .map(|n| NodeEndpoint {
                name: n.name.clone(),
                ip: n.ip,
            })
            .collect()
    }
}
