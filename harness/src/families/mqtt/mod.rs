//! MQTT: clustered (RabbitMQ), single and bridged (Mosquitto) brokers, through rumqttc.
//!
//! - `config`: the `workload.mqtt` settings (topic, QoS, the subscriber and its session).
//! - `driver`: producers with every PUBACK / PUBCOMP matched to its publish, the subscriber
//!   that records what it receives while the load runs, and the end markers of the drain.
//! - `client`: one client over MQTT 3.1.1 and MQTT 5 (rumqttc's two clients).
//! - `rabbitmq`: the management API (`/api/nodes`, the session queue's leader), and
//!   `prometheus`: its Prometheus endpoint (distribution links, uptime).
//! - `mosquitto`: `$SYS` bridge states, uptime and connected clients.
//! - `ejabberd`: the HTTP API (`list_cluster`, uptime).
//! - `emqx`: the REST API (`/api/v5/nodes`); written for registry machines, not run here.
//!
//! The topology's `x-faultline.broker` says which broker runs (`rabbitmq`, `mosquitto`,
//! `ejabberd`, `emqx`), so
//! the probes and the health check fit it.
//!
//! Unlike a stream, an MQTT subscription has no end to read to. The subscriber reads while the
//! load runs; the drain then publishes an end marker through every node the producers used,
//! after every producer's last acknowledgement, and waits until the subscriber has received
//! every marker and then a quiet second. A broker delivers a subscription's messages in the
//! order it accepted them (RabbitMQ: one queue; Mosquitto: one session, and one ordered
//! bridge connection), so once the marker that went through a node has arrived, everything
//! acknowledged through that node before it either arrived or never will.

mod client;
mod config;
mod driver;
mod ejabberd;
mod emqx;
mod erlang;
mod family;
mod mosquitto;
mod prometheus;
mod rabbitmq;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{wait_for, Broker, BrokerError, DrainReport, NodeEndpoint, Probe, Producer};
use crate::history::{Clock, HistorySink};
use crate::progress::Progress;
pub use config::{MqttWorkload, Version};
pub use family::FAMILY;

/// Roles a fault can target on an MQTT cluster.
pub const ROLES: &[&str] = &["queue-leader", "subscriber-node"];

/// The brokers faultline knows how to watch, as written in `x-faultline.broker`.
pub const BROKERS: &[&str] = &["rabbitmq", "mosquitto", "ejabberd", "emqx"];

/// Why this broker cannot run the workload as written, if it cannot (checked at validation).
pub fn refuse(w: &MqttWorkload, broker: Option<&str>) -> Option<String> {
    match (broker, w.version) {
        (Some("rabbitmq"), Version::V5) => Some(
            "workload.mqtt.version: RabbitMQ 3.10's MQTT plugin speaks 3.1.1 only (MQTT 5 came with RabbitMQ 3.13); use version \"3.1.1\" on this topology".into(),
        ),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    RabbitMq,
    Mosquitto,
    Ejabberd,
    Emqx,
}

impl Flavour {
    pub fn from_name(name: Option<&str>) -> Flavour {
        match name {
            Some("rabbitmq") => Flavour::RabbitMq,
            Some("ejabberd") => Flavour::Ejabberd,
            Some("emqx") => Flavour::Emqx,
            _ => Flavour::Mosquitto,
        }
    }
}

pub struct Mqtt {
    workload: MqttWorkload,
    flavour: Flavour,
    nodes: Vec<NodeEndpoint>,
    subscriber: driver::SharedSubscriber,
    subscriber_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    load_start: Arc<tokio::sync::OnceCell<Instant>>,
    /// Mosquitto: `$SYS` connected-client counts, per broker, for the notes.
    clients: mosquitto::ClientSeries,
}

impl Mqtt {
    pub fn new(workload: MqttWorkload, broker: Option<&str>, nodes: Vec<NodeEndpoint>) -> Self {
        Mqtt {
            workload,
            flavour: Flavour::from_name(broker),
            nodes,
            subscriber: Default::default(),
            subscriber_task: Mutex::new(None),
            load_start: Default::default(),
            clients: Default::default(),
        }
    }

    fn queue(&self) -> String {
        rabbitmq::session_queue(
            &self.workload.subscriber.client_id,
            self.workload.qos.level(),
        )
    }

    /// The nodes producers publish through.
    fn publish_nodes(&self) -> Vec<NodeEndpoint> {
        if self.workload.publish_to.is_empty() {
            return self.nodes.clone();
        }
        self.workload
            .publish_to
            .iter()
            .filter_map(|n| self.nodes.iter().find(|m| &m.name == n).cloned())
            .collect()
    }

    /// Every node accepts an MQTT connection (CONNACK), and the broker's own monitoring
    /// reports the cluster whole.
    async fn healthy(&self) -> Result<String, String> {
        for node in &self.nodes {
            let id = format!("faultline-health-{}", node.name);
            let o = driver::options(&self.workload, &id, node, true);
            let (client, mut events, _) = driver::connect(o, 4, self.workload.connect_timeout)
                .await
                .map_err(|e| format!("{} does not accept MQTT connections yet: {e}", node.name))?;
            client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_millis(100), events.poll()).await;
        }
        match self.flavour {
            Flavour::RabbitMq => {
                rabbitmq::cluster_whole(&self.nodes).await?;
                Ok(format!(
                    "every node accepts MQTT connections and reports all {} running, no partition (/api/nodes)",
                    self.nodes.len()
                ))
            }
            Flavour::Mosquitto if self.nodes.len() > 1 => {
                self.bridges_up().await?;
                Ok(
                    "every broker accepts MQTT connections; every bridge reports state 1 in $SYS"
                        .into(),
                )
            }
            Flavour::Mosquitto => Ok("the broker accepts MQTT connections".into()),
            Flavour::Emqx => {
                emqx::cluster_whole(&self.nodes).await?;
                Ok(format!(
                    "every node accepts MQTT connections and reports all {} running (/api/v5/nodes)",
                    self.nodes.len()
                ))
            }
            Flavour::Ejabberd => {
                ejabberd::cluster_whole(&self.nodes).await?;
                Ok(format!(
                    "every node accepts MQTT connections and lists all {} in list_cluster (HTTP API)",
                    self.nodes.len()
                ))
            }
        }
    }

    /// Every broker reports every bridge it takes part in up.
    async fn bridges_up(&self) -> Result<(), String> {
        let views: Vec<mosquitto::SharedView> =
            self.nodes.iter().map(|_| Default::default()).collect();
        let tasks: Vec<_> = self
            .nodes
            .iter()
            .zip(&views)
            .map(|(n, v)| {
                tokio::spawn(mosquitto::watch(
                    self.workload.clone(),
                    "health",
                    n.clone(),
                    v.clone(),
                ))
            })
            .collect();
        // Retained states arrive right after the subscription.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for t in &tasks {
            t.abort();
        }
        let mut any = false;
        for (n, v) in self.nodes.iter().zip(&views) {
            let v = v.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for (peer, up) in &v.bridges {
                any = true;
                if !up {
                    return Err(format!("{} reports its bridge with {peer} down", n.name));
                }
            }
        }
        if any {
            Ok(())
        } else {
            Err("no broker reports a bridge state in $SYS yet".into())
        }
    }
}

#[async_trait]
impl Broker for Mqtt {
    async fn prepare(&self, timeout: Duration, progress: &Progress) -> Result<(), BrokerError> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("not checked yet");
        while Instant::now() < deadline {
            match self.healthy().await {
                Ok(how) => {
                    progress.note(&how);
                    return Ok(());
                }
                Err(e) => last = e,
            }
            progress.status(&format!("waiting: {last}"));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(BrokerError(format!(
            "cluster not ready: the brokers' own health did not hold before the timeout (last: {last})"
        )))
    }

    async fn wait_healthy(&self, timeout: Duration) -> Result<(), BrokerError> {
        let deadline = Instant::now() + timeout;
        wait_for("the brokers' own health", deadline, || self.healthy())
            .await
            .map(|_| ())
    }

    fn client_port(&self) -> u16 {
        driver::MQTT_PORT
    }

    fn peer(
        &self,
        messages: u64,
        payload_bytes: usize,
        max_in_flight: usize,
    ) -> Option<super::PeerCommand> {
        // mosquitto_pub (Debian's) publishing the lines of its standard input to the first
        // node the producers publish to, at the workload's QoS and protocol version.
        let node = self.publish_nodes().into_iter().next()?;
        let w = &self.workload;
        let mut args: Vec<String> = [
            "-h",
            &node.ip.to_string(),
            "-p",
            &driver::MQTT_PORT.to_string(),
            "-t",
            &w.topic,
            "-q",
            &w.qos.level().to_string(),
            "-V",
            if w.version == Version::V5 {
                "mqttv5"
            } else {
                "mqttv311"
            },
            "-M",
            &max_in_flight.clamp(1, 65_535).to_string(),
            "-i",
            "faultline-peer",
            "-l",
        ]
        .map(String::from)
        .to_vec();
        if let Some(c) = &w.credentials {
            args.extend(["-u".into(), c.user.clone(), "-P".into(), c.password.clone()]);
        }
        Some(super::PeerCommand {
            tool: "mosquitto_pub (Debian's, one connection, -l)".into(),
            program: "/usr/bin/mosquitto_pub".into(),
            args,
            stdin_lines: Some((messages, payload_bytes.max(2))),
            counters: None,
        })
    }

    async fn producer(&self, index: u32) -> Result<Box<dyn Producer>, BrokerError> {
        let mut nodes = self.publish_nodes();
        if nodes.is_empty() {
            return Err(BrokerError("no node to publish to".into()));
        }
        let k = index as usize % nodes.len();
        nodes.rotate_left(k);
        let mut p = driver::MqttProducer::new(index, self.workload.clone(), nodes, 4096);
        p.open()
            .await
            .map_err(|e| BrokerError(format!("producer {index}: {e}")))?;
        Ok(Box::new(p))
    }

    async fn start_readers(&self, history: &HistorySink, clock: &Clock) -> Result<(), BrokerError> {
        let task = driver::start_subscriber(
            self.workload.clone(),
            self.nodes.clone(),
            history.clone(),
            *clock,
            self.load_start.clone(),
            self.subscriber.clone(),
        )
        .await?;
        *self
            .subscriber_task
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(())
    }

    fn load_starts(&self, at: Instant) {
        let _ = self.load_start.set(at);
    }

    async fn resolve_role(&self, role: &str) -> Result<String, BrokerError> {
        match role {
            "subscriber-node" => {
                let st = self.subscriber.lock().unwrap_or_else(|e| e.into_inner());
                st.connected_to
                    .clone()
                    .or_else(|| st.last_node.clone())
                    .ok_or_else(|| {
                        BrokerError("the subscriber has not connected to any node".into())
                    })
            }
            _ if self.flavour != Flavour::RabbitMq => Err(BrokerError(format!(
                "role {role} exists only on RabbitMQ (the node holding the session queue)"
            ))),
            _ => {
                let queue = self.queue();
                let deadline = Instant::now() + Duration::from_secs(5);
                wait_for(
                    &format!("the node holding queue {queue} known"),
                    deadline,
                    || async {
                        let mut votes = Vec::new();
                        for n in &self.nodes {
                            if let Ok(Some(l)) = rabbitmq::queue_leader(n, &queue).await {
                                votes.push(l);
                            }
                        }
                        votes.sort();
                        votes
                            .chunk_by(|a, b| a == b)
                            .max_by_key(|c| c.len())
                            .map(|c| c[0].clone())
                            .ok_or_else(|| format!("no node reports queue {queue}"))
                    },
                )
                .await
            }
        }
    }

    fn probe(&self) -> Box<dyn Probe> {
        match self.flavour {
            Flavour::RabbitMq => {
                Box::new(rabbitmq::RabbitProbe::new(self.nodes.clone(), self.queue()))
            }
            Flavour::Mosquitto => Box::new(mosquitto::MosquittoProbe::new(
                &self.workload,
                self.nodes.clone(),
                self.clients.clone(),
            )),
            Flavour::Ejabberd => Box::new(ejabberd::EjabberdProbe::new(self.nodes.clone())),
            Flavour::Emqx => Box::new(emqx::EmqxProbe::new(self.nodes.clone())),
        }
    }

    async fn drain(
        &self,
        _history: &HistorySink,
        _clock: &Clock,
        timeout: Duration,
    ) -> Result<DrainReport, BrokerError> {
        let deadline = Instant::now() + timeout;
        let mut report = DrainReport::default();
        // Every producer has its last answer by now: an end marker through each node they
        // used comes after everything they had acknowledged through it. On RabbitMQ every
        // node routes into the one session queue, which holds what it acknowledged in order,
        // so one marker through any node will do; bridged brokers need one through each. A
        // marker can be lost like any message (a classic session queue still down drops it
        // although it was PUBACKed), so one is published again every few seconds until one
        // arrives.
        let nodes = self.publish_nodes();
        let one_will_do = self.flavour == Flavour::RabbitMq;
        let mut attempts = vec![0u32; nodes.len()];
        let mut last_error: Vec<Option<String>> = vec![None; nodes.len()];
        let mut next_round = Instant::now();
        let quiet = Duration::from_secs(1);
        let mut last_count = u64::MAX;
        let mut quiet_since = Instant::now();
        loop {
            let (received, markers) = {
                let st = self.subscriber.lock().unwrap_or_else(|e| e.into_inner());
                (st.received, st.markers.clone())
            };
            if received != last_count {
                last_count = received;
                quiet_since = Instant::now();
            }
            let arrived = |i: &usize| markers.contains(&nodes[*i].name);
            let missing: Vec<usize> = if one_will_do && (0..nodes.len()).any(|i| arrived(&i)) {
                Vec::new()
            } else {
                (0..nodes.len()).filter(|i| !arrived(i)).collect()
            };
            if missing.is_empty() && quiet_since.elapsed() >= quiet {
                report.complete = true;
                break;
            }
            if Instant::now() >= deadline {
                let names: Vec<String> = missing
                    .iter()
                    .map(|i| match &last_error[*i] {
                        Some(e) => format!("{} (publishing it failed: {e})", nodes[*i].name),
                        None => format!("{} ({} acknowledged)", nodes[*i].name, attempts[*i]),
                    })
                    .collect();
                report.notes.push(format!(
                    "drain timed out after {timeout:?}: the subscriber never received an end marker published through {}",
                    names.join(", ")
                ));
                break;
            }
            if Instant::now() >= next_round {
                for &i in &missing {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let bound = left.min(Duration::from_secs(5));
                    let n = attempts[i] + 1;
                    match driver::publish_marker(&self.workload, &nodes[i], n, bound).await {
                        Ok(()) => {
                            attempts[i] = n;
                            last_error[i] = None;
                            if one_will_do {
                                break;
                            }
                        }
                        Err(e) => last_error[i] = Some(e),
                    }
                }
                next_round = Instant::now() + Duration::from_secs(3);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let republished: Vec<String> = nodes
            .iter()
            .zip(&attempts)
            .filter(|(_, a)| **a > 1)
            .map(|(n, a)| format!("{} ({a})", n.name))
            .collect();
        if !republished.is_empty() {
            report.notes.push(format!(
                "drain: end markers were acknowledged and not delivered before one arrived, through {} (markers acknowledged)",
                republished.join(", ")
            ));
        }
        self.subscriber
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop = true;
        let task = self
            .subscriber_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut task) = task {
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        let st = self.subscriber.lock().unwrap_or_else(|e| e.into_inner());
        report.received = st.received;
        report.foreign = st.foreign;
        report.notes.extend(st.notes.iter().cloned());
        report
            .notes
            .extend(mosquitto::clients_summary(&self.clients));
        if self.workload.version == Version::V5 {
            report.notes.push(format!(
                "protocol: MQTT 5 (the subscriber's session expiry interval {} s)",
                self.workload.session_expiry.as_secs()
            ));
        }
        if self.workload.qos.level() == 0 {
            report.notes.push(
                "QoS 0: nothing acknowledges a publish, so no message can be called lost; what arrived is counted as recovered".into(),
            );
        }
        Ok(report)
    }
}
