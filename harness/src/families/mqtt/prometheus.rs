//! RabbitMQ's Prometheus endpoint (`rabbitmq_prometheus`, port 15692, `GET /metrics`), scraped
//! once a second beside the management API.
//!
//! Two series matter for failure detection:
//! - `erlang_vm_dist_node_state{peer="rabbit@r2"} 3`: the Erlang distribution link to each
//!   peer (1 pending, 2 up_pending, 3 up). A link that closes (the peer was killed) is gone
//!   from the next scrape; one that stops carrying ticks (a partition) stays until
//!   `net_ticktime` declares the peer down. Read as the node's own view of its peers, as the
//!   management API's `running` is, but from the VM rather than from RabbitMQ's membership.
//! - `rabbitmq_erlang_uptime_seconds`: lower than the last scrape's means the node started
//!   again (RabbitMQ refreshes it with its statistics, every 5 s by default).
//!
//! A scrape is about 85 KB on a 3-node cluster; once a second keeps three of them well under
//! a core's percent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::erlang::node_name;
use crate::families::{NodeEndpoint, Observed};

pub const PROMETHEUS_PORT: u16 = 15692;
/// How often the endpoint is scraped: the error bar of what it detects.
pub const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_millis(800);

const SIGNAL_DOWN: &str =
    "erlang_vm_dist_node_state gone from /metrics (Prometheus, scraped every 1 s)";
const SIGNAL_UP: &str = "erlang_vm_dist_node_state 3 (up) in /metrics (Prometheus)";

/// One scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    /// Peer node -> distribution link state.
    pub links: BTreeMap<String, u8>,
    pub uptime_s: Option<f64>,
}

/// Reads the two series out of the text exposition format.
pub fn parse(text: &str) -> Scrape {
    let mut s = Scrape::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("erlang_vm_dist_node_state{") {
            let Some((labels, value)) = rest.rsplit_once('}') else {
                continue;
            };
            let peer = labels
                .split(',')
                .find_map(|l| l.trim().strip_prefix("peer=\""))
                .and_then(|p| p.strip_suffix('"'));
            if let (Some(peer), Ok(v)) = (peer, value.trim().parse::<f64>()) {
                s.links.insert(node_name(peer), v as u8);
            }
        } else if let Some(v) = line.strip_prefix("rabbitmq_erlang_uptime_seconds ") {
            s.uptime_s = v.trim().parse().ok();
        }
    }
    s
}

pub async fn scrape(node: &NodeEndpoint) -> Result<Scrape, String> {
    let addr = SocketAddr::from((node.ip, PROMETHEUS_PORT));
    let (status, body) = crate::http::get(addr, "/metrics", TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("/metrics on {addr} answered {status}"));
    }
    Ok(parse(&String::from_utf8_lossy(&body)))
}

/// What changed between two scrapes of one node.
pub fn diff(old: &Scrape, new: &Scrape) -> Vec<Observed> {
    let up = |s: &Scrape, p: &str| s.links.get(p) == Some(&3);
    let mut out = Vec::new();
    let peers: std::collections::BTreeSet<&String> =
        old.links.keys().chain(new.links.keys()).collect();
    for peer in peers {
        match (up(old, peer), up(new, peer)) {
            (true, false) => out.push(Observed::PeerDown {
                peer: peer.clone(),
                signal: SIGNAL_DOWN.into(),
            }),
            (false, true) => out.push(Observed::PeerUp {
                peer: peer.clone(),
                signal: SIGNAL_UP.into(),
            }),
            _ => {}
        }
    }
    if let (Some(before), Some(now)) = (old.uptime_s, new.uptime_s) {
        if now < before {
            out.push(Observed::Restarted {
                detail: format!("rabbitmq_erlang_uptime_seconds {now:.0} s, after {before:.0} s"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // As RabbitMQ 3.10.8 writes them (r1 seeing r2 and r3).
    const TEXT: &str = "# TYPE erlang_vm_dist_node_state gauge\n\
        erlang_vm_dist_node_state{peer=\"rabbit@r2\"} 3\n\
        erlang_vm_dist_node_state{peer=\"rabbit@r3\"} 3\n\
        erlang_vm_dist_node_queue_size_bytes{peer=\"rabbit@r2\"} 0\n\
        rabbitmq_erlang_uptime_seconds 40.115\n";

    #[test]
    fn reads_links_and_uptime() {
        let s = parse(TEXT);
        assert_eq!(s.links.get("r2"), Some(&3));
        assert_eq!(s.links.len(), 2);
        assert_eq!(s.uptime_s, Some(40.115));
    }

    #[test]
    fn a_link_gone_is_its_peer_down_and_back_is_up() {
        let before = parse(TEXT);
        let mut after = before.clone();
        after.links.remove("r3");
        assert_eq!(
            diff(&before, &after),
            vec![Observed::PeerDown {
                peer: "r3".into(),
                signal: SIGNAL_DOWN.into()
            }]
        );
        assert_eq!(
            diff(&after, &before),
            vec![Observed::PeerUp {
                peer: "r3".into(),
                signal: SIGNAL_UP.into()
            }]
        );
        after.uptime_s = Some(3.0);
        assert!(matches!(
            diff(&before, &after).last(),
            Some(Observed::Restarted { .. })
        ));
        assert_eq!(diff(&before, &before), vec![]);
    }
}
