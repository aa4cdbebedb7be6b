//! Topology changes under load. `ScaleOut` starts spare nodes (created with the cluster, not
//! started); `ScaleIn` stops members gracefully. What makes them a change of the cluster and
//! not just a start or a stop is the family's part, run by the scheduler right after: waiting
//! until the cluster reports the new node joined, or removing the stopped node from the
//! cluster's membership and waiting until its data is re-placed. Neither is undone by a heal:
//! the cluster keeps its new shape.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{ensure_running, on_all, wait_state, Fault, FaultCtx, FaultError};
use crate::cluster::ClusterNode;

const GRACE_S: i32 = 10;

pub struct ScaleOut {
    pub nodes: Vec<ClusterNode>,
}

#[async_trait]
impl Fault for ScaleOut {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        on_all(&self.nodes, |node| async move {
            ensure_running(&ctx.backend, node).await?;
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
        on_all(&self.nodes, |node| async move {
            ctx.backend
                .stop(&node.container, &node.name, GRACE_S)
                .await?;
            let stopped = Instant::now();
            wait_state(
                &ctx.backend,
                node,
                Duration::from_secs(5),
                "stopped",
                |r, _| !r,
            )
            .await?;
            Ok(stopped)
        })
        .await
    }

    async fn heal(&mut self, _ctx: &FaultCtx) -> Result<(), FaultError> {
        Ok(())
    }
}
