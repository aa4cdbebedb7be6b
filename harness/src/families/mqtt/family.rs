//! What the harness knows of the MQTT family before a cluster runs: its brokers and roles, its
//! settings reader, and how its settings are checked, connected and described.

use std::time::Duration;

use super::config::MqttWorkload;
use super::{refuse, Mqtt, BROKERS, ROLES};
use crate::cluster::compose::Topology;
use crate::families::{
    refuse_topology_change, Broker, Family, NodeEndpoint, Settings, WorkloadSettings,
};
use crate::fault_kind::FaultKind;
use crate::yaml::{Diagnostics, Node, Pos};

pub struct MqttFamily;

/// The registry's line for MQTT.
pub static FAMILY: MqttFamily = MqttFamily;

impl Family for MqttFamily {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn brokers(&self) -> &'static [&'static str] {
        BROKERS
    }

    fn roles(&self) -> &'static [&'static str] {
        ROLES
    }

    fn read_workload(&self, node: &Node, d: &mut Diagnostics) -> Option<WorkloadSettings> {
        MqttWorkload::parse(node, d).map(WorkloadSettings::new)
    }

    fn workload_schema(&self, g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<super::config::MqttWorkloadKeys>()
    }
}

impl Settings for MqttWorkload {
    fn check(
        &self,
        topology: &Topology,
        started: &[&str],
        load: Duration,
        _at: Pos,
        d: &mut Diagnostics,
    ) {
        for (name, pos) in self.named_nodes() {
            if !started.contains(&name.as_str()) {
                d.error(
                    *pos,
                    format!(
                        "workload.mqtt: no node named {name:?}: expected one of {}",
                        started.join(", ")
                    ),
                );
            }
        }
        self.check_duration(load, d);
        if let Some(why) = refuse(self, topology.broker.as_deref()) {
            d.error(self.pos, why);
        }
    }

    fn refuse_fault(&self, kind: FaultKind) -> Option<String> {
        refuse_topology_change(
            kind,
            "MQTT brokers",
            "joining and retiring a RabbitMQ node or a bridged Mosquitto is not automated",
        )
    }

    fn connect(&self, topology: &Topology, nodes: Vec<NodeEndpoint>) -> Box<dyn Broker> {
        Box::new(Mqtt::new(self.clone(), topology.broker.as_deref(), nodes))
    }

    fn describe(&self, topology: &Topology) -> serde_json::Value {
        let sub = &self.subscriber;
        serde_json::json!({
            "broker": topology.broker,
            "protocol": format!("MQTT {}", self.version.name()),
            "client": "rumqttc 0.25.1 (patched: PUBREL of an earlier connection answered, see vendor/README.md)",
            "topic": self.topic,
            "qos": self.qos.level(),
            "publish_to": self.publish_to,
            "subscriber": {
                "client_id": sub.client_id,
                "clean_session": sub.clean_session,
                "filter": sub.filter,
                "node": sub.node,
                "offline_at_s": sub.offline_at.map(|d| d.as_secs_f64()),
                "reconnect_at_s": sub.reconnect_at.map(|d| d.as_secs_f64()),
                "reconnect_to": sub.reconnect_to,
            },
        })
    }
}
