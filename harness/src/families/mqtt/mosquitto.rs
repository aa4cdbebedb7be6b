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
//!
//! The same connection reads `$SYS/broker/uptime` ("<n> seconds") and
//! `$SYS/broker/clients/connected`, which Mosquitto publishes every `sys_interval` (1 s in
//! faultline's topologies, so both are read at that interval; the bridge states arrive when
//! they change). An uptime lower than the last one read means the broker started again
//! (`restarted`, observed by the broker itself); the connected-client counts are kept as a
//! series per broker and summarised in the result's notes (a bridge or a client that
//! vanished shows there as a step down).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::client::Ev;
use super::config::{MqttWorkload, Qos, Version};
use super::driver;
use crate::families::{NodeEndpoint, Observation, Observed, Probe};
use crate::history::Clock;
use async_trait::async_trait;

pub const BRIDGE_STATES: &str = "$SYS/broker/connection/+/state";
pub const UPTIME: &str = "$SYS/broker/uptime";
pub const CLIENTS: &str = "$SYS/broker/clients/connected";

/// The number a `$SYS` message starts with ("42 seconds", "3").
pub fn leading_number(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

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
    /// `$SYS/broker/uptime`, seconds.
    pub uptime: Option<u64>,
    /// `$SYS/broker/clients/connected`.
    pub clients: Option<u64>,
}

pub type SharedView = Arc<Mutex<View>>;

/// Keeps a connection to `node` subscribed to the bridge states, reconnecting after a
/// quarter of a second when it breaks, until aborted. `who` names the watcher in the client
/// id: two connections with one client id would throw each other out.
pub async fn watch(w: MqttWorkload, who: &'static str, node: NodeEndpoint, view: SharedView) {
    loop {
        let id = format!("faultline-{who}-{}", node.name);
        let mut options = driver::options(&w, &id, &node, true);
        // The probe speaks 3.1.1 whatever the workload speaks: rumqttc's MQTT 5 client
        // refuses a keep-alive under 5 s, and $SYS reads the same either way.
        options.version = Version::V311;
        options.keep_alive = Duration::from_secs(2);
        match driver::connect(options, 16, Duration::from_secs(1)).await {
            Ok((client, mut events, _)) => {
                let mut subscribed = true;
                for filter in [BRIDGE_STATES, UPTIME, CLIENTS] {
                    subscribed &= client.subscribe(filter, Qos::Zero).await.is_ok();
                }
                if subscribed {
                    {
                        let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
                        v.connected = true;
                        v.last_error = None;
                    }
                    loop {
                        match events.poll().await {
                            Ok(Ev::Message { topic, payload }) => {
                                let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
                                if topic == UPTIME {
                                    v.uptime = leading_number(&payload).or(v.uptime);
                                } else if topic == CLIENTS {
                                    v.clients = leading_number(&payload).or(v.clients);
                                } else if let Some(peer) = bridge_peer(&topic, &node.name) {
                                    v.bridges.insert(peer, payload.as_ref() == b"1");
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
                                v.connected = false;
                                v.last_error = Some(e);
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

/// Per broker, each change of `$SYS/broker/clients/connected`: (µs since the run's start, count).
pub type ClientSeries = Arc<Mutex<BTreeMap<String, Vec<(u64, u64)>>>>;

/// The series in words, for the result's notes (at most 12 steps per broker).
pub fn clients_summary(series: &ClientSeries) -> Option<String> {
    let s = series.lock().unwrap_or_else(|e| e.into_inner());
    if s.is_empty() {
        return None;
    }
    let per_node: Vec<String> = s
        .iter()
        .map(|(node, steps)| {
            let mut words: Vec<String> = steps
                .iter()
                .take(12)
                .map(|(t, n)| format!("{n} at {:.1} s", *t as f64 / 1e6))
                .collect();
            if steps.len() > 12 {
                words.push(format!("... ({} changes in all)", steps.len()));
            }
            format!("{node}: {}", words.join(", "))
        })
        .collect();
    Some(format!(
        "$SYS/broker/clients/connected (read every 1 s): {}",
        per_node.join("; ")
    ))
}

pub struct MosquittoProbe {
    nodes: Vec<NodeState>,
    clients: ClientSeries,
}

impl MosquittoProbe {
    pub fn new(w: &MqttWorkload, members: Vec<NodeEndpoint>, clients: ClientSeries) -> Self {
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
        MosquittoProbe { nodes, clients }
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
    if let (Some(before), Some(now)) = (old.and_then(|o| o.uptime), new.uptime) {
        if now < before {
            out.push(Observed::Restarted {
                detail: format!("$SYS/broker/uptime {now} s, after {before} s"),
            });
        }
    }
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
            if let Some(count) = view.clients {
                let mut series = self.clients.lock().unwrap_or_else(|e| e.into_inner());
                let steps = series.entry(n.name.clone()).or_default();
                if steps.last().map(|(_, c)| *c) != Some(count) {
                    steps.push((t_us, count));
                }
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

    #[test]
    fn an_uptime_that_goes_back_is_a_restart() {
        assert_eq!(leading_number(b"42 seconds"), Some(42));
        assert_eq!(leading_number(b"x"), None);
        let before = View {
            connected: true,
            uptime: Some(31),
            ..Default::default()
        };
        let after = View {
            uptime: Some(2),
            ..before.clone()
        };
        assert_eq!(
            diff(Some(&before), &after),
            vec![Observed::Restarted {
                detail: "$SYS/broker/uptime 2 s, after 31 s".into()
            }]
        );
        assert_eq!(diff(Some(&after), &before), vec![]);
        let series = ClientSeries::default();
        series
            .lock()
            .unwrap()
            .insert("m2".into(), vec![(1_000_000, 3), (12_300_000, 2)]);
        assert_eq!(
            clients_summary(&series).unwrap(),
            "$SYS/broker/clients/connected (read every 1 s): m2: 3 at 1.0 s, 2 at 12.3 s"
        );
    }
}
