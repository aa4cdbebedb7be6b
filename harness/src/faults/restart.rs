//! Restart: a graceful stop (SIGTERM, SIGKILL after 10 s) and a start. It heals itself; heal
//! only makes sure the nodes run.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{ensure_running, on_all, start_all, wait_state, Fault, FaultCtx, FaultError};
use crate::cluster::ClusterNode;

const GRACE_S: i32 = 10;

pub struct Restart {
    pub nodes: Vec<ClusterNode>,
}

#[async_trait]
impl Fault for Restart {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        on_all(&self.nodes, |node| async move {
            ctx.backend
                .stop(&node.container, &node.name, GRACE_S)
                .await?;
            let applied = Instant::now();
            wait_state(
                &ctx.backend,
                node,
                Duration::from_secs(5),
                "stopped",
                |r, _| !r,
            )
            .await?;
            ensure_running(&ctx.backend, node).await?;
            Ok(applied)
        })
        .await
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        start_all(ctx, &self.nodes).await
    }
}
