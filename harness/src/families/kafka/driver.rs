//! Producers through rdkafka with every delivery report recorded (partition and offset),
//! the consumer group that reads while the load runs, and the drain that reads every
//! partition to its end by offsets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::config::KafkaWorkload;
use crate::families::answers::Answers;
use crate::families::{BrokerError, ClientCounters, Completion, DrainReport, Producer, Sent};
use crate::history::{Clock, HistorySink, Receive, Record};
use crate::payload::decode_payload;

/// What the producers ran into that is about the client rather than one message, for the
/// result's notes: fatal errors (the producer is unusable after one) and error kinds seen.
#[derive(Debug, Default)]
pub struct ClientFindings {
    pub fatal: Vec<String>,
    pub errors: BTreeMap<String, u64>,
    /// The latest statistics of each producer, by librdkafka's instance name.
    pub statistics: BTreeMap<String, ClientCounters>,
}

/// How often librdkafka reports its statistics (`statistics.interval.ms`), unless the
/// workload's properties say otherwise.
pub const STATISTICS_MS: u32 = 250;

/// The instance name and counters in one librdkafka statistics document: messages sent
/// (`txmsgs`), and over its brokers the Produce requests (`req.Produce`) and the broker
/// threads' wake-ups (`wakeups`).
pub fn counters(json: &[u8]) -> Option<(String, ClientCounters)> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let brokers = v.get("brokers")?.as_object()?;
    let sum = |f: &dyn Fn(&serde_json::Value) -> Option<u64>| -> u64 {
        brokers.values().filter_map(f).sum()
    };
    Some((
        v.get("name")?.as_str()?.to_string(),
        ClientCounters {
            messages: v.get("txmsgs")?.as_u64()?,
            requests: sum(&|b| b.get("req")?.get("Produce")?.as_u64()),
            wakeups: sum(&|b| b.get("wakeups")?.as_u64()),
        },
    ))
}

/// The counters of the last statistics document in a peer's output (one JSON per line).
pub fn last_counters(output: &str) -> Option<ClientCounters> {
    output
        .lines()
        .rev()
        .find_map(|l| counters(l.as_bytes()))
        .map(|(_, c)| c)
}

pub type SharedFindings = Arc<Mutex<ClientFindings>>;

/// The producers write no transactions, so read_committed would show nothing more; and
/// tansu 0.6.0 on PostgreSQL 15 fails ListOffsets LATEST at read_committed
/// (UNKNOWN_SERVER_ERROR), which would hide every end offset.
pub const READ_ISOLATION: &str = "read_uncommitted";

/// The client configuration every faultline client starts from.
pub fn base_config(bootstrap: &str, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        // librdkafka's own log lines would go to stderr through the log crate; the errors
        // that matter reach the delivery reports.
        .set("log_level", "3");
    c
}

pub fn producer_client_id(index: u32) -> String {
    format!("faultline-producer-{index}")
}

pub fn producer_config(w: &KafkaWorkload, bootstrap: &str, index: u32) -> ClientConfig {
    let mut c = base_config(bootstrap, &producer_client_id(index));
    c.set("acks", w.acks.property()).set(
        "enable.idempotence",
        if w.idempotence { "true" } else { "false" },
    );
    c.set("statistics.interval.ms", STATISTICS_MS.to_string());
    for (k, v) in &w.properties {
        c.set(k, v);
    }
    c
}

/// The producer's context: librdkafka calls `delivery` on the polling thread for each report,
/// with the token the message was produced with as its opaque (a number: nothing allocated).
struct Deliveries {
    answers: Arc<Answers>,
    findings: SharedFindings,
}

impl ClientContext for Deliveries {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Some((name, c)) = counters(statistics) {
            let mut f = self.findings.lock().unwrap_or_else(|e| e.into_inner());
            f.statistics.insert(name, c);
        }
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, token: usize) {
        let completion = match result {
            Ok(m) => Completion::Ok {
                position: Some(m.offset().max(0) as u64),
                partition: Some(m.partition().max(0) as u32),
            },
            Err((e, _)) => classify(e, &self.findings),
        };
        self.answers.push(token as u64, completion);
    }
}

/// A producer whose delivery reports reach the generator by token ([`Sent::Tagged`]), as
/// librdkafka's own `rdkafka_performance` counts them in its delivery callback: a message
/// costs no channel, future or box of its own, and the reports of a batch wake the generator
/// once.
pub struct KafkaProducer {
    producer: ThreadedProducer<Deliveries>,
    answers: Arc<Answers>,
    topic: String,
    findings: SharedFindings,
    next_token: u64,
    /// Whether each message is keyed (`workload.kafka.keys`).
    keys: bool,
    /// The key of the message being sent, written in place.
    key: String,
    /// The reports handed on last time, kept for its capacity.
    spare: Vec<(u64, Completion)>,
}

impl KafkaProducer {
    pub fn new(
        w: &KafkaWorkload,
        bootstrap: &str,
        index: u32,
        findings: SharedFindings,
    ) -> Result<Self, BrokerError> {
        let answers = Arc::new(Answers::default());
        let producer = producer_config(w, bootstrap, index)
            .create_with_context(Deliveries {
                answers: answers.clone(),
                findings: findings.clone(),
            })
            .map_err(|e| BrokerError(format!("create Kafka producer {index}: {e}")))?;
        Ok(KafkaProducer {
            producer,
            answers,
            topic: w.topic.clone(),
            findings,
            next_token: 0,
            keys: w.keys,
            key: String::new(),
            spare: Vec::new(),
        })
    }
}

#[async_trait]
impl Producer for KafkaProducer {
    async fn send(&mut self, payload: Bytes) -> Sent {
        let token = self.next_token;
        self.next_token += 1;
        let record = BaseRecord::with_opaque_to(&self.topic, token as usize).payload(&payload[..]);
        // With `keys`, the key spreads a producer's messages over the partitions (librdkafka's
        // default partitioner hashes it); without, its sticky partitioner picks one partition
        // at a time.
        let record = match (self.keys, decode_payload(&payload)) {
            (true, Some((p, s))) => {
                use std::fmt::Write;
                self.key.clear();
                write!(self.key, "{p}-{s}").expect("writing to memory cannot fail");
                record.key(&self.key)
            }
            _ => record,
        };
        match self.producer.send(record) {
            Ok(()) => Sent::Tagged { node: None, token },
            // Refused by the client before it was queued (queue full, too large, unknown
            // topic): it cannot have been applied.
            Err((e, _)) => {
                note(&self.findings, &e);
                Sent::Done {
                    node: None,
                    completion: Completion::Fail(format!("not queued by the client: {e}")),
                }
            }
        }
    }

    fn poll_answers(
        &mut self,
        cx: &mut std::task::Context<'_>,
        answer: &mut dyn FnMut(u64, Completion),
    ) {
        self.answers.take(cx, &mut self.spare, answer);
    }
}

fn note(findings: &SharedFindings, e: &KafkaError) {
    let mut f = findings.lock().unwrap_or_else(|e| e.into_inner());
    let name = match e.rdkafka_error_code() {
        // Kafka's error code -1.
        Some(RDKafkaErrorCode::Unknown) => "UNKNOWN_SERVER_ERROR".to_string(),
        Some(code) => format!("{code:?}"),
        None => e.to_string(),
    };
    *f.errors.entry(name).or_default() += 1;
}

/// What a failed delivery report says about the message.
fn classify(e: &KafkaError, findings: &SharedFindings) -> Completion {
    note(findings, e);
    let Some(code) = e.rdkafka_error_code() else {
        return Completion::Info(format!("unclear delivery error: {e}"));
    };
    use RDKafkaErrorCode as C;
    match code {
        // librdkafka gave up within message.timeout.ms: it may have reached the log.
        C::MessageTimedOut => Completion::Info(
            "delivery timed out in the client (message.timeout.ms); it may have been written"
                .into(),
        ),
        // Purged from the client's queue before it was sent.
        C::PurgeQueue => Completion::Fail("purged from the client's queue before sending".into()),
        // The leader refused the append: with acks all and too few in-sync replicas, nothing
        // was written.
        C::NotEnoughReplicas => Completion::Fail(
            "refused: fewer in-sync replicas than min.insync.replicas (NOT_ENOUGH_REPLICAS)"
                .into(),
        ),
        C::MessageSizeTooLarge | C::InvalidMessage | C::UnknownTopicOrPartition => {
            Completion::Fail(format!("refused by the broker: {code:?}"))
        }
        C::OutOfOrderSequenceNumber
        | C::InvalidProducerEpoch
        | C::ProducerFenced
        | C::UnknownProducerId
        | C::Fatal => {
            let mut f = findings.lock().unwrap_or_else(|e| e.into_inner());
            if f.fatal.len() < 5 {
                f.fatal.push(format!("{code:?}: {e}"));
            }
            Completion::Info(format!(
                "fatal producer error {code:?}: the idempotent producer stops; whether this message was written is unknown"
            ))
        }
        C::Unknown => Completion::Info(
            "delivery failed after sending: UNKNOWN_SERVER_ERROR (the broker could not say what happened)".into(),
        ),
        _ => Completion::Info(format!("delivery failed after sending: {code:?}")),
    }
}

/// A consumer that reads by assignment (no group coordination), for the drain.
fn assign_consumer(bootstrap: &str, id: &str) -> Result<BaseConsumer, BrokerError> {
    let mut c = base_config(bootstrap, id);
    c.set("group.id", id)
        .set("isolation.level", READ_ISOLATION)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    c.create()
        .map_err(|e| BrokerError(format!("create Kafka consumer {id}: {e}")))
}

/// Per partition: the producer -> last sequence read, and how many records came out of order.
#[derive(Default)]
pub struct Order {
    last: BTreeMap<(i32, u32), u64>,
    broken: BTreeMap<i32, u64>,
}

impl Order {
    fn see(&mut self, partition: i32, producer: u32, seq: u64) {
        let last = self.last.entry((partition, producer)).or_insert(seq);
        if seq < *last {
            *self.broken.entry(partition).or_default() += 1;
        } else {
            *last = seq;
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn receive(
    history: &HistorySink,
    clock: &Clock,
    partition: i32,
    offset: i64,
    payload: Option<&[u8]>,
    node: Option<&str>,
    report: &mut DrainReport,
    order: &mut Order,
) {
    let mut r = Receive {
        t_done: Some(clock.now_us()),
        position: Some(offset.max(0) as u64),
        partition: Some(partition.max(0) as u32),
        node: node.map(String::from),
        ..Default::default()
    };
    match payload.and_then(decode_payload) {
        Some((p, s)) => {
            r.id = Some((p, s));
            report.received += 1;
            order.see(partition, p, s);
        }
        None => report.foreign += 1,
    }
    history.record(Record::Receive(r));
}

/// The end offset (high watermark) of every partition, asked until every one answers.
pub async fn end_offsets(
    bootstrap: &str,
    w: &KafkaWorkload,
    deadline: Instant,
) -> Result<Vec<i64>, BrokerError> {
    let consumer = Arc::new(assign_consumer(bootstrap, "faultline-watermarks")?);
    let topic = w.topic.clone();
    let partitions = w.partitions;
    let mut last = String::new();
    while Instant::now() < deadline {
        let c = consumer.clone();
        let t = topic.clone();
        let got = tokio::task::spawn_blocking(move || {
            (0..partitions as i32)
                .map(|p| {
                    c.fetch_watermarks(&t, p, Duration::from_secs(2))
                        .map(|(_, high)| high)
                        .map_err(|e| format!("partition {p}: {e}"))
                })
                .collect::<Result<Vec<i64>, String>>()
        })
        .await
        .map_err(|e| BrokerError(format!("watermark task: {e}")))?;
        match got {
            Ok(ends) => return Ok(ends),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(BrokerError(format!(
        "the end offsets of {} could not be read before the drain timeout (last: {last})",
        w.topic
    )))
}

/// Reads every partition from its first offset to `ends`, recording a `receive` per record.
pub async fn drain(
    bootstrap: &str,
    w: &KafkaWorkload,
    history: &HistorySink,
    clock: &Clock,
    ends: Vec<i64>,
    deadline: Instant,
) -> Result<DrainReport, BrokerError> {
    let consumer = assign_consumer(bootstrap, "faultline-drain")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..w.partitions as i32 {
        tpl.add_partition_offset(&w.topic, p, Offset::Beginning)
            .map_err(|e| BrokerError(format!("assign partition {p}: {e}")))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| BrokerError(format!("assign the topic's partitions: {e}")))?;
    let history = history.clone();
    let clock = *clock;
    let w = w.clone();
    tokio::task::spawn_blocking(move || {
        let mut report = DrainReport::default();
        let mut order = Order::default();
        let mut next: Vec<i64> = vec![0; ends.len()];
        let mut errors = 0u64;
        let done = |next: &[i64]| next.iter().zip(&ends).all(|(n, e)| n >= e);
        while !done(&next) && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let p = m.partition();
                    if let Some(n) = next.get_mut(p as usize) {
                        *n = (*n).max(m.offset() + 1);
                    }
                    receive(
                        &history,
                        &clock,
                        p,
                        m.offset(),
                        m.payload(),
                        None,
                        &mut report,
                        &mut order,
                    );
                }
                Some(Err(_)) => errors += 1,
                None => {}
            }
        }
        report.complete = done(&next);
        let total: i64 = ends.iter().sum();
        report.notes.push(format!(
            "drain: read {} partition(s) of {} by offsets from the beginning to the end offsets {:?} ({} record(s) in all){}",
            ends.len(),
            w.topic,
            ends,
            total,
            if errors > 0 { format!("; {errors} consumer error(s) while reading") } else { String::new() }
        ));
        if !report.complete {
            let behind: Vec<String> = next
                .iter()
                .zip(&ends)
                .enumerate()
                .filter(|(_, (n, e))| n < e)
                .map(|(p, (n, e))| format!("partition {p} at {n} of {e}"))
                .collect();
            report
                .notes
                .push(format!("drain incomplete: {}", behind.join(", ")));
        }
        order_notes(&order, &mut report);
        report
    })
    .await
    .map_err(|e| BrokerError(format!("drain task: {e}")))
}

pub fn order_notes(order: &Order, report: &mut DrainReport) {
    if order.broken.is_empty() {
        report
            .notes
            .push("order: every producer's records are in send order within each partition".into());
    } else {
        let per: Vec<String> = order
            .broken
            .iter()
            .map(|(p, n)| format!("partition {p}: {n}"))
            .collect();
        report.notes.push(format!(
            "order broken: records that came after a later one of the same producer in the same partition ({})",
            per.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_statistics_give_messages_produce_requests_and_wakeups() {
        let doc = r#"{"name":"faultline-producer-0#producer-1","type":"producer","txmsgs":1000,
            "brokers":{"127.0.0.1:19092/bootstrap":{"wakeups":7,"req":{"Produce":0,"Metadata":2}},
                       "127.0.0.1:19092/111":{"wakeups":500,"req":{"Produce":40}},
                       "GroupCoordinator":{"req":{}}}}"#;
        let (name, c) = counters(doc.as_bytes()).expect("a statistics document");
        assert_eq!(name, "faultline-producer-0#producer-1");
        assert_eq!(
            c,
            ClientCounters {
                messages: 1000,
                requests: 40,
                wakeups: 507
            }
        );
        // A peer's output: a summary line, then statistics lines; the last one counts.
        let out = format!(
            "% 1000 messages produced\n{}\n{}\n",
            doc.replace('\n', " "),
            doc.replace('\n', " ").replace("1000", "2000")
        );
        assert_eq!(last_counters(&out).map(|c| c.messages), Some(2000));
        assert_eq!(last_counters("no statistics"), None);
    }

    #[test]
    fn order_counts_each_step_back_per_partition() {
        let mut o = Order::default();
        for (p, prod, seq) in [
            (0, 1, 1),
            (0, 1, 2),
            (1, 1, 0),
            (0, 1, 1),
            (0, 2, 5),
            (0, 1, 3),
        ] {
            o.see(p, prod, seq);
        }
        assert_eq!(o.broken.get(&0), Some(&1));
        assert_eq!(o.broken.get(&1), None);
    }

    #[test]
    fn delivery_errors_are_classified_as_the_log_knows_them() {
        let f = SharedFindings::default();
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(matches!(classify(&timed_out, &f), Completion::Info(_)));
        let refused = KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas);
        assert!(matches!(classify(&refused, &f), Completion::Fail(_)));
        let fatal = KafkaError::MessageProduction(RDKafkaErrorCode::OutOfOrderSequenceNumber);
        assert!(matches!(classify(&fatal, &f), Completion::Info(m) if m.contains("fatal")));
        let f = f.lock().unwrap();
        assert_eq!(f.fatal.len(), 1);
        assert_eq!(f.errors.len(), 3);
    }
}
