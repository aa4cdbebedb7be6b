//! The `workload.nats` section of a scenario.

pub use crate::families::Credentials;
use schemars::JsonSchema;

use crate::yaml::{self, Diagnostics, Fields, Node};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    File,
    Memory,
}

impl Storage {
    pub fn name(self) -> &'static str {
        match self {
            Storage::File => "file",
            Storage::Memory => "memory",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsWorkload {
    /// Stream name; faultline creates it (and fails if one with another configuration exists).
    pub stream: String,
    /// The subject producers publish to; the stream captures exactly this subject.
    pub subject: String,
    pub replicas: u8,
    pub storage: Storage,
    /// A user of the system account, for what only it may do (removing a server from the
    /// JetStream meta group on scale-in).
    pub system_account: Option<Credentials>,
}

const STORAGE: &[&str] = &["file", "memory"];

const KEYS: &[&str] = &["stream", "subject", "replicas", "storage", "system_account"];

// What `NatsWorkload::parse` reads, described for the scenario's JSON Schema.
/// The NATS JetStream settings: the stream faultline creates and publishes to.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "NatsWorkload")]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct NatsWorkloadKeys {
    /// The JetStream stream faultline creates and publishes to (letters, digits, '-', '_').
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub stream: String,
    /// The subject producers publish to (default `faultline.<stream>`).
    pub subject: Option<String>,
    /// Stream replicas (default 3).
    #[schemars(range(min = 1, max = 5))]
    pub replicas: Option<u8>,
    /// Stream storage (default file).
    #[serde(default)]
    #[schemars(schema_with = "storage_schema")]
    pub storage: Option<String>,
    /// A user of the system account, for what only it may do (removing a server from the
    /// JetStream meta group on scale-in).
    pub system_account: Option<crate::families::CredentialsKeys>,
}

fn storage_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::schema::one_of(STORAGE, "Stream storage (default file).")
}

impl NatsWorkload {
    pub fn parse(node: &Node, d: &mut Diagnostics) -> Option<Self> {
        let f = Fields::new(node, KEYS, "workload.nats", d)?;
        let stream = f
            .require("stream", "the stream name", d)
            .and_then(|n| yaml::string(n, "workload.nats.stream", d))
            .and_then(|s| {
                let ok = !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !ok {
                    d.error(
                        f.get("stream")?.pos,
                        "workload.nats.stream: expected letters, digits, '-' or '_'",
                    );
                }
                ok.then(|| s.to_string())
            });
        let subject = match f.get("subject") {
            Some(n) => yaml::string(n, "workload.nats.subject", d).map(String::from),
            None => stream.as_ref().map(|s| format!("faultline.{s}")),
        };
        let replicas = match f.get("replicas") {
            Some(n) => yaml::integer(n, "workload.nats.replicas", 1, 5, d).map(|v| v as u8),
            None => Some(3),
        };
        let storage = match f.get("storage") {
            Some(n) => yaml::choice(n, "workload.nats.storage", STORAGE, d).map(|s| {
                if s == "file" {
                    Storage::File
                } else {
                    Storage::Memory
                }
            }),
            None => Some(Storage::File),
        };
        let system_account = match f.get("system_account") {
            None => Some(None),
            Some(n) => Credentials::parse(
                n,
                "workload.nats.system_account",
                "of the system account",
                d,
            )
            .map(Some),
        };
        Some(NatsWorkload {
            stream: stream?,
            subject: subject?,
            replicas: replicas?,
            storage: storage?,
            system_account: system_account?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{property_names, schema_of, sorted};

    #[test]
    fn the_schema_has_the_keys_the_reader_takes() {
        assert_eq!(
            property_names(&schema_of::<NatsWorkloadKeys>()),
            sorted(KEYS)
        );
    }
}
