//! Mosquitto: the brokers' own `$SYS` topics.
//!
//! The probe keeps one MQTT connection per broker, subscribed to
//! `$SYS/broker/connection/+/state`: with `notifications true` a bridge publishes, retained,
//! `1` when its connection is up and `0` when it goes down, on both brokers it joins (on the
//! remote one through its will when it dies). Mosquitto 2.0.11 names the topic after the
//! bridge's client id, `<local hostname>.<connection name>`, and faultline's topologies name
//! each bridge connection after the node it connects to, so `m1.m2` is the link from m1 to
//! m2: seen from either end, the other node is the peer. A broker's own death shows as its probe
//! connection closing (`unreachable`), and to its peer as the bridge going to `0`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::{Event, Packet, QoS};

use super::config::MqttWorkload;
use super::driver;
use crate::families::{NodeEndpoint, Observation, Observed, Probe};
use crate::history::Clock;

pub const BRIDGE_STATES: &str = "$SYS/broker/connection/+/state";

/// The peer a bridge state topic names, seen from `observer`.
pub fn bridge_peer(topic: &str, observer: &str) -> Option<String> {
    let client_id = topic
        .strip_prefix("$SYS/broker/connection/")?
        .strip_suffix("/state")?;
    let (local, remote) = client_id.split_once('.')?;
    Some(if local == observer { remote } else { local }.to_string())
}

/// What the probe connection to one broker has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub connected: bool,
    pub last_error: Option<String>,
    /// Bridge peer -> connection up.
    pub bridges: BTreeMap<String, bool>,
}

pub type SharedView = Arc<Mutex<View>>;

/// Keeps a connection to `node` subscribed to the bridge states, reconnecting after a
/// quarter of a second when it breaks, until aborted. `who` names the watcher in the client
/// id: two connections with one client id would throw each other out.
pub async fn watch(w: MqttWorkload, who: &'static str, node: NodeEndpoint, view: SharedView) {
    loop {
        let id = format!("faultline-{who}-{}", node.name);
        let mut options = driver::options(&w, &id, &node, true);
        options.set_keep_alive(Duration::from_secs(2));
        match driver::connect(options, 16, Duration::from_secs(1)).await {
            Ok((client, mut events, _)) => {
                if client
                    .subscribe(BRIDGE_STATES, QoS::AtMostOnce)
                    .await
                    .is_ok()
                {
                    {
                        let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
                        v.connected = true;
                        v.last_error = None;
                    }
                    loop {
                        match events.poll().await {
                            Ok(Event::Incoming(Packet::Publish(p))) => {
                                if let Some(peer) = bridge_peer(&p.topic, &node.name) {
                                    let up = p.payload.as_ref() == b"1";
                                    view.lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .bridges
                                        .insert(peer, up);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
                                v.connected = false;
                                v.last_error = Some(driver::connection_error(&e));
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => {
                let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
                v.connected = false;
                v.last_error = Some(e);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct NodeState {
    name: String,
    view: SharedView,
    task: tokio::task::JoinHandle<()>,
    last: Option<View>,
    reachable: bool,
}

pub struct MosquittoProbe {
    nodes: Vec<NodeState>,
}

impl MosquittoProbe {
    pub fn new(w: &MqttWorkload, members: Vec<NodeEndpoint>) -> Self {
        let nodes = members
            .into_iter()
            .map(|node| {
                let view = SharedView::default();
                let task = tokio::spawn(watch(w.clone(), "probe", node.clone(), view.clone()));
                NodeState {
                    name: node.name,
                    view,
                    task,
                    last: None,
                    reachable: true,
                }
            })
            .collect();
        MosquittoProbe { nodes }
    }
}

impl Drop for MosquittoProbe {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.task.abort();
        }
    }
}

fn diff(old: Option<&View>, new: &View) -> Vec<Observed> {
    let mut out = Vec::new();
    for (peer, up) in &new.bridges {
        let before = old.and_then(|o| o.bridges.get(peer));
        if before == Some(up) {
            continue;
        }
        out.push(if *up {
            Observed::PeerUp {
                peer: peer.clone(),
                signal: "bridge state 1 in $SYS".into(),
            }
        } else {
            Observed::PeerDown {
                peer: peer.clone(),
                signal: "bridge state 0 in $SYS".into(),
            }
        });
    }
    out
}

#[async_trait]
impl Probe for MosquittoProbe {
    async fn observe(&mut self, clock: &Clock) -> Vec<Observation> {
        let t_us = clock.now_us();
        let mut out = Vec::new();
        for n in &mut self.nodes {
            let view = n.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut push = |what| {
                out.push(Observation {
                    t_us,
                    observer: n.name.clone(),
                    what,
                })
            };
            if !view.connected {
                if n.reachable && n.last.is_some() {
                    n.reachable = false;
                    push(Observed::Unreachable {
                        detail: view
                            .last_error
                            .clone()
                            .unwrap_or_else(|| "probe connection closed".into()),
                    });
                }
                continue;
            }
            if !n.reachable {
                n.reachable = true;
                push(Observed::Reachable);
            }
            for what in diff(n.last.as_ref(), &view) {
                push(what);
            }
            n.last = Some(view);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_topic_names_the_other_end() {
        // As Mosquitto 2.0.11 publishes it for m1's bridge `connection m2`.
        let t = "$SYS/broker/connection/m1.m2/state";
        assert_eq!(bridge_peer(t, "m1").as_deref(), Some("m2"));
        assert_eq!(bridge_peer(t, "m2").as_deref(), Some("m1"));
        assert_eq!(bridge_peer("$SYS/broker/uptime", "m1"), None);
    }

    #[test]
    fn diff_reports_bridges_going_down_and_up() {
        let mut up = View {
            connected: true,
            ..Default::default()
        };
        up.bridges.insert("m2".into(), true);
        let mut down = up.clone();
        down.bridges.insert("m2".into(), false);
        assert_eq!(
            diff(Some(&up), &down),
            vec![Observed::PeerDown {
                peer: "m2".into(),
                signal: "bridge state 0 in $SYS".into()
            }]
        );
        assert_eq!(diff(Some(&down), &down), vec![]);
        assert_eq!(diff(None, &up).len(), 1);
    }
}
