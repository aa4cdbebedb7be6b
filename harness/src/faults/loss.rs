//! Loss: each target node drops a share of the packets it sends (to every peer, or only to
//! `peers`), by an iptables `statistic` match in a chain of this fault's own.

use std::time::Instant;

use async_trait::async_trait;

use super::network::{install_script, remove_script, undo_and_remove, Sidecar};
use super::{on_all, Fault, FaultCtx, FaultError};
use crate::cluster::ClusterNode;

pub struct Loss {
    id: usize,
    nodes: Vec<ClusterNode>,
    probability: f64,
    peers: Vec<String>,
    sidecars: Vec<Sidecar>,
}

impl Loss {
    pub fn new(id: usize, nodes: Vec<ClusterNode>, probability: f64, peers: Vec<String>) -> Self {
        Loss {
            id,
            nodes,
            probability,
            peers,
            sidecars: Vec::new(),
        }
    }
}

#[async_trait]
impl Fault for Loss {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        let drop = format!(
            "-m statistic --mode random --probability {:.4} -j DROP",
            self.probability
        );
        let rules: Vec<String> = if self.peers.is_empty() {
            vec![drop]
        } else {
            self.peers
                .iter()
                .filter_map(|p| ctx.cluster.node(p))
                .map(|p| format!("-d {} {drop}", p.ip))
                .collect()
        };
        for node in &self.nodes {
            let sidecar = Sidecar::start(ctx, node, &format!("loss{}", self.id)).await?;
            self.sidecars.push(sidecar);
        }
        let (id, rules) = (self.id, &rules);
        let sidecars = &self.sidecars;
        on_all(&self.nodes, |node| async move {
            let sidecar = sidecars
                .iter()
                .find(|s| s.node.name == node.name)
                .expect("sidecar per node");
            sidecar
                .sh(ctx, &install_script(id, &[], rules), "install loss rules")
                .await?;
            Ok(Instant::now())
        })
        .await
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        undo_and_remove(
            &mut self.sidecars,
            ctx,
            &remove_script(self.id),
            "remove loss rules",
        )
        .await
    }

    fn describe(&self) -> Option<String> {
        Some(format!(
            "{:.0} % of packets sent{} dropped",
            self.probability * 100.0,
            if self.peers.is_empty() {
                String::new()
            } else {
                format!(" to {}", self.peers.join(", "))
            }
        ))
    }
}
