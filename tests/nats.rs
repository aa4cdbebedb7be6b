//! Integration tests against real NATS JetStream clusters in Docker.
//!
//! Each test runs the `faultline` binary on a scenario from `scenarios/nats/`, as a user would,
//! and asserts on its exit code, on `result.json`, and on Docker holding nothing of the run
//! afterwards. They share the machine's two cores with the cluster, so they run one at a time.

use std::process::Command;
use std::process::Stdio;

use serde_json::Value;
use std::time::{Duration, Instant};

mod common;
use common::*;

#[test]
fn leader_kill_loses_nothing_and_measures_failover() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let baselines = tempfile::tempdir().unwrap();
    let saved = baselines.path().join("leader-kill");
    let run = run_scenario_with(
        "scenarios/nats/jetstream-leader-kill.yaml",
        out.path(),
        &["--save-baseline", saved.to_str().unwrap()],
    );
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
    // Publishes resume only once a new leader exists: the stream's Raft group elects one
    // within its election timeout (nats-server: 4 to 9 s, randomized), and the client's next
    // publish after that goes through; a second more is the client's reconnect and the probe.
    // (Measured here: 4.3 to 4.8 s.) Anything slower is a regression of the cluster or of the
    // measurement.
    assert!(
        failover > 0.0 && failover <= 10_000.0,
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
    let history = history_lines(out.path());
    assert!(history.lines().count() as u64 > 2 * m["acked"].as_u64().unwrap());
    // The binary history: at most 32 bytes on disk per published message (its invoke, its
    // completion and its receipt together).
    let bytes = std::fs::metadata(out.path().join("history.bin"))
        .unwrap()
        .len();
    let per_message = bytes as f64 / m["invoked"].as_u64().unwrap() as f64;
    eprintln!("history.bin: {bytes} bytes, {per_message:.1} per published message");
    assert!(
        per_message <= 32.0,
        "{per_message:.1} bytes per published message"
    );
    // The reports for CI: a JUnit case per check, all passing, and the Markdown summary.
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    for case in ["lost", "unexpected", "fault 0 (kill "] {
        assert!(
            junit.contains(&format!("<testcase name=\"{case}")),
            "{junit}"
        );
    }
    assert!(junit.contains(r#"failures="0""#), "{junit}");
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(
        summary.starts_with("## faultline: jetstream-leader-kill — PASS"),
        "{summary}"
    );
    // result.json holds to the schema committed under schemas/.
    let errors = schema_errors("schemas/result.schema.json", r);
    assert!(
        errors.is_empty(),
        "result.json against its schema: {errors:#?}"
    );
    // The latency interval log holds every acknowledged publish once, and every failed one.
    let hlog = hlog_counts(&out.path().join("latency.hlog"));
    assert_eq!(hlog.get("ok").copied(), m["acked"].as_u64(), "{hlog:?}");
    assert_eq!(
        hlog.get("fail").copied().unwrap_or(0),
        m["failed"].as_u64().unwrap()
    );
    // report.html: self-contained (no reference to anything outside the file), rendered by
    // a real browser without a request or a console message, the fault drawn.
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    for reference in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(!html.contains(reference), "{reference} in report.html");
    }
    // First, that the browser check catches what it is meant to.
    let control = out.path().join("control.html");
    std::fs::write(
        &control,
        r#"<!DOCTYPE html><p>x</p><img src="http://faultline-control.invalid/x.png"><script>console.error("control")</script>"#,
    )
    .unwrap();
    let c = chromium(&control);
    assert!(
        c.requests
            .iter()
            .any(|r| r.contains("faultline-control.invalid")),
        "the proxy saw no request of the control page: {:?}",
        c.requests
    );
    assert!(
        c.console.iter().any(|l| l.contains("control")),
        "{:?}",
        c.console
    );
    std::fs::remove_file(&control).unwrap();
    let page = chromium(&out.path().join("report.html"));
    assert!(
        page.requests.is_empty(),
        "report.html requested {:?}",
        page.requests
    );
    assert!(page.console.is_empty(), "console: {:?}", page.console);
    assert!(page.dom.contains(r#"id="verdict">PASS</span>"#));
    assert_eq!(page.dom.matches(r#"class="fault-window""#).count(), 3);
    for marker in ["marker-detection", "marker-new-leader", "marker-failover"] {
        assert!(page.dom.contains(marker), "{marker} missing from the DOM");
    }
    // The history alone makes the same result again.
    let first = std::fs::read_to_string(out.path().join("result.json")).unwrap();
    std::fs::remove_file(out.path().join("result.json")).unwrap();
    let again = report_again(out.path());
    assert_eq!(again.code, 0, "{}", again.stderr);
    let second = std::fs::read_to_string(out.path().join("result.json")).unwrap();
    assert_eq!(first, second, "faultline report wrote another result.json");

    // The baseline gate. The run passed, so --save-baseline added it to the directory.
    assert_eq!(std::fs::read_dir(&saved).unwrap().count(), 1);
    let same = compare(&saved, out.path());
    assert_eq!(same.code, 0, "compared with itself: {}", same.stdout);
    let gate = &same.result.unwrap()["regression"];
    assert!(gate["comparisons"].as_array().unwrap().len() >= 3, "{gate}");
    // A baseline that failed over in 50 ms makes this run a regression on failover.
    let mut fast: Value = serde_json::from_str(&first).unwrap();
    fast["faults"][0]["failover_ms"] = serde_json::json!(50.0);
    let fast_file = baselines.path().join("fast.json");
    std::fs::write(&fast_file, fast.to_string()).unwrap();
    let slower = compare(&fast_file, out.path());
    assert_eq!(slower.code, 1, "{}", slower.stdout);
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"<testcase name="regression: fault 0 (kill): failover""#),
        "{junit}"
    );
    assert!(junit.contains(r#"failures="1""#), "{junit}");
    assert!(slower.stdout.contains("REGRESSION"), "{}", slower.stdout);
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
    // CI sees the loss as a failing JUnit case named after the check, with the count.
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(&format!(
            "<failure message=\"lost: {lost} acknowledged message(s) never received"
        )),
        "{junit}"
    );
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
    // Reported again from the history, it fails again, with the same count.
    let again = report_again(out.path());
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert_eq!(again.result.unwrap()["messages"]["lost"], lost);
}

#[test]
fn ctrl_c_in_the_middle_of_a_partition_leaves_nothing_behind() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let mut child = faultline(&[
        "run",
        "scenarios/nats/jetstream-partition-leader-minority.yaml",
        "--out",
        out.path().to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let rx = stderr_lines(&mut child);
    // Wait until the partition is in effect (its sidecars hold the iptables rules), then
    // interrupt.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut seen = Vec::new();
    let run_id = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the partition never started:\n{}", seen.join("\n")));
        seen.push(line.clone());
        // The line after the fault heading describes the partition once it is applied.
        if line.contains(" | ") && seen.iter().any(|l| l.contains("==> fault 0: partition")) {
            break run_id_in(&seen).expect("the progress names the run");
        }
    };
    assert!(
        sidecars(&run_id) > 0,
        "the partition's sidecars exist mid-run"
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "interrupted runs exit 3");
    assert_eq!(
        leftovers(&run_id),
        0,
        "teardown removed nodes, sidecars and network"
    );
    // The history of a killed run can still be reported: never as a pass.
    assert!(!out.path().join("result.json").exists());
    let again = report_again(out.path());
    assert_eq!(again.code, 1, "{}", again.stderr);
    let r = again.result.expect("result.json rebuilt from the history");
    assert_eq!(r["verdict"], "unknown");
    assert!(notes(&r).contains("no end record"), "{}", notes(&r));
}

#[test]
fn isolating_the_stream_leader_loses_nothing() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing(
        "scenarios/nats/jetstream-partition-leader-minority.yaml",
        out.path(),
    );
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "partition");
    let target = f["target"].as_str().unwrap();
    assert_eq!(
        f["description"].as_str().unwrap().split(" | ").next(),
        Some(target),
        "{f}"
    );
    // The majority elected a leader of its own; the isolated side's publishes failed.
    let new_leader = f["new_leader"].as_str().expect("a new leader was observed");
    assert_ne!(new_leader, target);
    assert!(f64_at(f, "/detection_ms").is_some(), "{f}");
    assert!(f64_at(f, "/failover_ms").is_some(), "{f}");
    assert!(f64_at(f, "/client_error_ms").is_some(), "{f}");
    // The heal ran, removed the rules and checked they were gone.
    assert!(f64_at(f, "/t_heal_ms").is_some(), "{f}");
    assert_eq!(r["detection_ms_by_kind"]["partition"]["detected"], 1);
}

#[test]
fn a_majority_minority_split_of_five_loses_nothing() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing(
        "scenarios/nats/jetstream-partition-majority-minority.yaml",
        out.path(),
    );
    let f = &r["faults"][0];
    let description = f["description"].as_str().unwrap();
    let minority: Vec<&str> = description
        .split(" | ")
        .next()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(minority.len(), 2, "{description}");
    assert!(minority.contains(&f["target"].as_str().unwrap()));
    let new_leader = f["new_leader"]
        .as_str()
        .expect("the majority elected a leader");
    assert!(
        !minority.contains(&new_leader),
        "{new_leader} is in the minority {minority:?}"
    );
    assert!(f64_at(f, "/t_heal_ms").is_some(), "{f}");
}

#[test]
fn packet_loss_on_the_leader_drops_packets_and_loses_nothing() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/nats/jetstream-loss-20.yaml", out.path());
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "loss");
    assert_eq!(f["description"], "20 % of packets sent dropped");
    assert!(f64_at(f, "/t_heal_ms").is_some(), "{f}");
    // The rules really dropped packets, by the kernel's own count read just before the heal
    // (about 20 % of what the leader sent: thousands of packets at this load, so the share
    // sits well inside 10-30 %). The latency effect is a figure, not an assertion: a ratio of
    // two latencies is a timed test that a busy machine breaks.
    let notes = f["notes"].to_string();
    let (dropped, sent) = dropped_of_sent(&notes).unwrap_or_else(|| panic!("no counters: {f}"));
    assert!(sent >= 1000, "the leader sent only {sent} packets: {f}");
    let share = dropped as f64 / sent as f64;
    assert!(
        (0.10..0.30).contains(&share),
        "dropped {dropped} of {sent}: {f}"
    );
    println!(
        "loss 20 %: dropped {dropped} of {sent} packets; p99 {} ms under loss vs {} ms before",
        f64_at(&r, "/latency_ms/fault/p99").unwrap_or(f64::NAN),
        f64_at(&r, "/latency_ms/baseline/p99").unwrap_or(f64::NAN)
    );
}

#[test]
fn a_delay_on_the_leader_holds_its_packets_and_loses_nothing() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/nats/jetstream-delay.yaml", out.path());
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "delay");
    assert!(f64_at(f, "/t_heal_ms").is_some(), "{f}");
    let notes = f["notes"].to_string();
    assert!(!notes.contains("did not complete"), "{f}");
    // In effect only once measured: the leader's round trip to a peer, before the rules and
    // with them (the median of 7 connects; the delay is 100 ms ± 10 ms, normal).
    let description = f["description"].as_str().unwrap_or_default();
    let (before, after) = round_trips(description).unwrap_or_else(|| panic!("no round trips: {f}"));
    assert!(after - before >= 80.0, "{description}");
    // netem where the kernel has it (an egress delay to every peer is netem's to do), the
    // packet program otherwise.
    let netem = description.contains("netem on eth0");
    assert_eq!(netem, faultline::faults::netem_available(), "{description}");
    let held = if netem {
        assert!(notes.contains("netem removed from eth0"), "{f}");
        0
    } else {
        // The program held the leader's packets and let every one of them go.
        let held = number_before(&notes, " held, ").unwrap_or_else(|| panic!("no counters: {f}"));
        let let_go = number_before(&notes, " let go").unwrap_or_else(|| panic!("no counters: {f}"));
        assert!(held >= 100, "the program held only {held} packets: {f}");
        assert_eq!(held, let_go, "{f}");
        held
    };
    // Every publish waits for at least one leg the leader sends (to a follower, or back to
    // the client): a lower bound the delay itself sets, which a busy machine only raises.
    let fault_p50 = f64_at(&r, "/latency_ms/fault/p50").expect("fault-phase latency");
    assert!(fault_p50 >= 100.0, "fault-phase p50 {fault_p50} ms");
    println!(
        "delay 100 ms: round trip {before:.1} -> {after:.1} ms; {held} packets held; p50 {fault_p50} ms during the fault vs {} ms before",
        f64_at(&r, "/latency_ms/baseline/p50").unwrap_or(f64::NAN)
    );
}

#[test]
fn reordered_duplicated_and_corrupted_packets_reach_the_leaders_kernel_and_lose_nothing() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/nats/jetstream-packet-faults.yaml", out.path());
    let faults = r["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 3, "{r}");
    let mut figures = Vec::new();
    // Per fault: the TCP counter of the leader's kernel that proves its packets were changed.
    for (f, kind, kernel) in [
        (&faults[0], "reorder", "TCPOFOQueue"),
        (&faults[1], "duplicate", "TCPDSACKOldSent"),
        (&faults[2], "corrupt", "InCsumErrors"),
    ] {
        assert_eq!(f["kind"], kind, "{f}");
        assert!(f64_at(f, "/t_heal_ms").is_some(), "{f}");
        let description = f["description"].as_str().unwrap_or_default();
        // In effect only once the program had acted on a packet.
        assert!(description.contains(": in effect after "), "{description}");
        let notes = f["notes"].to_string();
        assert!(!notes.contains("did not complete"), "{f}");
        // The program saw the leader's packets, acted on about its share of them, and let
        // every one of them go (the heal stopped it and removed its rules, or it would fail).
        let queued = number_before(&notes, " packets queued").unwrap_or_else(|| panic!("{f}"));
        let let_go = number_before(&notes, " let go").unwrap_or_else(|| panic!("{f}"));
        assert!(queued >= 200, "only {queued} packets queued: {f}");
        assert_eq!(queued, let_go, "{f}");
        // The leader's kernel saw it: out-of-order segments, duplicates it acknowledged as
        // such (DSACK), segments whose checksum failed.
        let grew = counter_growth(&notes, kernel).unwrap_or(0);
        assert!(grew > 0, "{kernel} did not grow: {f}");
        figures.push(format!("{kind}: {queued} packets queued, {kernel} +{grew}"));
    }
    let m = &r["messages"];
    assert_eq!(m["duplicated"], 0, "{m}");
    println!(
        "{}; p99 {} ms during the faults vs {} ms before; {m}",
        figures.join("; "),
        f64_at(&r, "/latency_ms/fault/p99").unwrap_or(f64::NAN),
        f64_at(&r, "/latency_ms/baseline/p99").unwrap_or(f64::NAN)
    );
}

#[test]
fn a_coordinated_power_loss_with_sync_always_loses_nothing() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/nats/jetstream-power-loss-sync.yaml", out.path());
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "power-loss");
    let description = f["description"].as_str().unwrap_or_default();
    // Every node's layer cut its power (and said what it rolled back)...
    for node in ["n1:", "n2:", "n3:"] {
        assert!(description.contains(node), "{description}");
    }
    // ...and, started again, read back its probe: the synced write kept, the other gone.
    let notes = f["notes"].to_string();
    assert!(
        notes.contains("synced write kept, the one not synced gone, on n1, n2, n3"),
        "{f}"
    );
    assert!(
        r["messages"]["acked"].as_u64().unwrap() > 1_000,
        "{}",
        r["messages"]
    );
    println!("power loss, sync always: {description}; {}", r["messages"]);
}

#[test]
fn a_coordinated_power_loss_with_the_default_sync_loses_acknowledged_messages() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    // NATS fsyncs every two minutes by default: what it acknowledged since is on no disk
    // when every node loses power at once. The finding this test keeps: it is lost.
    let run = run_scenario("scenarios/nats/jetstream-power-loss.yaml", out.path());
    let r = run
        .result
        .as_ref()
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let f = &r["faults"][0];
    assert!(f["notes"]
        .to_string()
        .contains("synced write kept, the one not synced gone, on n1, n2, n3"));
    let lost = r["messages"]["lost"].as_u64().unwrap();
    assert!(lost > 500, "lost {lost}: {}", r["messages"]);
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
    println!(
        "power loss, default sync: lost {lost} of {} acknowledged; {}",
        r["messages"]["acked"], f["description"]
    );
}

#[test]
fn flipped_bits_and_a_cut_end_in_one_replicas_blocks_are_named_and_lose_nothing() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/nats/jetstream-damaged-replica.yaml", out.path());
    let flip = &r["faults"][0];
    assert_eq!(flip["kind"], "corrupt-file");
    let flipped = flip["description"].as_str().unwrap_or_default();
    // Applied only once read back as written: 64 flips on n3, the first 8 named with their
    // file, byte and bit.
    assert!(flipped.contains("flipped 64 bit(s) in"), "{flipped}");
    assert!(
        flipped.contains("n3: jetstream/$G/streams/DAMAGED/msgs/"),
        "{flipped}"
    );
    assert_eq!(flipped.matches(" bit ").count(), 8, "{flipped}");
    assert!(flipped.contains("and 56 more"), "{flipped}");
    let cut = &r["faults"][1];
    assert_eq!(cut["kind"], "truncate-file");
    let cut = cut["description"].as_str().unwrap_or_default();
    // "<file> <before> -> <after> bytes" for each block file: 1000 bytes shorter each.
    let sizes: Vec<(u64, u64)> = cut
        .split(" -> ")
        .zip(cut.split(" -> ").skip(1))
        .filter_map(|(a, b)| {
            let before = a.rsplit(' ').next()?.parse().ok()?;
            let after = b.split(' ').next()?.parse().ok()?;
            Some((before, after))
        })
        .collect();
    assert!(!sizes.is_empty(), "{cut}");
    for (before, after) in &sizes {
        assert_eq!(before - after, (*before).min(1000), "{cut}");
    }
    println!(
        "corrupt-file: {flipped}\ntruncate-file: {cut}\n{}",
        r["messages"]
    );
}

/// (before, after) from a delay's "round trip B ms before, A ms with the delay".
fn round_trips(description: &str) -> Option<(f64, f64)> {
    let rest = &description[description.find("round trip ")? + "round trip ".len()..];
    let mut words = rest.split_whitespace();
    let before = words.next()?.parse().ok()?;
    let rest = &rest[rest.find("before, ")? + "before, ".len()..];
    let after = rest.split_whitespace().next()?.parse().ok()?;
    Some((before, after))
}

/// The number just before `label` in `text` ("1234 packets queued").
fn number_before(text: &str, label: &str) -> Option<u64> {
    let i = text.find(label)?;
    text[..i].rsplit(' ').next()?.parse().ok()
}

/// How much a TCP counter grew, from a packet fault's "NAME +N (...)" heal note.
fn counter_growth(notes: &str, name: &str) -> Option<u64> {
    let rest = &notes[notes.find(&format!("{name} +"))? + name.len() + 2..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// (dropped, sent) from a loss fault's "dropped D of N packets sent" note.
fn dropped_of_sent(notes: &str) -> Option<(u64, u64)> {
    let rest = &notes[notes.find("dropped ")? + "dropped ".len()..];
    let mut words = rest.split_whitespace();
    let dropped = words.next()?.parse().ok()?;
    (words.next()? == "of").then_some(())?;
    let sent = words.next()?.parse().ok()?;
    Some((dropped, sent))
}

#[test]
fn a_rolling_restart_restarts_every_node_in_turn_and_loses_nothing() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/nats/jetstream-rolling-restart.yaml", out.path());
    let faults = r["faults"].as_array().unwrap();
    let targets: Vec<&str> = faults
        .iter()
        .map(|f| f["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, vec!["n1", "n2", "n3"]);
    let mut previous_heal = 0.0;
    for f in faults {
        assert_eq!(f["kind"], "restart");
        assert_eq!(f["spec"], 0);
        let start = f64_at(f, "/t_fault_ms").unwrap();
        let heal = f64_at(f, "/t_heal_ms").expect("each step waits for the cluster's health");
        assert!(start >= previous_heal, "steps overlap: {faults:?}");
        previous_heal = heal;
    }
}

#[test]
fn every_fault_kind_applies_and_heals_on_a_real_cluster() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/nats/jetstream-fault-tour.yaml", out.path());
    let faults = r["faults"].as_array().unwrap();
    let kinds: Vec<&str> = faults.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        vec![
            "stop",
            "bandwidth",
            "partition",
            "pause",
            "kill",
            "loss",
            "loss",
            "partition"
        ]
    );
    for f in faults {
        // Applied (t_fault), healed and checked gone (t_heal), with no failed heal noted.
        assert!(f64_at(f, "/t_fault_ms").is_some(), "{f}");
        assert!(f64_at(f, "/t_heal_ms").is_some(), "{f}");
        let notes = f["notes"].to_string();
        assert!(!notes.contains("did not complete"), "{f}");
    }
    assert_eq!(
        faults[4]["target"], "n1,n2,n3",
        "a coordinated crash of every node"
    );
    assert_eq!(faults[5]["spec"], 5);
    assert_eq!(faults[6]["spec"], 5, "the loss fault repeats");
    assert_eq!(
        faults[1]["description"],
        "outgoing bandwidth limited to 256kbit"
    );
    assert!(faults[2]["description"]
        .as_str()
        .unwrap()
        .contains("dropped (the reverse flows)"));
    assert_ne!(
        faults[2]["target"], "",
        "a one-way partition names its dropped side"
    );
    let cut = format!(
        "clients cut off from {}",
        faults[7]["target"].as_str().unwrap()
    );
    assert_eq!(faults[7]["description"], cut.as_str());
    // The crash stopped every acknowledgement for a while, and the cluster came back.
    assert!(
        f64_at(&faults[4], "/max_ack_gap_ms").unwrap() > 1_000.0,
        "{}",
        faults[4]
    );
    assert!(
        f64_at(&faults[4], "/failover_ms").is_some(),
        "{}",
        faults[4]
    );
}

#[test]
fn scaling_out_to_four_then_retiring_the_leader_moves_the_stream_to_the_new_node() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/nats/jetstream-scale-out.yaml", out.path());
    let faults = r["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2, "{faults:?}");
    let (grow, shrink) = (&faults[0], &faults[1]);
    let notes = |f: &Value| f["notes"].to_string();

    assert_eq!(grow["kind"], "scale-out");
    assert_eq!(grow["target"], "n4");
    // The cluster's own monitoring saw n4 join, and the harness waited for it.
    assert!(f64_at(grow, "/settled_ms").is_some(), "{grow}");
    assert!(
        grow["detection_signal"]
            .as_str()
            .is_some_and(|s| s.contains("n4 up")),
        "{grow}"
    );
    assert!(notes(grow).contains("n4 joined"), "{grow}");
    // A join under load costs no throughput: the step's rate stays near the baseline.
    let base = f64_at(&r, "/baseline_acks_per_s").unwrap();
    let during = f64_at(grow, "/window_acks_per_s").expect("the step's throughput");
    assert!(
        during > 0.8 * base,
        "{during} acks/s while n4 joined vs {base}"
    );
    assert!(f64_at(grow, "/window_latency_ms/p99").is_some(), "{grow}");

    assert_eq!(shrink["kind"], "scale-in");
    let retired = shrink["target"].as_str().unwrap();
    assert_ne!(
        retired, "n4",
        "the stream leader cannot be the node that just joined"
    );
    assert!(f64_at(shrink, "/settled_ms").is_some(), "{shrink}");
    // The meta group dropped the node and the stream's third replica moved to n4.
    let settled = notes(shrink);
    assert!(settled.contains(&format!("{retired} removed")), "{shrink}");
    assert!(settled.contains("n4"), "{shrink}");
    assert_eq!(r["health_after"]["healthy"], true, "{}", r["health_after"]);
}

#[test]
fn a_full_disk_on_the_stream_leader_is_survived_and_reported() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/nats/jetstream-disk-full.yaml", out.path());
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "disk-full");
    let target = f["target"].as_str().unwrap();
    assert!(
        f["description"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("/data on {target} filled"))),
        "{f}"
    );
    assert!(f64_at(f, "/t_heal_ms").is_some(), "{f}");
    // The leader could not write: publishes to it did not succeed until another node led the
    // stream. The client sees that as refusals (fail) or, when the full leader just does not
    // answer in time, as timeouts (unknown): one clean-clone CI run had 0 failed, 8 unknown.
    let m = &r["messages"];
    assert!(
        m["failed"].as_u64().unwrap() + m["unknown"].as_u64().unwrap() > 0,
        "{m}"
    );
    let new_leader = f["new_leader"]
        .as_str()
        .expect("another node took the stream");
    assert_ne!(new_leader, target);
    // Freeing the space does not make the cluster whole again, and the run must say so. NATS
    // 2.15.1 reacts to the full disk in one of two ways (both seen here): it disables JetStream
    // on that server, or it keeps the server's replica of the stream, which then fails every
    // write ("expected sequence does not match store") and never catches up.
    assert_eq!(r["health_after"]["healthy"], false, "{}", r["health_after"]);
    assert!(
        r["health_after"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(target)
                && (d.contains("JetStream not enabled") || d.contains("stream write error"))),
        "{}",
        r["health_after"]
    );
}

/// `faultline capacity` on the short sweep (three steps of 4 s per search on the 3-node R3
/// cluster, a loose SLO): both searches run on one cluster, the N-1 fault really is held
/// (Docker reports no CPU for the killed node in any N-1 step, and it is the node the fault
/// record names), every output is written and holds to its schema, the failover run at the
/// planned load passes, and nothing is left in Docker.
#[test]
fn a_short_capacity_sweep_finds_both_maxima_and_writes_every_output() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path();
    // A free port for --metrics (bound and let go: another process could take it between,
    // which would end the run with exit 2 and say so).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let child = faultline(&[
        "capacity",
        "scenarios/nats/jetstream-capacity-short.yaml",
        "--out",
        dir.to_str().unwrap(),
        "--seed",
        "7",
        "--metrics",
        &metrics,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("faultline runs");
    // Scrape the live metrics while it runs (every 200 ms, each step lasts 4 s): what phases
    // and offered rates they showed.
    let scrapes = std::thread::spawn(move || {
        let mut seen: Vec<String> = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(600) {
            if let Some(text) = scrape(&metrics) {
                for line in text.lines() {
                    if (line.starts_with("faultline_phase{")
                        || line.starts_with("faultline_offered_rate "))
                        && !seen.iter().any(|l| l == line)
                    {
                        seen.push(line.to_string());
                    }
                }
            } else if !seen.is_empty() {
                break; // the server is gone with the process
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        seen
    });
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let seen = scrapes.join().unwrap();
    for want in [
        "faultline_offered_rate 400.0",
        "faultline_offered_rate 800.0",
    ] {
        assert!(
            seen.iter().any(|l| l == want),
            "{want} never served: {seen:#?}"
        );
    }
    assert!(
        seen.iter()
            .any(|l| l.starts_with("faultline_phase{phase=\"n-1 step 2: 400 msg/s")),
        "the N-1 steps never showed in the metrics: {seen:#?}"
    );

    let c: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("capacity.json")).unwrap()).unwrap();
    let errors = schema_errors("schemas/capacity.schema.json", &c);
    assert!(
        errors.is_empty(),
        "capacity.json against its schema: {errors:#?}"
    );
    // 800 msg/s is far below what three NATS servers take here (tens of thousands), so both
    // searches ramp 200, 400, 800 and end at their max, each step valid and passing.
    let n = c["max_rate"]["n"].as_f64().expect("an N maximum");
    let n1 = c["max_rate"]["n_minus_1"].as_f64().expect("an N-1 maximum");
    assert_eq!((n, n1), (800.0, 800.0), "{}", c["max_rate"]);
    assert_eq!(c["max_rate"]["n_bound"], "the search's max passed");
    assert!(c["headroom"].as_f64().is_some(), "{c}");

    // The held fault: a kill of the stream leader, applied, named in the report.
    let held = c["held_fault"].as_str().expect("the held fault");
    let killed = held.strip_prefix("kill ").expect("a kill").to_string();
    let steps = c["steps"].as_array().unwrap();
    for condition in ["n", "n-1"] {
        let of: Vec<&Value> = steps
            .iter()
            .filter(|s| s["condition"] == condition)
            .collect();
        let rates: Vec<f64> = of.iter().map(|s| s["rate"].as_f64().unwrap()).collect();
        assert_eq!(rates, [200.0, 400.0, 800.0], "{condition}");
        for s in of {
            for key in [
                "offered", "achieved", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
            ] {
                assert!(s[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {s}");
            }
            assert_eq!(
                (&s["pass"], &s["valid"]),
                (&Value::Bool(true), &Value::Bool(true)),
                "{s}"
            );
            // Nothing fails or stays unknown without a fault, nor after the held one settled:
            // the generator keeps each producer until its last acknowledgement is in.
            assert_eq!(s["errors"], 0, "{condition}: {s}");
            assert!(
                s["machine_cpu_share"]
                    .as_f64()
                    .is_some_and(|m| m > 0.0 && m <= 1.0),
                "{s}"
            );
            // Docker's stats: every node used CPU in an N step; the killed node none in N-1.
            let cpu = s["broker_cpu_cores"].as_object().unwrap();
            let want = if condition == "n" { 3 } else { 2 };
            assert_eq!(cpu.len(), want, "{condition}: {s}");
            if condition == "n-1" {
                assert!(!cpu.contains_key(&killed), "{killed} ran during N-1: {s}");
            }
        }
    }
    // Each step's own history, readable.
    let histories = std::fs::read_dir(dir.join("steps")).unwrap().count();
    assert_eq!(histories, steps.len());

    let html = std::fs::read_to_string(dir.join("capacity.html")).unwrap();
    assert!(html.contains("Latency against offered load") && html.contains("<svg"));
    assert!(
        html.contains(">N max ") && html.contains(">N-1 max "),
        "both knees are marked"
    );
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "the page fetches nothing"
    );
    let csv = std::fs::read_to_string(dir.join("capacity.csv")).unwrap();
    assert_eq!(csv.lines().count(), steps.len() + 1);
    assert!(std::fs::read_to_string(dir.join("capacity.md"))
        .unwrap()
        .contains("| one fault held (N-1) |"));

    // The failover run at 70% of the N-1 maximum, with the scenario's leader kill.
    let f = &c["failover"];
    assert_eq!(f["load"].as_f64(), Some(n1 * 0.7), "{f}");
    assert_eq!(f["result"]["verdict"], "pass", "{f}");
    assert_eq!(f["result"]["lost"], 0, "{f}");
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("failover/result.json")).unwrap())
            .unwrap();
    assert_eq!(run["faults"][0]["kind"], "kill");

    // Nothing of either cluster is left.
    let search_id = stderr
        .split_whitespace()
        .find(|w| w.starts_with("fl-"))
        .map(|w| w.trim_end_matches(':').to_string())
        .expect("the capacity run id");
    assert_eq!(leftovers(&search_id), 0, "{search_id}");
    assert_eq!(leftovers(run["run_id"].as_str().unwrap()), 0);
}

/// One GET of http://ADDR/metrics; `None` when nothing answers.
fn scrape(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: faultline\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then_some(out)
}

#[test]
fn a_fault_free_run_at_3000_msg_s_has_no_failed_and_no_unknown_publish() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    fault_free("scenarios/nats/jetstream-no-fault.yaml");
}

#[test]
fn a_run_whose_clients_are_cut_off_from_every_node_does_not_pass() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = run_scenario("scenarios/nats/jetstream-clients-cut-off.yaml", out.path());
    let r = run
        .result
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(r["verdict"], "unknown", "{}", run.stdout);
    assert_eq!(r["messages"]["lost"], 0);
    // Only what went out before the cut took effect (a fraction of a second) was
    // acknowledged: fewer than the tenth of the 1500 due that a run needs to be judged.
    let acked = r["messages"]["acked"].as_u64().unwrap();
    assert!(acked < 150, "{}", r["messages"]);
    let undecided = r["checks"]["undecided"].to_string();
    assert!(
        undecided.contains(&format!(
            "acked: {acked} publish(es) acknowledged, fewer than the 150 required"
        )),
        "{undecided}"
    );
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
}
