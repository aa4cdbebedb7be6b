//! The faults that change a node's packets: delay, reorder, duplicate and corrupt. Each target
//! gets a sidecar in its network namespace, which first asks the kernel whether it has netem
//! (it adds and removes a netem qdisc). Where it does, and netem can say what the fault asks
//! (the packets the node sends, to every peer: netem sits on the sending side of an
//! interface), the fault is a netem qdisc on the node's interface. Otherwise the sidecar runs
//! faultline's packet program (`packets.rs`) on queue `id`, with iptables rules in the fault's
//! own chains that queue the node's packets to it: those it sends, receives or both, to and
//! from every peer or only `peers`. Heal removes the qdisc, or the rules and the program (it
//! lets go of what it holds), and checks that nothing is left.
//!
//! The fault ([`Queued`]) is in effect only once measured: a delay once the node's round trip
//! to a peer grew by it; reorder, duplicate and corrupt once the program has acted on a packet
//! of the node, or the netem qdisc has sent some (TCP connects to a peer make sure packets
//! cross). The heal reads the program's
//! counters and the node's own TCP counters (checksum errors, segments out of order, duplicate
//! acknowledgements), the kernel's word that the packets were changed. The kinds' files own
//! their settings.

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;

use super::network::read_peers;
use super::network::{chains, install_script, quote, remove_script, Sidecar};
use super::packets::{Action, Stats, HELPER, MARK, STATS};
use super::{Fault, FaultCtx, FaultError, ReadCtx, Settings};
use crate::cluster::backend::Share;
use crate::cluster::ClusterNode;
use crate::yaml::{self, Diagnostics, Fields};

/// Which of a node's packets are queued.
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

    pub fn name(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
            Direction::Both => "both",
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Direction::Egress => "sent",
            Direction::Ingress => "received",
            Direction::Both => "sent and received",
        }
    }

    /// How many times a round trip crosses the queued direction.
    pub fn crossings(self) -> u32 {
        if self == Direction::Both {
            2
        } else {
            1
        }
    }
}

/// Reads the optional `direction` (egress when absent).
pub fn read_direction(f: &Fields, d: &mut Diagnostics) -> Direction {
    match f.get("direction") {
        None => Direction::Egress,
        Some(n) => yaml::choice(n, &f.path_of("direction"), Direction::NAMES, d)
            .and_then(Direction::parse)
            .unwrap_or(Direction::Egress),
    }
}

/// Reads the required `percent` (more than 0, at most 100) as a share (0-1]; `what` says
/// what the percent is of, for the message when it is missing.
pub fn read_percent(f: &Fields, what: &str, d: &mut Diagnostics) -> Option<f64> {
    let n = f.require("percent", what, d)?;
    let p = yaml::positive_number(n, &f.path_of("percent"), d)?;
    if p > 100.0 {
        d.error(
            n.pos,
            format!("{}: expected at most 100, found {p}", f.path_of("percent")),
        );
        return None;
    }
    Some(p / 100.0)
}

/// The JSON Schema of a `percent` setting.
pub fn percent_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 100,
        "description": "The share of packets acted on, in percent."
    })
}

/// The settings every packet fault takes: which of the node's packets, to and from whom.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct Which {
    /// Which packets of the node: "egress" (those it sends, the default), "ingress" (those it
    /// receives) or "both".
    #[schemars(regex(pattern = "^(egress|ingress|both)$"))]
    pub direction: Option<String>,
    /// Only packets to and from these nodes (per link); every peer and client when absent.
    pub peers: Option<crate::schema::NodeNames>,
}

/// The settings of a fault that acts on a share of the packets (duplicate, corrupt).
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct ShareKeys {
    /// The share of packets acted on, in percent (more than 0, at most 100).
    #[schemars(schema_with = "percent_schema")]
    pub percent: f64,
    #[serde(flatten)]
    pub which: Which,
}

/// Reads `percent` (the share `action` is built from), `direction` and `peers`.
pub fn read_share(
    f: &Fields,
    cx: &ReadCtx,
    d: &mut Diagnostics,
    what: &str,
    action: impl Fn(f64) -> Action,
) -> Settings {
    let share = read_percent(f, what, d);
    Settings::Packets(Spec {
        action: action(share.unwrap_or(0.0)),
        direction: read_direction(f, d),
        peers: read_peers(f, cx, d),
    })
}

/// Where the program keeps its files in the sidecar.
fn work_dir(id: usize) -> String {
    format!("/tmp/faultline-packets{id}")
}

/// The iptables rules (INPUT, OUTPUT) that queue the node's packets to queue `id`. Loopback
/// traffic is never queued, nor the program's own copies (marked); `--queue-bypass` lets
/// packets pass while no program is bound.
pub fn rules(id: usize, direction: Direction, peers: &[String]) -> (Vec<String>, Vec<String>) {
    let target = format!("-m mark ! --mark {MARK:#x} -j NFQUEUE --queue-num {id} --queue-bypass");
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
fn start_script(id: usize, action: &Action, seed: u64) -> String {
    let dir = work_dir(id);
    let args: Vec<String> = action
        .args(id as u16, seed, &dir)
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

/// A script that makes TCP connects to `to` until the program has acted on a packet (up to
/// 10 s), then prints its counters; fails, printing them, if it never did.
fn probe_script(id: usize, to: &str) -> String {
    let dir = work_dir(id);
    format!(
        "i=0\nwhile :; do\n  \
         acted=$(awk '{{ print $8 }}' {dir}/{STATS} 2>/dev/null)\n  \
         [ \"${{acted:-0}}\" -gt 0 ] && {{ cat {dir}/{STATS}; exit 0; }}\n  \
         i=$((i+1)); [ $i -le 50 ] || {{ echo \"the program acted on no packet in 10 s: $(cat {dir}/{STATS} 2>/dev/null)\"; exit 1; }}\n  \
         {HELPER} packets rtt {} --count 2 >/dev/null 2>&1\n  \
         sleep 0.2\ndone\n",
        quote(to)
    )
}

/// The TCP counters of the node's namespace the heal compares: checksum errors, segments
/// received out of order, duplicate acknowledgements (DSACKs) sent and received, segments
/// sent again.
pub const TCP_COUNTERS: &[&str] = &[
    "InCsumErrors",
    "TCPOFOQueue",
    "TCPDSACKOldSent",
    "TCPDSACKRecv",
    "RetransSegs",
];

/// A script printing "name value" for every counter of the namespace's `Tcp:` and `TcpExt:`
/// lines (/proc/net/snmp, /proc/net/netstat).
fn tcp_counters_script() -> &'static str {
    "awk '$1 == \"Tcp:\" || $1 == \"TcpExt:\" { if (!($1 in seen)) { seen[$1] = 1; for (i = 2; i <= NF; i++) name[$1, i] = $i } else for (i = 2; i <= NF; i++) print name[$1, i], $i }' /proc/net/snmp /proc/net/netstat\n"
}

/// The counters of [`TCP_COUNTERS`] in the output of [`tcp_counters_script`].
pub fn parse_tcp_counters(output: &str) -> BTreeMap<String, u64> {
    output
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            TCP_COUNTERS
                .contains(&name)
                .then(|| Some((name.to_string(), value.trim().parse().ok()?)))?
        })
        .collect()
}

/// Reads the node's TCP counters from its sidecar.
async fn tcp_counters(ctx: &FaultCtx, sidecar: &Sidecar) -> BTreeMap<String, u64> {
    sidecar
        .sh(ctx, tcp_counters_script(), "read the TCP counters")
        .await
        .map(|out| parse_tcp_counters(&out))
        .unwrap_or_default()
}

/// Starts the program in `sidecar` on queue `id` and installs the rules that queue the node's
/// packets to it.
pub async fn start(
    ctx: &FaultCtx,
    sidecar: &Sidecar,
    id: usize,
    action: &Action,
    direction: Direction,
    peers: &[String],
) -> Result<(), FaultError> {
    sidecar
        .sh(
            ctx,
            &start_script(id, action, ctx.seed ^ 0x5eed ^ id as u64),
            "start the packet program",
        )
        .await?;
    let peer_ips: Vec<String> = peers
        .iter()
        .filter_map(|p| ctx.cluster.node(p))
        .map(|p| p.ip.to_string())
        .collect();
    let (input, output) = rules(id, direction, &peer_ips);
    sidecar
        .sh(
            ctx,
            &install_script(id, &input, &output),
            &format!("install the {} rules", action.name()),
        )
        .await?;
    Ok(())
}

/// Removes the rules of queue `id` and stops the program, checking both are gone; returns the
/// program's last counters.
pub async fn stop(
    ctx: &FaultCtx,
    sidecar: &Sidecar,
    id: usize,
    what: &str,
) -> Result<Option<Stats>, FaultError> {
    sidecar
        .sh(ctx, &remove_script(id), &format!("remove the {what} rules"))
        .await?;
    let out = sidecar
        .sh(ctx, &stop_script(id), "stop the packet program")
        .await?;
    Ok(Stats::parse(out.trim()))
}

/// The address a node's packets are probed with: the first of `peers`, else another member of
/// the cluster (its client port; a refusal crosses the link as well).
pub fn probe_peer(ctx: &FaultCtx, node: &ClusterNode, peers: &[String]) -> Option<ClusterNode> {
    match peers.first() {
        Some(p) => ctx.cluster.node(p).cloned(),
        None => ctx
            .cluster
            .members()
            .into_iter()
            .find(|n| n.name != node.name),
    }
}

/// "NFQUEUE queue Q, chains FLQ-IN/FLQ-OUT".
pub fn mechanism(id: usize) -> String {
    let (i, o) = chains(id);
    format!("NFQUEUE queue {id}, chains {i}/{o}")
}

/// How a fault changes a node's packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// A netem qdisc on the node's interface.
    Netem,
    /// faultline's packet program, fed by iptables NFQUEUE rules.
    Nfqueue,
}

/// netem where the kernel has it and it can do what `spec` asks (it changes what an interface
/// sends, to every destination), NFQUEUE otherwise; the reason when neither can.
pub fn choose(netem: bool, nfqueue: bool, spec: &Spec) -> Result<Mechanism, String> {
    let sends_to_all = spec.direction == Direction::Egress && spec.peers.is_empty();
    match (netem && sends_to_all, nfqueue, netem) {
        (true, _, _) => Ok(Mechanism::Netem),
        (false, true, _) => Ok(Mechanism::Nfqueue),
        (false, false, true) => Err(format!(
            "{}: this kernel has netem but no NFQUEUE, and netem changes only the packets a node sends, to every peer: `direction: {}`{} needs NFQUEUE",
            spec.action.name(),
            spec.direction.name(),
            if spec.peers.is_empty() { "" } else { " with `peers:`" }
        )),
        (false, false, false) => Err(format!(
            "{}: this kernel has neither netem nor NFQUEUE",
            spec.action.name()
        )),
    }
}

/// netem's arguments for `action`. netem's `reorder P%` sends P% at once and delays the rest,
/// so holding back a share S is `reorder (1 - S)`.
pub fn netem_args(action: &Action) -> String {
    let pct = |share: f64| format!("{:.4}%", share * 100.0).replace(".0000%", "%");
    let us = |d: std::time::Duration| format!("{}us", d.as_micros());
    match action {
        Action::Delay(shape) if shape.jitter.is_zero() => format!("delay {}", us(shape.delay)),
        Action::Delay(shape) => format!(
            "delay {} {}{}",
            us(shape.delay),
            us(shape.jitter),
            match shape.distribution {
                // netem's jitter is uniform unless a distribution table is named.
                super::packets::Distribution::Uniform => "",
                super::packets::Distribution::Normal => " distribution normal",
            }
        ),
        Action::Reorder { share, hold } => {
            format!("delay {} reorder {}", us(*hold), pct(1.0 - share))
        }
        Action::Duplicate { share } => format!("duplicate {}", pct(*share)),
        Action::Corrupt { share } => format!("corrupt {}", pct(*share)),
    }
}

/// The interface a node's packets leave by, in its namespace.
const IFACE: &str = "eth0";

/// Prints `netem` when a netem qdisc can be added (and then removes it), `none` otherwise.
fn netem_probe_script() -> String {
    format!(
        "if tc qdisc add dev {IFACE} root handle 7fa1: netem delay 0ms 2>/dev/null; then tc qdisc del dev {IFACE} root handle 7fa1:; echo netem; else echo none; fi\n"
    )
}

fn netem_start_script(action: &Action) -> String {
    format!(
        "set -e\ntc qdisc add dev {IFACE} root netem {}\ntc qdisc show dev {IFACE} | grep -q netem\n",
        netem_args(action)
    )
}

/// Makes TCP connects to `to`, then prints the packets the netem qdisc has sent.
fn netem_probe_traffic_script(to: &str) -> String {
    format!(
        "{HELPER} packets rtt {} --count 5 >/dev/null 2>&1\ntc -s qdisc show dev {IFACE} | awk '/netem/ {{ n = 1 }} n && $1 == \"Sent\" {{ print $4; exit }}'\n",
        quote(to)
    )
}

fn netem_stop_script() -> String {
    format!(
        "tc qdisc del dev {IFACE} root 2>/dev/null || true\nif tc qdisc show dev {IFACE} | grep -q netem; then echo 'a netem qdisc is still on {IFACE}'; exit 1; fi\n"
    )
}

/// Delay, reorder, duplicate or corrupt: the settings of one fault.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub action: Action,
    pub direction: Direction,
    pub peers: Vec<String>,
}

/// A delay, reorder, duplicate or corrupt fault on each target node.
pub struct Queued {
    id: usize,
    nodes: Vec<ClusterNode>,
    spec: Spec,
    /// Per sidecar: the node's TCP counters before the rules.
    sidecars: Vec<(Sidecar, BTreeMap<String, u64>)>,
    /// Per sidecar (once chosen): how its packets are changed.
    mechanisms: Vec<Mechanism>,
    /// Per node: the counters when the fault was seen in effect.
    measured: Vec<String>,
    /// Per node: what the program and the kernel counted, read at the heal.
    counted: Vec<String>,
}

impl Queued {
    pub fn new(id: usize, nodes: Vec<ClusterNode>, spec: Spec) -> Self {
        Queued {
            id,
            nodes,
            spec,
            sidecars: Vec::new(),
            mechanisms: Vec::new(),
            measured: Vec::new(),
            counted: Vec::new(),
        }
    }

    async fn apply_on(
        &mut self,
        ctx: &FaultCtx,
        node: &ClusterNode,
    ) -> Result<Instant, FaultError> {
        let name = self.spec.action.name();
        let sidecar = Sidecar::start_sharing(
            ctx,
            node,
            &format!("{name}{}", self.id),
            Share::NetworkWithHelper,
        )
        .await?;
        let before = tcp_counters(ctx, &sidecar).await;
        self.sidecars.push((sidecar, before));
        let (sidecar, _) = self.sidecars.last().expect("just pushed");
        let peer = probe_peer(ctx, node, &self.spec.peers).ok_or_else(|| {
            FaultError::NotApplied(format!(
                "{name} on {}: no other node to send packets to (the fault could not be shown to take effect)",
                node.name
            ))
        })?;
        let netem = sidecar
            .sh(
                ctx,
                &netem_probe_script(),
                "see whether the kernel has netem",
            )
            .await?
            .trim()
            == "netem";
        let chosen = choose(netem, super::packets::nfqueue_available(), &self.spec)
            .map_err(FaultError::NotApplied)?;
        self.mechanisms.push(chosen);
        let rtt_before = match self.spec.action {
            Action::Delay(_) => Some(round_trip(ctx, sidecar, &peer).await?),
            _ => None,
        };
        match chosen {
            Mechanism::Netem => {
                sidecar
                    .sh(
                        ctx,
                        &netem_start_script(&self.spec.action),
                        &format!("add the {name} qdisc (netem)"),
                    )
                    .await?;
            }
            Mechanism::Nfqueue => {
                start(
                    ctx,
                    sidecar,
                    self.id,
                    &self.spec.action,
                    self.spec.direction,
                    &self.spec.peers,
                )
                .await?
            }
        }
        let applied = Instant::now();
        let line = match (self.spec.action, rtt_before) {
            // A delay is in effect once the round trip across the link grew by it.
            (Action::Delay(shape), Some(before)) => {
                let after = round_trip(ctx, sidecar, &peer).await?;
                let added =
                    shape.delay.as_secs_f64() * 1000.0 * f64::from(self.spec.direction.crossings());
                let line = format!(
                    "{} -> {}: round trip {before:.2} ms before, {after:.2} ms with the delay",
                    node.name, peer.name
                );
                if after - before < added / 2.0 {
                    return Err(FaultError::NotApplied(format!(
                        "the delay did not take effect: {line} (expected about {added:.0} ms more)"
                    )));
                }
                line
            }
            // The others once netem sent packets of the node...
            _ if chosen == Mechanism::Netem => {
                let to = format!("{}:{}", peer.ip, ctx.client_port);
                let out = sidecar
                    .sh(
                        ctx,
                        &netem_probe_traffic_script(&to),
                        &format!("see the {name} take effect"),
                    )
                    .await?;
                match out.trim().parse::<u64>() {
                    Ok(n) if n > 0 => {
                        format!(
                            "{}: in effect, netem on {IFACE} sent {n} packets",
                            node.name
                        )
                    }
                    _ => {
                        return Err(FaultError::NotApplied(format!(
                        "the {name} did not take effect: netem on {}'s {IFACE} sent no packet ({})",
                        node.name,
                        out.trim()
                    )))
                    }
                }
            }
            // ...or once the program acted on one.
            _ => {
                let to = format!("{}:{}", peer.ip, ctx.client_port);
                let out = sidecar
                    .sh(
                        ctx,
                        &probe_script(self.id, &to),
                        &format!("see the {name} take effect"),
                    )
                    .await?;
                match Stats::parse(out.trim()) {
                    Some(s) => format!(
                        "{}: in effect after {} packets ({} {})",
                        node.name,
                        s.queued,
                        s.acted,
                        self.spec.action.done()
                    ),
                    None => format!("{}: in effect", node.name),
                }
            }
        };
        self.measured.push(line);
        Ok(applied)
    }
}

/// The median round trip from `sidecar`'s namespace to `peer`'s client port, in ms.
async fn round_trip(
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

/// "InCsumErrors +12 (segments with a bad checksum), ..." from the counters' growth (only
/// those that grew; "no TCP counter grew" when none did).
pub fn tcp_growth(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let words = |name: &str| match name {
        "InCsumErrors" => "segments with a bad checksum",
        "TCPOFOQueue" => "segments out of order",
        "TCPDSACKOldSent" => "duplicate segments acknowledged (DSACK sent)",
        "TCPDSACKRecv" => "DSACKs received",
        "RetransSegs" => "segments sent again",
        _ => "other",
    };
    let grown: Vec<String> = TCP_COUNTERS
        .iter()
        .filter_map(|name| {
            let d = after.get(*name)?.saturating_sub(*before.get(*name)?);
            (d > 0).then(|| format!("{name} +{d} ({})", words(name)))
        })
        .collect();
    if grown.is_empty() {
        "no TCP counter grew".into()
    } else {
        grown.join(", ")
    }
}

#[async_trait]
impl Fault for Queued {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        let mut latest = None;
        for node in self.nodes.clone() {
            let t = self.apply_on(ctx, &node).await?;
            latest = Some(latest.map_or(t, |l: Instant| l.max(t)));
        }
        latest.ok_or_else(|| FaultError::NotApplied("no target node".into()))
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        let name = self.spec.action.name();
        while let Some((sidecar, before)) = self.sidecars.last() {
            if self.mechanisms.get(self.sidecars.len() - 1) == Some(&Mechanism::Netem) {
                sidecar
                    .sh(
                        ctx,
                        &netem_stop_script(),
                        &format!("remove the {name} qdisc"),
                    )
                    .await?;
                let after = tcp_counters(ctx, sidecar).await;
                self.counted.push(format!(
                    "{}: netem removed from {IFACE}; the node's TCP: {}",
                    sidecar.node.name,
                    tcp_growth(before, &after)
                ));
                sidecar.remove(ctx).await?;
                self.sidecars.pop();
                self.mechanisms.pop();
                continue;
            }
            let stats = stop(ctx, sidecar, self.id, name).await?;
            let after = tcp_counters(ctx, sidecar).await;
            self.counted.push(match stats {
                Some(s) => format!(
                    "{}: {} packets queued, {} {}, {} let go{}; the node's TCP: {}",
                    sidecar.node.name,
                    s.queued,
                    s.acted,
                    self.spec.action.done(),
                    s.released,
                    if s.max_held > 0 {
                        format!(" (at most {} held at once)", s.max_held)
                    } else {
                        String::new()
                    },
                    tcp_growth(before, &after)
                ),
                None => format!("{}: no counters", sidecar.node.name),
            });
            sidecar.remove(ctx).await?;
            self.sidecars.pop();
            self.mechanisms.truncate(self.sidecars.len());
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        let what = match self.spec.action {
            Action::Reorder { share, hold } => {
                format!(
                    "{:.4}% held back {hold:?} (the packets after them overtake them)",
                    share * 100.0
                )
            }
            Action::Duplicate { share } => format!("{:.4}% sent twice", share * 100.0),
            Action::Corrupt { share } => {
                format!(
                    "{:.4}% with one bit flipped after the IP header",
                    share * 100.0
                )
            }
            Action::Delay(shape) if shape.jitter.is_zero() => format!("held {:?}", shape.delay),
            Action::Delay(shape) => format!(
                "held {:?} ± {:?} ({})",
                shape.delay,
                shape.jitter,
                shape.distribution.name()
            ),
        };
        let peers = if self.spec.peers.is_empty() {
            String::new()
        } else {
            format!(" to/from {}", self.spec.peers.join(", "))
        };
        let mut s = format!(
            "packets {}{peers}: {} ({})",
            self.spec.direction.words(),
            what.replace(".0000%", "%"),
            if self.mechanisms.contains(&Mechanism::Netem) {
                format!("netem on {IFACE}: {}", netem_args(&self.spec.action))
            } else {
                mechanism(self.id)
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
    use crate::faults::packets::{Distribution, Shape};
    use std::time::Duration;

    #[test]
    fn netem_where_the_kernel_has_it_and_it_can_say_the_fault_nfqueue_otherwise() {
        let spec = |direction, peers: &[&str]| Spec {
            action: Action::Duplicate { share: 0.25 },
            direction,
            peers: peers.iter().map(|p| p.to_string()).collect(),
        };
        let egress = spec(Direction::Egress, &[]);
        assert_eq!(choose(true, true, &egress), Ok(Mechanism::Netem));
        assert_eq!(choose(true, false, &egress), Ok(Mechanism::Netem));
        assert_eq!(choose(false, true, &egress), Ok(Mechanism::Nfqueue));
        // netem sits on the sending side and sees every destination alike.
        let both = spec(Direction::Both, &[]);
        assert_eq!(choose(true, true, &both), Ok(Mechanism::Nfqueue));
        let e = choose(true, false, &both).unwrap_err();
        assert!(e.contains("`direction: both` needs NFQUEUE"), "{e}");
        let link = spec(Direction::Egress, &["n2"]);
        assert_eq!(choose(true, true, &link), Ok(Mechanism::Nfqueue));
        assert!(choose(true, false, &link)
            .unwrap_err()
            .contains("with `peers:`"));
        let e = choose(false, false, &egress).unwrap_err();
        assert!(e.contains("neither netem nor NFQUEUE"), "{e}");
    }

    #[test]
    fn netem_is_given_what_the_program_would_do() {
        let delay = |jitter, distribution| {
            netem_args(&Action::Delay(Shape {
                delay: Duration::from_millis(100),
                jitter,
                distribution,
            }))
        };
        assert_eq!(
            delay(Duration::ZERO, Distribution::Normal),
            "delay 100000us"
        );
        assert_eq!(
            delay(Duration::from_millis(20), Distribution::Normal),
            "delay 100000us 20000us distribution normal"
        );
        assert_eq!(
            delay(Duration::from_millis(20), Distribution::Uniform),
            "delay 100000us 20000us"
        );
        // 25 % held back: netem sends the other 75 % at once.
        assert_eq!(
            netem_args(&Action::Reorder {
                share: 0.25,
                hold: Duration::from_millis(20)
            }),
            "delay 20000us reorder 75%"
        );
        assert_eq!(
            netem_args(&Action::Duplicate { share: 0.25 }),
            "duplicate 25%"
        );
        assert_eq!(netem_args(&Action::Corrupt { share: 0.05 }), "corrupt 5%");
        assert!(netem_start_script(&Action::Corrupt { share: 0.05 })
            .contains("tc qdisc add dev eth0 root netem corrupt 5%"));
    }

    #[test]
    fn rules_queue_one_direction_or_both_and_never_loopback_or_copies() {
        let (i, o) = rules(3, Direction::Egress, &[]);
        assert!(i.is_empty());
        assert_eq!(
            o,
            ["! -o lo -m mark ! --mark 0xfa17 -j NFQUEUE --queue-num 3 --queue-bypass"]
        );
        let (i, o) = rules(3, Direction::Both, &["10.0.0.2".into(), "10.0.0.3".into()]);
        assert_eq!(
            i,
            [
                "-s 10.0.0.2 ! -i lo -m mark ! --mark 0xfa17 -j NFQUEUE --queue-num 3 --queue-bypass",
                "-s 10.0.0.3 ! -i lo -m mark ! --mark 0xfa17 -j NFQUEUE --queue-num 3 --queue-bypass"
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
        let action = Action::Delay(Shape {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(20),
            distribution: Distribution::Uniform,
        });
        let s = start_script(4, &action, 1);
        assert!(s.contains(&format!(
            "{HELPER} 'packets' 'serve' '--action' 'delay' '--percent' '100' '--queue' '4' '--delay-us' '100000' '--jitter-us' '20000' '--distribution' 'uniform'"
        )));
        assert!(s.contains("</dev/null >/tmp/faultline-packets4/log 2>&1 &"));
        assert!(s.contains("while [ ! -e /tmp/faultline-packets4/ready ]"));
        let stop = stop_script(4);
        assert!(stop.contains("kill -TERM \"$pid\""));
        assert!(stop.contains("still running"));
        let probe = probe_script(4, "10.0.0.2:4222");
        assert!(probe.contains("packets rtt '10.0.0.2:4222' --count 2"));
        assert!(probe.contains("awk '{ print $8 }' /tmp/faultline-packets4/stats"));
    }

    #[test]
    fn tcp_counters_are_read_by_name_and_compared() {
        let before = parse_tcp_counters(
            "RtoAlgorithm 1\nInCsumErrors 2\nRetransSegs 10\nTCPOFOQueue 0\nTCPDSACKOldSent 0\nTCPDSACKRecv x\n",
        );
        assert_eq!(before.len(), 4, "{before:?}");
        let after = parse_tcp_counters("InCsumErrors 14\nRetransSegs 12\nTCPOFOQueue 0\n");
        assert_eq!(
            tcp_growth(&before, &after),
            "InCsumErrors +12 (segments with a bad checksum), RetransSegs +2 (segments sent again)"
        );
        assert_eq!(tcp_growth(&before, &before), "no TCP counter grew");
    }
}
