//! The Kubernetes backend (docs/design/kubernetes.md): what a run needs of a cluster, checked
//! before anything is created, and the objects a topology becomes (`objects`), typed with
//! k8s-openapi, and Chaos Mesh's (`chaos_mesh`).

pub mod chaos_mesh;
pub mod objects;
mod on_kubernetes;

use std::collections::BTreeMap;

/// The broker's container in every node pod.
pub const BROKER: &str = "broker";
/// Where faultline's binary is in its own image.
pub const FAULTLINE_BIN: &str = "/usr/local/bin/faultline";
/// Where a node pod that needs faultline's binary (the durability layer) has it.
pub const TOOLS_DIR: &str = "/fl";

/// What the render needs beside the scenario.
#[derive(Clone, Debug)]
pub struct Options {
    /// The image with faultline's binary at [`FAULTLINE_BIN`] (workers, fault containers,
    /// the durability layer's init container).
    pub faultline_image: String,
    /// Worker pods of the load Job.
    pub workers: u32,
    /// The size of each node's claim.
    pub storage: String,
    /// The nodes' data directory, kept on a claim per node (the durability layer's path
    /// is, without it).
    pub data: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            faultline_image: format!("faultline:{}", env!("CARGO_PKG_VERSION")),
            workers: 1,
            storage: "1Gi".into(),
            data: None,
        }
    }
}

/// The labels every object of run `run` carries (the Docker backend's keys).
pub fn labels(run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "faultline".to_string(),
        ),
        ("faultline.run".to_string(), run.to_string()),
    ])
}

/// A DNS-1123 label from a name: lower case, `-` for anything else, at most `max` long.
pub fn dns_label(name: &str, max: usize) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.truncate(max);
    s.trim_matches('-').to_string()
}

/// What a run on a cluster needs and did not find, and how to get it.
#[derive(Debug, thiserror::Error)]
#[error("--backend kubernetes needs {needs}: {found}")]
pub struct Refusal {
    /// What is needed ("a kubeconfig", "Chaos Mesh 2.x").
    pub needs: String,
    /// What was found instead, and how to get what is needed.
    pub found: String,
}

fn refuse(needs: impl Into<String>, found: impl Into<String>) -> Refusal {
    Refusal {
        needs: needs.into(),
        found: found.into(),
    }
}

/// A permission a run needs: (API group, resource, subresource, verb).
pub type Permission = (&'static str, &'static str, &'static str, &'static str);

/// The least a namespace-scoped run needs (docs/design/kubernetes.md, "The least RBAC"); the
/// Chaos Mesh resources are added only when a fault of the scenario needs them.
pub const PERMISSIONS: &[Permission] = &[
    ("", "namespaces", "", "create"),
    ("", "namespaces", "", "delete"),
    ("", "configmaps", "", "create"),
    ("", "services", "", "create"),
    ("", "pods", "", "delete"),
    ("", "pods", "ephemeralcontainers", "patch"),
    ("", "pods", "log", "get"),
    ("apps", "statefulsets", "", "create"),
    ("apps", "statefulsets", "scale", "patch"),
    ("batch", "jobs", "", "create"),
];

/// The Chaos Mesh API group, and the resources of it a fault kind needs.
pub const CHAOS_MESH_GROUP: &str = "chaos-mesh.org";

/// A cluster that has what a run needs: the API server answers, the Chaos Mesh resources the
/// scenario's faults use are served, and this user may do what a run does.
pub struct KubernetesBackend {
    pub client: kube::Client,
    /// The API server, for messages.
    pub server: String,
    /// The image with faultline's binary, and the nodes' claims.
    pub options: Options,
}

impl std::fmt::Debug for KubernetesBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KubernetesBackend({})", self.server)
    }
}

/// Which of `groups` (the API groups a server serves) lacks a Chaos Mesh resource of
/// `chaos`: the message, or `None` when nothing is missing.
pub fn missing_chaos_mesh(groups: &[(String, Vec<String>)], chaos: &[&str]) -> Option<String> {
    if chaos.is_empty() {
        return None;
    }
    match groups.iter().find(|(g, _)| g == CHAOS_MESH_GROUP) {
        None => Some(format!(
            "the API server serves no {CHAOS_MESH_GROUP} group; the scenario's {} fault(s) need Chaos Mesh 2.x installed in the cluster (its Helm chart, chaos-mesh/chaos-mesh)",
            chaos.join(" and ")
        )),
        Some((_, resources)) => {
            let lacking: Vec<&str> = chaos
                .iter()
                .copied()
                .filter(|c| !resources.iter().any(|r| r == c))
                .collect();
            (!lacking.is_empty()).then(|| {
                format!(
                    "Chaos Mesh is installed but serves no {}: a Chaos Mesh 2.x is needed",
                    lacking.join(", ")
                )
            })
        }
    }
}

/// Checks, before anything is created, that the cluster of the current kubeconfig has what a
/// run needs; `chaos` names the Chaos Mesh resources the scenario's faults use
/// ("networkchaos", "timechaos"). Every request is bounded (`timeout` each).
pub async fn connect(
    chaos: &[&'static str],
    timeout: std::time::Duration,
) -> Result<KubernetesBackend, Refusal> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let mut config = kube::Config::infer().await.map_err(|e| {
        refuse(
            "a kubeconfig",
            format!("none was found or it could not be read ({e}). Set KUBECONFIG, or write ~/.kube/config, for a cluster where faultline may create a namespace"),
        )
    })?;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| {
        refuse(
            "a usable kubeconfig",
            format!("a client for {server} could not be made from it: {e}"),
        )
    })?;
    let unreachable = |e: String| {
        refuse(
            "an API server that answers",
            format!("{server} did not ({e}); is the cluster up, and is it the kubeconfig's current context?"),
        )
    };
    let groups = tokio::time::timeout(timeout, client.list_api_groups())
        .await
        .map_err(|_| unreachable(format!("no answer within {timeout:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
    let mut served = Vec::new();
    for g in &groups.groups {
        if g.name != CHAOS_MESH_GROUP {
            served.push((g.name.clone(), Vec::new()));
            continue;
        }
        let version = g
            .preferred_version
            .as_ref()
            .map(|v| v.group_version.clone())
            .unwrap_or_else(|| format!("{CHAOS_MESH_GROUP}/v1alpha1"));
        let resources = tokio::time::timeout(timeout, client.list_api_group_resources(&version))
            .await
            .map_err(|_| unreachable(format!("{version}: no answer within {timeout:?}")))?
            .map_err(|e| unreachable(format!("{version}: {e}")))?;
        served.push((
            g.name.clone(),
            resources.resources.iter().map(|r| r.name.clone()).collect(),
        ));
    }
    if let Some(m) = missing_chaos_mesh(&served, chaos) {
        return Err(refuse("Chaos Mesh", m));
    }
    let reviews: kube::Api<SelfSubjectAccessReview> = kube::Api::all(client.clone());
    let mut denied = Vec::new();
    let chaos_permissions: Vec<Permission> = chaos
        .iter()
        .flat_map(|c| {
            ["create", "delete"]
                .into_iter()
                .map(move |verb| (CHAOS_MESH_GROUP, *c, "", verb))
        })
        .collect();
    for (group, resource, sub, verb) in PERMISSIONS.iter().chain(&chaos_permissions) {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some((*group).into()),
                    resource: Some((*resource).into()),
                    subresource: (!sub.is_empty()).then(|| (*sub).into()),
                    verb: Some((*verb).into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = tokio::time::timeout(
            timeout,
            reviews.create(&kube::api::PostParams::default(), &review),
        )
        .await
        .map_err(|_| unreachable(format!("an access review: no answer within {timeout:?}")))?
        .map_err(|e| unreachable(format!("an access review: {e}")))?;
        if !answer.status.is_some_and(|s| s.allowed) {
            let what = if sub.is_empty() {
                (*resource).to_string()
            } else {
                format!("{resource}/{sub}")
            };
            let group = if group.is_empty() { "core" } else { group };
            denied.push(format!("{verb} {what} ({group})"));
        }
    }
    if !denied.is_empty() {
        return Err(refuse(
            "permission for what a run does",
            format!(
                "this user may not {}; docs/design/kubernetes.md lists the least role a run needs",
                denied.join(", ")
            ),
        ));
    }
    Ok(KubernetesBackend {
        client,
        server,
        options: Options::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaos_mesh_is_needed_only_for_the_faults_that_use_it_and_then_named() {
        let without = vec![("apps".to_string(), vec![])];
        assert_eq!(missing_chaos_mesh(&without, &[]), None);
        let m = missing_chaos_mesh(&without, &["networkchaos"]).unwrap();
        assert!(
            m.contains("no chaos-mesh.org group") && m.contains("networkchaos"),
            "{m}"
        );
        let old = vec![(
            CHAOS_MESH_GROUP.to_string(),
            vec!["networkchaos".to_string()],
        )];
        assert_eq!(missing_chaos_mesh(&old, &["networkchaos"]), None);
        let m = missing_chaos_mesh(&old, &["networkchaos", "timechaos"]).unwrap();
        assert!(m.contains("serves no timechaos"), "{m}");
    }
}
