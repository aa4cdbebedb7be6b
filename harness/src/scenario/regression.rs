//! The scenario's `regression:` section: how far each number the baseline gate compares may
//! move. Each key takes a share (`failover: 20%`) or a share and an absolute slack
//! (`failover: {by: 20%, slack: 1s}`; the slack of `fault_throughput` is in messages/s).

use crate::check::regression::{Limits, Tolerance};
use crate::yaml::{self, Diagnostics, Fields, Node, Value};

pub(super) fn read(node: &Node, d: &mut Diagnostics) -> Option<Limits> {
    let f = Fields::new(node, Limits::KEYS, "regression", d)?;
    let mut limits = Limits::default();
    let mut ok = true;
    for key in Limits::KEYS {
        let Some(n) = f.get(key) else { continue };
        let path = f.path_of(key);
        let current = limits.get_mut(key).expect("a key of Limits");
        match tolerance(n, &path, key, *current, d) {
            Some(t) => *current = t,
            None => ok = false,
        }
    }
    ok.then_some(limits)
}

fn tolerance(
    n: &Node,
    path: &str,
    key: &str,
    default: Tolerance,
    d: &mut Diagnostics,
) -> Option<Tolerance> {
    if let Value::Scalar { .. } = n.value {
        return Some(Tolerance {
            relative: percent(n, path, d)?,
            slack: default.slack,
        });
    }
    let f = Fields::new(n, &["by", "slack"], path, d)?;
    let relative = match f.get("by") {
        Some(b) => percent(b, &f.path_of("by"), d)?,
        None => default.relative,
    };
    let slack = match f.get("slack") {
        None => default.slack,
        Some(s) if key == "fault_throughput" => yaml::positive_number(s, &f.path_of("slack"), d)?,
        Some(s) => yaml::duration(s, &f.path_of("slack"), d)?.as_secs_f64() * 1000.0,
    };
    Some(Tolerance { relative, slack })
}

/// "20%": a share from 0 % to 1000 %.
fn percent(n: &Node, path: &str, d: &mut Diagnostics) -> Option<f64> {
    yaml::share(
        n,
        path,
        1000.0,
        "a share such as \"20%\" or {by: 20%, slack: 500ms}",
        d,
    )
}
