//! Duplicate: a share of each target node's packets (those it sends, receives, or both; to and
//! from every peer, or only `peers`) is sent twice: faultline's packet program lets the packet
//! go and sends a copy from a raw socket. Through NFQUEUE (`queued.rs`), no netem needed.

use super::packets::Action;
use super::queued::read_share;
use super::{ReadCtx, Settings};
use crate::yaml::{Diagnostics, Fields};

/// The settings only a duplicate fault takes.
pub const KEYS: &[&str] = &["percent", "direction", "peers"];

/// The settings of a duplicate fault: `percent` of the packets sent twice, and which packets.
pub type Keys = super::queued::ShareKeys;

/// Reads `percent`, `direction` and `peers`.
pub fn read(f: &Fields, cx: &ReadCtx, d: &mut Diagnostics) -> Settings {
    read_share(
        f,
        cx,
        d,
        "the share of packets sent twice, in percent",
        |share| Action::Duplicate { share },
    )
}
