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

const SERVICE_KEYS: &[&str] = &["image", "hostname", "command", "environment"];

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
        &["version", "name", "services", "x-faultline"],
        "",
        d,
    )?;
    let dir = path.parent().unwrap_or(Path::new("."));

    let mut services = Vec::new();
    if let Some(node) = top.require("services", "a mapping of node names to services", d) {
        if let Value::Map(entries) = &node.value {
            for (key, value) in entries {
                if let Some(name) = yaml::string(key, "services", d) {
                    if let Some(service) = read_service(name, value, d) {
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

fn read_service(name: &str, node: &Node, d: &mut Diagnostics) -> Option<Service> {
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
    Some(Service {
        name: name.to_string(),
        image: image?.to_string(),
        hostname: hostname?,
        command: command?,
        environment: environment?,
    })
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
    fn rejects_unsupported_service_keys_and_unknown_family() {
        let (_, errs) = load_str(
            "services:\n  n1:\n    image: x\n    ports: [\"4222:4222\"]\nx-faultline:\n  family: redis\n",
        );
        assert_eq!(
            errs,
            vec![
                "4:5: services.n1: unknown key `ports`: expected one of image, hostname, command, environment",
                "6:11: x-faultline.family: expected one of nats, found \"redis\"",
            ]
        );
    }
}
