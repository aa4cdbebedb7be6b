//! The NATS workload driver: JetStream publishes with acknowledgements through async-nats, and
//! the drain that reads the stream to its end after the faults are healed.

use std::time::{Duration, Instant};

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    stream::{self, StorageType},
};
use async_nats::Client;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::config::{NatsWorkload, Storage};
use crate::families::{BrokerError, Completion, DrainReport, Producer, Sent};
use crate::history::{Clock, HistorySink, Receive, Record};
use crate::payload::decode_payload;

/// Connects to the first reachable server of `urls`, keeping their order (so producers spread
/// over the nodes) and reconnecting forever during the run.
pub async fn connect(
    urls: &[String],
    name: &str,
    deadline: Instant,
) -> Result<Client, BrokerError> {
    connect_with(async_nats::ConnectOptions::new(), urls, name, "", deadline).await
}

/// Connects a producer: like [`connect`], with room on every subscription for as many
/// answers as a producer can have in flight (the scenario allows 2^20), so that no
/// acknowledgement is dropped as a slow consumer's while the producer is sending. (A bounded
/// channel's capacity costs nothing until it is used.)
pub async fn connect_producer(
    urls: &[String],
    name: &str,
    deadline: Instant,
) -> Result<Client, BrokerError> {
    let options = async_nats::ConnectOptions::new().subscription_capacity(1 << 21);
    connect_with(options, urls, name, "", deadline).await
}

/// Connects as a user of the system account (for requests only it may make).
pub async fn connect_as(
    urls: &[String],
    name: &str,
    creds: &super::config::Credentials,
    deadline: Instant,
) -> Result<Client, BrokerError> {
    let options = async_nats::ConnectOptions::with_user_and_password(
        creds.user.clone(),
        creds.password.clone(),
    );
    let who = format!(" as system user {}", creds.user);
    connect_with(options, urls, name, &who, deadline).await
}

async fn connect_with(
    options: async_nats::ConnectOptions,
    urls: &[String],
    name: &str,
    who: &str,
    deadline: Instant,
) -> Result<Client, BrokerError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let connect = options
        .name(name)
        .retain_servers_order()
        .connection_timeout(Duration::from_secs(2))
        .max_reconnects(None)
        .connect(urls);
    match tokio::time::timeout(remaining.max(Duration::from_secs(1)), connect).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(BrokerError(format!("connect to {urls:?}{who}: {e}"))),
        Err(_) => Err(BrokerError(format!("connect to {urls:?}{who}: timed out"))),
    }
}

/// Asks the meta leader to remove server `name` from the JetStream meta group.
pub async fn remove_server(system: &Client, name: &str) -> Result<(), String> {
    let body = serde_json::json!({ "peer": name }).to_string();
    let reply = tokio::time::timeout(
        Duration::from_secs(3),
        system.request("$JS.API.SERVER.REMOVE", body.into()),
    )
    .await
    .map_err(|_| "$JS.API.SERVER.REMOVE: no answer within 3 s".to_string())?
    .map_err(|e| format!("$JS.API.SERVER.REMOVE: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|e| format!("$JS.API.SERVER.REMOVE: unreadable answer: {e}"))?;
    if v["success"].as_bool() == Some(true) {
        Ok(())
    } else {
        Err(format!("$JS.API.SERVER.REMOVE answered {v}"))
    }
}

/// The stream's replicas when none is on `gone` and all are current (leader first).
pub async fn placed_off(client: &Client, stream: &str, gone: &str) -> Result<Vec<String>, String> {
    let js = jetstream::new(client.clone());
    let mut s = js
        .get_stream(stream)
        .await
        .map_err(|e| format!("stream {stream}: {e}"))?;
    let info = s
        .info()
        .await
        .map_err(|e| format!("stream info {stream}: {e}"))?;
    let cluster = info
        .cluster
        .as_ref()
        .ok_or_else(|| format!("stream {stream} has no cluster information"))?;
    let leader = cluster
        .leader
        .clone()
        .ok_or_else(|| format!("stream {stream} has no leader"))?;
    let mut placed = vec![leader];
    placed.extend(cluster.replicas.iter().map(|r| r.name.clone()));
    if placed.iter().any(|n| n == gone) {
        return Err(format!("stream {stream} still placed on {placed:?}"));
    }
    if let Some(r) = cluster.replicas.iter().find(|r| !r.current || r.offline) {
        return Err(format!("stream {stream}: replica {} not current", r.name));
    }
    if placed.len() != info.config.num_replicas {
        return Err(format!(
            "stream {stream} has {} of {} replicas: {placed:?}",
            placed.len(),
            info.config.num_replicas
        ));
    }
    Ok(placed)
}

fn storage_type(s: Storage) -> StorageType {
    match s {
        Storage::File => StorageType::File,
        Storage::Memory => StorageType::Memory,
    }
}

/// Creates the stream and waits until it has a leader and every replica is current. Returns
/// the leader's name.
pub async fn create_stream(
    client: &Client,
    w: &NatsWorkload,
    deadline: Instant,
) -> Result<String, BrokerError> {
    let js = jetstream::new(client.clone());
    let config = stream::Config {
        name: w.stream.clone(),
        subjects: vec![w.subject.clone()],
        num_replicas: w.replicas as usize,
        storage: storage_type(w.storage),
        ..Default::default()
    };
    let mut last = String::new();
    while Instant::now() < deadline {
        // Right after the meta leader is elected JetStream may still refuse requests
        // ("JetStream system temporarily unavailable"), so creation is retried.
        let mut stream = match js.get_or_create_stream(config.clone()).await {
            Ok(s) => s,
            Err(e) => {
                last = format!("create stream {}: {e}", w.stream);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        match stream.info().await {
            Ok(info) => {
                let c = &info.config;
                if c.num_replicas != w.replicas as usize
                    || c.storage != storage_type(w.storage)
                    || c.subjects != vec![w.subject.clone()]
                {
                    return Err(BrokerError(format!(
                        "a stream named {} already exists with another configuration",
                        w.stream
                    )));
                }
                match &info.cluster {
                    Some(cluster) => match &cluster.leader {
                        Some(leader)
                            if cluster.replicas.iter().all(|r| r.current && !r.offline) =>
                        {
                            return Ok(leader.clone())
                        }
                        _ => last = format!("stream {} not yet replicated: {cluster:?}", w.stream),
                    },
                    None if w.replicas == 1 => return Ok(String::from("(single server)")),
                    None => last = format!("stream {} has no cluster information yet", w.stream),
                }
            }
            Err(e) => last = format!("stream info {}: {e}", w.stream),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(BrokerError(format!(
        "cluster not ready: stream {} not created and replicated in time (last: {last})",
        w.stream
    )))
}

/// A JetStream publisher on core NATS, as the Go client's `PublishAsync` is: each message is
/// published with a reply subject `<inbox>.<token>` of the producer's own, and the stream
/// leader's acknowledgement (or a 503 "no responders" status when no stream took it) comes on
/// one subscription to `<inbox>.*`. The answers are handed to the generator by token
/// ([`Sent::Tagged`]), so a publish costs no request-map entry, no channel and no future of
/// its own, which async-nats's request path (`jetstream::Context::publish`) spends on every
/// message. The protocol on the wire is the same.
pub struct NatsProducer {
    client: Client,
    /// Built once: a clone is a reference count, where a `String` would be copied per send.
    subject: async_nats::Subject,
    /// Every acknowledgement for this producer, on `<inbox>.*`.
    replies: async_nats::Subscriber,
    /// `<inbox>.`: a reply subject is this and the message's token.
    reply_prefix: String,
    /// Reply subjects are written here and split off: one allocation for many of them.
    reply_buf: bytes::BytesMut,
    next_token: u64,
    /// The server the client is connected to. `server_info()` copies the whole INFO (URLs,
    /// versions...), so it is read on every send only for a second after the client's
    /// connect count changed (the client counts a connect just before it stores the new
    /// server's INFO), and otherwise kept.
    node: Option<String>,
    stats: std::sync::Arc<async_nats::Statistics>,
    connects: u64,
    reread_until: Instant,
}

impl NatsProducer {
    /// Subscribes the producer's reply subject on `client` (async-nats subscribes it again
    /// after a reconnect).
    pub async fn new(client: Client, w: &NatsWorkload) -> Result<Self, BrokerError> {
        let inbox = client.new_inbox();
        let replies = client.subscribe(format!("{inbox}.*")).await.map_err(|e| {
            BrokerError(format!("subscribe to the acknowledgements {inbox}.*: {e}"))
        })?;
        Ok(NatsProducer {
            stats: client.statistics(),
            client,
            subject: async_nats::Subject::from(w.subject.as_str()),
            replies,
            reply_prefix: format!("{inbox}."),
            reply_buf: bytes::BytesMut::new(),
            next_token: 0,
            node: None,
            connects: u64::MAX,
            reread_until: Instant::now(),
        })
    }

    /// `<inbox>.<token>`.
    fn reply_subject(&mut self, token: u64) -> async_nats::Subject {
        use std::fmt::Write;
        if self.reply_buf.capacity() < self.reply_prefix.len() + 20 {
            self.reply_buf.reserve(16 * 1024);
        }
        self.reply_buf
            .extend_from_slice(self.reply_prefix.as_bytes());
        write!(self.reply_buf, "{token}").expect("writing to memory cannot fail");
        async_nats::Subject::from_utf8(self.reply_buf.split().freeze())
            .expect("an inbox and a number are ASCII")
    }
}

#[async_trait]
impl Producer for NatsProducer {
    async fn send(&mut self, payload: Bytes) -> Sent {
        let connects = self
            .stats
            .connects
            .load(std::sync::atomic::Ordering::Relaxed);
        if connects != self.connects {
            self.connects = connects;
            self.reread_until = Instant::now() + Duration::from_secs(1);
        }
        if self.node.is_none() || Instant::now() < self.reread_until {
            self.node = Some(self.client.server_info().server_name).filter(|n| !n.is_empty());
        }
        let node = self.node.clone();
        let token = self.next_token;
        self.next_token += 1;
        let reply = self.reply_subject(token);
        match self
            .client
            .publish_with_reply(self.subject.clone(), reply, payload)
            .await
        {
            Ok(()) => Sent::Tagged { node, token },
            // The publish was not handed to the connection: it cannot have been applied.
            Err(e) => Sent::Done {
                node,
                completion: Completion::Fail(format!("not sent: {e}")),
            },
        }
    }

    fn poll_answers(
        &mut self,
        cx: &mut std::task::Context<'_>,
        answer: &mut dyn FnMut(u64, Completion),
    ) {
        while let std::task::Poll::Ready(Some(m)) = self.replies.poll_next_unpin(cx) {
            let token = m.subject.as_str().rsplit_once('.').map(|(_, t)| t.parse());
            if let Some(Ok(token)) = token {
                answer(token, classify(&m));
            }
        }
    }
}

/// A JetStream acknowledgement: `{"stream":..,"seq":..}`, or `{"error":{..}}`.
#[derive(serde::Deserialize)]
struct PubAckAnswer {
    error: Option<ApiError>,
    seq: Option<u64>,
}

#[derive(serde::Deserialize)]
struct ApiError {
    code: u64,
    #[serde(default)]
    err_code: u64,
    description: Option<String>,
}

/// What an answer on the reply subject says about the message.
fn classify(m: &async_nats::Message) -> Completion {
    // 503 "no responders": no server had interest in the subject, so no stream stored it
    // (during a leader election nobody captures the stream's subjects).
    if m.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
        return Completion::Fail("no responders (503): no stream leader took the message".into());
    }
    if let Some(status) = m.status.filter(|s| *s != async_nats::StatusCode::OK) {
        return Completion::Info(format!("unclear answer: status {status}"));
    }
    match serde_json::from_slice::<PubAckAnswer>(&m.payload) {
        // The server answered with a refusal (wrong last sequence, limits...): it did not
        // store the message.
        Ok(PubAckAnswer { error: Some(e), .. }) => Completion::Fail(format!(
            "refused by JetStream: {} (status {}, error {})",
            e.description.as_deref().unwrap_or("no description"),
            e.code,
            e.err_code
        )),
        Ok(PubAckAnswer {
            seq: Some(seq),
            error: None,
        }) => Completion::Ok {
            position: Some(seq),
            partition: None,
        },
        Ok(_) => Completion::Info(format!(
            "unclear answer: {}",
            String::from_utf8_lossy(&m.payload)
        )),
        Err(e) => Completion::Info(format!("unclear answer: {e}")),
    }
}

/// Records one message read from the stream.
fn receive(
    history: &HistorySink,
    clock: &Clock,
    position: u64,
    payload: &[u8],
    report: &mut DrainReport,
) {
    let mut r = Receive {
        t_done: Some(clock.now_us()),
        position: Some(position),
        ..Default::default()
    };
    match decode_payload(payload) {
        Some((p, s)) => {
            r.id = Some((p, s));
            report.received += 1;
        }
        None => report.foreign += 1,
    }
    history.record(Record::Receive(r));
}

/// How many STREAM.MSG.GET requests are in flight at once while reading from the leader: one
/// at a time, thousands of sequences took longer than a drain timeout when a replica had
/// fallen behind.
const GETS_IN_FLIGHT: usize = 32;

/// Reads sequences `from..=to` with STREAM.MSG.GET, which the stream leader answers (the
/// stream is created without direct gets, so replicas do not), `GETS_IN_FLIGHT` requests at a
/// time, recorded in sequence order. A request that fails is retried from its sequence on.
/// Returns whether every sequence was read or found deleted before the deadline.
async fn read_from_leader(
    stream: &stream::Stream,
    from: u64,
    to: u64,
    history: &HistorySink,
    clock: &Clock,
    deadline: Instant,
    report: &mut DrainReport,
) -> bool {
    let mut seq = from;
    let mut errors = 0u64;
    let mut last_error = String::new();
    while seq <= to {
        if Instant::now() >= deadline {
            report.notes.push(format!(
                "drain timed out reading from the stream leader at sequence {seq} of {to} ({errors} failed request(s), the last: {last_error})"
            ));
            return false;
        }
        let batch_end = to.min(seq + 8 * GETS_IN_FLIGHT as u64 - 1);
        let answers: Vec<_> = futures::stream::iter(seq..=batch_end)
            .map(|s| async move {
                let get = tokio::time::timeout(Duration::from_secs(2), stream.get_raw_message(s));
                (s, get.await)
            })
            .buffered(GETS_IN_FLIGHT)
            .collect()
            .await;
        // Sequences after a failed one are asked again, so nothing is recorded twice.
        for (s, get) in answers {
            match get {
                Ok(Ok(message)) => receive(history, clock, s, &message.payload, report),
                // A sequence that no longer exists (deleted, or never stored) has nothing to read.
                Ok(Err(e)) if e.to_string().contains("not found") => {}
                Ok(Err(e)) => {
                    errors += 1;
                    last_error = e.to_string();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
                Err(_) => {
                    errors += 1;
                    last_error = "no answer within 2 s".into();
                    break;
                }
            }
            seq = s + 1;
        }
    }
    if errors > 0 {
        report.notes.push(format!(
            "drain: {errors} request(s) to the stream leader failed and were retried (the last: {last_error})"
        ));
    }
    true
}

/// Reads the stream to its end (see `read_stream`), then confirms that end with the stream
/// leader (see `confirm_end`).
pub async fn drain(
    urls: &[String],
    w: &NatsWorkload,
    history: &HistorySink,
    clock: &Clock,
    timeout: Duration,
) -> Result<DrainReport, BrokerError> {
    let deadline = Instant::now() + timeout;
    let client = connect(urls, "faultline-drain", deadline).await?;
    let js = jetstream::new(client);
    let (mut report, read_to) = read_stream(&js, w, history, clock, deadline, timeout).await?;
    if let (true, Some(read_to)) = (report.complete, read_to) {
        confirm_end(&js, w, history, clock, deadline, read_to, &mut report).await;
    }
    Ok(report)
}

/// Asks for the stream's end again until the leader agrees twice with what was read,
/// reading anything beyond it from the leader. Right after a partition heals, an answer can
/// come from a node whose view is stale; the leader's own answer wins.
async fn confirm_end(
    js: &jetstream::Context,
    w: &NatsWorkload,
    history: &HistorySink,
    clock: &Clock,
    deadline: Instant,
    mut read_to: u64,
    report: &mut DrainReport,
) {
    let mut agreed = 0;
    while agreed < 2 {
        if Instant::now() >= deadline {
            report.complete = false;
            report.notes.push(format!(
                "drain timed out confirming the end of stream {} with its leader",
                w.stream
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(5), js.get_stream(&w.stream)).await
        else {
            continue;
        };
        let info = stream.cached_info();
        // A stream on a server outside any cluster has no cluster block: that server is it.
        let leader = match &info.cluster {
            Some(cluster) => match &cluster.leader {
                Some(leader) => leader.clone(),
                None => continue,
            },
            None => "(single server)".to_string(),
        };
        let last = info.state.last_sequence;
        if last <= read_to {
            agreed += 1;
            continue;
        }
        agreed = 0;
        report.notes.push(format!(
            "drain: stream {} goes on to sequence {last} by its leader {leader}, beyond the {read_to} reported first: sequences {}..{last} were read from the stream leader (STREAM.MSG.GET)",
            w.stream,
            read_to + 1
        ));
        if !read_from_leader(&stream, read_to + 1, last, history, clock, deadline, report).await {
            report.complete = false;
            return;
        }
        read_to = last;
    }
}

/// Reads the stream from its first message to the last one present when the drain starts,
/// recording a `receive` per message. Consumers are recreated from the next sequence if one
/// breaks, and sequences already read are skipped, so a broken consumer cannot invent
/// duplicates.
async fn read_stream(
    js: &jetstream::Context,
    w: &NatsWorkload,
    history: &HistorySink,
    clock: &Clock,
    deadline: Instant,
    timeout: Duration,
) -> Result<(DrainReport, Option<u64>), BrokerError> {
    let mut report = DrainReport::default();
    let mut next_seq = 0u64; // 0: not started
    let mut last_seq = None;
    let mut not_found_since: Option<Instant> = None;
    let mut last_error = String::new();

    while Instant::now() < deadline {
        let bounded = |d: Duration| d.min(deadline.saturating_duration_since(Instant::now()));
        let stream =
            match tokio::time::timeout(bounded(Duration::from_secs(5)), js.get_stream(&w.stream))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let text = e.to_string();
                    if text.contains("not found") {
                        let since = *not_found_since.get_or_insert_with(Instant::now);
                        // A stream that stays missing after the heal is gone, with its messages.
                        if since.elapsed() > Duration::from_secs(10) {
                            report.complete = true;
                            report.notes.push(format!(
                                "stream {} no longer exists: nothing to read",
                                w.stream
                            ));
                            return Ok((report, None));
                        }
                    }
                    last_error = format!("get stream: {text}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                Err(_) => {
                    last_error = "get stream: timed out".into();
                    continue;
                }
            };
        let info = stream.cached_info();
        // Only the stream leader's view is authoritative: a replica that has not caught up
        // answers with fewer messages.
        if info.cluster.as_ref().is_some_and(|c| c.leader.is_none()) {
            last_error = "stream info names no leader".into();
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        if last_seq.is_none() {
            report.notes.push(format!(
                "drain: stream {} holds {} message(s), sequences {}..{}, leader {}",
                w.stream,
                info.state.messages,
                info.state.first_sequence,
                info.state.last_sequence,
                info.cluster
                    .as_ref()
                    .and_then(|c| c.leader.clone())
                    .unwrap_or_else(|| "unknown".into())
            ));
        }
        let last = *last_seq.get_or_insert(info.state.last_sequence);
        if next_seq == 0 {
            next_seq = info.state.first_sequence.max(1);
        }
        if info.state.messages == 0 || next_seq > last {
            report.complete = true;
            return Ok((report, Some(last)));
        }
        let consumer = stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: next_seq,
                },
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await;
        let consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                last_error = format!("create consumer: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        'fetch: while Instant::now() < deadline {
            let batch = consumer
                .fetch()
                .max_messages(1000)
                .expires(bounded(Duration::from_secs(2)).max(Duration::from_millis(100)))
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    last_error = format!("fetch: {e}");
                    break 'fetch;
                }
            };
            let mut got = 0usize;
            while let Some(message) = batch.next().await {
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        last_error = format!("fetch: {e}");
                        break 'fetch;
                    }
                };
                let Ok(meta) = message.info() else { continue };
                let seq = meta.stream_sequence;
                if seq < next_seq {
                    continue;
                }
                next_seq = seq + 1;
                got += 1;
                receive(history, clock, seq, &message.payload, &mut report);
                if seq >= last {
                    report.complete = true;
                    return Ok((report, Some(last)));
                }
            }
            if got == 0 {
                // Nothing came: either the consumer broke, or the remaining sequences up to
                // `last` were deleted. The consumer's own count of pending messages tells.
                let mut consumer = consumer.clone();
                if let Ok(info) = consumer.info().await {
                    if info.num_pending == 0 && next_seq <= last {
                        // The consumer believes it reached the end, but the stream leader
                        // said it goes further: the consumer is served from a replica that
                        // has not caught up. Read the rest from the leader itself.
                        report.notes.push(format!(
                            "drain: the consumer reported the end of stream {} at sequence {} although the stream leader's last sequence is {last}: it was served by a replica that had not caught up; sequences {next_seq}..{last} were read from the stream leader (STREAM.MSG.GET)",
                            w.stream,
                            next_seq - 1
                        ));
                        report.complete = read_from_leader(
                            &stream,
                            next_seq,
                            last,
                            history,
                            clock,
                            deadline,
                            &mut report,
                        )
                        .await;
                        return Ok((report, Some(last)));
                    }
                    if info.num_pending == 0 {
                        report.complete = true;
                        return Ok((report, Some(last.max(next_seq - 1))));
                    }
                }
            }
        }
    }
    report.notes.push(format!(
        "drain timed out after {timeout:?} at stream sequence {next_seq} of {}: {last_error}",
        last_seq.unwrap_or(0)
    ));
    Ok((report, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(
        status: Option<async_nats::StatusCode>,
        payload: &'static str,
    ) -> async_nats::Message {
        async_nats::Message {
            subject: async_nats::Subject::from_static("_INBOX.x.7"),
            reply: None,
            payload: Bytes::from_static(payload.as_bytes()),
            headers: None,
            status,
            description: None,
            length: payload.len(),
        }
    }

    #[test]
    fn an_acknowledgement_is_ok_a_refusal_or_no_responders_fail_anything_else_unknown() {
        let ok = answer(None, r#"{"stream":"ORDERS","seq":42,"duplicate":false}"#);
        assert_eq!(
            classify(&ok),
            Completion::Ok {
                position: Some(42),
                partition: None
            }
        );
        // A refusal names the stream too (and a zero sequence): the error decides.
        let refused = answer(
            None,
            r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"},"stream":"ORDERS","seq":0}"#,
        );
        assert_eq!(
            classify(&refused),
            Completion::Fail(
                "refused by JetStream: wrong last sequence: 3 (status 400, error 10071)".into()
            )
        );
        let none = answer(Some(async_nats::StatusCode::NO_RESPONDERS), "");
        assert!(matches!(classify(&none), Completion::Fail(e) if e.starts_with("no responders")));
        for unclear in [r#"{"stream":"ORDERS"}"#, "not json"] {
            assert!(
                matches!(classify(&answer(None, unclear)), Completion::Info(e) if e.starts_with("unclear answer")),
                "{unclear}"
            );
        }
    }
}
