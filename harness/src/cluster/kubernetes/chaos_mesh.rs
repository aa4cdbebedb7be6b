//! The Chaos Mesh objects faultline renders: `NetworkChaos` and `TimeChaos` of the
//! `chaos-mesh.org/v1alpha1` API (Chaos Mesh 2.x), typed here with the field names of Chaos
//! Mesh's own Go types. No crate publishes them, so these are faultline's; every struct rejects
//! fields it does not know, which is what the tests hold a rendered object to.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "chaos-mesh.org/v1alpha1";

/// Which pods: Chaos Mesh's `PodSelectorSpec` (the fields faultline uses).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_selectors: BTreeMap<String, String>,
    /// Pods by name, per namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pods: BTreeMap<String, Vec<String>>,
}

/// The other side of a partition (or of a per-link fault): `selector` and `mode`. (Serde's
/// `flatten` cannot be combined with refusing unknown fields, so the specs repeat the two
/// fields instead of flattening this.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSelector {
    pub selector: Selector,
    pub mode: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReorderSpec {
    pub reorder: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub correlation: String,
    pub gap: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelaySpec {
    pub latency: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub correlation: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jitter: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<ReorderSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LossSpec {
    pub loss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub correlation: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DuplicateSpec {
    pub duplicate: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub correlation: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorruptSpec {
    pub corrupt: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub correlation: String,
}

/// tbf's parameters, as `tc` takes them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BandwidthSpec {
    pub rate: String,
    pub limit: u32,
    pub buffer: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkChaosSpec {
    /// partition, loss, delay, duplicate, corrupt, bandwidth.
    pub action: String,
    pub selector: Selector,
    /// one, all, fixed, fixed-percent, random-max-percent: faultline picks its targets itself
    /// and labels them, so it renders `all`.
    pub mode: String,
    /// to, from, both.
    pub direction: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PodSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DelaySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<DuplicateSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<CorruptSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthSpec>,
    /// Go's duration syntax ("15s"); absent: until the object is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeChaosSpec {
    pub selector: Selector,
    /// one, all, fixed, fixed-percent, random-max-percent: faultline picks its targets itself
    /// and labels them, so it renders `all`.
    pub mode: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_names: Vec<String>,
    /// Go's duration syntax, may be negative ("-90s").
    pub time_offset: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clock_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// A Chaos Mesh object: `apiVersion`, `kind`, `metadata` and its spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Chaos<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
}

pub type NetworkChaos = Chaos<NetworkChaosSpec>;
pub type TimeChaos = Chaos<TimeChaosSpec>;

/// A duration in Go's syntax, as Chaos Mesh parses it: whole milliseconds or seconds.
pub fn go_duration(d: std::time::Duration) -> String {
    go_ms(d.as_millis() as i64)
}

/// An offset in seconds in Go's syntax ("-90s", "1500ms").
pub fn go_offset(seconds: f64) -> String {
    go_ms((seconds * 1000.0).round() as i64)
}

fn go_ms(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_chaos_mesh_does_not_have_is_refused() {
        let ok = r#"{"action":"loss","selector":{"labelSelectors":{"a":"b"}},"mode":"all",
                     "direction":"to","loss":{"loss":"10"}}"#;
        serde_json::from_str::<NetworkChaosSpec>(ok).unwrap();
        let typo = ok.replace("\"direction\"", "\"directon\"");
        let e = serde_json::from_str::<NetworkChaosSpec>(&typo).unwrap_err();
        assert!(e.to_string().contains("directon"), "{e}");
        let nested = ok.replace("\"loss\":\"10\"", "\"loss\":\"10\",\"gap\":1");
        assert!(serde_json::from_str::<NetworkChaosSpec>(&nested).is_err());
    }

    #[test]
    fn durations_are_written_as_go_parses_them() {
        use std::time::Duration;
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(go_offset(-90.0), "-90s");
        assert_eq!(go_offset(0.25), "250ms");
    }
}
