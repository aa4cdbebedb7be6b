//! The NATS probe: each node's own view from its monitoring port.
//!
//! Every round asks each node, concurrently, for `/routez` (which peers it has routes to) and
//! `/jsz?accounts=true&streams=true` (the JetStream meta leader and the workload stream's
//! leader as that node sees them), and reports what changed since the node's previous answer.
//! A route disappears within milliseconds of a peer's process dying (the TCP connection
//! closes), but only after missed pings when the peer is frozen or cut off; a new stream leader
//! appears after a Raft election (4-9 s election timeout).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use async_trait::async_trait;
use serde_json::Value;

use super::MONITOR_TIMEOUT;
use crate::families::{Observation, Observed, Probe};
use crate::history::Clock;

pub const JSZ_STREAMS: &str = "/jsz?accounts=true&streams=true";

/// Names of the peers a node has at least one route to.
pub fn route_peers(routez: &Value) -> BTreeSet<String> {
    routez["routes"]
        .as_array()
        .map(|routes| {
            routes
                .iter()
                .filter_map(|r| r["remote_name"].as_str())
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn non_empty(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(String::from)
}

pub fn meta_leader(jsz: &Value) -> Option<String> {
    non_empty(&jsz["meta_cluster"]["leader"])
}

/// The leader of `stream` as this node reports it.
pub fn stream_leader(jsz: &Value, stream: &str) -> Option<String> {
    jsz["account_details"]
        .as_array()?
        .iter()
        .filter_map(|a| a["stream_detail"].as_array())
        .flatten()
        .find(|s| s["name"] == stream)
        .and_then(|s| non_empty(&s["cluster"]["leader"]))
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct View {
    peers: BTreeSet<String>,
    meta_leader: Option<String>,
    stream_leader: Option<String>,
}

struct NodeState {
    name: String,
    addr: SocketAddr,
    /// The last answer; `None` before the first one and after the node was unreachable (a
    /// node that comes back starts a fresh view instead of reporting its restart as changes).
    view: Option<View>,
    reachable: bool,
}

pub struct NatsProbe {
    members: super::Members,
    nodes: Vec<NodeState>,
    stream: String,
}

impl NatsProbe {
    pub fn new(members: super::Members, stream: String) -> Self {
        NatsProbe {
            members,
            nodes: Vec::new(),
            stream,
        }
    }

    /// Follows scale-out and scale-in: a new member is polled from this round, starting with a
    /// fresh view; a removed one is no longer polled.
    fn sync_members(&mut self) {
        let members = self
            .members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.nodes
            .retain(|n| members.iter().any(|m| m.name == n.name));
        for m in members {
            if !self.nodes.iter().any(|n| n.name == m.name) {
                self.nodes.push(NodeState {
                    name: m.name.clone(),
                    addr: super::monitor(&m),
                    view: None,
                    reachable: true,
                });
            }
        }
    }
}

async fn fetch(addr: SocketAddr, stream: &str) -> Result<View, String> {
    let (routez, jsz) = tokio::join!(
        crate::http::get_json(addr, "/routez", MONITOR_TIMEOUT),
        crate::http::get_json(addr, JSZ_STREAMS, MONITOR_TIMEOUT)
    );
    let (routez, jsz) = (routez?, jsz?);
    Ok(View {
        peers: route_peers(&routez),
        meta_leader: meta_leader(&jsz),
        stream_leader: stream_leader(&jsz, stream),
    })
}

/// What changed between two views of one node.
fn diff(stream: &str, old: Option<&View>, new: &View) -> Vec<Observed> {
    let mut out = Vec::new();
    let stream_role = format!("stream:{stream}");
    match old {
        None => {
            out.push(Observed::Leader {
                role: "meta".into(),
                leader: new.meta_leader.clone(),
            });
            out.push(Observed::Leader {
                role: stream_role,
                leader: new.stream_leader.clone(),
            });
        }
        Some(old) => {
            for gone in old.peers.difference(&new.peers) {
                out.push(Observed::PeerDown {
                    peer: gone.clone(),
                    signal: "route gone from /routez".into(),
                });
            }
            for back in new.peers.difference(&old.peers) {
                out.push(Observed::PeerUp {
                    peer: back.clone(),
                    signal: "route in /routez".into(),
                });
            }
            if old.meta_leader != new.meta_leader {
                out.push(Observed::Leader {
                    role: "meta".into(),
                    leader: new.meta_leader.clone(),
                });
            }
            if old.stream_leader != new.stream_leader {
                out.push(Observed::Leader {
                    role: stream_role,
                    leader: new.stream_leader.clone(),
                });
            }
        }
    }
    out
}

#[async_trait]
impl Probe for NatsProbe {
    async fn observe(&mut self, clock: &Clock) -> Vec<Observation> {
        self.sync_members();
        let stream = self.stream.clone();
        let answers = futures::future::join_all(self.nodes.iter().map(|n| {
            let stream = stream.clone();
            async move {
                let view = fetch(n.addr, &stream).await;
                (view, clock.now_us())
            }
        }))
        .await;
        let mut out = Vec::new();
        for (node, (view, t_us)) in self.nodes.iter_mut().zip(answers) {
            let mut push = |what| {
                out.push(Observation {
                    t_us,
                    observer: node.name.clone(),
                    what,
                })
            };
            match view {
                Ok(view) => {
                    if !node.reachable {
                        node.reachable = true;
                        push(Observed::Reachable);
                    }
                    for what in diff(&stream, node.view.as_ref(), &view) {
                        push(what);
                    }
                    node.view = Some(view);
                }
                Err(detail) => {
                    if node.reachable {
                        node.reachable = false;
                        node.view = None;
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
    fn reads_routes_and_leaders_as_nats_reports_them() {
        // Shapes taken from nats-server 2.15.1: several pooled routes per peer.
        let routez = json!({"num_routes": 4, "routes": [
            {"remote_name": "n2"}, {"remote_name": "n2"}, {"remote_name": "n3"}, {"remote_name": "n3"}
        ]});
        assert_eq!(
            route_peers(&routez).into_iter().collect::<Vec<_>>(),
            vec!["n2", "n3"]
        );
        let jsz = json!({
            "meta_cluster": {"leader": "n1"},
            "account_details": [{"name": "$G", "stream_detail": [
                {"name": "OTHER", "cluster": {"leader": "n1"}},
                {"name": "ORDERS", "cluster": {"leader": "n3", "replicas": [{"name": "n1", "current": true}]}}
            ]}]
        });
        assert_eq!(meta_leader(&jsz).as_deref(), Some("n1"));
        assert_eq!(stream_leader(&jsz, "ORDERS").as_deref(), Some("n3"));
        assert_eq!(stream_leader(&jsz, "MISSING"), None);
        assert_eq!(meta_leader(&json!({"meta_cluster": {"leader": ""}})), None);
    }

    #[test]
    fn diff_reports_lost_routes_and_new_leaders() {
        let before = View {
            peers: ["n2", "n3"].iter().map(|s| s.to_string()).collect(),
            meta_leader: Some("n1".into()),
            stream_leader: Some("n3".into()),
        };
        let after = View {
            peers: ["n2"].iter().map(|s| s.to_string()).collect(),
            meta_leader: Some("n1".into()),
            stream_leader: Some("n2".into()),
        };
        assert_eq!(
            diff("ORDERS", Some(&before), &after),
            vec![
                Observed::PeerDown {
                    peer: "n3".into(),
                    signal: "route gone from /routez".into()
                },
                Observed::Leader {
                    role: "stream:ORDERS".into(),
                    leader: Some("n2".into())
                },
            ]
        );
        assert!(diff("ORDERS", Some(&after), &after).is_empty());
        assert_eq!(
            diff("ORDERS", None, &after).len(),
            2,
            "first view names the leaders"
        );
    }
}
