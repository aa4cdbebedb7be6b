//! The append-only history of a run: one JSON object per line, streamed to disk as it happens.
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
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
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

/// One line of the history. Fields that do not apply to an operation are left out of the line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub op: Option<Op>,
    #[serde(rename = "type")]
    pub kind: Option<Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Planned send time of the open-loop schedule (ms).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ms")]
    pub t_intended: Option<u64>,
    /// When the message was handed to the client (ms).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ms")]
    pub t_sent: Option<u64>,
    /// Completion time (ms); for events without a duration, when they happened.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ms")]
    pub t_done: Option<u64>,
    /// The node the client was talking to, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Broker position of an acknowledged or received message (stream sequence, offset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// The partition of an acknowledged or received message, where the broker has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Fault ops: the occurrence's run-unique id, its kind and resolved target node(s),
    /// comma-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<usize>,
    /// Fault ops: the index of the fault in the scenario (one fault can occur several times).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Probe ops: which node reported, what changed (`peer-down`, `peer-up`, `leader`,
    /// `unreachable`, `reachable`), about whom, and for which role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<ProbeKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Phase ops: the phase that starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Error text of a failed or unknown completion, or details of an event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
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

impl Record {
    pub fn new(op: Op, kind: Kind) -> Self {
        Record {
            op: Some(op),
            kind: Some(kind),
            ..Default::default()
        }
    }

    pub fn op(&self) -> Op {
        self.op.unwrap_or(Op::Phase)
    }

    pub fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Info)
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
}

/// Opens `path` and starts the task that streams records into it.
pub fn open(path: &Path) -> std::io::Result<(HistorySink, HistoryWriter)> {
    let file = File::create(path)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Record>();
    let task = tokio::task::spawn_blocking(move || {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut lines = 0u64;
        let mut last_flush = Instant::now();
        while let Some(record) = rx.blocking_recv() {
            serde_json::to_writer(&mut out, &record)?;
            out.write_all(b"\n")?;
            lines += 1;
            // Flush now and then so the file follows the run (and survives a crash) without a
            // system call per line.
            if last_flush.elapsed() > Duration::from_millis(500) {
                out.flush()?;
                last_flush = Instant::now();
            }
        }
        out.flush()?;
        Ok(lines)
    });
    Ok((HistorySink { tx }, HistoryWriter { task }))
}

impl HistoryWriter {
    /// Waits for every sink to be dropped and the last record to reach the file.
    pub async fn finish(self) -> std::io::Result<u64> {
        self.task
            .await
            .map_err(|e| std::io::Error::other(format!("history writer stopped: {e}")))?
    }
}

/// Reads a history file line by line, never holding it whole.
pub fn read(path: &Path) -> std::io::Result<impl Iterator<Item = std::io::Result<Record>>> {
    let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    Ok(reader.lines().enumerate().filter_map(|(i, line)| {
        let line = match line {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        };
        if line.trim().is_empty() {
            return None;
        }
        Some(serde_json::from_str::<Record>(&line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("history line {}: {e}", i + 1),
            )
        }))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_milliseconds() {
        let mut r = Record::new(Op::Publish, Kind::Ok);
        r.producer = Some(1);
        r.seq = Some(7);
        r.t_intended = Some(1_234_567);
        r.t_done = Some(1_300_001);
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"op":"publish","type":"ok","producer":1,"seq":7,"t_intended":1234.567,"t_done":1300.001}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }

    #[test]
    fn phases_and_probe_events_are_written_as_words() {
        let mut r = Record::new(Op::Probe, Kind::Ok);
        r.event = Some(ProbeKind::PeerDown);
        r.phase = Some(Phase::Recovery);
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"op":"probe","type":"ok","event":"peer-down","phase":"recovery"}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
        r.event = Some(ProbeKind::Group("revoke".into()));
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""event":"group-revoke""#), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
        assert!(serde_json::from_str::<Record>(r#"{"op":"probe","event":"sneeze"}"#).is_err());
    }

    #[tokio::test]
    async fn writer_streams_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let (sink, writer) = open(&path).unwrap();
        for seq in 0..1000 {
            let mut r = Record::new(Op::Publish, Kind::Invoke);
            r.seq = Some(seq);
            sink.record(r);
        }
        drop(sink);
        assert_eq!(writer.finish().await.unwrap(), 1000);
        let back: Vec<Record> = read(&path).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(back.len(), 1000);
        assert_eq!(back[999].seq, Some(999));
    }
}
