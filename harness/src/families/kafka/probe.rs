//! The cluster's own monitoring for the Kafka API: cluster metadata (brokers present,
//! partition leaders, in-sync replicas) through the admin path of a client, and whether each
//! broker answers a Kafka request at all (ApiVersions, straight to its address).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::families::{NodeEndpoint, Observation, Observed, Probe};
use crate::history::Clock;

/// Sends ApiVersions (v0) to `addr` and reads the answer's header: the broker is up and
/// speaking Kafka.
pub async fn api_versions(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let exchange = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let client = b"faultline-probe";
        let mut req = Vec::new();
        req.extend_from_slice(&18i16.to_be_bytes()); // api key: ApiVersions
        req.extend_from_slice(&0i16.to_be_bytes()); // version 0
        req.extend_from_slice(&0x0fa1i32.to_be_bytes()); // correlation id
        req.extend_from_slice(&(client.len() as i16).to_be_bytes());
        req.extend_from_slice(client);
        let mut framed = (req.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&req);
        s.write_all(&framed)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut head = [0u8; 10];
        s.read_exact(&mut head)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let correlation = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if correlation != 0x0fa1 {
            return Err(format!("answered with correlation id {correlation}"));
        }
        Ok(())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no ApiVersions answer within {} ms", timeout.as_millis()))?
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
    let mut out = Vec::new();
    let (was, is): (BTreeSet<_>, BTreeSet<_>) = (
        before.brokers.keys().copied().collect(),
        after.brokers.keys().copied().collect(),
    );
    for id in was.difference(&is) {
        out.push(Observed::PeerDown {
            peer: name(before, *id),
            signal: "gone from the metadata's broker list".into(),
        });
    }
    for id in is.difference(&was) {
        out.push(Observed::PeerUp {
            peer: name(after, *id),
            signal: "back in the metadata's broker list".into(),
        });
    }
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

pub struct KafkaProbe {
    pub nodes: Vec<NodeEndpoint>,
    pub aliases: Aliases,
    pub port: u16,
    pub topic: String,
    pub timeout: Duration,
    pub consumer: Arc<BaseConsumer>,
    pub last: Option<View>,
    pub up: BTreeMap<String, bool>,
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
            async move { (name, api_versions(addr, timeout).await) }
        });
        for (name, answer) in futures::future::join_all(checks).await {
            let was = self.up.insert(name.clone(), answer.is_ok()).unwrap_or(true);
            let t_us = clock.now_us();
            // The harness's own view of the node, not the cluster's: never detection.
            let name = format!("harness/{name}");
            match answer {
                Err(detail) if was => out.push(Observation {
                    t_us,
                    observer: name,
                    what: Observed::Unreachable { detail },
                }),
                Ok(()) if !was => out.push(Observation {
                    t_us,
                    observer: name,
                    what: Observed::Reachable,
                }),
                _ => {}
            }
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
    fn a_broker_gone_and_a_leader_moved_are_observed_by_name() {
        let before = v(&[(1, "k1:9092"), (2, "10.0.0.11:9092")], &[(0, 1, 2)]);
        let after = v(&[(2, "10.0.0.11:9092")], &[(0, 2, 1)]);
        let got = changes(&before, &after, &nodes(), &vec![], "t");
        assert!(got.contains(&Observed::PeerDown {
            peer: "k1".into(),
            signal: "gone from the metadata's broker list".into()
        }));
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
    async fn api_versions_reports_a_silent_port() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let e = api_versions(addr, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(e.contains("no ApiVersions answer within 200 ms"), "{e}");
    }
}
