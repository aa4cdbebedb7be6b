//! `faultline render --backend kubernetes`: a scenario as the Kubernetes objects a run on a
//! cluster creates (docs/design/kubernetes.md): the namespace, the run's record, per node a
//! headless Service and a StatefulSet (the backend's own objects, `cluster::kubernetes`), the
//! worker Job, the fault schedule, and per fault the objects that carry it out. Core objects
//! are built from k8s-openapi's typed structures and Chaos Mesh's from
//! `cluster::kubernetes::chaos_mesh`'s, so a field either API lacks cannot be written.
//!
//! Nothing here talks to a cluster.

pub mod faults;
pub mod yaml_out;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use crate::cluster::kubernetes::objects::NodeImage;
use crate::cluster::kubernetes::{chaos_mesh, dns_label, labels, objects as topology, Options};
use crate::scenario::Scenario;

/// A file of the render: its path under the output directory and its documents.
pub struct Manifest {
    pub path: PathBuf,
    /// What the file holds, for its first line and the summary.
    pub what: String,
    pub docs: Vec<Value>,
}

pub struct Rendered {
    pub namespace: String,
    pub manifests: Vec<Manifest>,
    pub faults: Vec<faults::FaultPlan>,
    /// What a reader must know before applying them (a node without a claim, FUSE).
    pub warnings: Vec<String>,
}

fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("a Kubernetes object serializes")
}

/// The objects of `scenario`. `images` gives, per node, the image it pulls and (for a node
/// with the durability layer) what the image runs; a node absent from it pulls the image the
/// topology names.
pub fn render(
    s: &Scenario,
    images: &BTreeMap<String, NodeImage>,
    o: &Options,
) -> Result<Rendered, String> {
    if let Some(d) = &o.data {
        if !d.starts_with('/') {
            return Err(format!(
                "--data {d}: expected an absolute path, such as /data"
            ));
        }
    }
    let run = dns_label(&s.name, 40);
    let ns = format!("fl-{run}");
    let t = &s.topology;
    for svc in &t.services {
        if dns_label(&svc.name, 52) != svc.name {
            return Err(format!(
                "{}: service `{}` is not a Kubernetes name (lower-case letters, digits and '-', at most 52): rename it in the topology",
                t.file.display(),
                svc.name
            ));
        }
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut manifests = vec![
        Manifest {
            path: "00-namespace.yaml".into(),
            what: format!("the run's namespace {ns}: deleting it removes the run"),
            docs: vec![to_value(&topology::namespace(&ns, &run))],
        },
        Manifest {
            path: "01-run.yaml".into(),
            what: "the run's record: the scenario and topology the workers read".into(),
            docs: vec![to_value(&topology::run_record(
                &ns,
                &run,
                &read(&s.file)?,
                &read(&t.file)?,
            ))],
        },
    ];
    let mut notes: Vec<(String, String)> = Vec::new();
    for svc in &t.services {
        let image = match images.get(&svc.name) {
            Some(i) => NodeImage {
                image: i.image.clone(),
                runs: i.runs.clone(),
            },
            None => NodeImage {
                image: svc.image.clone(),
                runs: None,
            },
        };
        let mut docs = Vec::new();
        if let Some(cm) = topology::files(&ns, &run, svc) {
            docs.push(to_value(&cm));
        }
        docs.push(to_value(&topology::service(&ns, &run, &svc.name)));
        docs.push(to_value(&topology::stateful_set(
            &ns, &run, svc, &image, o, &mut notes,
        )?));
        manifests.push(Manifest {
            path: format!("10-{}.yaml", svc.name).into(),
            what: format!(
                "node {}{}",
                svc.name,
                if svc.is_spare() {
                    " (a spare: 0 replicas until scale-out)"
                } else {
                    ""
                }
            ),
            docs,
        });
    }
    manifests.push(Manifest {
        path: "20-workers.yaml".into(),
        what: format!(
            "the load: {} worker pod(s), each `faultline worker` with its share of the producers",
            o.workers
        ),
        docs: vec![to_value(&topology::workers(&ns, &run, o))],
    });
    let nodes: Vec<String> = t
        .services
        .iter()
        .filter(|s| !s.is_spare())
        .map(|s| s.name.clone())
        .collect();
    let mut plans = Vec::new();
    for (i, f) in s.faults.iter().enumerate() {
        plans.push(faults::render(f, i + 1, &ns, &run, &nodes, o)?);
    }
    let mut schedule = Vec::new();
    for (plan, f) in plans.iter().zip(&s.faults) {
        let mut files = Vec::new();
        // Objects of one type go in one file; request bodies (no `kind`) are named by type.
        let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (name, obj) in &plan.objects {
            let kind = obj["kind"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| body_type(name).to_string());
            by_type.entry(kind).or_default().push(obj.clone());
        }
        for (kind, docs) in by_type {
            let path = PathBuf::from(format!(
                "faults/{}-{}.{}.yaml",
                plan.name,
                plan.kind.name(),
                kind.to_ascii_lowercase()
            ));
            files.push(path.display().to_string());
            manifests.push(Manifest {
                path,
                what: format!("fault {} ({}): {}", plan.name, plan.kind.name(), kind),
                docs,
            });
        }
        schedule.push(serde_json::json!({
            "fault": plan.name,
            "kind": plan.kind.name(),
            "at": chaos_mesh::go_duration(f.at),
            "for": f.heal_after.map(chaos_mesh::go_duration),
            "every": f.every.map(chaos_mesh::go_duration),
            "times": f.times,
            "target": plan.target,
            "mechanism": plan.mechanism,
            "proof": plan.proof,
            "objects": files,
        }));
    }
    let schedule_cm = k8s_openapi::api::core::v1::ConfigMap {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("fl-schedule".into()),
            namespace: Some(ns.clone()),
            labels: Some(labels(&run)),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "schedule.json".to_string(),
            serde_json::to_string_pretty(&schedule).expect("serializes") + "\n",
        )])),
        ..Default::default()
    };
    manifests.push(Manifest {
        path: "30-schedule.yaml".into(),
        what: "the fault schedule the coordinator follows (times from the start of the load)"
            .into(),
        docs: vec![to_value(&schedule_cm)],
    });
    manifests.sort_by(|a, b| a.path.cmp(&b.path));
    // One line per note, naming every node it is about.
    let mut warnings: Vec<String> = Vec::new();
    let mut by_note: Vec<(String, Vec<String>)> = Vec::new();
    for (node, note) in notes {
        match by_note.iter_mut().find(|(n, _)| *n == note) {
            Some((_, nodes)) => nodes.push(node),
            None => by_note.push((note, vec![node])),
        }
    }
    for (note, nodes) in by_note {
        warnings.push(format!("{}: {note}", nodes.join(", ")));
    }
    Ok(Rendered {
        namespace: ns,
        manifests,
        faults: plans,
        warnings,
    })
}

/// The type of a request body by the suffix its object name was given.
fn body_type(name: &str) -> &'static str {
    if name.ends_with("-delete") {
        "DeleteOptions"
    } else if name.ends_with("-scale") {
        "Scale"
    } else {
        "EphemeralContainer"
    }
}

/// Writes every manifest under `dir`; returns the paths written.
pub fn write(r: &Rendered, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for m in &r.manifests {
        let path = dir.join(&m.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut text = format!("# {}\n", m.what);
        for (i, d) in m.docs.iter().enumerate() {
            if i > 0 {
                text.push_str("---\n");
            }
            text.push_str(&yaml_out::document(d));
        }
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}
