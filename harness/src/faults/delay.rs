//! Delay: each target node's packets (those it sends, receives, or both; to and from every
//! peer, or only `peers`) are held for `delay` (± `jitter`, by a `distribution`) before they
//! go on. This kernel has no netem, so the fault queues the packets to a program of
//! faultline's own through NFQUEUE (`packets.rs`, `queued.rs`), run in a sidecar in the node's
//! network namespace, from iptables rules in a chain of the fault's own.
//!
//! The fault is in effect only once measured: the round trip from the node to a peer (TCP
//! connects, `packets rtt`) before the rules and after them must have grown by at least half
//! the delay it adds. Heal removes the rules, stops the program (which lets go of what it
//! holds) and checks that neither is left; the program's own counters are the heal's detail.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::network::{quote, read_peers, Sidecar};
use super::packets::{Action, Distribution, Shape, HELPER};
use super::queued::{mechanism, probe_peer, read_direction, start, stop, Direction};
use super::{Fault, FaultCtx, FaultError, ReadCtx, Settings};
use crate::cluster::backend::Share;
use crate::cluster::ClusterNode;
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
    /// Which packets of the node: "egress" (those it sends, the default), "ingress" (those it
    /// receives) or "both" (a round trip then grows by twice the delay).
    #[schemars(regex(pattern = "^(egress|ingress|both)$"))]
    pub direction: Option<String>,
    /// Only packets to and from these nodes (per link); every peer and client when absent.
    pub peers: Option<crate::schema::NodeNames>,
}

/// A delay fault's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub shape: Shape,
    pub direction: Direction,
    pub peers: Vec<String>,
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
    Settings::Delay(Spec {
        shape: Shape {
            delay: delay.unwrap_or(MIN_DELAY),
            jitter: jitter.unwrap_or_default(),
            distribution: distribution.unwrap_or(Distribution::Normal),
        },
        direction,
        peers,
    })
}

pub struct Delay {
    id: usize,
    nodes: Vec<ClusterNode>,
    spec: Spec,
    sidecars: Vec<Sidecar>,
    /// Per node: the peer measured and its round trip before and after, in ms.
    measured: Vec<String>,
    /// Per node: what the program counted, read at the heal.
    counted: Vec<String>,
}

impl Delay {
    pub fn new(id: usize, nodes: Vec<ClusterNode>, spec: Spec) -> Self {
        Delay {
            id,
            nodes,
            spec,
            sidecars: Vec::new(),
            measured: Vec::new(),
            counted: Vec::new(),
        }
    }

    /// The median round trip from `sidecar`'s namespace to `peer`, in ms.
    async fn round_trip(
        &self,
        ctx: &FaultCtx,
        sidecar: &Sidecar,
        peer: &ClusterNode,
    ) -> Result<f64, FaultError> {
        let to = format!("{}:{}", peer.ip, ctx.client_port);
        let out = sidecar
            .sh(
                ctx,
                &format!("{HELPER} packets rtt {} --count 7", quote(&to)),
                &format!("measure the round trip to {}", peer.name),
            )
            .await?;
        out.trim().parse::<f64>().map_err(|_| {
            FaultError::NotApplied(format!(
                "the round trip to {} could not be measured: {}",
                peer.name,
                out.trim()
            ))
        })
    }

    async fn apply_on(
        &mut self,
        ctx: &FaultCtx,
        node: &ClusterNode,
    ) -> Result<Instant, FaultError> {
        let sidecar = Sidecar::start_sharing(
            ctx,
            node,
            &format!("delay{}", self.id),
            Share::NetworkWithHelper,
        )
        .await?;
        self.sidecars.push(sidecar);
        let sidecar = self.sidecars.last().expect("just pushed");
        let peer = probe_peer(ctx, node, &self.spec.peers).ok_or_else(|| {
            FaultError::NotApplied(format!(
                "delay on {}: no other node to measure the round trip to (the delay could not be shown to take effect)",
                node.name
            ))
        })?;
        let before = self.round_trip(ctx, sidecar, &peer).await?;
        start(
            ctx,
            sidecar,
            self.id,
            &Action::Delay(self.spec.shape),
            self.spec.direction,
            &self.spec.peers,
        )
        .await?;
        let applied = Instant::now();
        let after = self.round_trip(ctx, sidecar, &peer).await?;
        let added = self.spec.shape.delay.as_secs_f64()
            * 1000.0
            * f64::from(self.spec.direction.crossings());
        let line = format!(
            "{} -> {}: round trip {before:.2} ms before, {after:.2} ms with the delay",
            node.name, peer.name
        );
        if after - before < added / 2.0 {
            return Err(FaultError::NotApplied(format!(
                "the delay did not take effect: {line} (expected about {added:.0} ms more)"
            )));
        }
        self.measured.push(line);
        Ok(applied)
    }
}

#[async_trait]
impl Fault for Delay {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        // One node after the other: each one's round trip is measured across a link that the
        // others' delays do not touch yet (with `peers`, a peer may be a target too).
        let mut latest = None;
        for node in self.nodes.clone() {
            let t = self.apply_on(ctx, &node).await?;
            latest = Some(latest.map_or(t, |l: Instant| l.max(t)));
        }
        latest.ok_or_else(|| FaultError::NotApplied("no target node".into()))
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        while let Some(sidecar) = self.sidecars.last() {
            self.counted
                .push(match stop(ctx, sidecar, self.id, "delay").await? {
                    Some(s) => format!(
                        "{}: {} packets held, {} let go (at most {} at once)",
                        sidecar.node.name, s.queued, s.released, s.max_held
                    ),
                    None => format!("{}: no counters", sidecar.node.name),
                });
            sidecar.remove(ctx).await?;
            self.sidecars.pop();
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        let shape = &self.spec.shape;
        let jitter = if shape.jitter.is_zero() {
            String::new()
        } else {
            format!(" ± {:?} ({})", shape.jitter, shape.distribution.name())
        };
        let peers = if self.spec.peers.is_empty() {
            String::new()
        } else {
            format!(" to/from {}", self.spec.peers.join(", "))
        };
        let mut s = format!(
            "packets {}{peers} held {:?}{jitter} ({})",
            self.spec.direction.words(),
            shape.delay,
            mechanism(self.id)
        );
        if !self.measured.is_empty() {
            s += &format!("; {}", self.measured.join("; "));
        }
        Some(s)
    }

    fn healed_detail(&self) -> Option<String> {
        (!self.counted.is_empty()).then(|| self.counted.join(", "))
    }
}
