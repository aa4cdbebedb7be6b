//! `faultline capacity` on a cluster: the N search, then (with the `n_minus_1` fault held) the
//! N-1 search, both on one cluster; then the failover run at the planned load, with the
//! scenario's faults, on a fresh cluster (the search's overload steps leave backlogs behind
//! that the failover run must not inherit).
//!
//! Each step is an open-loop fixed-rate load of `warmup + hold` with a history of its own
//! (`steps/<condition>-<nn>-<rate>.bin`); its figures come from the publishes due in the hold,
//! with the harness's CPU, the generator's stall over the hold and each broker node's CPU
//! (Docker's stats) read at the hold's edges.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::measure::{self, Harness, Hold};
use super::report::{
    bound_words, condition_name, CapacityReport, Condition, FailoverRun, MaxRate, Step,
};
use super::search::{judge, Bound, RateSearch};
use crate::cluster::backend::ClusterBackend;
use crate::history::{self, Clock, Phase, Record};
use crate::procstat;
use crate::progress::Progress;
use crate::report;
use crate::run::{self, RunError, RunOptions, Session};
use crate::scenario::{CapacitySpec, FaultSpec, Scenario};
use crate::schedule::Scheduler;
use crate::workload::Counters;

pub struct CapacityOptions {
    /// Output directory [default: reports/capacity/<UTC stamp>-<scenario name>/].
    pub out: Option<PathBuf>,
    pub seed: Option<u64>,
    /// Skip the failover run.
    pub no_failover: bool,
}

pub struct CapacityOutcome {
    pub report: CapacityReport,
    pub out_dir: PathBuf,
}

fn infra(e: impl std::fmt::Display) -> RunError {
    RunError::Infrastructure(e.to_string())
}

/// How long the N-1 search waits for the cluster to take a write again once the fault is
/// held (a new leader elected), before its first step.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the capacity search of a scenario with a `capacity:` section. The search's cluster,
/// and the failover run's, are removed before this returns, whatever happens.
pub async fn run(
    scenario: Scenario,
    opts: CapacityOptions,
    events: report::Events,
) -> Result<CapacityOutcome, RunError> {
    let Some(spec) = scenario.capacity.clone() else {
        return Err(infra(format!(
            "scenario {} has no capacity: section",
            scenario.name
        )));
    };
    let progress = Arc::new(events.progress());
    let run::Begun {
        run_id,
        out_dir,
        seed,
        backend,
        ..
    } = run::begin(
        "capacity",
        "reports/capacity",
        &scenario,
        opts.out.clone(),
        opts.seed,
        &progress,
    )
    .await?;
    run::create_out_dir(&out_dir.join("steps"))?;
    let searcher = Searcher {
        scenario: scenario.clone(),
        spec: spec.clone(),
        run_id: run_id.clone(),
        backend: backend.clone(),
        out_dir: out_dir.clone(),
        progress: progress.clone(),
        seed,
    };
    let found = run::guarded(backend, &run_id, &progress, false, searcher.search()).await?;

    let mut report = CapacityReport::new(
        &scenario.name,
        found.max_rate.clone(),
        spec.planned_peak,
        found.steps,
    );
    report.slo_ms = spec
        .slo
        .latency
        .iter()
        .map(|(p, d)| (p.key().to_string(), d.as_secs_f64() * 1000.0))
        .collect();
    report.held_fault = found.held_fault;
    // What is written so far survives a failover run that fails to start.
    write_reports(&report, &out_dir)?;

    let basis = found.max_rate.n_minus_1.or(found.max_rate.n);
    match basis {
        _ if opts.no_failover => progress.note("--no-failover: no failover run"),
        _ if scenario.faults.is_empty() => {
            progress.note("the scenario has no faults: no failover run")
        }
        None => progress.note("no step passed: no planned load for a failover run"),
        Some(max) => {
            let load = (max * spec.failover_load).max(1.0);
            progress.phase(&format!(
                "failover run: the scenario's faults at {load:.0} msg/s ({:.0}% of {max:.0}), on a fresh cluster",
                spec.failover_load * 100.0
            ));
            let mut s = scenario.clone();
            s.workload.rate = load;
            // During the failover nothing is acknowledged for seconds: an in-flight cap below
            // what the load sends within one acknowledgement timeout would stall the generator
            // and void the run (the load would not be the planned one).
            let needed = (load * s.workload.ack_timeout.as_secs_f64() * 1.25).ceil() as usize;
            if needed > s.workload.max_in_flight {
                progress.note(&format!(
                    "workload.max_in_flight raised from {} to {needed} for the failover run: {load:.0} msg/s for one ack_timeout ({:?}) and a quarter more",
                    s.workload.max_in_flight, s.workload.ack_timeout
                ));
                s.workload.max_in_flight = needed;
            }
            let dir = "failover";
            let outcome = run::run(
                s,
                RunOptions {
                    out: Some(out_dir.join(dir)),
                    seed: Some(seed),
                    keep: false,
                    baseline: None,
                },
                events,
            )
            .await?;
            report.failover = Some(FailoverRun {
                load,
                dir: dir.into(),
                result: outcome.headline,
            });
            write_reports(&report, &out_dir)?;
        }
    }
    Ok(CapacityOutcome { report, out_dir })
}

/// capacity.json, capacity.md, capacity.csv and capacity.html.
pub fn write_reports(report: &CapacityReport, dir: &Path) -> Result<(), RunError> {
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| infra(format!("write {}: {e}", dir.join(name).display())))
    };
    let json = serde_json::to_string_pretty(report).map_err(infra)?;
    write("capacity.json", json + "\n")?;
    write("capacity.md", report.markdown())?;
    write("capacity.csv", report.csv())?;
    write("capacity.html", super::html::render(report))?;
    Ok(())
}

/// What the searches found.
struct Found {
    max_rate: MaxRate,
    steps: Vec<Step>,
    held_fault: Option<String>,
}

struct Searcher {
    scenario: Scenario,
    spec: CapacitySpec,
    run_id: String,
    backend: Arc<dyn ClusterBackend>,
    out_dir: PathBuf,
    progress: Arc<Progress>,
    seed: u64,
}

impl Searcher {
    async fn search(self) -> Result<Found, RunError> {
        let held = self.spec.n_minus_1.as_ref().map(|h| FaultSpec {
            at: Duration::ZERO,
            kind: h.kind,
            target: h.target.clone(),
            heal_after: None,
            settings: h.settings.clone(),
            every: None,
            jitter: None,
            times: 1,
            pos: h.pos,
        });
        let kinds: Vec<_> = held.iter().map(|f| f.kind).collect();
        let session = Session::start(
            &self.scenario,
            &kinds,
            &self.run_id,
            self.backend.clone(),
            &self.out_dir,
            &self.progress,
        )
        .await?;
        let mut steps = Vec::new();
        let (n, n_bound) = self.one_search(&session, Condition::N, &mut steps).await?;
        let mut max_rate = MaxRate {
            n,
            n_bound: bound_words(n_bound),
            ..Default::default()
        };
        let Some(held) = held else {
            self.progress
                .note("the scenario's capacity section holds no n_minus_1 fault: no N-1 search");
            return Ok(Found {
                max_rate,
                steps,
                held_fault: None,
            });
        };

        // The N-1 condition: the fault injected once and held for every N-1 step.
        let (sink, writer) = history::open(&self.out_dir.join("n-1-fault.bin"))
            .map_err(|e| infra(format!("open the N-1 fault's history: {e}")))?;
        let clock = Clock::start();
        let mut scheduler = Scheduler::new(
            session.fault_ctx(self.seed),
            session.broker.clone(),
            sink.clone(),
            clock,
            self.progress.clone(),
            self.seed,
        );
        self.progress.phase(&format!(
            "N-1: {} {} held for the N-1 search",
            held.kind.name(),
            held.target
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default()
        ));
        scheduler
            .run(std::slice::from_ref(&held), Instant::now())
            .await;
        let result = if scheduler.in_effect() == 0 {
            Err(infra(format!(
                "the N-1 fault ({}) could not be applied; n-1-fault.bin says why",
                held.kind.name()
            )))
        } else {
            self.settle(&session).await?;
            self.one_search(&session, Condition::NMinus1, &mut steps)
                .await
        };
        self.progress
            .phase("N-1 search done: healing the held fault");
        scheduler.heal_all().await;
        drop(scheduler);
        drop(sink);
        let _ = writer.finish().await;
        let (n1, n1_bound) = result?;
        max_rate.n_minus_1 = n1;
        max_rate.n_minus_1_bound = bound_words(n1_bound);
        let held_fault = history::read(&self.out_dir.join("n-1-fault.bin"))
            .ok()
            .and_then(|records| {
                records.flatten().find_map(|r| match r {
                    Record::Fault(f) if f.kind == history::Kind::Ok => Some(format!(
                        "{} {}",
                        f.fault_kind.unwrap_or_default(),
                        f.target.unwrap_or_default()
                    )),
                    _ => None,
                })
            });
        Ok(Found {
            max_rate,
            steps,
            held_fault,
        })
    }

    /// Waits until the cluster takes a write again under the held fault (one publish
    /// acknowledged), so the first N-1 step does not measure the election.
    async fn settle(&self, session: &Session) -> Result<(), RunError> {
        self.progress
            .phase("N-1: waiting until the cluster takes a write again");
        let started = Instant::now();
        let mut producer = session.broker.producer(u32::MAX).await.map_err(infra)?;
        let mut last = String::new();
        while started.elapsed() < SETTLE_TIMEOUT {
            let payload = crate::payload::encode_payload(u32::MAX, 0, 16);
            let done =
                crate::families::send_one(producer.as_mut(), payload, Duration::from_secs(2)).await;
            match done {
                Some(crate::families::Completion::Ok { .. }) => {
                    self.progress.note(&format!(
                        "a write was acknowledged {:.1} s after the fault",
                        started.elapsed().as_secs_f64()
                    ));
                    return Ok(());
                }
                Some(other) => last = format!("{other:?}"),
                None => last = "no acknowledgement within 2 s".into(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(infra(format!(
            "the cluster took no write within {SETTLE_TIMEOUT:?} of the N-1 fault (last: {last})"
        )))
    }

    /// One search: steps until the search ends; its maximum and what bounded it.
    async fn one_search(
        &self,
        session: &Session,
        condition: Condition,
        steps: &mut Vec<Step>,
    ) -> Result<(Option<f64>, Option<Bound>), RunError> {
        let mut search = RateSearch::new(self.spec.search);
        let mut index = 0;
        while let Some(rate) = search.next_rate() {
            index += 1;
            let step = self.step(session, condition, index, rate).await?;
            let verdict = super::search::StepVerdict {
                pass: step.pass,
                valid: step.valid,
                reasons: step.reasons.clone(),
            };
            search.record(rate, &verdict);
            steps.push(step);
        }
        let name = condition_name(condition);
        match search.max_passed() {
            Some(max) => self.progress.note(&format!(
                "{name}: {max:.0} msg/s within the SLO ({})",
                bound_words(search.bound()).unwrap_or_default()
            )),
            None => self.progress.note(&format!("{name}: no step held the SLO")),
        }
        Ok((search.max_passed(), search.bound()))
    }

    /// One open-loop step at `rate`; its figures over the hold.
    async fn step(
        &self,
        session: &Session,
        condition: Condition,
        index: usize,
        rate: f64,
    ) -> Result<Step, RunError> {
        let s = &self.scenario;
        let (warmup, hold) = (self.spec.warmup, self.spec.hold);
        let file = self.out_dir.join("steps").join(format!(
            "{}-{index:02}-{rate:.0}.bin",
            condition_name(condition)
        ));
        self.progress.phase(&format!(
            "{} step {index}: {rate:.0} msg/s ({warmup:?} warm-up, {hold:?} measured)",
            condition_name(condition)
        ));
        let (sink, writer) =
            history::open(&file).map_err(|e| infra(format!("open {}: {e}", file.display())))?;
        let clock = Clock::start();
        let producers = run::open_producers(session.broker.as_ref(), s.workload.producers).await?;
        let counters = Arc::new(Counters::default());
        let spec = run::load_spec(&s.workload, rate, warmup + hold);
        let load_start = Instant::now() + Duration::from_millis(200);
        sink.record(Record::phase(Phase::Baseline, clock.us(load_start)));
        let load = run::start_load(
            producers,
            spec,
            load_start,
            clock,
            &sink,
            &counters,
            &self.progress,
        );
        let (hold_from, hold_to) = (load_start + warmup, load_start + warmup + hold);
        tokio::time::sleep_until(hold_from.into()).await;
        let before = self.sample(session, &counters).await;
        tokio::time::sleep_until(hold_to.into()).await;
        let after = self.sample(session, &counters).await;
        load.generator
            .await
            .map_err(infra)?
            .map_err(|p| infra(format!("the load generator panicked: {p}")))?;
        load.status.abort();
        sink.record(Record::phase(Phase::Drain, clock.us(hold_to)));
        drop(sink);
        writer
            .finish()
            .await
            .map_err(|e| infra(format!("write {}: {e}", file.display())))?;

        let records = history::read(&file)
            .map_err(|e| infra(format!("read {}: {e}", file.display())))?
            .map_while(Result::ok);
        let harness = Harness {
            cpu_s: after.cpu_s - before.cpu_s,
            cores: std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
            stall_us: after.stall_us - before.stall_us,
        };
        let m = measure::measure(
            records,
            Hold {
                from_us: clock.us(hold_from),
                to_us: clock.us(hold_to),
            },
            harness,
        );
        let verdict = judge(&self.spec.slo, &m);
        let mut step = Step::new(condition, rate, &m, &verdict);
        step.broker_cpu_cores = after
            .broker_cpu_s
            .iter()
            .filter_map(|(node, (b, t_b))| {
                let (a, t_a) = before.broker_cpu_s.get(node)?;
                let secs = t_b.duration_since(*t_a).as_secs_f64();
                (secs > 0.0).then(|| (node.clone(), (b - a) / secs))
            })
            .collect();
        step.machine_cpu_share = match (before.machine, after.machine) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
        self.progress.note(&format!(
            "{}: achieved {:.0}/s of {:.0}/s, p50 {} p99 {} max {}, {} error(s), harness CPU {:.0}%, brokers {:.2} cores, machine {}{}",
            match (step.valid, step.pass) {
                (false, _) => "INVALID",
                (true, true) => "pass",
                (true, false) => "FAIL",
            },
            step.achieved,
            step.offered,
            ms(step.p50_ms),
            ms(step.p99_ms),
            ms(step.max_ms),
            step.errors,
            step.harness_cpu_share * 100.0,
            step.broker_cpu_cores.values().sum::<f64>(),
            step.machine_cpu_share
                .map_or("-".to_string(), |m| format!("{:.0}%", m * 100.0)),
            if step.reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", step.reasons.join("; "))
            }
        ));
        Ok(step)
    }

    /// The harness's CPU, the generator's stall and each running node's CPU, now.
    async fn sample(&self, session: &Session, counters: &Counters) -> Sample {
        let mut broker_cpu_s = BTreeMap::new();
        for node in &session.cluster.nodes {
            if let Ok(Some(cpu)) = self.backend.cpu_seconds(&node.container, &node.name).await {
                broker_cpu_s.insert(node.name.clone(), (cpu, Instant::now()));
            }
        }
        Sample {
            machine: machine_cpu(),
            cpu_s: procstat::own_cpu_seconds().unwrap_or(0.0),
            stall_us: counters.stall_us.load(Ordering::Relaxed),
            broker_cpu_s,
        }
    }
}

struct Sample {
    /// The whole machine's busy and total CPU time (/proc/stat, in ticks).
    machine: Option<(u64, u64)>,
    cpu_s: f64,
    stall_us: u64,
    /// Per node: CPU seconds since it started, and when they were read.
    broker_cpu_s: BTreeMap<String, (f64, Instant)>,
}

/// The machine's busy and total CPU time since boot, in ticks (the first line of /proc/stat:
/// user nice system idle iowait irq softirq steal; idle and iowait are not busy).
fn machine_cpu() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    Some((total - v[3] - v[4], total))
}
