//! RabbitMQ with its MQTT plugin: the cluster's own view through the management API.
//!
//! Each node is asked, concurrently, for `GET /api/nodes` (every cluster member with
//! `running` and the `partitions` it sees) and for the subscriber's session queue
//! (`GET /api/queues/%2F/<queue>`: a quorum queue names its Raft `leader`, a classic queue
//! the `node` it lives on). A killed node is reported `running: false` as soon as the Erlang
//! distribution connection to it closes; a partitioned one only after `net_ticktime`, when
//! the peers declare it down and list it in `partitions`.
//!
//! Every node's Prometheus endpoint is scraped once a second beside it (see `prometheus`):
//! the Erlang distribution links it has, and its uptime.
//!
//! Node names are `rabbit@<hostname>` and the topology's hostnames are its service names,
//! so `rabbit@r2` is node `r2`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::erlang::node_name;
use super::prometheus;
use crate::families::{NodeEndpoint, Observation, Observed, Probe};
use crate::history::Clock;

pub const MANAGEMENT_PORT: u16 = 15672;
/// A node's management API answers slowly while a peer is unreachable; a probe round must
/// not stall on it.
const TIMEOUT: Duration = Duration::from_millis(800);
const AUTH: crate::http::BasicAuth<'static> = Some(("guest", "guest"));

pub fn management(node: &NodeEndpoint) -> SocketAddr {
    SocketAddr::from((node.ip, MANAGEMENT_PORT))
}

/// The queue RabbitMQ 3.x's MQTT plugin keeps a QoS 1 (or 2, served as 1) session in.
pub fn session_queue(client_id: &str, qos: u8) -> String {
    format!("mqtt-subscription-{client_id}qos{}", qos.min(1))
}

/// One node's view of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Members it reports running.
    pub running: BTreeSet<String>,
    /// Members it reports not running or cut off (in its `partitions`).
    pub down: BTreeSet<(String, &'static str)>,
    /// The node holding the session queue (quorum leader or classic home): `Some(None)` when
    /// the node reports none, `None` when it did not answer about the queue this round.
    pub queue_leader: Option<Option<String>>,
}

/// Reads `/api/nodes` as the node at hand reports it.
pub fn read_nodes(nodes: &Value, me: &str) -> View {
    let mut v = View::default();
    for n in nodes.as_array().into_iter().flatten() {
        let name = node_name(n["name"].as_str().unwrap_or_default());
        if n["running"].as_bool() == Some(true) {
            v.running.insert(name.clone());
        } else {
            v.down
                .insert((name.clone(), "running: false in /api/nodes"));
        }
        if name == me {
            for p in n["partitions"].as_array().into_iter().flatten() {
                if let Some(p) = p.as_str() {
                    v.down
                        .insert((node_name(p), "listed in partitions by /api/nodes"));
                }
            }
        }
    }
    v
}

/// Reads `/api/queues/%2F/<queue>`: the quorum leader, or the classic queue's node.
pub fn read_queue_leader(queue: &Value) -> Option<String> {
    queue["leader"]
        .as_str()
        .or(queue["node"].as_str())
        .filter(|s| !s.is_empty())
        .map(node_name)
}

pub async fn nodes(node: &NodeEndpoint) -> Result<View, String> {
    let json = crate::http::get_json_as(management(node), "/api/nodes", AUTH, TIMEOUT).await?;
    Ok(read_nodes(&json, &node.name))
}

/// The node holding the session queue, as `node` reports it; `None` while it does not exist.
pub async fn queue_leader(node: &NodeEndpoint, queue: &str) -> Result<Option<String>, String> {
    let path = format!("/api/queues/%2F/{queue}");
    let (status, body) = crate::http::get_as(management(node), &path, AUTH, TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    match status {
        404 => Ok(None),
        200 => {
            let json: Value =
                serde_json::from_slice(&body).map_err(|e| format!("{path}: invalid JSON: {e}"))?;
            Ok(read_queue_leader(&json))
        }
        other => Err(format!(
            "{path} answered {other}: {}",
            String::from_utf8_lossy(&body).trim()
        )),
    }
}

/// Every member reports every member running and no partition.
pub async fn cluster_whole(members: &[NodeEndpoint]) -> Result<(), String> {
    let names: BTreeSet<String> = members.iter().map(|m| m.name.clone()).collect();
    for m in members {
        let view = nodes(m).await.map_err(|e| format!("{}: {e}", m.name))?;
        if view.running != names || !view.down.is_empty() {
            let down: Vec<String> = view
                .down
                .iter()
                .map(|(n, why)| format!("{n} ({why})"))
                .collect();
            return Err(format!(
                "{} reports running {:?}, down {down:?}; the members are {names:?} (each node must be named rabbit@<service name>)",
                m.name, view.running
            ));
        }
    }
    Ok(())
}

struct NodeState {
    node: NodeEndpoint,
    view: Option<View>,
    reachable: bool,
    /// The last scrape of its Prometheus endpoint.
    scrape: Option<prometheus::Scrape>,
}

pub struct RabbitProbe {
    nodes: Vec<NodeState>,
    queue: String,
    next_scrape: std::time::Instant,
}

impl RabbitProbe {
    pub fn new(members: Vec<NodeEndpoint>, queue: String) -> Self {
        RabbitProbe {
            nodes: members
                .into_iter()
                .map(|node| NodeState {
                    node,
                    view: None,
                    reachable: true,
                    scrape: None,
                })
                .collect(),
            queue,
            next_scrape: std::time::Instant::now(),
        }
    }
}

fn diff(role: &str, old: Option<&View>, new: &View) -> Vec<Observed> {
    let mut out = Vec::new();
    let old_down: BTreeSet<&String> = old
        .map(|o| o.down.iter().map(|(n, _)| n).collect())
        .unwrap_or_default();
    let new_down: BTreeSet<&String> = new.down.iter().map(|(n, _)| n).collect();
    for (peer, why) in &new.down {
        if !old_down.contains(peer) {
            out.push(Observed::PeerDown {
                peer: peer.clone(),
                signal: why.to_string(),
            });
        }
    }
    if old.is_some() {
        for peer in old_down.difference(&new_down) {
            out.push(Observed::PeerUp {
                peer: (*peer).clone(),
                signal: "running again in /api/nodes".into(),
            });
        }
    }
    // A round without an answer about the queue says nothing about its leader.
    if let Some(leader) = &new.queue_leader {
        if old.and_then(|o| o.queue_leader.as_ref()) != Some(leader) {
            out.push(Observed::Leader {
                role: role.to_string(),
                leader: leader.clone(),
            });
        }
    }
    out
}

#[async_trait]
impl Probe for RabbitProbe {
    async fn observe(&mut self, clock: &Clock) -> Vec<Observation> {
        let queue = self.queue.clone();
        let scrape_now = std::time::Instant::now() >= self.next_scrape;
        if scrape_now {
            self.next_scrape = std::time::Instant::now() + prometheus::INTERVAL;
        }
        let answers = futures::future::join_all(self.nodes.iter().map(|n| {
            let queue = queue.clone();
            async move {
                // Asked separately: while a queue member is unreachable, the queue's own
                // answer can block for seconds, and must not hide the node list.
                let metrics = async {
                    if scrape_now {
                        Some((prometheus::scrape(&n.node).await, clock.now_us()))
                    } else {
                        None
                    }
                };
                let (view, leader, metrics) =
                    tokio::join!(nodes(&n.node), queue_leader(&n.node, &queue), metrics);
                let view = view.map(|mut v| {
                    v.queue_leader = leader.ok();
                    v
                });
                (view, clock.now_us(), metrics)
            }
        }))
        .await;
        let role = format!("queue:{}", self.queue);
        let mut out = Vec::new();
        for (n, (view, t_us, metrics)) in self.nodes.iter_mut().zip(answers) {
            let observer = n.node.name.clone();
            // A failed scrape says nothing (the management API's answer covers reachability);
            // the next good one is compared with the last good one.
            if let Some((Ok(mut scrape), t_us)) = metrics {
                if let Some(old) = &n.scrape {
                    // A node just started publishes its uptime only with its first
                    // statistics: keep the last one read until then.
                    scrape.uptime_s = scrape.uptime_s.or(old.uptime_s);
                    for what in prometheus::diff(old, &scrape) {
                        out.push(Observation {
                            t_us,
                            observer: observer.clone(),
                            what,
                        });
                    }
                }
                n.scrape = Some(scrape);
            }
            let mut push = |what| {
                out.push(Observation {
                    t_us,
                    observer: observer.clone(),
                    what,
                })
            };
            match view {
                Ok(view) => {
                    if !n.reachable {
                        n.reachable = true;
                        push(Observed::Reachable);
                    }
                    for what in diff(&role, n.view.as_ref(), &view) {
                        push(what);
                    }
                    let mut view = view;
                    if view.queue_leader.is_none() {
                        // Keep the last known leader, so the next answer is compared with it.
                        view.queue_leader = n.view.as_ref().and_then(|v| v.queue_leader.clone());
                    }
                    n.view = Some(view);
                }
                Err(detail) => {
                    if n.reachable {
                        n.reachable = false;
                        n.view = None;
                        push(Observed::Unreachable { detail });
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_members_partitions_and_the_queue_leader() {
        let nodes = json!([
            {"name": "rabbit@r1", "running": true, "partitions": ["rabbit@r3"]},
            {"name": "rabbit@r2", "running": true, "partitions": []},
            {"name": "rabbit@r3", "running": false, "partitions": []}
        ]);
        let v = read_nodes(&nodes, "r1");
        assert_eq!(
            v.running,
            ["r1", "r2"].iter().map(|s| s.to_string()).collect()
        );
        let down: Vec<(&str, &str)> = v.down.iter().map(|(n, w)| (n.as_str(), *w)).collect();
        assert_eq!(
            down,
            vec![
                ("r3", "listed in partitions by /api/nodes"),
                ("r3", "running: false in /api/nodes")
            ]
        );
        // r2's own view: only r1's partitions list names r3, and r2 reads only its own.
        assert_eq!(read_nodes(&nodes, "r2").down.len(), 1);
        assert_eq!(
            read_queue_leader(
                &json!({"type": "quorum", "leader": "rabbit@r2", "node": "rabbit@r1"})
            )
            .as_deref(),
            Some("r2")
        );
        assert_eq!(
            read_queue_leader(&json!({"type": "classic", "node": "rabbit@r3"})).as_deref(),
            Some("r3")
        );
        assert_eq!(session_queue("sub", 2), "mqtt-subscription-subqos1");
    }

    #[test]
    fn diff_reports_a_node_going_and_coming_back_and_the_queue_moving() {
        let before = View {
            queue_leader: Some(Some("r1".into())),
            ..Default::default()
        };
        let mut after = before.clone();
        after
            .down
            .insert(("r1".into(), "running: false in /api/nodes"));
        after.queue_leader = Some(Some("r2".into()));
        assert_eq!(
            diff("queue:q", Some(&before), &after),
            vec![
                Observed::PeerDown {
                    peer: "r1".into(),
                    signal: "running: false in /api/nodes".into()
                },
                Observed::Leader {
                    role: "queue:q".into(),
                    leader: Some("r2".into())
                }
            ]
        );
        assert_eq!(
            diff("queue:q", Some(&after), &before),
            vec![
                Observed::PeerUp {
                    peer: "r1".into(),
                    signal: "running again in /api/nodes".into()
                },
                Observed::Leader {
                    role: "queue:q".into(),
                    leader: Some("r1".into())
                }
            ]
        );
        assert!(diff("queue:q", Some(&after), &after).is_empty());
        // No answer about the queue: no leader observation.
        let mut silent = after.clone();
        silent.queue_leader = None;
        assert!(diff("queue:q", Some(&after), &silent).is_empty());
    }
}
