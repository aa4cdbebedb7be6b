//! Producers and the drain, through the `pulsar` crate (tokio, rustls; patched to read frames
//! without a checksum, see vendor/README.md).
//!
//! The crate has a history of reconnections that hang, so every await here has a bound: the
//! harness bounds each send receipt with the scenario's `ack_timeout`, and everything else
//! (connecting, creating a producer or consumer, one read) has its own timeout, after which
//! the client is reported as not making progress rather than waited for.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use pulsar::consumer::InitialPosition;
use pulsar::proto::MessageIdData;
use pulsar::{
    ConnectionRetryOptions, ConsumerOptions, OperationRetryOptions, ProducerOptions, Pulsar,
    SubType, TokioExecutor,
};

use super::config::{PulsarWorkload, Subscription};
use crate::families::{BrokerError, Completion, DrainReport, Producer, Sent};
use crate::history::{Clock, HistorySink, Receive, Record};
use crate::payload::decode_payload;

pub type Client = Pulsar<TokioExecutor>;

/// A message's place in the topic: ledger, then entry.
pub type Position = (u64, u64);

fn position(id: &MessageIdData) -> Position {
    (id.ledger_id, id.entry_id)
}

/// The position recorded in the history: ledger in the high 24 bits, entry in the low 40.
pub fn history_position(id: &MessageIdData) -> u64 {
    (id.ledger_id << 40) | (id.entry_id & ((1 << 40) - 1))
}

/// The highest position any producer had acknowledged: where the drain must read to, at least.
pub type HighestAcked = Arc<Mutex<Option<Position>>>;

/// Connects a client to `url`. Reconnections back off from 100 ms to 1 s, without a limit on
/// their number (the harness's timeouts bound what waits on them).
pub async fn connect(
    url: &str,
    w: &PulsarWorkload,
    within: Duration,
) -> Result<Client, BrokerError> {
    let connection = ConnectionRetryOptions {
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        max_retries: u32::MAX,
        connection_timeout: Duration::from_secs(2),
        keep_alive: Duration::from_secs(5),
        ..Default::default()
    };
    let operation = OperationRetryOptions {
        operation_timeout: w.operation_timeout,
        retry_delay: Duration::from_millis(200),
        max_retries: None,
    };
    let build = Pulsar::builder(url, TokioExecutor)
        .with_connection_retry_options(connection)
        .with_operation_retry_options(operation)
        .build();
    match tokio::time::timeout(within, build).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(BrokerError(format!("connect to {url}: {e}"))),
        Err(_) => Err(BrokerError(format!(
            "connect to {url}: the pulsar client made no progress in {within:?}"
        ))),
    }
}

pub struct PulsarProducer {
    producer: pulsar::Producer<TokioExecutor>,
    node: Option<String>,
    /// Bound on handing one message to the client (it blocks while it reconnects).
    hand_over: Duration,
    highest: HighestAcked,
}

impl PulsarProducer {
    pub async fn new(
        client: &Client,
        w: &PulsarWorkload,
        name: String,
        node: Option<String>,
        hand_over: Duration,
        highest: HighestAcked,
    ) -> Result<Self, BrokerError> {
        let options = ProducerOptions {
            batch_size: w.batch_size,
            block_queue_if_full: true,
            ..Default::default()
        };
        let build = client
            .producer()
            .with_topic(&w.topic)
            .with_name(&name)
            .with_options(options)
            .build();
        let producer = match tokio::time::timeout(Duration::from_secs(15), build).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(BrokerError(format!("create producer {name}: {e}"))),
            Err(_) => {
                return Err(BrokerError(format!(
                    "create producer {name}: the pulsar client made no progress in 15 s"
                )))
            }
        };
        Ok(PulsarProducer {
            producer,
            node,
            hand_over,
            highest,
        })
    }
}

#[async_trait]
impl Producer for PulsarProducer {
    async fn send(&mut self, payload: Bytes) -> Sent {
        let node = self.node.clone();
        let handed = tokio::time::timeout(
            self.hand_over,
            self.producer.send_non_blocking(payload.to_vec()),
        )
        .await;
        match handed {
            Ok(Ok(receipt)) => {
                let highest = self.highest.clone();
                Sent::Pending {
                    node,
                    ack: async move {
                        match receipt.await {
                            Ok(r) => {
                                let id = r.message_id.as_ref();
                                if let Some(id) = id {
                                    let mut h = highest.lock().unwrap_or_else(|e| e.into_inner());
                                    *h = (*h).max(Some(position(id)));
                                }
                                Completion::Ok {
                                    position: id.map(history_position),
                                    partition: id
                                        .and_then(|i| i.partition)
                                        .map(|p| p.max(0) as u32),
                                }
                            }
                            // The client may have written it before the error: unknown.
                            Err(e) => Completion::Info(format!("no send receipt: {e}")),
                        }
                    }
                    .boxed(),
                }
            }
            // The client gave up on it (a producer not re-created in time, a connection
            // lost): it may have been written before, so unknown, not failed.
            Ok(Err(e)) => Sent::Done {
                node,
                completion: Completion::Info(format!("send refused by the client: {e}")),
            },
            Err(_) => Sent::Done {
                node,
                completion: Completion::Info(format!(
                    "the pulsar client did not take the message within {:?} (reconnecting?)",
                    self.hand_over
                )),
            },
        }
    }
}

fn sub_type(s: Subscription) -> SubType {
    match s {
        Subscription::Exclusive => SubType::Exclusive,
        Subscription::Failover => SubType::Failover,
        Subscription::Shared => SubType::Shared,
    }
}

type Consumer = pulsar::Consumer<Vec<u8>, TokioExecutor>;

async fn consumer(
    client: &Client,
    w: &PulsarWorkload,
    subscription: &str,
    name: String,
) -> Result<Consumer, String> {
    let build = client
        .consumer()
        .with_topic(&w.topic)
        .with_subscription(subscription)
        .with_subscription_type(sub_type(w.subscription))
        .with_consumer_name(&name)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build::<Vec<u8>>();
    match tokio::time::timeout(Duration::from_secs(15), build).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("create consumer {name}: {e}")),
        Err(_) => Err(format!(
            "create consumer {name}: the pulsar client made no progress in 15 s"
        )),
    }
}

/// What one consumer read.
#[derive(Default)]
struct Read {
    received: u64,
    foreign: u64,
    highest: Option<Position>,
    /// Messages delivered again (same position) to this consumer.
    redelivered: u64,
    error: Option<String>,
}

/// Reads with one consumer until it has seen `end` (when known) and then nothing for
/// `quiet`, or until `deadline`; every message is recorded and acknowledged.
async fn read(
    mut c: Consumer,
    end: Option<Position>,
    quiet: Duration,
    deadline: Instant,
    history: HistorySink,
    clock: Clock,
    name: String,
) -> Read {
    let mut out = Read::default();
    let mut seen = std::collections::HashSet::new();
    loop {
        let reached = end.is_none_or(|e| out.highest.is_some_and(|h| h >= e));
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        // Before the end is reached, wait as long as the deadline allows for the next message.
        let wait = if reached { quiet } else { deadline - now };
        match tokio::time::timeout(wait.min(deadline - now), c.next()).await {
            Err(_) => break,
            Ok(None) => {
                out.error = Some(format!("{name}: the consumer's stream ended"));
                break;
            }
            Ok(Some(Err(e))) => {
                out.error = Some(format!("{name}: {e}"));
                break;
            }
            Ok(Some(Ok(msg))) => {
                let id = msg.message_id().clone();
                let mut r = Receive {
                    t_done: Some(clock.now_us()),
                    position: Some(history_position(&id)),
                    node: Some(name.clone()),
                    ..Default::default()
                };
                match decode_payload(&msg.payload.data) {
                    Some((p, s)) => {
                        r.id = Some((p, s));
                        out.received += 1;
                    }
                    None => out.foreign += 1,
                }
                if !seen.insert(position(&id)) {
                    out.redelivered += 1;
                }
                history.record(Record::Receive(r));
                out.highest = out.highest.max(Some(position(&id)));
                let _ = tokio::time::timeout(Duration::from_secs(5), c.ack(&msg)).await;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
    out
}

/// Reads the topic from its start, with a fresh subscription of the workload's type, to its
/// end: the broker's last message id where it answers, and at least the highest position any
/// producer had acknowledged; then 1 s more for what was stored but never acknowledged.
pub async fn drain(
    url: &str,
    w: &PulsarWorkload,
    highest_acked: Option<Position>,
    history: &HistorySink,
    clock: &Clock,
    timeout: Duration,
) -> Result<DrainReport, BrokerError> {
    let deadline = Instant::now() + timeout;
    let mut report = DrainReport::default();
    let client = connect(url, w, timeout.min(Duration::from_secs(15))).await?;
    let subscription = format!("faultline-drain-{}", clock.now_us());
    let mut consumers = Vec::new();
    for i in 0..w.consumers {
        consumers.push(
            consumer(&client, w, &subscription, format!("drain-{i}"))
                .await
                .map_err(BrokerError)?,
        );
    }
    // The broker's own end of the topic, asked through the first consumer.
    let last = match tokio::time::timeout(
        Duration::from_secs(5),
        consumers[0].get_last_message_id(),
    )
    .await
    {
        Ok(Ok(ids)) => ids.iter().map(position).max(),
        Ok(Err(e)) => {
            report.notes.push(format!(
                "drain: the broker did not say where the topic ends ({e})"
            ));
            None
        }
        Err(_) => {
            report
                .notes
                .push("drain: the broker did not say where the topic ends within 5 s".into());
            None
        }
    };
    let end = last.max(highest_acked);
    report.notes.push(match (last, highest_acked) {
        (Some(l), _) => format!(
            "drain: read to the broker's last message id {}:{} ({} subscription, {} consumer(s))",
            l.0,
            l.1,
            w.subscription.name(),
            w.consumers
        ),
        (None, Some(h)) => format!(
            "drain: read to the highest acknowledged message id {}:{} ({} subscription, {} consumer(s))",
            h.0,
            h.1,
            w.subscription.name(),
            w.consumers
        ),
        (None, None) => "drain: nothing was acknowledged and the broker did not say where the topic ends; read until 1 s of silence".into(),
    });
    // A shared or failover subscription's consumers split the topic: each reads until the
    // subscription as a whole is past the end, which only their union shows, so they read
    // until quiet once the deadline allows no more.
    let quiet = Duration::from_secs(1);
    let solo = consumers.len() == 1;
    let tasks: Vec<_> = consumers
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(read(
                c,
                if solo { end } else { None },
                if solo { quiet } else { Duration::from_secs(3) },
                deadline,
                history.clone(),
                *clock,
                format!("drain-{i}"),
            ))
        })
        .collect();
    let mut highest = None;
    let mut redelivered = 0;
    for t in tasks {
        let r = t
            .await
            .map_err(|e| BrokerError(format!("drain task: {e}")))?;
        report.received += r.received;
        report.foreign += r.foreign;
        redelivered += r.redelivered;
        highest = highest.max(r.highest);
        if let Some(e) = r.error {
            report.notes.push(format!("drain: {e}"));
        }
    }
    if redelivered > 0 {
        report.notes.push(format!(
            "drain: {redelivered} message(s) delivered twice to the same consumer"
        ));
    }
    report.complete = match end {
        Some(e) => highest.is_some_and(|h| h >= e),
        None => Instant::now() < deadline,
    };
    if !report.complete {
        report.notes.push(format!(
            "drain: did not reach the end of the topic before the timeout (read to {})",
            highest.map_or("nothing".into(), |h| format!("{}:{}", h.0, h.1))
        ));
    }
    Ok(report)
}
