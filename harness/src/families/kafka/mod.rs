//! Kafka API: Apache Kafka (KRaft) on machines with a registry, tansu offline, through
//! rdkafka (librdkafka, bundled).
//!
//! - `config`: the `workload.kafka` settings (topic, partitions, acks, idempotence, librdkafka
//!   properties passed through).
//! - `driver`: producers with every delivery report recorded (partition, offset), and the
//!   drain that reads every partition from its first offset to the end offsets it asked for.
//! - `probe`: cluster metadata (brokers, partition leaders, in-sync replicas) and whether
//!   each broker answers a Kafka request.
//! - `gateway`: loopback TCP forwarders, so a client outside Docker reaches the brokers at
//!   the addresses they advertise: one shared by stateless brokers (tansu; it stands in for
//!   their load balancer), or one per broker (Apache Kafka). The topology's
//!   `x-faultline.gateways` lists them.

mod config;
mod driver;
mod family;
mod gateway;
mod group;
mod probe;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;

use super::{wait_for, Broker, BrokerError, DrainReport, NodeEndpoint, Probe, Producer};
use crate::cluster::compose::Topology;
use crate::history::{Clock, HistorySink};
use crate::progress::Progress;
pub use config::KafkaWorkload;
pub use family::FAMILY;

/// Roles a fault can target on a Kafka-API cluster.
/// - `partition-leader`: the leader of partition 0 in the metadata (Apache Kafka);
/// - `producer-broker`, `member-broker`: the broker producer 0's (consumer group member 0's)
///   busiest open connection goes through (the one carrying its records), read from the
///   client.id of the connections through the gateways and the bytes each has carried.
/// - `controller`: the controller the brokers name in their Metadata answers.
pub const ROLES: &[&str] = &[
    "partition-leader",
    "controller",
    "producer-broker",
    "member-broker",
];

/// The brokers faultline knows, as written in `x-faultline.broker`.
pub const BROKERS: &[&str] = &["tansu", "apache-kafka"];

pub const CLIENT_PORT: u16 = 9092;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Stateless brokers over PostgreSQL: no replication, no leader election.
    Tansu,
    ApacheKafka,
}

/// What tansu cannot show, said in every result of a scenario that runs on it.
pub const TANSU_LIMITS: &str = "tansu: stateless brokers over one PostgreSQL; every broker reports itself (node 111) as the only broker and as leader and sole in-sync replica of every partition, so there is no leader election, no replication and no ISR: acks all means the broker that took the record wrote it to PostgreSQL. The seed's ISR and detection claims are not applicable here, and no metadata change can show a broker's death (detection is null for that reason).";

pub struct Kafka {
    workload: KafkaWorkload,
    flavour: Flavour,
    /// The nodes that run brokers (the storage node of tansu is not one).
    brokers: Vec<NodeEndpoint>,
    gateway_specs: Vec<crate::cluster::compose::Gateway>,
    gateways: tokio::sync::OnceCell<Vec<gateway::Gateway>>,
    findings: driver::SharedFindings,
    group: std::sync::Mutex<Option<group::Group>>,
    /// The advertised-listeners finding, when the brokers' own answers show it.
    advertised: std::sync::Mutex<Option<String>>,
    isr: probe::IsrSeries,
}

impl Kafka {
    pub fn new(workload: KafkaWorkload, topology: &Topology, nodes: Vec<NodeEndpoint>) -> Self {
        let flavour = match topology.broker.as_deref() {
            Some("tansu") => Flavour::Tansu,
            _ => Flavour::ApacheKafka,
        };
        let brokers = if topology.gateways.is_empty() {
            nodes
        } else {
            nodes
                .into_iter()
                .filter(|n| {
                    topology
                        .gateways
                        .iter()
                        .any(|g| g.services.contains(&n.name))
                })
                .collect()
        };
        Kafka {
            workload,
            flavour,
            brokers,
            gateway_specs: topology.gateways.clone(),
            gateways: Default::default(),
            findings: Default::default(),
            group: Default::default(),
            advertised: Default::default(),
            isr: Default::default(),
        }
    }

    fn addr(node: &NodeEndpoint) -> SocketAddr {
        SocketAddr::from((node.ip, CLIENT_PORT))
    }

    /// `bootstrap.servers`: the gateways where there are some, else every broker.
    fn bootstrap(&self) -> String {
        let addrs: Vec<String> = if self.gateway_specs.is_empty() {
            self.brokers
                .iter()
                .map(|n| Self::addr(n).to_string())
                .collect()
        } else {
            self.gateway_specs
                .iter()
                .map(|g| g.listen.to_string())
                .collect()
        };
        addrs.join(",")
    }

    async fn start_gateways(&self) -> Result<(), BrokerError> {
        self.gateways
            .get_or_try_init(|| async {
                let mut started = Vec::new();
                for spec in &self.gateway_specs {
                    let targets = self
                        .brokers
                        .iter()
                        .filter(|n| spec.services.contains(&n.name))
                        .map(|n| (n.name.clone(), SocketAddr::from((n.ip, spec.port))))
                        .collect();
                    started.push(
                        gateway::Gateway::start(spec.listen, targets)
                            .await
                            .map_err(BrokerError)?,
                    );
                }
                Ok::<_, BrokerError>(started)
            })
            .await
            .map(|_| ())
    }

    /// Brokers that advertise a gateway of their own, by that gateway's address.
    fn aliases(&self) -> probe::Aliases {
        self.gateway_specs
            .iter()
            .filter(|g| g.services.len() == 1)
            .map(|g| (g.listen.to_string(), g.services[0].clone()))
            .collect()
    }

    fn metadata_client(&self, id: &str) -> Result<BaseConsumer, BrokerError> {
        driver::base_config(&self.bootstrap(), id)
            .create()
            .map_err(|e| BrokerError(format!("create Kafka metadata client: {e}")))
    }

    async fn view(&self, client: Arc<BaseConsumer>) -> Result<probe::View, String> {
        let topic = self.workload.topic.clone();
        let timeout = self.workload.metadata_timeout.max(Duration::from_secs(1));
        tokio::task::spawn_blocking(move || probe::view(&client, &topic, timeout))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Every broker answers a Metadata request at its own address; their answers.
    async fn all_answer(&self) -> Result<Vec<probe::NodeView>, String> {
        let mut views = Vec::new();
        for n in &self.brokers {
            views.push(
                probe::node_metadata(Self::addr(n), self.workload.metadata_timeout)
                    .await
                    .map_err(|e| format!("{}: {e}", n.name))?,
            );
        }
        Ok(views)
    }

    async fn create_topic(&self) -> Result<(), BrokerError> {
        let admin: AdminClient<DefaultClientContext> =
            driver::base_config(&self.bootstrap(), "faultline-admin")
                .create()
                .map_err(|e| BrokerError(format!("create Kafka admin client: {e}")))?;
        let w = &self.workload;
        let topic = NewTopic::new(
            &w.topic,
            w.partitions as i32,
            TopicReplication::Fixed(w.replication_factor as i32),
        );
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&topic], &opts)
            .await
            .map_err(|e| BrokerError(format!("create topic {}: {e}", w.topic)))?;
        for r in results {
            if let Err((name, code)) = r {
                return Err(BrokerError(format!(
                    "create topic {name} ({} partitions, replication factor {}): {code:?}",
                    w.partitions, w.replication_factor
                )));
            }
        }
        Ok(())
    }

    fn notes(&self, report: &mut DrainReport) {
        if self.flavour == Flavour::Tansu {
            report.notes.push(TANSU_LIMITS.into());
        }
        for g in self.gateways.get().into_iter().flatten() {
            report.notes.push(g.summary());
        }
        if let Some(finding) = &*self.advertised.lock().unwrap_or_else(|e| e.into_inner()) {
            report.notes.push(finding.clone());
        }
        if let Some(isr) = probe::isr_summary(&self.isr) {
            report.notes.push(isr);
        }
        // The client's own cost, from librdkafka's statistics (the last quarter-second of a
        // producer can be missing): a broker thread that spins shows here as many wake-ups
        // per message.
        if let Some(c) = self.client_counters() {
            report
                .notes
                .push(format!("producers' librdkafka: {}", c.summary()));
        }
        let f = self.findings.lock().unwrap_or_else(|e| e.into_inner());
        if !f.errors.is_empty() {
            let kinds: Vec<String> = f.errors.iter().map(|(k, n)| format!("{k} x{n}")).collect();
            report
                .notes
                .push(format!("producer errors: {}", kinds.join(", ")));
        }
        for fatal in &f.fatal {
            report.notes.push(format!(
                "fatal producer error (the client, not one message): {fatal}"
            ));
        }
    }
}

/// When every broker lists only itself, each at its own address, a client that has
/// metadata knows one broker: the finding, in a Kafka engineer's words.
fn advertised_alone(views: &[probe::NodeView]) -> Option<String> {
    let addrs: Vec<&String> = views
        .iter()
        .filter(|v| v.brokers.len() == 1)
        .flat_map(|v| v.brokers.values())
        .collect();
    let mut distinct = addrs.clone();
    distinct.sort();
    distinct.dedup();
    (views.len() > 1 && addrs.len() == views.len() && distinct.len() > 1).then(|| {
        format!(
            "advertised listeners: every broker's Metadata lists only itself, each at its own address ({}); a client that has metadata knows one broker, and librdkafka (2.10 and later) no longer falls back to bootstrap.servers, so when that broker dies the client cannot fail over: its requests time out. Advertise one shared address (a load balancer), as x-faultline.gateways does",
            distinct.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )
    })
}

#[async_trait]
impl Broker for Kafka {
    async fn prepare(&self, timeout: Duration, progress: &Progress) -> Result<(), BrokerError> {
        let deadline = Instant::now() + timeout;
        self.start_gateways().await?;
        for g in &self.gateway_specs {
            progress.note(&format!(
                "client gateway on {} forwards to {} (port {})",
                g.listen,
                g.services.join(", "),
                g.port
            ));
        }
        let views = wait_for("every broker answers a Metadata request", deadline, || {
            self.all_answer()
        })
        .await?;
        progress.note("every broker answers Kafka requests");
        if let Some(finding) = advertised_alone(&views) {
            progress.note(&finding);
            *self.advertised.lock().unwrap_or_else(|e| e.into_inner()) = Some(finding);
        }
        let client = Arc::new(self.metadata_client("faultline-health")?);
        wait_for("cluster metadata lists a broker", deadline, || async {
            let v = self.view(client.clone()).await?;
            if v.brokers.is_empty() {
                return Err("no broker in the metadata".into());
            }
            Ok(())
        })
        .await?;
        self.create_topic().await?;
        let w = &self.workload;
        let v = wait_for(
            "every partition of the topic has a leader",
            deadline,
            || async {
                let v = self.view(client.clone()).await?;
                let led = v.partitions.values().filter(|(l, _)| *l >= 0).count();
                if led < w.partitions as usize {
                    return Err(format!(
                        "{led} of {} partitions have a leader",
                        w.partitions
                    ));
                }
                Ok(v)
            },
        )
        .await?;
        progress.note(&format!(
            "topic {} created: {} partition(s), replication factor {}; metadata lists broker(s) {:?}",
            w.topic,
            w.partitions,
            w.replication_factor,
            v.brokers.values().collect::<Vec<_>>()
        ));
        Ok(())
    }

    async fn wait_healthy(&self, timeout: Duration) -> Result<(), BrokerError> {
        let deadline = Instant::now() + timeout;
        wait_for("every broker answers a Metadata request", deadline, || {
            self.all_answer()
        })
        .await
        .map(|_| ())
    }

    fn client_port(&self) -> u16 {
        CLIENT_PORT
    }

    fn client_counters(&self) -> Option<super::ClientCounters> {
        let f = self.findings.lock().unwrap_or_else(|e| e.into_inner());
        (!f.statistics.is_empty()).then(|| {
            f.statistics
                .values()
                .fold(super::ClientCounters::default(), |a, c| {
                    super::ClientCounters {
                        messages: a.messages + c.messages,
                        requests: a.requests + c.requests,
                        wakeups: a.wakeups + c.wakeups,
                    }
                })
        })
    }

    fn infrastructure_cpu_seconds(&self) -> Option<f64> {
        let gateways = self.gateways.get().filter(|g| !g.is_empty())?;
        gateways
            .iter()
            .map(gateway::Gateway::cpu_seconds)
            .sum::<Option<f64>>()
    }

    fn peer(
        &self,
        messages: u64,
        payload_bytes: usize,
        max_in_flight: usize,
    ) -> Option<super::PeerCommand> {
        // librdkafka's own rdkafka_performance, built from the librdkafka faultline links
        // (2.12, the rdkafka-sys crate's source) by scripts/install-peers.sh: the same client
        // library, driven by its authors' benchmark, with the workload's acks, idempotence
        // and librdkafka properties. (Debian's kcat, on librdkafka 2.0, cannot read the
        // ApiVersions answer of tansu's gateway.)
        let w = &self.workload;
        let mut args: Vec<String> = [
            "-P",
            "-t",
            &w.topic,
            "-b",
            &self.bootstrap(),
            "-s",
            &payload_bytes.to_string(),
            "-c",
            &messages.to_string(),
        ]
        .map(String::from)
        .to_vec();
        let mut props = vec![
            ("acks".to_string(), w.acks.property().to_string()),
            ("enable.idempotence".into(), w.idempotence.to_string()),
            (
                "queue.buffering.max.messages".into(),
                max_in_flight.max(1).to_string(),
            ),
        ];
        props.extend(w.properties.iter().cloned());
        for (k, v) in props {
            args.push("-X".into());
            args.push(format!("{k}={v}"));
        }
        // librdkafka's statistics, as faultline's producers keep them, on standard output.
        args.extend(["-T".into(), driver::STATISTICS_MS.to_string()]);
        Some(super::PeerCommand {
            tool: "rdkafka_performance (librdkafka 2.12's own benchmark)".into(),
            program: super::peers_dir().join("rdkafka_performance"),
            args,
            stdin_lines: None,
            counters: Some(driver::last_counters),
        })
    }

    async fn producer(&self, index: u32) -> Result<Box<dyn Producer>, BrokerError> {
        Ok(Box::new(driver::KafkaProducer::new(
            &self.workload,
            &self.bootstrap(),
            index,
            self.findings.clone(),
        )?))
    }

    async fn start_readers(&self, history: &HistorySink, clock: &Clock) -> Result<(), BrokerError> {
        let Some(g) = &self.workload.consumer_group else {
            return Ok(());
        };
        let group = group::Group::start(
            &self.bootstrap(),
            &self.workload,
            g,
            history,
            clock,
            Duration::from_secs(60),
        )
        .await?;
        *self.group.lock().unwrap_or_else(|e| e.into_inner()) = Some(group);
        Ok(())
    }

    async fn resolve_role(&self, role: &str) -> Result<String, BrokerError> {
        let client = Arc::new(self.metadata_client("faultline-roles")?);
        let v = self.view(client).await.map_err(BrokerError)?;
        match role {
            "partition-leader" => {
                let (leader, _) = v.partitions.get(&0).copied().ok_or_else(|| {
                    BrokerError(format!("{role}: no partition 0 in the metadata"))
                })?;
                let advertised = v.brokers.get(&leader).cloned().unwrap_or_default();
                let name = probe::broker_name(leader, &advertised, &self.brokers, &self.aliases());
                if self.brokers.iter().any(|n| n.name == name) {
                    Ok(name)
                } else if self.flavour == Flavour::Tansu {
                    Err(BrokerError(format!(
                        "{role}: every tansu broker reports itself ({name}) as leader of every partition, so no one node leads partition 0; name a broker instead"
                    )))
                } else {
                    Err(BrokerError(format!(
                        "{role}: partition 0's leader is {name}, which no node of the topology advertises"
                    )))
                }
            }
            "controller" => {
                let mut last = String::from("no broker asked");
                for n in &self.brokers {
                    match probe::node_metadata(Self::addr(n), self.workload.metadata_timeout).await
                    {
                        Ok(v) => {
                            let advertised =
                                v.brokers.get(&v.controller).cloned().unwrap_or_default();
                            let name = probe::broker_name(
                                v.controller,
                                &advertised,
                                &self.brokers,
                                &self.aliases(),
                            );
                            return if self.brokers.iter().any(|b| b.name == name) {
                                Ok(name)
                            } else {
                                Err(BrokerError(format!(
                                    "{role}: {} names controller {name}, which is no node of the topology (tansu: every broker names itself, node 111)",
                                    n.name
                                )))
                            };
                        }
                        Err(e) => last = format!("{}: {e}", n.name),
                    }
                }
                Err(BrokerError(format!("{role}: no broker answered ({last})")))
            }
            "producer-broker" | "member-broker" => {
                let client = if role == "producer-broker" {
                    driver::producer_client_id(0)
                } else {
                    group::member_client_id(0)
                };
                // The busiest connection across the gateways: the one carrying the records.
                let busiest = self
                    .gateways
                    .get()
                    .into_iter()
                    .flatten()
                    .flat_map(|g| g.brokers_of(&client).into_iter().next())
                    .max_by_key(|(bytes, _)| *bytes);
                busiest.map(|(_, name)| name).ok_or_else(|| {
                    BrokerError(format!(
                        "{role}: {client} has no open connection through a gateway (a topology without x-faultline.gateways cannot tell)"
                    ))
                })
            }
            _ => Err(BrokerError(format!("unknown role {role}"))),
        }
    }

    fn probe(&self) -> Box<dyn Probe> {
        let consumer = match self.metadata_client("faultline-probe") {
            Ok(c) => Arc::new(c),
            // Creating a client fails only on a bad configuration, which prepare already used.
            Err(e) => panic!("{e}"),
        };
        Box::new(probe::KafkaProbe {
            nodes: self.brokers.clone(),
            aliases: self.aliases(),
            port: CLIENT_PORT,
            topic: self.workload.topic.clone(),
            timeout: self.workload.metadata_timeout,
            consumer,
            last: None,
            isr: self.isr.clone(),
            up: Default::default(),
            node_views: Default::default(),
            metadata_up: true,
        })
    }

    async fn drain(
        &self,
        history: &HistorySink,
        clock: &Clock,
        timeout: Duration,
    ) -> Result<DrainReport, BrokerError> {
        let deadline = Instant::now() + timeout;
        let ends = driver::end_offsets(&self.bootstrap(), &self.workload, deadline).await?;
        let group = self.group.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut report = match group {
            // Stopped once read to the end: dropping it closes the members.
            Some(g) => g.finish(&ends, deadline).await,
            None => {
                driver::drain(
                    &self.bootstrap(),
                    &self.workload,
                    history,
                    clock,
                    ends,
                    deadline,
                )
                .await?
            }
        };
        self.notes(&mut report);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alone(addrs: &[&str]) -> Vec<probe::NodeView> {
        addrs
            .iter()
            .map(|a| probe::NodeView {
                brokers: [(111, a.to_string())].into_iter().collect(),
                controller: 111,
            })
            .collect()
    }

    #[test]
    fn brokers_that_each_advertise_only_themselves_are_named_as_the_reason() {
        let got = advertised_alone(&alone(&["t1:9092", "t2:9092", "t3:9092"])).unwrap();
        assert!(got.contains("cannot fail over"), "{got}");
        assert!(got.contains("t1:9092, t2:9092, t3:9092"), "{got}");
        // One shared address (the gateway): a client can always reconnect.
        assert!(advertised_alone(&alone(&["127.0.0.1:19092"; 3])).is_none());
    }
}
