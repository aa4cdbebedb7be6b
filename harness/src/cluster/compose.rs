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

use crate::yaml::{self, Diagnostics, Fields, Node, Value};

/// A cluster topology read from a compose file.
#[derive(Clone, Debug)]
pub struct Topology {
    pub file: PathBuf,
    /// The broker family: decides the driver and probes ("nats").
    pub family: String,
    pub services: Vec<Service>,
    /// Official image reference -> the local equivalent and its recipe.
    pub local_images: BTreeMap<String, LocalImage>,
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
];

/// Reads a compose file; problems go to `d` under the compose file's name.
pub fn load(path: &Path, families: &[&str], d: &mut Diagnostics) -> Option<Topology> {
    let previous = d.switch_file(path);
    let topology = read(path, families, d);
    d.switch_file(&previous);
    topology
}

fn read(path: &Path, families: &[&str], d: &mut Diagnostics) -> Option<Topology> {
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            d.error(Default::default(), format!("cannot read compose file: {e}"));
            return None;
        }
    };
    let root = match yaml::parse(&src) {
        Ok(Some(root)) => root,
        Ok(None) => {
            d.error(Default::default(), "compose file is empty");
            return None;
        }
        Err((pos, msg)) => {
            d.error(pos, format!("invalid YAML: {msg}"));
            return None;
        }
    };
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
    }

    let mut family = None;
    let mut local_images = BTreeMap::new();
    if let Some(ext) = top.require(
        "x-faultline",
        "faultline's settings (family, local-image)",
        d,
    ) {
        if let Some(f) = Fields::new(ext, &["family", "local-image"], "x-faultline", d) {
            if let Some(node) = f.require("family", "the broker family", d) {
                family = yaml::choice(node, "x-faultline.family", families, d).map(String::from);
            }
            if let Some(node) = f.get("local-image") {
                read_local_images(node, dir, &mut local_images, d);
            }
        }
    }

    Some(Topology {
        file: path.to_path_buf(),
        family: family?,
        services,
        local_images,
    })
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
        .require("image", "an image reference such as nats:2.15.1", d)
        .and_then(|n| yaml::string(n, &f.path_of("image"), d));
    let hostname = match f.get("hostname") {
        Some(n) => yaml::string(n, &f.path_of("hostname"), d).map(String::from),
        None => Some(name.to_string()),
    };
    let command = match f.get("command") {
        None => Some(Vec::new()),
        Some(n) => match &n.value {
            Value::Scalar { text, .. } => Some(text.split_whitespace().map(String::from).collect()),
            Value::Seq(items) => items
                .iter()
                .map(|i| yaml::string(i, &f.path_of("command"), d).map(String::from))
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
                .map(|i| yaml::string(i, &f.path_of("environment"), d).map(String::from))
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
                    Some(format!("{key}={value}"))
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
    Some(Service {
        name: name.to_string(),
        image: image?.to_string(),
        hostname: hostname?,
        command: command?,
        environment: environment?,
        profiles: profiles?,
        tmpfs: tmpfs?,
        files: files?,
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
                std::fs::read_to_string(&file)
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
        let Some(f) = Fields::new(value, &["tag", "recipe"], &path, d) else {
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
        if let (Some(tag), Some(recipe)) = (tag, recipe) {
            out.insert(
                official.to_string(),
                LocalImage {
                    tag: tag.to_string(),
                    recipe,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> (Option<Topology>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("images/nats");
        std::fs::create_dir_all(&recipe).unwrap();
        std::fs::write(recipe.join("build.sh"), "true").unwrap();
        let file = dir.path().join("c.yml");
        std::fs::write(&file, text).unwrap();
        let mut d = Diagnostics::new(Path::new("scenario.yaml"));
        let t = load(&file, &["nats"], &mut d);
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
                "4:5: services.n1: unknown key `ports`: expected one of image, hostname, command, environment, profiles, tmpfs, configs",
                "6:11: x-faultline.family: expected one of nats, found \"redis\"",
            ]
        );
    }
}
