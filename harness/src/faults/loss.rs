//! Loss: each target node drops a share of the packets it sends (to every peer, or only to
//! `peers`), by an iptables `statistic` match in a chain of this fault's own.

use std::time::Instant;

use async_trait::async_trait;

use super::network::{apply_on_each, install_script, remove_script, undo_and_remove, Sidecar};
use super::{Fault, FaultCtx, FaultError};
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
        apply_on_each(
            ctx,
            &self.nodes,
            &format!("loss{}", self.id),
            &install_script(self.id, &[], &rules),
            "install loss rules",
            &mut self.sidecars,
        )
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
