//! Integration tests against real NATS JetStream clusters in Docker.
//!
//! Each test runs the `faultline` binary on a scenario from `scenarios/nats/`, as a user would,
//! and asserts on its exit code, on `result.json`, and on Docker holding nothing of the run
//! afterwards. They share the machine's two cores with the cluster, so they run one at a time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

static DOCKER: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Run {
    code: i32,
    result: Option<Value>,
    stderr: String,
    stdout: String,
}

fn faultline(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_faultline"));
    cmd.args(args).current_dir(root());
    cmd
}

fn run_scenario(scenario: &str, out: &Path) -> Run {
    let output = faultline(&["run", scenario, "--out", out.to_str().unwrap()])
        .output()
        .expect("faultline runs");
    let result = std::fs::read_to_string(out.join("result.json"))
        .ok()
        .map(|s| serde_json::from_str(&s).expect("result.json is JSON"));
    Run {
        code: output.status.code().unwrap_or(-1),
        result,
        stderr: String::from_utf8_lossy(&output.stderr).into(),
        stdout: String::from_utf8_lossy(&output.stdout).into(),
    }
}

/// Docker objects still carrying this run's label.
fn leftovers(run_id: &str) -> usize {
    let filter = format!("label=faultline.run={run_id}");
    let count = |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .args(["--filter", &filter, "-q"])
            .output()
            .expect("docker CLI");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    count(&["ps", "-a"]) + count(&["network", "ls"])
}

fn f64_at(v: &Value, path: &str) -> Option<f64> {
    v.pointer(path).and_then(Value::as_f64)
}

#[test]
fn leader_kill_loses_nothing_and_measures_failover() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = run_scenario("scenarios/nats/jetstream-leader-kill.yaml", out.path());
    let r = run
        .result
        .as_ref()
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["verdict"], "pass");
    let m = &r["messages"];
    assert_eq!(m["lost"], 0);
    assert_eq!(m["unexpected"], 0);
    assert!(m["acked"].as_u64().unwrap() > 10_000, "{m}");

    let f = &r["faults"][0];
    assert_eq!(f["kind"], "kill");
    // The target was resolved from the cluster's own view of the stream leader, and the
    // cluster reported a different leader afterwards.
    let target = f["target"].as_str().unwrap();
    let new_leader = f["new_leader"].as_str().expect("a new leader was observed");
    assert_ne!(new_leader, target);
    let detection = f64_at(f, "/detection_ms").expect("detection measured");
    let failover = f64_at(f, "/failover_ms").expect("failover measured");
    let leader_ms = f64_at(f, "/new_leader_ms").unwrap();
    // A killed process's routes close at once: peers notice within a few probe intervals.
    assert!(detection < 1_000.0, "detection {detection} ms: {f}");
    // Publishes resume only once a new leader exists.
    assert!(
        failover > 0.0 && failover <= 15_000.0,
        "failover {failover} ms"
    );
    assert!(
        failover + 1_000.0 >= leader_ms,
        "acknowledged at {failover} ms, long before the new leader appeared at {leader_ms} ms"
    );
    assert!(f64_at(f, "/max_ack_gap_ms").unwrap() >= failover - 2_000.0);
    assert!(f64_at(f, "/client_error_ms").is_some());
    for phase in ["baseline", "fault", "recovery"] {
        let l = &r["latency_ms"][phase];
        assert!(l["count"].as_u64().unwrap() > 0, "{phase}: {l}");
        assert!(f64_at(l, "/p50").unwrap() <= f64_at(l, "/p999").unwrap());
    }
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
    let history = std::fs::read_to_string(out.path().join("history.jsonl")).unwrap();
    assert!(history.lines().count() as u64 > 2 * m["acked"].as_u64().unwrap());
}

#[test]
fn r1_memory_stream_kill_is_caught_as_loss() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = run_scenario("scenarios/nats/jetstream-r1-memory-kill.yaml", out.path());
    let r = run
        .result
        .as_ref()
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["verdict"], "fail");
    let lost = r["messages"]["lost"].as_u64().unwrap();
    // Everything acknowledged before the kill (about 8 s at 200/s) was in that node's memory.
    assert!(lost > 1_000, "lost {lost}");
    assert!(!r["lost_sample"].as_array().unwrap().is_empty());
    assert!(r["checks"]["failed"][0]
        .as_str()
        .unwrap()
        .starts_with("lost:"));
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
}

#[test]
fn ctrl_c_in_the_middle_of_a_fault_leaves_nothing_behind() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let mut child = faultline(&[
        "run",
        "scenarios/nats/jetstream-r1-memory-kill.yaml",
        "--out",
        out.path().to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // Wait until the fault is in effect (the node is down), then interrupt.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut seen = Vec::new();
    let run_id = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no fault started:\n{}", seen.join("\n")));
        seen.push(line.clone());
        if line.contains("==> fault 0:") {
            let first = seen.iter().find(|l| l.contains("==> run ")).unwrap();
            break first
                .split("run ")
                .nth(1)
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string();
        }
    };
    std::thread::sleep(Duration::from_secs(1));
    assert!(leftovers(&run_id) > 0, "the run's containers exist mid-run");
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "interrupted runs exit 3");
    assert_eq!(leftovers(&run_id), 0, "teardown removed everything");
}
