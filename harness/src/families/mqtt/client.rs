//! One MQTT client over both protocol versions: rumqttc's 3.1.1 client and its MQTT 5 client
//! (`rumqttc::v5`) have the same shape but separate types. The driver, the probes and the
//! health check speak to [`Client`] and read [`Ev`], so nothing above this file knows which
//! version a connection speaks.
//!
//! What MQTT 5 changes for faultline:
//! - a persistent session is `clean_start = false` with a session expiry interval (without
//!   one the broker ends the session when the connection closes); 3.1.1's `clean_session =
//!   false` keeps it until the broker drops it;
//! - a PUBACK or PUBREC carries a reason code: one of 0x80 and above means the broker refused
//!   the message (not authorised, quota exceeded...), which 3.1.1 cannot say;
//! - the broker's CONNACK may lower the client's in-flight window (receive maximum).

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5::{Packet as Packet5, PubAckReason, PubRecReason};

use super::config::{MqttWorkload, Qos, Version};
use crate::families::NodeEndpoint;

pub const MQTT_PORT: u16 = 1883;

/// How a connection is opened.
#[derive(Clone, Debug)]
pub struct Options {
    pub version: Version,
    pub client_id: String,
    pub node: NodeEndpoint,
    /// `false`: resume (or start) a session the broker keeps while the client is away.
    pub clean: bool,
    pub keep_alive: Duration,
    /// MQTT 5 only: how long the broker keeps a persistent session after a disconnection.
    pub session_expiry: Duration,
    pub credentials: Option<(String, String)>,
    /// Upper bound on unacknowledged publishes on this connection.
    pub inflight: u16,
}

impl Options {
    pub fn new(w: &MqttWorkload, client_id: &str, node: &NodeEndpoint, clean: bool) -> Self {
        Options {
            version: w.version,
            client_id: client_id.to_string(),
            node: node.clone(),
            clean,
            keep_alive: w.keep_alive,
            session_expiry: w.session_expiry,
            credentials: w
                .credentials
                .as_ref()
                .map(|c| (c.user.clone(), c.password.clone())),
            inflight: 100,
        }
    }
}

/// What the event loop reported, in the terms faultline needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    /// A publish was written to the connection with this packet id (QoS 0: id 0).
    Written(u16),
    /// PUBACK: QoS 1 done (a 3.1.1 broker that grants QoS 1 at most also answers a QoS 2
    /// publish with one).
    PubAck(u16),
    /// PUBCOMP: QoS 2 done.
    PubComp(u16),
    /// MQTT 5: the PUBACK or PUBREC of this packet id carries a failure reason code.
    Refused(u16, String),
    /// A message for one of the client's subscriptions.
    Message {
        topic: String,
        payload: Bytes,
    },
    /// SUBACK; `Some(reason)` when the broker refused a filter.
    SubAck(Option<String>),
    Other,
}

pub enum Client {
    V311(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

pub enum Events {
    V311(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

fn qos4(q: Qos) -> rumqttc::QoS {
    match q {
        Qos::Zero => rumqttc::QoS::AtMostOnce,
        Qos::One => rumqttc::QoS::AtLeastOnce,
        Qos::Two => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(q: Qos) -> v5::mqttbytes::QoS {
    match q {
        Qos::Zero => v5::mqttbytes::QoS::AtMostOnce,
        Qos::One => v5::mqttbytes::QoS::AtLeastOnce,
        Qos::Two => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// Opens a connection and waits for its CONNACK, at most `timeout`; returns the client, its
/// event loop and whether the broker resumed a session (CONNACK session present).
pub async fn connect(
    o: &Options,
    capacity: usize,
    timeout: Duration,
) -> Result<(Client, Events, bool), String> {
    let host = o.node.ip.to_string();
    let secs = timeout.as_secs().max(1);
    let (client, mut events) = match o.version {
        Version::V311 => {
            let mut m = rumqttc::MqttOptions::new(&o.client_id, host, MQTT_PORT);
            m.set_keep_alive(o.keep_alive)
                .set_clean_session(o.clean)
                .set_max_packet_size(1 << 20, 1 << 20)
                .set_inflight(o.inflight.max(1));
            if let Some((u, p)) = &o.credentials {
                m.set_credentials(u, p);
            }
            let (c, mut e) = rumqttc::AsyncClient::new(m, capacity);
            e.network_options.set_connection_timeout(secs);
            (Client::V311(c), Events::V311(Box::new(e)))
        }
        Version::V5 => {
            let mut m = v5::MqttOptions::new(&o.client_id, host, MQTT_PORT);
            m.set_keep_alive(o.keep_alive.max(Duration::from_secs(5)))
                .set_clean_start(o.clean)
                .set_max_packet_size(Some(1 << 20))
                .set_outgoing_inflight_upper_limit(o.inflight.max(1))
                .set_connection_timeout(secs);
            if !o.clean {
                let expiry = o.session_expiry.as_secs().min(u32::MAX as u64) as u32;
                m.set_session_expiry_interval(Some(expiry));
            }
            if let Some((u, p)) = &o.credentials {
                m.set_credentials(u, p);
            }
            let (c, e) = v5::AsyncClient::new(m, capacity);
            (Client::V5(c), Events::V5(Box::new(e)))
        }
    };
    let first = tokio::time::timeout(timeout, events.poll_connack()).await;
    match first {
        Ok(r) => r.map(|present| (client, events, present)),
        Err(_) => Err(format!("no CONNACK within {timeout:?}")),
    }
}

impl Client {
    /// Queues a publish without waiting (the request channel full is an error).
    pub fn try_publish(&self, topic: &str, qos: Qos, payload: Bytes) -> Result<(), String> {
        match self {
            Client::V311(c) => c
                .try_publish(topic, qos4(qos), false, payload)
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_publish(topic, qos5(qos), false, payload)
                .map_err(|e| e.to_string()),
        }
    }

    pub async fn publish(&self, topic: &str, qos: Qos, payload: Bytes) -> Result<(), String> {
        match self {
            Client::V311(c) => c
                .publish(topic, qos4(qos), false, payload)
                .await
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .publish(topic, qos5(qos), false, payload)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    pub async fn subscribe(&self, filter: &str, qos: Qos) -> Result<(), String> {
        match self {
            Client::V311(c) => c
                .subscribe(filter, qos4(qos))
                .await
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .subscribe(filter, qos5(qos))
                .await
                .map_err(|e| e.to_string()),
        }
    }

    pub async fn disconnect(&self) {
        let _ = match self {
            Client::V311(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Client::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
    }
}

impl Events {
    async fn poll_connack(&mut self) -> Result<bool, String> {
        match self {
            Events::V311(e) => match e.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                    Ok(ack.session_present)
                }
                Ok(other) => Err(format!("expected CONNACK, got {other:?}")),
                Err(e) => Err(error4(&e)),
            },
            Events::V5(e) => match e.poll().await {
                Ok(v5::Event::Incoming(Packet5::ConnAck(ack))) => Ok(ack.session_present),
                Ok(other) => Err(format!("expected CONNACK, got {other:?}")),
                Err(e) => Err(error5(&e)),
            },
        }
    }

    /// The next event; an error means the connection is gone.
    pub async fn poll(&mut self) -> Result<Ev, String> {
        match self {
            Events::V311(e) => e.poll().await.map(|ev| ev4(&ev)).map_err(|e| error4(&e)),
            Events::V5(e) => e.poll().await.map(|ev| ev5(&ev)).map_err(|e| error5(&e)),
        }
    }

    /// Events the client had queued when its connection broke (publishes serialised just
    /// before the error are reported there: they count as written).
    pub fn leftover(&mut self) -> Vec<Ev> {
        match self {
            Events::V311(e) => e.state.events.drain(..).map(|ev| ev4(&ev)).collect(),
            Events::V5(e) => e.state.events.drain(..).map(|ev| ev5(&ev)).collect(),
        }
    }
}

fn error4(e: &rumqttc::ConnectionError) -> String {
    match e {
        rumqttc::ConnectionError::ConnectionRefused(code) => {
            format!("connection refused by the broker ({code:?})")
        }
        rumqttc::ConnectionError::MqttState(s) => format!("protocol state: {s}"),
        other => other.to_string(),
    }
}

fn error5(e: &v5::ConnectionError) -> String {
    match e {
        v5::ConnectionError::ConnectionRefused(code) => {
            format!("connection refused by the broker ({code:?})")
        }
        v5::ConnectionError::MqttState(s) => format!("protocol state: {s}"),
        other => other.to_string(),
    }
}

fn ev4(ev: &rumqttc::Event) -> Ev {
    use rumqttc::{Event, Outgoing, Packet};
    match ev {
        Event::Outgoing(Outgoing::Publish(pkid)) => Ev::Written(*pkid),
        Event::Incoming(Packet::PubAck(a)) => Ev::PubAck(a.pkid),
        Event::Incoming(Packet::PubComp(c)) => Ev::PubComp(c.pkid),
        Event::Incoming(Packet::Publish(p)) => Ev::Message {
            topic: p.topic.clone(),
            payload: p.payload.clone(),
        },
        Event::Incoming(Packet::SubAck(s)) => Ev::SubAck(
            s.return_codes
                .iter()
                .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                .then(|| "failure (0x80)".to_string()),
        ),
        _ => Ev::Other,
    }
}

fn ev5(ev: &v5::Event) -> Ev {
    use rumqttc::Outgoing;
    use v5::mqttbytes::v5::SubscribeReasonCode;
    match ev {
        v5::Event::Outgoing(Outgoing::Publish(pkid)) => Ev::Written(*pkid),
        v5::Event::Incoming(Packet5::PubAck(a)) => match a.reason {
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ev::PubAck(a.pkid),
            r => Ev::Refused(a.pkid, format!("PUBACK reason {r:?}")),
        },
        v5::Event::Incoming(Packet5::PubRec(r)) => match r.reason {
            PubRecReason::Success | PubRecReason::NoMatchingSubscribers => Ev::Other,
            reason => Ev::Refused(r.pkid, format!("PUBREC reason {reason:?}")),
        },
        v5::Event::Incoming(Packet5::PubComp(c)) => Ev::PubComp(c.pkid),
        v5::Event::Incoming(Packet5::Publish(p)) => Ev::Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload.clone(),
        },
        v5::Event::Incoming(Packet5::SubAck(s)) => {
            let refused: Vec<String> = s
                .return_codes
                .iter()
                .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                .map(|c| format!("{c:?}"))
                .collect();
            Ev::SubAck((!refused.is_empty()).then(|| refused.join(", ")))
        }
        _ => Ev::Other,
    }
}
