//! The `workload.nats` section of a scenario.

pub use crate::families::Credentials;
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

impl NatsWorkload {
    pub fn parse(node: &Node, d: &mut Diagnostics) -> Option<Self> {
        let f = Fields::new(
            node,
            &["stream", "subject", "replicas", "storage", "system_account"],
            "workload.nats",
            d,
        )?;
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
            Some(n) => yaml::choice(n, "workload.nats.storage", &["file", "memory"], d).map(|s| {
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
