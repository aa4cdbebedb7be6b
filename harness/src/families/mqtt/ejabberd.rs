//! ejabberd with mod_mqtt: the cluster's own view through its HTTP API (mod_http_api).
//!
//! Every node is asked, each probe interval, `POST /api/list_cluster` (body `{}`): the nodes of
//! the cluster that are running as that node sees them (Mnesia's running_db_nodes). A killed
//! node leaves its peers' lists as soon as the Erlang distribution connection to it closes; a
//! partitioned one after `net_ticktime` (10 s in faultline's topology). Once a second the
//! node's `stats uptimeseconds` is read too: lower than the last reading means it started
//! again. Node names are `ejabberd@<hostname>` and the topology's hostnames are its service
//! names, so `ejabberd@e2` is node `e2`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::erlang::node_name;
use crate::families::{membership_diff, NodeEndpoint, Observation, Observed, Probe, Reachability};
use crate::history::Clock;

pub const API_PORT: u16 = 5280;
const TIMEOUT: Duration = Duration::from_millis(800);
const UPTIME_EVERY: Duration = Duration::from_secs(1);
const SIGNAL: &str = "gone from list_cluster (HTTP API)";

async fn call(node: &NodeEndpoint, command: &str, body: Value) -> Result<Value, String> {
    let addr = SocketAddr::from((node.ip, API_PORT));
    let path = format!("/api/{command}");
    let (status, answer) = crate::http::post_json(addr, &path, &body, TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!(
            "{path} answered {status}: {}",
            String::from_utf8_lossy(&answer).trim()
        ));
    }
    serde_json::from_slice(&answer).map_err(|e| format!("{path}: invalid JSON: {e}"))
}

/// The running cluster members `node` reports.
pub async fn running(node: &NodeEndpoint) -> Result<BTreeSet<String>, String> {
    read_cluster(&call(node, "list_cluster", json!({})).await?)
}

pub fn read_cluster(answer: &Value) -> Result<BTreeSet<String>, String> {
    let list = answer
        .as_array()
        .ok_or_else(|| format!("list_cluster: expected a list of nodes, got {answer}"))?;
    Ok(list
        .iter()
        .filter_map(Value::as_str)
        .map(node_name)
        .collect())
}

pub async fn uptime(node: &NodeEndpoint) -> Result<u64, String> {
    let answer = call(node, "stats", json!({"name": "uptimeseconds"})).await?;
    answer["stat"]
        .as_u64()
        .ok_or_else(|| format!("stats uptimeseconds: unexpected answer {answer}"))
}

/// Every member lists every member running.
pub async fn cluster_whole(members: &[NodeEndpoint]) -> Result<(), String> {
    let names: BTreeSet<String> = members.iter().map(|m| m.name.clone()).collect();
    for m in members {
        let seen = running(m).await.map_err(|e| format!("{}: {e}", m.name))?;
        if seen != names {
            let hint = if seen.is_disjoint(&names) {
                " (each node must be named ejabberd@<service name>)"
            } else {
                ""
            };
            return Err(format!(
                "{} lists {seen:?} in list_cluster; the members are {names:?}{hint}",
                m.name
            ));
        }
    }
    Ok(())
}

/// What changed in one node's list between two answers.
pub fn diff(old: &BTreeSet<String>, new: &BTreeSet<String>) -> Vec<Observed> {
    membership_diff(old, new, SIGNAL, "back in list_cluster (HTTP API)")
}

struct NodeState {
    node: NodeEndpoint,
    running: Option<BTreeSet<String>>,
    uptime: Option<u64>,
}

pub struct EjabberdProbe {
    nodes: Vec<NodeState>,
    reachability: Reachability,
    next_uptime: Instant,
}

impl EjabberdProbe {
    pub fn new(members: Vec<NodeEndpoint>) -> Self {
        EjabberdProbe {
            nodes: members
                .into_iter()
                .map(|node| NodeState {
                    node,
                    running: None,
                    uptime: None,
                })
                .collect(),
            reachability: Reachability::default(),
            next_uptime: Instant::now(),
        }
    }
}

#[async_trait]
impl Probe for EjabberdProbe {
    async fn observe(&mut self, clock: &Clock) -> Vec<Observation> {
        let with_uptime = Instant::now() >= self.next_uptime;
        if with_uptime {
            self.next_uptime = Instant::now() + UPTIME_EVERY;
        }
        let answers = futures::future::join_all(self.nodes.iter().map(|n| async move {
            let up = async {
                if with_uptime {
                    uptime(&n.node).await.ok()
                } else {
                    None
                }
            };
            let (list, up) = tokio::join!(running(&n.node), up);
            (list, up, clock.now_us())
        }))
        .await;
        let mut out = Vec::new();
        for (n, (list, up, t_us)) in self.nodes.iter_mut().zip(answers) {
            let observer = n.node.name.clone();
            let answered = list.as_ref().map(|_| ()).map_err(Clone::clone);
            out.extend(self.reachability.observe(&observer, answered, t_us));
            let mut push = |what| {
                out.push(Observation {
                    t_us,
                    observer: observer.clone(),
                    what,
                })
            };
            if let Ok(list) = list {
                if let Some(old) = &n.running {
                    for what in diff(old, &list) {
                        push(what);
                    }
                }
                n.running = Some(list);
            }
            if let Some(up) = up {
                if n.uptime.is_some_and(|before| up < before) {
                    push(Observed::Restarted {
                        detail: format!(
                            "stats uptimeseconds {up} s, after {} s",
                            n.uptime.unwrap_or_default()
                        ),
                    });
                }
                n.uptime = Some(up);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_leaving_the_list_is_down_and_coming_back_is_up() {
        // As ejabberd 23.01 answers POST /api/list_cluster.
        let all = read_cluster(&json!(["ejabberd@e3", "ejabberd@e2", "ejabberd@e1"])).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.contains("e2"));
        let two = read_cluster(&json!(["ejabberd@e2", "ejabberd@e1"])).unwrap();
        assert_eq!(
            diff(&all, &two),
            vec![Observed::PeerDown {
                peer: "e3".into(),
                signal: SIGNAL.into()
            }]
        );
        assert!(matches!(&diff(&two, &all)[..], [Observed::PeerUp { peer, .. }] if peer == "e3"));
        assert!(read_cluster(&json!({"status": "error"})).is_err());
    }
}
