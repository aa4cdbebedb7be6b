//! Faults: each one a small unit that injects, verifies it took effect, and heals
//! idempotently (heal runs again at teardown, whatever state the run stopped in).

mod kill;
mod pause;
mod restart;

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::cluster::docker::{Backend, DockerError};
use crate::cluster::ClusterNode;
use crate::scenario::{FaultKind, FaultSpec};

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("{0}")]
    NotApplied(String),
}

#[async_trait]
pub trait Fault: Send + Sync {
    /// Applies the fault to `node`, verifies that Docker reports it in effect, and returns
    /// when the call that applied it returned: that instant is `t_fault` (MEASUREMENT.md), not
    /// the end of the verification.
    async fn inject(&self, backend: &Backend, node: &ClusterNode) -> Result<Instant, FaultError>;
    /// Undoes the fault; does nothing if it is not in effect.
    async fn heal(&self, backend: &Backend, node: &ClusterNode) -> Result<(), FaultError>;
}

pub fn build(spec: &FaultSpec) -> Box<dyn Fault> {
    match spec.kind {
        FaultKind::Kill => Box::new(kill::Kill {
            signal: spec.signal.clone(),
        }),
        FaultKind::Pause => Box::new(pause::Pause),
        FaultKind::Restart => Box::new(restart::Restart),
    }
}

/// Polls the container's state until `want(running, paused)` holds or `within` passes.
async fn wait_state(
    backend: &Backend,
    node: &ClusterNode,
    within: Duration,
    what: &str,
    want: impl Fn(bool, bool) -> bool,
) -> Result<(), FaultError> {
    let deadline = Instant::now() + within;
    loop {
        let (running, paused) = backend.state(&node.container, &node.name).await?;
        if want(running, paused) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(FaultError::NotApplied(format!(
                "node {} is not {what} after {within:?} (running: {running}, paused: {paused})",
                node.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a node that is not running (the heal of kill and restart).
async fn ensure_running(backend: &Backend, node: &ClusterNode) -> Result<(), FaultError> {
    let (running, paused) = backend.state(&node.container, &node.name).await?;
    if paused {
        backend.unpause(&node.container, &node.name).await?;
    }
    if !running {
        backend.start(&node.container, &node.name).await?;
    }
    wait_state(backend, node, Duration::from_secs(10), "running", |r, p| {
        r && !p
    })
    .await
}
