//! The cluster's own monitoring for the Kafka API: cluster metadata (brokers present,
//! partition leaders, in-sync replicas) through the admin path of a client, and whether each
//! broker answers a Kafka request at all (ApiVersions, straight to its address).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::families::{NodeEndpoint, Observation, Observed, Probe, Reachability};
use crate::history::Clock;

/// One broker's own answer to a Metadata request: the brokers it lists (id -> advertised
/// "host:port") and the controller it names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    pub brokers: BTreeMap<i32, String>,
    pub controller: i32,
}

/// Sends Metadata v1 for no topic straight to `addr` and reads the brokers and controller
/// from the answer (so each broker's own view is seen, not the client's merged one).
pub async fn node_metadata(addr: SocketAddr, timeout: Duration) -> Result<NodeView, String> {
    let exchange = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let client = b"faultline-probe";
        let mut req = Vec::new();
        req.extend_from_slice(&3i16.to_be_bytes()); // api key: Metadata
        req.extend_from_slice(&1i16.to_be_bytes()); // version 1
        req.extend_from_slice(&0x0fa2i32.to_be_bytes());
        req.extend_from_slice(&(client.len() as i16).to_be_bytes());
        req.extend_from_slice(client);
        req.extend_from_slice(&0i32.to_be_bytes()); // no topics
        let mut framed = (req.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&req);
        s.write_all(&framed)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut size = [0u8; 4];
        s.read_exact(&mut size)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let n = i32::from_be_bytes(size);
        if !(8..=(1 << 20)).contains(&n) {
            return Err(format!("answer of {n} bytes"));
        }
        let mut body = vec![0u8; n as usize];
        s.read_exact(&mut body)
            .await
            .map_err(|e| format!("short answer: {e}"))?;
        parse_metadata_v1(&body)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no Metadata answer within {} ms", timeout.as_millis()))?
}

/// A Metadata v1 response body (after the size): correlation id, brokers [id, host, port,
/// rack], controller id.
pub fn parse_metadata_v1(b: &[u8]) -> Result<NodeView, String> {
    let mut at = 4; // correlation id
    let short = || "truncated Metadata answer".to_string();
    let i32_at = |at: &mut usize| -> Result<i32, String> {
        let v = b.get(*at..*at + 4).ok_or_else(short)?;
        *at += 4;
        Ok(i32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    };
    let str_at = |at: &mut usize| -> Result<Option<String>, String> {
        let v = b.get(*at..*at + 2).ok_or_else(short)?;
        let len = i16::from_be_bytes([v[0], v[1]]);
        *at += 2;
        if len < 0 {
            return Ok(None);
        }
        let v = b.get(*at..*at + len as usize).ok_or_else(short)?;
        *at += len as usize;
        Ok(Some(String::from_utf8_lossy(v).into_owned()))
    };
    let count = i32_at(&mut at)?;
    if !(0..=10_000).contains(&count) {
        return Err(format!("{count} brokers in the answer"));
    }
    let mut view = NodeView::default();
    for _ in 0..count {
        let id = i32_at(&mut at)?;
        let host = str_at(&mut at)?.unwrap_or_default();
        let port = i32_at(&mut at)?;
        let _rack = str_at(&mut at)?;
        view.brokers.insert(id, format!("{host}:{port}"));
    }
    view.controller = i32_at(&mut at)?;
    Ok(view)
}

/// What one broker's own view shows changed.
pub fn node_changes(
    before: &NodeView,
    after: &NodeView,
    nodes: &[NodeEndpoint],
    aliases: &Aliases,
) -> Vec<Observed> {
    let name = |v: &NodeView, id: i32| {
        v.brokers
            .get(&id)
            .map(|a| broker_name(id, a, nodes, aliases))
            .unwrap_or_else(|| format!("broker {id}"))
    };
    let mut out = Vec::new();
    for id in before
        .brokers
        .keys()
        .filter(|i| !after.brokers.contains_key(i))
    {
        out.push(Observed::PeerDown {
            peer: name(before, *id),
            signal: "gone from its Metadata broker list".into(),
        });
    }
    for id in after
        .brokers
        .keys()
        .filter(|i| !before.brokers.contains_key(i))
    {
        out.push(Observed::PeerUp {
            peer: name(after, *id),
            signal: "back in its Metadata broker list".into(),
        });
    }
    if before.controller != after.controller {
        out.push(Observed::Leader {
            role: "controller".into(),
            leader: (after.controller >= 0).then(|| name(after, after.controller)),
        });
    }
    out
}

/// The cluster as one metadata answer describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Broker id -> "host:port" as advertised.
    pub brokers: BTreeMap<i32, String>,
    /// Partition -> (leader id, in-sync replica count).
    pub partitions: BTreeMap<i32, (i32, usize)>,
}

pub fn view(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> Result<View, String> {
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("metadata: {e}"))?;
    let mut v = View::default();
    for b in md.brokers() {
        v.brokers
            .insert(b.id(), format!("{}:{}", b.host(), b.port()));
    }
    for t in md.topics().iter().filter(|t| t.name() == topic) {
        match t.error() {
            // Not created yet (the health check asks before creating it): no partitions.
            Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
                continue
            }
            Some(e) => return Err(format!("metadata for {topic}: error {e:?}")),
            None => {}
        }
        for p in t.partitions() {
            v.partitions.insert(p.id(), (p.leader(), p.isr().len()));
        }
    }
    Ok(v)
}

/// Advertised address -> node, for brokers that advertise a gateway of their own.
pub type Aliases = Vec<(String, String)>;

/// A broker's name for reports: the node whose address or name it advertises, else its id.
pub fn broker_name(id: i32, advertised: &str, nodes: &[NodeEndpoint], aliases: &Aliases) -> String {
    if let Some((_, name)) = aliases.iter().find(|(a, _)| a == advertised) {
        return name.clone();
    }
    let host = advertised
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(advertised);
    nodes
        .iter()
        .find(|n| n.name == host || n.ip.to_string() == host)
        .map(|n| n.name.clone())
        .unwrap_or_else(|| format!("broker {id} ({advertised})"))
}

/// What changed from `before` to `after`, as observations of the metadata.
pub fn changes(
    before: &View,
    after: &View,
    nodes: &[NodeEndpoint],
    aliases: &Aliases,
    topic: &str,
) -> Vec<Observed> {
    let name = |v: &View, id: i32| {
        v.brokers
            .get(&id)
            .map(|a| broker_name(id, a, nodes, aliases))
            .unwrap_or_else(|| format!("broker {id}"))
    };
    // Brokers coming and going are each broker's own view (`node_changes`); the client's
    // merged view adds partition leaders and in-sync replica counts.
    let mut out = Vec::new();
    for (p, (leader, isr)) in &after.partitions {
        let old = before.partitions.get(p);
        if old.map(|(l, _)| l) != Some(leader) {
            out.push(Observed::Leader {
                role: format!("partition:{topic}-{p}"),
                leader: (*leader >= 0).then(|| name(after, *leader)),
            });
        }
        if let Some((_, old_isr)) = old {
            if old_isr != isr {
                out.push(Observed::Leader {
                    role: format!("isr-size:{topic}-{p}"),
                    leader: Some(isr.to_string()),
                });
            }
        }
    }
    out
}

/// Per partition, the in-sync replica count each time it changed: (run time, count).
pub type IsrSeries = std::sync::Arc<std::sync::Mutex<BTreeMap<i32, Vec<(u64, usize)>>>>;

/// The series in words, for the result's notes.
pub fn isr_summary(series: &IsrSeries) -> Option<String> {
    let s = series.lock().unwrap_or_else(|e| e.into_inner());
    if s.values().all(|v| v.len() <= 1) {
        return None;
    }
    let parts: Vec<String> = s
        .iter()
        .map(|(p, v)| {
            let steps: Vec<String> = v
                .iter()
                .map(|(t, n)| format!("{n} at {:.1} s", *t as f64 / 1e6))
                .collect();
            format!("partition {p}: {}", steps.join(", "))
        })
        .collect();
    Some(format!(
        "in-sync replicas over time (metadata): {}",
        parts.join("; ")
    ))
}

pub struct KafkaProbe {
    pub nodes: Vec<NodeEndpoint>,
    pub aliases: Aliases,
    pub port: u16,
    pub topic: String,
    pub timeout: Duration,
    pub consumer: Arc<BaseConsumer>,
    pub last: Option<View>,
    pub isr: IsrSeries,
    pub up: Reachability,
    pub node_views: BTreeMap<String, NodeView>,
    pub metadata_up: bool,
}

#[async_trait]
impl Probe for KafkaProbe {
    async fn observe(&mut self, clock: &Clock) -> Vec<Observation> {
        let mut out = Vec::new();
        let (port, timeout) = (self.port, self.timeout);
        let checks = self.nodes.iter().map(|n| {
            let addr = SocketAddr::from((n.ip, port));
            let name = n.name.clone();
            async move { (name, node_metadata(addr, timeout).await) }
        });
        for (node, answer) in futures::future::join_all(checks).await {
            let t_us = clock.now_us();
            if let Ok(view) = &answer {
                if let Some(before) = self.node_views.insert(node.clone(), view.clone()) {
                    for what in node_changes(&before, view, &self.nodes, &self.aliases) {
                        out.push(Observation {
                            t_us,
                            observer: node.clone(),
                            what,
                        });
                    }
                }
            }
            out.extend(self.up.observe(&node, answer.map(|_| ()), t_us));
        }
        let c = self.consumer.clone();
        let (topic, timeout) = (self.topic.clone(), self.timeout);
        let got = tokio::task::spawn_blocking(move || view(&c, &topic, timeout))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let t_us = clock.now_us();
        match got {
            Ok(v) => {
                if !self.metadata_up {
                    self.metadata_up = true;
                    out.push(Observation {
                        t_us,
                        observer: "metadata".into(),
                        what: Observed::Reachable,
                    });
                }
                {
                    let mut series = self.isr.lock().unwrap_or_else(|e| e.into_inner());
                    for (p, (_, isr)) in &v.partitions {
                        let steps = series.entry(*p).or_default();
                        if steps.last().map(|(_, n)| n) != Some(isr) {
                            steps.push((t_us, *isr));
                        }
                    }
                }
                if let Some(before) = &self.last {
                    for what in changes(before, &v, &self.nodes, &self.aliases, &self.topic) {
                        out.push(Observation {
                            t_us,
                            observer: "metadata".into(),
                            what,
                        });
                    }
                }
                self.last = Some(v);
            }
            Err(detail) if self.metadata_up => {
                self.metadata_up = false;
                out.push(Observation {
                    t_us,
                    observer: "metadata".into(),
                    what: Observed::Unreachable { detail },
                });
            }
            Err(_) => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeEndpoint> {
        ["k1", "k2", "k3"]
            .iter()
            .enumerate()
            .map(|(i, n)| NodeEndpoint {
                name: n.to_string(),
                ip: std::net::Ipv4Addr::new(10, 0, 0, 10 + i as u8),
            })
            .collect()
    }

    fn v(brokers: &[(i32, &str)], parts: &[(i32, i32, usize)]) -> View {
        View {
            brokers: brokers.iter().map(|(i, a)| (*i, a.to_string())).collect(),
            partitions: parts.iter().map(|(p, l, i)| (*p, (*l, *i))).collect(),
        }
    }

    #[test]
    fn a_leader_moved_and_an_isr_shrunk_are_observed_by_name() {
        let before = v(&[(1, "k1:9092"), (2, "10.0.0.11:9092")], &[(0, 1, 2)]);
        let after = v(&[(2, "10.0.0.11:9092")], &[(0, 2, 1)]);
        let got = changes(&before, &after, &nodes(), &vec![], "t");
        assert!(got.contains(&Observed::Leader {
            role: "partition:t-0".into(),
            leader: Some("k2".into())
        }));
        assert!(got.contains(&Observed::Leader {
            role: "isr-size:t-0".into(),
            leader: Some("1".into())
        }));
    }

    #[test]
    fn tansu_metadata_never_changes_when_a_broker_dies() {
        // Every tansu broker answers as node 111 at the shared address, leader of everything.
        let one = v(&[(111, "localhost:19092")], &[(0, 111, 1), (1, 111, 1)]);
        assert!(changes(&one, &one.clone(), &nodes(), &vec![], "t").is_empty());
        assert_eq!(
            broker_name(111, "localhost:19092", &nodes(), &vec![]),
            "broker 111 (localhost:19092)"
        );
        let own = vec![("127.0.0.1:29092".to_string(), "k2".to_string())];
        assert_eq!(broker_name(2, "127.0.0.1:29092", &nodes(), &own), "k2");
    }

    #[tokio::test]
    async fn a_silent_port_is_reported() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let e = node_metadata(addr, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(e.contains("no Metadata answer within 200 ms"), "{e}");
    }

    /// A Metadata v1 answer as a broker writes it.
    fn answer(brokers: &[(i32, &str, i32)], controller: i32) -> Vec<u8> {
        let mut b = 7i32.to_be_bytes().to_vec();
        b.extend_from_slice(&(brokers.len() as i32).to_be_bytes());
        for (id, host, port) in brokers {
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&(host.len() as i16).to_be_bytes());
            b.extend_from_slice(host.as_bytes());
            b.extend_from_slice(&port.to_be_bytes());
            b.extend_from_slice(&(-1i16).to_be_bytes()); // no rack
        }
        b.extend_from_slice(&controller.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // no topics
        b
    }

    #[test]
    fn metadata_v1_answers_are_read_and_compared() {
        let before =
            parse_metadata_v1(&answer(&[(1, "k1", 9092), (2, "10.0.0.11", 9092)], 1)).unwrap();
        assert_eq!(before.controller, 1);
        assert_eq!(
            before.brokers.get(&2).map(String::as_str),
            Some("10.0.0.11:9092")
        );
        let after = parse_metadata_v1(&answer(&[(2, "10.0.0.11", 9092)], 2)).unwrap();
        let got = node_changes(&before, &after, &nodes(), &vec![]);
        assert_eq!(
            got,
            vec![
                Observed::PeerDown {
                    peer: "k1".into(),
                    signal: "gone from its Metadata broker list".into()
                },
                Observed::Leader {
                    role: "controller".into(),
                    leader: Some("k2".into())
                }
            ]
        );
        assert!(parse_metadata_v1(&answer(&[(1, "k1", 9092)], 1)[..9]).is_err());
    }
}
