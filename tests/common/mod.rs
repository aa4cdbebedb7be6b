//! What every real-broker integration test needs: run the `faultline` binary on a shipped
//! scenario as a user would, read its `result.json`, and ask Docker what the run left behind.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

pub static DOCKER: Mutex<()> = Mutex::new(());

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Run {
    pub code: i32,
    pub result: Option<Value>,
    pub stderr: String,
    pub stdout: String,
}

pub fn faultline(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_faultline"));
    cmd.args(args).current_dir(root());
    cmd
}

/// The lines `child` writes on its standard error (which must be piped), as they come.
pub fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stderr = child
        .stderr
        .take()
        .expect("the child's standard error is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The run id a run's progress names in its first line (`==> run <id>: ...`).
pub fn run_id_in(progress: &[String]) -> Option<String> {
    progress
        .iter()
        .find_map(|l| l.split("==> run ").nth(1))
        .and_then(|r| r.split(':').next())
        .map(str::to_string)
}

pub fn run_scenario(scenario: &str, out: &Path) -> Run {
    run_scenario_with(scenario, out, &[])
}

/// `faultline run` with more arguments.
pub fn run_scenario_with(scenario: &str, out: &Path, extra: &[&str]) -> Run {
    let mut cmd = faultline(&["run", scenario, "--out", out.to_str().unwrap()]);
    cmd.args(extra);
    finished(cmd, out)
}

/// Runs `cmd` to its end; its exit code, output and the result.json it left in `dir`.
fn finished(mut cmd: Command, dir: &Path) -> Run {
    let output = cmd.output().expect("faultline runs");
    let result = std::fs::read_to_string(dir.join("result.json"))
        .ok()
        .map(|s| serde_json::from_str(&s).expect("result.json is JSON"));
    Run {
        code: output.status.code().unwrap_or(-1),
        result,
        stderr: String::from_utf8_lossy(&output.stderr).into(),
        stdout: String::from_utf8_lossy(&output.stdout).into(),
    }
}

/// `faultline report DIR`: the run directory's reports made again from its history.
pub fn report_again(dir: &Path) -> Run {
    finished(faultline(&["report", dir.to_str().unwrap()]), dir)
}

/// `faultline compare BASELINE DIR`.
pub fn compare(baseline: &Path, dir: &Path) -> Run {
    let args = ["compare", baseline.to_str().unwrap(), dir.to_str().unwrap()];
    finished(faultline(&args), dir)
}

/// Docker objects still carrying this run's label.
pub fn leftovers(run_id: &str) -> usize {
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

/// The run's notes, one per line.
pub fn notes(r: &Value) -> String {
    r["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn f64_at(v: &Value, path: &str) -> Option<f64> {
    v.pointer(path).and_then(Value::as_f64)
}

/// Containers of this run that are network-fault sidecars.
pub fn sidecars(run_id: &str) -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=faultline.run={run_id}"),
        ])
        .args(["--filter", "label=faultline.sidecar"])
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

pub fn passing(scenario: &str, out: &Path) -> Value {
    let run = run_scenario(scenario, out);
    let r = run
        .result
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["verdict"], "pass");
    assert_eq!(r["messages"]["lost"], 0);
    assert_eq!(r["messages"]["unexpected"], 0);
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
    r
}

/// A run of `scenario`, which has no fault: it passes with every publish acknowledged and read
/// back, none failed and none unknown (with nothing done to the cluster, an unknown outcome
/// would be the harness's own: a producer closed with publishes in flight).
pub fn fault_free(scenario: &str) -> Value {
    let out = tempfile::tempdir().unwrap();
    let r = passing(scenario, out.path());
    let m = &r["messages"];
    assert_eq!(m["failed"], 0, "{m}");
    assert_eq!(m["unknown"], 0, "{m}");
    assert!(m["acked"].as_u64().unwrap() > 0, "{m}");
    assert_eq!(m["acked"], m["invoked"], "{m}");
    assert_eq!(m["received"], m["acked"], "{m}");
    eprintln!("{scenario}: {m}");
    r
}

/// A topology of official images (Apache Kafka, Apache Pulsar) needs a container registry.
/// Offline, faultline must say the topology is unavailable here, naming the image, and exit 3
/// (said as NOT RUN in the test output); with a registry the scenario must pass.
pub fn registry_only(scenario: &str, image: &str) -> Option<Value> {
    let out = tempfile::tempdir().unwrap();
    let run = run_scenario(scenario, out.path());
    if run.code == 3 && run.stderr.contains("unavailable on this machine") {
        assert!(run.stderr.contains(image), "{}", run.stderr);
        assert!(run.result.is_none());
        let line = format!(
            "NOT RUN here: {scenario}: {image} cannot be had without a registry; faultline said: {}",
            run.stderr.lines().last().unwrap_or("")
        );
        eprintln!("{line}");
        not_run(&line);
        return None;
    }
    let r = run
        .result
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["messages"]["lost"], 0);
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
    Some(r)
}

/// Where tests that could not run here say so: `.ci/run` prints this file after the tests,
/// so that a test that passed without running its cluster is seen as not run, not as green.
pub fn not_run_file() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("not-run.txt")
}

/// Records that a test could not run here, and why.
pub fn not_run(line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(not_run_file())
    {
        let _ = writeln!(f, "{line}");
    }
}

/// A run's history as `faultline history dump` prints it: one JSON object per line.
pub fn history_lines(out: &Path) -> String {
    let dump = faultline(&["history", "dump", out.to_str().unwrap()])
        .output()
        .expect("faultline history dump");
    assert!(
        dump.status.success(),
        "history dump: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    String::from_utf8(dump.stdout).expect("UTF-8 JSON lines")
}

/// The probe observations of a run's history with this event (`peer-down`, `restarted`...),
/// each as (observer, subject, detail).
pub fn probe_events(out: &Path, event: &str) -> Vec<(String, String, String)> {
    let text = history_lines(out);
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["op"] == "probe" && r["event"] == event)
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("observer"), s("subject"), s("detail"))
        })
        .collect()
}

/// The number of values per tag in an HdrHistogram interval log.
pub fn hlog_counts(path: &Path) -> std::collections::BTreeMap<String, u64> {
    use base64::Engine;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let bytes = std::fs::read(path).expect("the interval log");
    let mut counts = std::collections::BTreeMap::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let LogEntry::Interval(h) = entry.expect("a well-formed interval log") else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.encoded_histogram())
            .unwrap();
        let hist: hdrhistogram::Histogram<u64> = Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(raw))
            .unwrap();
        let tag = h.tag().map_or("", |t| t.as_str()).to_string();
        *counts.entry(tag).or_insert(0) += hist.len();
    }
    counts
}

/// What headless Chromium made of a page.
pub struct Rendered {
    /// The DOM after loading, serialised.
    pub dom: String,
    /// Console messages the page logged.
    pub console: Vec<String>,
    /// Requests the page made (first line of each), through a proxy on loopback that answers
    /// none of them; requests Chromium makes to its vendor's services on its own are left out.
    pub requests: Vec<String>,
}

/// Hosts Chromium itself calls at start (sign-in, component updates, network time), whatever
/// the page: not the page's requests.
const BROWSER_OWN: &[&str] = &[
    "accounts.google.com",
    "update.googleapis.com",
    "clients2.google.com",
];

/// Opens `page` (a file) in Debian's headless Chromium, every request of it sent to a proxy on
/// loopback that records it and answers nothing. Panics when Chromium is missing: the
/// project's scripts/install-packages.sh installs it.
pub fn chromium(page: &Path) -> Rendered {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = proxy.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in proxy.incoming().take(1000) {
            let Ok(conn) = conn else { break };
            let mut first = String::new();
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = BufReader::new(&conn).read_line(&mut first);
            log.lock().unwrap().push(first.trim().to_string());
        }
    });
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-sync",
            "--disable-domain-reliability",
            "--no-pings",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--proxy-server=http://127.0.0.1:{port}"))
        .arg("--proxy-bypass-list=<-loopback>")
        .arg("--dump-dom")
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .expect("chromium runs (scripts/install-packages.sh installs it)");
    assert!(output.status.success(), "chromium: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    // Chromium has exited: whatever it sent has arrived, bar the read timeout.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let requests = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| !BROWSER_OWN.iter().any(|h| r.contains(h)))
        .cloned()
        .collect();
    Rendered {
        dom: String::from_utf8_lossy(&output.stdout).into(),
        console,
        requests,
    }
}

/// What in `value` does not hold to the schema committed at `schema_file` (under the root).
pub fn schema_errors(schema_file: &str, value: &Value) -> Vec<String> {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(schema_file)).unwrap()).unwrap();
    jsonschema::validator_for(&schema)
        .unwrap()
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}
