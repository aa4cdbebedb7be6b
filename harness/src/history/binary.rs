//! The history on disk: framed binary records, about 20 bytes per published message (its
//! invoke, its completion and its receipt together) instead of about 335 as JSON lines, so a
//! sweep at 100 000 msg/s writes megabytes, not gigabytes, and the checker decodes it without
//! parsing text.
//!
//! The file starts with [`MAGIC`]. Each record is one frame, its first byte a tag:
//! - bits 0-1: 0 publish, 1 receive, 2 any other record as a JSON line (length, then the
//!   bytes of the same object `faultline history dump` prints);
//! - publish: bits 2-3 the kind (invoke, ok, fail, info); receive: bit 2 set when the payload
//!   carried a faultline identity;
//! - bit 4: a completion time follows; bit 5: a position; bit 6: a partition; bit 7: the node
//!   is the one this producer (or the drain) named last, so it is not written again.
//!
//! Numbers are LEB128 varints, and most are deltas against what the encoder and the decoder
//! both remember: the last time written, each producer's last sequence, the last position per
//! partition. Strings (node names, error texts) are written once and then by their index. A
//! publish whose shape the frame cannot hold (a detail on an acknowledged publish) is written
//! as a JSON frame: nothing is ever dropped.
//!
//! A frame cut by a crash ends the file: the reader returns what came before and says so.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Read};

use super::{Kind, Line, Publish, Receive, Record};

/// The first bytes of a binary history ("FLHIST", version 1, newline).
pub const MAGIC: &[u8; 8] = b"FLHIST\x01\n";

const OP_PUBLISH: u8 = 0;
const OP_RECEIVE: u8 = 1;
const OP_JSON: u8 = 2;
const HAS_ID: u8 = 1 << 2;
const HAS_DONE: u8 = 1 << 4;
const HAS_POSITION: u8 = 1 << 5;
const HAS_PARTITION: u8 = 1 << 6;
const SAME_NODE: u8 = 1 << 7;

/// Strings past this many are written in full each time (a run that names this many
/// different nodes or errors is not what the table is for).
const MAX_STRINGS: usize = 1 << 16;

/// Whose last node a frame's `SAME_NODE` refers to.
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
enum NodeOf {
    Producer(u32),
    Drain,
}

/// A hash for the state's keys, a few small integers each: they come from the harness, not
/// from outside, so nothing needs SipHash's resistance to chosen keys, and every frame looks
/// up two or three of them (the multiply-rotate hash of rustc's FxHasher).
#[derive(Default)]
struct SmallKeys(u64);

impl Hasher for SmallKeys {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u8(&mut self, v: u8) {
        self.write_u64(v as u64)
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64)
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type SmallMap<K, V> = HashMap<K, V, BuildHasherDefault<SmallKeys>>;

/// What the encoder and the decoder both remember, updated identically on both sides.
#[derive(Default)]
struct State {
    last_t: u64,
    /// Last sequence per (invoke or completion or receipt, producer).
    seqs: SmallMap<(u8, u32), u64>,
    /// Last position per (publish or receive, partition).
    positions: SmallMap<(u8, Option<u32>), u64>,
    /// Last node named per producer, and by the drain (as a string index + 1; 0 none).
    nodes: SmallMap<NodeOf, usize>,
}

impl State {
    fn next_seq(&self, class: u8, producer: u32) -> u64 {
        self.seqs
            .get(&(class, producer))
            .map_or(0, |s| s.wrapping_add(1))
    }
}

fn seq_class(kind: Kind) -> u8 {
    if kind == Kind::Invoke {
        0
    } else {
        1
    }
}

const RECEIPT: u8 = 2;

fn kind_bits(kind: Kind) -> u8 {
    (match kind {
        Kind::Invoke => 0,
        Kind::Ok => 1,
        Kind::Fail => 2,
        Kind::Info => 3,
    }) << 2
}

fn kind_of(tag: u8) -> Kind {
    match (tag >> 2) & 3 {
        0 => Kind::Invoke,
        1 => Kind::Ok,
        2 => Kind::Fail,
        _ => Kind::Info,
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_delta(out: &mut Vec<u8>, v: u64, base: u64) {
    put_varint(out, zigzag(v.wrapping_sub(base) as i64));
}

/// Turns records into frames.
#[derive(Default)]
pub struct Encoder {
    state: State,
    strings: HashMap<String, usize>,
}

impl Encoder {
    /// Appends the frame of `r` to `out`.
    pub fn encode(&mut self, r: &Record, out: &mut Vec<u8>) {
        match r {
            Record::Publish(p)
                if p.detail.is_none() || matches!(p.kind, Kind::Fail | Kind::Info) =>
            {
                self.publish(p, out)
            }
            Record::Receive(rc) => self.receive(rc, out),
            other => {
                out.push(OP_JSON);
                let json =
                    serde_json::to_vec(&Line::from(other.clone())).expect("a line serialises");
                put_varint(out, json.len() as u64);
                out.extend_from_slice(&json);
            }
        }
    }

    fn publish(&mut self, p: &Publish, out: &mut Vec<u8>) {
        let who = NodeOf::Producer(p.producer);
        let same = self.same_node(who, p.node.as_deref());
        let mut tag = OP_PUBLISH | kind_bits(p.kind);
        tag |= flag(p.t_done.is_some(), HAS_DONE)
            | flag(p.position.is_some(), HAS_POSITION)
            | flag(p.partition.is_some(), HAS_PARTITION)
            | flag(same, SAME_NODE);
        out.push(tag);
        put_varint(out, p.producer as u64);
        let class = seq_class(p.kind);
        put_delta(out, p.seq, self.state.next_seq(class, p.producer));
        self.state.seqs.insert((class, p.producer), p.seq);
        let t = p.t_done.unwrap_or(p.t_sent);
        put_delta(out, t, self.state.last_t);
        self.state.last_t = t;
        if let Some(done) = p.t_done {
            put_delta(out, done, p.t_sent);
        }
        put_delta(out, p.t_sent, p.t_intended);
        if !same {
            let id = self.string(p.node.as_deref(), out);
            self.state.nodes.insert(who, id);
        }
        self.position(OP_PUBLISH, p.partition, p.position, out);
        if matches!(p.kind, Kind::Fail | Kind::Info) {
            self.string(p.detail.as_deref(), out);
        }
    }

    fn receive(&mut self, r: &Receive, out: &mut Vec<u8>) {
        let same = self.same_node(NodeOf::Drain, r.node.as_deref());
        let tag = OP_RECEIVE
            | flag(r.id.is_some(), HAS_ID)
            | flag(r.t_done.is_some(), HAS_DONE)
            | flag(r.position.is_some(), HAS_POSITION)
            | flag(r.partition.is_some(), HAS_PARTITION)
            | flag(same, SAME_NODE);
        out.push(tag);
        if let Some((producer, seq)) = r.id {
            put_varint(out, producer as u64);
            put_delta(out, seq, self.state.next_seq(RECEIPT, producer));
            self.state.seqs.insert((RECEIPT, producer), seq);
        }
        if let Some(t) = r.t_done {
            put_delta(out, t, self.state.last_t);
            self.state.last_t = t;
        }
        if !same {
            let id = self.string(r.node.as_deref(), out);
            self.state.nodes.insert(NodeOf::Drain, id);
        }
        self.position(OP_RECEIVE, r.partition, r.position, out);
    }

    /// Whether `node` is the one `who` named last (a string not in the table never is).
    fn same_node(&self, who: NodeOf, node: Option<&str>) -> bool {
        let id = node.map_or(Some(0), |n| self.strings.get(n).map(|i| i + 1));
        id.is_some_and(|id| self.state.nodes.get(&who).copied().unwrap_or(0) == id)
    }

    fn position(
        &mut self,
        op: u8,
        partition: Option<u32>,
        position: Option<u64>,
        out: &mut Vec<u8>,
    ) {
        if let Some(p) = partition {
            put_varint(out, p as u64);
        }
        if let Some(pos) = position {
            let last = self
                .state
                .positions
                .get(&(op, partition))
                .copied()
                .unwrap_or(0);
            put_delta(out, pos, last);
            self.state.positions.insert((op, partition), pos);
        }
    }

    /// A string as 0 (none), 1 + length + bytes (not kept), or 2 + index (kept; a new one
    /// is followed by its length and bytes). Returns its table index + 1 (0: none or not
    /// kept).
    fn string(&mut self, s: Option<&str>, out: &mut Vec<u8>) -> usize {
        let Some(s) = s else {
            put_varint(out, 0);
            return 0;
        };
        if let Some(&i) = self.strings.get(s) {
            put_varint(out, 2 + i as u64);
            return i + 1;
        }
        let id = if self.strings.len() >= MAX_STRINGS {
            put_varint(out, 1);
            0
        } else {
            let i = self.strings.len();
            self.strings.insert(s.to_string(), i);
            put_varint(out, 2 + i as u64);
            i + 1
        };
        put_varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
        id
    }
}

fn flag(on: bool, bit: u8) -> u8 {
    if on {
        bit
    } else {
        0
    }
}

/// Why a frame could not be read: the file ended inside it (a crash cut it) or it is not a
/// frame faultline writes.
#[derive(Debug)]
pub enum FrameError {
    Cut,
    Io(io::Error),
    Invalid(String),
}

/// Reads frames from a byte stream (after [`MAGIC`]), holding only a window of it.
pub struct Decoder<R> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    state: State,
    strings: Vec<String>,
    /// Frames read so far, for messages.
    pub frames: u64,
}

impl<R: Read> Decoder<R> {
    pub fn new(input: R) -> Self {
        Decoder {
            input,
            buf: Vec::with_capacity(1 << 20),
            pos: 0,
            eof: false,
            state: State::default(),
            strings: Vec::new(),
            frames: 0,
        }
    }

    /// Makes `n` bytes available from `pos` (fewer only at the end of the input).
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        if self.buf.len() - self.pos >= n {
            return Ok(true);
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        while self.buf.len() < n && !self.eof {
            let start = self.buf.len();
            let want = (1 << 20).max(n - start);
            self.buf.resize(start + want, 0);
            let got = self.input.read(&mut self.buf[start..])?;
            self.buf.truncate(start + got);
            if got == 0 {
                self.eof = true;
            }
        }
        Ok(self.buf.len() >= n)
    }

    fn byte(&mut self) -> Result<u8, FrameError> {
        if self.pos >= self.buf.len() && !self.fill(1).map_err(FrameError::Io)? {
            return Err(FrameError::Cut);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, FrameError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(FrameError::Invalid("a number longer than 64 bits".into()))
    }

    fn delta(&mut self, base: u64) -> Result<u64, FrameError> {
        Ok(base.wrapping_add(unzigzag(self.varint()?) as u64))
    }

    fn bytes(&mut self) -> Result<&[u8], FrameError> {
        let len = self.varint()? as usize;
        if len > 1 << 30 {
            return Err(FrameError::Invalid(format!("a field of {len} bytes")));
        }
        if !self.fill(len).map_err(FrameError::Io)? {
            return Err(FrameError::Cut);
        }
        let s = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }

    /// A string written by `Encoder::string`, with its table index + 1 (0: none or not kept).
    fn string(&mut self) -> Result<(Option<String>, usize), FrameError> {
        match self.varint()? {
            0 => Ok((None, 0)),
            1 => Ok((Some(utf8(self.bytes()?)?), 0)),
            code => {
                let i = (code - 2) as usize;
                if i < self.strings.len() {
                    return Ok((Some(self.strings[i].clone()), i + 1));
                }
                if i != self.strings.len() {
                    return Err(FrameError::Invalid(format!(
                        "string {i} before string {}",
                        self.strings.len()
                    )));
                }
                let s = utf8(self.bytes()?)?;
                self.strings.push(s.clone());
                Ok((Some(s), i + 1))
            }
        }
    }

    fn node(&mut self, who: NodeOf, same: bool) -> Result<Option<String>, FrameError> {
        if same {
            let id = self.state.nodes.get(&who).copied().unwrap_or(0);
            return Ok(id.checked_sub(1).map(|i| self.strings[i].clone()));
        }
        let (node, id) = self.string()?;
        self.state.nodes.insert(who, id);
        Ok(node)
    }

    fn position(&mut self, op: u8, tag: u8) -> Result<(Option<u32>, Option<u64>), FrameError> {
        let partition = if tag & HAS_PARTITION != 0 {
            Some(self.varint()? as u32)
        } else {
            None
        };
        let position = if tag & HAS_POSITION != 0 {
            let last = self
                .state
                .positions
                .get(&(op, partition))
                .copied()
                .unwrap_or(0);
            let pos = self.delta(last)?;
            self.state.positions.insert((op, partition), pos);
            Some(pos)
        } else {
            None
        };
        Ok((partition, position))
    }

    /// The next record; `None` at the end of the input.
    pub fn next_record(&mut self) -> Option<Result<Record, FrameError>> {
        match self.fill(64) {
            Ok(_) if self.pos >= self.buf.len() => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(FrameError::Io(e))),
        }
        self.frames += 1;
        Some(self.frame())
    }

    fn frame(&mut self) -> Result<Record, FrameError> {
        let tag = self.byte()?;
        match tag & 3 {
            OP_PUBLISH => {
                let kind = kind_of(tag);
                let producer = self.varint()? as u32;
                let class = seq_class(kind);
                let seq = self.delta(self.state.next_seq(class, producer))?;
                self.state.seqs.insert((class, producer), seq);
                let t = self.delta(self.state.last_t)?;
                self.state.last_t = t;
                let (t_sent, t_done) = if tag & HAS_DONE != 0 {
                    // t is the completion; the send is written against it.
                    let gap = unzigzag(self.varint()?);
                    (t.wrapping_sub(gap as u64), Some(t))
                } else {
                    (t, None)
                };
                let t_intended = t_sent.wrapping_sub(unzigzag(self.varint()?) as u64);
                let node = self.node(NodeOf::Producer(producer), tag & SAME_NODE != 0)?;
                let (partition, position) = self.position(OP_PUBLISH, tag)?;
                let detail = if matches!(kind, Kind::Fail | Kind::Info) {
                    self.string()?.0
                } else {
                    None
                };
                Ok(Record::Publish(Publish {
                    kind,
                    producer,
                    seq,
                    t_intended,
                    t_sent,
                    t_done,
                    node,
                    position,
                    partition,
                    detail,
                }))
            }
            OP_RECEIVE => {
                let id = if tag & HAS_ID != 0 {
                    let producer = self.varint()? as u32;
                    let seq = self.delta(self.state.next_seq(RECEIPT, producer))?;
                    self.state.seqs.insert((RECEIPT, producer), seq);
                    Some((producer, seq))
                } else {
                    None
                };
                let t_done = if tag & HAS_DONE != 0 {
                    let t = self.delta(self.state.last_t)?;
                    self.state.last_t = t;
                    Some(t)
                } else {
                    None
                };
                let node = self.node(NodeOf::Drain, tag & SAME_NODE != 0)?;
                let (partition, position) = self.position(OP_RECEIVE, tag)?;
                Ok(Record::Receive(Receive {
                    id,
                    t_done,
                    node,
                    position,
                    partition,
                }))
            }
            OP_JSON => {
                let frame = self.frames;
                let json = self.bytes()?;
                serde_json::from_slice::<Record>(json)
                    .map_err(|e| FrameError::Invalid(format!("record {frame}: {e}")))
            }
            _ => Err(FrameError::Invalid(format!(
                "record {}: unknown tag {tag:#04x}",
                self.frames
            ))),
        }
    }
}

fn utf8(b: &[u8]) -> Result<String, FrameError> {
    String::from_utf8(b.to_vec())
        .map_err(|_| FrameError::Invalid("a string that is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{FaultStep, Phase, ProbeKind};
    use crate::rng::Rng;

    fn encode_all(records: &[Record]) -> Vec<u8> {
        let mut e = Encoder::default();
        let mut out = Vec::new();
        for r in records {
            e.encode(r, &mut out);
        }
        out
    }

    fn decode_all(bytes: &[u8]) -> (Vec<Record>, Option<FrameError>) {
        let mut d = Decoder::new(bytes);
        let mut out = Vec::new();
        while let Some(r) = d.next_record() {
            match r {
                Ok(r) => out.push(r),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    /// A steady run as the workload writes it: each message invoked, acknowledged (a few
    /// fail or stay unknown) and read back, with a fault and a probe in between.
    fn steady(messages: u64, rng: &mut Rng) -> Vec<Record> {
        let nodes = ["n1", "n2", "n3"];
        let mut out = vec![Record::phase(Phase::Baseline, 0)];
        let mut receipts = Vec::new();
        for seq in 0..messages {
            let producer = (seq % 2) as u32;
            let t_intended = seq * 2_500;
            let t_sent = t_intended + rng.below(40) as u64;
            let node = Some(nodes[producer as usize].to_string());
            out.push(Record::Publish(Publish {
                kind: Kind::Invoke,
                producer,
                seq: seq / 2,
                t_intended,
                t_sent,
                node: node.clone(),
                ..Default::default()
            }));
            let done = t_sent + 800 + rng.below(3_000) as u64;
            let (kind, detail, position) = match rng.below(100) {
                0 => (Kind::Fail, Some("no responders".to_string()), None),
                1 => (
                    Kind::Info,
                    Some(format!("timed out after {} ms", rng.below(3))),
                    None,
                ),
                _ => (Kind::Ok, None, Some(seq + 1)),
            };
            out.push(Record::Publish(Publish {
                kind,
                producer,
                seq: seq / 2,
                t_intended,
                t_sent,
                t_done: Some(done),
                node,
                position,
                detail,
                ..Default::default()
            }));
            if let Some(p) = position {
                receipts.push(Record::Receive(Receive {
                    id: Some((producer, seq / 2)),
                    t_done: Some(messages * 2_500 + seq * 10),
                    node: Some("n3".into()),
                    position: Some(p),
                    partition: None,
                }));
            }
            if seq == messages / 2 {
                out.push(Record::Fault(FaultStep {
                    kind: Kind::Ok,
                    fault: 0,
                    spec: Some(0),
                    fault_kind: Some("kill".into()),
                    target: Some("n2".into()),
                    t_done: t_sent,
                    detail: None,
                }));
                out.push(Record::Probe(crate::history::Probe {
                    kind: Kind::Ok,
                    t_done: t_sent + 5,
                    observer: "n1".into(),
                    event: ProbeKind::PeerDown,
                    subject: Some("n2".into()),
                    role: None,
                    detail: None,
                }));
            }
        }
        out.extend(receipts);
        out.push(Record::Receive(Receive {
            id: None,
            t_done: Some(messages * 2_600),
            node: None,
            position: Some(messages + 7),
            partition: None,
        }));
        out.push(Record::End(
            serde_json::json!({"drain": {"complete": true}}),
        ));
        out
    }

    #[test]
    fn a_steady_run_comes_back_as_written_in_about_20_bytes_a_message() {
        let mut rng = Rng::new(7);
        let records = steady(20_000, &mut rng);
        let bytes = encode_all(&records);
        let (back, err) = decode_all(&bytes);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(back.len(), records.len());
        for (a, b) in records.iter().zip(&back) {
            assert_eq!(a, b);
        }
        let per_message = bytes.len() as f64 / 20_000.0;
        // An invoke, a completion and a receipt per message; JSON lines took about 335.
        assert!(per_message <= 24.0, "{per_message:.1} bytes per message");
    }

    #[test]
    fn any_records_come_back_as_written() {
        let mut rng = Rng::new(11);
        let mut pick = |n: usize| rng.below(n);
        let words = ["n1", "n2", "a much longer node name", "", "é"];
        let mut records = Vec::new();
        for _ in 0..5_000 {
            let opt_s = |k: usize| (k < words.len()).then(|| words[k].to_string());
            let r = match pick(3) {
                0 => Record::Publish(Publish {
                    kind: [Kind::Invoke, Kind::Ok, Kind::Fail, Kind::Info][pick(4)],
                    producer: pick(5) as u32,
                    seq: pick(1_000) as u64,
                    t_intended: pick(1 << 30) as u64,
                    t_sent: pick(1 << 30) as u64,
                    t_done: (pick(2) == 0).then(|| pick(1 << 30) as u64),
                    node: opt_s(pick(7)),
                    position: (pick(2) == 0).then(|| pick(usize::MAX >> 1) as u64),
                    partition: (pick(2) == 0).then(|| pick(4) as u32),
                    detail: opt_s(pick(8)),
                }),
                1 => Record::Receive(Receive {
                    id: (pick(3) > 0).then(|| (pick(5) as u32, pick(1_000) as u64)),
                    t_done: (pick(2) == 0).then(|| pick(1 << 30) as u64),
                    node: opt_s(pick(7)),
                    position: (pick(2) == 0).then(|| pick(1 << 40) as u64),
                    partition: (pick(2) == 0).then(|| pick(4) as u32),
                }),
                _ => Record::phase(Phase::Recovery, pick(1 << 30) as u64),
            };
            records.push(r);
        }
        let (back, err) = decode_all(&encode_all(&records));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(back, records);
    }

    #[test]
    fn a_frame_cut_anywhere_ends_the_history_after_the_frame_before_it() {
        let mut rng = Rng::new(3);
        let records = steady(40, &mut rng);
        let mut e = Encoder::default();
        let mut bytes = Vec::new();
        for r in &records[..records.len() - 1] {
            e.encode(r, &mut bytes);
        }
        let whole = bytes.len();
        e.encode(records.last().unwrap(), &mut bytes);
        for cut in whole + 1..bytes.len() {
            let (back, err) = decode_all(&bytes[..cut]);
            assert!(
                matches!(err, Some(FrameError::Cut)),
                "cut at {cut}: {err:?}"
            );
            assert_eq!(back.len(), records.len() - 1);
        }
    }

    #[test]
    fn a_string_table_past_its_size_writes_strings_in_full() {
        let mut records = Vec::new();
        for i in 0..(MAX_STRINGS + 10) {
            records.push(Record::Publish(Publish {
                kind: Kind::Fail,
                producer: 0,
                seq: i as u64,
                node: Some(format!("node-{}", i % 3)),
                detail: Some(format!("error {i}")),
                ..Default::default()
            }));
        }
        let (back, err) = decode_all(&encode_all(&records));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(back, records);
    }
}
