//! Loss: each target node drops a share of the packets it sends (to every peer, or only to
//! `peers`), by an iptables `statistic` match in a chain of this fault's own.

use std::time::Instant;

use async_trait::async_trait;

use super::network::{
    apply_on_each, drop_counters_script, install_script, parse_drop_counters, read_peers,
    remove_script, undo_and_remove, Sidecar,
};
use super::queued::read_percent;
use super::{Fault, FaultCtx, FaultError, ReadCtx, Settings};
use crate::cluster::ClusterNode;
use crate::yaml::{Diagnostics, Fields};

/// The settings only a loss fault takes.
pub const KEYS: &[&str] = &["percent", "peers"];

// What `read` takes, described for the scenario's JSON Schema.
/// The settings of a loss fault.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct Keys {
    /// The share of packets dropped, in percent (more than 0, at most 100).
    #[schemars(schema_with = "super::queued::percent_schema")]
    pub percent: f64,
    /// Only packets to these nodes (per link); all peers when absent.
    pub peers: Option<crate::schema::NodeNames>,
}

/// Reads `percent` (0-100] and the optional `peers` (nodes the dropped packets go to).
pub fn read(f: &Fields, cx: &ReadCtx, d: &mut Diagnostics) -> Settings {
    let probability = read_percent(f, "the share of packets dropped, in percent", d);
    let peers = read_peers(f, cx, d);
    Settings::Loss {
        probability: probability.unwrap_or(0.0),
        peers,
    }
}

pub struct Loss {
    id: usize,
    nodes: Vec<ClusterNode>,
    probability: f64,
    peers: Vec<String>,
    sidecars: Vec<Sidecar>,
    /// What the kernel counted, read just before the heal removed the rules.
    counted: Option<String>,
}

impl Loss {
    pub fn new(id: usize, nodes: Vec<ClusterNode>, probability: f64, peers: Vec<String>) -> Self {
        Loss {
            id,
            nodes,
            probability,
            peers,
            sidecars: Vec::new(),
            counted: None,
        }
    }
}

impl Loss {
    /// "dropped D of N packets sent (P %): n2 D/N, ..." from the rules' own counters: the
    /// deterministic proof that the loss took effect (a latency effect is only a figure).
    async fn read_counters(&self, ctx: &FaultCtx) -> String {
        let mut total = (0, 0);
        let mut per_node = Vec::new();
        for sidecar in &self.sidecars {
            let read = sidecar
                .sh(
                    ctx,
                    &drop_counters_script(self.id, "OUTPUT"),
                    "read the loss rule counters",
                )
                .await;
            match read.as_deref().map(parse_drop_counters) {
                Ok(Some((entered, dropped))) => {
                    total = (total.0 + entered, total.1 + dropped);
                    per_node.push(format!("{} {dropped}/{entered}", sidecar.node.name));
                }
                Ok(None) => per_node.push(format!("{} unreadable counters", sidecar.node.name)),
                Err(e) => per_node.push(format!("{} counters not read: {e}", sidecar.node.name)),
            }
        }
        let (entered, dropped) = total;
        let share = if entered > 0 {
            format!("{:.1} %", dropped as f64 * 100.0 / entered as f64)
        } else {
            "no packet sent".into()
        };
        format!(
            "dropped {dropped} of {entered} packets sent ({share}): {}",
            per_node.join(", ")
        )
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
        if !self.sidecars.is_empty() {
            self.counted = Some(self.read_counters(ctx).await);
        }
        undo_and_remove(
            &mut self.sidecars,
            ctx,
            &remove_script(self.id),
            "remove loss rules",
        )
        .await
    }

    fn healed_detail(&self) -> Option<String> {
        self.counted.clone()
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
