//! The cluster backend seam: everything a run does to the machinery its nodes run on. Docker
//! (`docker.rs`) is the one backend today; a Kubernetes backend would be another
//! implementation, and faults, families and the checker would not change, because they reach
//! nodes only through [`ClusterBackend`].
//!
//! Every object a backend creates carries the run's labels, so teardown and `faultline clean`
//! remove exactly what the run made.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use super::compose::Topology;
use super::Cluster;
use crate::progress::Progress;

/// A backend call that failed, with what the harness was doing.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct BackendError {
    pub action: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl BackendError {
    pub fn new(
        action: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        BackendError {
            action: action.into(),
            source: source.into(),
        }
    }
}

/// An image of the topology as the backend resolved it.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResolvedImage {
    /// The image the topology names.
    pub requested: String,
    /// The image the nodes run.
    pub used: String,
    /// How it was obtained: "present", "pulled", "local equivalent", "built by recipe ...".
    pub source: String,
}

/// Where a `Share::NetworkWithHelper` sidecar finds faultline's own binary.
pub const HELPER: &str = "/usr/local/bin/faultline";

/// Which of the target's namespaces a sidecar joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    /// Its network namespace, with NET_ADMIN (iptables, tc).
    Network,
    /// Its network namespace, with NET_ADMIN, and faultline's own binary at
    /// [`HELPER`] (the packet program of the NFQUEUE faults).
    NetworkWithHelper,
    /// Its process namespace, with no added capability and no network (the node's files
    /// through /proc/1/root).
    Pid,
}

/// Objects of faultline runs: (id, run id, the pid of the faultline process that made it, only
/// while that same process still runs).
#[derive(Debug, Default)]
pub struct Leftovers {
    pub containers: Vec<(String, String, Option<u32>)>,
    pub networks: Vec<(String, String, Option<u32>)>,
}

/// What a run needs of the machinery its nodes run on. Nodes are named by the backend's id
/// for them (`id`) and by their name in the topology (`node`, for messages).
#[async_trait]
pub trait ClusterBackend: Send + Sync {
    /// Every image the topology names, present, pulled or built by a local recipe (build
    /// output in `log`).
    async fn images(
        &self,
        topology: &Topology,
        progress: &Progress,
        log: &Path,
    ) -> Result<BTreeMap<String, ResolvedImage>, BackendError>;

    /// The image the fault sidecars run (iptables, tc, a shell).
    async fn tools_image(
        &self,
        topology: &Topology,
        progress: &Progress,
        log: &Path,
    ) -> Result<String, BackendError>;

    /// Starts the topology as run `run_id`: a network of its own, every node at its fixed
    /// address, in dependency order. What was created before an error carries the run's
    /// labels, so [`ClusterBackend::remove_run`] removes it.
    async fn start_cluster(
        &self,
        run_id: &str,
        topology: &Topology,
        images: &BTreeMap<String, ResolvedImage>,
        ready_timeout: Duration,
        progress: &Progress,
    ) -> Result<Cluster, BackendError>;

    /// (running, paused).
    async fn state(&self, id: &str, node: &str) -> Result<(bool, bool), BackendError>;
    /// When the node's container has exited: its exit code and the last `lines` lines of its
    /// output (`None` while it runs).
    async fn exited(
        &self,
        _id: &str,
        _node: &str,
        _lines: usize,
    ) -> Result<Option<(i64, String)>, BackendError> {
        Ok(None)
    }
    async fn start(&self, id: &str, node: &str) -> Result<(), BackendError>;
    /// CPU seconds the node has used since it started (`None` when it is not running).
    async fn cpu_seconds(&self, id: &str, node: &str) -> Result<Option<f64>, BackendError>;
    /// Stops gracefully (SIGTERM, then SIGKILL after `grace_s`).
    async fn stop(&self, id: &str, node: &str, grace_s: i32) -> Result<(), BackendError>;
    /// Sends a signal to the node's main process.
    async fn kill(&self, id: &str, node: &str, signal: &str) -> Result<(), BackendError>;
    /// Freezes every process of the node.
    async fn pause(&self, id: &str, node: &str) -> Result<(), BackendError>;
    async fn unpause(&self, id: &str, node: &str) -> Result<(), BackendError>;
    /// The `ps` state (R, S, T...) of each process of the node, main process first.
    async fn process_states(&self, id: &str, node: &str) -> Result<Vec<String>, BackendError>;

    /// Runs a command in a container; its exit code and combined output.
    async fn exec(&self, id: &str, cmd: &[&str], what: &str)
        -> Result<(i64, String), BackendError>;
    /// Writes files (absolute path -> content) into a container, created or running.
    async fn write_files(
        &self,
        id: &str,
        files: &[(String, String)],
        what: &str,
    ) -> Result<(), BackendError>;

    /// The tar archive of `path` in a container, running or stopped (its entries named from
    /// `path`'s last component down), refused past `limit` bytes.
    async fn get_archive(
        &self,
        id: &str,
        path: &str,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, BackendError>;
    /// Unpacks a tar archive into directory `dir` of a container, running or stopped.
    async fn put_archive(
        &self,
        id: &str,
        dir: &str,
        tar: Vec<u8>,
        what: &str,
    ) -> Result<(), BackendError>;

    /// Starts a sidecar joined to the namespaces of the container `target` (node `node`),
    /// labelled with the run and `purpose`; returns its id. It idles until removed.
    async fn start_sidecar(
        &self,
        run_id: &str,
        target: &str,
        node: &str,
        purpose: &str,
        image: &str,
        share: Share,
    ) -> Result<String, BackendError>;
    async fn remove_container(&self, id: &str) -> Result<(), BackendError>;

    /// Removes every object of `run_id` (of every run when `None`): (containers, networks).
    async fn remove_run(&self, run_id: Option<&str>) -> Result<(usize, usize), BackendError>;
    /// Objects runs left behind (of `run_id` only when given).
    async fn leftovers(&self, run_id: Option<&str>) -> Result<Leftovers, BackendError>;
}
