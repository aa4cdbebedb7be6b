//! Partition: cuts links between nodes. Each blocked link `a -> b` is a DROP of packets from
//! `a`'s address in `b`'s INPUT, in a chain of this fault's own, set from a sidecar in `b`'s
//! network namespace. The harness's own host keeps reaching every node, so clients and probes
//! see the cluster from outside the partition.
//!
//! The `client` shape cuts the other path instead: the harness host (the run network's
//! gateway) to the targets' client port, both ways, so the workload loses those nodes while
//! the cluster stays whole and the probes (on the monitoring port) still see them.

use std::net::Ipv4Addr;
use std::time::Instant;

use async_trait::async_trait;

use super::network::{install_script, remove_script, undo_and_remove, Sidecar};
use super::shapes::{Blocked, Shape};
use super::{Fault, FaultCtx, FaultError, ReadCtx, Settings};
use crate::cluster::ClusterNode;
use crate::target::{read_target, Target};
use crate::yaml::{self, Diagnostics, Fields};

/// The settings only a partition takes.
pub const KEYS: &[&str] = &["shape", "from", "to", "links"];

// What `read` takes, described for the scenario's JSON Schema.
/// The settings of a partition fault.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Keys {
    /// Which links are cut: isolate (the targets from everyone), majority-minority, halves,
    /// bridge, ring, one-way (`from` cannot reach `to`), links (the pairs in `links`), client
    /// (the harness's clients lose the targets).
    #[schemars(schema_with = "shape_schema")]
    pub shape: String,
    /// one-way: the side whose packets are dropped.
    pub from: Option<crate::schema::Target>,
    /// one-way: the side they were going to.
    pub to: Option<crate::schema::Target>,
    /// links: the node pairs cut, such as [[n1, n2], [n2, n3]].
    #[serde(default)]
    #[schemars(schema_with = "links_schema")]
    pub links: Option<()>,
}

fn shape_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::schema::one_of(Shape::NAMES, "The partition's shape.")
}

fn links_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 2,
            "maxItems": 2
        }
    })
}

/// A partition's shape as written; one-way sides are target expressions resolved at fault
/// time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeSpec {
    Isolate,
    MajorityMinority,
    Halves,
    Bridge,
    Ring,
    OneWay {
        from: Target,
        to: Target,
    },
    Links(Vec<(String, String)>),
    /// The harness's clients lose the targets (client port only; monitoring still answers).
    Client,
}

/// Reads `shape` and what the shape needs (`from`/`to`, `links`), and checks the shape's
/// use of the envelope's `target`.
pub fn read(f: &Fields, path: &str, cx: &ReadCtx, d: &mut Diagnostics) -> Settings {
    let target_expr = |key: &str, d: &mut Diagnostics| {
        f.get(key)
            .map(|n| read_target(n, &f.path_of(key), cx.nodes, cx.roles, d))
    };
    let name = f
        .require("shape", &format!("one of {}", Shape::NAMES.join(", ")), d)
        .and_then(|n| yaml::choice(n, &f.path_of("shape"), Shape::NAMES, d));
    let shape = match name {
        Some("isolate") => Some(ShapeSpec::Isolate),
        Some("majority-minority") => Some(ShapeSpec::MajorityMinority),
        Some("halves") => Some(ShapeSpec::Halves),
        Some("bridge") => Some(ShapeSpec::Bridge),
        Some("ring") => Some(ShapeSpec::Ring),
        Some("client") => Some(ShapeSpec::Client),
        Some("one-way") => {
            let from = target_expr("from", d);
            let to = target_expr("to", d);
            if from.is_none() || to.is_none() {
                d.error(
                    f.pos,
                    format!("{path}: a one-way partition needs `from` and `to` (nodes or roles)"),
                );
            }
            match (from, to) {
                (Some(Some(from)), Some(Some(to))) => Some(ShapeSpec::OneWay { from, to }),
                _ => None,
            }
        }
        Some("links") => f
            .require("links", "a list of node pairs such as [[n1, n2]]", d)
            .and_then(|n| yaml::list(n, &f.path_of("links"), d))
            .and_then(|items| read_links(items, &f.path_of("links"), cx.nodes, d)),
        _ => None,
    };
    let needs_target = matches!(
        shape,
        Some(
            ShapeSpec::Isolate
                | ShapeSpec::MajorityMinority
                | ShapeSpec::Bridge
                | ShapeSpec::Client
        )
    );
    if needs_target && f.get("target").is_none() {
        d.error(
            f.pos,
            format!("{path}: this partition shape needs a `target` (the side to cut off)"),
        );
    }
    if let (Some(ShapeSpec::Ring | ShapeSpec::OneWay { .. } | ShapeSpec::Links(_)), Some(n)) =
        (&shape, f.get("target"))
    {
        d.error(
            n.pos,
            format!(
                "{}: this partition shape takes no target",
                f.path_of("target")
            ),
        );
    }
    Settings::Partition(shape.unwrap_or(ShapeSpec::Isolate))
}

/// `[[n1, n2], ...]`: pairs of two different nodes.
fn read_links(
    items: &[yaml::Node],
    path: &str,
    nodes: &[String],
    d: &mut Diagnostics,
) -> Option<ShapeSpec> {
    let mut links = Vec::new();
    for item in items {
        let pair = yaml::list(item, path, d)?;
        let names: Vec<String> = pair
            .iter()
            .filter_map(|p| read_target(p, path, nodes, &[], d))
            .filter_map(|t| match t {
                Target::Node(n) => Some(n),
                _ => None,
            })
            .collect();
        if names.len() != 2 || names[0] == names[1] {
            d.error(
                item.pos,
                format!("{path}: expected a pair of two different nodes"),
            );
            return None;
        }
        links.push((names[0].clone(), names[1].clone()));
    }
    Some(ShapeSpec::Links(links))
}

pub struct Partition {
    id: usize,
    blocked: Blocked,
    /// Nodes whose client port is cut from the harness host (the `client` shape).
    client_cut: Vec<ClusterNode>,
    description: String,
    sidecars: Vec<Sidecar>,
}

impl Partition {
    pub fn new(id: usize, blocked: Blocked, description: String) -> Self {
        Partition {
            id,
            blocked,
            client_cut: Vec::new(),
            description,
            sidecars: Vec::new(),
        }
    }

    pub fn client(id: usize, nodes: Vec<ClusterNode>) -> Self {
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        Partition {
            id,
            blocked: Blocked::new(),
            description: format!("clients cut off from {}", names.join(" ")),
            client_cut: nodes,
            sidecars: Vec::new(),
        }
    }

    /// (node, INPUT rules, OUTPUT rules) for every node that gets rules.
    fn plan(&self, ctx: &FaultCtx) -> Vec<(ClusterNode, Vec<String>, Vec<String>)> {
        if !self.client_cut.is_empty() {
            let gateway = gateway(&ctx.cluster.subnet);
            let port = ctx.client_port;
            return self
                .client_cut
                .iter()
                .map(|node| {
                    (
                        node.clone(),
                        vec![format!("-s {gateway} -p tcp --dport {port} -j DROP")],
                        vec![format!("-d {gateway} -p tcp --sport {port} -j DROP")],
                    )
                })
                .collect();
        }
        let mut plan = Vec::new();
        for node in &ctx.cluster.nodes {
            let rules: Vec<String> = self
                .blocked
                .iter()
                .filter(|(_, to)| *to == node.name)
                .filter_map(|(from, _)| ctx.cluster.node(from))
                .map(|from| format!("-s {} -j DROP", from.ip))
                .collect();
            if !rules.is_empty() {
                plan.push((node.clone(), rules, Vec::new()));
            }
        }
        plan
    }
}

/// The run network's gateway (the harness host as the containers see it): the subnet's
/// first address.
fn gateway(subnet: &str) -> Ipv4Addr {
    let base: Ipv4Addr = subnet
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    Ipv4Addr::from(u32::from(base) + 1)
}

#[async_trait]
impl Fault for Partition {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        let plan = self.plan(ctx);
        // Sidecars first, so the rules themselves go in as close together as possible.
        for (node, _, _) in &plan {
            let sidecar = Sidecar::start(ctx, node, &format!("partition{}", self.id)).await?;
            self.sidecars.push(sidecar);
        }
        let id = self.id;
        let applied = futures::future::join_all(self.sidecars.iter().zip(&plan).map(
            |(sidecar, (_, input, output))| async move {
                sidecar
                    .sh(
                        ctx,
                        &install_script(id, input, output),
                        "install partition rules",
                    )
                    .await?;
                Ok::<_, FaultError>(Instant::now())
            },
        ))
        .await;
        let mut latest = None;
        for r in applied {
            let t = r?;
            latest = Some(latest.map_or(t, |l: Instant| l.max(t)));
        }
        latest.ok_or_else(|| FaultError::NotApplied("the partition cuts no link".into()))
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        undo_and_remove(
            &mut self.sidecars,
            ctx,
            &remove_script(self.id),
            "remove partition rules",
        )
        .await
    }

    fn describe(&self) -> Option<String> {
        Some(self.description.clone())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_gateway_is_the_subnets_first_address() {
        assert_eq!(super::gateway("10.213.7.0/24").to_string(), "10.213.7.1");
    }
}
