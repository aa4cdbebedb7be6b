//! Real Pulsar's admin REST API (port 8080 on every broker): the cluster's own view of which
//! brokers and bookies are alive and which broker owns the topic, and the namespace's
//! BookKeeper placement. Not used with pulsar-lite, which has no admin API.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;

use super::config::Persistence;
use crate::families::{NodeEndpoint, Observation, Observed, Probe, Reachability};
use crate::history::Clock;

pub const ADMIN_PORT: u16 = 8080;
/// The cluster name the topology gives Pulsar (`initialize-cluster-metadata --cluster`).
pub const CLUSTER: &str = "faultline";
const TIMEOUT: Duration = Duration::from_millis(1500);

pub fn admin(node: &NodeEndpoint) -> SocketAddr {
    SocketAddr::from((node.ip, ADMIN_PORT))
}

/// `tenant/namespace/topic` of `persistent://tenant/namespace/topic`.
fn topic_path(topic: &str) -> &str {
    topic.strip_prefix("persistent://").unwrap_or(topic)
}

/// The node a `host:port` (or URL) names, by address or by name.
pub fn node_of(nodes: &[NodeEndpoint], address: &str) -> Option<String> {
    let rest = address.split("://").last().unwrap_or(address);
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    nodes
        .iter()
        .find(|n| n.ip.to_string() == host || n.name == host)
        .map(|n| n.name.clone())
}

/// The brokers the metadata store lists as active (`/admin/v2/brokers/<cluster>`).
pub async fn active_brokers(addr: SocketAddr) -> Result<Vec<String>, String> {
    let v = crate::http::get_json(addr, &format!("/admin/v2/brokers/{CLUSTER}"), TIMEOUT).await?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b.as_str().map(String::from))
        .collect())
}

/// The bookies registered with the metadata store (`/admin/v2/bookies/all`).
pub async fn bookies(addr: SocketAddr) -> Result<Vec<String>, String> {
    let v = crate::http::get_json(addr, "/admin/v2/bookies/all", TIMEOUT).await?;
    Ok(v["bookies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["bookieId"].as_str().map(String::from))
        .collect())
}

/// The broker URL owning the topic, as this broker's lookup answers.
pub async fn owner(addr: SocketAddr, topic: &str) -> Result<String, String> {
    let v = crate::http::get_json(
        addr,
        &format!("/lookup/v2/topic/persistent/{}", topic_path(topic)),
        TIMEOUT,
    )
    .await?;
    v["brokerUrl"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| format!("lookup answered without brokerUrl: {v}"))
}

/// Sets the namespace's ensemble / write quorum / ack quorum.
pub async fn set_persistence(addr: SocketAddr, topic: &str, p: Persistence) -> Result<(), String> {
    let namespace = topic_path(topic)
        .rsplit_once('/')
        .map_or("public/default", |(ns, _)| ns);
    let body = serde_json::json!({
        "bookkeeperEnsemble": p.ensemble,
        "bookkeeperWriteQuorum": p.write_quorum,
        "bookkeeperAckQuorum": p.ack_quorum,
        "managedLedgerMaxMarkDeleteRate": 0.0,
    });
    let path = format!("/admin/v2/namespaces/{namespace}/persistence");
    match crate::http::post_json(addr, &path, &body, TIMEOUT * 4).await {
        Ok((status, _)) if (200..300).contains(&status) => Ok(()),
        Ok((status, body)) => Err(format!(
            "POST {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        )),
        Err(e) => Err(format!("POST {path}: {e}")),
    }
}

/// Each live broker's view: the active brokers, the registered bookies, the topic's owner.
pub struct AdminProbe {
    pub brokers: Vec<NodeEndpoint>,
    pub all: Vec<NodeEndpoint>,
    pub topic: String,
    /// Per observer: the members it listed last time (brokers and bookies, by node name).
    pub seen: BTreeMap<String, BTreeSet<String>>,
    pub owners: BTreeMap<String, Option<String>>,
    pub up: Reachability,
}

#[async_trait]
impl Probe for AdminProbe {
    async fn observe(&mut self, clock: &Clock) -> Vec<Observation> {
        let rounds = self.brokers.iter().map(|b| {
            let addr = admin(b);
            let (name, topic) = (b.name.clone(), self.topic.clone());
            async move {
                let view = async {
                    let brokers = active_brokers(addr).await?;
                    let bookies = bookies(addr).await?;
                    let owner = owner(addr, &topic).await.ok();
                    Ok::<_, String>((brokers, bookies, owner))
                }
                .await;
                (name, view)
            }
        });
        let mut out = Vec::new();
        for (observer, view) in futures::future::join_all(rounds).await {
            let t_us = clock.now_us();
            let answer = view.as_ref().map(|_| ()).map_err(Clone::clone);
            out.extend(self.up.observe(&observer, answer, t_us));
            let Ok((brokers, bookies, owner)) = view else {
                continue;
            };
            let listed: BTreeSet<String> = brokers
                .iter()
                .chain(&bookies)
                .filter_map(|a| node_of(&self.all, a))
                .collect();
            if let Some(before) = self.seen.insert(observer.clone(), listed.clone()) {
                for gone in before.difference(&listed) {
                    out.push(Observation {
                        t_us,
                        observer: observer.clone(),
                        what: Observed::PeerDown {
                            peer: gone.clone(),
                            signal: "no longer registered in the metadata store (admin API)".into(),
                        },
                    });
                }
                for back in listed.difference(&before) {
                    out.push(Observation {
                        t_us,
                        observer: observer.clone(),
                        what: Observed::PeerUp {
                            peer: back.clone(),
                            signal: "registered in the metadata store again (admin API)".into(),
                        },
                    });
                }
            }
            let owner = owner.and_then(|o| node_of(&self.all, &o));
            if self.owners.get(&observer) != Some(&owner) {
                self.owners.insert(observer.clone(), owner.clone());
                out.push(Observation {
                    t_us,
                    observer,
                    what: Observed::Leader {
                        role: "topic-owner".into(),
                        leader: owner,
                    },
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_to_nodes() {
        let nodes = vec![
            NodeEndpoint {
                name: "pb1".into(),
                ip: "10.0.0.11".parse().unwrap(),
            },
            NodeEndpoint {
                name: "bk1".into(),
                ip: "10.0.0.21".parse().unwrap(),
            },
        ];
        assert_eq!(node_of(&nodes, "10.0.0.11:8080"), Some("pb1".into()));
        assert_eq!(
            node_of(&nodes, "pulsar://10.0.0.11:6650"),
            Some("pb1".into())
        );
        assert_eq!(node_of(&nodes, "bk1:3181"), Some("bk1".into()));
        assert_eq!(node_of(&nodes, "10.0.0.99:8080"), None);
        assert_eq!(
            topic_path("persistent://public/default/orders"),
            "public/default/orders"
        );
    }
}
