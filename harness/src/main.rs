//! The `faultline` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use faultline::check::verdict::Verdict;
use faultline::cluster::docker::DockerBackend;
use faultline::exit;
use faultline::report::Reporters;
use faultline::run::{self, RunError, RunOptions};
use faultline::scenario;

/// mimalloc, not glibc's malloc: every publish allocates (payload, records, futures), and
/// glibc's allocator was a fifth of the generator's CPU at 80 000 msg/s (`faultline bench
/// peers`, perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Chaos and failover testing for message-broker clusters.
///
/// A scenario names a broker cluster (a Docker Compose topology), a workload and a fault
/// schedule. faultline starts the cluster in Docker, drives load through the broker's own
/// client, injects the faults, measures detection, failover and recovery times and latency,
/// checks that no acknowledged message was lost, and ends with a verdict.
///
/// Exit codes: 0 pass; 1 a check failed or could not be decided; 2 invalid scenario or usage;
/// 3 infrastructure error (Docker unreachable, image build failed, cluster never ready) or
/// interrupted run.
#[derive(Parser)]
#[command(name = "faultline", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and print its verdict; reports go to the output directory.
    Run {
        /// The scenario file (YAML).
        scenario: PathBuf,
        /// Output directory [default: reports/runs/<UTC timestamp>-<scenario name>/].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed for random choices (e.g. `target: random`); printed and recorded when not given.
        #[arg(long)]
        seed: Option<u64>,
        /// Leave the cluster running after the verdict, for inspection; `faultline clean`
        /// removes it afterwards.
        #[arg(long)]
        keep: bool,
        /// Hold the result against a baseline: one result.json, or a directory of them (a
        /// median and a spread). A number worse than the scenario's `regression:` tolerances
        /// allow fails the run.
        #[arg(long, value_name = "PATH")]
        baseline: Option<PathBuf>,
        /// Add this run's result.json to the baseline directory DIR when the run passes.
        #[arg(long, value_name = "DIR")]
        save_baseline: Option<PathBuf>,
        /// Serve the live counters, throughput, latency and phase in Prometheus's text format
        /// at http://ADDR/metrics while the run lasts (e.g. 127.0.0.1:9464).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// Where the cluster runs: docker (this machine's daemon), or kubernetes (the
        /// cluster of the current kubeconfig, with Chaos Mesh; checked, then refused: the run
        /// on a cluster is designed and rendered, not built, see `faultline render`).
        #[arg(long, value_enum, default_value = "docker")]
        backend: RunBackend,
    },
    /// Find the highest rate the scenario's cluster sustains within the SLO of its `capacity:`
    /// section, with every node and with its `n_minus_1` fault held, then run the scenario's
    /// faults at the planned load. Writes capacity.json, .html, .md and .csv. Exits 1 when the
    /// N-1 maximum is below `planned_peak` or the failover run fails.
    Capacity {
        /// The scenario file (YAML) with a `capacity:` section.
        scenario: PathBuf,
        /// Output directory [default: reports/capacity/<UTC timestamp>-<scenario name>/].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed for random choices; printed and recorded when not given.
        #[arg(long)]
        seed: Option<u64>,
        /// Only the searches: no failover run at the planned load.
        #[arg(long)]
        no_failover: bool,
        /// Serve the live counters, throughput, latency and the current step in Prometheus's
        /// text format at http://ADDR/metrics while the sweep lasts (e.g. 127.0.0.1:9464).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Print figures of faultline itself: the load generator's ceiling on this machine.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Hold a finished run against a baseline (one result.json or a directory of them); the
    /// run's reports are written again with the comparisons. Exits 1 on a regression.
    Compare {
        /// The baseline: a result.json, or a directory of them.
        baseline: PathBuf,
        /// The run directory.
        run: PathBuf,
    },
    /// Write the objects a run of the scenario creates on a Kubernetes cluster (namespace,
    /// nodes as StatefulSets, the worker Job, the fault schedule and each fault's objects,
    /// Chaos Mesh's where a fault needs them), without a cluster: docs/design/kubernetes.md.
    Render {
        /// The scenario file (YAML).
        scenario: PathBuf,
        /// Where the manifests go.
        #[arg(long)]
        out: PathBuf,
        /// The only backend that renders.
        #[arg(long, value_enum)]
        backend: RenderBackend,
        /// The image with faultline's binary at /usr/local/bin/faultline (workers, fault
        /// containers) [default: faultline:<version>].
        #[arg(long)]
        faultline_image: Option<String>,
        /// Worker pods that share the load.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        workers: u32,
        /// The nodes' data directory (e.g. /data), kept on a PersistentVolumeClaim per node
        /// so that it outlives a container restart, as the container's own layer does on
        /// Docker.
        #[arg(long, value_name = "DIR")]
        data: Option<String>,
    },
    /// Check a scenario (and the topology it names) without starting anything; every problem is
    /// reported with file:line:column.
    Validate {
        /// The scenario file (YAML).
        scenario: PathBuf,
    },
    /// Rebuild result.json and every report of a run directory from its history alone
    /// (also for a run that was killed); exits as the run would have.
    Report {
        /// The run directory (the one `faultline run` printed).
        dir: PathBuf,
    },
    /// Read a run's history (history.bin).
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Print a JSON Schema: of scenario files (for editors: the shipped scenarios name
    /// schemas/scenario.schema.json in their first line), of result.json or of capacity.json.
    Schema {
        /// Which schema.
        #[arg(value_enum)]
        of: SchemaOf,
    },
    /// Remove every container and network that faultline runs left behind.
    Clean {
        /// Also remove the objects of runs whose faultline process is still alive.
        #[arg(long)]
        all: bool,
    },
    /// The packet program of the NFQUEUE faults (delay), which faultline runs in a fault
    /// sidecar in a node's network namespace; not for direct use.
    #[command(hide = true)]
    Packets {
        #[command(subcommand)]
        what: PacketsCommand,
    },
    /// The durability layer of power-loss, which a node that opts in runs as its entry point;
    /// not for direct use.
    #[command(hide = true)]
    Powerfs {
        #[command(subcommand)]
        what: PowerfsCommand,
    },
}

#[derive(Subcommand)]
enum PowerfsCommand {
    /// Mount the layer over DIR (served by a process of its own), then become COMMAND.
    Serve {
        #[arg(long)]
        dir: PathBuf,
        /// Run the command as this user (name or uid, optionally :group), the layer as root.
        #[arg(long)]
        user: Option<String>,
        /// Un-synced writes older than this many ms count as written back (checked every 5 s,
        /// as a kernel's flusher); never when absent.
        #[arg(long)]
        writeback_ms: Option<u64>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Cut the power: every file back to its last fsync, no answer after; prints what it did.
    Cut,
    /// Read back the probe of the last cut (waits for the layer to be up); prints the verdict.
    Check,
}

#[derive(Subcommand)]
enum PacketsCommand {
    /// Do the action (delay, reorder, duplicate, corrupt) to the packets queued to NFQUEUE
    /// --queue, until SIGTERM.
    Serve {
        #[arg(long)]
        queue: u16,
        #[arg(long, default_value = "delay")]
        action: String,
        /// The share of packets acted on, in percent (a delay holds every one).
        #[arg(long, default_value_t = 100.0)]
        percent: f64,
        /// How long a held packet is held (a delay's, or a reordered packet's).
        #[arg(long, default_value_t = 0)]
        delay_us: u64,
        #[arg(long, default_value_t = 0)]
        jitter_us: u64,
        #[arg(long, default_value = "normal")]
        distribution: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where to write `ready` and `stats`.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print the median round trip to ADDRESS (ip:port) in ms, from TCP connects.
    Rtt {
        to: std::net::SocketAddr,
        #[arg(long, default_value_t = 7)]
        count: u32,
    },
}

/// `faultline powerfs ...`: runs without the async runtime (in a node's container).
fn powerfs(what: PowerfsCommand) -> ExitCode {
    use faultline::powerfs;
    let answer = match what {
        PowerfsCommand::Serve {
            dir,
            user,
            writeback_ms,
            command,
        } => {
            let writeback = writeback_ms.map(std::time::Duration::from_millis);
            let Err(e) = powerfs::serve(&dir, user.as_deref(), writeback, &command);
            eprintln!("faultline powerfs: {}: {e}", dir.display());
            return ExitCode::from(exit::INFRASTRUCTURE as u8);
        }
        PowerfsCommand::Cut => powerfs::request("cut", std::time::Duration::from_secs(2)),
        PowerfsCommand::Check => powerfs::request("check", std::time::Duration::from_secs(20)),
    };
    match answer {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faultline powerfs: control socket {}: {e}", powerfs::SOCKET);
            ExitCode::from(exit::INFRASTRUCTURE as u8)
        }
    }
}

/// `faultline packets ...`: runs without the async runtime (a plain loop in a sidecar).
fn packets(what: PacketsCommand) -> ExitCode {
    use faultline::faults::packets;
    match what {
        PacketsCommand::Serve {
            queue,
            action,
            percent,
            delay_us,
            jitter_us,
            distribution,
            seed,
            dir,
        } => {
            let Some(distribution) = packets::Distribution::parse(&distribution) else {
                eprintln!("error: unknown distribution {distribution:?}");
                return ExitCode::from(exit::INVALID as u8);
            };
            let shape = packets::Shape {
                delay: std::time::Duration::from_micros(delay_us),
                jitter: std::time::Duration::from_micros(jitter_us),
                distribution,
            };
            let Some(action) = packets::Action::from_args(&action, percent, shape) else {
                eprintln!(
                    "error: unknown action {action:?} (expected one of {})",
                    packets::Action::NAMES.join(", ")
                );
                return ExitCode::from(exit::INVALID as u8);
            };
            match packets::serve(queue, action, seed, &dir) {
                Ok(stats) => {
                    println!("{}", stats.line());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: NFQUEUE {queue}: {e}");
                    ExitCode::from(exit::INFRASTRUCTURE as u8)
                }
            }
        }
        PacketsCommand::Rtt { to, count } => {
            let trips = packets::round_trips(to, count, std::time::Duration::from_secs(5));
            match packets::median(&trips) {
                Some(ms) => {
                    println!("{ms:.3}");
                    ExitCode::SUCCESS
                }
                None => {
                    println!("no answer from {to} in {count} tries");
                    ExitCode::from(exit::INFRASTRUCTURE as u8)
                }
            }
        }
    }
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Print every record as one JSON object per line (what `jq` reads; `faultline report`
    /// reads such a file too).
    Dump {
        /// A run directory, or a history file.
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The open-loop generator, its completions and the history writer against a producer in
    /// this process that acknowledges at once (no broker): the rate doubles from --start until
    /// it no longer holds (achieved < 99% of offered, or send lag p99 > 10 ms), for 1 and for 4
    /// producers. The highest rate held is the most a capacity step can measure here.
    Generator {
        /// Seconds per step.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// The first rate (msg/s).
        #[arg(long, default_value_t = 25_000.0)]
        start: f64,
        /// The highest rate tried (msg/s).
        #[arg(long, default_value_t = 1_600_000.0)]
        max: f64,
    },
    /// faultline against the tool a user would pick instead, in one run on the scenario's
    /// cluster (no faults): the peer publishes --messages as fast as the cluster acknowledges
    /// them, then faultline offers as many at the peer's rate and at twice it, --rounds
    /// times in turn. Prints each side's msg/s and msg per CPU-second, and the ratios with
    /// their median over the rounds. The peers are built by scripts/install-peers.sh.
    Peers {
        /// The scenario whose cluster and workload (producers, payload, in-flight cap) to use.
        scenario: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        messages: u64,
        /// Rounds of peer then faultline, on the one cluster.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        rounds: u32,
        /// faultline's producers (client connections) instead of the scenario's.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
        producers: Option<u32>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SchemaOf {
    /// A scenario file (YAML).
    Scenario,
    /// A run's result.json.
    Result,
    /// capacity.json of `faultline capacity`.
    Capacity,
}

fn load(path: &Path) -> Result<scenario::Scenario, ExitCode> {
    scenario::load(path).map_err(|errors| {
        // Each file a problem is in, read once for the excerpts.
        let mut sources: std::collections::BTreeMap<PathBuf, String> = Default::default();
        for e in &errors {
            let source = sources
                .entry(e.file.clone())
                .or_insert_with(|| std::fs::read_to_string(&e.file).unwrap_or_default());
            eprintln!("{}\n", e.render(source));
        }
        eprintln!(
            "{}: {} problem(s) found; nothing was started",
            path.display(),
            errors.len()
        );
        ExitCode::from(exit::INVALID as u8)
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::INVALID as u8
            } else {
                0
            });
        }
    };
    let cli = match cli.command {
        Command::Packets { what } => return packets(what),
        Command::Powerfs { what } => return powerfs(what),
        _ => cli,
    };
    // The brokers' client crates log every reconnect attempt; during a fault that is noise,
    // and what matters is in the history. RUST_LOG shows it when wanted.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                let quiet = faultline::families::FAMILIES
                    .iter()
                    .flat_map(|f| f.quiet_logs())
                    .map(|target| format!(",{target}=off"));
                // The Kubernetes client logs each failed request; the refusal says it once.
                format!("warn{},kube_client=off", quiet.collect::<String>()).into()
            }),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INFRASTRUCTURE as u8);
        }
    };
    runtime.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Render {
            scenario,
            out,
            backend: RenderBackend::Kubernetes,
            faultline_image,
            workers,
            data,
        } => render(&scenario, &out, faultline_image, workers, data).await,
        Command::Validate { scenario } => match load(&scenario) {
            Ok(s) => {
                println!(
                    "{}: valid ({} cluster of {} nodes from {}, {} fault(s))",
                    scenario.display(),
                    s.topology.family,
                    s.topology.services.len(),
                    s.topology.file.display(),
                    s.faults.len()
                );
                ExitCode::from(exit::PASS as u8)
            }
            Err(code) => code,
        },
        Command::Run {
            scenario,
            out,
            seed,
            keep,
            baseline,
            save_baseline,
            metrics,
            backend,
        } => {
            let s = match load(&scenario) {
                Ok(s) => s,
                Err(code) => return code,
            };
            if let RunBackend::Kubernetes = backend {
                return run_on_kubernetes(&s).await;
            }
            // A baseline that cannot be read is a usage error: say so before starting anything.
            if let Some(b) = &baseline {
                if let Err(e) = faultline::report::baseline::load(b) {
                    eprintln!("error: {e}");
                    return ExitCode::from(exit::INVALID as u8);
                }
            }
            let reporters = match reporters_with_metrics(metrics).await {
                Ok(r) => r,
                Err(code) => return code,
            };
            let opts = RunOptions {
                out,
                seed,
                keep,
                baseline,
            };
            let outcome = run::run(s, opts, reporters.events()).await;
            // Every reporter has had every event (result.json written) before the exit.
            let report_errors = reporters.close();
            for e in &report_errors {
                eprintln!("error: a report could not be written: {e}");
            }
            if let (Ok(o), Some(dir)) = (&outcome, &save_baseline) {
                match faultline::report::baseline::save(&o.out_dir, dir) {
                    Ok(to) => eprintln!("added to the baseline: {}", to.display()),
                    Err(e) => eprintln!("{e}"),
                }
            }
            let code = match outcome {
                Ok(_) if !report_errors.is_empty() => exit::INFRASTRUCTURE,
                Ok(outcome) => match outcome.verdict {
                    Verdict::Pass => exit::PASS,
                    Verdict::Fail | Verdict::Unknown => exit::FAIL,
                },
                Err(e) => {
                    eprintln!("error: {e}");
                    match e {
                        RunError::Infrastructure(_) | RunError::Interrupted(_) => {
                            exit::INFRASTRUCTURE
                        }
                    }
                }
            };
            ExitCode::from(code as u8)
        }
        Command::Capacity {
            scenario,
            out,
            seed,
            no_failover,
            metrics,
        } => {
            let s = match load(&scenario) {
                Ok(s) => s,
                Err(code) => return code,
            };
            if s.capacity.is_none() {
                eprintln!(
                    "error: {}: no `capacity:` section; `faultline capacity` needs one (README, Capacity)",
                    scenario.display()
                );
                return ExitCode::from(exit::INVALID as u8);
            }
            let reporters = match reporters_with_metrics(metrics).await {
                Ok(r) => r,
                Err(code) => return code,
            };
            let opts = faultline::capacity::runner::CapacityOptions {
                out,
                seed,
                no_failover,
            };
            let outcome = faultline::capacity::runner::run(s, opts, reporters.events()).await;
            let report_errors = reporters.close();
            for e in &report_errors {
                eprintln!("error: a report could not be written: {e}");
            }
            match outcome {
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(exit::INFRASTRUCTURE as u8)
                }
                Ok(o) => {
                    println!("{}", o.report.markdown());
                    println!(
                        "capacity report: {}",
                        o.out_dir.join("capacity.html").display()
                    );
                    let shortfalls = o.report.shortfalls();
                    for f in &shortfalls {
                        println!("FAIL: {f}");
                    }
                    if !report_errors.is_empty() {
                        ExitCode::from(exit::INFRASTRUCTURE as u8)
                    } else if shortfalls.is_empty() {
                        ExitCode::from(exit::PASS as u8)
                    } else {
                        ExitCode::from(exit::FAIL as u8)
                    }
                }
            }
        }
        Command::Bench {
            what:
                BenchCommand::Generator {
                    seconds,
                    start,
                    max,
                },
        } => bench_generator(seconds, start, max).await,
        Command::Bench {
            what:
                BenchCommand::Peers {
                    scenario,
                    messages,
                    rounds,
                    producers,
                },
        } => {
            let mut s = match load(&scenario) {
                Ok(s) => s,
                Err(code) => return code,
            };
            if let Some(n) = producers {
                s.workload.producers = n;
            }
            bench_peers(s, messages, rounds).await
        }
        Command::Report { dir } => report_again(&dir, None),
        Command::Compare { baseline, run } => report_again(&run, Some(&baseline)),
        Command::History {
            command: HistoryCommand::Dump { path },
        } => dump_history(&path),
        Command::Schema { of } => {
            let schema = match of {
                SchemaOf::Scenario => scenario::schema::scenario_schema(),
                SchemaOf::Result => faultline::report::result_schema(),
                SchemaOf::Capacity => faultline::capacity::report::capacity_schema(),
            };
            let text = serde_json::to_string_pretty(&schema).expect("a schema serialises");
            println!("{text}");
            ExitCode::from(exit::PASS as u8)
        }
        Command::Clean { all } => clean(all).await,
        Command::Packets { .. } | Command::Powerfs { .. } => {
            unreachable!("handled before the runtime starts")
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RunBackend {
    Docker,
    Kubernetes,
}

/// `faultline run --backend kubernetes`: what the cluster lacks of what a run needs, or, when
/// it has all of it, that the run there is not built yet. Exits 3 either way.
async fn run_on_kubernetes(s: &scenario::Scenario) -> ExitCode {
    use faultline::fault_kind::FaultKind;
    let mut chaos = Vec::new();
    if s.faults.iter().any(|f| f.kind.is_network()) {
        chaos.push("networkchaos");
    }
    if s.faults.iter().any(|f| f.kind == FaultKind::ClockSkew) {
        chaos.push("timechaos");
    }
    match faultline::cluster::kubernetes::connect(&chaos, std::time::Duration::from_secs(5)).await
    {
        Err(refusal) => eprintln!("error: {refusal}"),
        Ok(cluster) => eprintln!(
            "error: {} has what a run of {} needs (the API server answers{}, and this user may create what a run creates), but the run on Kubernetes is not built yet: its coordinator and `faultline worker` are designed (docs/design/kubernetes.md), not written. `faultline render --backend kubernetes` writes the objects it would create",
            cluster.server,
            s.name,
            if chaos.is_empty() { String::new() } else { format!(", Chaos Mesh serves {}", chaos.join(" and ")) }
        ),
    }
    ExitCode::from(exit::INFRASTRUCTURE as u8)
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RenderBackend {
    Kubernetes,
}

/// `faultline render --backend kubernetes`: the manifests, and a summary of what each fault
/// becomes.
async fn render(
    path: &Path,
    out: &Path,
    faultline_image: Option<String>,
    workers: u32,
    data: Option<String>,
) -> ExitCode {
    use faultline::render as kubernetes;
    let s = match load(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut o = faultline::cluster::kubernetes::Options {
        workers,
        data,
        ..Default::default()
    };
    if let Some(i) = faultline_image {
        o.faultline_image = i;
    }
    // A node with the durability layer wraps what its image runs, read from the local Docker
    // daemon (the image itself, or its local equivalent).
    let mut images = std::collections::BTreeMap::new();
    let durable: Vec<_> = s
        .topology
        .services
        .iter()
        .filter(|x| x.durable.is_some())
        .collect();
    if !durable.is_empty() {
        if let Ok(docker) = faultline::cluster::docker::DockerBackend::connect().await {
            for svc in durable {
                let mut candidates = vec![svc.image.clone()];
                if let Some(local) = s.topology.local_images.get(&svc.image) {
                    candidates.push(local.tag.clone());
                }
                for c in candidates {
                    if let Ok(runs) = docker.image_command(&c, &svc.command).await {
                        images.insert(
                            svc.name.clone(),
                            kubernetes::NodeImage {
                                image: svc.image.clone(),
                                runs: Some(runs),
                            },
                        );
                        break;
                    }
                }
            }
        }
    }
    let rendered = match kubernetes::render(&s, &images, &o) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INVALID as u8);
        }
    };
    let written = match kubernetes::write(&rendered, out) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: write {}: {e}", out.display());
            return ExitCode::from(exit::INFRASTRUCTURE as u8);
        }
    };
    println!(
        "{} object file(s) for namespace {} in {}",
        written.len(),
        rendered.namespace,
        out.display()
    );
    for m in &rendered.manifests {
        println!("  {:<44} {}", m.path.display(), m.what);
    }
    if !rendered.faults.is_empty() {
        println!("faults (created by the coordinator at their time, never by `kubectl apply`):");
    }
    for f in &rendered.faults {
        println!(
            "  {} {} on {}: {}",
            f.name,
            f.kind.name(),
            if f.target.is_empty() { "-" } else { &f.target },
            f.mechanism
        );
    }
    for w in &rendered.warnings {
        println!("note: {w}");
    }
    println!("never applied to a real cluster from this project: see docs/design/kubernetes.md");
    ExitCode::from(exit::PASS as u8)
}

/// `faultline history dump PATH`: the history as JSON lines on stdout.
fn dump_history(path: &Path) -> ExitCode {
    use std::io::Write;
    let file = if path.is_dir() {
        faultline::history::in_dir(path)
    } else {
        Some(path.to_path_buf()).filter(|p| p.is_file())
    };
    let Some(file) = file else {
        eprintln!(
            "error: {} is neither a history file nor a run directory holding {}",
            path.display(),
            faultline::history::FILE
        );
        return ExitCode::from(exit::INVALID as u8);
    };
    let records = match faultline::history::read(&file) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return ExitCode::from(exit::INVALID as u8);
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for record in records {
        let written = match record {
            Ok(r) => serde_json::to_writer(&mut out, &r)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
            Err(e) => {
                let _ = out.flush();
                eprintln!("error: {}: {e}", file.display());
                return ExitCode::from(exit::INVALID as u8);
            }
        };
        if written.is_err() {
            // stdout closed (`| head`): nothing more to say.
            return ExitCode::from(exit::PASS as u8);
        }
    }
    let _ = out.flush();
    if faultline::history::last_line_cut(&file).unwrap_or(false) {
        eprintln!("note: the history's last record was cut (the run was killed while writing it): it was left out");
    }
    ExitCode::from(exit::PASS as u8)
}

/// `faultline report DIR`: the reports of a run, made again from its history; held against
/// `baseline` too for `faultline compare`.
fn report_again(dir: &Path, baseline: Option<&Path>) -> ExitCode {
    let Some(history) = faultline::history::in_dir(dir) else {
        eprintln!(
            "error: {} holds no {}: it is not a faultline run directory",
            dir.display(),
            faultline::history::FILE
        );
        return ExitCode::from(exit::INVALID as u8);
    };
    let mut result = match faultline::report::recheck(&history) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INVALID as u8);
        }
    };
    if let Some(b) = baseline {
        if let Err(e) = faultline::report::baseline::gate(&mut result, b) {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INVALID as u8);
        }
    }
    let verdict = result.verdict;
    let reporters = Reporters::again();
    reporters.events().finished(result, dir);
    let errors = reporters.close();
    for e in &errors {
        eprintln!("error: a report could not be written: {e}");
    }
    ExitCode::from(match verdict {
        _ if !errors.is_empty() => exit::INFRASTRUCTURE,
        Verdict::Pass => exit::PASS,
        Verdict::Fail | Verdict::Unknown => exit::FAIL,
    } as u8)
}

async fn clean(all: bool) -> ExitCode {
    let backend = match DockerBackend::connect().await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INFRASTRUCTURE as u8);
        }
    };
    let left = match backend.leftovers(None).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INFRASTRUCTURE as u8);
        }
    };
    let mut runs: Vec<String> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (_, run, pid) in left.containers.iter().chain(&left.networks) {
        // A run whose process is still alive is in progress: leave it unless asked.
        // (`pid` is there only while the very process that made the object runs.)
        let live = !all && pid.is_some();
        let list = if live { &mut skipped } else { &mut runs };
        if !list.contains(run) {
            list.push(run.clone());
        }
    }
    let mut code = exit::PASS;
    for run in &runs {
        match backend.remove_run(Some(run)).await {
            Ok((c, n)) => println!("removed run {run}: {c} container(s), {n} network(s)"),
            Err(e) => {
                eprintln!("error: {e}");
                code = exit::INFRASTRUCTURE;
            }
        }
    }
    for run in &skipped {
        println!("left run {run} alone: its faultline process is still running (use --all)");
    }
    if runs.is_empty() && skipped.is_empty() {
        println!("nothing to clean");
    }
    ExitCode::from(code as u8)
}

async fn bench_generator(seconds: f64, start: f64, max: f64) -> ExitCode {
    use faultline::capacity::ceiling;
    if !(seconds > 0.0 && start > 0.0 && max >= start) {
        eprintln!("error: --seconds and --start must be above 0, and --max at least --start");
        return ExitCode::from(exit::INVALID as u8);
    }
    let dir = std::env::temp_dir().join(format!("faultline-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: {}: {e}", dir.display());
        return ExitCode::from(exit::INFRASTRUCTURE as u8);
    }
    let progress = faultline::progress::Progress::new(|s| {
        if let faultline::progress::ProgressEvent::Note(text) = s.event {
            eprintln!("    {text}");
        }
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("faultline bench generator: {cores} core(s), {seconds} s per step, 128-byte messages, an in-process producer acknowledging at once");
    println!(
        "producers  offered/s  achieved/s  lag p99 ms  CPU cores  msg/CPU-s  history B/msg  held"
    );
    let duration = std::time::Duration::from_secs_f64(seconds);
    for producers in [1, 4] {
        let steps = ceiling::ceiling(producers, start, max, duration, &dir, &progress).await;
        for s in &steps {
            println!(
                "{:>9}  {:>9.0}  {:>10.0}  {:>10.2}  {:>9.2}  {:>9.0}  {:>13.1}  {}",
                s.producers,
                s.offered,
                s.achieved,
                s.send_lag_p99_ms,
                s.cpu_cores,
                s.per_cpu_second,
                s.history_bytes_per_message,
                if s.held { "yes" } else { "no" }
            );
        }
        let best = steps
            .iter()
            .filter(|s| s.held)
            .map(|s| s.offered)
            .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
        match best {
            Some(b) => println!("ceiling with {producers} producer(s): {b:.0} msg/s held"),
            None => {
                println!("ceiling with {producers} producer(s): not even {start:.0} msg/s held")
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    ExitCode::from(exit::PASS as u8)
}

async fn bench_peers(s: scenario::Scenario, messages: u64, rounds: u32) -> ExitCode {
    use faultline::capacity::peers;
    let reporters = Reporters::standard();
    let progress = std::sync::Arc::new(reporters.events().progress());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let name = s.name.clone();
    let payload = s.workload.payload_bytes;
    let outcome = peers::compare(s, messages, rounds, progress).await;
    let _ = reporters.close();
    let c = match outcome {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INFRASTRUCTURE as u8);
        }
    };
    println!("faultline bench peers: {name}, {messages} messages of {payload} bytes, {rounds} round(s), {cores} core(s) shared with the cluster");
    // The in-process infrastructure (Kafka's gateway) gets a column when it ran.
    let infra = c
        .rounds
        .iter()
        .flat_map(|r| std::iter::once(&r.peer).chain(&r.faultline))
        .any(|f| f.infrastructure_cpu_s.is_some());
    let infra_cell = |f: &peers::Figures| match (infra, f.infrastructure_cpu_s) {
        (false, _) => String::new(),
        (true, Some(c)) => format!(" {c:>11.2}"),
        (true, None) => format!(" {:>11}", "-"),
    };
    println!(
        "{:>5} {:<78} {:>9} {:>10} {:>9} {:>7} {:>11}{}",
        "round",
        "who",
        "offered/s",
        "acked",
        "msg/s",
        "CPU-s",
        "msg/CPU-s",
        if infra { " gateway CPU" } else { "" }
    );
    for (i, r) in c.rounds.iter().enumerate() {
        for f in std::iter::once(&r.peer).chain(&r.faultline) {
            println!(
                "{:>5} {:<78} {:>9} {:>10} {:>9.0} {:>7.2} {:>11.0}{}",
                i + 1,
                f.who,
                f.offered.map_or("max".to_string(), |o| format!("{o:.0}")),
                f.acknowledged,
                f.rate(),
                f.cpu_s,
                f.per_cpu_second(),
                infra_cell(f)
            );
        }
    }
    for (i, r) in c.rounds.iter().enumerate() {
        for f in std::iter::once(&r.peer).chain(&r.faultline) {
            if let Some(line) = f.client.map(|counters| counters.summary()) {
                let offered = f.offered.map_or("max".to_string(), |o| format!("{o:.0}/s"));
                println!("{:>5} {offered:>9} librdkafka: {line}", i + 1);
            }
        }
    }
    for (i, r) in c.rounds.iter().enumerate() {
        for f in std::iter::once(&r.peer).chain(&r.faultline) {
            let offered = f.offered.map_or("max".to_string(), |o| format!("{o:.0}/s"));
            println!(
                "{:>5} {offered:>9} CPU-s by thread: {}",
                i + 1,
                faultline::capacity::threads::summary(&f.threads, 6)
            );
        }
    }
    if infra {
        println!("CPU-s is each tool's own: the client gateway faultline runs in its process for this topology (on a thread of its own; it stands in for a load balancer and carries either tool's traffic) is in the last column and in neither tool's figure");
    }
    let ratios: Vec<(f64, f64)> = c.rounds.iter().map(peers::Round::ratios).collect();
    for (i, (throughput, per_cpu)) in ratios.iter().enumerate() {
        println!(
            "round {}: faultline / peer: throughput {throughput:.2}x (faultline's best), per CPU-second {per_cpu:.2}x (at the peer's rate)",
            i + 1
        );
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "faultline / peer, median of {} round(s): throughput {:.2}x, per CPU-second {:.2}x",
        ratios.len(),
        median(ratios.iter().map(|r| r.0).collect()),
        median(ratios.iter().map(|r| r.1).collect()),
    );
    ExitCode::from(exit::PASS as u8)
}

/// The standard reporters and, with `--metrics ADDR`, the metrics reporter and its server
/// (listening before anything starts, so a taken port is a usage error, exit 2).
async fn reporters_with_metrics(addr: Option<std::net::SocketAddr>) -> Result<Reporters, ExitCode> {
    use faultline::report::metrics::{serve, Metrics, MetricsReport};
    let Some(addr) = addr else {
        return Ok(Reporters::standard());
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        eprintln!("error: --metrics {addr}: cannot listen there: {e}");
        ExitCode::from(exit::INVALID as u8)
    })?;
    let metrics = Metrics::new();
    tokio::spawn(serve(listener, metrics.clone()));
    eprintln!("metrics: http://{addr}/metrics");
    Ok(Reporters::standard_with(vec![Box::new(MetricsReport(
        metrics,
    ))]))
}
