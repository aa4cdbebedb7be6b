//! The open-loop load generator, shared by every broker family.
//!
//! Message `i` of a producer at rate `r` is due at `t0 + i/r`. The generator never waits for an
//! acknowledgement before the next send; the number of messages in flight is capped, and time
//! spent waiting for the cap is recorded as generator stall (a run with much stall is not a
//! valid measurement). Latency is measured from the due time, so a stalled broker shows up in
//! the latency instead of silently slowing the load (coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::families::{Completion, Producer, Sent};
use crate::history::{Clock, HistorySink, Kind, Publish, Record};
use crate::payload::encode_payload;

/// What each producer sends, derived from the scenario's workload section.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Messages per second, all producers together.
    pub rate: f64,
    pub duration: Duration,
    pub payload_bytes: usize,
    pub max_in_flight: usize,
    pub ack_timeout: Duration,
}

/// Live counters for the progress display and `--metrics`; the history stays the source of
/// truth.
#[derive(Debug, Default)]
pub struct Counters {
    pub invoked: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub unknown: AtomicU64,
    pub stall_us: AtomicU64,
    /// Latency of the acknowledgements since the last [`LatencyBuckets::take_quantiles`].
    pub latency: LatencyBuckets,
    /// What panicked in a producer or a completion: a run with a panic is not a measurement.
    pub panics: std::sync::Mutex<Vec<String>>,
}

/// A panic's message, from what a task or `catch_unwind` returns.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The panic of a task that ended, as a message; `None` when it ended otherwise.
pub fn join_panic(e: tokio::task::JoinError) -> Option<String> {
    e.try_into_panic().ok().map(panic_message)
}

impl Counters {
    fn panicked(&self, what: String) {
        if let Ok(mut p) = self.panics.lock() {
            p.push(what);
        }
    }
}

/// Sub-buckets per power of two: bucket bounds 2^(1/8) apart, about 9 % wide.
const SUB: u32 = 8;
const BUCKETS: usize = 40 * SUB as usize;

/// A lock-free latency histogram for the live display: one atomic add per acknowledgement,
/// emptied once a second. (The figures of the result come from the history, exactly.)
#[derive(Debug)]
pub struct LatencyBuckets([AtomicU64; BUCKETS]);

impl Default for LatencyBuckets {
    fn default() -> Self {
        LatencyBuckets(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl LatencyBuckets {
    fn index(us: u64) -> usize {
        let v = us.max(1) as f64;
        ((v.log2() * SUB as f64) as usize).min(BUCKETS - 1)
    }

    pub fn record(&self, us: u64) {
        self.0[Self::index(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// The given quantiles (ms, each a bucket's middle) of what was recorded since the last
    /// call, and empties the buckets; `None` when nothing was recorded.
    pub fn take_quantiles<const N: usize>(&self, qs: [f64; N]) -> [Option<f64>; N] {
        let counts: Vec<u64> = self
            .0
            .iter()
            .map(|b| b.swap(0, Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let mut out = [None; N];
        if total == 0 {
            return out;
        }
        for (slot, q) in out.iter_mut().zip(qs) {
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    let mid = 2f64.powf((i as f64 + 0.5) / SUB as f64);
                    *slot = Some(mid / 1000.0);
                    break;
                }
            }
        }
        out
    }
}

impl Counters {
    pub fn in_flight(&self) -> u64 {
        let done = self.acked.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.unknown.load(Ordering::Relaxed);
        self.invoked.load(Ordering::Relaxed).saturating_sub(done)
    }
}

/// Runs every producer at its share of the rate from `start` for the spec's duration, then
/// waits (bounded by the acknowledgement timeout) for every message in flight to complete.
/// `Err` names what panicked (a producer, a completion): the load was not what was asked.
pub async fn run(
    producers: Vec<Box<dyn Producer>>,
    spec: LoadSpec,
    start: Instant,
    clock: Clock,
    history: HistorySink,
    counters: Arc<Counters>,
) -> Result<(), String> {
    let cap = spec.max_in_flight.max(1);
    let in_flight = Arc::new(Semaphore::new(cap));
    let n = producers.len().max(1) as f64;
    let rate = spec.rate / n;
    let count = (rate * spec.duration.as_secs_f64()).floor() as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for (index, producer) in producers.into_iter().enumerate() {
        let ctx = ProducerCtx {
            id: index as u32,
            // Producers are staggered inside one interval so their sends interleave evenly.
            offset: index as f64 / n,
            rate,
            count,
            start,
            spec: spec.clone(),
            clock,
            history: history.clone(),
            counters: counters.clone(),
            in_flight: in_flight.clone(),
        };
        tasks.spawn(ctx.run(producer));
    }
    // Each producer (its client connection) is kept until every acknowledgement is in: a
    // client dropped after its last send would lose the last acknowledgements and make
    // unknown outcomes of the harness's own.
    let mut done = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(producer) => done.push(producer),
            Err(e) => {
                if let Some(msg) = join_panic(e) {
                    counters.panicked(format!("a producer panicked: {msg}"));
                }
            }
        }
    }
    // Every completion task holds a permit until it has recorded its result, and each is
    // bounded by the ack timeout, so this wait is bounded too.
    let _ = tokio::time::timeout(
        spec.ack_timeout + Duration::from_secs(5),
        in_flight.acquire_many(cap as u32),
    )
    .await;
    drop(done);
    let panics = counters
        .panics
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    match panics.first() {
        None => Ok(()),
        Some(first) if panics.len() == 1 => Err(first.clone()),
        Some(first) => Err(format!("{first} (and {} more panic(s))", panics.len() - 1)),
    }
}

struct ProducerCtx {
    id: u32,
    offset: f64,
    rate: f64,
    count: u64,
    start: Instant,
    spec: LoadSpec,
    clock: Clock,
    history: HistorySink,
    counters: Arc<Counters>,
    in_flight: Arc<Semaphore>,
}

impl ProducerCtx {
    /// Sends this producer's messages on schedule; returns the producer, still connected.
    async fn run(self, mut producer: Box<dyn Producer>) -> Box<dyn Producer> {
        for seq in 0..self.count {
            let due = self.start + Duration::from_secs_f64((seq as f64 + self.offset) / self.rate);
            tokio::time::sleep_until(due.into()).await;
            let permit = match self.in_flight.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    let waited = Instant::now();
                    let Ok(p) = self.in_flight.clone().acquire_owned().await else {
                        return producer;
                    };
                    self.counters
                        .stall_us
                        .fetch_add(waited.elapsed().as_micros() as u64, Ordering::Relaxed);
                    p
                }
            };
            let payload = encode_payload(self.id, seq, self.spec.payload_bytes);
            let sent_at = Instant::now();
            let mut base = Publish {
                kind: Kind::Invoke,
                producer: self.id,
                seq,
                t_intended: self.clock.us(due),
                t_sent: self.clock.us(sent_at),
                ..Default::default()
            };
            self.counters.invoked.fetch_add(1, Ordering::Relaxed);

            // Most sends finish at the first poll (the client queues the message); only one
            // that does not is raced against the timeout, so a publish costs no timer here.
            let mut send = producer.send(payload);
            let sent = match futures::poll!(&mut send) {
                std::task::Poll::Ready(sent) => Ok(sent),
                std::task::Poll::Pending => tokio::time::timeout(self.spec.ack_timeout, send).await,
            };
            let (node, outcome) = match sent {
                Ok(Sent::Pending { node, ack }) => (node, Ok(ack)),
                Ok(Sent::Done { node, completion }) => (node, Err(completion)),
                Err(_) => (
                    None,
                    Err(Completion::Info(format!(
                        "client did not take the message within {:?}",
                        self.spec.ack_timeout
                    ))),
                ),
            };
            base.node = node;
            self.history.record(Record::Publish(base.clone()));
            match outcome {
                Err(completion) => {
                    self.complete(base, completion);
                    drop(permit);
                }
                Ok(ack) => {
                    let deadline = sent_at + self.spec.ack_timeout;
                    let ctx = self.clone_for_completion();
                    tokio::spawn(async move {
                        use futures::FutureExt;
                        let waited = std::panic::AssertUnwindSafe(tokio::time::timeout_at(
                            deadline.into(),
                            ack,
                        ))
                        .catch_unwind()
                        .await;
                        let completion = match waited {
                            Ok(Ok(c)) => c,
                            Ok(Err(_)) => Completion::Info(format!(
                                "no acknowledgement within {:?}",
                                ctx.ack_timeout
                            )),
                            Err(panic) => {
                                let msg = panic_message(panic);
                                ctx.counters.panicked(format!(
                                    "waiting for an acknowledgement panicked: {msg}"
                                ));
                                Completion::Info(format!("the harness panicked: {msg}"))
                            }
                        };
                        ctx.complete(base, completion);
                        drop(permit);
                    });
                }
            }
        }
        producer
    }

    fn clone_for_completion(&self) -> CompletionCtx {
        CompletionCtx {
            clock: self.clock,
            history: self.history.clone(),
            counters: self.counters.clone(),
            ack_timeout: self.spec.ack_timeout,
        }
    }

    fn complete(&self, base: Publish, completion: Completion) {
        self.clone_for_completion().complete(base, completion)
    }
}

struct CompletionCtx {
    clock: Clock,
    history: HistorySink,
    counters: Arc<Counters>,
    ack_timeout: Duration,
}

impl CompletionCtx {
    fn complete(&self, mut record: Publish, completion: Completion) {
        record.t_done = Some(self.clock.now_us());
        match completion {
            Completion::Ok {
                position,
                partition,
            } => {
                if let Some(done) = record.t_done {
                    self.counters
                        .latency
                        .record(done.saturating_sub(record.t_intended));
                }
                record.kind = Kind::Ok;
                record.position = position;
                record.partition = partition;
                self.counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Completion::Fail(e) => {
                record.kind = Kind::Fail;
                record.detail = Some(e);
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            Completion::Info(e) => {
                record.kind = Kind::Info;
                record.detail = Some(e);
                self.counters.unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.history.record(Record::Publish(record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use bytes::Bytes;
    use futures::FutureExt;
    use std::sync::Mutex;

    /// A producer whose acknowledgement arrives after a fixed delay, recording send times.
    /// Like a client connection, it loses the acknowledgements still due when it is dropped.
    struct Delayed {
        delay: Duration,
        sends: Arc<Mutex<Vec<Instant>>>,
        connected: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Drop for Delayed {
        fn drop(&mut self) {
            self.connected.store(false, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl Producer for Delayed {
        async fn send(&mut self, _payload: Bytes) -> Sent {
            self.sends.lock().unwrap().push(Instant::now());
            let delay = self.delay;
            let connected = self.connected.clone();
            Sent::Pending {
                node: Some("n1".into()),
                ack: async move {
                    tokio::time::sleep(delay).await;
                    if !connected.load(Ordering::SeqCst) {
                        return Completion::Info("connection lost".into());
                    }
                    Completion::Ok {
                        position: None,
                        partition: None,
                    }
                }
                .boxed(),
            }
        }
    }

    /// A producer that panics: in its send (`in_ack: false`) or in its acknowledgement.
    struct Panicking {
        in_ack: bool,
    }

    #[async_trait]
    impl Producer for Panicking {
        async fn send(&mut self, _payload: Bytes) -> Sent {
            assert!(self.in_ack, "the client broke in send");
            Sent::Pending {
                node: None,
                ack: async { panic!("the client broke in its acknowledgement") }.boxed(),
            }
        }
    }

    #[tokio::test]
    async fn a_panic_in_a_producer_or_its_acknowledgement_is_an_error_with_its_message() {
        for (in_ack, said) in [
            (false, "a producer panicked: the client broke in send"),
            (
                true,
                "waiting for an acknowledgement panicked: the client broke in its acknowledgement",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (sink, writer) = crate::history::open(&dir.path().join("h.bin")).unwrap();
            let spec = LoadSpec {
                rate: 100.0,
                duration: Duration::from_millis(50),
                payload_bytes: 32,
                max_in_flight: 16,
                ack_timeout: Duration::from_secs(1),
            };
            let got = run(
                vec![Box::new(Panicking { in_ack })],
                spec,
                Instant::now(),
                Clock::start(),
                sink,
                Arc::new(Counters::default()),
            )
            .await;
            let err = got.expect_err("a panic is no load");
            assert!(err.starts_with(said), "{err}");
            writer.finish().await.unwrap();
        }
    }

    async fn drive(delay: Duration, max_in_flight: usize) -> (Vec<Publish>, Arc<Counters>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let (sink, writer) = crate::history::open(&path).unwrap();
        let sends = Arc::new(Mutex::new(Vec::new()));
        let producer = Box::new(Delayed {
            delay,
            sends: sends.clone(),
            connected: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        });
        let spec = LoadSpec {
            rate: 200.0,
            duration: Duration::from_millis(500),
            payload_bytes: 32,
            max_in_flight,
            ack_timeout: Duration::from_secs(2),
        };
        let counters = Arc::new(Counters::default());
        let clock = Clock::start();
        run(
            vec![producer],
            spec,
            Instant::now(),
            clock,
            sink,
            counters.clone(),
        )
        .await
        .unwrap();
        writer.finish().await.unwrap();
        let records = crate::history::read(&path)
            .unwrap()
            .filter_map(|r| match r.unwrap() {
                Record::Publish(p) => Some(p),
                _ => None,
            })
            .collect();
        let n = sends.lock().unwrap().len();
        (records, counters, n)
    }

    #[test]
    fn the_live_quantiles_are_within_a_bucket_and_empty_after_reading() {
        let b = LatencyBuckets::default();
        // 1 000 acknowledgements at 1..=1000 ms: p50 500 ms, p99 990 ms.
        for ms in 1..=1000u64 {
            b.record(ms * 1000);
        }
        let [p50, p99] = b.take_quantiles([0.5, 0.99]);
        let (p50, p99) = (p50.unwrap(), p99.unwrap());
        assert!((p50 - 500.0).abs() / 500.0 < 0.1, "{p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.1, "{p99}");
        assert_eq!(b.take_quantiles([0.5]), [None]);
    }

    #[tokio::test]
    async fn open_loop_does_not_wait_for_acks() {
        // 100 messages due over 0.5 s, each acknowledged after 200 ms: a closed loop would
        // need 20 s; the open loop sends them all on schedule.
        let started = Instant::now();
        let (records, counters, sends) = drive(Duration::from_millis(200), 1000).await;
        assert_eq!(sends, 100);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(counters.acked.load(Ordering::Relaxed), 100);
        assert_eq!(counters.stall_us.load(Ordering::Relaxed), 0);
        let oks: Vec<&Publish> = records.iter().filter(|r| r.kind == Kind::Ok).collect();
        assert_eq!(oks.len(), 100);
        for r in oks {
            let latency = r.t_done.unwrap() - r.t_intended;
            assert!(
                latency >= 200_000,
                "latency {latency} µs below the ack delay"
            );
        }
    }

    #[tokio::test]
    async fn a_full_cap_is_stall_and_counts_in_latency() {
        // Cap of 2 with 50 ms acks (40/s at most, against 200/s asked): the generator must
        // wait, which is recorded as stall, and the waiting shows in latency measured from the
        // due time.
        let (records, counters, _) = drive(Duration::from_millis(50), 2).await;
        assert!(counters.stall_us.load(Ordering::Relaxed) > 1_000_000);
        let worst = records
            .iter()
            .filter(|r| r.kind == Kind::Ok)
            .map(|r| r.t_done.unwrap() - r.t_intended)
            .max()
            .unwrap();
        assert!(
            worst > 1_500_000,
            "worst latency {worst} µs hides the stall"
        );
    }
}
