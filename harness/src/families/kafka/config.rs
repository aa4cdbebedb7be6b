//! The `workload.kafka` section of a scenario.

use std::time::Duration;

use schemars::JsonSchema;

use crate::yaml::{self, Diagnostics, Fields, Node, Pos};

/// The producer's `acks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// Every in-sync replica has the record.
    All,
    /// The partition leader has it.
    Leader,
    /// Nothing acknowledges: fire and forget, no loss verdict possible.
    None,
}

impl Acks {
    pub fn property(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }
}

/// A consumer group reading while the load runs, so rebalances under faults are measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroup {
    pub group: String,
    /// Members of the group, each its own client.
    pub members: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaWorkload {
    pub topic: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub acks: Acks,
    pub idempotence: bool,
    /// Each message keyed `<producer>-<seq>`: librdkafka's default partitioner then spreads a
    /// producer's messages over the partitions by the key's hash. Without keys (the default)
    /// its sticky partitioner fills one partition's batch at a time, as librdkafka's own
    /// benchmark and OpenMessaging Benchmark's default (no key) do.
    pub keys: bool,
    /// librdkafka properties passed through to the producers as written (`linger.ms`,
    /// `batch.size`, `compression.type`, ...), after faultline's own.
    pub properties: Vec<(String, String)>,
    pub consumer_group: Option<ConsumerGroup>,
    /// Bound on one metadata request of the probe and of the health check.
    pub metadata_timeout: Duration,
    pub pos: Pos,
}

const KEYS: &[&str] = &[
    "topic",
    "partitions",
    "replication_factor",
    "acks",
    "idempotence",
    "keys",
    "properties",
    "consumer_group",
    "metadata_timeout",
];

const GROUP_KEYS: &[&str] = &["group", "members"];
const ACKS: &[&str] = &["all", "1", "0"];
const BOOLEANS: &[&str] = &["true", "false"];

// What `KafkaWorkload::parse` reads, described for the scenario's JSON Schema.
/// The Kafka settings: the topic, the producer's acks and idempotence, librdkafka properties
/// and a consumer group.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "KafkaWorkload")]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct KafkaWorkloadKeys {
    /// The topic faultline creates (Kafka's rule: 1 to 249 letters, digits, '.', '_', '-').
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,249}$"))]
    pub topic: String,
    /// Partitions of the topic (default 3).
    #[schemars(range(min = 1, max = 1024))]
    pub partitions: Option<u32>,
    /// Replication factor of the topic (default 1).
    #[schemars(range(min = 1, max = 16))]
    pub replication_factor: Option<u32>,
    /// The producer's acks (default all).
    #[serde(default)]
    #[schemars(schema_with = "acks_schema")]
    pub acks: Option<String>,
    /// The idempotent producer (default true; needs acks all).
    #[serde(default)]
    #[schemars(schema_with = "boolean_schema")]
    pub idempotence: Option<bool>,
    /// Key each message `<producer>-<seq>`, so the partitioner spreads a producer's messages
    /// over the partitions by the key's hash (default false: no key; librdkafka's sticky
    /// partitioner then fills one partition's batch at a time, in fewer and fuller Produce
    /// requests).
    #[serde(default)]
    #[schemars(schema_with = "boolean_schema")]
    pub keys: Option<bool>,
    /// librdkafka properties passed through to the producer and consumers, except the ones
    /// faultline sets itself (bootstrap.servers, acks, enable.idempotence, client.id, group.id).
    #[serde(default)]
    #[schemars(schema_with = "properties_schema")]
    pub properties: Option<()>,
    /// A consumer group that reads the topic during the run.
    pub consumer_group: Option<GroupKeys>,
    /// Bound on one metadata request of the probe and the health check (default 500ms).
    pub metadata_timeout: Option<crate::schema::DurationText>,
}

/// `workload.kafka.consumer_group`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "KafkaConsumerGroup")]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct GroupKeys {
    /// The consumer group id.
    pub group: String,
    /// Members of the group (default 2).
    #[schemars(range(min = 1, max = 64))]
    pub members: Option<u32>,
}

fn acks_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::schema::scalar_of(ACKS, "The producer's acks (default all).")
}

fn boolean_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::schema::scalar_of(BOOLEANS, "true or false.")
}

fn properties_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "librdkafka properties passed through, such as message.timeout.ms: 10000.",
        "propertyNames": {"not": {"enum": OWN}},
        "additionalProperties": {"type": ["string", "number", "boolean"]}
    })
}

/// Properties faultline sets itself; passing them through would change what is measured.
const OWN: &[&str] = &[
    "bootstrap.servers",
    "acks",
    "enable.idempotence",
    "client.id",
    "group.id",
];

impl KafkaWorkload {
    pub fn parse(node: &Node, d: &mut Diagnostics) -> Option<Self> {
        let f = Fields::new(node, KEYS, "workload.kafka", d)?;
        let topic = f
            .require("topic", "the topic name", d)
            .and_then(|n| yaml::string(n, "workload.kafka.topic", d))
            .and_then(|s| {
                let ok = !s.is_empty()
                    && s.len() <= 249
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !ok {
                    d.error(
                        f.get("topic")?.pos,
                        "workload.kafka.topic: expected 1 to 249 letters, digits, '.', '_' or '-' (Kafka's topic name rule)",
                    );
                }
                ok.then(|| s.to_string())
            });
        let partitions = match f.get("partitions") {
            Some(n) => yaml::integer(n, "workload.kafka.partitions", 1, 1024, d).map(|v| v as u32),
            None => Some(3),
        };
        let replication_factor = match f.get("replication_factor") {
            Some(n) => {
                yaml::integer(n, "workload.kafka.replication_factor", 1, 16, d).map(|v| v as u32)
            }
            None => Some(1),
        };
        let acks = match f.get("acks") {
            Some(n) => yaml::choice(n, "workload.kafka.acks", ACKS, d).map(|a| match a {
                "all" => Acks::All,
                "1" => Acks::Leader,
                _ => Acks::None,
            }),
            None => Some(Acks::All),
        };
        let idempotence = match f.get("idempotence") {
            Some(n) => {
                yaml::choice(n, "workload.kafka.idempotence", BOOLEANS, d).map(|v| v == "true")
            }
            None => Some(true),
        };
        let keys = match f.get("keys") {
            Some(n) => yaml::choice(n, "workload.kafka.keys", BOOLEANS, d).map(|v| v == "true"),
            None => Some(false),
        };
        if let (Some(true), Some(a)) = (idempotence, acks) {
            if a != Acks::All {
                d.error(
                    f.get("acks").map(|n| n.pos).unwrap_or(f.pos),
                    format!(
                        "workload.kafka.acks: an idempotent producer needs acks all (librdkafka refuses acks {} with enable.idempotence); set idempotence: false",
                        a.property()
                    ),
                );
            }
        }
        let properties = match f.get("properties") {
            None => Some(Vec::new()),
            Some(n) => read_properties(n, d),
        };
        let consumer_group = match f.get("consumer_group") {
            None => Some(None),
            Some(n) => read_group(n, d).map(Some),
        };
        let metadata_timeout = match f.get("metadata_timeout") {
            Some(n) => yaml::duration(n, "workload.kafka.metadata_timeout", d),
            None => Some(Duration::from_millis(500)),
        };
        Some(KafkaWorkload {
            topic: topic?,
            partitions: partitions?,
            replication_factor: replication_factor?,
            acks: acks?,
            idempotence: idempotence?,
            keys: keys?,
            properties: properties?,
            consumer_group: consumer_group?,
            metadata_timeout: metadata_timeout?,
            pos: node.pos,
        })
    }
}

fn read_properties(node: &Node, d: &mut Diagnostics) -> Option<Vec<(String, String)>> {
    let path = "workload.kafka.properties";
    let crate::yaml::Value::Map(entries) = &node.value else {
        d.error(
            node.pos,
            format!("{path}: expected a mapping of librdkafka property to value"),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (k, v) in entries {
        let Some(key) = yaml::string(k, path, d) else {
            ok = false;
            continue;
        };
        if OWN.contains(&key) {
            d.error(
                k.pos,
                format!("{path}.{key}: faultline sets this property itself; use workload.kafka.{} instead", match key {
                    "acks" => "acks",
                    "enable.idempotence" => "idempotence",
                    "group.id" => "consumer_group.group",
                    _ => "topology (bootstrap and client ids come from it)",
                }),
            );
            ok = false;
            continue;
        }
        match yaml::string(v, &format!("{path}.{key}"), d) {
            Some(value) => out.push((key.to_string(), value.to_string())),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_group(node: &Node, d: &mut Diagnostics) -> Option<ConsumerGroup> {
    let f = Fields::new(node, GROUP_KEYS, "workload.kafka.consumer_group", d)?;
    let group = f
        .require("group", "the consumer group id", d)
        .and_then(|n| yaml::string(n, "workload.kafka.consumer_group.group", d))
        .map(String::from);
    let members = match f.get("members") {
        Some(n) => {
            yaml::integer(n, "workload.kafka.consumer_group.members", 1, 64, d).map(|v| v as u32)
        }
        None => Some(2),
    };
    Some(ConsumerGroup {
        group: group?,
        members: members?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{property_names, schema_of, sorted};

    #[test]
    fn the_schema_has_the_keys_the_reader_takes() {
        assert_eq!(
            property_names(&schema_of::<KafkaWorkloadKeys>()),
            sorted(KEYS)
        );
        assert_eq!(
            property_names(&schema_of::<GroupKeys>()),
            sorted(GROUP_KEYS)
        );
    }
    use crate::yaml::Diagnostics;

    fn parse(src: &str) -> (Option<KafkaWorkload>, Vec<String>) {
        let node = crate::yaml::parse(src).unwrap().unwrap();
        let mut d = Diagnostics::new(std::path::Path::new("s.yaml"));
        let w = KafkaWorkload::parse(&node, &mut d);
        let msgs = d.into_vec().into_iter().map(|m| m.to_string()).collect();
        (w, msgs)
    }

    #[test]
    fn defaults_are_the_safe_producer() {
        let (w, msgs) = parse("topic: orders\n");
        assert!(msgs.is_empty(), "{msgs:?}");
        let w = w.unwrap();
        assert_eq!(w.acks, Acks::All);
        assert!(w.idempotence);
        assert_eq!(w.partitions, 3);
        assert!(w.consumer_group.is_none());
    }

    #[test]
    fn properties_pass_through_but_not_faultlines_own() {
        let (w, msgs) = parse(
            "topic: t\nproperties:\n  linger.ms: 5\n  compression.type: lz4\n  acks: \"1\"\n",
        );
        assert!(w.is_none());
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(msgs[0].contains("s.yaml:5:3"), "{}", msgs[0]);
        assert!(msgs[0].contains("workload.kafka.acks"), "{}", msgs[0]);
        let (w, _) = parse("topic: t\nproperties:\n  linger.ms: 5\n");
        assert_eq!(
            w.unwrap().properties,
            vec![("linger.ms".to_string(), "5".to_string())]
        );
    }

    #[test]
    fn idempotence_needs_acks_all() {
        let (_, msgs) = parse("topic: t\nacks: \"1\"\n");
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(msgs[0].contains("s.yaml:2:7"), "{msgs:?}");
        let (w, msgs) = parse("topic: t\nacks: \"1\"\nidempotence: false\n");
        assert!(msgs.is_empty(), "{msgs:?}");
        assert_eq!(w.unwrap().acks, Acks::Leader);
    }

    #[test]
    fn messages_are_unkeyed_unless_keys_is_true() {
        assert!(!parse("topic: t\n").0.unwrap().keys);
        assert!(parse("topic: t\nkeys: true\n").0.unwrap().keys);
        let (w, msgs) = parse("topic: t\nkeys: yes please\n");
        assert!(w.is_none());
        assert!(msgs[0].contains("s.yaml:2:7"), "{msgs:?}");
        assert!(msgs[0].contains("workload.kafka.keys"), "{msgs:?}");
    }

    #[test]
    fn a_bad_topic_name_is_refused_where_written() {
        let (_, msgs) = parse("topic: \"a b\"\n");
        assert!(msgs[0].contains("s.yaml:1:8"), "{msgs:?}");
    }
}
