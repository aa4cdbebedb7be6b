//! What the harness knows of the NATS family before a cluster runs: its name and roles, the
//! faults it refuses, its settings reader, and how its settings are checked, connected and
//! described.

use std::time::Duration;

use super::config::NatsWorkload;
use super::{Nats, ROLES};
use crate::cluster::compose::Topology;
use crate::families::{Broker, Family, NodeEndpoint, Settings, WorkloadSettings};
use crate::fault_kind::FaultKind;
use crate::yaml::{Diagnostics, Node, Pos};

pub struct NatsFamily;

/// The registry's line for NATS.
pub static FAMILY: NatsFamily = NatsFamily;

impl Family for NatsFamily {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn roles(&self) -> &'static [&'static str] {
        ROLES
    }

    fn refuse_kind(&self, kind: FaultKind) -> Option<String> {
        (kind == FaultKind::ClockSkew).then(|| "fault kind clock-skew shifts a broker's clock with libfaketime, which only works on dynamically linked programs; nats-server is a static Go binary that reads the clock without libc, so its clock cannot be skewed this way; alternative: pause or stop the node to make its timers fall behind".into())
    }

    fn quiet_logs(&self) -> &'static [&'static str] {
        &["async_nats"]
    }

    fn read_workload(&self, node: &Node, d: &mut Diagnostics) -> Option<WorkloadSettings> {
        NatsWorkload::parse(node, d).map(WorkloadSettings::new)
    }

    fn workload_schema(&self, g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        g.subschema_for::<super::config::NatsWorkloadKeys>()
    }
}

impl Settings for NatsWorkload {
    fn check(
        &self,
        _topology: &Topology,
        started: &[&str],
        _load: Duration,
        at: Pos,
        d: &mut Diagnostics,
    ) {
        if self.replicas as usize > started.len() {
            d.error(
                at,
                format!(
                    "workload: {} replicas asked for, but the cluster starts with {} node(s)",
                    self.replicas,
                    started.len()
                ),
            );
        }
    }

    fn refuse_fault(&self, kind: FaultKind) -> Option<String> {
        (kind == FaultKind::ScaleIn && self.system_account.is_none()).then(|| {
            "scale-in on NATS removes the server from the JetStream meta group ($JS.API.SERVER.REMOVE), which only the system account may do; set workload.nats.system_account {user, password} to a system-account user the topology defines (see docker-compose/nats-jetstream-3-spare.yml)".to_string()
        })
    }

    fn connect(&self, _topology: &Topology, nodes: Vec<NodeEndpoint>) -> Box<dyn Broker> {
        Box::new(Nats::new(self.clone(), nodes))
    }

    fn describe(&self, _topology: &Topology) -> serde_json::Value {
        serde_json::json!({
            "stream": self.stream,
            "subject": self.subject,
            "replicas": self.replicas,
            "storage": self.storage.name(),
        })
    }
}
