//! Delay: each target node's packets (those it sends, receives, or both; to and from every
//! peer, or only `peers`) are held for `delay` (± `jitter`, by a `distribution`) before they
//! go on. This kernel has no netem, so the fault queues the packets to a program of
//! faultline's own through NFQUEUE (`packets.rs`), run in a sidecar in the node's network
//! namespace, from iptables rules in a chain of the fault's own.
//!
//! The fault is in effect only once measured: the round trip from the node to a peer (TCP
//! connects, `packets rtt`) before the rules and after them must have grown by at least half
//! the delay it adds. Heal removes the rules, stops the program (which lets go of what it
//! holds) and checks that neither is left; the program's own counters are the heal's detail.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::network::{chains, install_script, quote, read_peers, remove_script, Sidecar};
use super::packets::{Distribution, Shape, Stats, HELPER, STATS};
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

/// Which of a node's packets are held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Egress,
    Ingress,
    Both,
}

impl Direction {
    const NAMES: &'static [&'static str] = &["egress", "ingress", "both"];

    fn parse(name: &str) -> Option<Self> {
        match name {
            "egress" => Some(Direction::Egress),
            "ingress" => Some(Direction::Ingress),
            "both" => Some(Direction::Both),
            _ => None,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Direction::Egress => "sent",
            Direction::Ingress => "received",
            Direction::Both => "sent and received",
        }
    }

    /// How many times a round trip crosses the held direction.
    fn crossings(self) -> u32 {
        if self == Direction::Both {
            2
        } else {
            1
        }
    }
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
    let direction = match f.get("direction") {
        None => Some(Direction::Egress),
        Some(n) => {
            yaml::choice(n, &f.path_of("direction"), Direction::NAMES, d).and_then(Direction::parse)
        }
    };
    let peers = read_peers(f, cx, d);
    Settings::Delay(Spec {
        shape: Shape {
            delay: delay.unwrap_or(MIN_DELAY),
            jitter: jitter.unwrap_or_default(),
            distribution: distribution.unwrap_or(Distribution::Normal),
        },
        direction: direction.unwrap_or(Direction::Egress),
        peers,
    })
}

/// Where the program keeps its files in the sidecar.
fn work_dir(id: usize) -> String {
    format!("/tmp/faultline-delay{id}")
}

/// The iptables rules (INPUT, OUTPUT) that queue the held packets to queue `id`. Loopback
/// traffic is never held; `--queue-bypass` lets packets pass while no program is bound.
pub fn rules(id: usize, direction: Direction, peers: &[String]) -> (Vec<String>, Vec<String>) {
    let target = format!("-j NFQUEUE --queue-num {id} --queue-bypass");
    let each = |flag: &str, lo: &str| -> Vec<String> {
        if peers.is_empty() {
            vec![format!("{lo} {target}")]
        } else {
            peers
                .iter()
                .map(|ip| format!("{flag} {ip} {lo} {target}"))
                .collect()
        }
    };
    let input = match direction {
        Direction::Ingress | Direction::Both => each("-s", "! -i lo"),
        Direction::Egress => Vec::new(),
    };
    let output = match direction {
        Direction::Egress | Direction::Both => each("-d", "! -o lo"),
        Direction::Ingress => Vec::new(),
    };
    (input, output)
}

/// A script that starts the program in the background and waits (up to 5 s) until it is bound
/// to its queue.
fn start_script(id: usize, shape: &Shape) -> String {
    let dir = work_dir(id);
    let args: Vec<String> = shape
        .args(id as u16, 0x5eed ^ id as u64, &dir)
        .iter()
        .map(|a| quote(a))
        .collect();
    format!(
        "set -e\nrm -rf {dir}\nmkdir -p {dir}\n\
         {HELPER} {} </dev/null >{dir}/log 2>&1 &\necho $! >{dir}/pid\n\
         i=0\nwhile [ ! -e {dir}/ready ]; do\n  \
         if ! kill -0 \"$(cat {dir}/pid)\" 2>/dev/null; then echo 'the packet program ended:'; cat {dir}/log; exit 1; fi\n  \
         i=$((i+1)); [ $i -lt 100 ] || {{ echo 'the packet program did not bind its queue within 5 s'; cat {dir}/log; exit 1; }}\n  \
         sleep 0.05\ndone\n",
        args.join(" ")
    )
}

/// A script that stops the program (SIGTERM: it lets go of what it holds), checks it is gone
/// within 5 s, and prints its last counters.
fn stop_script(id: usize) -> String {
    let dir = work_dir(id);
    format!(
        "[ -e {dir}/pid ] || exit 0\npid=$(cat {dir}/pid)\nkill -TERM \"$pid\" 2>/dev/null || true\n\
         i=0\nwhile kill -0 \"$pid\" 2>/dev/null; do\n  \
         i=$((i+1)); [ $i -lt 100 ] || {{ echo \"the packet program (pid $pid) is still running\"; exit 1; }}\n  \
         sleep 0.05\ndone\ncat {dir}/{STATS} 2>/dev/null || true\nrm -f {dir}/pid\n"
    )
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

    /// The address a node's round trip is measured to: the first of `peers`, else another
    /// member of the cluster (its client port; a refusal answers as well).
    fn probe_peer(&self, ctx: &FaultCtx, node: &ClusterNode) -> Option<ClusterNode> {
        match self.spec.peers.first() {
            Some(p) => ctx.cluster.node(p).cloned(),
            None => ctx
                .cluster
                .members()
                .into_iter()
                .find(|n| n.name != node.name),
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
        let peer = self.probe_peer(ctx, node).ok_or_else(|| {
            FaultError::NotApplied(format!(
                "delay on {}: no other node to measure the round trip to (the delay could not be shown to take effect)",
                node.name
            ))
        })?;
        let before = self.round_trip(ctx, sidecar, &peer).await?;
        sidecar
            .sh(
                ctx,
                &start_script(self.id, &self.spec.shape),
                "start the packet program",
            )
            .await?;
        let peer_ips: Vec<String> = self
            .spec
            .peers
            .iter()
            .filter_map(|p| ctx.cluster.node(p))
            .map(|p| p.ip.to_string())
            .collect();
        let (input, output) = rules(self.id, self.spec.direction, &peer_ips);
        sidecar
            .sh(
                ctx,
                &install_script(self.id, &input, &output),
                "install the delay rules",
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
            sidecar
                .sh(ctx, &remove_script(self.id), "remove the delay rules")
                .await?;
            let out = sidecar
                .sh(ctx, &stop_script(self.id), "stop the packet program")
                .await?;
            self.counted.push(match Stats::parse(out.trim()) {
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
            "packets {}{peers} held {:?}{jitter} (NFQUEUE queue {}, chains {})",
            self.spec.direction.words(),
            shape.delay,
            self.id,
            {
                let (i, o) = chains(self.id);
                format!("{i}/{o}")
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_hold_one_direction_or_both_and_never_loopback() {
        let (i, o) = rules(3, Direction::Egress, &[]);
        assert!(i.is_empty());
        assert_eq!(o, ["! -o lo -j NFQUEUE --queue-num 3 --queue-bypass"]);
        let (i, o) = rules(3, Direction::Both, &["10.0.0.2".into(), "10.0.0.3".into()]);
        assert_eq!(
            i,
            [
                "-s 10.0.0.2 ! -i lo -j NFQUEUE --queue-num 3 --queue-bypass",
                "-s 10.0.0.3 ! -i lo -j NFQUEUE --queue-num 3 --queue-bypass"
            ]
        );
        assert_eq!(o.len(), 2);
        assert!(o[0].starts_with("-d 10.0.0.2 ! -o lo"));
        let (i, o) = rules(3, Direction::Ingress, &[]);
        assert_eq!(i.len(), 1);
        assert!(o.is_empty());
    }

    #[test]
    fn the_program_is_started_quoted_and_waited_for() {
        let shape = Shape {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(20),
            distribution: Distribution::Uniform,
        };
        let s = start_script(4, &shape);
        assert!(s.contains(&format!(
            "{HELPER} 'packets' 'serve' '--queue' '4' '--delay-us' '100000' '--jitter-us' '20000' '--distribution' 'uniform'"
        )));
        assert!(s.contains("</dev/null >/tmp/faultline-delay4/log 2>&1 &"));
        assert!(s.contains("while [ ! -e /tmp/faultline-delay4/ready ]"));
        let stop = stop_script(4);
        assert!(stop.contains("kill -TERM \"$pid\""));
        assert!(stop.contains("still running"));
    }
}
