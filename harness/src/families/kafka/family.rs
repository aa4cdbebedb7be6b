//! What the harness knows of the Kafka family before a cluster runs: its brokers and roles, its
//! settings reader, and how its settings are checked, connected and described.

use std::time::Duration;

use super::config::KafkaWorkload;
use super::{Kafka, BROKERS, ROLES, TANSU_LIMITS};
use crate::cluster::compose::Topology;
use crate::families::{
    refuse_topology_change, Broker, Family, NodeEndpoint, Settings, WorkloadSettings,
};
use crate::fault_kind::FaultKind;
use crate::yaml::{Diagnostics, Node, Pos};

pub struct KafkaFamily;

/// The registry's line for Kafka.
pub static FAMILY: KafkaFamily = KafkaFamily;

impl Family for KafkaFamily {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn brokers(&self) -> &'static [&'static str] {
        BROKERS
    }

    fn roles(&self) -> &'static [&'static str] {
        ROLES
    }

    fn quiet_logs(&self) -> &'static [&'static str] {
        &["librdkafka", "rdkafka"]
    }

    fn read_workload(&self, node: &Node, d: &mut Diagnostics) -> Option<WorkloadSettings> {
        KafkaWorkload::parse(node, d).map(WorkloadSettings::new)
    }

    fn workload_schema(&self, g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<super::config::KafkaWorkloadKeys>()
    }
}

impl Settings for KafkaWorkload {
    fn check(
        &self,
        topology: &Topology,
        started: &[&str],
        _load: Duration,
        _at: Pos,
        d: &mut Diagnostics,
    ) {
        let brokers = if topology.gateways.is_empty() {
            started.len()
        } else {
            let mut named: Vec<&String> =
                topology.gateways.iter().flat_map(|g| &g.services).collect();
            named.sort();
            named.dedup();
            named.len()
        };
        if self.replication_factor as usize > brokers {
            d.error(
                self.pos,
                format!(
                    "workload.kafka: replication factor {} asked for, but the cluster has {brokers} broker(s)",
                    self.replication_factor
                ),
            );
        }
    }

    fn refuse_fault(&self, kind: FaultKind) -> Option<String> {
        refuse_topology_change(
            kind,
            "Kafka clusters",
            "reassigning partitions to a new or retiring broker is not automated",
        )
    }

    fn connect(&self, topology: &Topology, nodes: Vec<NodeEndpoint>) -> Box<dyn Broker> {
        Box::new(Kafka::new(self.clone(), topology, nodes))
    }

    fn describe(&self, topology: &Topology) -> serde_json::Value {
        serde_json::json!({
            "broker": topology.broker,
            "topic": self.topic,
            "partitions": self.partitions,
            "replication_factor": self.replication_factor,
            "acks": self.acks.property(),
            "idempotence": self.idempotence,
            "properties": self.properties.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "consumer_group": self.consumer_group.as_ref().map(|g| serde_json::json!({"group": g.group, "members": g.members})),
            "client": format!("rdkafka 0.39 (librdkafka {})", rdkafka::util::get_rdkafka_version().1),
            "limits": (topology.broker.as_deref() == Some("tansu")).then_some(TANSU_LIMITS),
        })
    }
}
