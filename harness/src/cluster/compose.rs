//! Reads the subset of the Docker Compose format that topologies use.
//!
//! A topology file stays a file a person can `docker compose up` by hand. faultline reads the
//! parts that describe nodes (image, hostname, command, environment) and creates the network and
//! addresses itself; any other service key is rejected rather than silently ignored, because a
//! setting faultline does not apply would make the run differ from what the file says.
//!
//! faultline's own settings live in the `x-faultline` extension block, which Compose ignores:
//! the broker family and, per official image, the local recipe that builds an equivalent image
//! when the official one cannot be pulled.
//!
//! Besides the node keys, a service may have `profiles` (a service with a profile is a spare:
//! created with its address but not started, for `scale-out`, as `docker compose up` leaves it
//! out unless asked), `tmpfs` (a size-limited data directory, which `disk-full` fills) and
//! `configs` (files written into the container before it starts, from the top-level `configs`
//! block's `content` or `file`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::yaml::{self, Diagnostics, Fields, Node, Value};

/// A cluster topology read from a compose file.
#[derive(Clone, Debug)]
pub struct Topology {
    pub file: PathBuf,
    /// The broker family: decides the driver and probes ("nats").
    pub family: String,
    /// Which broker of the family runs, where the family tells them apart ("rabbitmq").
    pub broker: Option<String>,
    pub services: Vec<Service>,
    /// Official image reference -> the local equivalent and its recipe.
    pub local_images: BTreeMap<String, LocalImage>,
    /// The addresses clients reach the brokers through (`x-faultline.gateways`), if any.
    pub gateways: Vec<Gateway>,
    /// What each node is (`x-faultline.roles`: broker, bookie, metadata), where the family has
    /// several kinds of node; empty means every node is a broker.
    pub roles: BTreeMap<String, Vec<String>>,
}

/// A TCP forwarder faultline runs on the host's loopback, so a client outside Docker can reach
/// brokers by the address they advertise: each new client connection goes to one of
/// `services` on `port`, in turn. With several services it stands in for the load balancer or
/// shared DNS name stateless brokers sit behind; with one, it is that broker's own address.
#[derive(Clone, Debug, PartialEq)]
pub struct Gateway {
    pub listen: std::net::SocketAddr,
    pub port: u16,
    pub services: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Service {
    /// The service name, which is also the node name used in scenarios.
    pub name: String,
    pub image: String,
    pub hostname: String,
    pub command: Vec<String>,
    pub environment: Vec<String>,
    /// Compose profiles; a service with any is a spare, started only by `scale-out`.
    pub profiles: Vec<String>,
    pub tmpfs: Vec<Tmpfs>,
    pub files: Vec<ConfigFile>,
    /// Services to start before this one; with `healthy`, this one starts only once Docker
    /// reports that one healthy (its `healthcheck` passing).
    pub depends_on: Vec<Dependency>,
    pub healthcheck: Option<Healthcheck>,
    /// Extra names the node answers to on the run's network (`networks.default.aliases`),
    /// besides its service name and hostname; several nodes may share one.
    pub aliases: Vec<String>,
    /// The data directory the node keeps on faultline's durability layer
    /// (`x-faultline.durability`), which `power-loss` needs.
    pub durable: Option<Durability>,
}

/// A node's data directory on faultline's durability layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Durability {
    pub path: String,
    /// Un-synced writes older than this count as written back (a kernel's writeback, such as
    /// Linux's 30 s `dirty_expire`); `None`: only an fsync saves a write (POSIX's least).
    pub writeback: Option<std::time::Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dependency {
    pub service: String,
    pub healthy: bool,
}

/// A container health check, run by Docker inside the container.
#[derive(Clone, Debug, PartialEq)]
pub struct Healthcheck {
    /// As Docker takes it: `["CMD", prog, args...]` or `["CMD-SHELL", "command line"]`.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

impl Service {
    pub fn is_spare(&self) -> bool {
        !self.profiles.is_empty()
    }

    /// The size-limited tmpfs holding `path`, if any.
    pub fn tmpfs_holding(&self, path: &str) -> Option<&Tmpfs> {
        self.tmpfs
            .iter()
            .filter(|t| path == t.path || path.starts_with(&format!("{}/", t.path)))
            .max_by_key(|t| t.path.len())
    }
}

/// A tmpfs mount: `path[:options]`, options as `docker run --tmpfs` takes them.
#[derive(Clone, Debug, PartialEq)]
pub struct Tmpfs {
    pub path: String,
    pub options: String,
    /// The `size=` option in bytes, when given.
    pub size_bytes: Option<u64>,
}

/// A file written into a node's container before it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigFile {
    pub target: String,
    pub content: String,
}

#[derive(Clone, Debug)]
pub struct LocalImage {
    pub tag: String,
    /// Where the local image has libfaketime's multi-threaded library, if it has it: what
    /// clock-skew faults preload.
    pub faketime: Option<String>,
    /// Directory holding `build.sh`, resolved against the compose file's directory.
    pub recipe: PathBuf,
}

impl Topology {
    pub fn node_names(&self) -> Vec<String> {
        self.services.iter().map(|s| s.name.clone()).collect()
    }
}

const SERVICE_KEYS: &[&str] = &[
    "image",
    "hostname",
    "command",
    "environment",
    "profiles",
    "tmpfs",
    "configs",
    "depends_on",
    "healthcheck",
    "networks",
];

/// What the topology reader must know of a broker family; the family registry provides it
/// (the cluster layer sits below the families and names none of them).
#[derive(Clone, Debug)]
pub struct KnownFamily {
    /// As written in `x-faultline.family`.
    pub name: &'static str,
    /// The values `x-faultline.broker` takes (empty: the family has one broker).
    pub brokers: &'static [&'static str],
    /// The kinds of node `x-faultline.roles` names (empty: every node is a broker).
    pub node_roles: &'static [&'static str],
}

/// Reads a compose file; problems go to `d` under the compose file's name.
pub fn load(path: &Path, families: &[KnownFamily], d: &mut Diagnostics) -> Option<Topology> {
    let previous = d.switch_file(path);
    let topology = read(path, families, d);
    d.switch_file(&previous);
    topology
}

fn read(path: &Path, families: &[KnownFamily], d: &mut Diagnostics) -> Option<Topology> {
    let root = yaml::load_file(path, "compose file", d)?;
    let top = Fields::new(
        &root,
        &["version", "name", "services", "configs", "x-faultline"],
        "",
        d,
    )?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let configs = match top.get("configs") {
        Some(node) => read_configs(node, dir, d),
        None => BTreeMap::new(),
    };

    let mut services = Vec::new();
    if let Some(node) = top.require("services", "a mapping of node names to services", d) {
        if let Value::Map(entries) = &node.value {
            for (key, value) in entries {
                if let Some(name) = yaml::string(key, "services", d) {
                    if let Some(service) = read_service(name, value, &configs, d) {
                        services.push(service);
                    }
                }
            }
        } else {
            d.error(
                node.pos,
                "services: expected a mapping of node names to services",
            );
        }
        if services.is_empty() && d.is_empty() {
            d.error(node.pos, "services: expected at least one service");
        }
        // A service that could not be read would show up as a missing dependency.
        if matches!(&node.value, Value::Map(entries) if entries.len() == services.len()) {
            check_dependencies(&services, node, d);
        }
    }

    let mut family = None;
    let mut broker = None;
    let mut local_images = BTreeMap::new();
    let mut gateways = Vec::new();
    let mut roles = BTreeMap::new();
    if let Some(ext) = top.require(
        "x-faultline",
        "faultline's settings (family, local-image)",
        d,
    ) {
        if let Some(f) = Fields::new(
            ext,
            &[
                "family",
                "broker",
                "local-image",
                "gateways",
                "roles",
                "durability",
            ],
            "x-faultline",
            d,
        ) {
            if let Some(node) = f.require("family", "the broker family", d) {
                let names: Vec<&str> = families.iter().map(|f| f.name).collect();
                family = yaml::choice(node, "x-faultline.family", &names, d).map(String::from);
            }
            let this = family
                .as_deref()
                .and_then(|name| families.iter().find(|f| f.name == name));
            let known = this.map_or(&[][..], |f| f.brokers);
            match (f.get("broker"), family.as_deref()) {
                (Some(node), Some(fam)) if known.is_empty() => d.error(
                    node.pos,
                    format!("x-faultline.broker: the {fam} family has one broker; remove this key"),
                ),
                (Some(node), Some(_)) => {
                    broker = yaml::choice(node, "x-faultline.broker", known, d).map(String::from)
                }
                (None, Some(fam)) if !known.is_empty() => d.error(
                    f.pos,
                    format!(
                        "x-faultline: missing key `broker`: expected which {fam} broker runs, one of {}",
                        known.join(", ")
                    ),
                ),
                _ => {}
            }
            if let Some(node) = f.get("local-image") {
                read_local_images(node, dir, &mut local_images, d);
            }
            if let Some(node) = f.get("gateways") {
                gateways = read_gateways(node, &services, d);
            }
            if let Some(node) = f.get("roles") {
                let kinds = this.map_or(&[][..], |f| f.node_roles);
                roles = read_roles(node, kinds, &services, d);
            }
            if let Some(node) = f.get("durability") {
                read_durability(node, &mut services, d);
            }
        }
    }

    Some(Topology {
        file: path.to_path_buf(),
        family: family?,
        broker,
        services,
        local_images,
        gateways,
        roles,
    })
}

/// `durability: {path: /data, services: [n1, n2], writeback: 30s}`: the nodes (all when
/// `services` is absent) whose `path` sits on faultline's durability layer (the power-loss
/// fault's), and how old an un-synced write must be to count as written back (never when
/// `writeback` is absent).
fn read_durability(node: &Node, services: &mut [Service], d: &mut Diagnostics) {
    let Some(f) = Fields::new(
        node,
        &["path", "services", "writeback"],
        "x-faultline.durability",
        d,
    ) else {
        return;
    };
    let writeback = match f.get("writeback") {
        None => Some(None),
        Some(n) => yaml::duration(n, &f.path_of("writeback"), d).and_then(|w| {
            if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(3600))
                .contains(&w)
            {
                d.error(
                    n.pos,
                    format!(
                        "{}: expected how old an un-synced write must be to count as written back, from 1s to 1h (Linux: 30s), found {w:?}",
                        f.path_of("writeback")
                    ),
                );
                return None;
            }
            Some(Some(w))
        }),
    };
    let path = f
        .require("path", "the data directory on the layer, such as /data", d)
        .and_then(|n| {
            let text = yaml::string(n, &f.path_of("path"), d)?;
            let plain = text.starts_with('/')
                && text.len() > 1
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
                && !text.split('/').any(|part| part == "..");
            if !plain {
                d.error(
                    n.pos,
                    format!("{}: expected an absolute directory of letters, digits and /._- (not / itself), found {text:?}", f.path_of("path")),
                );
                return None;
            }
            Some(text.trim_end_matches('/').to_string())
        });
    let names = match f.get("services") {
        Some(n) => service_names(n, &f.path_of("services"), services, d),
        None => Some(services.iter().map(|s| s.name.clone()).collect()),
    };
    if let (Some(path), Some(names), Some(writeback)) = (path, names, writeback) {
        for s in services.iter_mut().filter(|s| names.contains(&s.name)) {
            s.durable = Some(Durability {
                path: path.clone(),
                writeback,
            });
        }
    }
}

/// `gateways: [{listen: "127.0.0.1:19092", port: 9092, services: [t1, t2, t3]}, ...]`.
fn read_gateways(node: &Node, services: &[Service], d: &mut Diagnostics) -> Vec<Gateway> {
    let Some(items) = yaml::list(node, "x-faultline.gateways", d) else {
        return Vec::new();
    };
    let gateways: Vec<Gateway> = items
        .iter()
        .filter_map(|i| read_gateway(i, services, d))
        .collect();
    for (i, g) in gateways.iter().enumerate() {
        if gateways[..i].iter().any(|o| o.listen == g.listen) {
            d.error(
                node.pos,
                format!("x-faultline.gateways: {} is listed twice", g.listen),
            );
        }
    }
    gateways
}

fn read_gateway(node: &Node, services: &[Service], d: &mut Diagnostics) -> Option<Gateway> {
    let f = Fields::new(
        node,
        &["listen", "port", "services"],
        "x-faultline.gateways[]",
        d,
    )?;
    let listen = f
        .require("listen", "the host address clients connect to, such as 127.0.0.1:19092", d)
        .and_then(|n| {
            let text = yaml::string(n, "x-faultline.gateways[].listen", d)?;
            match text.parse::<std::net::SocketAddr>() {
                Ok(a) if a.ip().is_loopback() => Some(a),
                _ => {
                    d.error(
                        n.pos,
                        format!("x-faultline.gateways[].listen: expected a loopback address and port such as 127.0.0.1:19092, found {text:?}"),
                    );
                    None
                }
            }
        });
    let port = f
        .require("port", "the brokers' client port", d)
        .and_then(|n| yaml::integer(n, "x-faultline.gateways[].port", 1, 65535, d))
        .map(|p| p as u16);
    let names = f
        .require("services", "the services it forwards to", d)
        .and_then(|n| service_names(n, "x-faultline.gateways[].services", services, d));
    Some(Gateway {
        listen: listen?,
        port: port?,
        services: names?,
    })
}

/// `$$` is how a compose file writes a literal `$` (compose interpolates `$NAME`; faultline
/// interpolates nothing, but reads the escape the same way, so a file means the same to both).
fn unescape(text: &str) -> String {
    text.replace("$$", "$")
}

/// A list of service names, each one a service of the file.
fn service_names(
    node: &Node,
    path: &str,
    services: &[Service],
    d: &mut Diagnostics,
) -> Option<Vec<String>> {
    let items = yaml::list(node, path, d)?;
    let mut names = Vec::new();
    for i in items {
        let name = yaml::string(i, path, d)?;
        if !services.iter().any(|s| s.name == name) {
            d.error(i.pos, format!("{path}: no service named {name:?}"));
            return None;
        }
        names.push(name.to_string());
    }
    Some(names)
}

/// `roles: {broker: [pb1, pb2], bookie: [bk1, bk2, bk3], metadata: [zk]}`: what each node is,
/// for families with more than one kind of node.
fn read_roles(
    node: &Node,
    kinds: &[&str],
    services: &[Service],
    d: &mut Diagnostics,
) -> BTreeMap<String, Vec<String>> {
    let mut roles = BTreeMap::new();
    let Some(f) = Fields::new(node, kinds, "x-faultline.roles", d) else {
        return roles;
    };
    for role in kinds {
        if let Some(n) = f.get(role) {
            if let Some(names) = service_names(n, &f.path_of(role), services, d) {
                roles.insert(role.to_string(), names);
            }
        }
    }
    roles
}

/// `networks: {default: {aliases: [name, ...]}}`: the only network is the run's own.
fn read_aliases(node: &Node, path: &str, d: &mut Diagnostics) -> Option<Vec<String>> {
    let f = Fields::new(node, &["default"], path, d)?;
    let Some(default) = f.get("default") else {
        return Some(Vec::new());
    };
    let g = Fields::new(default, &["aliases"], &format!("{path}.default"), d)?;
    let Some(list) = g.get("aliases") else {
        return Some(Vec::new());
    };
    let items = yaml::list(list, &g.path_of("aliases"), d)?;
    items
        .iter()
        .map(|i| yaml::string(i, &g.path_of("aliases"), d).map(String::from))
        .collect()
}

/// faultline starts services in the order they are written, so a service may depend only on
/// one written before it, and waiting for health needs a health check to wait for.
fn check_dependencies(services: &[Service], node: &Node, d: &mut Diagnostics) {
    for (i, s) in services.iter().enumerate() {
        for dep in &s.depends_on {
            let pos = match &node.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(
                        |(k, _)| matches!(&k.value, Value::Scalar { text, .. } if *text == s.name),
                    )
                    .map(|(k, _)| k.pos)
                    .unwrap_or(node.pos),
                _ => node.pos,
            };
            match services.iter().position(|o| o.name == dep.service) {
                None => d.error(
                    pos,
                    format!("services.{}.depends_on: no service named {:?}", s.name, dep.service),
                ),
                Some(j) if j >= i => d.error(
                    pos,
                    format!(
                        "services.{}.depends_on: {} is written after {}; faultline starts services in the order they are written, so move it before",
                        s.name, dep.service, s.name
                    ),
                ),
                Some(j) if dep.healthy && services[j].healthcheck.is_none() => d.error(
                    pos,
                    format!(
                        "services.{}.depends_on: {} has no healthcheck, so condition service_healthy could never hold",
                        s.name, dep.service
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}

fn read_service(
    name: &str,
    node: &Node,
    configs: &BTreeMap<String, String>,
    d: &mut Diagnostics,
) -> Option<Service> {
    let path = format!("services.{name}");
    let f = Fields::new(node, SERVICE_KEYS, &path, d)?;
    let image = f
        .require("image", "an image reference such as name:tag", d)
        .and_then(|n| yaml::string(n, &f.path_of("image"), d));
    let hostname = match f.get("hostname") {
        Some(n) => yaml::string(n, &f.path_of("hostname"), d).map(String::from),
        None => Some(name.to_string()),
    };
    let command = match f.get("command") {
        None => Some(Vec::new()),
        Some(n) => match &n.value {
            Value::Scalar { text, .. } => Some(text.split_whitespace().map(unescape).collect()),
            Value::Seq(items) => items
                .iter()
                .map(|i| yaml::string(i, &f.path_of("command"), d).map(unescape))
                .collect(),
            Value::Map(_) => {
                d.error(
                    n.pos,
                    format!("{path}.command: expected a list of arguments"),
                );
                None
            }
        },
    };
    let environment = match f.get("environment") {
        None => Some(Vec::new()),
        Some(n) => match &n.value {
            Value::Seq(items) => items
                .iter()
                .map(|i| yaml::string(i, &f.path_of("environment"), d).map(unescape))
                .collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| {
                    let key = yaml::string(k, &f.path_of("environment"), d)?;
                    let value = match &v.value {
                        Value::Scalar { text, .. } => text.clone(),
                        _ => {
                            d.error(v.pos, format!("{path}.environment.{key}: expected a value"));
                            return None;
                        }
                    };
                    Some(format!("{key}={}", unescape(&value)))
                })
                .collect(),
            Value::Scalar { .. } => {
                d.error(
                    n.pos,
                    format!("{path}.environment: expected a list of NAME=value or a mapping"),
                );
                None
            }
        },
    };
    let profiles = match f.get("profiles") {
        None => Some(Vec::new()),
        Some(n) => yaml::list(n, &f.path_of("profiles"), d).and_then(|items| {
            items
                .iter()
                .map(|i| yaml::string(i, &f.path_of("profiles"), d).map(String::from))
                .collect()
        }),
    };
    let tmpfs = match f.get("tmpfs") {
        None => Some(Vec::new()),
        Some(n) => {
            let items = match &n.value {
                Value::Seq(items) => items.iter().collect(),
                _ => vec![n],
            };
            // Every entry is checked, so every bad one is reported.
            let parsed: Vec<Option<Tmpfs>> = items
                .into_iter()
                .map(|i| parse_tmpfs(i, &f.path_of("tmpfs"), d))
                .collect();
            parsed.into_iter().collect()
        }
    };
    let files = match f.get("configs") {
        None => Some(Vec::new()),
        Some(n) => yaml::list(n, &f.path_of("configs"), d).and_then(|items| {
            items
                .iter()
                .map(|i| config_ref(i, &f.path_of("configs"), configs, d))
                .collect()
        }),
    };
    let depends_on = match f.get("depends_on") {
        None => Some(Vec::new()),
        Some(n) => read_depends_on(n, &f.path_of("depends_on"), d),
    };
    let healthcheck = match f.get("healthcheck") {
        None => Some(None),
        Some(n) => read_healthcheck(n, &f.path_of("healthcheck"), d).map(Some),
    };
    let aliases = match f.get("networks") {
        None => Some(Vec::new()),
        Some(n) => read_aliases(n, &f.path_of("networks"), d),
    };
    Some(Service {
        name: name.to_string(),
        image: image?.to_string(),
        hostname: hostname?,
        command: command?,
        environment: environment?,
        profiles: profiles?,
        tmpfs: tmpfs?,
        files: files?,
        depends_on: depends_on?,
        healthcheck: healthcheck?,
        aliases: aliases?,
        durable: None,
    })
}

/// `[a, b]` (started first) or `{a: {condition: service_healthy}}`.
fn read_depends_on(node: &Node, path: &str, d: &mut Diagnostics) -> Option<Vec<Dependency>> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .map(|i| {
                yaml::string(i, path, d).map(|s| Dependency {
                    service: s.to_string(),
                    healthy: false,
                })
            })
            .collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| {
                let service = yaml::string(k, path, d)?;
                let f = Fields::new(v, &["condition"], &format!("{path}.{service}"), d)?;
                let condition = match f.get("condition") {
                    Some(c) => yaml::choice(
                        c,
                        &f.path_of("condition"),
                        &["service_started", "service_healthy"],
                        d,
                    )?,
                    None => "service_started",
                };
                Some(Dependency {
                    service: service.to_string(),
                    healthy: condition == "service_healthy",
                })
            })
            .collect(),
        _ => {
            d.error(
                node.pos,
                format!(
                    "{path}: expected a list of services or a mapping of service to {{condition}}"
                ),
            );
            None
        }
    }
}

/// `test` (list, or a string run by the shell), `interval`, `timeout`, `retries`,
/// `start_period`, with Compose's defaults.
fn read_healthcheck(node: &Node, path: &str, d: &mut Diagnostics) -> Option<Healthcheck> {
    let f = Fields::new(
        node,
        &["test", "interval", "timeout", "retries", "start_period"],
        path,
        d,
    )?;
    let test = f
        .require("test", "the check, such as [\"CMD\", \"prog\", \"arg\"]", d)
        .and_then(|n| match &n.value {
            Value::Scalar { text, .. } => Some(vec!["CMD-SHELL".to_string(), text.clone()]),
            Value::Seq(items) => {
                let test: Option<Vec<String>> = items
                    .iter()
                    .map(|i| yaml::string(i, &f.path_of("test"), d).map(String::from))
                    .collect();
                let test = test?;
                if !matches!(test.first().map(String::as_str), Some("CMD" | "CMD-SHELL"))
                    || test.len() < 2
                {
                    d.error(
                        n.pos,
                        format!(
                            "{}: expected [\"CMD\", prog, args...] or [\"CMD-SHELL\", \"command\"]",
                            f.path_of("test")
                        ),
                    );
                    return None;
                }
                Some(test)
            }
            Value::Map(_) => {
                d.error(
                    n.pos,
                    format!("{}: expected a list or a command line", f.path_of("test")),
                );
                None
            }
        });
    let duration = |key: &str, default: u64, d: &mut Diagnostics| match f.get(key) {
        Some(n) => yaml::duration(n, &f.path_of(key), d),
        None => Some(Duration::from_secs(default)),
    };
    let interval = duration("interval", 30, d);
    let timeout = duration("timeout", 30, d);
    let start_period = duration("start_period", 0, d);
    let retries = match f.get("retries") {
        Some(n) => yaml::integer(n, &f.path_of("retries"), 1, 1000, d).map(|r| r as u32),
        None => Some(3),
    };
    Some(Healthcheck {
        test: test?,
        interval: interval?,
        timeout: timeout?,
        retries: retries?,
        start_period: start_period?,
    })
}

/// `/data` or `/data:size=64m,mode=755`.
fn parse_tmpfs(node: &Node, path: &str, d: &mut Diagnostics) -> Option<Tmpfs> {
    let text = yaml::string(node, path, d)?;
    let (mount, options) = text.split_once(':').unwrap_or((text, ""));
    if !mount.starts_with('/') {
        d.error(
            node.pos,
            format!("{path}: expected an absolute path such as /data:size=64m, found {text:?}"),
        );
        return None;
    }
    let mut size_bytes = None;
    for option in options.split(',').filter(|o| !o.is_empty()) {
        if let Some(size) = option.strip_prefix("size=") {
            match parse_size(size) {
                Some(b) => size_bytes = Some(b),
                None => {
                    d.error(
                        node.pos,
                        format!("{path}: size {size:?}: expected bytes with an optional k, m or g suffix, such as 64m"),
                    );
                    return None;
                }
            }
        }
    }
    Some(Tmpfs {
        path: mount.trim_end_matches('/').to_string(),
        options: options.to_string(),
        size_bytes,
    })
}

/// `64m` -> 67108864 (k, m, g are powers of 1024, as tmpfs reads them).
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = match lower.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let n: u64 = digits.parse().ok().filter(|n| *n > 0)?;
    let factor = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// A service's `configs` entry: `name` (mounted at `/name`) or `{source, target}`.
fn config_ref(
    node: &Node,
    path: &str,
    configs: &BTreeMap<String, String>,
    d: &mut Diagnostics,
) -> Option<ConfigFile> {
    let (source, target) = match &node.value {
        Value::Map(_) => {
            let f = Fields::new(node, &["source", "target"], path, d)?;
            let source = f
                .require("source", "the name of a top-level config", d)
                .and_then(|n| yaml::string(n, &f.path_of("source"), d))?;
            let target = match f.get("target") {
                Some(n) => yaml::string(n, &f.path_of("target"), d)?.to_string(),
                None => format!("/{source}"),
            };
            (source, target)
        }
        _ => {
            let source = yaml::string(node, path, d)?;
            (source, format!("/{source}"))
        }
    };
    if !target.starts_with('/') {
        d.error(
            node.pos,
            format!("{path}: target {target:?}: expected an absolute path"),
        );
        return None;
    }
    match configs.get(source) {
        Some(content) => Some(ConfigFile {
            target,
            content: content.clone(),
        }),
        None => {
            let known: Vec<&str> = configs.keys().map(String::as_str).collect();
            d.error(
                node.pos,
                format!(
                    "{path}: no top-level config named {source:?} (defined: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            None
        }
    }
}

/// The top-level `configs` block: name -> `{content}` or `{file}` (relative to the compose file).
fn read_configs(node: &Node, dir: &Path, d: &mut Diagnostics) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Value::Map(entries) = &node.value else {
        d.error(
            node.pos,
            "configs: expected a mapping of config names to {content} or {file}",
        );
        return out;
    };
    for (key, value) in entries {
        let Some(name) = yaml::string(key, "configs", d) else {
            continue;
        };
        let path = format!("configs.{name}");
        let Some(f) = Fields::new(value, &["content", "file"], &path, d) else {
            continue;
        };
        let content = match (f.get("content"), f.get("file")) {
            (Some(n), None) => yaml::string(n, &f.path_of("content"), d).map(String::from),
            (None, Some(n)) => yaml::string(n, &f.path_of("file"), d).and_then(|rel| {
                let file = dir.join(rel);
                yaml::read_bounded(&file)
                    .map_err(|e| {
                        d.error(
                            n.pos,
                            format!("{}: cannot read {}: {e}", f.path_of("file"), file.display()),
                        )
                    })
                    .ok()
            }),
            _ => {
                d.error(
                    value.pos,
                    format!("{path}: expected exactly one of content, file"),
                );
                None
            }
        };
        if let Some(content) = content {
            out.insert(name.to_string(), content);
        }
    }
    out
}

fn read_local_images(
    node: &Node,
    dir: &Path,
    out: &mut BTreeMap<String, LocalImage>,
    d: &mut Diagnostics,
) {
    let Value::Map(entries) = &node.value else {
        d.error(
            node.pos,
            "x-faultline.local-image: expected a mapping of official image to {tag, recipe}",
        );
        return;
    };
    for (key, value) in entries {
        let Some(official) = yaml::string(key, "x-faultline.local-image", d) else {
            continue;
        };
        let path = format!("x-faultline.local-image.{official}");
        let Some(f) = Fields::new(value, &["tag", "recipe", "faketime"], &path, d) else {
            continue;
        };
        let tag = f
            .require("tag", "the local image tag", d)
            .and_then(|n| yaml::string(n, &f.path_of("tag"), d));
        let recipe = f
            .require("recipe", "a recipe directory holding build.sh", d)
            .and_then(|n| {
                let rel = yaml::string(n, &f.path_of("recipe"), d)?;
                let dir = dir.join(rel);
                if !dir.join("build.sh").is_file() {
                    d.error(
                        n.pos,
                        format!("{}: no build.sh in {}", f.path_of("recipe"), dir.display()),
                    );
                    return None;
                }
                Some(dir)
            });
        let faketime = match f.get("faketime") {
            None => Some(None),
            Some(n) => yaml::string(n, &f.path_of("faketime"), d).and_then(|p| {
                if p.starts_with('/') {
                    Some(Some(p.to_string()))
                } else {
                    d.error(
                        n.pos,
                        format!(
                            "{}: expected the library's absolute path in the image",
                            f.path_of("faketime")
                        ),
                    );
                    None
                }
            }),
        };
        if let (Some(tag), Some(recipe), Some(faketime)) = (tag, recipe, faketime) {
            out.insert(
                official.to_string(),
                LocalImage {
                    tag: tag.to_string(),
                    recipe,
                    faketime,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The families as the registry describes them, written out so this layer's tests do not
    /// reach up to the families.
    fn families() -> Vec<KnownFamily> {
        let family = |name, brokers, node_roles| KnownFamily {
            name,
            brokers,
            node_roles,
        };
        vec![
            family("nats", &[], &[]),
            family("mqtt", &["rabbitmq", "mosquitto", "ejabberd", "emqx"], &[]),
            family("kafka", &["tansu", "apache-kafka"], &[]),
            family(
                "pulsar",
                &["pulsar-lite", "apache-pulsar"],
                &["broker", "bookie", "metadata"],
            ),
        ]
    }

    fn load_str(text: &str) -> (Option<Topology>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("images/nats");
        std::fs::create_dir_all(&recipe).unwrap();
        std::fs::write(recipe.join("build.sh"), "true").unwrap();
        let file = dir.path().join("c.yml");
        std::fs::write(&file, text).unwrap();
        let mut d = Diagnostics::new(Path::new("scenario.yaml"));
        let t = load(&file, &families(), &mut d);
        let msgs = d
            .into_vec()
            .into_iter()
            .map(|e| format!("{}:{}: {}", e.pos.line, e.pos.col, e.message))
            .collect();
        (t, msgs)
    }

    #[test]
    fn reads_services_and_extension() {
        let (t, errs) = load_str(
            "services:\n  n1:\n    image: nats:2.15.1\n    command: [\"-js\", \"-n\", \"n1\"]\n    environment:\n      A: b\nx-faultline:\n  family: nats\n  local-image:\n    nats:2.15.1: { tag: faultline/nats:2.15.1, recipe: images/nats }\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        let t = t.unwrap();
        assert_eq!(t.family, "nats");
        assert_eq!(t.services[0].hostname, "n1");
        assert_eq!(t.services[0].command, vec!["-js", "-n", "n1"]);
        assert_eq!(t.services[0].environment, vec!["A=b"]);
        assert_eq!(t.local_images["nats:2.15.1"].tag, "faultline/nats:2.15.1");
    }

    #[test]
    fn reads_the_durability_layer_and_its_writeback() {
        let topology = |durability: &str| {
            format!("services:\n  n1:\n    image: x\n  n2:\n    image: x\nx-faultline:\n  family: nats\n  durability: {durability}\n")
        };
        let (t, errs) = load_str(&topology(
            "{ path: /data/, services: [n2], writeback: 30s }",
        ));
        assert!(errs.is_empty(), "{errs:?}");
        let t = t.unwrap();
        assert_eq!(t.services[0].durable, None);
        assert_eq!(
            t.services[1].durable,
            Some(Durability {
                path: "/data".into(),
                writeback: Some(std::time::Duration::from_secs(30)),
            })
        );
        let (t, _) = load_str(&topology("{ path: /data }"));
        assert!(t.unwrap().services.iter().all(|s| s.durable
            == Some(Durability {
                path: "/data".into(),
                writeback: None
            })));
        let (_, errs) = load_str(&topology("{ path: /data, writeback: 2h }"));
        assert!(
            errs.iter().any(
                |e| e.contains("x-faultline.durability.writeback: expected how old")
                    && e.contains("from 1s to 1h")
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn reads_spares_tmpfs_and_configs() {
        let (t, errs) = load_str(
            "configs:\n  acc:\n    content: |\n      a: 1\nservices:\n  n1:\n    image: x\n    tmpfs: [\"/data:size=64m,mode=755\"]\n    configs: [{ source: acc, target: /etc/a.conf }]\n  n2:\n    image: x\n    profiles: [spare]\n    configs: [acc]\nx-faultline:\n  family: nats\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        let t = t.unwrap();
        let (n1, n2) = (&t.services[0], &t.services[1]);
        assert!(!n1.is_spare() && n2.is_spare());
        let tmpfs = n1.tmpfs_holding("/data/jetstream").unwrap();
        assert_eq!(tmpfs.size_bytes, Some(64 << 20));
        assert_eq!(tmpfs.options, "size=64m,mode=755");
        assert!(n1.tmpfs_holding("/database").is_none());
        assert_eq!(
            n1.files,
            vec![ConfigFile {
                target: "/etc/a.conf".into(),
                content: "a: 1\n".into()
            }]
        );
        assert_eq!(n2.files[0].target, "/acc");
    }

    #[test]
    fn reads_start_order_and_health_checks() {
        let (t, errs) = load_str(
            "services:\n  r1:\n    image: x\n    healthcheck:\n      test: [\"CMD\", \"bash\", \"-c\", \"true\"]\n      interval: 1s\n  r2:\n    image: x\n    depends_on:\n      r1: { condition: service_healthy }\n    healthcheck:\n      test: nc -z 127.0.0.1 1883\n  r3:\n    image: x\n    depends_on: [r2]\nx-faultline:\n  family: mqtt\n  broker: rabbitmq\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        let t = t.unwrap();
        let h = t.services[0].healthcheck.as_ref().unwrap();
        assert_eq!(h.test, vec!["CMD", "bash", "-c", "true"]);
        assert_eq!(
            (h.interval, h.timeout, h.retries),
            (Duration::from_secs(1), Duration::from_secs(30), 3)
        );
        assert_eq!(
            t.services[1].healthcheck.as_ref().unwrap().test,
            vec!["CMD-SHELL", "nc -z 127.0.0.1 1883"]
        );
        assert_eq!(
            t.services[1].depends_on,
            vec![Dependency {
                service: "r1".into(),
                healthy: true
            }]
        );
        assert_eq!(
            t.services[2].depends_on,
            vec![Dependency {
                service: "r2".into(),
                healthy: false
            }]
        );
        assert_eq!(t.broker.as_deref(), Some("rabbitmq"));
    }

    #[test]
    fn start_order_problems_are_named() {
        let (_, errs) = load_str(
            "services:\n  a:\n    image: x\n    depends_on:\n      b: { condition: service_healthy }\n  b:\n    image: x\n    depends_on: [z]\n  c:\n    image: x\n    depends_on: { a: { condition: service_healthy } }\nx-faultline:\n  family: mqtt\n  broker: mosquitto\n",
        );
        assert_eq!(
            errs,
            vec![
                "2:3: services.a.depends_on: b is written after a; faultline starts services in the order they are written, so move it before",
                "6:3: services.b.depends_on: no service named \"z\"",
                "9:3: services.c.depends_on: a has no healthcheck, so condition service_healthy could never hold",
            ]
        );
        let (_, errs) = load_str(
            "services:\n  b:\n    image: x\n    depends_on:\n      c: { condition: service_ready }\n  c:\n    image: x\n    healthcheck: { test: [\"RUN\", \"x\"] }\nx-faultline:\n  family: mqtt\n",
        );
        assert_eq!(
            errs,
            vec![
                "5:23: services.b.depends_on.c.condition: expected one of service_started, service_healthy, found \"service_ready\"",
                "8:26: services.c.healthcheck.test: expected [\"CMD\", prog, args...] or [\"CMD-SHELL\", \"command\"]",
                "10:3: x-faultline: missing key `broker`: expected which mqtt broker runs, one of rabbitmq, mosquitto, ejabberd, emqx",
            ]
        );
    }

    #[test]
    fn rejects_unknown_configs_and_bad_tmpfs() {
        let (_, errs) = load_str(
            "services:\n  n1:\n    image: x\n    tmpfs: [\"data:size=64m\", \"/d:size=lots\"]\n    configs: [nope]\nx-faultline:\n  family: nats\n",
        );
        assert_eq!(
            errs,
            vec![
                "4:13: services.n1.tmpfs: expected an absolute path such as /data:size=64m, found \"data:size=64m\"",
                "4:30: services.n1.tmpfs: size \"lots\": expected bytes with an optional k, m or g suffix, such as 64m",
                "5:15: services.n1.configs: no top-level config named \"nope\" (defined: none)",
            ]
        );
    }

    #[test]
    fn rejects_unsupported_service_keys_and_unknown_family() {
        let (_, errs) = load_str(
            "services:\n  n1:\n    image: x\n    ports: [\"4222:4222\"]\nx-faultline:\n  family: redis\n",
        );
        assert_eq!(
            errs,
            vec![
                "4:5: services.n1: unknown key `ports`: expected one of image, hostname, command, environment, profiles, tmpfs, configs, depends_on, healthcheck, networks",
                "6:11: x-faultline.family: expected one of nats, mqtt, kafka, pulsar, found \"redis\"",
            ]
        );
    }

    #[test]
    fn node_roles_and_dollar_escapes() {
        let (t, errs) = load_str(
            "services:\n  zk:\n    image: x\n    command: [\"sh\", \"-c\", \"wait $$pid\"]\n  pb1:\n    image: x\n    environment: { A: \"$$(hostname -i)\" }\nx-faultline:\n  family: pulsar\n  broker: apache-pulsar\n  roles: { broker: [pb1], metadata: [zk] }\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        let t = t.unwrap();
        assert_eq!(t.roles["broker"], vec!["pb1"]);
        assert_eq!(t.roles["metadata"], vec!["zk"]);
        assert_eq!(t.services[0].command[2], "wait $pid");
        assert_eq!(t.services[1].environment, vec!["A=$(hostname -i)"]);
        let (_, errs) = load_str(
            "services:\n  pb1:\n    image: x\nx-faultline:\n  family: pulsar\n  broker: apache-pulsar\n  roles: { broker: [pb2], proxy: [pb1] }\n",
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].contains("x-faultline.roles: unknown key `proxy`"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("x-faultline.roles.broker: no service named \"pb2\""),
            "{errs:?}"
        );
    }
}
