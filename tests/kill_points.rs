//! The kill-point matrix: faultline is signalled (SIGINT, SIGTERM, SIGKILL) at every phase of
//! a run, and with every fault kind in effect, on the smallest clusters that have each; after
//! each case nothing of the run is left in Docker (after `faultline clean` for SIGKILL), the
//! exit code is the documented one (3 for an interrupted run; killed by signal 9), and a
//! killed run's history can still be checked, never as a pass.
//!
//! Phases without a fault, the heal, the drain and the check run on one Mosquitto (a run of
//! 7 s, clock skew in effect from 1 s to 3 s); the other fault kinds on a 3-node NATS cluster
//! with a tmpfs (nats-server cannot have its clock skewed). The three signals of one phase go
//! to three runs at once, each on a cluster of its own; the phases run one after another.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

const MOSQUITTO: &str = "scenarios/mqtt/mosquitto-kill-points.yaml";
const NATS: &str = "scenarios/nats/jetstream-kill-points.yaml";

/// Where a case signals: the first progress line that matches, given the lines before it.
#[derive(Clone, Copy)]
enum At {
    /// A phase heading (`==> ...`) that starts with this text.
    Phase(&'static str),
    /// The fault of this kind is in effect (its heading, then its "in effect" line).
    InEffect(&'static str),
}

impl At {
    fn matches(self, seen: &[String], line: &str) -> bool {
        match self {
            At::Phase(p) => line.contains(&format!("==> {p}")),
            // The fault injected last is this kind (another fault's heal or the recovery
            // heading may come between its heading and its "in effect" line).
            At::InEffect(kind) => {
                line.contains("    in effect")
                    && seen
                        .iter()
                        .rev()
                        .find(|l| l.contains("==> fault "))
                        .is_some_and(|h| h.contains(&format!(": {kind} ")))
            }
        }
    }

    fn name(self) -> String {
        match self {
            At::Phase(p) => p.to_string(),
            At::InEffect(kind) => format!("{kind} in effect"),
        }
    }
}

/// How one case ended.
struct Case {
    signal: &'static str,
    at: String,
    run_id: String,
    /// `None`: ended by a signal.
    code: Option<i32>,
    out: tempfile::TempDir,
    output: Vec<String>,
}

/// Starts `faultline run scenario`, sends `signal` when `at` is reached, and waits for it.
fn case(scenario: &'static str, at: At, signal: &'static str) -> std::thread::JoinHandle<Case> {
    std::thread::spawn(move || {
        let out = tempfile::tempdir().unwrap();
        let mut child = faultline(&["run", scenario, "--out", out.path().to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = stderr_lines(&mut child);
        let deadline = Instant::now() + Duration::from_secs(240);
        let mut seen: Vec<String> = Vec::new();
        let mut signalled = false;
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let hit = !signalled && at.matches(&seen, &line);
            seen.push(line);
            if hit {
                Command::new("kill")
                    .args([&format!("-{signal}"), &child.id().to_string()])
                    .status()
                    .unwrap();
                signalled = true;
            }
        }
        if !signalled {
            let _ = child.kill();
        }
        let status = child.wait().unwrap();
        let run_id = run_id_in(&seen).unwrap_or_default();
        assert!(
            signalled,
            "{signal} at {}: the phase never came:\n{}",
            at.name(),
            seen.join("\n")
        );
        Case {
            signal,
            at: at.name(),
            run_id,
            code: status.code(),
            out,
            output: seen,
        }
    })
}

/// The three signals at `at`, at once; then what each left.
fn row(
    scenario: &'static str,
    at: At,
    signals: &[&'static str],
    runs: &mut Vec<String>,
) -> Vec<String> {
    let cases: Vec<Case> = signals
        .iter()
        .map(|s| case(scenario, at, s))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let mut problems = Vec::new();
    for c in &cases {
        let what = format!("{} at {}", c.signal, c.at);
        let completed = c.out.path().join("result.json").exists();
        match (c.signal, c.code) {
            ("KILL", None) => {
                let clean = faultline(&["clean"]).output().unwrap();
                if !clean.status.success() {
                    problems.push(format!("{what}: faultline clean failed: {clean:?}"));
                }
                // Killed during the check, the history is whole (its end record written).
                let whole = c.at == "checking";
                killed_run_is_checkable(&what, c.out.path(), whole, &mut problems);
            }
            // Interrupted: exit 3. A signal that comes once the run is being checked may find
            // it finished: then its verdict stands (the check row only).
            (_, Some(3)) => {}
            (_, Some(0)) if c.at == "checking" && completed => {}
            (_, code) => problems.push(format!(
                "{what}: exit {code:?} (expected {}):\n{}",
                if c.signal == "KILL" {
                    "killed by signal 9"
                } else {
                    "3"
                },
                c.output.join("\n")
            )),
        }
        if c.run_id.is_empty() {
            problems.push(format!("{what}: no run id in the output"));
        } else if leftovers(&c.run_id) != 0 {
            problems.push(format!(
                "{what}: {} container(s)/network(s) of run {} left:\n{}",
                leftovers(&c.run_id),
                c.run_id,
                c.output.join("\n")
            ));
        }
        eprintln!("kill point: {what}: exit {:?}", c.code);
        runs.push(c.run_id.clone());
    }
    problems
}

/// A run killed once its load began has a history that `faultline report` reads, and judges
/// `unknown` at best (it has no end record) unless the history was `whole` already.
fn killed_run_is_checkable(what: &str, dir: &Path, whole: bool, problems: &mut Vec<String>) {
    if !dir.join("history.bin").exists() {
        return; // killed before the history was opened (images, cluster, readiness)
    }
    let again = report_again(dir);
    let verdict = again
        .result
        .as_ref()
        .map(|r| r["verdict"].as_str().unwrap_or_default().to_string());
    let expected = again.code == 1 && verdict.as_deref() == Some("unknown");
    let finished = whole && again.code == 0 && verdict.as_deref() == Some("pass");
    if !(expected || finished) {
        problems.push(format!(
            "{what}: faultline report on the killed run: exit {} verdict {verdict:?} (expected 1, unknown): {}",
            again.code, again.stderr
        ));
    }
}

#[test]
fn signals_at_every_phase_and_fault_leave_nothing_behind() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let all = ["INT", "TERM", "KILL"];
    let mut problems = Vec::new();
    let mut runs = Vec::new();
    for at in [
        At::Phase("preparing images"),
        At::Phase("starting cluster"),
        At::Phase("waiting for the cluster's own health"),
        At::Phase("baseline"),
        At::InEffect("clock-skew"),
        At::Phase("heal fault 0"),
        At::Phase("draining"),
        At::Phase("checking"),
    ] {
        problems.extend(row(MOSQUITTO, at, &all, &mut runs));
    }
    // SIGHUP (the terminal closed) and SIGQUIT end a run as SIGTERM does.
    problems.extend(row(
        MOSQUITTO,
        At::Phase("baseline"),
        &["HUP", "QUIT"],
        &mut runs,
    ));
    for kind in [
        "partition",
        "loss",
        "bandwidth",
        "disk-full",
        "pause",
        "stop",
        // The packet program's sidecar; delay, duplicate and corrupt run the same one.
        "reorder",
    ] {
        problems.extend(row(NATS, At::InEffect(kind), &all, &mut runs));
    }
    // Nothing of any case appeared later either (a creation the daemon finished after its
    // run's teardown had listed the run's objects).
    for run in &runs {
        if !run.is_empty() && leftovers(run) != 0 {
            problems.push(format!("run {run}: objects appeared after its teardown"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
