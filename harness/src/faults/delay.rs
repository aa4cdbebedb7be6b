//! Delay: each target node's packets (those it sends, receives, or both; to and from every
//! peer, or only `peers`) are held for `delay` (± `jitter`, by a `distribution`) before they
//! go on. This kernel has no netem, so the fault queues the packets to a program of
//! faultline's own through NFQUEUE (`packets.rs`, `queued.rs`), run in a sidecar in the node's
//! network namespace, from iptables rules in a chain of the fault's own.
//!
//! The fault (`queued::Queued`) is in effect only once measured: the round trip from the node
//! to a peer (TCP connects, `packets rtt`) before the rules and after them must have grown by
//! at least half the delay it adds. Heal removes the rules, stops the program (which lets go of
//! what it holds) and checks that neither is left; the program's own counters are the heal's
//! detail. This file owns the settings.

use std::time::Duration;

use super::network::read_peers;
use super::packets::{Action, Distribution, Shape};
use super::queued::{read_direction, Spec, Which};
use super::{ReadCtx, Settings};
use crate::yaml::{self, Diagnostics, Fields};

/// The settings only a delay fault takes.
pub const KEYS: &[&str] = &["delay", "jitter", "distribution", "direction", "peers"];

// What `read` takes, described for the scenario's JSON Schema.
/// The settings of a delay fault.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct Keys {
    /// How long each packet is held, such as "100ms" (1 ms to 10 s).
    pub delay: crate::schema::DurationText,
    /// How far a packet's delay strays from `delay` (at most `delay`); none by default.
    pub jitter: Option<crate::schema::DurationText>,
    /// How the jitter is drawn: "uniform" (delay ± jitter) or "normal" (jitter is the
    /// standard deviation); "normal" by default.
    #[schemars(regex(pattern = "^(uniform|normal)$"))]
    pub distribution: Option<String>,
    /// Which packets, to and from which peers (with `both`, a round trip grows by twice the
    /// delay).
    #[serde(flatten)]
    pub which: Which,
}

const MIN_DELAY: Duration = Duration::from_millis(1);
const MAX_DELAY: Duration = Duration::from_secs(10);

/// Reads `delay`, `jitter`, `distribution`, `direction` and `peers`.
pub fn read(f: &Fields, cx: &ReadCtx, d: &mut Diagnostics) -> Settings {
    let delay = f
        .require(
            "delay",
            "how long each packet is held, such as \"100ms\"",
            d,
        )
        .and_then(|n| {
            let v = yaml::duration(n, &f.path_of("delay"), d)?;
            if !(MIN_DELAY..=MAX_DELAY).contains(&v) {
                d.error(
                    n.pos,
                    format!(
                        "{}: expected a delay from 1ms to 10s, found {v:?}",
                        f.path_of("delay")
                    ),
                );
                return None;
            }
            Some(v)
        });
    let jitter = match f.get("jitter") {
        None => Some(Duration::ZERO),
        Some(n) => yaml::duration(n, &f.path_of("jitter"), d).and_then(|j| {
            if delay.is_some_and(|delay| j > delay) {
                d.error(
                    n.pos,
                    format!(
                        "{}: expected at most the delay ({:?}), found {j:?}",
                        f.path_of("jitter"),
                        delay.unwrap_or_default()
                    ),
                );
                return None;
            }
            Some(j)
        }),
    };
    let distribution = match f.get("distribution") {
        None => Some(Distribution::Normal),
        Some(n) => yaml::choice(n, &f.path_of("distribution"), Distribution::NAMES, d)
            .and_then(Distribution::parse),
    };
    let direction = read_direction(f, d);
    let peers = read_peers(f, cx, d);
    Settings::Packets(Spec {
        action: Action::Delay(Shape {
            delay: delay.unwrap_or(MIN_DELAY),
            jitter: jitter.unwrap_or_default(),
            distribution: distribution.unwrap_or(Distribution::Normal),
        }),
        direction,
        peers,
    })
}
