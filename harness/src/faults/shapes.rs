//! Partition shapes as sets of blocked directed links between nodes.
//!
//! A link `(a, b)` in the result means packets from `a` to `b` are dropped. Every shape is a
//! pure function of the node list, the target nodes and a seeded choice, so the same seed gives
//! the same partition.

use std::collections::BTreeSet;

use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The target nodes lose every link to the other nodes, both ways.
    Isolate,
    /// A minority (floor((n-1)/2) nodes, the targets first) cut off from the majority.
    MajorityMinority,
    /// Two halves (the first holding the targets) cut off from each other.
    Halves,
    /// Two halves that both still see one middle node (the target).
    Bridge,
    /// Each node sees only its two neighbours on a ring (Jepsen's "majorities ring").
    Ring,
    /// Packets from the `from` nodes to the `to` nodes are dropped; the reverse flows.
    OneWay { from: Vec<String>, to: Vec<String> },
    /// Exactly these links are cut, both ways.
    Links(Vec<(String, String)>),
}

/// The partition shape that cuts the workload's own path (the harness host to the targets'
/// client port) rather than links between nodes; see `partition.rs`.
pub const CLIENT: &str = "client";

impl Shape {
    pub const NAMES: &'static [&'static str] = &[
        "isolate",
        "majority-minority",
        "halves",
        "bridge",
        "ring",
        "one-way",
        "links",
        CLIENT,
    ];
}

pub type Blocked = BTreeSet<(String, String)>;

fn cut(a: &[String], b: &[String], out: &mut Blocked) {
    for x in a {
        for y in b {
            if x != y {
                out.insert((x.clone(), y.clone()));
                out.insert((y.clone(), x.clone()));
            }
        }
    }
}

/// `nodes` in a stable order, the targets first, the rest shuffled by `rng`.
fn targets_first(nodes: &[String], targets: &[String], rng: &mut Rng) -> Vec<String> {
    let mut rest: Vec<String> = nodes
        .iter()
        .filter(|n| !targets.contains(n))
        .cloned()
        .collect();
    for i in (1..rest.len()).rev() {
        let j = rng.below(i + 1);
        rest.swap(i, j);
    }
    targets.iter().cloned().chain(rest).collect()
}

/// The links a shape cuts, and the two sides for the report (side A holds the targets).
pub fn blocked(
    shape: &Shape,
    nodes: &[String],
    targets: &[String],
    rng: &mut Rng,
) -> Result<(Blocked, String), String> {
    let n = nodes.len();
    let mut out = Blocked::new();
    let order = targets_first(nodes, targets, rng);
    let sides = |a: &[String], b: &[String]| format!("{} | {}", a.join(" "), b.join(" "));
    let description = match shape {
        Shape::Isolate => {
            let rest: Vec<String> = nodes
                .iter()
                .filter(|x| !targets.contains(x))
                .cloned()
                .collect();
            cut(targets, &rest, &mut out);
            sides(targets, &rest)
        }
        Shape::MajorityMinority => {
            let size = (n - 1) / 2;
            if targets.len() > size {
                return Err(format!(
                    "majority-minority: {} target node(s) do not fit in a minority of {size} of {n}",
                    targets.len()
                ));
            }
            let (minority, majority) = order.split_at(size);
            cut(minority, majority, &mut out);
            sides(minority, majority)
        }
        Shape::Halves => {
            let (a, b) = order.split_at(n.div_ceil(2));
            if targets.len() > a.len() {
                return Err(format!(
                    "halves: {} target node(s) do not fit in a half",
                    targets.len()
                ));
            }
            cut(a, b, &mut out);
            sides(a, b)
        }
        Shape::Bridge => {
            if n < 3 || targets.len() != 1 {
                return Err(
                    "bridge: needs at least 3 nodes and exactly one target (the middle node)"
                        .into(),
                );
            }
            let others = &order[1..];
            let (a, b) = others.split_at(others.len().div_ceil(2));
            cut(a, b, &mut out);
            format!(
                "{} | {} | {} (the middle sees both sides)",
                a.join(" "),
                order[0],
                b.join(" ")
            )
        }
        Shape::Ring => {
            if n < 4 {
                return Err(format!(
                    "ring: needs at least 4 nodes (with {n} every node is its neighbours' neighbour and nothing would be cut)"
                ));
            }
            for (i, a) in order.iter().enumerate() {
                for (j, b) in order.iter().enumerate() {
                    let d = (i as isize - j as isize).rem_euclid(n as isize) as usize;
                    if d > 1 && d < n - 1 {
                        out.insert((a.clone(), b.clone()));
                    }
                }
            }
            format!("ring {}", order.join(" - "))
        }
        Shape::OneWay { from, to } => {
            for a in from {
                for b in to {
                    if a != b {
                        out.insert((a.clone(), b.clone()));
                    }
                }
            }
            format!(
                "{} -> {} dropped (the reverse flows)",
                from.join(" "),
                to.join(" ")
            )
        }
        Shape::Links(links) => {
            for (a, b) in links {
                out.insert((a.clone(), b.clone()));
                out.insert((b.clone(), a.clone()));
            }
            links
                .iter()
                .map(|(a, b)| format!("{a} x {b}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    if out.is_empty() {
        return Err(format!("the partition ({description}) cuts no link"));
    }
    Ok((out, description))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn pairs(b: &Blocked) -> Vec<String> {
        b.iter().map(|(a, b)| format!("{a}>{b}")).collect()
    }

    #[test]
    fn isolate_cuts_the_target_from_everyone_both_ways() {
        let (b, d) = blocked(&Shape::Isolate, &names(3), &["n2".into()], &mut Rng::new(1)).unwrap();
        assert_eq!(pairs(&b), vec!["n1>n2", "n2>n1", "n2>n3", "n3>n2"]);
        assert_eq!(d, "n2 | n1 n3");
    }

    #[test]
    fn majority_minority_of_five_puts_the_target_in_a_minority_of_two() {
        let (b, d) = blocked(
            &Shape::MajorityMinority,
            &names(5),
            &["n4".into()],
            &mut Rng::new(7),
        )
        .unwrap();
        // 2 x 3 nodes, both directions.
        assert_eq!(b.len(), 12);
        assert!(d.starts_with("n4 "), "{d}");
        let minority: Vec<&str> = d.split(" | ").next().unwrap().split(' ').collect();
        assert_eq!(minority.len(), 2);
    }

    #[test]
    fn the_same_seed_gives_the_same_partition() {
        let a = blocked(&Shape::Halves, &names(6), &[], &mut Rng::new(42)).unwrap();
        let b = blocked(&Shape::Halves, &names(6), &[], &mut Rng::new(42)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0.len(), 18);
    }

    #[test]
    fn bridge_keeps_the_middle_connected() {
        let (b, _) = blocked(&Shape::Bridge, &names(5), &["n3".into()], &mut Rng::new(3)).unwrap();
        assert!(b.iter().all(|(x, y)| x != "n3" && y != "n3"));
        assert_eq!(b.len(), 8, "2 x 2 nodes, both ways");
    }

    #[test]
    fn ring_of_five_cuts_every_non_neighbour() {
        let (b, _) = blocked(&Shape::Ring, &names(5), &[], &mut Rng::new(0)).unwrap();
        // Each node keeps 2 of its 4 peers: 5 x 2 directed links cut.
        assert_eq!(b.len(), 10);
        assert!(blocked(&Shape::Ring, &names(3), &[], &mut Rng::new(0)).is_err());
    }

    #[test]
    fn one_way_and_links() {
        let one = Shape::OneWay {
            from: vec!["n1".into()],
            to: vec!["n2".into(), "n3".into()],
        };
        let (b, _) = blocked(&one, &names(3), &[], &mut Rng::new(0)).unwrap();
        assert_eq!(pairs(&b), vec!["n1>n2", "n1>n3"]);
        let links = Shape::Links(vec![("n1".into(), "n3".into())]);
        let (b, _) = blocked(&links, &names(3), &[], &mut Rng::new(0)).unwrap();
        assert_eq!(pairs(&b), vec!["n1>n3", "n3>n1"]);
    }
}
