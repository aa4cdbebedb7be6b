//! One run of a scenario, start to verdict: images, cluster, readiness, load with the fault
//! schedule and probes, final heal, drain, check, report, and teardown on every path (pass,
//! fail, error, panic, Ctrl-C, SIGTERM).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::check::verdict::Verdict;

use std::collections::BTreeMap;

use crate::cluster::backend::{ClusterBackend, ResolvedImage};
use crate::cluster::docker::DockerBackend;
use crate::cluster::Cluster;

use crate::families::{self, Broker, Observed};
use crate::fault_kind::FaultKind;
use crate::faults::{self, FaultCtx};
use crate::history::{self, Clock, Kind, Phase, Probe, ProbeKind, Record};
use crate::procstat;
use crate::progress::{LoadStatus, Progress};
use crate::report;
use crate::scenario::Scenario;
use crate::schedule::Scheduler;
use crate::workload::{self, Counters, LoadSpec};

/// How long the cluster's own health is awaited after the run.
const HEALTH_AFTER_TIMEOUT: Duration = Duration::from_secs(15);

pub struct RunOptions {
    pub out: Option<PathBuf>,
    pub seed: Option<u64>,
    /// Skip teardown after a completed run (not after an interrupted or failed one).
    pub keep: bool,
    /// A baseline (one result.json or a directory of them) the result is held against.
    pub baseline: Option<PathBuf>,
}

pub struct Outcome {
    pub verdict: Verdict,
    pub out_dir: PathBuf,
    /// The result in a few figures.
    pub headline: report::Headline,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Docker unreachable, an image that cannot be built, a cluster that never became ready.
    #[error("{0}")]
    Infrastructure(String),
    #[error("interrupted by {0}; the run's containers and network were removed")]
    Interrupted(&'static str),
}

fn infra(e: impl std::fmt::Display) -> RunError {
    RunError::Infrastructure(e.to_string())
}

fn utc_stamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    now.format(&fmt).unwrap_or_else(|_| "unknown-time".into())
}

/// A run's id (`fl-<utc>-<pid>`, the label on everything it creates) and its UTC stamp.
pub struct RunId {
    pub id: String,
    pub stamp: String,
}

impl RunId {
    pub fn new() -> RunId {
        let stamp = utc_stamp();
        let id = format!(
            "fl-{}-{:04x}",
            stamp.to_lowercase(),
            std::process::id() & 0xffff
        );
        RunId { id, stamp }
    }
}

impl Default for RunId {
    fn default() -> Self {
        RunId::new()
    }
}

/// Creates the output directory.
pub fn create_out_dir(dir: &std::path::Path) -> Result<(), RunError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| infra(format!("create output directory {}: {e}", dir.display())))
}

/// Runs `work` (which starts the cluster of run `run_id` and uses it) and removes the run's
/// Docker objects on every path: done, failed, panicked, Ctrl-C, SIGTERM. With `keep`, a run
/// that ended well leaves its cluster for inspection.
pub async fn guarded<T: Send + 'static>(
    backend: Arc<dyn ClusterBackend>,
    run_id: &str,
    progress: &Progress,
    keep: bool,
    work: impl std::future::Future<Output = Result<T, RunError>> + Send + 'static,
) -> Result<T, RunError> {
    use tokio::signal::unix::{signal, SignalKind};
    // Every handler is in place before the work starts, so no signal finds the default action
    // (which ends the process without teardown).
    let handler = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| infra(format!("install the {name} handler: {e}")))
    };
    let mut int = handler(SignalKind::interrupt(), "SIGINT")?;
    let mut term = handler(SignalKind::terminate(), "SIGTERM")?;
    let mut hup = handler(SignalKind::hangup(), "SIGHUP")?;
    let mut quit = handler(SignalKind::quit(), "SIGQUIT")?;
    // The work runs on a runtime of its own. Whatever it spawned (producers, acknowledgement
    // futures, readers, the probe, the status display, timed heals, client connections) is
    // stopped and awaited with that runtime before the run's objects are listed, however the
    // work ended: nothing of the run is still running during teardown.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("faultline-run")
        .build()
        .map_err(|e| infra(format!("start the run's runtime: {e}")))?;
    let mut work = runtime.spawn(work);
    let signalled = tokio::select! {
        joined = &mut work => Err(joined),
        _ = int.recv() => Ok("Ctrl-C"),
        _ = term.recv() => Ok("SIGTERM"),
        _ = hup.recv() => Ok("SIGHUP"),
        _ = quit.recv() => Ok("SIGQUIT"),
    };
    let result = match signalled {
        Err(joined) => match joined {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(RunError::Infrastructure(format!(
                "faultline panicked during the run: {}",
                workload::join_panic(e).unwrap_or_default()
            ))),
            Err(e) => Err(infra(e)),
        },
        Ok(name) => {
            // The work is stopped and awaited before the run's objects are listed.
            progress.phase(&format!("{name}: stopping the run"));
            work.abort();
            let _ = work.await;
            Err(RunError::Interrupted(name))
        }
    };
    stop_runtime(runtime, progress).await;
    if keep && result.is_ok() {
        progress.phase(&format!(
            "--keep: the cluster of run {run_id} is left running; `faultline clean` removes it"
        ));
        return result;
    }
    progress.phase("teardown");
    match backend.remove_run(Some(run_id)).await {
        Ok((c, n)) => {
            progress.note(&format!("removed {c} container(s) and {n} network(s)"));
            result
        }
        Err(e) => {
            let why = format!("teardown failed: {e}; run `faultline clean` to remove what is left");
            progress.note(&why);
            // A run that leaves objects behind is an infrastructure error whatever its verdict
            // (which is in result.json already).
            match result {
                Ok(_) => Err(RunError::Infrastructure(why)),
                Err(first) => Err(RunError::Infrastructure(format!("{first}; {why}"))),
            }
        }
    }
}

/// How long the run's blocking tasks (a Kafka client call, a peer tool) may take to end once
/// the run's runtime is shut down; its async tasks are dropped at once.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(10);

/// Shuts the run's runtime down and waits until its tasks are gone (blocking tasks up to
/// `RUNTIME_SHUTDOWN`). The shutdown blocks, so it runs on a blocking thread of the caller's
/// runtime.
async fn stop_runtime(runtime: tokio::runtime::Runtime, progress: &Progress) {
    let stopped =
        tokio::task::spawn_blocking(move || runtime.shutdown_timeout(RUNTIME_SHUTDOWN)).await;
    if let Err(e) = stopped {
        // Only a panic in a task's destructor ends here; the teardown still runs.
        progress.note(&format!("stopping the run's tasks: {e}"));
    }
}

/// The seed for a run's random choices: the one given, else the clock's nanoseconds.
pub fn seed_or_clock(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    })
}

/// What every kind of work on a cluster starts with: its id, its output directory (created),
/// its seed, the first progress line, and the backend.
pub struct Begun {
    pub run_id: String,
    pub stamp: String,
    pub out_dir: PathBuf,
    pub seed: u64,
    pub backend: Arc<dyn ClusterBackend>,
}

/// Begins work `what` ("run", "capacity") on `scenario`: the output directory is `out`, or
/// `<root>/<UTC stamp>-<scenario name>`.
pub async fn begin(
    what: &str,
    root: &str,
    scenario: &Scenario,
    out: Option<PathBuf>,
    seed: Option<u64>,
    progress: &Progress,
) -> Result<Begun, RunError> {
    let RunId { id: run_id, stamp } = RunId::new();
    let out_dir =
        out.unwrap_or_else(|| PathBuf::from(root).join(format!("{stamp}-{}", scenario.name)));
    create_out_dir(&out_dir)?;
    let seed = seed_or_clock(seed);
    progress.phase(&format!(
        "{what} {run_id}: scenario {} (seed {seed}), output in {}",
        scenario.name,
        out_dir.display()
    ));
    let backend: Arc<dyn ClusterBackend> = Arc::new(DockerBackend::connect().await.map_err(infra)?);
    Ok(Begun {
        run_id,
        stamp,
        out_dir,
        seed,
        backend,
    })
}

/// The load of `w` at `rate` for `duration`.
pub fn load_spec(w: &crate::scenario::Workload, rate: f64, duration: Duration) -> LoadSpec {
    LoadSpec {
        rate,
        duration,
        payload_bytes: w.payload_bytes,
        max_in_flight: w.max_in_flight,
        ack_timeout: w.ack_timeout,
    }
}

/// Opens the workload's `n` producers.
pub async fn open_producers(
    broker: &dyn Broker,
    n: u32,
) -> Result<Vec<Box<dyn crate::families::Producer>>, RunError> {
    let mut producers = Vec::new();
    for i in 0..n {
        producers.push(broker.producer(i).await.map_err(infra)?);
    }
    Ok(producers)
}

/// Runs a scenario. Whatever happens inside, the run's Docker objects are removed before this
/// returns.
pub async fn run(
    scenario: Scenario,
    opts: RunOptions,
    events: report::Events,
) -> Result<Outcome, RunError> {
    let progress = Arc::new(events.progress());
    let Begun {
        run_id,
        stamp,
        out_dir,
        seed,
        backend,
    } = begin(
        "run",
        "reports/runs",
        &scenario,
        opts.out.clone(),
        opts.seed,
        &progress,
    )
    .await?;

    let ctx = RunCtx {
        scenario,
        run_id: run_id.clone(),
        out_dir: out_dir.clone(),
        seed,
        started_at: stamp,
        baseline: opts.baseline.clone(),
        backend: backend.clone(),
        progress: progress.clone(),
        events,
    };
    let headline = guarded(backend, &run_id, &progress, opts.keep, ctx.execute()).await?;
    Ok(Outcome {
        verdict: headline.verdict,
        out_dir,
        headline,
    })
}

/// A cluster started for a run or a capacity search, its broker ready.
pub struct Session {
    pub run_id: String,
    pub backend: Arc<dyn ClusterBackend>,
    pub cluster: Cluster,
    pub images: BTreeMap<String, ResolvedImage>,
    /// The fault sidecars' image, when a fault needs one.
    pub tools_image: Option<String>,
    pub broker: Arc<dyn Broker>,
}

impl Session {
    /// Prepares the images, starts the scenario's topology (made ready for the fault kinds
    /// `kinds`), and waits for the cluster's own health and the workload's stream or topic.
    pub async fn start(
        s: &Scenario,
        kinds: &[FaultKind],
        run_id: &str,
        backend: Arc<dyn ClusterBackend>,
        out_dir: &std::path::Path,
        progress: &Progress,
    ) -> Result<Session, RunError> {
        progress.phase("preparing images");
        let build_log = out_dir.join("image-build.log");
        let images = backend
            .images(&s.topology, progress, &build_log)
            .await
            .map_err(infra)?;
        let tools_image = if kinds.iter().any(|k| k.needs_tools()) {
            Some(
                backend
                    .tools_image(&s.topology, progress, &build_log)
                    .await
                    .map_err(infra)?,
            )
        } else {
            None
        };
        let (topology, notes) =
            faults::prepare_topology(kinds, &s.topology, &images).map_err(infra)?;
        for note in notes {
            progress.note(&note);
        }
        progress.phase(&format!(
            "starting cluster ({} nodes from {})",
            s.topology.services.len(),
            s.topology.file.display()
        ));
        let cluster = backend
            .start_cluster(run_id, &topology, &images, s.ready_timeout, progress)
            .await
            .map_err(infra)?;
        let broker: Arc<dyn Broker> = Arc::from(
            s.workload
                .settings
                .connect(&s.topology, cluster.endpoints()),
        );
        progress.phase("waiting for the cluster's own health");
        let ready_started = Instant::now();
        broker
            .prepare(s.ready_timeout, progress)
            .await
            .map_err(|e| {
                infra(format!(
                    "{e} (within cluster.ready_timeout {:?})",
                    s.ready_timeout
                ))
            })?;
        progress.note(&format!(
            "ready in {:.1} s",
            ready_started.elapsed().as_secs_f64()
        ));
        Ok(Session {
            run_id: run_id.to_string(),
            backend,
            cluster,
            images,
            tools_image,
            broker,
        })
    }

    /// What faults act through on this cluster.
    pub fn fault_ctx(&self, seed: u64) -> FaultCtx {
        FaultCtx {
            seed,
            backend: self.backend.clone(),
            run_id: self.run_id.clone(),
            cluster: Arc::new(self.cluster.clone()),
            tools_image: self.tools_image.clone(),
            client_port: self.broker.client_port(),
        }
    }
}

struct RunCtx {
    scenario: Scenario,
    run_id: String,
    out_dir: PathBuf,
    seed: u64,
    started_at: String,
    baseline: Option<PathBuf>,
    backend: Arc<dyn ClusterBackend>,
    progress: Arc<Progress>,
    /// Where the checked result goes (the reporters).
    events: report::Events,
}

fn phase_record(phase: Phase, t_us: u64) -> Record {
    Record::phase(phase, t_us)
}

/// Lines of a node's output kept when it exited before the end of the run.
const EXITED_LOG_LINES: usize = 200;

/// The nodes whose container has exited, each as "r1 exited (code 1); its output ends: ...",
/// with its last output lines written to `<out>/logs/<node>.log`: why a cluster that is not
/// healthy after the run lacks a node.
async fn exited_nodes(session: &Session, out_dir: &Path) -> Vec<String> {
    let mut said = Vec::new();
    for node in session.cluster.members() {
        let Ok(Some((code, output))) = session
            .backend
            .exited(&node.container, &node.name, EXITED_LOG_LINES)
            .await
        else {
            continue;
        };
        let last: Vec<&str> = output
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let tail: Vec<String> = last
            .iter()
            .rev()
            .take(2)
            .rev()
            .map(|l| l.chars().take(240).collect())
            .collect();
        let dir = out_dir.join("logs");
        let file = dir.join(format!("{}.log", node.name));
        let kept = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&file, &output))
            .map_or_else(
                |e| format!(" (its output could not be kept: {e})"),
                |_| format!(" (last {EXITED_LOG_LINES} lines in logs/{}.log)", node.name),
            );
        said.push(format!(
            "{} exited (code {code}); its output ends: {}{kept}",
            node.name,
            tail.join(" | ")
        ));
    }
    said
}

impl RunCtx {
    async fn execute(self) -> Result<report::Headline, RunError> {
        let clock = Clock::start();
        let s = &self.scenario;
        let progress = &self.progress;

        let kinds: Vec<_> = s.faults.iter().map(|f| f.kind).collect();
        let session = Session::start(
            s,
            &kinds,
            &self.run_id,
            self.backend.clone(),
            &self.out_dir,
            progress,
        )
        .await?;
        let broker = session.broker.clone();

        let (sink, writer) = history::open(&self.out_dir.join(history::FILE))
            .map_err(|e| infra(format!("open history: {e}")))?;
        // A history that cannot be written (a full disk) stops the run at once: nothing after
        // it could be checked.
        let history_failed = writer.failed();
        let measured = async {
            sink.record(report::start_record(&report::RunStart::new(
                s,
                &self.run_id,
                self.seed,
                &self.started_at,
                &session.cluster,
                &session.images,
            )));
            if !writer.on_disk(1, Duration::from_secs(5)).await {
                return Err(infra(
                    "the history's start record did not reach the disk within 5 s",
                ));
            }
            let producers = open_producers(broker.as_ref(), s.workload.producers).await?;

            // Probes poll from now until the drain ends.
            let mut probe = broker.probe();
            let probe_sink = sink.clone();
            let interval = s.probe_interval;
            let probe_task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    for o in probe.observe(&clock).await {
                        probe_sink.record(observation_record(o));
                    }
                }
            });

            let counters = Arc::new(Counters::default());
            let spec = load_spec(&s.workload, s.workload.rate, s.workload.duration);
            broker.start_readers(&sink, &clock).await.map_err(infra)?;
            let load_start = Instant::now() + Duration::from_millis(200);
            broker.load_starts(load_start);
            progress.phase(&format!(
                "baseline: {} msg/s from {} producer(s) for {:?}",
                s.workload.rate, s.workload.producers, s.workload.duration
            ));
            sink.record(phase_record(Phase::Baseline, clock.us(load_start)));
            let cpu_start = procstat::own_cpu_seconds();
            let load = start_load(
                producers, spec, load_start, clock, &sink, &counters, progress,
            );

            // The fault schedule.
            let mut scheduler = Scheduler::new(
                session.fault_ctx(self.seed),
                broker.clone(),
                sink.clone(),
                clock,
                progress.clone(),
                self.seed,
            );
            scheduler.run(&s.faults, load_start).await;

            let generated = load.generator.await.map_err(infra)?;
            let mut panics: Vec<String> = generated.err().into_iter().collect();
            panics.extend(scheduler.panics().iter().cloned());
            panics.extend(stop_task(load.status, "the status display").await);
            let cpu_used = match (cpu_start, procstat::own_cpu_seconds()) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            };
            let load_end = load_start + s.workload.duration;
            sink.record(phase_record(Phase::Drain, clock.us(load_end)));
            progress.phase("load finished; healing every fault still in effect");
            scheduler.heal_all().await;
            drop(scheduler);

            progress.phase(&format!(
                "draining: reading everything the cluster holds for the workload (timeout {:?})",
                s.workload.drain_timeout
            ));
            let drain = broker
                .drain(&sink, &clock, s.workload.drain_timeout)
                .await
                .map_err(infra)?;
            progress.note(&format!(
                "received {} message(s){}",
                drain.received,
                if drain.complete {
                    ""
                } else {
                    " before the drain timeout"
                }
            ));
            // Whether the cluster came back whole is a finding of its own (a node can heal from
            // the fault and stay degraded), so it is asked, bounded, and reported.
            progress.phase(&format!(
                "asking the cluster's own health after the run (up to {HEALTH_AFTER_TIMEOUT:?})"
            ));
            let health_after = match broker.wait_healthy(HEALTH_AFTER_TIMEOUT).await {
                Ok(()) => {
                    progress.note("cluster healthy");
                    report::HealthAfter {
                        healthy: true,
                        detail: None,
                    }
                }
                Err(e) => {
                    progress.note(&format!("cluster NOT healthy: {e}"));
                    let mut detail = e.to_string();
                    for exited in exited_nodes(&session, &self.out_dir).await {
                        progress.note(&exited);
                        detail += &format!("; {exited}");
                    }
                    report::HealthAfter {
                        healthy: false,
                        detail: Some(detail),
                    }
                }
            };
            panics.extend(stop_task(probe_task, "the probe").await);
            if !panics.is_empty() {
                // Not a measurement: the load, the probes or the schedule were not what the
                // scenario said. The history stays for inspection.
                return Err(RunError::Infrastructure(format!(
                    "faultline panicked during the run: {}",
                    panics.join("; ")
                )));
            }
            sink.record(report::end_record(&report::RunEnd {
                drain,
                health_after,
                stall_us: counters.stall_us.load(Ordering::Relaxed),
                harness_cpu_s: cpu_used,
            }));
            drop(sink);
            let lines = writer
                .finish()
                .await
                .map_err(|e| infra(format!("write history: {e}")))?;

            // The result comes from the history alone, as `faultline report` makes it again.
            progress.phase(&format!("checking {lines} history records"));
            let mut result = report::recheck(&self.out_dir.join(history::FILE)).map_err(infra)?;
            if let Some(baseline) = &self.baseline {
                progress.phase(&format!(
                    "holding the result against the baseline {}",
                    baseline.display()
                ));
                report::baseline::gate(&mut result, baseline).map_err(infra)?;
            }
            let headline = report::Headline::of(&result);
            self.events.finished(result, &self.out_dir);
            Ok(headline)
        };
        tokio::select! {
            done = measured => done,
            why = history_failed => Err(infra(format!(
                "the history could not be written ({why}): the run stopped; what reached {} can still be checked with `faultline report`",
                self.out_dir.display()
            ))),
        }
    }
}

/// The load generator and its live status line, started together.
pub struct Load {
    pub generator: tokio::task::JoinHandle<Result<(), String>>,
    /// Runs until it is stopped.
    pub status: tokio::task::JoinHandle<()>,
}

/// Starts the load `spec` at `start` from `producers`, and its status line.
pub fn start_load(
    producers: Vec<Box<dyn families::Producer>>,
    spec: LoadSpec,
    start: Instant,
    clock: Clock,
    sink: &history::HistorySink,
    counters: &Arc<Counters>,
    progress: &Arc<Progress>,
) -> Load {
    let status = tokio::spawn(status_loop(
        counters.clone(),
        start,
        spec.duration,
        spec.rate,
        progress.clone(),
    ));
    let generator = tokio::spawn(workload::run(
        producers,
        spec,
        start,
        clock,
        sink.clone(),
        counters.clone(),
    ));
    Load { generator, status }
}

/// Stops a task that runs until it is stopped and returns its panic, if it ended in one.
async fn stop_task(task: tokio::task::JoinHandle<()>, what: &str) -> Option<String> {
    task.abort();
    match task.await {
        Err(e) => workload::join_panic(e).map(|msg| format!("{what} panicked: {msg}")),
        Ok(()) => None,
    }
}

fn observation_record(o: families::Observation) -> Record {
    let (event, subject, role, detail) = match o.what {
        Observed::PeerDown { peer, signal } => {
            (ProbeKind::PeerDown, Some(peer), None, Some(signal))
        }
        Observed::PeerUp { peer, signal } => (ProbeKind::PeerUp, Some(peer), None, Some(signal)),
        Observed::Leader { role, leader } => (ProbeKind::Leader, leader, Some(role), None),
        Observed::Unreachable { detail } => (ProbeKind::Unreachable, None, None, Some(detail)),
        Observed::Reachable => (ProbeKind::Reachable, None, None, None),
        Observed::Restarted { detail } => (ProbeKind::Restarted, None, None, Some(detail)),
    };
    Record::Probe(Probe {
        kind: Kind::Ok,
        t_done: o.t_us,
        observer: o.observer,
        event,
        subject,
        role,
        detail,
    })
}

/// Emits the load's counters once a second while it runs.
pub async fn status_loop(
    counters: Arc<Counters>,
    start: Instant,
    duration: Duration,
    rate: f64,
    progress: Arc<Progress>,
) {
    tokio::time::sleep_until(start.into()).await;
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let acked = counters.acked.load(Ordering::Relaxed);
        let [p50, p99] = counters.latency.take_quantiles([0.5, 0.99]);
        progress.load(LoadStatus {
            elapsed_s: start.elapsed().as_secs_f64(),
            duration_s: duration.as_secs_f64(),
            acked,
            acked_per_s: acked - last,
            failed: counters.failed.load(Ordering::Relaxed),
            unknown: counters.unknown.load(Ordering::Relaxed),
            in_flight: counters.in_flight(),
            rate,
            latency_p50_ms: p50,
            latency_p99_ms: p99,
        });
        last = acked;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::backend::{BackendError, Leftovers, Share};
    use crate::cluster::compose::Topology;
    use std::path::Path;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;

    /// A backend that only answers teardown, and notes whether a task the work spawned was
    /// still alive when teardown began.
    struct TeardownOnly {
        alive: Arc<AtomicBool>,
        alive_at_teardown: Mutex<Option<bool>>,
    }

    /// Cleared when the task that owns it is dropped (ended or stopped).
    struct Alive(Arc<AtomicBool>);
    impl Drop for Alive {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }

    #[async_trait::async_trait]
    impl ClusterBackend for TeardownOnly {
        async fn images(
            &self,
            _: &Topology,
            _: &Progress,
            _: &Path,
        ) -> Result<BTreeMap<String, ResolvedImage>, BackendError> {
            unreachable!()
        }
        async fn tools_image(
            &self,
            _: &Topology,
            _: &Progress,
            _: &Path,
        ) -> Result<String, BackendError> {
            unreachable!()
        }
        async fn start_cluster(
            &self,
            _: &str,
            _: &Topology,
            _: &BTreeMap<String, ResolvedImage>,
            _: Duration,
            _: &Progress,
        ) -> Result<Cluster, BackendError> {
            unreachable!()
        }
        async fn state(&self, _: &str, _: &str) -> Result<(bool, bool), BackendError> {
            unreachable!()
        }
        async fn start(&self, _: &str, _: &str) -> Result<(), BackendError> {
            unreachable!()
        }
        async fn cpu_seconds(&self, _: &str, _: &str) -> Result<Option<f64>, BackendError> {
            unreachable!()
        }
        async fn stop(&self, _: &str, _: &str, _: i32) -> Result<(), BackendError> {
            unreachable!()
        }
        async fn kill(&self, _: &str, _: &str, _: &str) -> Result<(), BackendError> {
            unreachable!()
        }
        async fn pause(&self, _: &str, _: &str) -> Result<(), BackendError> {
            unreachable!()
        }
        async fn unpause(&self, _: &str, _: &str) -> Result<(), BackendError> {
            unreachable!()
        }
        async fn process_states(&self, _: &str, _: &str) -> Result<Vec<String>, BackendError> {
            unreachable!()
        }
        async fn exec(&self, _: &str, _: &[&str], _: &str) -> Result<(i64, String), BackendError> {
            unreachable!()
        }
        async fn write_files(
            &self,
            _: &str,
            _: &[(String, String)],
            _: &str,
        ) -> Result<(), BackendError> {
            unreachable!()
        }
        async fn get_archive(
            &self,
            _: &str,
            _: &str,
            _: u64,
            _: &str,
        ) -> Result<Vec<u8>, BackendError> {
            unreachable!()
        }
        async fn put_archive(
            &self,
            _: &str,
            _: &str,
            _: Vec<u8>,
            _: &str,
        ) -> Result<(), BackendError> {
            unreachable!()
        }
        async fn start_sidecar(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: &str,
            _: &str,
            _: Share,
        ) -> Result<String, BackendError> {
            unreachable!()
        }
        async fn remove_container(&self, _: &str) -> Result<(), BackendError> {
            unreachable!()
        }
        async fn remove_run(&self, _: Option<&str>) -> Result<(usize, usize), BackendError> {
            *self.alive_at_teardown.lock().unwrap() = Some(self.alive.load(Ordering::SeqCst));
            Ok((0, 0))
        }
        async fn leftovers(&self, _: Option<&str>) -> Result<Leftovers, BackendError> {
            unreachable!()
        }
    }

    /// A task the work spawned and never stopped (a timed heal, a reader, an acknowledgement
    /// future, a plain blocking call) is stopped and gone before teardown lists the run's
    /// objects.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_work_s_tasks_are_gone_before_teardown() {
        for blocking in [false, true] {
            let alive = Arc::new(AtomicBool::new(true));
            let backend = Arc::new(TeardownOnly {
                alive: alive.clone(),
                alive_at_teardown: Mutex::new(None),
            });
            let owned = Alive(alive.clone());
            let work = async move {
                if blocking {
                    tokio::task::spawn_blocking(move || {
                        let _owned = owned;
                        std::thread::sleep(Duration::from_millis(300));
                    });
                } else {
                    tokio::spawn(async move {
                        let _owned = owned;
                        std::future::pending::<()>().await
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, RunError>(())
            };
            let progress = Progress::new(|_| {});
            guarded(backend.clone(), "r", &progress, false, work)
                .await
                .expect("the work ends well");
            assert_eq!(
                *backend.alive_at_teardown.lock().unwrap(),
                Some(false),
                "a {} task of the work was still alive at teardown",
                if blocking { "blocking" } else { "async" }
            );
        }
    }
}
