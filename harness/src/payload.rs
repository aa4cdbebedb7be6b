//! The identity a message carries in its payload: producer id and per-producer sequence
//! number (MEASUREMENT.md, "The history"), written by the load generator and read back by
//! every family's consumer, so the checker can match what was received to what was sent.

use bytes::{BufMut, Bytes, BytesMut};

/// A message's identity travels in its payload: magic, producer, sequence, then padding.
const MAGIC: &[u8; 4] = b"FLT1";
pub const IDENTITY_BYTES: usize = 16;

pub fn encode_payload(producer: u32, seq: u64, size: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(size.max(IDENTITY_BYTES));
    buf.put_slice(MAGIC);
    buf.put_u32(producer);
    buf.put_u64(seq);
    buf.resize(size.max(IDENTITY_BYTES), b'.');
    buf.freeze()
}

/// The (producer, sequence) a payload carries, or `None` for a message faultline did not write.
pub fn decode_payload(payload: &[u8]) -> Option<(u32, u64)> {
    if payload.len() < IDENTITY_BYTES || &payload[..4] != MAGIC {
        return None;
    }
    let producer = u32::from_be_bytes(payload[4..8].try_into().ok()?);
    let seq = u64::from_be_bytes(payload[8..16].try_into().ok()?);
    Some((producer, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let p = encode_payload(3, 123_456_789, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(decode_payload(&p), Some((3, 123_456_789)));
        assert_eq!(encode_payload(0, 0, 1).len(), IDENTITY_BYTES);
        assert_eq!(decode_payload(b"hello world, not ours"), None);
    }
}
