//! The Kubernetes backend behind the backend seam: [`ClusterBackend`] for
//! [`KubernetesBackend`], over the Kubernetes API (kube). A run's objects live in a namespace
//! of its own, named from the run id, so removing the run is deleting it.
//!
//! What maps onto plain API calls is here: the nodes as StatefulSets (`objects.rs`) started
//! and awaited, their state and exit from the pods' status, stop and start as StatefulSet
//! scales, cleanup by namespace. What needs the fault containers of the design (a signal, a
//! freeze, a command, files in or out of a node, a sidecar) answers that it is not built, and
//! names the mechanism it would use. None of it has run against a real cluster.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};

use super::objects::{self, NodeImage};
use super::{dns_label, KubernetesBackend, BROKER};
use crate::cluster::backend::{BackendError, ClusterBackend, Leftovers, ResolvedImage, Share};
use crate::cluster::compose::Topology;
use crate::cluster::{Cluster, ClusterNode};
use crate::progress::Progress;

/// The namespace of run `run_id`.
pub fn namespace_of(run_id: &str) -> String {
    dns_label(run_id, 63)
}

/// A node's id on this backend: `<namespace>/<node>`, its StatefulSet and (with `-0`) its pod.
fn split(id: &str) -> Result<(&str, &str), BackendError> {
    id.split_once('/')
        .ok_or_else(|| BackendError::new(format!("read node id {id}"), "expected namespace/node"))
}

fn not_built(what: &str, would: &str) -> BackendError {
    BackendError::new(
        format!("{what} on Kubernetes"),
        format!("not built yet: it would use {would} (docs/design/kubernetes.md)"),
    )
}

fn api_error(action: String) -> impl FnOnce(kube::Error) -> BackendError {
    move |e| BackendError::new(action, e)
}

/// The broker container's state in a pod: (running, exit code when it has terminated).
pub fn broker_state(pod: &Pod) -> (bool, Option<i32>) {
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == BROKER));
    let state = status.and_then(|s| s.state.as_ref());
    let running = state.is_some_and(|s| s.running.is_some());
    let exited = state
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    (running, exited)
}

/// The pod's IP once it is ready.
pub fn ready_ip(pod: &Pod) -> Option<std::net::Ipv4Addr> {
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .as_ref()?
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    status.pod_ip.as_ref()?.parse().ok()
}

impl KubernetesBackend {
    async fn scale(&self, ns: &str, node: &str, replicas: i32) -> Result<(), BackendError> {
        let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        sets.patch_scale(
            node,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
        )
        .await
        .map(|_| ())
        .map_err(api_error(format!("scale node {node} to {replicas}")))
    }
}

#[async_trait]
impl ClusterBackend for KubernetesBackend {
    async fn images(
        &self,
        topology: &Topology,
        _progress: &Progress,
        _log: &Path,
    ) -> Result<BTreeMap<String, ResolvedImage>, BackendError> {
        // The cluster's nodes pull them; a local recipe's image must have been pushed where
        // they can.
        Ok(topology
            .services
            .iter()
            .map(|s| {
                let image = ResolvedImage {
                    requested: s.image.clone(),
                    used: s.image.clone(),
                    source: "pulled by the cluster's nodes".into(),
                };
                (s.image.clone(), image)
            })
            .collect())
    }

    async fn tools_image(
        &self,
        _topology: &Topology,
        _progress: &Progress,
        _log: &Path,
    ) -> Result<String, BackendError> {
        Ok(self.options.faultline_image.clone())
    }

    async fn start_cluster(
        &self,
        run_id: &str,
        topology: &Topology,
        images: &BTreeMap<String, ResolvedImage>,
        ready_timeout: Duration,
        progress: &Progress,
    ) -> Result<Cluster, BackendError> {
        let ns = namespace_of(run_id);
        let run = run_id;
        let create = |what: &str| format!("create {what} in namespace {ns}");
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &objects::namespace(&ns, run))
            .await
            .map_err(api_error(format!("create namespace {ns}")))?;
        let pp = PostParams::default();
        let mut notes = Vec::new();
        for s in &topology.services {
            if s.durable.is_some() {
                return Err(not_built(
                    &format!("the durability layer of node {}", s.name),
                    "the image's entry point read from its registry, and a FUSE device plugin",
                ));
            }
            let image = NodeImage {
                image: images
                    .get(&s.image)
                    .map_or(s.image.clone(), |i| i.used.clone()),
                runs: None,
            };
            if let Some(cm) = objects::files(&ns, run, s) {
                Api::<ConfigMap>::namespaced(self.client.clone(), &ns)
                    .create(&pp, &cm)
                    .await
                    .map_err(api_error(create(&format!("the files of node {}", s.name))))?;
            }
            Api::<Service>::namespaced(self.client.clone(), &ns)
                .create(&pp, &objects::service(&ns, run, &s.name))
                .await
                .map_err(api_error(create(&format!(
                    "the service of node {}",
                    s.name
                ))))?;
            let set = objects::stateful_set(&ns, run, s, &image, &self.options, &mut notes)
                .map_err(|e| BackendError::new(format!("node {}", s.name), e))?;
            Api::<StatefulSet>::namespaced(self.client.clone(), &ns)
                .create(&pp, &set)
                .await
                .map_err(api_error(create(&format!("node {}", s.name))))?;
        }
        for (node, note) in notes {
            progress.note(&format!("{node}: {note}"));
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let deadline = tokio::time::Instant::now() + ready_timeout;
        let mut nodes = Vec::new();
        for s in &topology.services {
            let pod_name = format!("{}-0", s.name);
            let ip = loop {
                if s.is_spare() {
                    break std::net::Ipv4Addr::UNSPECIFIED;
                }
                if let Ok(pod) = pods.get(&pod_name).await {
                    if let Some(ip) = ready_ip(&pod) {
                        break ip;
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(BackendError::new(
                        format!("start node {}", s.name),
                        format!("pod {ns}/{pod_name} not ready within {ready_timeout:?}"),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            nodes.push(ClusterNode {
                name: s.name.clone(),
                container: format!("{ns}/{}", s.name),
                ip,
            });
        }
        Ok(Cluster::of("the cluster's pod network", nodes))
    }

    async fn state(&self, id: &str, node: &str) -> Result<(bool, bool), BackendError> {
        let (ns, name) = split(id)?;
        let pod = Api::<Pod>::namespaced(self.client.clone(), ns)
            .get_opt(&format!("{name}-0"))
            .await
            .map_err(api_error(format!("read the state of node {node}")))?;
        Ok((pod.as_ref().is_some_and(|p| broker_state(p).0), false))
    }

    async fn exited(
        &self,
        id: &str,
        node: &str,
        lines: usize,
    ) -> Result<Option<(i64, String)>, BackendError> {
        let (ns, name) = split(id)?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod_name = format!("{name}-0");
        let Some(pod) = pods
            .get_opt(&pod_name)
            .await
            .map_err(api_error(format!("read the state of node {node}")))?
        else {
            return Ok(None);
        };
        let Some(code) = broker_state(&pod).1 else {
            return Ok(None);
        };
        let params = LogParams {
            container: Some(BROKER.into()),
            tail_lines: Some(lines as i64),
            ..Default::default()
        };
        let log = pods.logs(&pod_name, &params).await.unwrap_or_default();
        Ok(Some((code as i64, log)))
    }

    async fn start(&self, id: &str, _node: &str) -> Result<(), BackendError> {
        let (ns, name) = split(id)?;
        self.scale(ns, name, 1).await
    }

    async fn cpu_seconds(&self, _id: &str, _node: &str) -> Result<Option<f64>, BackendError> {
        // The metrics API is optional in a cluster; a run reports the CPU it could not read
        // as unknown.
        Ok(None)
    }

    async fn stop(&self, id: &str, _node: &str, _grace_s: i32) -> Result<(), BackendError> {
        // Scaled to 0: the pod ends with the template's grace period, its claim kept.
        let (ns, name) = split(id)?;
        self.scale(ns, name, 0).await
    }

    async fn kill(&self, _id: &str, _node: &str, _signal: &str) -> Result<(), BackendError> {
        Err(not_built(
            "a signal to a node",
            "an ephemeral container signalling the broker's processes through the pod's shared process namespace",
        ))
    }

    async fn pause(&self, _id: &str, _node: &str) -> Result<(), BackendError> {
        Err(not_built(
            "pause",
            "a privileged ephemeral container writing the broker cgroup's cgroup.freeze",
        ))
    }

    async fn unpause(&self, _id: &str, _node: &str) -> Result<(), BackendError> {
        Err(not_built(
            "unpause",
            "the same ephemeral container as pause",
        ))
    }

    async fn process_states(&self, _id: &str, _node: &str) -> Result<Vec<String>, BackendError> {
        Err(not_built(
            "process states",
            "an ephemeral container reading /proc",
        ))
    }

    async fn exec(
        &self,
        _id: &str,
        _cmd: &[&str],
        what: &str,
    ) -> Result<(i64, String), BackendError> {
        Err(not_built(what, "pods/exec (kube's `ws` feature)"))
    }

    async fn write_files(
        &self,
        _id: &str,
        _files: &[(String, String)],
        what: &str,
    ) -> Result<(), BackendError> {
        Err(not_built(what, "a ConfigMap mounted before the pod starts"))
    }

    async fn get_archive(
        &self,
        _id: &str,
        _path: &str,
        _limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, BackendError> {
        Err(not_built(what, "tar over pods/exec"))
    }

    async fn put_archive(
        &self,
        _id: &str,
        _dir: &str,
        _tar: Vec<u8>,
        what: &str,
    ) -> Result<(), BackendError> {
        Err(not_built(what, "tar over pods/exec"))
    }

    async fn start_sidecar(
        &self,
        _run_id: &str,
        _target: &str,
        node: &str,
        purpose: &str,
        _image: &str,
        _share: Share,
    ) -> Result<String, BackendError> {
        Err(not_built(
            &format!("{purpose} for node {node}"),
            "Chaos Mesh for the network faults, an ephemeral container for the others",
        ))
    }

    async fn remove_container(&self, _id: &str) -> Result<(), BackendError> {
        // Sidecars are never started on this backend, and nodes go with the namespace.
        Ok(())
    }

    async fn remove_run(&self, run_id: Option<&str>) -> Result<(usize, usize), BackendError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let found = self.leftovers(run_id).await?;
        for (name, _, _) in &found.networks {
            namespaces
                .delete(name, &DeleteParams::foreground())
                .await
                .map_err(api_error(format!("delete namespace {name}")))?;
        }
        Ok((0, found.networks.len()))
    }

    /// A run's namespace stands for its network: deleting it removes everything of the run.
    async fn leftovers(&self, run_id: Option<&str>) -> Result<Leftovers, BackendError> {
        let selector = match run_id {
            Some(r) => format!("faultline.run={r}"),
            None => "app.kubernetes.io/managed-by=faultline".into(),
        };
        let list = Api::<Namespace>::all(self.client.clone())
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(api_error("list faultline's namespaces".into()))?;
        let networks = list
            .items
            .into_iter()
            .filter_map(|n| {
                let name = n.metadata.name?;
                let run = n
                    .metadata
                    .labels
                    .and_then(|l| l.get("faultline.run").cloned())
                    .unwrap_or_default();
                Some((name, run, None))
            })
            .collect();
        Ok(Leftovers {
            containers: Vec::new(),
            networks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_brokers_state_and_address_come_from_the_pods_status() {
        let running = pod(serde_json::json!({
            "metadata": {"name": "n1-0"},
            "status": {
                "podIP": "10.244.1.7",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{
                    "name": "broker", "image": "nats", "imageID": "", "ready": true,
                    "restartCount": 0, "state": {"running": {}}
                }]
            }
        }));
        assert_eq!(broker_state(&running), (true, None));
        assert_eq!(ready_ip(&running), Some("10.244.1.7".parse().unwrap()));
        let killed = pod(serde_json::json!({
            "metadata": {"name": "n1-0"},
            "status": {
                "podIP": "10.244.1.7",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{
                    "name": "broker", "image": "nats", "imageID": "", "ready": false,
                    "restartCount": 1, "state": {"terminated": {"exitCode": 137}}
                }]
            }
        }));
        assert_eq!(broker_state(&killed), (false, Some(137)));
        assert_eq!(ready_ip(&killed), None);
        assert_eq!(
            namespace_of("fl-20261202T113824Z-4207"),
            "fl-20261202t113824z-4207"
        );
    }
}
