//! Integration tests against real MQTT brokers in Docker: a 3-node RabbitMQ cluster with its
//! MQTT plugin (quorum and classic session queues), one and two bridged Mosquitto brokers
//! (MQTT 3.1.1 and 5), and a 3-node ejabberd cluster with mod_mqtt.
//!
//! Each test runs the `faultline` binary on a scenario from `scenarios/mqtt/` and asserts on
//! its exit code and `result.json`. The known-bad scenarios (classic session queues, a
//! session that cannot move between bridged brokers) must fail with `lost > 0`: that is what
//! proves the checker sees MQTT losses. RabbitMQ's cold start (about 20-30 s for three nodes
//! here) is inside each scenario's `ready_timeout`, not retried.

use std::path::Path;

use serde_json::Value;

mod common;
use common::*;

/// A run that must fail on lost messages, and nothing else.
fn losing(scenario: &str, out: &Path) -> Value {
    let run = run_scenario(scenario, out);
    let r = run
        .result
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["verdict"], "fail");
    assert!(
        r["messages"]["lost"].as_u64().unwrap() > 0,
        "{}",
        r["messages"]
    );
    assert!(!r["lost_sample"].as_array().unwrap().is_empty());
    let failed = r["checks"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].as_str().unwrap().starts_with("lost:"),
        "{failed:?}"
    );
    assert_eq!(r["validity"]["drain_complete"], true, "{}", r["notes"]);
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
    r
}

/// The node's own monitoring reported it started again (its uptime went back), by `signal`.
fn assert_restarted(out: &Path, node: &str, signal: &str) {
    let restarted = probe_events(out, "restarted");
    assert!(
        restarted
            .iter()
            .any(|(o, _, d)| o == node && d.starts_with(signal)),
        "no restart of {node} by {signal}: {restarted:?}"
    );
}

#[test]
fn killing_the_quorum_session_queue_leader_loses_nothing() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/mqtt/rabbitmq-quorum-node-kill.yaml", out.path());
    let m = &r["messages"];
    assert!(m["acked"].as_u64().unwrap() > 5_000, "{m}");
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "kill");
    // The subscriber declared its session queue on r1, so r1 led it.
    assert_eq!(f["target"], "r1", "{f}");
    // The other nodes saw r1 go at once (the Erlang distribution connection closed).
    let detection = f64_at(f, "/detection_ms").expect("detection measured");
    assert!(detection < 2_000.0, "detection {detection} ms: {f}");
    // The quorum queue got a leader on a surviving node.
    let leader = f["new_leader"]
        .as_str()
        .expect("a new queue leader observed");
    assert_ne!(leader, "r1");
    // The producer connected to r1 failed over to another node.
    let failover = f64_at(f, "/failover_ms").expect("failover measured");
    assert!(failover <= 15_000.0, "failover {failover} ms");
    let notes = notes(&r);
    assert!(notes.contains("resumed its session"), "{notes}");
    // The Prometheus endpoint saw it too: r1's distribution link gone from a peer's /metrics.
    let by_metrics: Vec<_> = probe_events(out.path(), "peer-down")
        .into_iter()
        .filter(|(observer, subject, detail)| {
            observer != "r1" && subject == "r1" && detail.starts_with("erlang_vm_dist_node_state")
        })
        .collect();
    assert!(!by_metrics.is_empty(), "no peer-down from /metrics");
}

#[test]
fn a_power_cut_on_the_quorum_queue_leader_loses_nothing_but_the_node_does_not_boot_again() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = run_scenario("scenarios/mqtt/rabbitmq-quorum-power-loss.yaml", out.path());
    let r = run
        .result
        .as_ref()
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
    // The node runs as the image's user (rabbitmq) over the layer faultline mounted as root.
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "power-loss");
    assert_eq!(f["target"], "r1", "{f}");
    let description = f["description"].as_str().unwrap_or_default();
    // What r1 had never fsynced went back at the cut (its feature-flags file among it)...
    assert!(
        description.contains("r1: ") && description.contains("back to their last fsync"),
        "{description}"
    );
    assert!(
        f["notes"]
            .to_string()
            .contains("synced write kept, the one not synced gone, on r1"),
        "{f}"
    );
    // ...while the quorum queue's fsynced Raft log kept every PUBACKed message on the majority.
    let m = &r["messages"];
    assert_eq!(m["lost"], 0, "{m}");
    assert_eq!(m["unexpected"], 0, "{m}");
    assert!(m["acked"].as_u64().unwrap() > 2_000, "{m}");
    // The finding: r1 does not boot again. Its feature-flags file comes back empty and
    // RabbitMQ 3.10 stops at boot ({case_clause,{ok,[]}} in rabbit_feature_flags); the run
    // fails on `healthy_after` alone, and says why from the node's own output.
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["verdict"], "fail");
    let failed = r["checks"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let why = failed[0].as_str().unwrap();
    assert!(why.starts_with("healthy_after:"), "{why}");
    assert!(why.contains("r1 exited (code 1)"), "{why}");
    assert!(why.contains("case_clause,{ok,[]}"), "{why}");
    let log = std::fs::read_to_string(out.path().join("logs/r1.log")).expect("r1's output kept");
    assert!(log.contains("rabbit_feature_flags"), "{log}");
    println!("rabbitmq power loss of r1: {description}\n{m}\n{why}");
}

#[test]
fn killing_the_classic_session_queue_node_is_caught_as_loss() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = losing("scenarios/mqtt/rabbitmq-classic-node-kill.yaml", out.path());
    // What was PUBACKed while r1 (the queue's only node) was down: about 15 s at 150 msg/s.
    let lost = r["messages"]["lost"].as_u64().unwrap();
    assert!(lost > 500, "lost {lost}");
    assert_eq!(r["faults"][0]["target"], "r1");
}

#[test]
fn a_quorum_session_resumes_on_another_node_with_everything_queued() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing(
        "scenarios/mqtt/rabbitmq-quorum-session-moves.yaml",
        out.path(),
    );
    assert_eq!(r["faults"][0]["target"], "r1");
    let notes = notes(&r);
    assert!(notes.contains("went offline from r1"), "{notes}");
    assert!(
        notes.contains("reconnected to r2 after")
            && notes.contains("the broker resumed its session"),
        "{notes}"
    );
    // Everything published while the subscriber was away reached it after it came back.
    assert!(
        r["messages"]["received"].as_u64().unwrap() >= r["messages"]["acked"].as_u64().unwrap()
    );
}

#[test]
fn a_classic_session_does_not_survive_its_node() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = losing(
        "scenarios/mqtt/rabbitmq-classic-session-moves.yaml",
        out.path(),
    );
    assert_eq!(r["faults"][0]["target"], "r1");
}

#[test]
fn a_partitioned_rabbitmq_node_is_noticed_after_net_ticktime() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/mqtt/rabbitmq-partition.yaml", out.path());
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "partition");
    assert_eq!(f["target"], "r3");
    // The topology sets net_ticktime to 10 s: Erlang declares a silent peer down between
    // 0.75 and 1.25 ticktimes after it went silent. Much earlier would mean the probe saw
    // something else; much later, that the partition did not hold.
    let detection = f64_at(f, "/detection_ms").expect("detection measured");
    assert!(
        (5_000.0..=20_000.0).contains(&detection),
        "detection {detection} ms with net_ticktime 10 s: {f}"
    );
    let signal = f["detection_signal"].as_str().unwrap();
    assert!(signal.contains("r3 down"), "{signal}");
    assert_eq!(r["detection_ms_by_kind"]["partition"]["detected"], 1);
}

#[test]
fn a_killed_bridged_mosquitto_is_noticed_by_its_peer_at_once() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = run_scenario("scenarios/mqtt/mosquitto-bridge-kill.yaml", out.path());
    let r = run
        .result
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    // Whether m1's persistence forwards everything it PUBACKed after its restart varies from
    // run to run here (see README): the test holds faultline to measuring the kill and to a
    // verdict that agrees with what it counted, not Mosquitto to one outcome.
    let lost = r["messages"]["lost"].as_u64().unwrap();
    match r["verdict"].as_str().unwrap() {
        "pass" => assert_eq!((run.code, lost), (0, 0), "{}", run.stdout),
        _ => assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr),
    }
    if lost > 0 {
        assert_ne!(r["verdict"], "pass");
    }
    assert_eq!(r["messages"]["unexpected"], 0);
    let f = &r["faults"][0];
    assert_eq!(f["target"], "m1");
    let detection = f64_at(f, "/detection_ms").expect("detection measured");
    assert!(detection < 1_000.0, "detection {detection} ms: {f}");
    assert_eq!(
        f["detection_signal"],
        "m2 reports m1 down (bridge state 0 in $SYS)"
    );
    assert!(f64_at(f, "/t_heal_ms").is_some());
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
}

#[test]
fn a_session_does_not_move_between_bridged_mosquittos() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = losing("scenarios/mqtt/mosquitto-session-moves.yaml", out.path());
    // Everything published while the subscriber was away (3 s to 14 s at 150 msg/s) stayed
    // in its session on m1.
    let lost = r["messages"]["lost"].as_u64().unwrap();
    // At least those; more when m1's bridge replay after its restart drops what m1 had
    // PUBACKed (the flakiness measured in the bridge-kill test: 2171 in one CI run).
    assert!(lost >= 1_200, "lost {lost}");
    let notes = notes(&r);
    assert!(
        notes.contains("reconnected to m2 after")
            && notes.contains("but the broker had no session for faultline-sub there"),
        "{notes}"
    );
}

#[test]
fn a_clock_jump_on_a_bridged_mosquitto_is_applied_verified_and_healed() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/mqtt/mosquitto-clock-skew.yaml", out.path());
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "clock-skew");
    assert_eq!(f["target"], "m1");
    // Injecting and healing each read the container's clock back through `date`: a fault
    // that did not move the clock would have no t_fault and be reported not applied.
    assert!(f64_at(f, "/t_fault_ms").is_some(), "{f}");
    assert!(f64_at(f, "/t_heal_ms").is_some(), "{f}");
    assert_eq!(
        f["description"],
        "wall clock +120 s (libfaketime; monotonic clock untouched)"
    );
}

#[test]
fn a_clock_jump_on_the_quorum_queue_leader_of_rabbitmq_is_applied_healed_and_loses_nothing() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/mqtt/rabbitmq-clock-skew.yaml", out.path());
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "clock-skew");
    // The queue leader, resolved from RabbitMQ's own view, is one of the three nodes.
    let target = f["target"].as_str().unwrap();
    assert!(["r1", "r2", "r3"].contains(&target), "{f}");
    // Applied and healed, each verified by reading `date` inside the container (through the
    // preloaded libfaketime): an Erlang node that lost the preload would not show +60 s.
    assert!(f64_at(f, "/t_fault_ms").is_some(), "{f}");
    assert!(f64_at(f, "/t_heal_ms").is_some(), "{f}");
    assert_eq!(
        f["description"],
        "wall clock +60 s (libfaketime; monotonic clock untouched)"
    );
    assert_eq!(r["health_after"]["healthy"], true, "{}", r["health_after"]);
}

#[test]
fn a_drifting_clock_runs_away_by_the_rate_asked_and_is_set_back() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/mqtt/mosquitto-clock-drift.yaml", out.path());
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "clock-skew");
    assert_eq!(
        f["description"],
        "wall clock +0 s, then drifting +500 ms per second, stepped every second (libfaketime; monotonic clock untouched)"
    );
    // 20 s at +500 ms/s: m1's clock, read inside the container at heal, is about 10 s ahead
    // (one step and the `date` round trip either way).
    let note = f["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.starts_with("at heal: the clock had drifted to m1 "))
        .unwrap_or_else(|| panic!("no drift reading at heal: {f}"));
    let seen: f64 = note
        .trim_start_matches("at heal: the clock had drifted to m1 ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{note}: {e}"));
    assert!((8.5..=11.5).contains(&seen), "{note}");
    // Healing set it back and read it back: t_heal exists only if `date` agreed.
    assert!(f64_at(f, "/t_heal_ms").is_some(), "{f}");
}

#[test]
fn an_mqtt_5_qos2_session_survives_a_mosquitto_restart() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = run_scenario(
        "scenarios/mqtt/mosquitto-v5-session-restart.yaml",
        out.path(),
    );
    let r = run
        .result
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    let m = &r["messages"];
    assert_eq!(m["unexpected"], 0);
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
    // 40 msg/s for 25 s, less what the dead broker could not take.
    assert!(m["acked"].as_u64().unwrap() > 800, "{m}");
    // The session and its backlog (about 120 messages queued while the subscriber was away
    // before the kill) survive the kill: Mosquitto writes its database after every change.
    // But it sends PUBCOMP before that write, so a SIGKILL between the two loses the message
    // just acknowledged (CI saw it once: 1 of 988). faultline must then say FAIL, and what
    // was lost must be among the last acknowledgements before the kill, never the backlog.
    let lost = m["lost"].as_u64().unwrap();
    if lost == 0 {
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert_eq!(r["verdict"], "pass");
    } else {
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        assert_eq!(r["verdict"], "fail");
        assert!(
            lost <= 3,
            "{lost} lost: more than a kill between PUBCOMP and the save explains\n{}",
            run.stdout
        );
        let t_fault = f64_at(&r["faults"][0], "/t_fault_ms").unwrap();
        let history = history_lines(out.path());
        for sample in r["lost_sample"].as_array().unwrap() {
            let acked_at = history
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| {
                    l["op"] == "publish"
                        && l["type"] == "ok"
                        && l["producer"] == sample["producer"]
                        && l["seq"] == sample["seq"]
                })
                .and_then(|l| l["t_done"].as_f64())
                .unwrap_or_else(|| panic!("no acknowledgement of {sample} in the history"));
            assert!(
                (t_fault - 1_000.0..=t_fault + 100.0).contains(&acked_at),
                "{sample} acknowledged at {acked_at} ms, the kill at {t_fault} ms"
            );
        }
        eprintln!("mosquitto-v5-session-restart: {lost} acknowledged just before the kill and lost (PUBCOMP before the database write)");
    }
    let notes = notes(&r);
    for expected in [
        "subscriber: reconnected to m1",
        "and the broker resumed its session",
        "protocol: MQTT 5 (the subscriber's session expiry interval 600 s)",
        "$SYS/broker/clients/connected (read every 1 s): m1:",
    ] {
        assert!(
            notes.contains(expected),
            "{expected:?} missing in:\n{notes}"
        );
    }
    // result.json says which protocol ran (it once said 3.1.1 for every MQTT run).
    assert_eq!(
        r["workload"]["settings"]["protocol"], "MQTT 5",
        "{}",
        r["workload"]
    );
    // The broker's own uptime went back after the restart.
    assert_restarted(out.path(), "m1", "$SYS/broker/uptime");
}

#[test]
fn a_killed_ejabberd_node_leaves_list_cluster_at_once_and_nothing_is_lost() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/mqtt/ejabberd-node-kill.yaml", out.path());
    assert!(r["messages"]["acked"].as_u64().unwrap() > 4_000);
    let f = &r["faults"][0];
    assert_eq!(f["target"], "e2");
    let detection = f64_at(f, "/detection_ms").expect("detection measured");
    assert!(detection < 1_000.0, "detection {detection} ms: {f}");
    let signal = f["detection_signal"].as_str().unwrap();
    assert!(
        signal.ends_with("reports e2 down (gone from list_cluster (HTTP API))"),
        "{signal}"
    );
    assert_restarted(out.path(), "e2", "stats uptimeseconds");
}

#[test]
fn an_ejabberd_session_moves_to_another_live_node() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/mqtt/ejabberd-session-moves.yaml", out.path());
    let notes = notes(&r);
    assert!(
        notes.contains("reconnected to e2") && notes.contains("the broker resumed its session"),
        "{notes}"
    );
}

#[test]
fn an_ejabberd_session_dies_with_its_node() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = losing(
        "scenarios/mqtt/ejabberd-session-dies-with-node.yaml",
        out.path(),
    );
    let notes = notes(&r);
    assert!(
        notes.contains("reconnected to e2") && notes.contains("(session present: 0)"),
        "{notes}"
    );
}

#[test]
fn emqx_node_kill_runs_where_its_image_exists_and_is_reported_unavailable_elsewhere() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = registry_only("scenarios/mqtt/emqx-node-kill.yaml", "emqx/emqx:5.8.6") {
        let f = &r["faults"][0];
        let detection = f64_at(f, "/detection_ms").expect("detection measured");
        assert!(detection < 2_000.0, "detection {detection} ms: {f}");
    }
}

#[test]
fn a_partitioned_ejabberd_node_is_dropped_after_net_ticktime_and_the_split_outlives_the_heal() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = run_scenario("scenarios/mqtt/ejabberd-partition.yaml", out.path());
    let r = run
        .result
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "partition");
    // net_ticktime 10 s: a silent peer is declared down 7.5-12.5 s after it went silent.
    let detection = f64_at(f, "/detection_ms").expect("detection measured");
    assert!(
        (5_000.0..=20_000.0).contains(&detection),
        "detection {detection} ms with net_ticktime 10 s: {f}"
    );
    let signal = f["detection_signal"].as_str().unwrap();
    assert!(
        signal.contains("e3 down (gone from list_cluster"),
        "{signal}"
    );
    // ejabberd does not merge the sides again after the heal: faultline must say so.
    let health = &r["health_after"];
    assert_eq!(health["healthy"], false, "{health}");
    let detail = health["detail"].as_str().unwrap();
    assert!(detail.contains("in list_cluster"), "{health}");
    // Which split ejabberd ends in is its own affair: e1 and e2 together (every earlier run),
    // or, since Erlang's global prevents overlapping partitions (OTP 25 on), e1 cut from e2 as
    // well when e3 comes back through one of them (both runs of 2026-12-01). That second cut
    // can come before the drain (what went in through e2 never reaches the subscriber on e1:
    // lost > 0), or after every acknowledged message arrived and before the end markers sent
    // through e2 did (CI, 2026-12-07: the drain times out with nothing lost).
    // faultline's side is fixed in all three: the verdict follows `lost` alone (MEASUREMENT.md:
    // lost = acknowledged and never received), and an incomplete drain is always reported,
    // with the node whose end marker never arrived.
    let lost = r["messages"]["lost"].as_u64().unwrap();
    let drained = r["validity"]["drain_complete"] == true;
    let held = r["checks"]["held"].to_string();
    if drained {
        assert_eq!(
            lost, 0,
            "a complete drain with lost messages: {}",
            run.stdout
        );
    } else {
        let notes = notes(&r);
        assert!(notes.contains("end marker"), "{notes}");
        assert!(notes.contains("through e2"), "{notes}");
    }
    if lost == 0 {
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert_eq!(r["verdict"], "pass");
        assert_eq!(held.contains("drain: incomplete"), !drained, "{held}");
    } else {
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        assert_eq!(r["verdict"], "fail");
    }
}

#[test]
fn a_power_cut_keeps_mosquittos_saved_sessions_and_backlog() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = run_scenario("scenarios/mqtt/mosquitto-power-loss.yaml", out.path());
    let r = run
        .result
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "power-loss");
    assert!(
        f["notes"]
            .to_string()
            .contains("synced write kept, the one not synced gone, on m1"),
        "{f}"
    );
    // Mosquitto fsyncs each save of its database before it renames it into place: the session
    // and the backlog queued while the subscriber was away (about 120 messages) survive the
    // cut, and the broker is healthy after it. What a cut can lose is what a kill can: the
    // messages acknowledged (PUBCOMP) after the last save, in the last moments before it.
    let m = &r["messages"];
    assert_eq!(m["unexpected"], 0, "{m}");
    assert!(m["acked"].as_u64().unwrap() > 800, "{m}");
    let lost = m["lost"].as_u64().unwrap();
    assert!(
        lost <= 5,
        "{lost} lost: more than the last moments before the cut\n{}",
        run.stdout
    );
    assert_eq!(
        run.code,
        if lost == 0 { 0 } else { 1 },
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let held: Vec<&str> = r["checks"]["held"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    assert!(
        held.iter().any(|h| h.starts_with("healthy_after")),
        "{held:?}"
    );
    assert!(
        notes(&r).contains("and the broker resumed its session"),
        "{}",
        notes(&r)
    );
    println!(
        "mosquitto power loss: {}; lost {lost} of {} acknowledged",
        f["description"], m["acked"]
    );
}

#[test]
fn a_fault_free_mosquitto_run_has_no_failed_and_no_unknown_publish() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    fault_free("scenarios/mqtt/mosquitto-no-fault.yaml");
}
