//! EMQX 5: the cluster's own view through its REST API (port 18083).
//!
//! Every node is asked, each probe interval, `GET /api/v5/nodes` with HTTP basic
//! authentication by the API key the topology creates at start (`api_key.bootstrap_file`):
//! every cluster member with its `node_status` (`running` or `stopped`), as that node sees it.
//! EMQX runs long Erlang node names, so `emqx@e2.emqx.faultline` is service `e2` (the first
//! label of the host).
//!
//! Written from EMQX's documented API and never run here (no registry for its image).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::families::{membership_diff, NodeEndpoint, Observation, Probe, Reachability};
use crate::history::Clock;

pub const API_PORT: u16 = 18083;
const TIMEOUT: Duration = Duration::from_millis(800);
/// The key and secret `docker-compose/emqx-3.yml` bootstraps.
const AUTH: crate::http::BasicAuth<'static> = Some(("faultline", "faultline-probe-secret"));

/// `emqx@e2.emqx.faultline` -> `e2`.
pub fn service(node: &str) -> String {
    let host = node.split_once('@').map_or(node, |(_, h)| h);
    host.split('.').next().unwrap_or(host).to_string()
}

/// The members a node reports running, and those it reports otherwise.
pub fn read_nodes(answer: &Value) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let list = answer
        .as_array()
        .ok_or_else(|| format!("/api/v5/nodes: expected a list, got {answer}"))?;
    let mut running = BTreeSet::new();
    let mut down = BTreeSet::new();
    for n in list {
        let name = service(n["node"].as_str().unwrap_or_default());
        if n["node_status"] == "running" {
            running.insert(name);
        } else {
            down.insert(name);
        }
    }
    Ok((running, down))
}

pub async fn nodes(node: &NodeEndpoint) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let addr = SocketAddr::from((node.ip, API_PORT));
    let json = crate::http::get_json_as(addr, "/api/v5/nodes", AUTH, TIMEOUT).await?;
    read_nodes(&json)
}

/// Every member reports every member running.
pub async fn cluster_whole(members: &[NodeEndpoint]) -> Result<(), String> {
    let names: BTreeSet<String> = members.iter().map(|m| m.name.clone()).collect();
    for m in members {
        let (running, _) = nodes(m).await.map_err(|e| format!("{}: {e}", m.name))?;
        if running != names {
            return Err(format!(
                "{} reports running {running:?} in /api/v5/nodes; the members are {names:?}",
                m.name
            ));
        }
    }
    Ok(())
}

pub struct EmqxProbe {
    nodes: Vec<(NodeEndpoint, Option<BTreeSet<String>>)>,
    reachability: Reachability,
}

impl EmqxProbe {
    pub fn new(members: Vec<NodeEndpoint>) -> Self {
        EmqxProbe {
            nodes: members.into_iter().map(|n| (n, None)).collect(),
            reachability: Reachability::default(),
        }
    }
}

#[async_trait]
impl Probe for EmqxProbe {
    async fn observe(&mut self, clock: &Clock) -> Vec<Observation> {
        let answers = futures::future::join_all(
            self.nodes
                .iter()
                .map(|(n, _)| async move { (nodes(n).await, clock.now_us()) }),
        )
        .await;
        let mut out = Vec::new();
        for ((node, last), (answer, t_us)) in self.nodes.iter_mut().zip(answers) {
            let answered = answer.as_ref().map(|_| ()).map_err(Clone::clone);
            out.extend(self.reachability.observe(&node.name, answered, t_us));
            let Ok((running, _)) = answer else { continue };
            if let Some(old) = last.as_ref() {
                let observed = membership_diff(
                    old,
                    &running,
                    "not running in /api/v5/nodes",
                    "running again in /api/v5/nodes",
                );
                out.extend(observed.into_iter().map(|what| Observation {
                    t_us,
                    observer: node.name.clone(),
                    what,
                }));
            }
            *last = Some(running);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_node_names_map_to_services_and_stopped_nodes_are_down() {
        assert_eq!(service("emqx@e2.emqx.faultline"), "e2");
        let (running, down) = read_nodes(&json!([
            {"node": "emqx@e1.emqx.faultline", "node_status": "running"},
            {"node": "emqx@e2.emqx.faultline", "node_status": "stopped"}
        ]))
        .unwrap();
        assert!(running.contains("e1") && down.contains("e2"));
    }
}
