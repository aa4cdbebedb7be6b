//! The command line without Docker: validation, exit codes, help.

use std::path::PathBuf;
use std::process::Command;

fn faultline(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn scenario_in_tmp(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let compose =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docker-compose/nats-jetstream-3.yml");
    let text = text.replace("COMPOSE", compose.to_str().unwrap());
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

const BAD: &str = "name: bad
cluster:
  compose: COMPOSE
workload:
  rate: 100
  duration: 20s
  nats: { stream: S, replicas: 3, storage: file, retention: forever }
faults:
  - at: 5s
    kind: kill
    target: n7
    for: 5
checks:
  max_lost: none
";

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut checked = 0;
    for family in std::fs::read_dir(&dir).unwrap() {
        for entry in std::fs::read_dir(family.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let (code, stdout, stderr) = faultline(&["validate", path.to_str().unwrap()]);
                assert_eq!(code, 0, "{}: {stderr}", path.display());
                assert!(stdout.contains(": valid ("), "{stdout}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 6, "only {checked} scenarios found");
}

#[test]
fn a_fault_this_machine_cannot_do_fails_validation_with_reason_and_alternative() {
    let (_dir, path) = scenario_in_tmp(
        "name: skew
cluster:
  compose: COMPOSE
workload:
  rate: 100
  duration: 20s
  nats: { stream: S }
faults:
  - { at: 5s, kind: clock-skew, target: n1 }
",
    );
    let (code, _, stderr) = faultline(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(":9:21: faults[0].kind: fault kind clock-skew"),
        "{stderr}"
    );
    assert!(stderr.contains("alternative"), "{stderr}");
}

#[test]
fn mqtt_5_on_a_broker_that_speaks_3_1_1_only_fails_validation() {
    let (_dir, path) = scenario_in_tmp(
        "name: v5
cluster:
  compose: COMPOSE
workload:
  rate: 100
  duration: 20s
  mqtt:
    version: \"5\"
",
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("nats-jetstream-3.yml", "rabbitmq-mqtt-3-quorum.yml");
    std::fs::write(&path, text).unwrap();
    let (code, _, stderr) = faultline(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr
            .contains(":8:5: workload.mqtt.version: RabbitMQ 3.10's MQTT plugin speaks 3.1.1 only"),
        "{stderr}"
    );
}

#[test]
fn validate_reports_every_problem_with_its_position_and_exits_2() {
    let (_dir, path) = scenario_in_tmp(BAD);
    let p = path.to_str().unwrap();
    let (code, _, stderr) = faultline(&["validate", p]);
    assert_eq!(code, 2);
    let expected = [
        format!("{p}:7:50: workload.nats: unknown key `retention`"),
        format!("{p}:11:13: faults[0].target: no node or role named \"n7\""),
        format!("{p}:12:10: faults[0].for: expected a duration"),
        format!("{p}:14:13: checks.max_lost: expected a whole number"),
    ];
    for e in &expected {
        assert!(stderr.contains(e.as_str()), "missing {e:?} in:\n{stderr}");
    }
    assert!(
        stderr.contains("4 problem(s) found; nothing was started"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_an_invalid_scenario_before_touching_docker() {
    let (_dir, path) = scenario_in_tmp(BAD);
    let (code, stdout, stderr) = faultline(&["run", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(!stderr.contains("==> run"), "{stderr}");
}

#[test]
fn a_missing_file_and_bad_usage_exit_2() {
    let (code, _, stderr) = faultline(&["validate", "no/such/scenario.yaml"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no/such/scenario.yaml: cannot read scenario"),
        "{stderr}"
    );
    let (code, _, _) = faultline(&["explode"]);
    assert_eq!(code, 2);
}

#[test]
fn help_documents_every_command_and_the_exit_codes() {
    let (code, stdout, _) = faultline(&["--help"]);
    assert_eq!(code, 0);
    for word in [
        "run",
        "validate",
        "capacity",
        "bench",
        "clean",
        "Exit codes",
        "3 infrastructure error",
    ] {
        assert!(stdout.contains(word), "--help lacks {word:?}:\n{stdout}");
    }
    let (_, stdout, _) = faultline(&["run", "--help"]);
    assert!(stdout.contains("--seed") && stdout.contains("--out") && stdout.contains("--metrics"));
    let (_, stdout, _) = faultline(&["capacity", "--help"]);
    assert!(stdout.contains("--no-failover") && stdout.contains("--metrics"));
}

/// `faultline schema scenario|result` prints what `schemas/` holds; with
/// `FAULTLINE_WRITE_SCHEMAS=1` the test writes the files instead (after a change to a
/// scenario reader or to result.json, review the diff and commit it).
#[test]
fn the_committed_schemas_are_the_ones_faultline_prints() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for of in ["scenario", "result", "capacity"] {
        let (code, printed, stderr) = faultline(&["schema", of]);
        assert_eq!(code, 0, "{stderr}");
        let schema: serde_json::Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        let file = root.join(format!("schemas/{of}.schema.json"));
        if std::env::var_os("FAULTLINE_WRITE_SCHEMAS").is_some() {
            std::fs::write(&file, &printed).unwrap();
        }
        let committed = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            committed == printed,
            "{} is not what `faultline schema {of}` prints: run FAULTLINE_WRITE_SCHEMAS=1 cargo test --release --test cli, review the diff, commit it",
            file.display()
        );
    }
    let (code, _, stderr) = faultline(&["schema", "compose"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn history_dump_of_something_that_is_no_history_exits_2() {
    let (code, _, stderr) = faultline(&["history", "dump", "scenarios"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("history.bin"), "{stderr}");
    let (code, _, stderr) = faultline(&["history", "dump", "no/such/dir"]);
    assert_eq!(code, 2, "{stderr}");
}

/// A dozen lines of nested aliases (10^10 nodes expanded) once grew `validate` to 17 GB: now
/// refused with exit 2 and the position where the count ran over, before anything is built.
#[test]
fn a_billion_laughs_scenario_is_refused_with_exit_2() {
    let mut doc = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        let refs = vec![format!("*a{p}"); 10].join(", ");
        doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let (_dir, file) = scenario_in_tmp(&doc);
    let (code, _, stderr) = faultline(&["validate", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(":5:45: invalid YAML: more than 100000 nodes with aliases expanded"),
        "{stderr}"
    );
    let (code, _, stderr) = faultline(&["run", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn capacity_without_a_capacity_section_or_with_a_taken_metrics_port_exits_2_before_docker() {
    let (code, _, err) = faultline(&["capacity", "scenarios/nats/jetstream-leader-kill.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no `capacity:` section"), "{err}");
    // A port in use: refused before the cluster starts.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = faultline(&[
        "capacity",
        "scenarios/nats/jetstream-capacity-short.yaml",
        "--metrics",
        &addr,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("--metrics {addr}: cannot listen there")),
        "{err}"
    );
    assert!(!err.contains("starting cluster"), "{err}");
}

#[test]
fn the_generator_bench_refuses_nonsense_and_prints_its_table() {
    let (code, _, err) = faultline(&["bench", "generator", "--start", "0"]);
    assert_eq!(code, 2, "{err}");
    // One short step per producer count: the table and a ceiling line each (figures are the
    // machine's; their presence is what is checked).
    let (code, out, err) = faultline(&[
        "bench",
        "generator",
        "--seconds",
        "0.3",
        "--start",
        "1000",
        "--max",
        "1000",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("producers  offered/s  achieved/s"), "{out}");
    assert_eq!(out.matches("ceiling with").count(), 2, "{out}");
}

/// Every file under tests/bad-scenarios is refused by `validate` with exit 2 and, as its first
/// line, exactly the `file:line:column: message` its first line (`# expect: ...`) states.
#[test]
fn every_bad_scenario_is_refused_with_its_exact_position_and_message() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/bad-scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "{} bad scenarios", files.len());
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` first line", file.display()));
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let (code, _, stderr) = faultline(&["validate", &rel]);
        let first = stderr.lines().next().unwrap_or_default();
        let want = format!("error: {rel}:{expected}");
        if code != 2 || first != want {
            wrong.push(format!(
                "{rel}: exit {code}\n  expected: {want}\n  found:    {first}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
