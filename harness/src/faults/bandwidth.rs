//! Bandwidth: a token bucket (tc tbf) as the root qdisc of each target node's interface, which
//! limits what the node sends. Heal deletes it and checks no tbf is left.

use std::time::Instant;

use async_trait::async_trait;

use super::network::{apply_on_each, undo_and_remove, Sidecar};
use super::{Fault, FaultCtx, FaultError, Settings};
use crate::cluster::ClusterNode;
use crate::yaml::{self, Diagnostics, Fields};

/// The settings only a bandwidth fault takes.
pub const KEYS: &[&str] = &["rate"];

// What `read` takes, described for the scenario's JSON Schema.
/// The settings of a bandwidth fault.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Keys {
    /// The limit, as tc writes rates: "1mbit", "512kbit", "2gbit", "100kbps".
    #[schemars(regex(pattern = r"^[0-9]*[1-9][0-9]*(kbit|mbit|gbit|bps|kbps|mbps)$"))]
    pub rate: String,
}

/// Reads `rate`, a tc rate.
pub fn read(f: &Fields, d: &mut Diagnostics) -> Settings {
    let rate = f
        .require("rate", "a rate such as \"1mbit\" or \"512kbit\"", d)
        .and_then(|n| {
            let text = yaml::string(n, &f.path_of("rate"), d)?;
            let ok = rate_bytes(text).is_some();
            if !ok {
                d.error(n.pos, format!("{}: expected a rate such as \"1mbit\", \"512kbit\" or \"10mbit\", found {text:?}", f.path_of("rate")));
            }
            ok.then(|| text.to_string())
        });
    Settings::Bandwidth {
        rate: rate.unwrap_or_default(),
    }
}

/// Bytes per second of a tc rate ("1mbit", "512kbit", "2gbit", "100kbps"), or `None`.
pub fn rate_bytes(rate: &str) -> Option<u64> {
    let digits = rate
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rate.len());
    let n: u64 = rate[..digits].parse().ok().filter(|n| *n > 0)?;
    let bits = match &rate[digits..] {
        "kbit" => n * 1_000,
        "mbit" => n * 1_000_000,
        "gbit" => n * 1_000_000_000,
        "bps" => n * 8,
        "kbps" => n * 8_000,
        "mbps" => n * 8_000_000,
        _ => return None,
    };
    Some(bits / 8)
}

pub struct Bandwidth {
    nodes: Vec<ClusterNode>,
    rate: String,
    sidecars: Vec<Sidecar>,
}

impl Bandwidth {
    pub fn new(nodes: Vec<ClusterNode>, rate: String) -> Self {
        Bandwidth {
            nodes,
            rate,
            sidecars: Vec::new(),
        }
    }
}

#[async_trait]
impl Fault for Bandwidth {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        // The bucket must hold at least a few full-size packets, and about 10 ms of traffic.
        let burst = (rate_bytes(&self.rate).unwrap_or(0) / 100).max(16 * 1024);
        let script = format!(
            "set -e\ntc qdisc add dev eth0 root tbf rate {} burst {burst} latency 400ms\ntc qdisc show dev eth0 | grep -q tbf\n",
            self.rate
        );
        apply_on_each(
            ctx,
            &self.nodes,
            "bandwidth",
            &script,
            "limit bandwidth",
            &mut self.sidecars,
        )
        .await
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        undo_and_remove(
            &mut self.sidecars,
            ctx,
            "tc qdisc del dev eth0 root 2>/dev/null; ! tc qdisc show dev eth0 | grep -q tbf",
            "remove the bandwidth limit",
        )
        .await
    }

    fn describe(&self) -> Option<String> {
        Some(format!("outgoing bandwidth limited to {}", self.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::rate_bytes;

    #[test]
    fn rates() {
        assert_eq!(rate_bytes("1mbit"), Some(125_000));
        assert_eq!(rate_bytes("512kbit"), Some(64_000));
        assert_eq!(rate_bytes("100kbps"), Some(100_000));
        assert_eq!(rate_bytes("fast"), None);
        assert_eq!(rate_bytes("0mbit"), None);
        assert_eq!(rate_bytes("10 mbit"), None);
    }
}
