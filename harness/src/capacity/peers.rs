//! faultline's generator against the tool a user would reach for instead, in one run on the
//! same cluster (`faultline bench peers <scenario>`): the peer publishes a number of messages as
//! fast as the cluster acknowledges them; faultline then offers the same number open-loop at
//! the peer's rate and at twice it. Each side's figures are its acknowledged messages per
//! second and per CPU-second of its own process (the peer's from the kernel's accounting of
//! the child, faultline's from /proc), printed side by side with their ratio. What faultline
//! runs in its process for the cluster rather than for the load (Kafka's client gateway,
//! which carries the peer's traffic as well) is measured on its own thread, shown for both
//! sides and kept out of faultline's figure.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capacity::threads;
use crate::cluster::backend::ClusterBackend;
use crate::cluster::docker::DockerBackend;
use crate::families::{ClientCounters, PeerCommand};
use crate::history::{self, Clock};
use crate::procstat;
use crate::progress::Progress;
use crate::run::{self, RunError, RunId, Session};
use crate::scenario::Scenario;
use crate::workload::{self, Counters};

fn infra(e: impl std::fmt::Display) -> RunError {
    RunError::Infrastructure(e.to_string())
}

/// One side's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Figures {
    pub who: String,
    pub messages: u64,
    pub acknowledged: u64,
    /// From the first send to the last acknowledgement.
    pub seconds: f64,
    /// CPU the tool's process used (user + system); for faultline, without the
    /// infrastructure below.
    pub cpu_s: f64,
    /// CPU the in-process infrastructure (Kafka's gateway) used while this side ran: it
    /// carried this side's traffic and is neither tool's own.
    pub infrastructure_cpu_s: Option<f64>,
    /// The client library's own counters over this side's run (librdkafka's statistics).
    pub client: Option<ClientCounters>,
    /// CPU seconds per thread name of the tool's process, sampled while it ran (a lower
    /// bound per thread: see [`threads`]), highest first.
    pub threads: Vec<(String, f64)>,
    /// The rate it was asked to offer (faultline only).
    pub offered: Option<f64>,
    /// Messages the broker refused and messages whose fate is unknown (timed out...):
    /// faultline only (a peer reports its acknowledged count).
    pub failed: Option<u64>,
    pub unknown: Option<u64>,
}

impl Figures {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.acknowledged as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// " (the in-process gateway beside it: 0.42 CPU-s)" when an in-process infrastructure carried the traffic.
    pub fn infrastructure(&self) -> String {
        self.infrastructure_cpu_s
            .map(|c| format!(" (the in-process gateway beside it: {c:.2} CPU-s)"))
            .unwrap_or_default()
    }

    pub fn per_cpu_second(&self) -> f64 {
        if self.cpu_s > 0.0 {
            self.acknowledged as f64 / self.cpu_s
        } else {
            0.0
        }
    }
}

/// CPU seconds used by this process's children that have been waited for.
fn children_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the struct it is given and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    if rc != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A file of `count` lines of `bytes` each (the newline included): what a peer reading its
/// standard input publishes.
fn lines_file(dir: &std::path::Path, count: u64, bytes: usize) -> Result<std::fs::File, RunError> {
    use std::io::Write;
    let path = dir.join("peer-input.txt");
    let mut line = vec![b'.'; bytes.max(1) - 1];
    line.push(b'\n');
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(infra)?);
    for _ in 0..count {
        out.write_all(&line).map_err(infra)?;
    }
    out.flush().map_err(infra)?;
    std::fs::File::open(&path).map_err(infra)
}

/// The last "<n> delivered" in a peer's output.
fn delivered(text: &str) -> Option<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .rev()
        .find(|w| w[1].trim_end_matches(',') == "delivered")
        .and_then(|w| w[0].parse().ok())
}

/// Runs the peer to its end; its figures.
async fn run_peer(cmd: PeerCommand, messages: u64, dir: PathBuf) -> Result<Figures, RunError> {
    if !cmd.program.exists() {
        return Err(infra(format!(
            "{} is not there: run scripts/install-peers.sh (it installs and builds the peers from Debian packages)",
            cmd.program.display()
        )));
    }
    tokio::task::spawn_blocking(move || {
        let stdin = match cmd.stdin_lines {
            Some((count, bytes)) => std::process::Stdio::from(lines_file(&dir, count, bytes)?),
            None => std::process::Stdio::null(),
        };
        let before = children_cpu_s();
        let started = Instant::now();
        let child = std::process::Command::new(&cmd.program)
            .args(&cmd.args)
            .stdin(stdin)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| infra(format!("{}: {e}", cmd.program.display())))?;
        let pid = child.id().to_string();
        let sampler = threads::Sampler::start(&pid);
        let out = child
            .wait_with_output()
            .map_err(|e| infra(format!("{}: {e}", cmd.program.display())))?;
        // The child is gone: its threads keep their last sample.
        let threads = sampler.finish(&pid).threads;
        let wall = started.elapsed().as_secs_f64();
        let cpu_s = children_cpu_s() - before;
        if !out.status.success() {
            return Err(infra(format!(
                "{} ended {}: {}",
                cmd.tool,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // The peer's own count and time, when it prints them as a JSON line.
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
        // Or the "<n> delivered" of librdkafka's rdkafka_performance summary.
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let acknowledged = line
            .as_ref()
            .and_then(|v| v["acknowledged"].as_u64())
            .or_else(|| delivered(&text))
            .unwrap_or(messages);
        let seconds = line
            .as_ref()
            .and_then(|v| v["seconds"].as_f64())
            .unwrap_or(wall);
        Ok(Figures {
            who: cmd.tool,
            messages,
            acknowledged,
            seconds,
            cpu_s,
            infrastructure_cpu_s: None,
            client: cmd
                .counters
                .and_then(|read| read(&String::from_utf8_lossy(&out.stdout))),
            threads,
            offered: None,
            failed: None,
            unknown: None,
        })
    })
    .await
    .map_err(infra)?
}

/// faultline's generator offering `messages` at `rate` on the session's cluster.
async fn run_faultline(
    session: &Session,
    scenario: &Scenario,
    rate: f64,
    messages: u64,
    dir: &std::path::Path,
) -> Result<Figures, RunError> {
    let file = dir.join(format!("faultline-{rate:.0}.bin"));
    let (sink, writer) = history::open(&file).map_err(infra)?;
    let producers =
        run::open_producers(session.broker.as_ref(), scenario.workload.producers).await?;
    let counters = Arc::new(Counters::default());
    let spec = run::load_spec(
        &scenario.workload,
        rate,
        Duration::from_secs_f64(messages as f64 / rate),
    );
    let clock = Clock::start();
    let start = Instant::now() + Duration::from_millis(100);
    let gateway_cpu = || session.broker.infrastructure_cpu_seconds();
    let infra_before = gateway_cpu();
    let client_before = session.broker.client_counters().unwrap_or_default();
    let cpu_before = procstat::own_cpu_seconds().unwrap_or(0.0);
    let sampler = threads::Sampler::start("self");
    workload::run(
        producers,
        spec,
        start,
        clock,
        sink.clone(),
        counters.clone(),
    )
    .await
    .map_err(|p| infra(format!("the load generator panicked: {p}")))?;
    let sampled = sampler.finish("self");
    drop(sink);
    writer.finish().await.map_err(infra)?;
    // The bench's own instrument, the thread sampler, is not faultline's load.
    let cpu_s = procstat::own_cpu_seconds().unwrap_or(0.0) - cpu_before - sampled.sampler_cpu_s;
    let infrastructure_cpu_s = gateway_cpu().zip(infra_before).map(|(a, b)| a - b);
    let client = session
        .broker
        .client_counters()
        .map(|c| c.since(client_before));
    // The last acknowledgement ends the time, as it ends the peer's.
    let last_ack_us = history::read(&file)
        .map_err(infra)?
        .map_while(Result::ok)
        .filter_map(|r| match r {
            history::Record::Publish(p) if p.kind == history::Kind::Ok => p.t_done,
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let _ = std::fs::remove_file(&file);
    Ok(Figures {
        who: format!(
            "faultline ({} producer(s), open loop)",
            scenario.workload.producers
        ),
        messages,
        acknowledged: counters.acked.load(Ordering::Relaxed),
        seconds: (last_ack_us.saturating_sub(clock.us(start)) as f64 / 1e6).max(1e-6),
        cpu_s: cpu_s - infrastructure_cpu_s.unwrap_or(0.0),
        infrastructure_cpu_s,
        client,
        threads: sampled.threads,
        offered: Some(rate),
        failed: Some(counters.failed.load(Ordering::Relaxed)),
        unknown: Some(counters.unknown.load(Ordering::Relaxed)),
    })
}

/// One round: the peer, then faultline at the peer's rate and at twice it.
pub struct Round {
    pub peer: Figures,
    pub faultline: Vec<Figures>,
}

impl Round {
    /// faultline / peer: throughput (faultline's best) and messages per CPU-second (at the
    /// peer's rate).
    pub fn ratios(&self) -> (f64, f64) {
        let best = self.faultline.iter().map(Figures::rate).fold(0.0, f64::max);
        let at_peer = self.faultline.first().map_or(0.0, Figures::per_cpu_second);
        (
            best / self.peer.rate().max(1e-9),
            at_peer / self.peer.per_cpu_second().max(1e-9),
        )
    }
}

/// What `faultline bench peers` found, round by round.
pub struct Comparison {
    pub rounds: Vec<Round>,
}

/// Starts the scenario's cluster, runs the peer and then faultline on it, and removes the
/// cluster on every path.
pub async fn compare(
    scenario: Scenario,
    messages: u64,
    rounds: u32,
    progress: Arc<Progress>,
) -> Result<Comparison, RunError> {
    let RunId { id: run_id, .. } = RunId::new();
    let backend: Arc<dyn ClusterBackend> = Arc::new(DockerBackend::connect().await.map_err(infra)?);
    let dir: PathBuf = std::env::temp_dir().join(format!("faultline-peers-{run_id}"));
    run::create_out_dir(&dir)?;
    let work = {
        let backend = backend.clone();
        let run_id = run_id.clone();
        let progress = progress.clone();
        let dir = dir.clone();
        async move {
            let session = Session::start(&scenario, &[], &run_id, backend, &dir, &progress).await?;
            let w = &scenario.workload;
            let Some(cmd) = session
                .broker
                .peer(messages, w.payload_bytes, w.max_in_flight)
            else {
                return Err(infra(format!(
                    "no peer tool is wired up for the {} family",
                    scenario.topology.family
                )));
            };
            let mut done = Vec::new();
            for round in 1..=rounds {
                progress.phase(&format!(
                    "round {round}/{rounds}: peer: {} publishing {messages}",
                    cmd.tool
                ));
                let infra_before = session.broker.infrastructure_cpu_seconds();
                let mut peer = run_peer(cmd.clone(), messages, dir.clone()).await?;
                peer.infrastructure_cpu_s = session
                    .broker
                    .infrastructure_cpu_seconds()
                    .zip(infra_before)
                    .map(|(a, b)| a - b);
                progress.note(&format!(
                    "{} of {messages} acknowledged in {:.2} s: {:.0} msg/s, {:.2} CPU-s{}",
                    peer.acknowledged,
                    peer.seconds,
                    peer.rate(),
                    peer.cpu_s,
                    peer.infrastructure()
                ));
                let mut faultline = Vec::new();
                for factor in [1.0, 2.0] {
                    let rate = (peer.rate() * factor).max(1.0);
                    progress.phase(&format!(
                        "round {round}/{rounds}: faultline offering {messages} at {rate:.0} msg/s"
                    ));
                    let f = run_faultline(&session, &scenario, rate, messages, &dir).await?;
                    progress.note(&format!(
                        "{} acknowledged ({} refused, {} unknown) in {:.2} s: {:.0} msg/s, {:.2} CPU-s{}",
                        f.acknowledged,
                        f.failed.unwrap_or(0),
                        f.unknown.unwrap_or(0),
                        f.seconds,
                        f.rate(),
                        f.cpu_s,
                        f.infrastructure()
                    ));
                    faultline.push(f);
                }
                done.push(Round { peer, faultline });
            }
            Ok(Comparison { rounds: done })
        }
    };
    let result = run::guarded(backend, &run_id, &progress, false, work).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_delivered_count_of_a_summary_is_read() {
        let text = "% 100000 messages produced (25600000 bytes), 99998 delivered (offset 0, 0 failed) in 2000ms";
        assert_eq!(super::delivered(text), Some(99_998));
        assert_eq!(super::delivered("nothing here"), None);
    }
}
