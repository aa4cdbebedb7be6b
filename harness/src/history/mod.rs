//! The append-only history of a run, streamed to disk as it happens: framed binary records
//! (`binary.rs`, about 20 bytes per published message), each of which `faultline history
//! dump` prints as one JSON object per line. Older runs wrote those lines directly
//! (`history.jsonl`); [`read`] reads both.
//!
//! Every operation the workload performs (an `invoke` then exactly one completion `ok`, `fail`
//! or `info`), every message received while draining, every fault and heal, every change the
//! probes observed and every phase boundary goes here. The checkers read this file and nothing
//! else, so whatever a report says can be recomputed from it.
//!
//! All times are on one clock, the harness's monotonic clock, in milliseconds since the run's
//! start, with microsecond precision.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub mod binary;

/// The history's file name in a run directory.
pub const FILE: &str = "history.bin";
/// What runs before the binary history wrote.
pub const LEGACY_FILE: &str = "history.jsonl";

/// The history of the run directory `dir`: `history.bin`, or an older run's `history.jsonl`;
/// `None` when it holds neither.
pub fn in_dir(dir: &Path) -> Option<std::path::PathBuf> {
    [FILE, LEGACY_FILE]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// The run's single clock. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    /// Microseconds since the run started.
    pub fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_micros() as u64
    }

    pub fn now_us(&self) -> u64 {
        self.us(Instant::now())
    }

    pub fn instant(&self, us: u64) -> Instant {
        self.start + Duration::from_micros(us)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Publish,
    Receive,
    Fault,
    Heal,
    Probe,
    Phase,
    /// What the run was (scenario, cluster, checks), written once the cluster is up.
    Start,
    /// What the run saw after the load (drain, health, generator stall), written last.
    End,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Publish => "publish",
            Op::Receive => "receive",
            Op::Fault => "fault",
            Op::Heal => "heal",
            Op::Probe => "probe",
            Op::Phase => "phase",
            Op::Start => "start",
            Op::End => "end",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Invoke,
    Ok,
    Fail,
    Info,
}

/// The phase boundaries of a run, as `phase` records name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The load started.
    Baseline,
    /// The first fault took effect.
    Fault,
    /// No fault is in effect any more.
    Recovery,
    /// The load ended; the drain starts.
    Drain,
}

/// What a `probe` record says changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ProbeKind {
    /// The observer lost its connection to `subject` (route gone, peer marked down).
    PeerDown,
    PeerUp,
    /// The observer reports `subject` as the leader of `role` (none when `subject` is absent).
    Leader,
    /// The harness stopped reaching the observer's monitoring endpoint.
    Unreachable,
    Reachable,
    /// The observer started again since the last observation.
    Restarted,
    /// A consumer group's own event (Kafka), written `group-<what>`.
    Group(String),
}

impl From<ProbeKind> for String {
    fn from(k: ProbeKind) -> String {
        match k {
            ProbeKind::PeerDown => "peer-down".into(),
            ProbeKind::PeerUp => "peer-up".into(),
            ProbeKind::Leader => "leader".into(),
            ProbeKind::Unreachable => "unreachable".into(),
            ProbeKind::Reachable => "reachable".into(),
            ProbeKind::Restarted => "restarted".into(),
            ProbeKind::Group(what) => format!("group-{what}"),
        }
    }
}

impl TryFrom<String> for ProbeKind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "peer-down" => ProbeKind::PeerDown,
            "peer-up" => ProbeKind::PeerUp,
            "leader" => ProbeKind::Leader,
            "unreachable" => ProbeKind::Unreachable,
            "reachable" => ProbeKind::Reachable,
            "restarted" => ProbeKind::Restarted,
            _ => match s.strip_prefix("group-") {
                Some(what) => ProbeKind::Group(what.to_string()),
                None => return Err(format!("unknown probe event {s:?}")),
            },
        })
    }
}

/// One line of the history: one variant per operation, each with the fields it always has.
///
/// On disk every line is one flat JSON object (`{"op":"publish","type":"ok",...}`, see
/// [`Line`]), so the file stays readable with `jq`, and a line of one op never carries another
/// op's fields.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Publish(Publish),
    Receive(Receive),
    /// The harness injecting a fault: `invoke` when it issues it, `ok` once it took effect,
    /// `fail`/`info` when it did not (or may not have).
    Fault(FaultStep),
    /// The harness healing a fault (for a topology change: the change settling).
    Heal(FaultStep),
    Probe(Probe),
    Phase(PhaseMark),
    /// The run's facts at its start, as the reports need them; the history does not read
    /// them (`report` does).
    Start(serde_json::Value),
    /// The run's facts at its end.
    End(serde_json::Value),
}

/// A message the workload published: `invoke` when handed to the client, then one completion.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Publish {
    pub kind: Kind,
    pub producer: u32,
    pub seq: u64,
    /// Planned send time of the open-loop schedule (us).
    pub t_intended: u64,
    /// When the message was handed to the client (us).
    pub t_sent: u64,
    /// Completion time (us); absent on `invoke`.
    pub t_done: Option<u64>,
    /// The node the client was talking to, where known.
    pub node: Option<String>,
    /// Broker position (stream sequence, offset) of an acknowledged message.
    pub position: Option<u64>,
    pub partition: Option<u32>,
    /// Error text of a failed or unknown completion.
    pub detail: Option<String>,
}

/// A message the drain (or a live subscriber) read back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Receive {
    /// The (producer, sequence) its payload carried; none for a payload faultline did not
    /// write.
    pub id: Option<(u32, u64)>,
    pub t_done: Option<u64>,
    pub node: Option<String>,
    pub position: Option<u64>,
    pub partition: Option<u32>,
}

/// One step of a fault occurrence (a `fault` or `heal` op).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultStep {
    pub kind: Kind,
    /// The occurrence's run-unique id.
    pub fault: usize,
    /// The index of the fault in the scenario (one fault can occur several times).
    pub spec: Option<usize>,
    /// The fault kind's name as the scenario writes it.
    pub fault_kind: Option<String>,
    /// The resolved target node(s), comma-separated.
    pub target: Option<String>,
    pub t_done: u64,
    /// What the step did, or why it did not complete.
    pub detail: Option<String>,
}

/// A change a probe observed: which node reported, what changed, about whom, for which role.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub kind: Kind,
    pub t_done: u64,
    pub observer: String,
    pub event: ProbeKind,
    pub subject: Option<String>,
    pub role: Option<String>,
    pub detail: Option<String>,
}

/// A phase boundary: `phase` starts at `t_done`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhaseMark {
    pub phase: Phase,
    pub t_done: u64,
}

impl Record {
    pub fn phase(phase: Phase, t_done: u64) -> Record {
        Record::Phase(PhaseMark { phase, t_done })
    }

    pub fn op(&self) -> Op {
        match self {
            Record::Publish(_) => Op::Publish,
            Record::Receive(_) => Op::Receive,
            Record::Fault(_) => Op::Fault,
            Record::Heal(_) => Op::Heal,
            Record::Probe(_) => Op::Probe,
            Record::Phase(_) => Op::Phase,
            Record::Start(_) => Op::Start,
            Record::End(_) => Op::End,
        }
    }
}

/// The on-disk shape of a record: one flat object whose fields depend on `op`; fields that do
/// not apply to an operation are left out of the line. Times are in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub op: Option<Op>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ms")]
    pub t_intended: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ms")]
    pub t_sent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ms")]
    pub t_done: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<ProbeKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Start and end ops: the run's facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<serde_json::Value>,
}

impl From<Record> for Line {
    fn from(r: Record) -> Line {
        let op = Some(r.op());
        match r {
            Record::Publish(p) => Line {
                op,
                kind: Some(p.kind),
                producer: Some(p.producer),
                seq: Some(p.seq),
                t_intended: Some(p.t_intended),
                t_sent: Some(p.t_sent),
                t_done: p.t_done,
                node: p.node,
                position: p.position,
                partition: p.partition,
                detail: p.detail,
                ..Line::default()
            },
            Record::Receive(r) => Line {
                op,
                kind: Some(Kind::Ok),
                producer: r.id.map(|(p, _)| p),
                seq: r.id.map(|(_, s)| s),
                t_done: r.t_done,
                node: r.node,
                position: r.position,
                partition: r.partition,
                ..Line::default()
            },
            Record::Fault(f) | Record::Heal(f) => Line {
                op,
                kind: Some(f.kind),
                fault: Some(f.fault),
                spec: f.spec,
                fault_kind: f.fault_kind,
                target: f.target,
                t_done: Some(f.t_done),
                detail: f.detail,
                ..Line::default()
            },
            Record::Probe(p) => Line {
                op,
                kind: Some(p.kind),
                t_done: Some(p.t_done),
                observer: Some(p.observer),
                event: Some(p.event),
                subject: p.subject,
                role: p.role,
                detail: p.detail,
                ..Line::default()
            },
            Record::Phase(m) => Line {
                op,
                kind: Some(Kind::Ok),
                phase: Some(m.phase),
                t_done: Some(m.t_done),
                ..Line::default()
            },
            Record::Start(run) | Record::End(run) => Line {
                op,
                run: Some(run),
                ..Line::default()
            },
        }
    }
}

impl TryFrom<Line> for Record {
    type Error = String;

    /// Refuses a line that lacks a field its op always has, naming both.
    fn try_from(l: Line) -> Result<Record, String> {
        let op = l.op.ok_or("a record without `op`")?;
        let need = |what: &str| format!("a {} record without `{what}`", op.name());
        let kind = l.kind.unwrap_or(Kind::Ok);
        Ok(match op {
            Op::Publish => Record::Publish(Publish {
                kind: l.kind.ok_or_else(|| need("type"))?,
                producer: l.producer.ok_or_else(|| need("producer"))?,
                seq: l.seq.ok_or_else(|| need("seq"))?,
                t_intended: l.t_intended.ok_or_else(|| need("t_intended"))?,
                t_sent: l.t_sent.ok_or_else(|| need("t_sent"))?,
                t_done: l.t_done,
                node: l.node,
                position: l.position,
                partition: l.partition,
                detail: l.detail,
            }),
            Op::Receive => Record::Receive(Receive {
                id: l.producer.zip(l.seq),
                t_done: l.t_done,
                node: l.node,
                position: l.position,
                partition: l.partition,
            }),
            Op::Fault | Op::Heal => {
                let step = FaultStep {
                    kind,
                    fault: l.fault.ok_or_else(|| need("fault"))?,
                    spec: l.spec,
                    fault_kind: l.fault_kind,
                    target: l.target,
                    t_done: l.t_done.ok_or_else(|| need("t_done"))?,
                    detail: l.detail,
                };
                if op == Op::Fault {
                    Record::Fault(step)
                } else {
                    Record::Heal(step)
                }
            }
            Op::Probe => Record::Probe(Probe {
                kind,
                t_done: l.t_done.ok_or_else(|| need("t_done"))?,
                observer: l.observer.unwrap_or_default(),
                event: l.event.ok_or_else(|| need("event"))?,
                subject: l.subject,
                role: l.role,
                detail: l.detail,
            }),
            Op::Phase => Record::phase(
                l.phase.ok_or_else(|| need("phase"))?,
                l.t_done.ok_or_else(|| need("t_done"))?,
            ),
            Op::Start => Record::Start(l.run.ok_or_else(|| need("run"))?),
            Op::End => Record::End(l.run.ok_or_else(|| need("run"))?),
        })
    }
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Line::from(self.clone()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        Record::try_from(Line::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Times are kept in microseconds and written as milliseconds with three decimals.
mod ms {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(us) => s.serialize_f64(*us as f64 / 1000.0),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let v: Option<f64> = Option::deserialize(d)?;
        Ok(v.map(|ms| (ms * 1000.0).round() as u64))
    }
}

/// Where the run's components send records; cheap to clone. Sending never blocks the sender,
/// so writing the history cannot slow the load generator down.
#[derive(Clone)]
pub struct HistorySink {
    tx: mpsc::UnboundedSender<Record>,
}

impl HistorySink {
    pub fn record(&self, record: Record) {
        // The writer only stops after every sink is dropped, so a send cannot fail while a
        // component still holds one.
        let _ = self.tx.send(record);
    }
}

/// Owns the history file; `finish` waits until every record has been written.
pub struct HistoryWriter {
    task: tokio::task::JoinHandle<std::io::Result<u64>>,
    failure: tokio::sync::watch::Receiver<Option<String>>,
    /// How many records have reached the file (flushed).
    on_disk: Arc<AtomicU64>,
}

/// How often the writer flushes what it has written: at most this much of the history is lost
/// when faultline is killed.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// How long the history writer sleeps when nothing is queued.
const WRITER_POLL: Duration = Duration::from_millis(2);

/// Opens `path` and starts the task that streams records into it.
pub fn open(path: &Path) -> std::io::Result<(HistorySink, HistoryWriter)> {
    let file = File::create(path)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Record>();
    let (failed, failure) = tokio::sync::watch::channel(None);
    let on_disk = Arc::new(AtomicU64::new(0));
    let flushed = on_disk.clone();
    let task = tokio::task::spawn_blocking(move || {
        let written = write_queue(file, &mut rx, &flushed);
        if let Err(e) = &written {
            // The run stops at once (a full disk would otherwise be noticed only at its end);
            // the queue is closed so that recording costs nothing until then.
            let _ = failed.send(Some(e.to_string()));
            rx.close();
        }
        written
    });
    Ok((
        HistorySink { tx },
        HistoryWriter {
            task,
            failure,
            on_disk,
        },
    ))
}

/// The writer's loop: frames every queued record into `file` until every sink is gone.
fn write_queue(
    file: File,
    rx: &mut mpsc::UnboundedReceiver<Record>,
    on_disk: &AtomicU64,
) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(binary::MAGIC)?;
    let mut encoder = binary::Encoder::default();
    let mut frame = Vec::with_capacity(256);
    let mut lines = 0u64;
    let mut last_flush = Instant::now();
    // The writer polls: it drains what is queued, then sleeps a little. Waiting in
    // `blocking_recv` instead would make every `record` of an idle writer a wake-up system
    // call in the load generator's threads (the largest cost of a publish at 70 000 msg/s).
    loop {
        let idle = match rx.try_recv() {
            Ok(record) => {
                frame.clear();
                encoder.encode(&record, &mut frame);
                out.write_all(&frame)?;
                lines += 1;
                // The run's own records (start, phases, faults, heals, probes, end) are few and
                // what makes a crashed run's history checkable: each reaches the file at once.
                if !matches!(record, Record::Publish(_) | Record::Receive(_)) {
                    out.flush()?;
                    on_disk.store(lines, Ordering::Release);
                    last_flush = Instant::now();
                }
                false
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => true,
        };
        // Flush now and then (also while records keep coming) so the file follows the run
        // and survives a crash, without a system call per record.
        if (idle || lines.is_multiple_of(1024)) && last_flush.elapsed() > FLUSH_EVERY {
            out.flush()?;
            on_disk.store(lines, Ordering::Release);
            last_flush = Instant::now();
        }
        if idle {
            std::thread::sleep(WRITER_POLL);
        }
    }
    out.flush()?;
    Ok(lines)
}

impl HistoryWriter {
    /// Waits (at most `timeout`) until the first `records` records are in the file: the start
    /// record is on disk before the run goes on, so a run killed at any later point can be
    /// checked.
    pub async fn on_disk(&self, records: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.on_disk.load(Ordering::Acquire) < records {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }

    /// Resolves with the error when the history could not be written (a full disk); never
    /// otherwise.
    pub fn failed(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut failure = self.failure.clone();
        async move {
            let failed = failure
                .wait_for(Option::is_some)
                .await
                .map(|e| e.clone().unwrap_or_default());
            match failed {
                Ok(why) => why,
                // The writer ended well: never resolve.
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// Waits for every sink to be dropped and the last record to reach the file.
    pub async fn finish(self) -> std::io::Result<u64> {
        self.task
            .await
            .map_err(|e| std::io::Error::other(format!("history writer stopped: {e}")))?
    }
}

/// Reads a history file record by record, never holding it whole: the binary format, or JSON
/// lines (an older run's history, or what `faultline history dump` printed).
///
/// A last record cut by a crash (the run was killed while writing it) is skipped, not an
/// error ([`last_line_cut`] says whether that happened).
pub fn read(path: &Path) -> std::io::Result<Box<dyn Iterator<Item = std::io::Result<Record>>>> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut head = [0u8; 8];
    let n = read_up_to(&mut file, &mut head)?;
    if n == head.len() && &head == binary::MAGIC {
        return Ok(Box::new(read_binary(file, path)));
    }
    let reader = BufReader::with_capacity(
        1 << 20,
        std::io::Cursor::new(head[..n].to_vec()).chain(file),
    );
    Ok(Box::new(read_lines(reader)))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            got => n += got,
        }
    }
    Ok(n)
}

fn read_binary(file: File, path: &Path) -> impl Iterator<Item = std::io::Result<Record>> {
    let mut decoder = binary::Decoder::new(file);
    let name = path.display().to_string();
    std::iter::from_fn(move || match decoder.next_record()? {
        Ok(r) => Some(Ok(r)),
        Err(binary::FrameError::Cut) => None,
        Err(binary::FrameError::Io(e)) => Some(Err(e)),
        Err(binary::FrameError::Invalid(why)) => Some(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{name}: {why}"),
        ))),
    })
}

fn read_lines(mut reader: impl BufRead) -> impl Iterator<Item = std::io::Result<Record>> {
    let mut number = 0usize;
    let mut buf = Vec::with_capacity(256);
    std::iter::from_fn(move || loop {
        buf.clear();
        number += 1;
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(e)),
        }
        let complete = buf.last() == Some(&b'\n');
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => return Some(Ok(r)),
            Err(_) if !complete => return None,
            Err(e) => {
                return Some(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("history line {number}: {e}"),
                )))
            }
        }
    })
}

/// True when the history's last record was cut: a binary history that ends inside a frame,
/// or a last line without its newline that does not parse.
pub fn last_line_cut(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    let mut head = [0u8; 8];
    if read_up_to(&mut file, &mut head)? == head.len() && &head == binary::MAGIC {
        let mut decoder = binary::Decoder::new(file);
        while let Some(r) = decoder.next_record() {
            match r {
                Ok(_) => {}
                Err(binary::FrameError::Cut) => return Ok(true),
                Err(binary::FrameError::Io(e)) => return Err(e),
                Err(binary::FrameError::Invalid(_)) => return Ok(false),
            }
        }
        return Ok(false);
    }
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    // The tail holds the last line unless it is longer than any record faultline writes.
    let tail = len.min(1 << 16);
    file.seek(SeekFrom::Start(len - tail))?;
    let mut buf = Vec::with_capacity(tail as usize);
    file.read_to_end(&mut buf)?;
    if buf.last() == Some(&b'\n') {
        return Ok(false);
    }
    let last = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => &buf[i + 1..],
        None => &buf[..],
    };
    Ok(serde_json::from_slice::<Record>(last.trim_ascii()).is_err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_milliseconds() {
        let r = Record::Publish(Publish {
            kind: Kind::Ok,
            producer: 1,
            seq: 7,
            t_intended: 1_234_567,
            t_sent: 1_234_600,
            t_done: Some(1_300_001),
            ..Default::default()
        });
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"op":"publish","type":"ok","producer":1,"seq":7,"t_intended":1234.567,"t_sent":1234.6,"t_done":1300.001}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }

    #[test]
    fn phases_and_probe_events_are_written_as_words() {
        let mut p = Probe {
            kind: Kind::Ok,
            t_done: 2_000,
            observer: "n1".into(),
            event: ProbeKind::PeerDown,
            subject: Some("n2".into()),
            role: None,
            detail: None,
        };
        let line = serde_json::to_string(&Record::Probe(p.clone())).unwrap();
        assert_eq!(
            line,
            r#"{"op":"probe","type":"ok","t_done":2.0,"observer":"n1","event":"peer-down","subject":"n2"}"#
        );
        assert_eq!(
            serde_json::from_str::<Record>(&line).unwrap(),
            Record::Probe(p.clone())
        );
        p.event = ProbeKind::Group("revoke".into());
        let line = serde_json::to_string(&Record::Probe(p.clone())).unwrap();
        assert!(line.contains(r#""event":"group-revoke""#), "{line}");
        assert_eq!(
            serde_json::from_str::<Record>(&line).unwrap(),
            Record::Probe(p)
        );
        let phase = Record::phase(Phase::Recovery, 5_000);
        let line = serde_json::to_string(&phase).unwrap();
        assert_eq!(
            line,
            r#"{"op":"phase","type":"ok","t_done":5.0,"phase":"recovery"}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), phase);
        assert!(serde_json::from_str::<Record>(r#"{"op":"probe","event":"sneeze"}"#).is_err());
    }

    #[test]
    fn a_line_without_a_field_its_op_always_has_is_refused_by_name() {
        let err = serde_json::from_str::<Record>(r#"{"op":"publish","type":"ok","producer":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a publish record without `seq`"), "{err}");
        let err = serde_json::from_str::<Record>(r#"{"op":"heal","type":"ok","t_done":1.0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a heal record without `fault`"), "{err}");
        // A received payload faultline did not write has no identity, and that is fine.
        let r =
            serde_json::from_str::<Record>(r#"{"op":"receive","type":"ok","position":3}"#).unwrap();
        assert!(matches!(
            r,
            Record::Receive(Receive {
                id: None,
                position: Some(3),
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_history_that_cannot_be_written_says_so_at_once() {
        // /dev/full: every write fails with "no space left on device".
        let (sink, writer) = open(Path::new("/dev/full")).unwrap();
        let failed = writer.failed();
        for seq in 0..100_000 {
            sink.record(Record::Publish(Publish {
                kind: Kind::Invoke,
                seq,
                ..Default::default()
            }));
        }
        let why = tokio::time::timeout(Duration::from_secs(5), failed)
            .await
            .expect("the failure is said while the sink is still held");
        assert!(why.contains("No space left on device"), "{why}");
        drop(sink);
        assert!(writer.finish().await.is_err());
    }

    #[test]
    fn a_cut_last_line_is_skipped_and_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let whole = "{\"op\":\"phase\",\"type\":\"ok\",\"t_done\":0.0,\"phase\":\"baseline\"}\n";
        std::fs::write(&path, format!("{whole}{whole}{{\"op\":\"publish\",\"ty")).unwrap();
        let back: Vec<_> = read(&path).unwrap().collect();
        assert_eq!(back.len(), 2);
        assert!(back.iter().all(Result::is_ok));
        assert!(last_line_cut(&path).unwrap());
        std::fs::write(&path, format!("{whole}{whole}")).unwrap();
        assert!(!last_line_cut(&path).unwrap());
        // A broken line that is not the last is an error, with its number.
        std::fs::write(&path, format!("{whole}{{\"op\":\n{whole}")).unwrap();
        let err = read(&path)
            .unwrap()
            .find_map(|r| r.err())
            .unwrap()
            .to_string();
        assert!(err.starts_with("history line 2:"), "{err}");
    }

    #[tokio::test]
    async fn a_binary_history_cut_by_a_crash_reads_up_to_its_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let (sink, writer) = open(&path).unwrap();
        for seq in 0..100 {
            sink.record(Record::Publish(Publish {
                kind: Kind::Ok,
                seq,
                t_done: Some(seq * 1_000),
                node: Some("n1".into()),
                position: Some(seq + 1),
                ..Default::default()
            }));
        }
        drop(sink);
        writer.finish().await.unwrap();
        assert!(!last_line_cut(&path).unwrap());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let back: Vec<Record> = read(&path).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(back.len(), 99);
        assert!(last_line_cut(&path).unwrap());
        // Only the magic: an empty history, not a cut one.
        std::fs::write(&path, binary::MAGIC).unwrap();
        assert_eq!(read(&path).unwrap().count(), 0);
        assert!(!last_line_cut(&path).unwrap());
        // What `faultline history dump` prints reads back the same.
        let lines = dir.path().join(LEGACY_FILE);
        let text: String = back
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(&lines, text).unwrap();
        let again: Vec<Record> = read(&lines).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(again, back);
        assert_eq!(in_dir(dir.path()), Some(dir.path().join(FILE)));
    }

    #[tokio::test]
    async fn writer_streams_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let (sink, writer) = open(&path).unwrap();
        for seq in 0..1000 {
            sink.record(Record::Publish(Publish {
                seq,
                ..Default::default()
            }));
        }
        drop(sink);
        assert_eq!(writer.finish().await.unwrap(), 1000);
        let back: Vec<Record> = read(&path).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(back.len(), 1000);
        assert!(matches!(&back[999], Record::Publish(p) if p.seq == 999));
    }
}
