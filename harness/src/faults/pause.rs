//! Pause: every process of the nodes frozen by the cgroup freezer. Connections stay open but
//! nothing answers, so peers only notice through their own timeouts. Heal thaws them.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{on_all, wait_state, Fault, FaultCtx, FaultError};
use crate::cluster::ClusterNode;

pub struct Pause {
    pub nodes: Vec<ClusterNode>,
}

#[async_trait]
impl Fault for Pause {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        on_all(&self.nodes, |node| async move {
            ctx.backend.pause(&node.container, &node.name).await?;
            let applied = Instant::now();
            wait_state(
                &*ctx.backend,
                node,
                Duration::from_secs(5),
                "paused",
                |_, p| p,
            )
            .await?;
            Ok(applied)
        })
        .await
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        on_all(&self.nodes, |node| async move {
            let (_, paused) = ctx.backend.state(&node.container, &node.name).await?;
            if paused {
                ctx.backend.unpause(&node.container, &node.name).await?;
            }
            wait_state(
                &*ctx.backend,
                node,
                Duration::from_secs(5),
                "thawed",
                |_, p| !p,
            )
            .await?;
            Ok(Instant::now())
        })
        .await
        .map(|_| ())
    }
}
