//! Partition: cuts links between nodes. Each blocked link `a -> b` is a DROP of packets from
//! `a`'s address in `b`'s INPUT, in a chain of this fault's own, set from a sidecar in `b`'s
//! network namespace. The harness's own host keeps reaching every node, so clients and probes
//! see the cluster from outside the partition.

use std::time::Instant;

use async_trait::async_trait;

use super::network::{install_script, remove_script, undo_and_remove, Sidecar};
use super::shapes::Blocked;
use super::{Fault, FaultCtx, FaultError};

pub struct Partition {
    id: usize,
    blocked: Blocked,
    description: String,
    sidecars: Vec<Sidecar>,
}

impl Partition {
    pub fn new(id: usize, blocked: Blocked, description: String) -> Self {
        Partition {
            id,
            blocked,
            description,
            sidecars: Vec::new(),
        }
    }
}

#[async_trait]
impl Fault for Partition {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        let mut plan = Vec::new();
        for node in &ctx.cluster.nodes {
            let rules: Vec<String> = self
                .blocked
                .iter()
                .filter(|(_, to)| *to == node.name)
                .filter_map(|(from, _)| ctx.cluster.node(from))
                .map(|from| format!("-s {} -j DROP", from.ip))
                .collect();
            if !rules.is_empty() {
                plan.push((node.clone(), rules));
            }
        }
        // Sidecars first, so the rules themselves go in as close together as possible.
        for (node, _) in &plan {
            let sidecar = Sidecar::start(ctx, node, &format!("partition{}", self.id)).await?;
            self.sidecars.push(sidecar);
        }
        let id = self.id;
        let applied = futures::future::join_all(self.sidecars.iter().zip(&plan).map(
            |(sidecar, (_, rules))| async move {
                sidecar
                    .sh(
                        ctx,
                        &install_script(id, rules, &[]),
                        "install partition rules",
                    )
                    .await?;
                Ok::<_, FaultError>(Instant::now())
            },
        ))
        .await;
        let mut latest = None;
        for r in applied {
            let t = r?;
            latest = Some(latest.map_or(t, |l: Instant| l.max(t)));
        }
        latest.ok_or_else(|| FaultError::NotApplied("the partition cuts no link".into()))
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        undo_and_remove(
            &mut self.sidecars,
            ctx,
            &remove_script(self.id),
            "remove partition rules",
        )
        .await
    }

    fn describe(&self) -> Option<String> {
        Some(self.description.clone())
    }
}
