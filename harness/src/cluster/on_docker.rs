//! The Docker backend behind the backend seam: [`ClusterBackend`] for [`DockerBackend`], over
//! the Docker calls in `docker.rs`, the image resolution in `images.rs` and the cluster start
//! in `mod.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

use super::backend::{BackendError, ClusterBackend, Leftovers, ResolvedImage, Share};
use super::compose::Topology;
use super::docker::{DockerBackend, DockerError};
use super::images;
use super::Cluster;
use crate::progress::Progress;

impl From<DockerError> for BackendError {
    fn from(e: DockerError) -> Self {
        BackendError::new(e.action, e.source)
    }
}

#[async_trait]
impl ClusterBackend for DockerBackend {
    async fn images(
        &self,
        topology: &Topology,
        progress: &Progress,
        log: &Path,
    ) -> Result<BTreeMap<String, ResolvedImage>, BackendError> {
        images::ensure(self, topology, progress, log)
            .await
            .map_err(|e| BackendError::new("prepare the images", e))
    }

    async fn tools_image(
        &self,
        topology: &Topology,
        progress: &Progress,
        log: &Path,
    ) -> Result<String, BackendError> {
        images::ensure_tools(self, topology, progress, log)
            .await
            .map_err(|e| BackendError::new("prepare the fault sidecars' image", e))
    }

    async fn start_cluster(
        &self,
        run_id: &str,
        topology: &Topology,
        images: &BTreeMap<String, ResolvedImage>,
        ready_timeout: Duration,
        progress: &Progress,
    ) -> Result<Cluster, BackendError> {
        Cluster::start(self, run_id, topology, images, ready_timeout, progress)
            .await
            .map_err(|e| BackendError::new("start the cluster", e))
    }

    async fn state(&self, id: &str, node: &str) -> Result<(bool, bool), BackendError> {
        Ok(DockerBackend::state(self, id, node).await?)
    }

    async fn exited(
        &self,
        id: &str,
        node: &str,
        lines: usize,
    ) -> Result<Option<(i64, String)>, BackendError> {
        Ok(DockerBackend::exited(self, id, node, lines).await?)
    }

    async fn cpu_seconds(&self, id: &str, node: &str) -> Result<Option<f64>, BackendError> {
        Ok(DockerBackend::cpu_seconds(self, id, node).await?)
    }

    async fn start(&self, id: &str, node: &str) -> Result<(), BackendError> {
        Ok(DockerBackend::start(self, id, node).await?)
    }

    async fn stop(&self, id: &str, node: &str, grace_s: i32) -> Result<(), BackendError> {
        Ok(DockerBackend::stop(self, id, node, grace_s).await?)
    }

    async fn kill(&self, id: &str, node: &str, signal: &str) -> Result<(), BackendError> {
        Ok(DockerBackend::kill(self, id, node, signal).await?)
    }

    async fn pause(&self, id: &str, node: &str) -> Result<(), BackendError> {
        Ok(DockerBackend::pause(self, id, node).await?)
    }

    async fn unpause(&self, id: &str, node: &str) -> Result<(), BackendError> {
        Ok(DockerBackend::unpause(self, id, node).await?)
    }

    async fn process_states(&self, id: &str, node: &str) -> Result<Vec<String>, BackendError> {
        Ok(DockerBackend::process_states(self, id, node).await?)
    }

    async fn exec(
        &self,
        id: &str,
        cmd: &[&str],
        what: &str,
    ) -> Result<(i64, String), BackendError> {
        Ok(DockerBackend::exec(self, id, cmd, what).await?)
    }

    async fn write_files(
        &self,
        id: &str,
        files: &[(String, String)],
        what: &str,
    ) -> Result<(), BackendError> {
        Ok(DockerBackend::write_files(self, id, files, what).await?)
    }

    async fn get_archive(
        &self,
        id: &str,
        path: &str,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, BackendError> {
        Ok(DockerBackend::get_archive(self, id, path, limit, what).await?)
    }

    async fn put_archive(
        &self,
        id: &str,
        dir: &str,
        tar: Vec<u8>,
        what: &str,
    ) -> Result<(), BackendError> {
        Ok(DockerBackend::put_archive(self, id, dir, tar, what).await?)
    }

    async fn start_sidecar(
        &self,
        run_id: &str,
        target: &str,
        node: &str,
        purpose: &str,
        image: &str,
        share: Share,
    ) -> Result<String, BackendError> {
        Ok(DockerBackend::start_sidecar(self, run_id, target, node, purpose, image, share).await?)
    }

    async fn remove_container(&self, id: &str) -> Result<(), BackendError> {
        Ok(DockerBackend::remove_container(self, id).await?)
    }

    async fn remove_run(&self, run_id: Option<&str>) -> Result<(usize, usize), BackendError> {
        Ok(DockerBackend::remove_run(self, run_id).await?)
    }

    async fn leftovers(&self, run_id: Option<&str>) -> Result<Leftovers, BackendError> {
        Ok(DockerBackend::leftovers(self, run_id).await?)
    }
}
