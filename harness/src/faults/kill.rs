//! Kill: a signal to the nodes' main process (SIGKILL by default: a crash, no clean shutdown).
//! Several targets are signalled at once (a coordinated crash). Heal starts them again with
//! their data intact.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{on_all, start_all, wait_state, Fault, FaultCtx, FaultError};
use crate::cluster::ClusterNode;

pub struct Kill {
    pub signal: String,
    pub nodes: Vec<ClusterNode>,
}

#[async_trait]
impl Fault for Kill {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        // SIGKILL ends the process at once; a graceful signal gets time to shut down.
        let within = if self.signal == "SIGKILL" {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(30)
        };
        let signal = self.signal.as_str();
        on_all(&self.nodes, |node| async move {
            ctx.backend
                .kill(&node.container, &node.name, signal)
                .await?;
            let applied = Instant::now();
            wait_state(&ctx.backend, node, within, "stopped", |running, _| !running).await?;
            Ok(applied)
        })
        .await
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        start_all(ctx, &self.nodes).await
    }
}
