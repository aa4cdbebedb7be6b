//! What the harness knows of the Pulsar family before a cluster runs: its brokers, node kinds
//! and roles, its settings reader, and how its settings are checked, connected and described.

use std::time::Duration;

use super::config::PulsarWorkload;
use super::{PulsarFamily, BROKERS, PULSAR_LITE_LIMITS, ROLES};
use crate::cluster::compose::Topology;
use crate::families::{
    refuse_topology_change, Broker, Family, NodeEndpoint, Settings, WorkloadSettings,
};
use crate::fault_kind::FaultKind;
use crate::yaml::{Diagnostics, Node, Pos};

pub struct Pulsar;

/// The registry's line for Pulsar.
pub static FAMILY: Pulsar = Pulsar;

/// The kinds of node a Pulsar topology names in `x-faultline.roles`.
const NODE_ROLES: &[&str] = &["broker", "bookie", "metadata"];

impl Family for Pulsar {
    fn name(&self) -> &'static str {
        "pulsar"
    }

    fn brokers(&self) -> &'static [&'static str] {
        BROKERS
    }

    fn node_roles(&self) -> &'static [&'static str] {
        NODE_ROLES
    }

    fn roles(&self) -> &'static [&'static str] {
        ROLES
    }

    fn quiet_logs(&self) -> &'static [&'static str] {
        &["pulsar"]
    }

    fn read_workload(&self, node: &Node, d: &mut Diagnostics) -> Option<WorkloadSettings> {
        PulsarWorkload::parse(node, d).map(WorkloadSettings::new)
    }

    fn workload_schema(&self, g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<super::config::PulsarWorkloadKeys>()
    }
}

impl Settings for PulsarWorkload {
    fn check(
        &self,
        topology: &Topology,
        _started: &[&str],
        _load: Duration,
        _at: Pos,
        d: &mut Diagnostics,
    ) {
        let bookies = topology.roles.get("bookie").map_or(0, Vec::len);
        match (&self.persistence, topology.broker.as_deref()) {
            (Some(_), Some("pulsar-lite")) => d.error(
                self.pos,
                "workload.pulsar.persistence: pulsar-lite has no BookKeeper; remove it, or run on real Pulsar (docker-compose/pulsar-3.yml)",
            ),
            (Some(q), _) if q.ensemble as usize > bookies => d.error(
                self.pos,
                format!(
                    "workload.pulsar.persistence: an ensemble of {} asked for, but the topology names {bookies} bookie(s) (x-faultline.roles.bookie)",
                    q.ensemble
                ),
            ),
            _ => {}
        }
    }

    fn refuse_fault(&self, kind: FaultKind) -> Option<String> {
        refuse_topology_change(
            kind,
            "Pulsar",
            "adding or retiring a broker or bookie is not automated",
        )
    }

    fn connect(&self, topology: &Topology, nodes: Vec<NodeEndpoint>) -> Box<dyn Broker> {
        Box::new(PulsarFamily::new(self.clone(), topology, nodes))
    }

    fn describe(&self, topology: &Topology) -> serde_json::Value {
        serde_json::json!({
            "broker": topology.broker,
            "topic": self.topic,
            "subscription": self.subscription.name(),
            "consumers": self.consumers,
            "batch_size": self.batch_size,
            "operation_timeout_s": self.operation_timeout.as_secs_f64(),
            "client": "pulsar 6.9.1 (patched: frames without a checksum, see vendor/README.md)",
            "limits": (topology.broker.as_deref() == Some("pulsar-lite")).then_some(PULSAR_LITE_LIMITS),
        })
    }
}
