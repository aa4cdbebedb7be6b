//! Pause: every process of the node frozen by the cgroup freezer. Connections stay open but
//! nothing answers, so peers only notice through their own timeouts. Heal thaws it.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{wait_state, Fault, FaultError};
use crate::cluster::docker::Backend;
use crate::cluster::ClusterNode;

pub struct Pause;

#[async_trait]
impl Fault for Pause {
    async fn inject(&self, backend: &Backend, node: &ClusterNode) -> Result<Instant, FaultError> {
        backend.pause(&node.container, &node.name).await?;
        let applied = Instant::now();
        wait_state(
            backend,
            node,
            Duration::from_secs(5),
            "paused",
            |_, paused| paused,
        )
        .await?;
        Ok(applied)
    }

    async fn heal(&self, backend: &Backend, node: &ClusterNode) -> Result<(), FaultError> {
        let (_, paused) = backend.state(&node.container, &node.name).await?;
        if paused {
            backend.unpause(&node.container, &node.name).await?;
        }
        wait_state(
            backend,
            node,
            Duration::from_secs(5),
            "thawed",
            |_, paused| !paused,
        )
        .await
    }
}
