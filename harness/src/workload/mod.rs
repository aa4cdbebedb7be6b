//! The open-loop load generator, shared by every broker family.
//!
//! Message `i` of a producer at rate `r` is due at `t0 + i/r`. The generator never waits for an
//! acknowledgement before the next send; the number of messages in flight is capped, and time
//! spent waiting for the cap is recorded as generator stall (a run with much stall is not a
//! valid measurement). Latency is measured from the due time, so a stalled broker shows up in
//! the latency instead of silently slowing the load (coordinated omission).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod awaiting;

use awaiting::{Awaiting, Outcome};

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
    let n = producers.len().max(1);
    // The cap is shared evenly: each producer waits on its own acknowledgements only.
    let cap = (spec.max_in_flight / n).max(1);
    let rate = spec.rate / n as f64;
    let count = messages_in(rate, spec.duration);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, producer) in producers.into_iter().enumerate() {
        let ctx = ProducerCtx {
            id: index as u32,
            // Producers are staggered inside one interval so their sends interleave evenly.
            offset: index as f64 / n as f64,
            rate,
            count,
            cap,
            start,
            spec: spec.clone(),
            clock,
            history: history.clone(),
            counters: counters.clone(),
        };
        tasks.spawn(ctx.run(producer));
    }
    // Each producer (its client connection) is kept until every acknowledgement is in: a
    // client dropped after its last send would lose the last acknowledgements and make
    // unknown outcomes of the harness's own. A producer returns once each of its messages
    // is answered or past its deadline, so this wait is bounded by the timeout.
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
    /// This producer's share of `max_in_flight`.
    cap: usize,
    start: Instant,
    spec: LoadSpec,
    clock: Clock,
    history: HistorySink,
    counters: Arc<Counters>,
}

/// How many messages `rate` sends in `duration`. A `Duration` holds whole nanoseconds, so a
/// duration computed as "n messages at this rate" may be a nanosecond short of it: a fraction
/// that close to the next whole message is that message (else 200 000 messages at 101 184/s
/// over 4 producers sent 199 996).
fn messages_in(rate: f64, duration: Duration) -> u64 {
    let exact = rate * duration.as_secs_f64();
    (exact + (rate * 2e-9).max(1e-9)).floor() as u64
}

impl ProducerCtx {
    /// Sends this producer's messages on schedule and completes their acknowledgements in
    /// the same task; returns the producer, still connected, once every message is answered
    /// or past its deadline.
    async fn run(self, mut producer: Box<dyn Producer>) -> Box<dyn Producer> {
        // Buckets a twentieth of the timeout wide (10 to 250 ms): about 20 in flight.
        let width = (self.spec.ack_timeout / 20)
            .clamp(Duration::from_millis(10), Duration::from_millis(250));
        let mut awaiting = Awaiting::new(self.spec.ack_timeout, width);
        let timer = tokio::time::sleep_until(self.start.into());
        tokio::pin!(timer);
        let mut seq = 0u64;
        let mut stalled: Option<Instant> = None;
        loop {
            self.collect(producer.as_mut(), &mut awaiting).await;
            let now = Instant::now();
            let wake_at = if seq == self.count {
                if awaiting.is_empty() {
                    break;
                }
                awaiting.next_expiry()
            } else if awaiting.len() >= self.cap {
                // Waiting on the cap is stall, until an acknowledgement (or an expiry) frees
                // a place.
                stalled.get_or_insert(now);
                awaiting.next_expiry()
            } else {
                if let Some(since) = stalled.take() {
                    self.counters
                        .stall_us
                        .fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
                let due = self.due(seq);
                if due <= now {
                    self.send(&mut producer, &mut awaiting, seq, due).await;
                    seq += 1;
                    continue;
                }
                Some(awaiting.next_expiry().map_or(due, |e| e.min(due)))
            };
            if let Some(at) = wake_at {
                if timer.deadline() != at.into() {
                    timer.as_mut().reset(at.into());
                }
            }
            // Until an acknowledgement comes or the timer fires.
            std::future::poll_fn(|cx| {
                if self.take_in(cx, producer.as_mut(), &mut awaiting) > 0
                    || (wake_at.is_some() && timer.as_mut().poll(cx).is_ready())
                {
                    return std::task::Poll::Ready(());
                }
                std::task::Poll::Pending
            })
            .await;
        }
        producer
    }

    fn due(&self, seq: u64) -> Instant {
        self.start + Duration::from_secs_f64((seq as f64 + self.offset) / self.rate)
    }

    /// Completes whatever acknowledgements are in, without waiting.
    async fn collect(&self, producer: &mut dyn Producer, awaiting: &mut Awaiting) {
        if awaiting.is_empty() {
            return;
        }
        std::future::poll_fn(|cx| {
            self.take_in(cx, producer, awaiting);
            std::task::Poll::Ready(())
        })
        .await
    }

    /// Completes the acknowledgements that are in (futures ready, answers handed on by the
    /// producer) and the waits that expired; registers `cx` for the next. Returns how many.
    fn take_in(
        &self,
        cx: &mut std::task::Context<'_>,
        producer: &mut dyn Producer,
        awaiting: &mut Awaiting,
    ) -> usize {
        let mut handed = awaiting.collect(cx, Instant::now(), |r, d, o| self.complete(r, d, o));
        producer.poll_answers(cx, &mut |token, completion| {
            // Seen now at the latest: later than its deadline is too late.
            let now = Instant::now();
            if awaiting.answer(token, completion, now, |r, d, o| self.complete(r, d, o)) {
                handed += 1;
            }
        });
        handed
    }

    /// Sends message `seq` (due at `due`) and records its invocation; its acknowledgement
    /// joins `awaiting`. Acknowledgements that come in while the client takes the message
    /// are completed meanwhile.
    async fn send(
        &self,
        producer: &mut Box<dyn Producer>,
        awaiting: &mut Awaiting,
        seq: u64,
        due: Instant,
    ) {
        let payload = encode_payload(self.id, seq, self.spec.payload_bytes);
        let sent_at = Instant::now();
        let mut record = Publish {
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
            std::task::Poll::Ready(sent) => Some(sent),
            std::task::Poll::Pending => {
                let limit = tokio::time::sleep_until((sent_at + self.spec.ack_timeout).into());
                tokio::pin!(limit);
                std::future::poll_fn(|cx| {
                    awaiting.collect(cx, Instant::now(), |r, d, o| self.complete(r, d, o));
                    if let std::task::Poll::Ready(sent) = send.as_mut().poll(cx) {
                        return std::task::Poll::Ready(Some(sent));
                    }
                    limit.as_mut().poll(cx).map(|_| None)
                })
                .await
            }
        };
        drop(send);
        let mut sent = sent.unwrap_or_else(|| Sent::Done {
            node: None,
            completion: Completion::Info(format!(
                "client did not take the message within {:?}",
                self.spec.ack_timeout
            )),
        });
        let (Sent::Pending { node, .. } | Sent::Tagged { node, .. } | Sent::Done { node, .. }) =
            &mut sent;
        record.node = node.take();
        self.history.record(Record::Publish(record.clone()));
        match sent {
            Sent::Pending { ack, .. } => awaiting.push(record, sent_at, ack),
            Sent::Tagged { token, .. } => awaiting.push_tagged(record, sent_at, token),
            Sent::Done { completion, .. } => self.finish(record, self.clock.now_us(), completion),
        }
    }

    /// Records how the wait for one acknowledgement ended.
    fn complete(&self, record: Publish, deadline: Instant, outcome: Outcome) {
        match outcome {
            Outcome::Answered(c) => self.finish(record, self.clock.now_us(), c),
            // A timeout is recorded at the deadline it missed.
            Outcome::TimedOut => self.finish(
                record,
                self.clock.us(deadline),
                Completion::Info(format!(
                    "no acknowledgement within {:?}",
                    self.spec.ack_timeout
                )),
            ),
            Outcome::Panicked(msg) => {
                self.counters
                    .panicked(format!("waiting for an acknowledgement panicked: {msg}"));
                self.finish(
                    record,
                    self.clock.now_us(),
                    Completion::Info(format!("the harness panicked: {msg}")),
                )
            }
        }
    }

    fn finish(&self, mut record: Publish, t_done: u64, completion: Completion) {
        record.t_done = Some(t_done);
        match completion {
            Completion::Ok {
                position,
                partition,
            } => {
                self.counters
                    .latency
                    .record(t_done.saturating_sub(record.t_intended));
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
    use std::pin::Pin;
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

    /// A producer whose answers come by token, `delay` after the send, except every
    /// `silent`-th, which is never answered.
    struct Answering {
        delay: Duration,
        silent: u64,
        next: u64,
        due: std::collections::VecDeque<(Instant, u64)>,
        timer: Pin<Box<tokio::time::Sleep>>,
    }

    #[async_trait]
    impl Producer for Answering {
        async fn send(&mut self, _payload: Bytes) -> Sent {
            let token = self.next;
            self.next += 1;
            if !token.is_multiple_of(self.silent) {
                self.due.push_back((Instant::now() + self.delay, token));
            }
            Sent::Tagged {
                node: Some("n1".into()),
                token,
            }
        }

        fn poll_answers(
            &mut self,
            cx: &mut std::task::Context<'_>,
            answer: &mut dyn FnMut(u64, Completion),
        ) {
            while let Some(&(at, token)) = self.due.front() {
                if at > Instant::now() {
                    self.timer.as_mut().reset(at.into());
                    if self.timer.as_mut().poll(cx).is_pending() {
                        return;
                    }
                    continue;
                }
                self.due.pop_front();
                answer(
                    token,
                    Completion::Ok {
                        position: Some(token),
                        partition: None,
                    },
                );
            }
        }
    }

    #[tokio::test]
    async fn answers_by_token_complete_their_message_and_the_unanswered_time_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.bin");
        let (sink, writer) = crate::history::open(&path).unwrap();
        let producer = Box::new(Answering {
            delay: Duration::from_millis(30),
            silent: 5,
            next: 0,
            due: Default::default(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        });
        let spec = LoadSpec {
            rate: 200.0,
            duration: Duration::from_millis(500),
            payload_bytes: 32,
            max_in_flight: 1000,
            ack_timeout: Duration::from_millis(300),
        };
        let counters = Arc::new(Counters::default());
        let started = Instant::now();
        run(
            vec![producer],
            spec,
            Instant::now(),
            Clock::start(),
            sink,
            counters.clone(),
        )
        .await
        .unwrap();
        // The last silent message gives up 300 ms after it was sent.
        assert!(started.elapsed() < Duration::from_secs(2));
        writer.finish().await.unwrap();
        let done: Vec<Publish> = crate::history::read(&path)
            .unwrap()
            .filter_map(|r| match r.unwrap() {
                Record::Publish(p) if p.kind != Kind::Invoke => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(done.len(), 100);
        for p in &done {
            let waited = p.t_done.unwrap() - p.t_sent;
            if p.seq.is_multiple_of(5) {
                assert_eq!(p.kind, Kind::Info, "message {} was never answered", p.seq);
                assert!(waited >= 300_000, "gave up after {waited} µs");
            } else {
                assert_eq!(p.kind, Kind::Ok, "message {}", p.seq);
                assert_eq!(p.position, Some(p.seq), "the answer of its own token");
                assert!(waited >= 30_000, "answered after {waited} µs");
            }
        }
        assert_eq!(counters.acked.load(Ordering::Relaxed), 80);
        assert_eq!(counters.unknown.load(Ordering::Relaxed), 20);
    }

    #[test]
    fn a_duration_made_for_n_messages_sends_n_not_one_less() {
        for (total, rate) in [(200_000u64, 101_184.0), (200_000, 50_592.0), (12, 7.0)] {
            let duration = Duration::from_secs_f64(total as f64 / rate);
            assert_eq!(
                4 * messages_in(rate / 4.0, duration),
                total,
                "{total} at {rate}/s"
            );
        }
        // A fraction that is not a rounding error stays out.
        assert_eq!(messages_in(10.0, Duration::from_millis(1_950)), 19);
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
