//! `faultline render --backend kubernetes`, offline: every shipped scenario is rendered, and
//! every object written is read back from its YAML and parsed as the typed Kubernetes (or
//! Chaos Mesh) structure of its kind. k8s-openapi's types skip fields they do not know, so an
//! object counts as typed only when it serializes back to exactly what was read: a field
//! Kubernetes lacks, or a value of the wrong type, fails. No cluster is involved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use faultline::cluster::kubernetes::{chaos_mesh, Options};
use faultline::render::{self as kubernetes, NodeImage};
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

/// A stand-in for a Kubernetes API server on loopback, for the checks `run --backend
/// kubernetes` makes before it creates anything: API discovery and access reviews. It
/// answers `groups` at /apis, `chaos` at the Chaos Mesh group, and allows every access review
/// except those whose resource is in `deny`. (No cluster can run on these machines; what a
/// real one does with the objects is never tested here.)
fn fake_api_server(with_chaos_mesh: bool, deny: &'static [&'static str]) -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // Bounded: a run makes one discovery, one group read and a dozen reviews.
        for conn in listener.incoming().take(64) {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).to_string();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let answer = if path
                .starts_with("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
            {
                let review: Value = serde_json::from_str(&body).unwrap_or_default();
                let resource = review["spec"]["resourceAttributes"]["resource"]
                    .as_str()
                    .unwrap_or("");
                let sub = review["spec"]["resourceAttributes"]["subresource"]
                    .as_str()
                    .unwrap_or("");
                let what = if sub.is_empty() {
                    resource.to_string()
                } else {
                    format!("{resource}/{sub}")
                };
                serde_json::json!({
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": review["spec"],
                    "status": {"allowed": !deny.contains(&what.as_str())}
                })
            } else if path.starts_with("/apis/chaos-mesh.org/v1alpha1") {
                serde_json::json!({
                    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "chaos-mesh.org/v1alpha1",
                    "resources": [
                        {"name": "networkchaos", "singularName": "networkchaos", "namespaced": true, "kind": "NetworkChaos", "verbs": ["create", "delete", "get"]},
                        {"name": "timechaos", "singularName": "timechaos", "namespaced": true, "kind": "TimeChaos", "verbs": ["create", "delete", "get"]}
                    ]
                })
            } else if path.starts_with("/apis") {
                let mut groups = vec![serde_json::json!({
                    "name": "apps",
                    "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}
                })];
                if with_chaos_mesh {
                    groups.push(serde_json::json!({
                        "name": "chaos-mesh.org",
                        "versions": [{"groupVersion": "chaos-mesh.org/v1alpha1", "version": "v1alpha1"}],
                        "preferredVersion": {"groupVersion": "chaos-mesh.org/v1alpha1", "version": "v1alpha1"}
                    }));
                }
                serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            } else {
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})
            };
            let text = answer.to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 {} OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                if answer["code"] == 404 { 404 } else { 200 },
                text.len()
            );
        }
    });
    port
}

/// `faultline run --backend kubernetes SCENARIO` with a kubeconfig naming `server` (none when
/// `None`): (exit code, stderr).
fn run_on_kubernetes(scenario: &str, server: Option<String>) -> (i32, String) {
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("kubeconfig");
    if let Some(server) = server {
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
            ),
        )
        .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["run", "--backend", "kubernetes", scenario])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", home.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn run_on_kubernetes_says_what_it_needs_and_refuses_without_it() {
    let kill = "scenarios/nats/jetstream-leader-kill.yaml";
    let partition = "scenarios/nats/jetstream-partition-majority-minority.yaml";

    let (code, err) = run_on_kubernetes(kill, None);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("--backend kubernetes needs a kubeconfig"),
        "{err}"
    );

    // A server that is not there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (code, err) = run_on_kubernetes(kill, Some(format!("http://127.0.0.1:{port}")));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("needs an API server that answers"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");

    // A partition needs Chaos Mesh; a kill does not.
    let server = |chaos, deny| Some(format!("http://127.0.0.1:{}", fake_api_server(chaos, deny)));
    let (code, err) = run_on_kubernetes(partition, server(false, &[]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("needs Chaos Mesh") && err.contains("networkchaos"),
        "{err}"
    );

    let (code, err) = run_on_kubernetes(kill, server(false, &["pods/ephemeralcontainers"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("may not patch pods/ephemeralcontainers (core)"),
        "{err}"
    );

    // Everything there: still refused, and said why.
    let (code, err) = run_on_kubernetes(partition, server(true, &[]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("Chaos Mesh serves networkchaos"), "{err}");
    assert!(err.contains("not built yet"), "{err}");
}
