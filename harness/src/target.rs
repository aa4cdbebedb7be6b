//! Who a fault hits: a node, a list of nodes, a choice made with the run's seed, or a role the
//! family resolves when the fault starts; and the reader of a target expression in a scenario.

use crate::yaml::{self, Diagnostics, Node};

/// Who a fault hits, decided when it is injected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Node(String),
    Nodes(Vec<String>),
    /// A node picked with the run's seed.
    Random,
    /// floor((n-1)/2) nodes, or the rest, or every node, picked with the run's seed.
    Minority,
    Majority,
    All,
    /// A role the family's probes resolve at fault time ("stream-leader").
    Role(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node(n) => write!(f, "{n}"),
            Target::Nodes(n) => write!(f, "{}", n.join(",")),
            Target::Random => write!(f, "random"),
            Target::Minority => write!(f, "minority"),
            Target::Majority => write!(f, "majority"),
            Target::All => write!(f, "all"),
            Target::Role(r) => write!(f, "{r}"),
        }
    }
}

/// Reads a target expression at `path`: node names must be among `nodes` (when known), roles
/// among `roles`.
pub fn read_target(
    node: &Node,
    path: &str,
    nodes: &[String],
    roles: &[&str],
    d: &mut Diagnostics,
) -> Option<Target> {
    let known = |t: &str, pos, d: &mut Diagnostics| {
        if nodes.iter().any(|n| n == t) || nodes.is_empty() {
            return true;
        }
        d.error(
            pos,
            format!(
                "{path}: no node or role named {t:?}: expected one of {}, random, minority, majority, all{}",
                nodes.join(", "),
                roles.iter().map(|r| format!(", {r}")).collect::<String>()
            ),
        );
        false
    };
    if let yaml::Value::Seq(items) = &node.value {
        let mut names = Vec::new();
        for item in items {
            let name = yaml::string(item, path, d)?;
            if known(name, item.pos, d) {
                names.push(name.to_string());
            }
        }
        return (names.len() == items.len() && !names.is_empty()).then_some(Target::Nodes(names));
    }
    let t = yaml::string(node, path, d)?;
    match t {
        "random" => Some(Target::Random),
        "minority" => Some(Target::Minority),
        "majority" => Some(Target::Majority),
        "all" => Some(Target::All),
        _ if roles.contains(&t) => Some(Target::Role(t.to_string())),
        _ => known(t, node.pos, d).then(|| Target::Node(t.to_string())),
    }
}
