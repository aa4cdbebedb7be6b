//! Restart: a graceful stop (SIGTERM, SIGKILL after 10 s) and a start. It heals itself; heal
//! only makes sure the nodes run.

use std::time::Instant;

use async_trait::async_trait;

use super::{ensure_running, on_all, start_all, stop_gracefully, Fault, FaultCtx, FaultError};
use crate::cluster::ClusterNode;

pub struct Restart {
    pub nodes: Vec<ClusterNode>,
}

#[async_trait]
impl Fault for Restart {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        on_all(&self.nodes, |node| async move {
            let applied = stop_gracefully(ctx, node).await?;
            ensure_running(&*ctx.backend, node).await?;
            Ok(applied)
        })
        .await
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        start_all(ctx, &self.nodes).await
    }
}
