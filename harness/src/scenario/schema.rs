//! The scenario's JSON Schema (`faultline schema scenario`, committed as
//! `schemas/scenario.schema.json`), for editors: completion, hover text and early red
//! squiggles while a scenario is written.
//!
//! Each part is described where it is read: the sections here, each family's
//! `workload.<family>` in its `config.rs`, each fault kind's settings in `faults/<kind>.rs`.
//! Tests hold every object's keys to the key list its reader accepts, and every shipped
//! scenario to the schema. What a schema cannot know (a node name must be one of the
//! topology's, a fault must heal before the load ends) stays with `faultline validate`.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::families;
use crate::fault_kind::FaultKind;
use crate::faults;
use crate::schema::{DurationText, PositiveNumber, Share, Target};

/// Where the schema says it lives, relative to a scenario under `scenarios/<family>/`.
pub const FILE: &str = "schemas/scenario.schema.json";

/// The schema `faultline schema scenario` prints.
pub fn scenario_schema() -> Schema {
    crate::schema::scenario_generator().into_root_schema_for::<ScenarioKeys>()
}

/// A faultline scenario: the cluster to start, the load to drive, the faults to inject when,
/// and the checks that decide the verdict.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "Scenario", title = "faultline scenario")]
pub struct ScenarioKeys {
    /// A short name (letters, digits, '-', '_', '.'); it names the run directory.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub name: String,
    /// What the scenario shows, in a sentence or two (shown in the reports).
    pub description: Option<String>,
    /// The cluster to start.
    pub cluster: ClusterKeys,
    /// The load to drive.
    pub workload: WorkloadKeys,
    /// How the cluster is watched during the run.
    pub probes: Option<ProbeKeys>,
    /// The fault schedule, times from the start of the load.
    pub faults: Option<Vec<FaultKeys>>,
    /// What the verdict holds the run to.
    pub checks: Option<CheckKeys>,
    /// How far each number may move against a baseline (`--baseline`) before it is a
    /// regression: a share ("20%") or a share and an absolute slack.
    pub regression: Option<RegressionKeys>,
    /// What `faultline capacity` searches: the highest rate that holds the SLO, with all
    /// nodes and with the `n_minus_1` fault held.
    pub capacity: Option<CapacityKeys>,
}

/// `capacity:`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "Capacity")]
pub struct CapacityKeys {
    /// What a step must hold to pass.
    pub slo: SloKeys,
    /// The rates to try.
    pub search: SearchKeys,
    /// How long each step lasts.
    pub step: Option<StepKeys>,
    /// The fault held for the whole N-1 search (kill, pause, stop, partition, loss,
    /// bandwidth, delay, reorder, duplicate, corrupt, disk-full or clock-skew; no `at` or `for`).
    pub n_minus_1: Option<HeldFaultKeys>,
    /// The load the cluster must carry (messages per second); the report gives the headroom
    /// the N-1 maximum leaves above it.
    pub planned_peak: Option<PositiveNumber>,
    /// The failover run's load, as a share of the N-1 maximum (default 70%).
    pub failover_load: Option<Share>,
}

/// `capacity.slo`: latency bounds from the intended send time, and error and throughput
/// floors; at least one latency bound.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "Slo")]
pub struct SloKeys {
    /// Median latency bound.
    pub p50: Option<DurationText>,
    /// 90th percentile bound.
    pub p90: Option<DurationText>,
    /// 99th percentile bound.
    pub p99: Option<DurationText>,
    /// 99.9th percentile bound.
    pub p999: Option<DurationText>,
    /// Bound on the slowest acknowledgement.
    pub max: Option<DurationText>,
    /// Failed and unknown publishes allowed, as a share of the step's publishes (default 0%).
    pub max_error_rate: Option<Share>,
    /// Acknowledged rate over offered rate, at least (default 99%).
    pub min_achieved: Option<Share>,
}

/// `capacity.search`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "CapacitySearch")]
pub struct SearchKeys {
    /// The first step's rate (messages per second).
    pub start: PositiveNumber,
    /// The highest rate to try.
    pub max: PositiveNumber,
    /// The ramp's growth from one step to the next (default 2, from 1.1 to 10).
    #[schemars(range(min = 1.1, max = 10.0))]
    pub factor: Option<f64>,
    /// The bisection stops when the last pass and the first failure are this close, as a
    /// share of the failing rate (default 5%).
    pub precision: Option<Share>,
}

/// `capacity.step`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "CapacityStep")]
pub struct StepKeys {
    /// Left out of the step's figures (default 5s).
    pub warmup: Option<DurationText>,
    /// Measured (default 20s, at least 1s).
    pub hold: Option<DurationText>,
}

/// `capacity.n_minus_1`: a fault's kind, target and the kind's settings, held for the whole
/// N-1 search.
pub struct HeldFaultKeys;

impl JsonSchema for HeldFaultKeys {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("HeldFault")
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let envelope = EnvelopeKeys::json_schema(g);
        let mut target = Map::new();
        if let Some(t) = properties(&envelope).remove("target") {
            target.insert("target".into(), t);
        }
        let variants: Vec<Value> = super::capacity::HELD_KINDS
            .iter()
            .map(|kind| kind_variant(*kind, &target, g))
            .collect();
        json_schema!({
            "type": "object",
            "description": "The fault held for the whole N-1 search: its kind, target and the kind's settings.",
            "required": ["kind"],
            "properties": {
                "kind": {"type": "string", "enum": super::capacity::HELD_KINDS.iter().map(|k| k.name()).collect::<Vec<_>>()}
            },
            "oneOf": variants
        })
    }
}

/// `cluster:`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "Cluster")]
pub struct ClusterKeys {
    /// The Docker Compose topology, relative to the scenario file.
    pub compose: String,
    /// How long the cluster may take to report itself ready (default 60s).
    pub ready_timeout: Option<DurationText>,
}

/// `probes:`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "Probes")]
pub struct ProbeKeys {
    /// How often each node is asked for its state (default 100ms, at least 10ms): the error
    /// bar of every detection time.
    pub interval: Option<DurationText>,
}

/// The keys of `workload:` every family shares.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct WorkloadCommonKeys {
    /// Messages per second, all producers together (open loop: sent on schedule whatever
    /// the broker does).
    pub rate: PositiveNumber,
    /// How long the load runs.
    pub duration: DurationText,
    /// Producers sharing the rate (default 1).
    #[schemars(range(min = 1, max = 1024))]
    pub producers: Option<u32>,
    /// Payload size in bytes (default 256).
    #[schemars(range(min = 16, max = 8_388_608))]
    pub payload_bytes: Option<u32>,
    /// Publishes awaiting their acknowledgement, per producer, before the generator waits
    /// (default 4096; the wait is recorded as generator stall).
    #[schemars(range(min = 1, max = 1_048_576))]
    pub max_in_flight: Option<u32>,
    /// A publish not acknowledged within this is recorded as unknown (default 5s).
    pub ack_timeout: Option<DurationText>,
    /// How long the drain may take to read everything back after the load (default 60s).
    pub drain_timeout: Option<DurationText>,
}

/// `workload:`: the shared keys, and the settings of the cluster's family under its name.
pub struct WorkloadKeys;

impl JsonSchema for WorkloadKeys {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Workload")
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let mut s = WorkloadCommonKeys::json_schema(g);
        let mut one_family = Vec::new();
        for family in families::FAMILIES {
            let sub = family.workload_schema(g);
            if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
                props.insert(family.name().to_string(), sub.to_value());
            }
            one_family.push(json_schema!({"required": [family.name()]}));
        }
        let names: Vec<&str> = families::FAMILIES.iter().map(|f| f.name()).collect();
        s.insert(
            "description".into(),
            format!(
                "The load: the keys every family shares, and the settings of the cluster's family under its name ({}).",
                names.join(", ")
            )
            .into(),
        );
        s.insert("oneOf".into(), serde_json::to_value(one_family).unwrap());
        s
    }
}

/// The envelope every fault has, whatever its kind (`kind` aside).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EnvelopeKeys {
    /// When the fault starts, from the start of the load.
    pub at: DurationText,
    /// Who the fault hits.
    pub target: Option<Target>,
    /// Heal this long after injection (default: when the load ends).
    #[serde(rename = "for")]
    pub heal_after: Option<DurationText>,
    /// Repeat every this long, `times` times in all.
    pub every: Option<DurationText>,
    /// Each interval is drawn uniformly from `every ± jitter` with the run's seed.
    pub jitter: Option<DurationText>,
    /// How many times in all (default 1; more needs `every`).
    #[schemars(range(min = 1, max = 10_000))]
    pub times: Option<u32>,
}

/// One fault: the envelope, `kind`, and that kind's own settings.
pub struct FaultKeys;

impl JsonSchema for FaultKeys {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Fault")
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let envelope = EnvelopeKeys::json_schema(g);
        let envelope_props = properties(&envelope);
        let variants: Vec<Value> = FaultKind::NAMES
            .iter()
            .filter_map(|name| FaultKind::parse(name))
            .map(|kind| kind_variant(kind, &envelope_props, g))
            .collect();
        json_schema!({
            "type": "object",
            "description": "A fault: when it starts (at), whom it hits (target), how long it lasts (for), how often it repeats (every, jitter, times), its kind and that kind's own settings.",
            "required": ["at", "kind"],
            "properties": {
                "kind": {"type": "string", "enum": FaultKind::NAMES}
            },
            "oneOf": variants
        })
    }
}

/// The schema of one kind's faults: the envelope (without `for` where the kind heals
/// itself), `kind` fixed, and the kind's settings.
fn kind_variant(kind: FaultKind, envelope: &Map<String, Value>, g: &mut SchemaGenerator) -> Value {
    let settings = faults::settings_schema(kind, g);
    let mut props = envelope.clone();
    if !kind.takes_duration() {
        props.remove("for");
    }
    props.insert("kind".into(), serde_json::json!({"const": kind.name()}));
    props.extend(properties(&settings));
    let mut required = vec![Value::from("kind")];
    if envelope.contains_key("at") {
        required.push("at".into());
    }
    if !matches!(kind, FaultKind::Partition | FaultKind::RollingRestart) {
        required.push("target".into());
    }
    if let Some(Value::Array(own)) = settings.get("required") {
        required.extend(own.iter().cloned());
    }
    serde_json::json!({
        "title": kind.name(),
        "properties": props,
        "required": required,
        "additionalProperties": false
    })
}

fn properties(s: &Schema) -> Map<String, Value> {
    s.get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// `checks:`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "Checks")]
pub struct CheckKeys {
    /// Fewest acknowledged publishes for the run to be judged; fewer makes it `unknown`
    /// (default: a tenth of the messages due, rate × duration).
    pub min_acked: Option<u64>,
    /// Acknowledged messages the drain may miss (default 0).
    pub max_lost: Option<u64>,
    /// Messages read back that were never published (default 0).
    pub max_unexpected: Option<u64>,
    /// Messages read back more than once (not checked when absent).
    pub max_duplicated: Option<u64>,
    /// The cluster's own health must hold again after the run (every node back and serving);
    /// false (reported, not checked) by default.
    pub healthy_after: Option<bool>,
    /// Longest failover any fault may cause.
    pub max_failover: Option<DurationText>,
    /// Longest failure-detection time any fault may have.
    pub max_detection: Option<DurationText>,
    /// Longest recovery after any heal.
    pub max_recovery: Option<DurationText>,
    /// Generator stall allowed, in percent of the run, before the numbers are not trusted.
    pub max_stall_percent: Option<PositiveNumber>,
}

/// `regression:`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "Regression")]
pub struct RegressionKeys {
    /// Each fault's failover time (default 20%, slack 500ms).
    pub failover: Option<TimeTolerance>,
    /// Each fault's detection time (default 20%, slack 500ms).
    pub detection: Option<TimeTolerance>,
    /// p99 latency in each fault's window (default 25%, slack 5ms).
    pub p99: Option<TimeTolerance>,
    /// Acknowledgements per second in each fault's window (default 15%, slack 10 msg/s).
    pub fault_throughput: Option<RateTolerance>,
}

/// A share, or `{by: share, slack: duration}`.
pub struct TimeTolerance;

impl JsonSchema for TimeTolerance {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("TimeTolerance")
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let slack = g.subschema_for::<DurationText>();
        tolerance(g, slack)
    }
}

/// A share, or `{by: share, slack: messages per second}`.
pub struct RateTolerance;

impl JsonSchema for RateTolerance {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("RateTolerance")
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let slack = g.subschema_for::<PositiveNumber>();
        tolerance(g, slack)
    }
}

fn tolerance(g: &mut SchemaGenerator, slack: Schema) -> Schema {
    let share = g.subschema_for::<Share>();
    json_schema!({
        "anyOf": [
            share,
            {
                "type": "object",
                "properties": {"by": share, "slack": slack},
                "additionalProperties": false
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::regression::Limits;
    use crate::schema::{property_names, schema_of, sorted};

    #[test]
    fn each_section_has_the_keys_its_reader_takes() {
        use super::super::capacity;
        assert_eq!(
            property_names(&schema_of::<CapacityKeys>()),
            sorted(capacity::KEYS)
        );
        assert_eq!(
            property_names(&schema_of::<SloKeys>()),
            sorted(capacity::SLO_KEYS)
        );
        assert_eq!(
            property_names(&schema_of::<SearchKeys>()),
            sorted(capacity::SEARCH_KEYS)
        );
        assert_eq!(
            property_names(&schema_of::<StepKeys>()),
            sorted(capacity::STEP_KEYS)
        );
        assert_eq!(
            property_names(&schema_of::<ScenarioKeys>()),
            sorted(super::super::TOP_KEYS)
        );
        assert_eq!(
            property_names(&schema_of::<ClusterKeys>()),
            sorted(super::super::CLUSTER_KEYS)
        );
        assert_eq!(
            property_names(&schema_of::<ProbeKeys>()),
            sorted(super::super::PROBE_KEYS)
        );
        assert_eq!(
            property_names(&schema_of::<CheckKeys>()),
            sorted(super::super::CHECK_KEYS)
        );
        assert_eq!(
            property_names(&schema_of::<RegressionKeys>()),
            sorted(Limits::KEYS)
        );
        let mut workload: Vec<&str> = super::super::WORKLOAD_KEYS.to_vec();
        workload.extend(families::FAMILIES.iter().map(|f| f.name()));
        assert_eq!(
            property_names(&schema_of::<WorkloadKeys>()),
            sorted(&workload)
        );
        let mut envelope = property_names(&schema_of::<EnvelopeKeys>());
        envelope.push("kind".into());
        envelope.sort();
        assert_eq!(envelope, sorted(super::super::ENVELOPE_KEYS));
    }

    fn validate(yaml: &str) -> Result<(), String> {
        let node = crate::yaml::parse(yaml).unwrap().unwrap();
        let schema = scenario_schema();
        let validator = jsonschema::validator_for(schema.as_value()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&node.to_json())
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }

    const MINIMAL: &str = "name: t\ncluster: {compose: c.yml}\nworkload: {rate: 100, duration: 10s, nats: {stream: S}}\n";

    #[test]
    fn a_minimal_scenario_is_valid_and_mistakes_are_not() {
        validate(MINIMAL).unwrap();
        let with = |extra: &str| validate(&format!("{MINIMAL}{extra}"));
        with("faults: [{at: 2s, kind: kill, target: stream-leader, for: 3s}]\n").unwrap();
        with("faults: [{at: 2s, kind: partition, shape: halves}]\n").unwrap();
        with("faults: [{at: 2s, kind: loss, target: n1, percent: 20, peers: [n2]}]\n").unwrap();
        with("regression: {failover: 20%, p99: {by: 25%, slack: 5ms}, fault_throughput: {slack: 10}}\n").unwrap();
        with("capacity: {slo: {p99: 50ms}, search: {start: 100, max: 1000}, n_minus_1: {kind: kill, target: n1}}\n").unwrap();
        // An unknown key, another kind's setting, a bare number for a duration, a missing
        // target, `for` on a kind that heals itself, two families at once.
        for bad in [
            "colour: red\n",
            "faults: [{at: 2s, kind: kill, target: n1, percent: 20}]\n",
            "faults: [{at: 2, kind: kill, target: n1}]\n",
            "faults: [{at: 2s, kind: kill}]\n",
            "faults: [{at: 2s, kind: restart, target: n1, for: 2s}]\n",
            "faults: [{at: 2s, kind: delay, target: n1}]\n",
            "checks: {max_lost: -1}\n",
            "capacity: {slo: {p99: 50ms}, search: {start: 100, max: 1000}, n_minus_1: {kind: restart, target: n1}}\n",
            "capacity: {slo: {p99: 50ms}, search: {start: 100, max: 1000}, n_minus_1: {at: 2s, kind: kill, target: n1}}\n",
        ] {
            assert!(with(bad).is_err(), "accepted: {bad}");
        }
        let two = MINIMAL.replace("nats: {stream: S}", "nats: {stream: S}, kafka: {topic: t}");
        assert!(validate(&two).is_err());
    }

    #[test]
    fn every_shipped_scenario_holds_to_the_schema() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        for family in std::fs::read_dir(&root).unwrap().flatten() {
            for file in std::fs::read_dir(family.path()).unwrap().flatten() {
                let path = file.path();
                if path.extension().is_none_or(|e| e != "yaml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                validate(&text).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
                assert_eq!(
                    text.lines().next(),
                    Some(format!("# yaml-language-server: $schema=../../{FILE}").as_str()),
                    "{} does not start with the schema comment",
                    path.display()
                );
                seen += 1;
            }
        }
        assert!(seen >= 30, "only {seen} scenarios found");
    }
}
