//! Faults: each one a small unit that injects, verifies it took effect, and heals
//! idempotently (heal runs again at teardown, whatever state the run stopped in).
//!
//! Process faults (kill, pause, stop, restart) act through Docker; network faults (partition,
//! loss, bandwidth) through iptables and tc run from a sidecar in the target's network
//! namespace, so they work with any broker image, official ones included; disk-full from a
//! sidecar in the target's process namespace. Topology changes (scale-out, scale-in) start or
//! stop nodes here; the family's part of them runs in the scheduler.

pub mod bandwidth;
pub mod clock;
mod disk;
mod kill;
mod loss;
mod network;
mod partition;
mod pause;
mod restart;
mod scale;
pub mod shapes;
mod stop;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::cluster::docker::{Backend, DockerError};
use crate::cluster::{Cluster, ClusterNode};
use crate::scenario::{FaultKind, FaultSpec};

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("{0}")]
    NotApplied(String),
}

/// What a fault may use: Docker, the cluster's nodes, and the image its sidecars run.
#[derive(Clone)]
pub struct FaultCtx {
    pub backend: Backend,
    pub run_id: String,
    pub cluster: Arc<Cluster>,
    /// An image with iptables and tc (the Debian base), for network faults.
    pub tools_image: Option<String>,
    /// The broker's client port: what a client partition cuts.
    pub client_port: u16,
}

#[async_trait]
pub trait Fault: Send + Sync {
    /// Applies the fault, verifies that it is in effect, and returns when the call that
    /// applied it returned: that instant is `t_fault` (MEASUREMENT.md), not the end of the
    /// verification.
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError>;
    /// Undoes the fault and verifies it is gone; does nothing if it is not in effect.
    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError>;
    /// What exactly was done, in words, when the target alone does not say it.
    fn describe(&self) -> Option<String> {
        None
    }
    /// What the heal found, when there is more to say than that it healed.
    fn healed_detail(&self) -> Option<String> {
        None
    }
}

/// A fault for one occurrence of `spec`, on already resolved nodes. `id` is unique in the run
/// (it names the fault's iptables chains).
pub fn build(
    spec: &FaultSpec,
    id: usize,
    targets: Vec<ClusterNode>,
    partition: Option<(shapes::Blocked, String)>,
) -> Box<dyn Fault> {
    match spec.kind {
        FaultKind::Kill => Box::new(kill::Kill {
            signal: spec.signal.clone(),
            nodes: targets,
        }),
        FaultKind::Pause => Box::new(pause::Pause { nodes: targets }),
        FaultKind::Stop => Box::new(stop::Stop { nodes: targets }),
        FaultKind::Restart | FaultKind::RollingRestart => {
            Box::new(restart::Restart { nodes: targets })
        }
        FaultKind::Partition if spec.shape == Some(crate::scenario::ShapeSpec::Client) => {
            Box::new(partition::Partition::client(id, targets))
        }
        FaultKind::Partition => {
            let (blocked, description) = partition.unwrap_or_default();
            Box::new(partition::Partition::new(id, blocked, description))
        }
        FaultKind::Loss => Box::new(loss::Loss::new(
            id,
            targets,
            spec.probability.unwrap_or(0.0),
            spec.peers.clone(),
        )),
        FaultKind::Bandwidth => Box::new(bandwidth::Bandwidth::new(
            targets,
            spec.rate.clone().unwrap_or_default(),
        )),
        FaultKind::DiskFull => Box::new(disk::DiskFull::new(
            id,
            targets,
            spec.path.clone().unwrap_or_else(|| "/data".into()),
        )),
        FaultKind::ScaleOut => Box::new(scale::ScaleOut { nodes: targets }),
        FaultKind::ScaleIn => Box::new(scale::ScaleIn { nodes: targets }),
        FaultKind::ClockSkew => Box::new(clock::ClockSkew::new(
            targets,
            spec.offset_s.unwrap_or(0.0),
            spec.drift_s,
        )),
    }
}

/// Runs `f` on every node at once; returns the latest instant any call returned.
async fn on_all<'a, F, Fut>(nodes: &'a [ClusterNode], f: F) -> Result<Instant, FaultError>
where
    F: Fn(&'a ClusterNode) -> Fut,
    Fut: std::future::Future<Output = Result<Instant, FaultError>>,
{
    let results = futures::future::join_all(nodes.iter().map(f)).await;
    let mut latest = None;
    for r in results {
        let t = r?;
        latest = Some(latest.map_or(t, |l: Instant| l.max(t)));
    }
    latest.ok_or_else(|| FaultError::NotApplied("no target node".into()))
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

/// The heal of faults that stop nodes (kill, restart): start every target not running.
async fn start_all(ctx: &FaultCtx, nodes: &[ClusterNode]) -> Result<(), FaultError> {
    on_all(nodes, |node| async move {
        ensure_running(&ctx.backend, node).await?;
        Ok(Instant::now())
    })
    .await
    .map(|_| ())
}

/// Grace period of a graceful stop, after which Docker sends SIGKILL.
const GRACE_S: i32 = 10;

/// Stops a node gracefully (SIGTERM, SIGKILL after 10 s) and checks it stopped; returns when
/// Docker's stop call returned.
async fn stop_gracefully(ctx: &FaultCtx, node: &ClusterNode) -> Result<Instant, FaultError> {
    ctx.backend
        .stop(&node.container, &node.name, GRACE_S)
        .await?;
    let stopped = Instant::now();
    wait_state(
        &ctx.backend,
        node,
        Duration::from_secs(5),
        "stopped",
        |r, _| !r,
    )
    .await?;
    Ok(stopped)
}

/// Starts a node that is not running.
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
