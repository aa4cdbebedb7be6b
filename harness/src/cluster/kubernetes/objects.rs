//! The topology as Kubernetes objects: per node a headless Service (its stable name, the
//! compose service name, resolvable inside the namespace as under compose) and a StatefulSet
//! of one replica, with a ConfigMap for the files the topology writes into it; the run's
//! record (`fl-run`) and the worker Job that drives the load.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    ExecAction, KeyToPath, Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec,
    PodTemplateSpec, Probe, SecurityContext, Service, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::{labels, Options, BROKER, FAULTLINE_BIN, TOOLS_DIR};
use crate::cluster::compose::Service as ComposeService;

/// Labels for the object of `node` (or of the run, `None`).
fn meta(name: &str, ns: &str, run: &str, node: Option<&str>, role: &str) -> ObjectMeta {
    let mut l = labels(run);
    if let Some(n) = node {
        l.insert("faultline.node".into(), n.into());
    }
    l.insert("faultline.role".into(), role.into());
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        labels: Some(l),
        ..Default::default()
    }
}

pub fn namespace(ns: &str, run: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(ns.into()),
            labels: Some(labels(run)),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The run's record: the scenario and topology files as written, so the workers read the
/// same ones, and every object of the run can name it as its owner once it exists.
pub fn run_record(ns: &str, run: &str, scenario: &str, topology: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta("fl-run", ns, run, None, "run"),
        data: Some(BTreeMap::from([
            ("scenario.yaml".into(), scenario.into()),
            ("topology.yml".into(), topology.into()),
        ])),
        ..Default::default()
    }
}

/// The headless Service that gives node `name` its compose name inside the namespace (and
/// governs its StatefulSet, so the pod is also `<name>-0.<name>`).
pub fn service(ns: &str, run: &str, node: &str) -> Service {
    let mut selector = labels(run);
    selector.insert("faultline.node".into(), node.into());
    Service {
        metadata: meta(node, ns, run, Some(node), "node"),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(selector),
            // Brokers gossip before they are ready: their peers must resolve them at once.
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The files the topology writes into the node, as one ConfigMap (keys `f0`, `f1`...).
pub fn files(ns: &str, run: &str, s: &ComposeService) -> Option<ConfigMap> {
    if s.files.is_empty() {
        return None;
    }
    let data = s
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("f{i}"), f.content.clone()))
        .collect();
    Some(ConfigMap {
        metadata: meta(&format!("{}-files", s.name), ns, run, Some(&s.name), "node"),
        data: Some(data),
        ..Default::default()
    })
}

fn probe(h: &crate::cluster::compose::Healthcheck) -> Probe {
    let command = match h.test.first().map(String::as_str) {
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")],
        _ => h.test[1..].to_vec(),
    };
    let secs = |d: std::time::Duration| (d.as_secs() as i32).max(1);
    Probe {
        exec: Some(ExecAction {
            command: Some(command),
        }),
        period_seconds: Some(secs(h.interval)),
        timeout_seconds: Some(secs(h.timeout)),
        failure_threshold: Some(h.retries.max(1) as i32),
        initial_delay_seconds: Some(h.start_period.as_secs() as i32),
        ..Default::default()
    }
}

/// What the node's container needs that only the caller knows: the image the nodes pull and,
/// for a node with the durability layer (which wraps what the image runs), the command line
/// the image runs with the topology's `command` and the image's own user.
pub struct NodeImage {
    pub image: String,
    pub runs: Option<(Vec<String>, Option<String>)>,
}

/// The StatefulSet of node `s`: one replica (none for a spare until `scale-out`), the
/// process namespace shared (the fault containers reach the broker's processes and files
/// through it), the data directory on a claim of its own where the topology names it.
pub fn stateful_set(
    ns: &str,
    run: &str,
    s: &ComposeService,
    image: &NodeImage,
    o: &Options,
    warnings: &mut Vec<(String, String)>,
) -> Result<StatefulSet, String> {
    let mut selector = labels(run);
    selector.insert("faultline.node".into(), s.name.clone());
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    if !s.files.is_empty() {
        volumes.push(Volume {
            name: "files".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: format!("{}-files", s.name),
                items: Some(
                    (0..s.files.len())
                        .map(|i| KeyToPath {
                            key: format!("f{i}"),
                            path: format!("f{i}"),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        });
        for (i, f) in s.files.iter().enumerate() {
            mounts.push(VolumeMount {
                name: "files".into(),
                mount_path: f.target.clone(),
                sub_path: Some(format!("f{i}")),
                read_only: Some(true),
                ..Default::default()
            });
        }
    }
    for (i, t) in s.tmpfs.iter().enumerate() {
        volumes.push(Volume {
            name: format!("tmpfs{i}"),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: t.size_bytes.map(|b| Quantity(b.to_string())),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: format!("tmpfs{i}"),
            mount_path: t.path.clone(),
            ..Default::default()
        });
    }
    let mut claims = Vec::new();
    let mut init = Vec::new();
    let mut security = None;
    let mut command = None;
    let mut args = (!s.command.is_empty()).then(|| s.command.clone());
    match &s.durable {
        Some(d) => {
            claims.push(claim(ns, run, &s.name, &o.storage));
            mounts.push(VolumeMount {
                name: "data".into(),
                mount_path: d.path.clone(),
                ..Default::default()
            });
            // faultline's binary, copied from its image by an init container: the layer is
            // the container's entry point and execs the image's own.
            volumes.push(Volume {
                name: "faultline".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
            mounts.push(VolumeMount {
                name: "faultline".into(),
                mount_path: TOOLS_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            });
            init.push(Container {
                name: "faultline-binary".into(),
                image: Some(o.faultline_image.clone()),
                command: Some(vec![
                    "cp".into(),
                    FAULTLINE_BIN.into(),
                    format!("{TOOLS_DIR}/faultline"),
                ]),
                volume_mounts: Some(vec![VolumeMount {
                    name: "faultline".into(),
                    mount_path: TOOLS_DIR.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            });
            let Some((line, user)) = &image.runs else {
                return Err(format!(
                    "{}: the durability layer wraps the entry point of image {}, which is not known here: pull or build the image first (render reads it from the local Docker daemon)",
                    s.name, image.image
                ));
            };
            command = Some(crate::powerfs::serve_line(
                &format!("{TOOLS_DIR}/faultline"),
                &d.path,
                d.writeback,
                user.as_deref(),
                line,
            ));
            args = None;
            security = Some(SecurityContext {
                run_as_user: Some(0),
                capabilities: Some(Capabilities {
                    add: Some(vec!["SYS_ADMIN".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            });
            warnings.push((
                s.name.clone(),
                format!("the durability layer needs /dev/fuse in the container: a FUSE device plugin (the pod requests `{FUSE_RESOURCE}`) or, instead, `privileged: true`"),
            ));
        }
        None => match &o.data {
            Some(path) => {
                claims.push(claim(ns, run, &s.name, &o.storage));
                mounts.push(VolumeMount {
                    name: "data".into(),
                    mount_path: path.clone(),
                    ..Default::default()
                });
            }
            None => warnings.push((
                s.name.clone(),
                "the data lives in the container's own layer, which Kubernetes does not keep across a container restart (Docker does): a kill or restart there would start the node empty. Pass --data DIR (the data directory) to give each node a claim there".into(),
            )),
        },
    }
    let resources = s
        .durable
        .as_ref()
        .map(|_| k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some(BTreeMap::from([(
                FUSE_RESOURCE.into(),
                Quantity("1".into()),
            )])),
            ..Default::default()
        });
    let env: Vec<EnvVar> = s
        .environment
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            EnvVar {
                name: k.into(),
                value: Some(v.into()),
                ..Default::default()
            }
        })
        .collect();
    let broker = Container {
        name: BROKER.into(),
        image: Some(image.image.clone()),
        command,
        args,
        env: (!env.is_empty()).then_some(env),
        readiness_probe: s.healthcheck.as_ref().map(probe),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        security_context: security,
        resources,
        ..Default::default()
    };
    Ok(StatefulSet {
        metadata: meta(&s.name, ns, run, Some(&s.name), "node"),
        spec: Some(StatefulSetSpec {
            replicas: Some(if s.is_spare() { 0 } else { 1 }),
            service_name: Some(s.name.clone()),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some({
                        let mut l = selector;
                        l.insert("faultline.role".into(), "node".into());
                        l
                    }),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![broker],
                    init_containers: (!init.is_empty()).then_some(init),
                    share_process_namespace: Some(true),
                    termination_grace_period_seconds: Some(10),
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..Default::default()
                }),
            },
            volume_claim_templates: (!claims.is_empty()).then_some(claims),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The resource a pod with the durability layer requests from a FUSE device plugin.
pub const FUSE_RESOURCE: &str = "github.com/fuse";

fn claim(ns: &str, run: &str, node: &str, storage: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta("data", ns, run, Some(node), "node"),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity(storage.into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The load: an Indexed Job of `workers` pods, each `faultline worker` with its share of the
/// producers (worker w runs producers w·P to w·P+P−1) and a history shard of its own in an
/// emptyDir, which the coordinator collects.
pub fn workers(ns: &str, run: &str, o: &Options) -> Job {
    let mut l = labels(run);
    l.insert("faultline.role".into(), "worker".into());
    let worker = Container {
        name: "worker".into(),
        image: Some(o.faultline_image.clone()),
        args: Some(vec![
            "worker".into(),
            "--scenario".into(),
            "/etc/faultline/scenario.yaml".into(),
            "--topology".into(),
            "/etc/faultline/topology.yml".into(),
            "--workers".into(),
            o.workers.to_string(),
            // Kubernetes sets JOB_COMPLETION_INDEX in an Indexed Job's pods.
            "--index".into(),
            "$(JOB_COMPLETION_INDEX)".into(),
            "--history".into(),
            "/var/lib/faultline/history.bin".into(),
        ]),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "run".into(),
                mount_path: "/etc/faultline".into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "history".into(),
                mount_path: "/var/lib/faultline".into(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    Job {
        metadata: meta("fl-workers", ns, run, None, "worker"),
        spec: Some(JobSpec {
            completions: Some(o.workers as i32),
            parallelism: Some(o.workers as i32),
            completion_mode: Some("Indexed".into()),
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(l),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![worker],
                    volumes: Some(vec![
                        Volume {
                            name: "run".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: "fl-run".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "history".into(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}
