//! Stop: SIGSTOP to the nodes' main process, which then sits in state T holding its sockets;
//! heal sends SIGCONT. Unlike `pause`, only the signalled process stops, and the kernel keeps
//! answering TCP on its behalf.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{on_all, Fault, FaultCtx, FaultError};
use crate::cluster::backend::ClusterBackend;
use crate::cluster::ClusterNode;

pub struct Stop {
    pub nodes: Vec<ClusterNode>,
}

/// Waits until the main process's state is (or is not) "stopped", as `docker top` shows it.
async fn wait_stopped(
    backend: &dyn ClusterBackend,
    node: &ClusterNode,
    want: bool,
) -> Result<(), FaultError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let states = backend.process_states(&node.container, &node.name).await?;
        let stopped = states.first().is_some_and(|s| s.starts_with('T'));
        if stopped == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(FaultError::NotApplied(format!(
                "node {}'s main process is {}stopped after 5 s (state {states:?})",
                node.name,
                if want { "not " } else { "still " }
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[async_trait]
impl Fault for Stop {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        on_all(&self.nodes, |node| async move {
            ctx.backend
                .kill(&node.container, &node.name, "SIGSTOP")
                .await?;
            let applied = Instant::now();
            wait_stopped(&*ctx.backend, node, true).await?;
            Ok(applied)
        })
        .await
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        on_all(&self.nodes, |node| async move {
            let (running, _) = ctx.backend.state(&node.container, &node.name).await?;
            if running {
                ctx.backend
                    .kill(&node.container, &node.name, "SIGCONT")
                    .await?;
                wait_stopped(&*ctx.backend, node, false).await?;
            }
            Ok(Instant::now())
        })
        .await
        .map(|_| ())
    }
}
