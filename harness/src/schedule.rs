//! The fault schedule of a run: every occurrence of every fault at its time, targets resolved
//! when the fault starts (a role names whoever holds it then), heals at `for`, and the final
//! heal of whatever is still in effect when the load ends.
//!
//! Each occurrence gets a run-unique id; the history's fault and heal records carry it, the
//! scenario's fault index (`spec`), the resolved targets and what exactly was done.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::families::Broker;
use crate::faults::partition::ShapeSpec;
use crate::faults::Settings;
use crate::faults::{self, shapes, Fault, FaultCtx};
use crate::history::{Clock, FaultStep, HistorySink, Kind, Op, Phase, Record};
use crate::progress::Progress;
use crate::rng::Rng;
use crate::scenario::{FaultKind, FaultSpec, Target};

/// How long a rolling restart waits for the cluster's health after each node.
const ROLLING_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a scale-out waits for the new node to join, or a scale-in for the cluster to
/// re-place what the removed node held.
const TOPOLOGY_TIMEOUT: Duration = Duration::from_secs(90);

struct Active {
    id: usize,
    kind: &'static str,
    targets: String,
    /// False when injection failed: heal still runs (it is idempotent) but ends no fault.
    applied: bool,
    fault: Box<dyn Fault>,
}

pub struct Scheduler {
    ctx: FaultCtx,
    broker: Arc<dyn Broker>,
    sink: HistorySink,
    clock: Clock,
    progress: Arc<Progress>,
    rng: Rng,
    seed: u64,
    next_id: usize,
    /// Faults injected and not yet healed; the recovery phase starts when it drops to zero.
    in_effect: Arc<AtomicUsize>,
    fault_phase_started: bool,
    timed_heals: Vec<tokio::task::JoinHandle<()>>,
    panics: Vec<String>,
    unhealed: Vec<Active>,
}

/// Which occurrence a fault record is about.
struct Who<'a> {
    id: usize,
    /// The fault's index in the scenario; written on the `fault` steps only.
    spec: Option<usize>,
    kind: &'a str,
    targets: &'a str,
}

fn record(op: Op, kind: Kind, who: Who, t: u64, detail: Option<String>) -> Record {
    let step = FaultStep {
        kind,
        fault: who.id,
        spec: who.spec,
        fault_kind: Some(who.kind.into()),
        target: Some(who.targets.into()),
        t_done: t,
        detail,
    };
    match op {
        Op::Heal => Record::Heal(step),
        _ => Record::Fault(step),
    }
}

/// The nodes a target expression names among `names`, choosing with `rng` where it is a
/// choice: `random` one node, `minority` floor((n-1)/2) (at least one), `majority` n/2+1. A
/// role is resolved by the family, not here: it picks nothing.
fn pick(target: &Target, names: &[String], rng: &mut Rng) -> Vec<String> {
    let n = names.len();
    let mut choose = |count: usize| {
        let mut pool = names.to_vec();
        let mut out = Vec::new();
        for _ in 0..count.min(n) {
            out.push(pool.remove(rng.below(pool.len())));
        }
        out.sort();
        out
    };
    match target {
        Target::Node(name) => vec![name.clone()],
        Target::Nodes(list) => list.clone(),
        Target::Random => choose(1),
        Target::Minority => choose((n.saturating_sub(1) / 2).max(1)),
        Target::Majority => choose(n / 2 + 1),
        Target::All => names.to_vec(),
        Target::Role(_) => Vec::new(),
    }
}

fn phase(phase: Phase, t: u64) -> Record {
    Record::phase(phase, t)
}

impl Scheduler {
    pub fn new(
        ctx: FaultCtx,
        broker: Arc<dyn Broker>,
        sink: HistorySink,
        clock: Clock,
        progress: Arc<Progress>,
        seed: u64,
    ) -> Self {
        Scheduler {
            ctx,
            broker,
            sink,
            clock,
            progress,
            rng: Rng::new(seed),
            seed,
            next_id: 0,
            in_effect: Arc::new(AtomicUsize::new(0)),
            fault_phase_started: false,
            timed_heals: Vec::new(),
            panics: Vec::new(),
            unhealed: Vec::new(),
        }
    }

    /// Runs every occurrence of every fault at its time from `load_start`, then waits for the
    /// timed heals.
    pub async fn run(&mut self, faults: &[FaultSpec], load_start: Instant) {
        // Each fault draws its random intervals from a generator of its own, so adding a
        // fault to a scenario does not move the others.
        let mut occurrences: Vec<(Duration, usize)> = faults
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                let mut rng = Rng::new(self.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9));
                f.occurrences(Some(&mut rng))
                    .into_iter()
                    .map(move |at| (at, i))
            })
            .collect();
        occurrences.sort();
        for (at, spec_index) in occurrences {
            tokio::time::sleep_until((load_start + at).into()).await;
            let spec = &faults[spec_index];
            if spec.kind == FaultKind::RollingRestart {
                self.rolling_restart(spec, spec_index).await;
            } else if spec.kind.is_topology_change() {
                self.topology_change(spec, spec_index).await;
            } else {
                self.occurrence(spec, spec_index).await;
            }
        }
        for h in std::mem::take(&mut self.timed_heals) {
            if let Err(e) = h.await {
                if let Some(msg) = crate::workload::join_panic(e) {
                    self.panics.push(format!("a timed heal panicked: {msg}"));
                }
            }
        }
    }

    /// What panicked in the schedule's own tasks (timed heals): a run with a panic is not a
    /// measurement.
    pub fn panics(&self) -> &[String] {
        &self.panics
    }

    /// How many faults are injected and not yet healed.
    pub fn in_effect(&self) -> usize {
        self.in_effect.load(Ordering::SeqCst)
    }

    /// Resolves a target expression to node names.
    async fn resolve(&mut self, target: &Target) -> Result<Vec<String>, String> {
        let names = self.ctx.cluster.names();
        let nodes = match target {
            Target::Role(role) => vec![self
                .broker
                .resolve_role(role)
                .await
                .map_err(|e| e.to_string())?],
            _ => pick(target, &names, &mut self.rng),
        };
        match nodes.iter().find(|x| !names.contains(x)) {
            Some(bad) => Err(format!(
                "{target} resolved to {bad:?}, which is not a node of this cluster"
            )),
            None => Ok(nodes),
        }
    }

    /// The blocked links of a partition occurrence, and its description.
    async fn partition(
        &mut self,
        shape: &ShapeSpec,
        targets: &[String],
    ) -> Result<(shapes::Blocked, String), String> {
        let names = self.ctx.cluster.names();
        let shape = match shape {
            ShapeSpec::Isolate => shapes::Shape::Isolate,
            ShapeSpec::MajorityMinority => shapes::Shape::MajorityMinority,
            ShapeSpec::Halves => shapes::Shape::Halves,
            ShapeSpec::Bridge => shapes::Shape::Bridge,
            ShapeSpec::Ring => shapes::Shape::Ring,
            ShapeSpec::Links(links) => shapes::Shape::Links(links.clone()),
            ShapeSpec::Client => return Err("a client partition cuts no link between nodes".into()),
            ShapeSpec::OneWay { from, to } => shapes::Shape::OneWay {
                from: self.resolve(from).await?,
                to: self.resolve(to).await?,
            },
        };
        shapes::blocked(&shape, &names, targets, &mut self.rng)
    }

    /// Records a fault occurrence that could not be applied, and says why.
    fn not_applied(&self, id: usize, spec_index: usize, kind: &str, targets: &str, why: String) {
        self.progress.note(&format!(
            "fault {id} ({kind} {targets}): not applied: {why}"
        ));
        let who = Who {
            id,
            spec: Some(spec_index),
            kind,
            targets,
        };
        let t = self.clock.now_us();
        self.sink
            .record(record(Op::Fault, Kind::Fail, who, t, Some(why)));
    }

    /// Records an occurrence whose targets could not be resolved, under its target as written.
    fn not_resolved(&self, id: usize, spec: &FaultSpec, spec_index: usize, why: String) {
        let shown = spec
            .target
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default();
        self.not_applied(id, spec_index, spec.kind.name(), &shown, why);
    }

    async fn occurrence(&mut self, spec: &FaultSpec, spec_index: usize) {
        let id = self.next_id;
        self.next_id += 1;
        let kind = spec.kind.name();
        // A one-way partition's targets are the side whose packets are dropped.
        let shape = match &spec.settings {
            Settings::Partition(shape) => Some(shape),
            _ => None,
        };
        let expression = match (&spec.target, shape) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(ShapeSpec::OneWay { from, .. })) => Some(from.clone()),
            (None, _) => None,
        };
        let targets = match &expression {
            Some(t) => self.resolve(t).await,
            None => Ok(Vec::new()),
        };
        let plan = match (targets, shape) {
            (Ok(targets), Some(ShapeSpec::Client)) => Ok((targets, None)),
            (Ok(targets), Some(shape)) => self
                .partition(shape, &targets)
                .await
                .map(|p| (targets, Some(p))),
            (Ok(targets), None) => Ok((targets, None)),
            (Err(e), _) => Err(e),
        };
        let (targets, partition) = match plan {
            Ok(p) => p,
            Err(e) => {
                self.not_resolved(id, spec, spec_index, e);
                return;
            }
        };
        let nodes: Vec<_> = targets
            .iter()
            .filter_map(|t| self.ctx.cluster.node(t).cloned())
            .collect();
        let shown = targets.join(",");
        let fault = faults::build(spec.kind, &spec.settings, id, nodes, partition);
        let active = self.inject(id, spec_index, kind, shown, fault).await;
        match spec.heal_after {
            Some(after) => {
                let due = Instant::now() + after;
                let healer = self.healer();
                self.timed_heals.push(tokio::spawn(async move {
                    tokio::time::sleep_until(due.into()).await;
                    healer.heal(active).await;
                }));
            }
            None => self.unhealed.push(active),
        }
    }

    async fn inject(
        &mut self,
        id: usize,
        spec_index: usize,
        kind: &'static str,
        targets: String,
        mut fault: Box<dyn Fault>,
    ) -> Active {
        self.progress
            .phase(&format!("fault {id}: {kind} {targets}"));
        let who = || Who {
            id,
            spec: Some(spec_index),
            kind,
            targets: &targets,
        };
        let t = self.clock.now_us();
        self.sink
            .record(record(Op::Fault, Kind::Invoke, who(), t, None));
        let applied = fault.inject(&self.ctx).await;
        match &applied {
            Ok(at) => {
                self.in_effect.fetch_add(1, Ordering::SeqCst);
                let t = self.clock.us(*at);
                if !self.fault_phase_started {
                    self.sink.record(phase(Phase::Fault, t));
                    self.fault_phase_started = true;
                }
                let detail = fault.describe();
                self.progress.note(&match &detail {
                    Some(d) => format!("in effect: {d}"),
                    None => "in effect".into(),
                });
                self.sink
                    .record(record(Op::Fault, Kind::Ok, who(), t, detail));
            }
            Err(e) => self.not_applied(id, spec_index, kind, &targets, e.to_string()),
        }
        Active {
            id,
            kind,
            targets,
            applied: applied.is_ok(),
            fault,
        }
    }

    /// Restarts each target node in turn; each step is its own fault, healed when the cluster
    /// reports itself healthy again, so every step has its own timings.
    async fn rolling_restart(&mut self, spec: &FaultSpec, spec_index: usize) {
        let targets = match &spec.target {
            Some(t) => self.resolve(t).await.unwrap_or_default(),
            None => Vec::new(),
        };
        for name in targets {
            let Some(node) = self.ctx.cluster.node(&name).cloned() else {
                continue;
            };
            let id = self.next_id;
            self.next_id += 1;
            let fault = faults::build(spec.kind, &spec.settings, id, vec![node], None);
            let active = self
                .inject(id, spec_index, "restart", name.clone(), fault)
                .await;
            self.progress.note(&format!(
                "waiting for the cluster's health after restarting {name}"
            ));
            if let Err(e) = self.broker.wait_healthy(ROLLING_HEALTH_TIMEOUT).await {
                self.progress
                    .note(&format!("cluster not healthy after restarting {name}: {e}"));
            }
            self.healer().heal(active).await;
        }
    }

    /// Scale-out or scale-in, one node at a time. Each node is a fault of its own: `t_fault`
    /// when Docker started (or stopped) it, and its heal when the cluster reported the change
    /// done (joined; removed and its data re-placed), so the step's window shows its cost.
    async fn topology_change(&mut self, spec: &FaultSpec, spec_index: usize) {
        let kind = spec.kind.name();
        let scale_out = spec.kind == FaultKind::ScaleOut;
        let targets = match (&spec.target, scale_out) {
            (Some(Target::Node(n)), true) => Ok(vec![n.clone()]),
            (Some(Target::Nodes(list)), true) => Ok(list.clone()),
            (_, true) => Err("scale-out names the spare nodes it starts".to_string()),
            (Some(t), false) => self.resolve(t).await,
            (None, false) => Err("scale-in needs a target".to_string()),
        };
        let targets = targets.and_then(|names| {
            let outside = self.ctx.cluster.outside();
            match names.iter().find(|n| outside.contains(n) != scale_out) {
                Some(n) if scale_out => Err(format!("{n} is already a member of the cluster")),
                Some(n) => Err(format!("{n} is not a member of the cluster")),
                None => Ok(names),
            }
        });
        // Validation refuses topology changes for families that do not automate them.
        let targets = targets.and_then(|t| match self.broker.scaling() {
            Some(_) => Ok(t),
            None => Err(format!(
                "this family cannot {kind} (it does not automate membership changes)"
            )),
        });
        let targets = match targets {
            Ok(t) => t,
            Err(e) => {
                let id = self.next_id;
                self.next_id += 1;
                self.not_resolved(id, spec, spec_index, e);
                return;
            }
        };
        let broker = self.broker.clone();
        let Some(scaling) = broker.scaling() else {
            return;
        };
        for name in targets {
            let Some(node) = self.ctx.cluster.node(&name).cloned() else {
                continue;
            };
            let id = self.next_id;
            self.next_id += 1;
            let fault = faults::build(spec.kind, &spec.settings, id, vec![node.clone()], None);
            let active = self.inject(id, spec_index, kind, name.clone(), fault).await;
            if !active.applied {
                self.healer().heal(active).await;
                continue;
            }
            let settled = if scale_out {
                self.progress
                    .note(&format!("waiting for the cluster to report {name} joined"));
                let r = scaling.add_node(node.endpoint(), TOPOLOGY_TIMEOUT).await;
                self.ctx.cluster.set_member(&name, true);
                r
            } else {
                self.ctx.cluster.set_member(&name, false);
                self.progress
                    .note(&format!("removing {name} from the cluster's membership"));
                scaling.remove_node(&name, TOPOLOGY_TIMEOUT).await
            };
            let settled = settled.map_err(|e| e.to_string());
            match &settled {
                Ok(what) => self.progress.note(what),
                Err(e) => self
                    .progress
                    .note(&format!("{kind} of {name} did not settle: {e}")),
            }
            self.healer().finish(active, settled).await;
        }
    }

    fn healer(&self) -> Healer {
        Healer {
            ctx: self.ctx.clone(),
            sink: self.sink.clone(),
            clock: self.clock,
            progress: self.progress.clone(),
            in_effect: self.in_effect.clone(),
        }
    }

    /// Heals every fault still in effect (those without `for`): runs when the load ends.
    pub async fn heal_all(&mut self) {
        let healer = self.healer();
        for active in std::mem::take(&mut self.unhealed) {
            healer.heal(active).await;
        }
    }
}

struct Healer {
    ctx: FaultCtx,
    sink: HistorySink,
    clock: Clock,
    progress: Arc<Progress>,
    in_effect: Arc<AtomicUsize>,
}

impl Healer {
    async fn heal(&self, mut active: Active) {
        self.progress.phase(&format!(
            "heal fault {}: {} {}",
            active.id, active.kind, active.targets
        ));
        let result = active.fault.heal(&self.ctx).await;
        let detail = active.fault.healed_detail();
        self.finish(active, result.map(|()| detail).map_err(|e| e.to_string()))
            .await;
    }

    /// Records the end of a fault: healed (or, for a topology change, settled, with what
    /// showed it), or not.
    async fn finish(&self, active: Active, result: Result<impl Into<Option<String>>, String>) {
        let t = self.clock.now_us();
        let who = || Who {
            id: active.id,
            spec: None,
            kind: active.kind,
            targets: &active.targets,
        };
        match result.map(Into::into) {
            Ok(detail) => {
                self.sink
                    .record(record(Op::Heal, Kind::Ok, who(), t, detail));
                if active.applied && self.in_effect.fetch_sub(1, Ordering::SeqCst) == 1 {
                    self.sink.record(phase(Phase::Recovery, t));
                    self.progress.phase("recovery: no fault in effect");
                }
            }
            Err(e) => {
                self.progress.note(&format!("heal failed: {e}"));
                // A topology change that did not settle is over all the same (nothing more
                // will end it), so the recovery phase must not wait for it; any other fault
                // whose heal failed is still in effect.
                let topology = matches!(active.kind, "scale-out" | "scale-in");
                if topology && active.applied && self.in_effect.fetch_sub(1, Ordering::SeqCst) == 1
                {
                    self.sink.record(phase(Phase::Recovery, t));
                }
                self.sink
                    .record(record(Op::Heal, Kind::Fail, who(), t, Some(e)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn minority_majority_and_random_pick_their_share() {
        for (n, minority, majority) in [(1, 1, 1), (3, 1, 2), (4, 1, 3), (5, 2, 3), (7, 3, 4)] {
            let mut rng = Rng::new(1);
            assert_eq!(
                pick(&Target::Minority, &names(n), &mut rng).len(),
                minority,
                "n={n}"
            );
            assert_eq!(
                pick(&Target::Majority, &names(n), &mut rng).len(),
                majority,
                "n={n}"
            );
            assert_eq!(pick(&Target::Random, &names(n), &mut rng).len(), 1, "n={n}");
            assert_eq!(pick(&Target::All, &names(n), &mut rng), names(n));
        }
        let picked = pick(&Target::Majority, &names(5), &mut Rng::new(3));
        let mut sorted = picked.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(picked, sorted, "distinct nodes, in order");
    }

    #[test]
    fn the_seed_decides_the_choice() {
        let with = |seed| pick(&Target::Minority, &names(5), &mut Rng::new(seed));
        assert_eq!(with(42), with(42));
        let choices: std::collections::BTreeSet<Vec<String>> = (0..20).map(with).collect();
        assert!(choices.len() > 1, "20 seeds all chose {choices:?}");
    }

    #[test]
    fn named_nodes_and_roles_are_not_choices() {
        let mut rng = Rng::new(0);
        assert_eq!(
            pick(&Target::Node("n2".into()), &names(3), &mut rng),
            vec!["n2"]
        );
        assert_eq!(
            pick(
                &Target::Nodes(vec!["n3".into(), "n1".into()]),
                &names(3),
                &mut rng
            ),
            vec!["n3", "n1"]
        );
        assert!(pick(&Target::Role("stream-leader".into()), &names(3), &mut rng).is_empty());
    }
}
