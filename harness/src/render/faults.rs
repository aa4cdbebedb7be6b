//! Each fault of the schedule as the objects the coordinator creates at its time: Chaos Mesh
//! `NetworkChaos` and `TimeChaos` for the network and clock faults, and for the others the
//! request bodies of the Kubernetes API calls that carry them out (an ephemeral container
//! that reaches the broker through the pod's shared process namespace, a pod deletion, a
//! StatefulSet scale, a damage ConfigMap). Targets that are known when the scenario is
//! written (`n1`, `[n1, n2]`, `all`) select pods by name; targets resolved at fault time (a
//! role such as `stream-leader`, `random`, `minority`) select by a label of the fault's own
//! (`faultline.fault/f01`), which the coordinator puts on the pods it picked just before it
//! creates the object.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec};
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, EphemeralContainer, SecurityContext};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use serde_json::Value;

use crate::cluster::kubernetes::chaos_mesh::{
    self, BandwidthSpec, Chaos, CorruptSpec, DelaySpec, DuplicateSpec, LossSpec, NetworkChaosSpec,
    PodSelector, ReorderSpec, Selector, TimeChaosSpec,
};
use crate::cluster::kubernetes::{labels, Options, BROKER, TOOLS_DIR};
use crate::fault_kind::FaultKind;
use crate::faults::data_files::Damage;
use crate::faults::packets::{Action, Distribution};
use crate::faults::partition::ShapeSpec;
use crate::faults::queued::Direction;
use crate::faults::Settings;
use crate::scenario::FaultSpec;
use crate::target::Target;

/// One fault as rendered: its objects (file name, documents) and how it is carried out.
pub struct FaultPlan {
    pub name: String,
    pub kind: FaultKind,
    /// The fault's target as written.
    pub target: String,
    /// What carries it out, in a line.
    pub mechanism: String,
    /// How the coordinator proves it took effect, and how the heal is checked.
    pub proof: String,
    pub objects: Vec<(String, Value)>,
}

struct Cx<'a> {
    ns: &'a str,
    run: &'a str,
    /// `f01`...
    id: String,
    /// The topology's nodes (spares excluded), in order.
    nodes: &'a [String],
    o: &'a Options,
}

/// Who a fault selects: pods known now, or those the coordinator labels at fault time.
enum Pick {
    Pods(Vec<String>),
    Label(String),
}

impl Cx<'_> {
    fn label_key(&self) -> String {
        format!("faultline.fault/{}", self.id)
    }

    fn pick(&self, t: Option<&Target>, side: &str) -> Pick {
        match t {
            Some(Target::Node(n)) => Pick::Pods(vec![n.clone()]),
            Some(Target::Nodes(v)) => Pick::Pods(v.clone()),
            Some(Target::All) => Pick::Pods(self.nodes.to_vec()),
            _ => Pick::Label(side.into()),
        }
    }

    fn selector(&self, p: &Pick) -> Selector {
        let mut s = Selector {
            namespaces: vec![self.ns.into()],
            ..Default::default()
        };
        match p {
            Pick::Pods(nodes) => {
                s.pods = BTreeMap::from([(
                    self.ns.to_string(),
                    nodes.iter().map(|n| format!("{n}-0")).collect(),
                )])
            }
            Pick::Label(v) => {
                s.label_selectors = BTreeMap::from([(self.label_key(), v.clone())]);
            }
        }
        s
    }

    fn side(&self, p: &Pick) -> PodSelector {
        PodSelector {
            selector: self.selector(p),
            mode: "all".into(),
        }
    }

    fn meta(&self, name: &str, f: &FaultSpec) -> ObjectMeta {
        let mut l = labels(self.run);
        l.insert("faultline.fault".into(), self.id.clone());
        let mut a = BTreeMap::from([(
            "faultline.dev/at".to_string(),
            chaos_mesh::go_duration(f.at),
        )]);
        if let Some(h) = f.heal_after {
            a.insert("faultline.dev/for".into(), chaos_mesh::go_duration(h));
        }
        if f.times > 1 {
            a.insert(
                "faultline.dev/every".into(),
                format!(
                    "{} x{}",
                    chaos_mesh::go_duration(f.every.unwrap_or_default()),
                    f.times
                ),
            );
        }
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.ns.into()),
            labels: Some(l),
            annotations: Some(a),
            ..Default::default()
        }
    }

    fn network(&self, f: &FaultSpec, suffix: &str, spec: NetworkChaosSpec) -> (String, Value) {
        let name = format!("fl-{}-{}{suffix}", self.id, f.kind.name());
        let obj = Chaos {
            api_version: chaos_mesh::API_VERSION.into(),
            kind: "NetworkChaos".into(),
            metadata: self.meta(&name, f),
            spec,
        };
        (name, serde_json::to_value(obj).expect("serializes"))
    }

    fn netem(
        &self,
        f: &FaultSpec,
        action: &str,
        peers: &[String],
        direction: &str,
    ) -> NetworkChaosSpec {
        NetworkChaosSpec {
            action: action.into(),
            selector: self.selector(&self.pick(f.target.as_ref(), "target")),
            mode: "all".into(),
            direction: direction.into(),
            target: (!peers.is_empty()).then(|| self.side(&Pick::Pods(peers.to_vec()))),
            delay: None,
            loss: None,
            duplicate: None,
            corrupt: None,
            bandwidth: None,
            duration: f.heal_after.map(chaos_mesh::go_duration),
        }
    }

    /// An ephemeral container in the target's pod, running `script` after it has found the
    /// broker's processes (`$PIDS`, `$P` the first) by the container id the coordinator
    /// passes (`FL_CONTAINER_ID`, from the pod's status at fault time).
    fn ephemeral(
        &self,
        f: &FaultSpec,
        step: &str,
        script: &str,
        privileged: bool,
    ) -> (String, Value) {
        let name = format!("fl-{}-{}-{step}-1", self.id, f.kind.name());
        let find = "PIDS=$(for p in /proc/[0-9]*; do grep -qs \"$FL_CONTAINER_ID\" \"$p/cgroup\" && echo \"${p#/proc/}\"; done); P=${PIDS%% *}; [ -n \"$P\" ] || { echo \"no process of container $FL_CONTAINER_ID\" >&2; exit 1; }";
        let c = EphemeralContainer {
            name: name.clone(),
            image: Some(self.o.faultline_image.clone()),
            command: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("set -e; {find}; {script}"),
            ]),
            env: Some(vec![EnvVar {
                name: "FL_CONTAINER_ID".into(),
                value: Some("set at fault time from status.containerStatuses[broker]".into()),
                ..Default::default()
            }]),
            target_container_name: Some(BROKER.into()),
            security_context: privileged.then(|| SecurityContext {
                privileged: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        (name, serde_json::to_value(c).expect("serializes"))
    }
}

fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p}")
    }
}

/// Chaos Mesh's `direction` for a packet fault's: egress is `to`, ingress `from`.
fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Egress => "to",
        Direction::Ingress => "from",
        Direction::Both => "both",
    }
}

/// Renders fault number `index` (from 1) of the scenario.
pub fn render(
    f: &FaultSpec,
    index: usize,
    ns: &str,
    run: &str,
    nodes: &[String],
    o: &Options,
) -> Result<FaultPlan, String> {
    let cx = Cx {
        ns,
        run,
        id: format!("f{index:02}"),
        nodes,
        o,
    };
    let target = f.target.as_ref().map(|t| t.to_string()).unwrap_or_default();
    let labelled = match f.target.as_ref() {
        Some(t @ (Target::Role(_) | Target::Random | Target::Minority | Target::Majority)) => {
            format!(
                " The coordinator resolves `{t}` at fault time and labels those pods `{}=target`.",
                cx.label_key()
            )
        }
        _ => String::new(),
    };
    let network_proof = "Chaos Mesh's AllInjected condition, then measured as on Docker";
    let (mechanism, proof, objects) = match (&f.settings, f.kind) {
        (Settings::Partition(shape), _) => {
            let both = |a: Pick, b: Pick, dir: &str, suffix: &str| {
                let mut spec = cx.netem(f, "partition", &[], dir);
                spec.selector = cx.selector(&a);
                spec.target = Some(cx.side(&b));
                cx.network(f, suffix, spec)
            };
            let objects = match shape {
                ShapeSpec::Isolate => match cx.pick(f.target.as_ref(), "a") {
                    Pick::Pods(t) => {
                        let rest: Vec<String> =
                            nodes.iter().filter(|n| !t.contains(n)).cloned().collect();
                        vec![both(Pick::Pods(t), Pick::Pods(rest), "both", "")]
                    }
                    label => vec![both(label, Pick::Label("b".into()), "both", "")],
                },
                ShapeSpec::MajorityMinority | ShapeSpec::Halves | ShapeSpec::Bridge => {
                    vec![both(Pick::Label("a".into()), Pick::Label("b".into()), "both", "")]
                }
                ShapeSpec::OneWay { from, to } => vec![both(
                    cx.pick(Some(from), "from"),
                    cx.pick(Some(to), "to"),
                    "to",
                    "",
                )],
                ShapeSpec::Links(links) => links
                    .iter()
                    .enumerate()
                    .map(|(k, (a, b))| {
                        both(
                            Pick::Pods(vec![a.clone()]),
                            Pick::Pods(vec![b.clone()]),
                            "both",
                            &format!("-{}", k + 1),
                        )
                    })
                    .collect(),
                // Each node loses its non-neighbours; the ring's order is drawn at fault time,
                // so each node's object selects by a label of its own (`f01-3: src`/`dst`).
                ShapeSpec::Ring => (0..nodes.len())
                    .map(|k| {
                        let key = format!("{}-{}", cx.label_key(), k + 1);
                        let mut spec = cx.netem(f, "partition", &[], "to");
                        spec.selector.pods.clear();
                        spec.selector.label_selectors = BTreeMap::from([(key.clone(), "src".into())]);
                        let mut other = spec.selector.clone();
                        other.label_selectors = BTreeMap::from([(key, "dst".into())]);
                        spec.target = Some(PodSelector {
                            selector: other,
                            mode: "all".into(),
                        });
                        cx.network(f, &format!("-{}", k + 1), spec)
                    })
                    .collect(),
                ShapeSpec::Client => {
                    let mut workers = cx.selector(&Pick::Label(String::new()));
                    workers.label_selectors =
                        BTreeMap::from([("faultline.role".to_string(), "worker".to_string())]);
                    let mut spec = cx.netem(f, "partition", &[], "both");
                    spec.target = Some(PodSelector {
                        selector: workers,
                        mode: "all".into(),
                    });
                    vec![cx.network(f, "", spec)]
                }
            };
            let how = match shape {
                ShapeSpec::Isolate if objects.len() == 1 && !labelled.is_empty() => {
                    "the targets labelled `a`, the other nodes `b`".to_string()
                }
                ShapeSpec::MajorityMinority | ShapeSpec::Halves | ShapeSpec::Bridge => format!(
                    "the two sides drawn at fault time with the run's seed (as on Docker) are labelled `{}=a` and `=b`",
                    cx.label_key()
                ),
                ShapeSpec::Ring => "one object per node: its non-neighbours on the ring drawn at fault time".into(),
                _ => String::new(),
            };
            (
                format!("Chaos Mesh NetworkChaos `partition`{}{}", if how.is_empty() { String::new() } else { format!(": {how}") }, "."),
                format!("connects across the cut refused or timed out; heal: object deleted, the same connects succeed ({network_proof})"),
                objects,
            )
        }
        (Settings::Loss { probability, peers }, _) => {
            let mut spec = cx.netem(f, "loss", peers, "to");
            spec.loss = Some(LossSpec {
                loss: percent(*probability),
                correlation: String::new(),
            });
            (
                "Chaos Mesh NetworkChaos `loss` (netem).".into(),
                "the target's retransmission counters grow; heal: object deleted, qdisc gone".into(),
                vec![cx.network(f, "", spec)],
            )
        }
        (Settings::Bandwidth { rate }, _) => {
            let mut spec = cx.netem(f, "bandwidth", &[], "to");
            spec.bandwidth = Some(BandwidthSpec {
                rate: rate.clone(),
                limit: 20_000,
                buffer: 10_000,
            });
            (
                "Chaos Mesh NetworkChaos `bandwidth` (tbf).".into(),
                "the tbf qdisc present on the pod's interface; heal: gone".into(),
                vec![cx.network(f, "", spec)],
            )
        }
        (Settings::Packets(p), _) => {
            let dir = direction(p.direction);
            let mut spec;
            let proof;
            match &p.action {
                Action::Delay(shape) => {
                    if shape.distribution == Distribution::Uniform && !shape.jitter.is_zero() {
                        return Err(format!(
                            "{}: delay with `distribution: uniform` has no Chaos Mesh form (netem's jitter is normal here); use `distribution: normal`",
                            cx.id
                        ));
                    }
                    spec = cx.netem(f, "delay", &p.peers, dir);
                    spec.delay = Some(DelaySpec {
                        latency: chaos_mesh::go_duration(shape.delay),
                        jitter: if shape.jitter.is_zero() {
                            String::new()
                        } else {
                            chaos_mesh::go_duration(shape.jitter)
                        },
                        ..Default::default()
                    });
                    proof = "the target's round trip to a peer grew by at least half the delay";
                }
                Action::Reorder { share, hold } => {
                    spec = cx.netem(f, "delay", &p.peers, dir);
                    spec.delay = Some(DelaySpec {
                        latency: chaos_mesh::go_duration(*hold),
                        reorder: Some(ReorderSpec {
                            reorder: percent(*share),
                            correlation: String::new(),
                            gap: 0,
                        }),
                        ..Default::default()
                    });
                    proof = "TCPOFOQueue grows on the receiver";
                }
                Action::Duplicate { share } => {
                    spec = cx.netem(f, "duplicate", &p.peers, dir);
                    spec.duplicate = Some(DuplicateSpec {
                        duplicate: percent(*share),
                        correlation: String::new(),
                    });
                    proof = "TCPDSACKOldSent / TCPDSACKRecv grow";
                }
                Action::Corrupt { share } => {
                    spec = cx.netem(f, "corrupt", &p.peers, dir);
                    spec.corrupt = Some(CorruptSpec {
                        corrupt: percent(*share),
                        correlation: String::new(),
                    });
                    proof = "InCsumErrors grows on the receiver";
                }
            }
            (
                format!("Chaos Mesh NetworkChaos `{}` (netem).", spec.action),
                format!("{proof}; heal: object deleted, qdisc gone"),
                vec![cx.network(f, "", spec)],
            )
        }
        (Settings::ClockSkew { offset_s, drift_s }, _) => {
            let name = format!("fl-{}-clock-skew", cx.id);
            let obj = Chaos {
                api_version: chaos_mesh::API_VERSION.into(),
                kind: "TimeChaos".into(),
                metadata: cx.meta(&name, f),
                spec: TimeChaosSpec {
                    selector: cx.selector(&cx.pick(f.target.as_ref(), "target")),
                    mode: "all".into(),
                    container_names: vec![BROKER.into()],
                    time_offset: chaos_mesh::go_offset(*offset_s),
                    clock_ids: vec!["CLOCK_REALTIME".into()],
                    duration: f.heal_after.map(chaos_mesh::go_duration),
                },
            };
            let drift = match drift_s {
                Some(d) => format!(
                    " Drift {d} s/s: the coordinator steps timeOffset once a second (TimeChaos has no drift)."
                ),
                None => String::new(),
            };
            (
                format!("Chaos Mesh TimeChaos.{drift}"),
                "the time read in the broker's container moved by the offset; heal: deleted, offset 0 read back".into(),
                vec![(name, serde_json::to_value(obj).expect("serializes"))],
            )
        }
        (Settings::Kill { signal }, _) => {
            let sig = signal.trim_start_matches("SIG");
            (
                format!("An ephemeral container sends SIG{sig} to every process of the broker's container (the pod shares its process namespace). The kubelet starts the container again after its back-off: `for:` is the least time down, not an exact hold (the hold file of the design needs the wrapper entry point)."),
                "the container's lastState.terminated and restartCount; heal: the container ready again".into(),
                vec![cx.ephemeral(f, "inject", &format!("kill -s {sig} $PIDS"), false)],
            )
        }
        (Settings::None, FaultKind::Stop) => (
            "An ephemeral container sends SIGSTOP to the broker's processes; another sends SIGCONT at the heal.".into(),
            "process state T in /proc; heal: not T".into(),
            vec![
                cx.ephemeral(f, "inject", "kill -s STOP $PIDS", false),
                cx.ephemeral(f, "heal", "kill -s CONT $PIDS", false),
            ],
        ),
        (Settings::None, FaultKind::Pause) => {
            let freeze = |v: u8| {
                format!("for d in $(find /sys/fs/cgroup -type d -name \"*$FL_CONTAINER_ID*\"); do echo {v} > \"$d/cgroup.freeze\"; done")
            };
            (
                "A privileged ephemeral container freezes the broker container's cgroup (cgroup v2 `cgroup.freeze`); another thaws it.".into(),
                "every broker process in state D or T; heal: running".into(),
                vec![
                    cx.ephemeral(f, "inject", &freeze(1), true),
                    cx.ephemeral(f, "heal", &freeze(0), true),
                ],
            )
        }
        (Settings::DiskFull { path }, _) => {
            let ballast = format!("/proc/$P/root{}/.faultline-ballast", path.trim_end_matches('/'));
            (
                format!("An ephemeral container writes ballast into {path} through /proc/<pid>/root until it is full (only a size-limited emptyDir of medium Memory, as on Docker); another deletes it."),
                "df of the volume: 0 bytes free; heal: space back".into(),
                vec![
                    cx.ephemeral(f, "inject", &format!("dd if=/dev/zero of={ballast} bs=1M 2>/dev/null || true; df {}", path), false),
                    cx.ephemeral(f, "heal", &format!("rm -f {ballast}"), false),
                ],
            )
        }
        (Settings::None, FaultKind::PowerLoss) => (
            "An ephemeral container asks the durability layer to cut (its control socket, reached by entering the broker's root), then SIGKILLs the broker's processes; the kubelet starts them again.".into(),
            "the layer's cut report; heal: the probe read back after the restart".into(),
            vec![cx.ephemeral(
                f,
                "inject",
                &format!("chroot /proc/$P/root {TOOLS_DIR}/faultline powerfs cut; kill -s KILL $PIDS"),
                false,
            )],
        ),
        (Settings::None, FaultKind::Restart | FaultKind::RollingRestart) => {
            let d = DeleteOptions {
                grace_period_seconds: Some(10),
                ..Default::default()
            };
            let each = if f.kind == FaultKind::RollingRestart {
                " One target at a time, waiting for the family's health in between."
            } else {
                ""
            };
            (
                format!("The target's pod deleted with its grace period (SIGTERM, SIGKILL after 10 s); the StatefulSet recreates it on the same claim.{each}"),
                "a new pod UID, ready".into(),
                vec![(format!("fl-{}-delete", cx.id), serde_json::to_value(d).expect("serializes"))],
            )
        }
        (Settings::None, FaultKind::ScaleOut | FaultKind::ScaleIn) => {
            let replicas = i32::from(f.kind == FaultKind::ScaleOut);
            let s = Scale {
                metadata: ObjectMeta {
                    namespace: Some(ns.into()),
                    ..Default::default()
                },
                spec: Some(ScaleSpec {
                    replicas: Some(replicas),
                }),
                ..Default::default()
            };
            (
                format!("The target's StatefulSet scaled to {replicas} (statefulsets/scale).{}", if replicas == 0 { " The family's removal call first, as on Docker." } else { "" }),
                "the family's own view of membership".into(),
                vec![(format!("fl-{}-scale", cx.id), serde_json::to_value(s).expect("serializes"))],
            )
        }
        (Settings::DataFiles(d), _) => {
            let damage = match d.damage {
                Damage::Flip { bits } => serde_json::json!({"bits": bits}),
                Damage::Cut { bytes } => serde_json::json!({"bytes": bytes}),
            };
            let mut spec = serde_json::json!({"path": d.path, "files": d.files});
            spec.as_object_mut()
                .expect("an object")
                .extend(damage.as_object().expect("an object").clone());
            let name = format!("fl-{}-damage", cx.id);
            let cm = ConfigMap {
                metadata: cx.meta(&name, f),
                data: Some(BTreeMap::from([(
                    "damage.json".to_string(),
                    serde_json::to_string_pretty(&spec).expect("serializes"),
                )])),
                ..Default::default()
            };
            let del = DeleteOptions {
                grace_period_seconds: Some(10),
                ..Default::default()
            };
            (
                "Damage at the next start: this ConfigMap, then the pod deleted gracefully; the node's init container applies the damage (with the run's seed) to its claim before the broker starts and writes what it changed to its termination message.".into(),
                "the init container's termination message: every change read back".into(),
                vec![
                    (name, serde_json::to_value(cm).expect("serializes")),
                    (format!("fl-{}-delete", cx.id), serde_json::to_value(del).expect("serializes")),
                ],
            )
        }
        (other, kind) => {
            return Err(format!(
                "{}: {} with settings {other:?} has no Kubernetes form",
                cx.id,
                kind.name()
            ))
        }
    };
    Ok(FaultPlan {
        name: cx.id.clone(),
        kind: f.kind,
        target,
        mechanism: format!("{mechanism}{labelled}"),
        proof,
        objects,
    })
}
