//! Duplicate: a share of each target node's packets (those it sends, receives, or both; to and
//! from every peer, or only `peers`) is sent twice: faultline's packet program lets the packet
//! go and sends a copy from a raw socket. Through NFQUEUE (`queued.rs`), no netem needed.

use super::network::read_peers;
use super::packets::Action;
use super::queued::{read_direction, read_percent, Spec};
use super::{ReadCtx, Settings};
use crate::yaml::{Diagnostics, Fields};

/// The settings only a duplicate fault takes.
pub const KEYS: &[&str] = &["percent", "direction", "peers"];

// What `read` takes, described for the scenario's JSON Schema.
/// The settings of a duplicate fault.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct Keys {
    /// The share of packets sent twice, in percent (more than 0, at most 100).
    #[schemars(schema_with = "super::queued::percent_schema")]
    pub percent: f64,
    /// Which packets of the node: "egress" (those it sends, the default), "ingress" (those it
    /// receives) or "both".
    #[schemars(regex(pattern = "^(egress|ingress|both)$"))]
    pub direction: Option<String>,
    /// Only packets to and from these nodes (per link); every peer and client when absent.
    pub peers: Option<crate::schema::NodeNames>,
}

/// Reads `percent`, `direction` and `peers`.
pub fn read(f: &Fields, cx: &ReadCtx, d: &mut Diagnostics) -> Settings {
    let share = read_percent(f, "the share of packets sent twice, in percent", d);
    Settings::Packets(Spec {
        action: Action::Duplicate {
            share: share.unwrap_or(0.0),
        },
        direction: read_direction(f, d),
        peers: read_peers(f, cx, d),
    })
}
