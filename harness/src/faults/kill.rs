//! Kill: a signal to the node's main process (SIGKILL by default: a crash, no clean shutdown).
//! Heal starts the container again with its data intact.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{ensure_running, wait_state, Fault, FaultError};
use crate::cluster::docker::Backend;
use crate::cluster::ClusterNode;

pub struct Kill {
    pub signal: String,
}

#[async_trait]
impl Fault for Kill {
    async fn inject(&self, backend: &Backend, node: &ClusterNode) -> Result<Instant, FaultError> {
        backend
            .kill(&node.container, &node.name, &self.signal)
            .await?;
        let applied = Instant::now();
        // SIGKILL ends the process at once; a graceful signal gets time to shut down.
        let within = if self.signal == "SIGKILL" {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(30)
        };
        wait_state(backend, node, within, "stopped", |running, _| !running).await?;
        Ok(applied)
    }

    async fn heal(&self, backend: &Backend, node: &ClusterNode) -> Result<(), FaultError> {
        ensure_running(backend, node).await
    }
}
