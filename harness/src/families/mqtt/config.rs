//! The `workload.mqtt` section of a scenario.

use std::time::Duration;

use schemars::JsonSchema;

use crate::families::Credentials;
use crate::yaml::{self, Diagnostics, Fields, Node, Pos};

/// MQTT quality of service of the producers' publishes and the subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qos {
    /// QoS 0, fire and forget: nothing acknowledges a message, so none can be called lost.
    Zero,
    /// QoS 1: PUBACK.
    One,
    /// QoS 2: PUBREC, PUBREL, PUBCOMP; acknowledged by the PUBCOMP.
    Two,
}

impl Qos {
    pub fn level(self) -> u8 {
        match self {
            Qos::Zero => 0,
            Qos::One => 1,
            Qos::Two => 2,
        }
    }
}

/// The MQTT protocol version every connection of the run speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

impl Version {
    pub fn name(self) -> &'static str {
        match self {
            Version::V311 => "3.1.1",
            Version::V5 => "5",
        }
    }
}

/// The one subscriber whose session the checks are about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscriber {
    /// Fixed, so a reconnect resumes the same session.
    pub client_id: String,
    /// `false`: a persistent session the broker keeps while the subscriber is away.
    pub clean_session: bool,
    /// Topic filter; the producers' topic by default (a `$share/...` filter is passed as is).
    pub filter: String,
    /// The node it connects to first (default: the first node).
    pub node: Option<String>,
    /// Goes offline at this time from the start of the load (its session stays on the
    /// broker), and comes back at `reconnect_at`, to `reconnect_to`.
    pub offline_at: Option<Duration>,
    pub reconnect_at: Option<Duration>,
    pub reconnect_to: Option<String>,
    /// Where each node name was written, for topology checks.
    pub node_positions: Vec<(String, Pos)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttWorkload {
    pub topic: String,
    pub qos: Qos,
    pub version: Version,
    /// MQTT 5: how long the broker keeps the subscriber's persistent session after a
    /// disconnection (its session expiry interval); 3.1.1 has no such setting.
    pub session_expiry: Duration,
    /// Nodes the producers connect to, in turn (producer i starts at the i-th); all by default.
    pub publish_to: Vec<String>,
    /// Bound on one connection attempt (TCP and CONNACK).
    pub connect_timeout: Duration,
    /// Keep-alive: a broker that stops answering is noticed after about 1.5 times this.
    pub keep_alive: Duration,
    pub credentials: Option<Credentials>,
    pub subscriber: Subscriber,
    pub pos: Pos,
}

const KEYS: &[&str] = &[
    "topic",
    "qos",
    "version",
    "session_expiry",
    "publish_to",
    "connect_timeout",
    "keep_alive",
    "credentials",
    "subscriber",
];

const SUBSCRIBER_KEYS: &[&str] = &[
    "client_id",
    "clean_session",
    "filter",
    "node",
    "offline_at",
    "reconnect_at",
    "reconnect_to",
];

const VERSIONS: &[&str] = &["3.1.1", "5"];
const BOOLEANS: &[&str] = &["true", "false"];

// What `MqttWorkload::parse` reads, described for the scenario's JSON Schema.
/// The MQTT settings: the topic, QoS and protocol version of the producers, and the subscriber
/// that reads everything back.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "MqttWorkload")]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct MqttWorkloadKeys {
    /// The topic producers publish to, without wildcards (default faultline/orders).
    #[schemars(regex(pattern = r"^[^+#]+$"))]
    pub topic: Option<String>,
    /// Quality of service of every publish (default 1).
    #[schemars(range(min = 0, max = 2))]
    pub qos: Option<u8>,
    /// Protocol version (default 3.1.1).
    #[serde(default)]
    #[schemars(schema_with = "version_schema")]
    pub version: Option<String>,
    /// MQTT 5 session expiry (default 1h).
    pub session_expiry: Option<crate::schema::DurationText>,
    /// The nodes producers connect to, in turn (default: every broker node).
    pub publish_to: Option<crate::schema::NodeNames>,
    /// Bound on one connection attempt (default 2s).
    pub connect_timeout: Option<crate::schema::DurationText>,
    /// Keep-alive interval (default 5s).
    pub keep_alive: Option<crate::schema::DurationText>,
    /// The user producers and the subscriber log in with.
    pub credentials: Option<crate::families::CredentialsKeys>,
    /// The subscriber that reads everything back.
    pub subscriber: Option<SubscriberKeys>,
}

/// `workload.mqtt.subscriber`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, rename = "MqttSubscriber")]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct SubscriberKeys {
    /// Its client id (default faultline-subscriber).
    pub client_id: Option<String>,
    /// Whether it starts a clean session (default false).
    #[serde(default)]
    #[schemars(schema_with = "boolean_schema")]
    pub clean_session: Option<bool>,
    /// Its topic filter (default: the workload's topic).
    pub filter: Option<String>,
    /// The node it connects to first.
    pub node: Option<String>,
    /// When it disconnects, from the start of the load (with reconnect_at).
    pub offline_at: Option<crate::schema::DurationText>,
    /// When it connects again (after offline_at).
    pub reconnect_at: Option<crate::schema::DurationText>,
    /// The node it connects to again.
    pub reconnect_to: Option<String>,
}

fn version_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::schema::scalar_of(VERSIONS, "Protocol version (default 3.1.1).")
}

fn boolean_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::schema::scalar_of(BOOLEANS, "true or false.")
}

fn topic_ok(t: &str) -> bool {
    !t.is_empty() && !t.contains(['+', '#', '\0'])
}

impl MqttWorkload {
    pub fn parse(node: &Node, d: &mut Diagnostics) -> Option<Self> {
        let f = Fields::new(node, KEYS, "workload.mqtt", d)?;
        let topic = match f.get("topic") {
            Some(n) => yaml::string(n, "workload.mqtt.topic", d).and_then(|t| {
                if topic_ok(t) {
                    Some(t.to_string())
                } else {
                    d.error(
                        n.pos,
                        "workload.mqtt.topic: expected a topic name without wildcards (+, #)",
                    );
                    None
                }
            }),
            None => Some("faultline/orders".to_string()),
        };
        let qos = match f.get("qos") {
            Some(n) => yaml::integer(n, "workload.mqtt.qos", 0, 2, d).map(|q| match q {
                0 => Qos::Zero,
                1 => Qos::One,
                _ => Qos::Two,
            }),
            None => Some(Qos::One),
        };
        let version = match f.get("version") {
            Some(n) => yaml::choice(n, "workload.mqtt.version", VERSIONS, d).map(|v| {
                if v == "5" {
                    Version::V5
                } else {
                    Version::V311
                }
            }),
            None => Some(Version::V311),
        };
        let session_expiry = match f.get("session_expiry") {
            Some(n) => yaml::duration(n, "workload.mqtt.session_expiry", d).and_then(|e| {
                if version == Some(Version::V311) {
                    d.error(
                        n.pos,
                        "workload.mqtt.session_expiry: MQTT 3.1.1 has no session expiry (the broker keeps a persistent session until it drops it); set version: \"5\" or remove it",
                    );
                    return None;
                }
                if e < Duration::from_secs(1) || e.as_secs() > u32::MAX as u64 {
                    d.error(
                        n.pos,
                        "workload.mqtt.session_expiry: expected 1s to 136 years (MQTT 5 counts it in seconds; 0 would end the session at every disconnection)",
                    );
                    return None;
                }
                Some(e)
            }),
            None => Some(Duration::from_secs(3600)),
        };
        let mut node_positions = Vec::new();
        let publish_to = match f.get("publish_to") {
            Some(n) => yaml::list(n, "workload.mqtt.publish_to", d).map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        let name = yaml::string(i, "workload.mqtt.publish_to", d)?;
                        node_positions.push((name.to_string(), i.pos));
                        Some(name.to_string())
                    })
                    .collect::<Vec<_>>()
            }),
            None => Some(Vec::new()),
        };
        let connect_timeout = match f.get("connect_timeout") {
            Some(n) => yaml::duration(n, "workload.mqtt.connect_timeout", d),
            None => Some(Duration::from_secs(2)),
        };
        let keep_alive = match f.get("keep_alive") {
            Some(n) => yaml::duration(n, "workload.mqtt.keep_alive", d).and_then(|k| {
                if k < Duration::from_secs(1) {
                    d.error(
                        n.pos,
                        "workload.mqtt.keep_alive: expected at least 1s (MQTT counts it in seconds)",
                    );
                    return None;
                }
                Some(k)
            }),
            None => Some(Duration::from_secs(5)),
        };
        if let (Some(Version::V5), Some(k), Some(n)) = (version, keep_alive, f.get("keep_alive")) {
            if k < Duration::from_secs(5) {
                d.error(
                    n.pos,
                    "workload.mqtt.keep_alive: expected at least 5s with version \"5\" (rumqttc's MQTT 5 client refuses less)",
                );
            }
        }
        let credentials = match f.get("credentials") {
            None => Some(None),
            Some(n) => {
                Credentials::parse(n, "workload.mqtt.credentials", "to log in as", d).map(Some)
            }
        };
        let subscriber = match f.get("subscriber") {
            Some(n) => Self::parse_subscriber(n, topic.as_deref(), d),
            None => topic.as_ref().map(|t| Subscriber {
                client_id: "faultline-subscriber".into(),
                clean_session: false,
                filter: t.clone(),
                node: None,
                offline_at: None,
                reconnect_at: None,
                reconnect_to: None,
                node_positions: Vec::new(),
            }),
        };
        let mut subscriber = subscriber?;
        subscriber.node_positions.extend(node_positions);
        Some(MqttWorkload {
            topic: topic?,
            qos: qos?,
            version: version?,
            session_expiry: session_expiry?,
            publish_to: publish_to?,
            connect_timeout: connect_timeout?,
            keep_alive: keep_alive?,
            credentials: credentials?,
            subscriber,
            pos: f.pos,
        })
    }

    fn parse_subscriber(
        node: &Node,
        topic: Option<&str>,
        d: &mut Diagnostics,
    ) -> Option<Subscriber> {
        let f = Fields::new(node, SUBSCRIBER_KEYS, "workload.mqtt.subscriber", d)?;
        let client_id = match f.get("client_id") {
            Some(n) => yaml::string(n, &f.path_of("client_id"), d).and_then(|s| {
                let ok = !s.is_empty() && s.len() <= 23 && s.is_ascii();
                if !ok {
                    d.error(
                        n.pos,
                        format!("{}: expected 1 to 23 ASCII characters (what MQTT 3.1.1 brokers must accept)", f.path_of("client_id")),
                    );
                }
                ok.then(|| s.to_string())
            }),
            None => Some("faultline-subscriber".into()),
        };
        let clean_session = match f.get("clean_session") {
            Some(n) => {
                yaml::choice(n, &f.path_of("clean_session"), BOOLEANS, d).map(|v| v == "true")
            }
            None => Some(false),
        };
        let filter = match f.get("filter") {
            Some(n) => yaml::string(n, &f.path_of("filter"), d).map(String::from),
            None => topic.map(String::from),
        };
        let mut positions = Vec::new();
        let mut node_at = |key: &str, d: &mut Diagnostics| -> Option<Option<String>> {
            match f.get(key) {
                None => Some(None),
                Some(n) => {
                    let name = yaml::string(n, &f.path_of(key), d)?;
                    positions.push((name.to_string(), n.pos));
                    Some(Some(name.to_string()))
                }
            }
        };
        let first = node_at("node", d);
        let reconnect_to = node_at("reconnect_to", d);
        let offline_at = match f.get("offline_at") {
            Some(n) => yaml::duration(n, &f.path_of("offline_at"), d).map(Some),
            None => Some(None),
        };
        let reconnect_at = match f.get("reconnect_at") {
            Some(n) => yaml::duration(n, &f.path_of("reconnect_at"), d).map(Some),
            None => Some(None),
        };
        if let (Some(off), Some(back)) = (offline_at, reconnect_at) {
            match (off, back) {
                (Some(off), Some(back)) if back <= off => d.error(
                    f.pos,
                    format!("{}: reconnect_at ({back:?}) must come after offline_at ({off:?})", "workload.mqtt.subscriber"),
                ),
                (Some(_), None) | (None, Some(_)) => d.error(
                    f.pos,
                    "workload.mqtt.subscriber: offline_at and reconnect_at go together (when the subscriber leaves, and when it comes back)",
                ),
                _ => {}
            }
        }
        if clean_session == Some(true) && offline_at.flatten().is_some() {
            d.error(
                f.pos,
                "workload.mqtt.subscriber: a subscriber with clean_session true that goes offline has nothing to come back to; set clean_session false",
            );
        }
        Some(Subscriber {
            client_id: client_id?,
            clean_session: clean_session?,
            filter: filter?,
            node: first?,
            offline_at: offline_at?,
            reconnect_at: reconnect_at?,
            reconnect_to: reconnect_to?,
            node_positions: positions,
        })
    }

    /// Node names this section refers to, with where they were written.
    pub fn named_nodes(&self) -> &[(String, Pos)] {
        &self.subscriber.node_positions
    }

    /// The subscriber's schedule must fit in the load.
    pub fn check_duration(&self, load: Duration, d: &mut Diagnostics) {
        if let Some(back) = self.subscriber.reconnect_at {
            if back >= load {
                d.error(
                    self.pos,
                    format!("workload.mqtt.subscriber.reconnect_at ({back:?}) must come before the load ends ({load:?}), so what it reads after coming back is measured"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{property_names, schema_of, sorted};

    #[test]
    fn the_schema_has_the_keys_the_reader_takes() {
        assert_eq!(
            property_names(&schema_of::<MqttWorkloadKeys>()),
            sorted(KEYS)
        );
        assert_eq!(
            property_names(&schema_of::<SubscriberKeys>()),
            sorted(SUBSCRIBER_KEYS)
        );
    }
    use std::path::Path;

    fn parse(text: &str) -> Result<MqttWorkload, Vec<String>> {
        let node = yaml::parse(text).unwrap().unwrap();
        let mut d = Diagnostics::new(Path::new("s.yaml"));
        let w = MqttWorkload::parse(&node, &mut d);
        if d.is_empty() {
            Ok(w.unwrap())
        } else {
            Err(d.into_vec().iter().map(|x| x.to_string()).collect())
        }
    }

    #[test]
    fn defaults_are_a_persistent_qos1_subscriber_on_the_topic() {
        let w = parse("topic: a/b\n").unwrap();
        assert_eq!(w.qos, Qos::One);
        assert_eq!(w.subscriber.filter, "a/b");
        assert!(!w.subscriber.clean_session);
        assert_eq!(w.subscriber.offline_at, None);
    }

    #[test]
    fn mqtt_5_sessions_expire_after_an_hour_unless_told() {
        let w = parse("topic: t\nversion: \"5\"\n").unwrap();
        assert_eq!(w.version, Version::V5);
        assert_eq!(w.session_expiry, Duration::from_secs(3600));
        let w = parse("topic: t\nversion: \"5\"\nsession_expiry: 10m\n").unwrap();
        assert_eq!(w.session_expiry, Duration::from_secs(600));
        assert_eq!(parse("topic: t\n").unwrap().version, Version::V311);
        let e = parse("topic: t\nversion: \"5\"\nsession_expiry: 0s\n").unwrap_err();
        assert!(e[0].contains("0 would end the session"), "{e:?}");
        let e = parse("topic: t\nsession_expiry: 1h\n").unwrap_err();
        assert!(
            e[0].contains(
                "s.yaml:2:17: workload.mqtt.session_expiry: MQTT 3.1.1 has no session expiry"
            ),
            "{e:?}"
        );
        let e = parse("topic: t\nversion: \"5\"\nkeep_alive: 2s\n").unwrap_err();
        assert!(e[0].contains("expected at least 5s with version"), "{e:?}");
    }

    #[test]
    fn a_session_that_moves_between_nodes() {
        let w = parse(
            "topic: t\nqos: 2\npublish_to: [r2, r3]\nsubscriber:\n  client_id: s1\n  node: r1\n  offline_at: 2s\n  reconnect_at: 20s\n  reconnect_to: r2\n",
        )
        .unwrap();
        assert_eq!(w.qos, Qos::Two);
        assert_eq!(w.publish_to, vec!["r2", "r3"]);
        assert_eq!(w.subscriber.reconnect_at, Some(Duration::from_secs(20)));
        let named: Vec<&str> = w.named_nodes().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(named, vec!["r1", "r2", "r2", "r3"]);
    }

    #[test]
    fn problems_are_named_with_their_position() {
        let errors = parse(
            "topic: a/#\nqos: 3\nversion: \"4\"\nsubscriber:\n  client_id: this-client-id-is-far-too-long\n  offline_at: 5s\n  colour: red\n",
        )
        .unwrap_err();
        let all = errors.join("\n");
        assert!(
            all.contains(
                "s.yaml:1:8: workload.mqtt.topic: expected a topic name without wildcards"
            ),
            "{all}"
        );
        assert!(all.contains("s.yaml:2:6: workload.mqtt.qos"), "{all}");
        assert!(
            all.contains("s.yaml:3:10: workload.mqtt.version: expected one of"),
            "{all}"
        );
        assert!(all.contains("unknown key `colour`"), "{all}");
        assert!(all.contains("1 to 23 ASCII characters"), "{all}");
        assert!(
            all.contains("offline_at and reconnect_at go together"),
            "{all}"
        );
    }
}
