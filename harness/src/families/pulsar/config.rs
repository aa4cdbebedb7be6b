//! The `workload.pulsar` section of a scenario.

use std::time::Duration;

use schemars::JsonSchema;

use crate::yaml::{self, Diagnostics, Fields, Node};

/// The subscription type the drain reads with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    Exclusive,
    Failover,
    Shared,
}

impl Subscription {
    pub const NAMES: &'static [&'static str] = &["exclusive", "failover", "shared"];

    pub fn name(self) -> &'static str {
        match self {
            Subscription::Exclusive => "exclusive",
            Subscription::Failover => "failover",
            Subscription::Shared => "shared",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulsarWorkload {
    /// Fully qualified topic name (`persistent://tenant/namespace/topic`).
    pub topic: String,
    /// How the drain subscribes, and with how many consumers (exclusive takes one).
    pub subscription: Subscription,
    pub consumers: u32,
    /// Messages the producer batches into one entry (`None`: no batching).
    pub batch_size: Option<u32>,
    /// The client's own bound on one operation (a send receipt, a producer re-created after a
    /// reconnection). The harness's `ack_timeout` is what decides a publish is unknown.
    pub operation_timeout: Duration,
    /// BookKeeper ensemble / write quorum / ack quorum for the namespace (real Pulsar only).
    pub persistence: Option<Persistence>,
    pub pos: crate::yaml::Pos,
}

/// A namespace's BookKeeper placement: each entry is written to `write_quorum` of `ensemble`
/// bookies and acknowledged once `ack_quorum` of them have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    pub ensemble: u32,
    pub write_quorum: u32,
    pub ack_quorum: u32,
}

const KEYS: &[&str] = &[
    "topic",
    "subscription",
    "consumers",
    "batch_size",
    "operation_timeout",
    "persistence",
];

const PERSISTENCE_KEYS: &[&str] = &["ensemble", "write_quorum", "ack_quorum"];

// What `PulsarWorkload::parse` reads, described for the scenario's JSON Schema.
/// The Pulsar settings: the topic, how the drain subscribes, batching and BookKeeper
/// placement.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "PulsarWorkload")]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct PulsarWorkloadKeys {
    /// The topic (default persistent://public/default/faultline).
    #[schemars(regex(pattern = r"^persistent://[^/]+/[^/]+/[^/]+$"))]
    pub topic: Option<String>,
    /// How the drain subscribes (default exclusive).
    #[serde(default)]
    #[schemars(schema_with = "subscription_schema")]
    pub subscription: Option<String>,
    /// Consumers of the drain's subscription (default 1; exclusive takes one).
    #[schemars(range(min = 1, max = 16))]
    pub consumers: Option<u32>,
    /// Messages the producer batches into one entry (default: no batching).
    #[schemars(range(min = 1, max = 10_000))]
    pub batch_size: Option<u32>,
    /// The client's own bound on one operation (default 30s).
    pub operation_timeout: Option<crate::schema::DurationText>,
    /// BookKeeper placement for the namespace (real Pulsar only).
    pub persistence: Option<PersistenceKeys>,
}

/// `workload.pulsar.persistence`: ack_quorum <= write_quorum <= ensemble.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "PulsarPersistence")]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct PersistenceKeys {
    /// How many bookies a ledger is spread over.
    #[schemars(range(min = 1, max = 16))]
    pub ensemble: u32,
    /// How many bookies each entry is written to.
    #[schemars(range(min = 1, max = 16))]
    pub write_quorum: u32,
    /// How many bookies must have an entry to acknowledge it.
    #[schemars(range(min = 1, max = 16))]
    pub ack_quorum: u32,
}

fn subscription_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::schema::one_of(
        Subscription::NAMES,
        "How the drain subscribes (default exclusive).",
    )
}

impl PulsarWorkload {
    pub fn parse(node: &Node, d: &mut Diagnostics) -> Option<Self> {
        let f = Fields::new(node, KEYS, "workload.pulsar", d)?;
        let topic = match f.get("topic") {
            None => Some("persistent://public/default/faultline".to_string()),
            Some(n) => yaml::string(n, "workload.pulsar.topic", d).and_then(|t| {
                let parts: Vec<&str> = t
                    .strip_prefix("persistent://")
                    .map(|rest| rest.split('/').collect())
                    .unwrap_or_default();
                if parts.len() == 3 && parts.iter().all(|p| !p.is_empty()) {
                    Some(t.to_string())
                } else {
                    d.error(
                        n.pos,
                        format!("workload.pulsar.topic: expected persistent://tenant/namespace/topic, found {t:?}"),
                    );
                    None
                }
            }),
        };
        let subscription =
            match f.get("subscription") {
                None => Some(Subscription::Exclusive),
                Some(n) => yaml::choice(n, "workload.pulsar.subscription", Subscription::NAMES, d)
                    .map(|s| match s {
                        "failover" => Subscription::Failover,
                        "shared" => Subscription::Shared,
                        _ => Subscription::Exclusive,
                    }),
            };
        let consumers = match f.get("consumers") {
            None => Some(1),
            Some(n) => yaml::integer(n, "workload.pulsar.consumers", 1, 16, d).map(|v| v as u32),
        };
        if let (Some(Subscription::Exclusive), Some(c), Some(n)) =
            (subscription, consumers, f.get("consumers"))
        {
            if c > 1 {
                d.error(
                    n.pos,
                    "workload.pulsar.consumers: an exclusive subscription takes one consumer; use subscription: shared or failover for more",
                );
            }
        }
        let batch_size = match f.get("batch_size") {
            None => Some(None),
            Some(n) => {
                yaml::integer(n, "workload.pulsar.batch_size", 1, 10_000, d).map(|v| Some(v as u32))
            }
        };
        let operation_timeout = match f.get("operation_timeout") {
            None => Some(Duration::from_secs(30)),
            Some(n) => yaml::duration(n, "workload.pulsar.operation_timeout", d),
        };
        let persistence = match f.get("persistence") {
            None => Some(None),
            Some(n) => read_persistence(n, d).map(Some),
        };
        Some(PulsarWorkload {
            persistence: persistence?,
            pos: node.pos,
            topic: topic?,
            subscription: subscription?,
            consumers: consumers?,
            batch_size: batch_size?,
            operation_timeout: operation_timeout?,
        })
    }
}

fn read_persistence(node: &Node, d: &mut Diagnostics) -> Option<Persistence> {
    let path = "workload.pulsar.persistence";
    let f = Fields::new(node, PERSISTENCE_KEYS, path, d)?;
    let mut get = |key: &str, what: &str| {
        f.require(key, what, d)
            .and_then(|n| yaml::integer(n, &f.path_of(key), 1, 16, d))
            .map(|v| v as u32)
    };
    let ensemble = get("ensemble", "how many bookies a ledger is spread over");
    let write_quorum = get("write_quorum", "how many bookies each entry is written to");
    let ack_quorum = get(
        "ack_quorum",
        "how many bookies must have an entry to acknowledge it",
    );
    let p = Persistence {
        ensemble: ensemble?,
        write_quorum: write_quorum?,
        ack_quorum: ack_quorum?,
    };
    if !(p.ack_quorum <= p.write_quorum && p.write_quorum <= p.ensemble) {
        d.error(
            node.pos,
            format!(
                "{path}: expected ack_quorum <= write_quorum <= ensemble, found {}/{}/{}",
                p.ensemble, p.write_quorum, p.ack_quorum
            ),
        );
        return None;
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{property_names, schema_of, sorted};

    #[test]
    fn the_schema_has_the_keys_the_reader_takes() {
        assert_eq!(
            property_names(&schema_of::<PulsarWorkloadKeys>()),
            sorted(KEYS)
        );
        assert_eq!(
            property_names(&schema_of::<PersistenceKeys>()),
            sorted(PERSISTENCE_KEYS)
        );
    }
}
