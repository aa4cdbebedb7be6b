//! Reorder: a share of each target node's packets (those it sends, receives, or both; to and
//! from every peer, or only `peers`) is held back for `delay` while the others go on at once,
//! so the packets after a held one overtake it. Through NFQUEUE and faultline's packet
//! program (`queued.rs`), no netem needed.

use std::time::Duration;

use super::network::read_peers;
use super::packets::Action;
use super::queued::{read_direction, read_percent, Spec};
use super::{ReadCtx, Settings};
use crate::yaml::{self, Diagnostics, Fields};

/// The settings only a reorder fault takes.
pub const KEYS: &[&str] = &["percent", "delay", "direction", "peers"];

// What `read` takes, described for the scenario's JSON Schema.
/// The settings of a reorder fault.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct Keys {
    /// The share of packets held back, in percent (more than 0, at most 100).
    #[schemars(schema_with = "super::queued::percent_schema")]
    pub percent: f64,
    /// How long a held-back packet is held, such as "20ms" (1 ms to 1 s; 20 ms by default).
    pub delay: Option<crate::schema::DurationText>,
    /// Which packets, to and from which peers.
    #[serde(flatten)]
    pub which: super::queued::Which,
}

const DEFAULT_HOLD: Duration = Duration::from_millis(20);

/// Reads `percent`, `delay`, `direction` and `peers`.
pub fn read(f: &Fields, cx: &ReadCtx, d: &mut Diagnostics) -> Settings {
    let share = read_percent(f, "the share of packets held back, in percent", d);
    let hold = match f.get("delay") {
        None => DEFAULT_HOLD,
        Some(n) => yaml::duration(n, &f.path_of("delay"), d)
            .and_then(|v| {
                if !(Duration::from_millis(1)..=Duration::from_secs(1)).contains(&v) {
                    d.error(
                        n.pos,
                        format!(
                            "{}: expected how long a held-back packet is held, from 1ms to 1s, found {v:?}",
                            f.path_of("delay")
                        ),
                    );
                    return None;
                }
                Some(v)
            })
            .unwrap_or(DEFAULT_HOLD),
    };
    Settings::Packets(Spec {
        action: Action::Reorder {
            share: share.unwrap_or(0.0),
            hold,
        },
        direction: read_direction(f, d),
        peers: read_peers(f, cx, d),
    })
}
