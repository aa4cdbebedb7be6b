//! Topology changes under load. `ScaleOut` starts spare nodes (created with the cluster, not
//! started); `ScaleIn` stops members gracefully. What makes them a change of the cluster and
//! not just a start or a stop is the family's part, run by the scheduler right after: waiting
//! until the cluster reports the new node joined, or removing the stopped node from the
//! cluster's membership and waiting until its data is re-placed. Neither is undone by a heal:
//! the cluster keeps its new shape.

use std::time::Instant;

use async_trait::async_trait;

use super::{ensure_running, on_all, stop_gracefully, Fault, FaultCtx, FaultError};
use crate::cluster::ClusterNode;

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
        on_all(&self.nodes, |node| stop_gracefully(ctx, node)).await
    }

    async fn heal(&mut self, _ctx: &FaultCtx) -> Result<(), FaultError> {
        Ok(())
    }
}
