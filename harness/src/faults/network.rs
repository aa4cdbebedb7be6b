//! The machinery shared by network faults: a sidecar in a node's network namespace (NET_ADMIN
//! only, from the tools image), and iptables chains of the fault's own, so a heal removes
//! exactly the rules that fault added and can check they are gone.

use super::{FaultCtx, FaultError, ReadCtx};
use crate::cluster::backend::Share;
use crate::cluster::ClusterNode;
use crate::target::{read_target, Target};
use crate::yaml::{Diagnostics, Fields};

/// A sidecar sharing one node's network namespace.
pub struct Sidecar {
    pub node: ClusterNode,
    pub container: String,
}

impl Sidecar {
    /// A sidecar in the node's network namespace.
    pub async fn start(
        ctx: &FaultCtx,
        node: &ClusterNode,
        purpose: &str,
    ) -> Result<Sidecar, FaultError> {
        Self::start_sharing(ctx, node, purpose, Share::Network).await
    }

    pub async fn start_sharing(
        ctx: &FaultCtx,
        node: &ClusterNode,
        purpose: &str,
        share: Share,
    ) -> Result<Sidecar, FaultError> {
        let image = ctx.tools_image.as_deref().ok_or_else(|| {
            FaultError::NotApplied(format!(
                "the {purpose} fault needs the tools image, which was not prepared"
            ))
        })?;
        let container = ctx
            .backend
            .start_sidecar(
                &ctx.run_id,
                &node.container,
                &node.name,
                purpose,
                image,
                share,
            )
            .await?;
        Ok(Sidecar {
            node: node.clone(),
            container,
        })
    }

    /// Runs a shell script in the sidecar; a non-zero exit is an error carrying the output.
    pub async fn sh(&self, ctx: &FaultCtx, script: &str, what: &str) -> Result<String, FaultError> {
        let what = format!("{what} on {}", self.node.name);
        let (code, output) = ctx
            .backend
            .exec(&self.container, &["sh", "-c", script], &what)
            .await?;
        if code != 0 {
            return Err(FaultError::NotApplied(format!(
                "{what} failed (exit {code}): {}",
                output.trim()
            )));
        }
        Ok(output)
    }

    pub async fn remove(&self, ctx: &FaultCtx) -> Result<(), FaultError> {
        ctx.backend.remove_container(&self.container).await?;
        Ok(())
    }
}

/// Starts a sidecar on each of `nodes` (kept in `sidecars` for the heal), then runs the same
/// `script` in all of them at once; returns when the last one returned.
pub async fn apply_on_each(
    ctx: &FaultCtx,
    nodes: &[ClusterNode],
    purpose: &str,
    script: &str,
    what: &str,
    sidecars: &mut Vec<Sidecar>,
) -> Result<std::time::Instant, FaultError> {
    for node in nodes {
        sidecars.push(Sidecar::start(ctx, node, purpose).await?);
    }
    let sidecars = &*sidecars;
    super::on_all(nodes, |node| async move {
        let sidecar = sidecars
            .iter()
            .find(|s| s.node.name == node.name)
            .expect("a sidecar was started for every node");
        sidecar.sh(ctx, script, what).await?;
        Ok(std::time::Instant::now())
    })
    .await
}

/// Runs `script` (which undoes the fault and checks it is gone) in every sidecar, then
/// removes the sidecars. Stops at the first failure, keeping the sidecars left for a retry.
pub async fn undo_and_remove(
    sidecars: &mut Vec<Sidecar>,
    ctx: &FaultCtx,
    script: &str,
    what: &str,
) -> Result<(), FaultError> {
    while let Some(sidecar) = sidecars.last() {
        sidecar.sh(ctx, script, what).await?;
        sidecar.remove(ctx).await?;
        sidecars.pop();
    }
    Ok(())
}

/// A network fault's optional `peers`: the nodes whose links it acts on (all when absent).
pub fn read_peers(f: &Fields, cx: &ReadCtx, d: &mut Diagnostics) -> Vec<String> {
    let Some(n) = f.get("peers") else {
        return Vec::new();
    };
    match read_target(n, &f.path_of("peers"), cx.nodes, &[], d) {
        Some(Target::Nodes(list)) => list,
        _ => {
            d.error(
                n.pos,
                format!("{}: expected a list of node names", f.path_of("peers")),
            );
            Vec::new()
        }
    }
}

/// Chain names of fault `id`: one hooked from INPUT, one from OUTPUT.
/// `s` as one single-quoted shell word, whatever it holds: every value from a scenario that
/// reaches a sidecar's shell goes through here.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn chains(id: usize) -> (String, String) {
    (format!("FL{id}-IN"), format!("FL{id}-OUT"))
}

/// A script that creates the fault's chains, hooks them first in INPUT and OUTPUT, adds the
/// rules, and checks the chains hold exactly that many rules.
pub fn install_script(id: usize, input: &[String], output: &[String]) -> String {
    let (cin, cout) = chains(id);
    let mut s = String::from("set -e\n");
    for (chain, hook, rules) in [(&cin, "INPUT", input), (&cout, "OUTPUT", output)] {
        if rules.is_empty() {
            continue;
        }
        s += &format!("iptables -w -N {chain}\niptables -w -I {hook} 1 -j {chain}\n");
        for rule in rules {
            s += &format!("iptables -w -A {chain} {rule}\n");
        }
        s += &format!(
            "test \"$(iptables -w -S {chain} | grep -c -- '^-A {chain} ')\" = {}\n",
            rules.len()
        );
    }
    s
}

/// A script that prints two numbers for the fault's chain hooked from `hook` (INPUT or
/// OUTPUT): the packets that entered the chain and the packets its DROP rules dropped. Read
/// before the heal removes the rules: the kernel's own count is the proof that the fault acted.
pub fn drop_counters_script(id: usize, hook: &str) -> String {
    let (cin, cout) = chains(id);
    let chain = if hook == "INPUT" { cin } else { cout };
    format!(
        "set -e\nentered=$(iptables -w -L {hook} -v -n -x | awk '$3 == \"{chain}\" {{ s += $1 }} END {{ print s + 0 }}')\n\
         dropped=$(iptables -w -L {chain} -v -n -x | awk '$3 == \"DROP\" {{ s += $1 }} END {{ print s + 0 }}')\n\
         echo \"$entered $dropped\"\n"
    )
}

/// Parses the output of [`drop_counters_script`]: (entered, dropped).
pub fn parse_drop_counters(output: &str) -> Option<(u64, u64)> {
    let mut numbers = output.split_whitespace().map(str::parse::<u64>);
    match (numbers.next(), numbers.next(), numbers.next()) {
        (Some(Ok(entered)), Some(Ok(dropped)), None) => Some((entered, dropped)),
        _ => None,
    }
}

/// A script that removes the fault's chains (whatever is left of them) and fails if any rule
/// or chain of the fault remains.
pub fn remove_script(id: usize) -> String {
    let (cin, cout) = chains(id);
    let mut s = String::new();
    for (chain, hook) in [(&cin, "INPUT"), (&cout, "OUTPUT")] {
        s += &format!(
            "while iptables -w -D {hook} -j {chain} 2>/dev/null; do :; done\niptables -w -F {chain} 2>/dev/null\niptables -w -X {chain} 2>/dev/null\n"
        );
    }
    s += &format!("! iptables -w -S | grep -q -- 'FL{id}-'\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_hooks_and_counts_only_the_chains_it_uses() {
        let s = install_script(3, &["-s 10.0.0.11 -j DROP".into()], &[]);
        assert!(s.contains("iptables -w -N FL3-IN\niptables -w -I INPUT 1 -j FL3-IN\n"));
        assert!(s.contains("iptables -w -A FL3-IN -s 10.0.0.11 -j DROP\n"));
        assert!(s.contains("grep -c -- '^-A FL3-IN ')\" = 1"));
        assert!(!s.contains("FL3-OUT"));
    }

    #[test]
    fn drop_counters_read_the_hook_and_the_drop_rules_of_one_chain() {
        let s = drop_counters_script(4, "OUTPUT");
        assert!(s.contains("iptables -w -L OUTPUT -v -n -x | awk '$3 == \"FL4-OUT\""));
        assert!(s.contains("iptables -w -L FL4-OUT -v -n -x | awk '$3 == \"DROP\""));
        assert_eq!(parse_drop_counters("6170 1234\n"), Some((6170, 1234)));
        assert_eq!(parse_drop_counters("6170\n"), None);
        assert_eq!(parse_drop_counters("iptables: No chain\n"), None);
    }

    #[test]
    fn remove_is_idempotent_and_verifies() {
        let s = remove_script(12);
        assert!(s.contains("iptables -w -F FL12-IN 2>/dev/null"));
        assert!(s.ends_with("! iptables -w -S | grep -q -- 'FL12-'\n"));
    }
}
