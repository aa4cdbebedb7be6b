//! The MQTT workload driver (rumqttc, MQTT 3.1.1 or 5, through `client`): producers whose
//! every acknowledgement is matched to its publish, and the subscriber whose session the
//! checks are about.
//!
//! rumqttc's `publish()` only queues a request; the event loop reports, in request order,
//! `Outgoing::Publish(pkid)` when it writes one (a collision on a packet id holds the request
//! back and reports it when written), then `PubAck(pkid)` (QoS 1) or `PubComp(pkid)` (QoS 2)
//! when the broker acknowledges it. A producer keeps the waiting completions in request order
//! until written, then by packet id. A connection that breaks ends every message written on
//! it as unknown (`info`: it may have been stored) and every message not yet written as
//! `fail` (never sent); the next publish connects to the next node in turn. rumqttc's own
//! replay of unacknowledged publishes is not used: each connection is a fresh client, so a
//! message is sent exactly once by the harness and the broker's duplicates stay visible.
//! Under MQTT 5 a PUBACK or PUBREC with a failure reason code is the broker's refusal: `fail`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::client::{self, Client, Ev, Events, Options};
use super::config::{MqttWorkload, Qos};
use crate::families::answers::Answers;
use crate::families::{BrokerError, Completion, NodeEndpoint, Producer, Sent};
use crate::history::{Clock, HistorySink, Receive, Record};
use crate::payload::decode_payload;

pub use client::MQTT_PORT;

/// A payload that marks the end of what was published through one node (see `drain`).
const END_MARKER: &[u8; 6] = b"FLTEND";

/// The `attempt`-th end marker published through `node`.
pub fn end_marker(node: &str, attempt: u32) -> Bytes {
    Bytes::from(format!("FLTEND{node}#{attempt}"))
}

/// The node an end marker went through.
fn read_end_marker(payload: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(payload.strip_prefix(END_MARKER.as_slice())?);
    Some(
        text.rsplit_once('#')
            .map_or(&*text, |(node, _)| node)
            .to_string(),
    )
}

pub fn options(w: &MqttWorkload, client_id: &str, node: &NodeEndpoint, clean: bool) -> Options {
    Options::new(w, client_id, node, clean)
}

/// Opens a connection and waits for its CONNACK; returns the client, its event loop and
/// whether the broker resumed a session.
pub async fn connect(
    options: Options,
    capacity: usize,
    timeout: Duration,
) -> Result<(Client, Events, bool), String> {
    client::connect(&options, capacity, timeout).await
}

/// Messages waiting on one connection, by token; their answers go to the producer's
/// [`Answers`], which every connection it opens shares, so the answers of a connection that
/// broke still arrive.
struct Waiting {
    /// Requested, not yet written, in request order.
    queued: VecDeque<u64>,
    /// Written, by packet id, awaiting PUBACK / PUBCOMP.
    written: HashMap<u16, u64>,
    /// The connection broke: nothing more will complete on it.
    closed: bool,
    answers: Arc<Answers>,
}

impl Waiting {
    fn new(answers: Arc<Answers>) -> Self {
        Waiting {
            queued: VecDeque::new(),
            written: HashMap::new(),
            closed: false,
            answers,
        }
    }

    fn close(&mut self, why: &str) {
        self.closed = true;
        for (_, token) in self.written.drain() {
            self.answers.push(
                token,
                Completion::Info(format!(
                    "connection lost before the acknowledgement ({why})"
                )),
            );
        }
        for token in self.queued.drain(..) {
            self.answers.push(
                token,
                Completion::Fail(format!(
                    "not sent: the connection broke before it was written ({why})"
                )),
            );
        }
    }

    fn on_event(&mut self, event: &Ev, qos: Qos) {
        let acknowledged = Completion::Ok {
            position: None,
            partition: None,
        };
        match event {
            Ev::Written(pkid) => {
                if let Some(token) = self.queued.pop_front() {
                    if qos == Qos::Zero {
                        self.answers.push(
                            token,
                            Completion::Info(
                                "QoS 0: written to the connection; nothing acknowledges it".into(),
                            ),
                        );
                    } else {
                        self.written.insert(*pkid, token);
                    }
                }
            }
            // RabbitMQ 3.10 grants QoS 1 at most and answers a QoS 2 publish with a PUBACK:
            // the broker acknowledged it, at the QoS it supports.
            Ev::PubAck(pkid) if qos != Qos::Zero => {
                if let Some(token) = self.written.remove(pkid) {
                    self.answers.push(token, acknowledged);
                }
            }
            Ev::PubComp(pkid) if qos == Qos::Two => {
                if let Some(token) = self.written.remove(pkid) {
                    self.answers.push(token, acknowledged);
                }
            }
            Ev::Refused(pkid, reason) => {
                if let Some(token) = self.written.remove(pkid) {
                    self.answers.push(
                        token,
                        Completion::Fail(format!("refused by the broker: {reason}")),
                    );
                }
            }
            _ => {}
        }
    }
}

struct Connection {
    client: Client,
    node: String,
    waiting: Arc<Mutex<Waiting>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// How long a dropped connection keeps its event loop for the answers still due.
const LINGER: Duration = Duration::from_secs(60);

impl Drop for Connection {
    /// The producer is dropped after its last send, while answers are still due: the event
    /// loop goes on until every message on it has completed (each is bounded by the ack
    /// timeout), then stops.
    fn drop(&mut self) {
        let Some(task) = self.task.take() else { return };
        let waiting = self.waiting.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            task.abort();
            return;
        };
        runtime.spawn(async move {
            let until = Instant::now() + LINGER;
            while Instant::now() < until && !task.is_finished() {
                {
                    let w = waiting.lock().unwrap_or_else(|e| e.into_inner());
                    if w.queued.is_empty() && w.written.is_empty() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            task.abort();
        });
    }
}

pub struct MqttProducer {
    index: u32,
    workload: MqttWorkload,
    /// The nodes this producer connects to, in turn; starts at its own.
    nodes: Vec<NodeEndpoint>,
    next: usize,
    generation: u32,
    capacity: usize,
    conn: Option<Connection>,
    /// Every answer, from whichever connection it came on ([`Sent::Tagged`]).
    answers: Arc<Answers>,
    next_token: u64,
    spare: Vec<(u64, Completion)>,
}

impl MqttProducer {
    pub fn new(
        index: u32,
        workload: MqttWorkload,
        nodes: Vec<NodeEndpoint>,
        capacity: usize,
    ) -> Self {
        MqttProducer {
            index,
            workload,
            nodes,
            next: 0,
            generation: 0,
            capacity,
            conn: None,
            answers: Arc::default(),
            next_token: 0,
            spare: Vec::new(),
        }
    }

    /// Connects to the next node in turn.
    pub async fn open(&mut self) -> Result<(), String> {
        let node = self.nodes[self.next % self.nodes.len()].clone();
        self.next += 1;
        self.generation += 1;
        // A fresh client id per connection: the producer's own session carries nothing.
        let id = format!("faultline-p{}-{}", self.index, self.generation);
        let mut o = options(&self.workload, &id, &node, true);
        o.inflight = self.capacity.clamp(10, u16::MAX as usize - 1) as u16;
        let (client, mut events, _) = connect(o, self.capacity + 16, self.workload.connect_timeout)
            .await
            .map_err(|e| format!("connect to {}: {e}", node.name))?;
        let waiting = Arc::new(Mutex::new(Waiting::new(self.answers.clone())));
        let shared = waiting.clone();
        let qos = self.workload.qos;
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(event) => shared
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .on_event(&event, qos),
                    Err(e) => {
                        let mut w = shared.lock().unwrap_or_else(|e| e.into_inner());
                        // Publishes serialised just before the error are reported in the
                        // events left behind: they count as written.
                        for event in events.leftover() {
                            w.on_event(&event, qos);
                        }
                        w.close(&e);
                        return;
                    }
                }
            }
        });
        self.conn = Some(Connection {
            client,
            node: node.name,
            waiting,
            task: Some(task),
        });
        Ok(())
    }
}

#[async_trait]
impl Producer for MqttProducer {
    async fn send(&mut self, payload: Bytes) -> Sent {
        let broken = self
            .conn
            .as_ref()
            .is_none_or(|c| c.waiting.lock().unwrap_or_else(|e| e.into_inner()).closed);
        if broken {
            self.conn = None;
            if let Err(e) = self.open().await {
                return Sent::Done {
                    node: None,
                    completion: Completion::Fail(format!("not sent: {e}")),
                };
            }
        }
        let conn = self.conn.as_ref().expect("connected above");
        let token = self.next_token;
        self.next_token += 1;
        {
            let mut w = conn.waiting.lock().unwrap_or_else(|e| e.into_inner());
            if w.closed {
                return Sent::Done {
                    node: Some(conn.node.clone()),
                    completion: Completion::Fail("not sent: the connection had just broken".into()),
                };
            }
            w.queued.push_back(token);
        }
        let node = Some(conn.node.clone());
        if let Err(e) = conn
            .client
            .try_publish(&self.workload.topic, self.workload.qos, payload)
        {
            conn.waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .queued
                .pop_back();
            return Sent::Done {
                node,
                completion: Completion::Fail(format!("not sent: the client refused it ({e})")),
            };
        }
        Sent::Tagged { node, token }
    }

    fn poll_answers(
        &mut self,
        cx: &mut std::task::Context<'_>,
        answer: &mut dyn FnMut(u64, Completion),
    ) {
        self.answers.take(cx, &mut self.spare, answer);
    }
}

/// Publishes one end marker to `node` with the workload's QoS (at least 1) and waits for its
/// acknowledgement.
pub async fn publish_marker(
    w: &MqttWorkload,
    node: &NodeEndpoint,
    attempt: u32,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let id = format!("faultline-end-{}", node.name);
    let (client, mut events, _) =
        connect(options(w, &id, node, true), 16, w.connect_timeout).await?;
    let qos = if w.qos == Qos::Zero { Qos::One } else { w.qos };
    client
        .publish(&w.topic, qos, end_marker(&node.name, attempt))
        .await?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.poll()).await {
            Err(_) => return Err(format!("no acknowledgement within {timeout:?}")),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Ev::PubAck(_))) if qos == Qos::One => break,
            Ok(Ok(Ev::PubComp(_))) if qos == Qos::Two => break,
            Ok(Ok(Ev::Refused(_, reason))) => return Err(format!("refused: {reason}")),
            Ok(Ok(_)) => {}
        }
    }
    client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
    Ok(())
}

/// What the subscriber saw, shared with the drain.
#[derive(Debug, Default)]
pub struct SubscriberState {
    pub received: u64,
    pub foreign: u64,
    /// End markers received, by the node they were published to.
    pub markers: Vec<String>,
    pub notes: Vec<String>,
    pub connected_to: Option<String>,
    /// The node it was connected to last, also while it is away.
    pub last_node: Option<String>,
    /// Set by the drain: disconnect and stop.
    pub stop: bool,
}

pub type SharedSubscriber = Arc<Mutex<SubscriberState>>;

/// Where the subscriber connects next.
struct Plan {
    nodes: Vec<NodeEndpoint>,
    next: usize,
}

impl Plan {
    fn take(&mut self) -> NodeEndpoint {
        let n = self.nodes[self.next % self.nodes.len()].clone();
        self.next += 1;
        n
    }

    fn start_at(&mut self, name: &str) {
        if let Some(i) = self.nodes.iter().position(|n| n.name == name) {
            self.next = i;
        }
    }
}

/// Connects the subscriber and subscribes; returns once the broker confirmed the subscription
/// (SUBACK), so nothing published afterwards can miss it.
pub async fn start_subscriber(
    w: MqttWorkload,
    nodes: Vec<NodeEndpoint>,
    history: HistorySink,
    clock: Clock,
    load_start: Arc<tokio::sync::OnceCell<Instant>>,
    state: SharedSubscriber,
) -> Result<tokio::task::JoinHandle<()>, BrokerError> {
    let mut plan = Plan { nodes, next: 0 };
    if let Some(first) = &w.subscriber.node {
        plan.start_at(first);
    }
    let node = plan.take();
    let rec = Recorder {
        history,
        clock,
        state,
    };
    let (client, events, _) = subscribe(&w, &node, &rec)
        .await
        .map_err(|e| BrokerError(format!("subscriber {}: {e}", w.subscriber.client_id)))?;
    Ok(tokio::spawn(run_subscriber(
        w, plan, node, client, events, rec, load_start,
    )))
}

/// Connects to `node` with the subscriber's client id and subscribes; returns whether the
/// broker said it resumed a session (CONNACK session present).
async fn subscribe(
    w: &MqttWorkload,
    node: &NodeEndpoint,
    rec: &Recorder,
) -> Result<(Client, Events, bool), String> {
    let state = &rec.state;
    let s = &w.subscriber;
    let qos = w.qos;
    let o = options(w, &s.client_id, node, s.clean_session);
    let (client, mut events, present) = connect(o, 64, w.connect_timeout)
        .await
        .map_err(|e| format!("connect to {}: {e}", node.name))?;
    // Subscribed on every connection, as applications do on connect: a resumed session
    // keeps its subscription anyway, and one the broker lost gets it back (the note on
    // reconnection says which happened).
    {
        client.subscribe(&s.filter, qos).await?;
        let deadline = Instant::now() + w.connect_timeout.max(Duration::from_secs(5));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, events.poll()).await {
                Err(_) => return Err(format!("no SUBACK from {} in time", node.name)),
                Ok(Err(e)) => return Err(format!("subscribe on {}: {e}", node.name)),
                Ok(Ok(Ev::SubAck(Some(reason)))) => {
                    return Err(format!(
                        "{} refused the subscription to {} ({reason})",
                        node.name, s.filter
                    ));
                }
                Ok(Ok(Ev::SubAck(None))) => break,
                // Messages of a resumed session may arrive before the SUBACK.
                Ok(Ok(Ev::Message { payload, .. })) => rec.message(&node.name, &payload),
                Ok(Ok(_)) => {}
            }
        }
    }
    {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.connected_to = Some(node.name.clone());
        st.last_node = Some(node.name.clone());
    }
    Ok((client, events, present))
}

/// Where the subscriber writes what it receives.
struct Recorder {
    history: HistorySink,
    clock: Clock,
    state: SharedSubscriber,
}

impl Recorder {
    fn message(&self, node: &str, payload: &[u8]) {
        record_message(&self.history, &self.clock, node, payload, &self.state);
    }
}

fn record_message(
    history: &HistorySink,
    clock: &Clock,
    node: &str,
    payload: &[u8],
    state: &SharedSubscriber,
) {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(marker) = read_end_marker(payload) {
        st.markers.push(marker);
        return;
    }
    let mut r = Receive {
        t_done: Some(clock.now_us()),
        node: Some(node.to_string()),
        ..Default::default()
    };
    match decode_payload(payload) {
        Some((p, s)) => {
            r.id = Some((p, s));
            st.received += 1;
        }
        None => st.foreign += 1,
    }
    history.record(Record::Receive(r));
}

async fn run_subscriber(
    w: MqttWorkload,
    mut plan: Plan,
    mut node: NodeEndpoint,
    client: Client,
    events: Events,
    rec: Recorder,
    load_start: Arc<tokio::sync::OnceCell<Instant>>,
) {
    let state = rec.state.clone();
    let clock = rec.clock;
    let s = w.subscriber.clone();
    let mut conn = Some((client, events));
    let mut went_offline = false;
    // Reconnection attempts since the subscriber last lost (or left) its connection.
    let mut attempts = 0u32;
    let mut away_since: Option<Instant> = None;
    let mut last_error = String::new();
    loop {
        if state.lock().unwrap_or_else(|e| e.into_inner()).stop {
            if let (None, Some(since)) = (&conn, away_since) {
                state.lock().unwrap_or_else(|e| e.into_inner()).notes.push(format!(
                    "subscriber: still not reconnected when the drain ended: {attempts} failed attempt(s) over {:.1} s (last: {last_error})",
                    since.elapsed().as_secs_f64()
                ));
            }
            if let Some((client, mut events)) = conn.take() {
                client.disconnect().await;
                let _ = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
            }
            return;
        }
        // The scheduled absence: leave cleanly (the session stays), come back later.
        if let (Some(off), Some(back), Some(start)) =
            (s.offline_at, s.reconnect_at, load_start.get())
        {
            if !went_offline && Instant::now() >= *start + off {
                went_offline = true;
                if let Some((client, mut events)) = conn.take() {
                    client.disconnect().await;
                    let _ = tokio::time::timeout(Duration::from_millis(500), events.poll()).await;
                }
                state.lock().unwrap_or_else(|e| e.into_inner()).notes.push(format!(
                    "subscriber: went offline from {} at {:.1} s of the load (DISCONNECT; the session stays on the broker)",
                    node.name,
                    off.as_secs_f64()
                ));
                state.lock().unwrap_or_else(|e| e.into_inner()).connected_to = None;
                tokio::time::sleep_until((*start + back).into()).await;
                if let Some(to) = &s.reconnect_to {
                    plan.start_at(to);
                }
            }
        }
        match conn.as_mut() {
            Some((_, events)) => {
                let polled = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
                match polled {
                    Err(_) => {}
                    Ok(Ok(Ev::Message { payload, .. })) => {
                        rec.message(&node.name, &payload);
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                        st.notes.push(format!(
                            "subscriber: connection to {} lost at {:.1} s ({})",
                            node.name,
                            clock.now_us() as f64 / 1e6,
                            e
                        ));
                        st.connected_to = None;
                        conn = None;
                        // The same node first: a broker that only hiccuped still holds the
                        // session (bridged brokers share none); the next ones if it is gone.
                        plan.start_at(&node.name);
                    }
                }
            }
            None => {
                let candidate = plan.take();
                let since = *away_since.get_or_insert_with(Instant::now);
                match subscribe(&w, &candidate, &rec).await {
                    Ok((client, events, present)) => {
                        let waited = format!(
                            "after {attempts} failed attempt(s) over {:.1} s",
                            since.elapsed().as_secs_f64()
                        );
                        state.lock().unwrap_or_else(|e| e.into_inner()).notes.push(
                            match (s.clean_session, present) {
                                (true, _) => format!("subscriber: reconnected to {} {waited} (clean session)", candidate.name),
                                (false, true) => format!(
                                    "subscriber: reconnected to {} {waited}, and the broker resumed its session",
                                    candidate.name
                                ),
                                (false, false) => format!(
                                    "subscriber: reconnected to {} {waited} with clean_session false, but the broker had no session for {} there (session present: 0): it did not keep or move the session; subscribed again",
                                    candidate.name, s.client_id
                                ),
                            },
                        );
                        node = candidate;
                        conn = Some((client, events));
                        attempts = 0;
                        away_since = None;
                    }
                    Err(e) => {
                        attempts += 1;
                        last_error = e;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_markers_name_their_node_and_are_no_workload_message() {
        let m = end_marker("r2", 3);
        assert_eq!(read_end_marker(&m).as_deref(), Some("r2"));
        assert_eq!(decode_payload(&m), None);
        let payload = crate::payload::encode_payload(1, 7, 64);
        assert_eq!(read_end_marker(&payload), None);
    }

    /// The answers `waiting` has handed over so far, as (token, what it said).
    fn answered(answers: &Answers) -> Vec<(u64, String)> {
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut out = Vec::new();
        answers.take(&mut cx, &mut Vec::new(), &mut |t, c| {
            out.push((
                t,
                match c {
                    Completion::Ok { .. } => "ok".to_string(),
                    Completion::Fail(e) => format!("fail: {e}"),
                    Completion::Info(e) => format!("info: {e}"),
                },
            ))
        });
        out
    }

    #[test]
    fn each_token_is_answered_by_its_packet_id_and_a_broken_connection_ends_the_rest() {
        let answers = Arc::new(Answers::default());
        let mut w = Waiting::new(answers.clone());
        w.queued.extend([10, 11, 12, 13]);
        // Written in request order: 10 as packet 1, 11 as packet 2, 12 as packet 3.
        for pkid in [1, 2, 3] {
            w.on_event(&Ev::Written(pkid), Qos::One);
        }
        // Acknowledged out of order; an unknown packet id is nobody's.
        w.on_event(&Ev::PubAck(2), Qos::One);
        w.on_event(&Ev::PubAck(9), Qos::One);
        w.on_event(&Ev::Refused(3, "quota".into()), Qos::One);
        assert_eq!(
            answered(&answers),
            [
                (11, "ok".into()),
                (12, "fail: refused by the broker: quota".into())
            ]
        );
        w.close("reset");
        let mut rest = answered(&answers);
        rest.sort();
        assert_eq!(
            rest,
            [
                (
                    10,
                    "info: connection lost before the acknowledgement (reset)".into()
                ),
                (
                    13,
                    "fail: not sent: the connection broke before it was written (reset)".into()
                ),
            ]
        );
        assert!(w.closed && w.queued.is_empty() && w.written.is_empty());
    }
}
