//! Power loss: what a node had not fsynced is gone, and the node stops at once. Unlike `kill`
//! (a process crash, after which the kernel's page cache still writes everything out), this
//! finds the bugs of a broker that acknowledges what is not yet on disk.
//!
//! It needs the targets' data directory on faultline's durability layer (`powerfs`,
//! `x-faultline.durability` in the topology). Inject asks every target's layer to cut the
//! power (each file back to its last fsync, no answer to any file operation after), all
//! targets first, then kills them all (a coordinated power failure when there are several);
//! heal starts them again and reads back the probe each layer wrote before its cut: the synced
//! write must be there and the one not synced gone.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{start_all, Fault, FaultCtx, FaultError, Planned};
use crate::cluster::backend::HELPER;
use crate::cluster::compose::Topology;
use crate::cluster::ClusterNode;
use crate::powerfs::CutReport;
use crate::yaml::Diagnostics;

/// Every target must keep its data on the layer.
pub fn check_topology(planned: &Planned, topology: &Topology, d: &mut Diagnostics) {
    let not_durable: Vec<&str> = topology
        .services
        .iter()
        .filter(|s| match &planned.named {
            Some(names) => names.contains(&s.name.as_str()),
            None => !s.is_spare(),
        })
        .filter(|s| s.durable.is_none())
        .map(|s| s.name.as_str())
        .collect();
    if !not_durable.is_empty() {
        d.error(
            planned.pos,
            format!(
                "power-loss needs each target's data directory on faultline's durability layer, and {} {} not: add `durability: {{path: /data}}` (the node's data directory) to the topology's x-faultline block; the nodes then run with /dev/fuse and SYS_ADMIN",
                not_durable.join(", "),
                if not_durable.len() == 1 { "is" } else { "are" }
            ),
        );
    }
}

pub struct PowerLoss {
    nodes: Vec<ClusterNode>,
    /// Per node, what its layer rolled back at the cut.
    cuts: Vec<(String, CutReport)>,
    /// Per node, the probe read back after the restart.
    probes: Vec<(String, String)>,
    /// A cut was made and its probe not read back yet (heal may run twice).
    unchecked: bool,
}

impl PowerLoss {
    pub fn new(nodes: Vec<ClusterNode>) -> Self {
        PowerLoss {
            nodes,
            cuts: Vec::new(),
            probes: Vec::new(),
            unchecked: false,
        }
    }
}

/// Runs `faultline powerfs WHAT` in the node and parses its one JSON line.
async fn ask(
    ctx: &FaultCtx,
    node: &ClusterNode,
    what: &str,
) -> Result<serde_json::Value, FaultError> {
    let (code, out) = ctx
        .backend
        .exec(
            &node.container,
            &[HELPER, "powerfs", what],
            &format!("{what} the durability layer of node {}", node.name),
        )
        .await?;
    let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    let value: serde_json::Value = serde_json::from_str(line).map_err(|_| {
        FaultError::NotApplied(format!(
            "node {}: the durability layer did not answer {what} (exit {code}): {}",
            node.name,
            out.trim()
        ))
    })?;
    if let Some(e) = value.get("error") {
        return Err(FaultError::NotApplied(format!(
            "node {}: the durability layer refused {what}: {e}",
            node.name
        )));
    }
    Ok(value)
}

fn mib(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    }
}

#[async_trait]
impl Fault for PowerLoss {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        // Every target's power first, then every process: the cuts are one instant for the
        // cluster (no target answers a file operation after its cut).
        let cuts = futures::future::join_all(self.nodes.iter().map(|n| ask(ctx, n, "cut"))).await;
        self.cuts.clear();
        for (node, cut) in self.nodes.iter().zip(cuts) {
            let report: CutReport = serde_json::from_value(cut?).map_err(|e| {
                FaultError::NotApplied(format!("node {}: cut report: {e}", node.name))
            })?;
            self.cuts.push((node.name.clone(), report));
        }
        self.unchecked = true;
        super::kill::signal_all(ctx, &self.nodes, "SIGKILL", Duration::from_secs(5)).await
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        start_all(ctx, &self.nodes).await?;
        if !self.unchecked {
            return Ok(());
        }
        let probes =
            futures::future::join_all(self.nodes.iter().map(|n| ask(ctx, n, "check"))).await;
        self.probes.clear();
        let mut wrong = Vec::new();
        for (node, probe) in self.nodes.iter().zip(probes) {
            let verdict = probe?
                .get("probe")
                .and_then(|v| v.as_str())
                .unwrap_or("unreadable")
                .to_string();
            if verdict != "kept" {
                wrong.push(format!("{}: {verdict}", node.name));
            }
            self.probes.push((node.name.clone(), verdict));
        }
        self.unchecked = false;
        if !wrong.is_empty() {
            return Err(FaultError::NotApplied(format!(
                "the power loss did not do what it says: the probe written before the cut (one write synced, one not) read back as {}",
                wrong.join(", ")
            )));
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        if self.cuts.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .cuts
            .iter()
            .map(|(node, c)| {
                let r = &c.rollback;
                let mut text = format!(
                    "{node}: {} file(s) back to their last fsync, {} written since lost",
                    r.files,
                    mib(r.appended_bytes_lost)
                );
                if r.restored_bytes > 0 {
                    text += &format!(
                        ", {} of overwritten synced data put back",
                        mib(r.restored_bytes)
                    );
                }
                if r.written_back_files > 0 {
                    text += &format!(
                        ", {} file(s) written back earlier (old enough for the writeback model, or the journal full)",
                        r.written_back_files
                    );
                }
                if !r.most.is_empty() {
                    let named: Vec<String> = r
                        .most
                        .iter()
                        .map(|(file, bytes)| format!("{file} {}", mib(*bytes)))
                        .collect();
                    text += &format!(" (most: {})", named.join(", "));
                }
                if !r.errors.is_empty() {
                    text += &format!(", not rolled back: {}", r.errors.join("; "));
                }
                text
            })
            .collect();
        Some(format!(
            "power cut (un-synced writes discarded, then SIGKILL): {}",
            parts.join("; ")
        ))
    }

    fn healed_detail(&self) -> Option<String> {
        (!self.probes.is_empty()).then(|| {
            format!(
                "probe after the restart: synced write kept, the one not synced gone, on {}",
                self.probes
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
}
