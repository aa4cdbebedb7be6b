//! `faultline render --backend kubernetes`, offline: every shipped scenario is rendered, and
//! every object written is read back from its YAML and parsed as the typed Kubernetes (or
//! Chaos Mesh) structure of its kind. k8s-openapi's types skip fields they do not know, so an
//! object counts as typed only when it serializes back to exactly what was read: a field
//! Kubernetes lacks, or a value of the wrong type, fails. No cluster is involved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use faultline::kubernetes::{self, chaos_mesh, NodeImage, Options};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, EphemeralContainer, Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The documents of a rendered file, as JSON.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---\n")
        .map(|doc| {
            faultline::yaml::parse(doc)
                .unwrap_or_else(|(pos, e)| panic!("{}:{pos:?}: {e}", path.display()))
                .unwrap_or_else(|| panic!("{}: an empty document", path.display()))
                .to_json()
        })
        .collect()
}

/// The first place two JSON values differ.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                let here = format!("{at}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = first_difference(p, q, &here) {
                            return Some(d);
                        }
                    }
                    (Some(_), None) => return Some(format!("{here}: not a field of the type")),
                    (None, Some(_)) => return Some(format!("{here}: added by the type")),
                    (None, None) => {}
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{at}: {a} read back as {b}")),
    }
}

fn typed<T: DeserializeOwned + Serialize>(v: &Value) -> Result<(), String> {
    let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&t).unwrap();
    match first_difference(v, &back, "") {
        None => Ok(()),
        Some(d) => Err(d),
    }
}

/// Parses one rendered document as the type of its `kind` (a request body, which has none, by
/// its file's name); returns the type's name.
fn check(file: &Path, v: &Value) -> Result<&'static str, String> {
    let name = file.file_name().unwrap().to_string_lossy();
    let (what, result) = match v["kind"].as_str() {
        Some("Namespace") => ("Namespace", typed::<Namespace>(v)),
        Some("ConfigMap") => ("ConfigMap", typed::<ConfigMap>(v)),
        Some("Service") => ("Service", typed::<Service>(v)),
        Some("StatefulSet") => ("StatefulSet", typed::<StatefulSet>(v)),
        Some("Job") => ("Job", typed::<Job>(v)),
        Some("Scale") => ("Scale", typed::<Scale>(v)),
        Some("NetworkChaos") => ("NetworkChaos", typed::<chaos_mesh::NetworkChaos>(v)),
        Some("TimeChaos") => ("TimeChaos", typed::<chaos_mesh::TimeChaos>(v)),
        Some(other) => return Err(format!("unexpected kind {other}")),
        None if name.ends_with(".ephemeralcontainer.yaml") => {
            ("EphemeralContainer", typed::<EphemeralContainer>(v))
        }
        None if name.ends_with(".deleteoptions.yaml") => {
            ("DeleteOptions", typed::<DeleteOptions>(v))
        }
        None => return Err("no kind, and not a request body by its name".into()),
    };
    result.map(|_| what).map_err(|e| format!("as {what}: {e}"))
}

/// Every document of every file under `dir`: (file, type) for each.
fn check_dir(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            for doc in documents(&p) {
                match check(&p, &doc) {
                    Ok(what) => out.push((p.clone(), what)),
                    Err(e) => panic!("{}: {e}\n{doc:#}", p.display()),
                }
            }
        }
    }
    out
}

fn scenarios(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            scenarios(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}

#[test]
fn every_shipped_scenario_renders_to_typed_objects_and_every_fault_kind_has_its_objects() {
    let mut files = Vec::new();
    scenarios(&root().join("scenarios"), &mut files);
    files.push(root().join("tests/k8s/every-shape.yaml"));
    files.sort();
    let tmp = tempfile::tempdir().unwrap();
    let mut kinds = BTreeSet::new();
    let mut types = BTreeSet::new();
    for (i, file) in files.iter().enumerate() {
        let s = faultline::scenario::load(file)
            .unwrap_or_else(|e| panic!("{}: {:?}", file.display(), e));
        // What a durable node's image runs would come from the Docker daemon.
        let images: BTreeMap<String, NodeImage> = s
            .topology
            .services
            .iter()
            .map(|svc| {
                let runs = Some((vec!["/entrypoint".to_string()], None));
                (
                    svc.name.clone(),
                    NodeImage {
                        image: svc.image.clone(),
                        runs,
                    },
                )
            })
            .collect();
        let r = kubernetes::render(&s, &images, &Options::default())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let dir = tmp.path().join(i.to_string());
        kubernetes::write(&r, &dir).unwrap();
        let checked = check_dir(&dir);
        assert!(
            checked.iter().filter(|(_, t)| *t == "StatefulSet").count()
                == s.topology.services.len(),
            "{}: one StatefulSet per node",
            file.display()
        );
        // Every fault has objects, named in the schedule, each a file that was checked.
        assert_eq!(r.faults.len(), s.faults.len(), "{}", file.display());
        let schedule = documents(&dir.join("30-schedule.yaml"));
        let listed: Vec<Value> =
            serde_json::from_str(schedule[0]["data"]["schedule.json"].as_str().unwrap()).unwrap();
        assert_eq!(listed.len(), s.faults.len());
        for (plan, entry) in r.faults.iter().zip(&listed) {
            assert!(
                !plan.objects.is_empty(),
                "{}: {} has no object",
                file.display(),
                plan.name
            );
            assert_eq!(entry["kind"], plan.kind.name());
            let objects = entry["objects"].as_array().unwrap();
            assert!(!objects.is_empty());
            for o in objects {
                let p = dir.join(o.as_str().unwrap());
                assert!(
                    checked.iter().any(|(f, _)| *f == p),
                    "{} not checked",
                    p.display()
                );
            }
            kinds.insert(plan.kind.name());
        }
        types.extend(checked.iter().map(|(_, t)| *t));
    }
    let missing: Vec<_> = faultline::fault_kind::FaultKind::NAMES
        .iter()
        .filter(|k| !kinds.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "fault kinds never rendered: {missing:?}"
    );
    for t in [
        "NetworkChaos",
        "TimeChaos",
        "EphemeralContainer",
        "DeleteOptions",
        "Scale",
        "Job",
    ] {
        assert!(types.contains(t), "no {t} among {types:?}");
    }
}

#[test]
fn a_field_kubernetes_does_not_have_fails_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let s = faultline::scenario::load(&root().join("scenarios/nats/jetstream-leader-kill.yaml"))
        .unwrap();
    let r = kubernetes::render(&s, &BTreeMap::new(), &Options::default()).unwrap();
    kubernetes::write(&r, tmp.path()).unwrap();
    let file = tmp.path().join("10-n1.yaml");
    let docs = documents(&file);
    let mut sts = docs
        .into_iter()
        .find(|d| d["kind"] == "StatefulSet")
        .unwrap();
    check(&file, &sts).unwrap();
    sts["spec"]["replica"] = Value::from(1);
    let e = check(&file, &sts).unwrap_err();
    assert!(e.contains(".spec.replica: not a field of the type"), "{e}");
    sts["spec"].as_object_mut().unwrap().remove("replica");
    sts["spec"]["replicas"] = Value::from("one");
    assert!(check(&file, &sts).is_err());
}

#[test]
fn render_writes_the_leader_kill_scenario_as_typed_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "render",
            "--backend",
            "kubernetes",
            "scenarios/nats/jetstream-leader-kill.yaml",
            "--out",
        ])
        .arg(tmp.path())
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked = check_dir(tmp.path());
    let count = |t: &str| checked.iter().filter(|(_, x)| *x == t).count();
    assert_eq!(count("StatefulSet"), 3);
    assert_eq!(count("Service"), 3);
    assert_eq!(count("Job"), 1);
    assert_eq!(count("Namespace"), 1);
    // The kill of the stream leader: an ephemeral container in the pod the coordinator labels.
    assert_eq!(count("EphemeralContainer"), 1);
    assert!(stdout.contains("f01 kill on stream-leader"), "{stdout}");
    assert!(stdout.contains("faultline.fault/f01=target"), "{stdout}");
    let ns = &documents(&tmp.path().join("00-namespace.yaml"))[0];
    assert_eq!(
        ns["metadata"]["labels"]["faultline.run"],
        "jetstream-leader-kill"
    );
}
