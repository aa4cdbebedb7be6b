//! Corrupt: in a share of each target node's packets (those it sends, receives, or both; to
//! and from every peer, or only `peers`) one bit is flipped after the IP header, so the packet
//! still reaches its host, whose TCP checksum catches it (the segment is dropped there and sent
//! again). Through NFQUEUE and faultline's packet program (`queued.rs`), no netem needed.

use super::packets::Action;
use super::queued::read_share;
use super::{ReadCtx, Settings};
use crate::yaml::{Diagnostics, Fields};

/// The settings only a corrupt fault takes.
pub const KEYS: &[&str] = &["percent", "direction", "peers"];

/// The settings of a corrupt fault: `percent` of the packets with a bit flipped, and which packets.
pub type Keys = super::queued::ShareKeys;

/// Reads `percent`, `direction` and `peers`.
pub fn read(f: &Fields, cx: &ReadCtx, d: &mut Diagnostics) -> Settings {
    read_share(
        f,
        cx,
        d,
        "the share of packets with a bit flipped, in percent",
        |share| Action::Corrupt { share },
    )
}
