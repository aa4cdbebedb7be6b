//! A node as the family's driver and probes reach it: its name in the topology and the fixed
//! address the cluster layer gave it.

use std::net::Ipv4Addr;

#[derive(Clone, Debug)]
pub struct NodeEndpoint {
    pub name: String,
    pub ip: Ipv4Addr,
}
