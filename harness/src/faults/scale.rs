//! Topology changes under load. `ScaleOut` starts spare nodes (created with the cluster, not
//! started); `ScaleIn` stops members gracefully. What makes them a change of the cluster and
//! not just a start or a stop is the family's part, run by the scheduler right after: waiting
//! until the cluster reports the new node joined, or removing the stopped node from the
//! cluster's membership and waiting until its data is re-placed. Neither is undone by a heal:
//! the cluster keeps its new shape.

use std::time::Instant;

use async_trait::async_trait;

use super::{ensure_running, on_all, stop_gracefully, Fault, FaultCtx, FaultError, Planned};
use crate::cluster::compose::Topology;
use crate::cluster::ClusterNode;
use crate::yaml::Diagnostics;

/// A scale-out starts spares (services with `profiles: [spare]`), named, once.
pub fn check_out(planned: &Planned, topology: &Topology, d: &mut Diagnostics) {
    let spares: Vec<&str> = topology
        .services
        .iter()
        .filter(|x| x.is_spare())
        .map(|x| x.name.as_str())
        .collect();
    let hint = if spares.is_empty() {
        "this topology has none: give a service `profiles: [spare]` so it is created but not started".to_string()
    } else {
        format!("spares here: {}", spares.join(", "))
    };
    match &planned.named {
        None => d.error(
            planned.pos,
            format!("scale-out: expected the spare node(s) to start by name ({hint})"),
        ),
        Some(names) => {
            for n in names.iter().filter(|n| !spares.contains(n)) {
                d.error(
                    planned.pos,
                    format!("scale-out: {n} is started with the cluster, not a spare ({hint})"),
                );
            }
        }
    }
    if planned.times > 1 {
        d.error(
            planned.pos,
            "scale-out: a spare can join only once; `times` must be 1",
        );
    }
}

/// A scale-in stops members once.
pub fn check_in(planned: &Planned, d: &mut Diagnostics) {
    if planned.times > 1 {
        d.error(
            planned.pos,
            "scale-in: a node can leave only once; `times` must be 1",
        );
    }
}

pub struct ScaleOut {
    pub nodes: Vec<ClusterNode>,
}

#[async_trait]
impl Fault for ScaleOut {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        on_all(&self.nodes, |node| async move {
            ensure_running(&*ctx.backend, node).await?;
            Ok(Instant::now())
        })
        .await
    }

    async fn heal(&mut self, _ctx: &FaultCtx) -> Result<(), FaultError> {
        Ok(())
    }
}

pub struct ScaleIn {
    pub nodes: Vec<ClusterNode>,
}

#[async_trait]
impl Fault for ScaleIn {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        on_all(&self.nodes, |node| stop_gracefully(ctx, node)).await
    }

    async fn heal(&mut self, _ctx: &FaultCtx) -> Result<(), FaultError> {
        Ok(())
    }
}
