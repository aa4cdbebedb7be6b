//! Restart: a graceful stop (SIGTERM, SIGKILL after 10 s) and a start. It heals itself; heal
//! only makes sure the node runs.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{ensure_running, wait_state, Fault, FaultError};
use crate::cluster::docker::Backend;
use crate::cluster::ClusterNode;

const GRACE_S: i32 = 10;

pub struct Restart;

#[async_trait]
impl Fault for Restart {
    async fn inject(&self, backend: &Backend, node: &ClusterNode) -> Result<Instant, FaultError> {
        backend.stop(&node.container, &node.name, GRACE_S).await?;
        let applied = Instant::now();
        wait_state(
            backend,
            node,
            Duration::from_secs(5),
            "stopped",
            |running, _| !running,
        )
        .await?;
        ensure_running(backend, node).await?;
        Ok(applied)
    }

    async fn heal(&self, backend: &Backend, node: &ClusterNode) -> Result<(), FaultError> {
        ensure_running(backend, node).await
    }
}
