//! Integration tests against Kafka-API brokers in Docker.
//!
//! Offline: three tansu brokers over PostgreSQL, built by faultline's own recipes. Each test
//! runs the `faultline` binary on a scenario from `scenarios/kafka/` and asserts on its exit
//! code and `result.json`.
//!
//! Apache Kafka (KRaft) needs the official image, so a container registry: on a machine
//! without one the KRaft tests assert that faultline says so (exit 3, "unavailable on this
//! machine", the image named) and print that they did not run the cluster; never a silent pass.

use serde_json::Value;

mod common;
use common::*;

/// The limits of tansu are stated in every result that ran on it.
fn states_tansu_limits(r: &Value) {
    let limits = r["workload"]["settings"]["limits"].as_str().unwrap_or("");
    assert!(
        limits.contains("no leader election, no replication and no ISR"),
        "{}",
        r["workload"]
    );
    assert!(
        notes(r).contains("tansu: stateless brokers"),
        "{}",
        notes(r)
    );
}

#[test]
fn killing_a_tansu_broker_loses_nothing_acknowledged() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/kafka/tansu-broker-kill.yaml", out.path());
    states_tansu_limits(&r);
    let m = &r["messages"];
    assert!(m["acked"].as_u64().unwrap() > 5_000, "{m}");
    assert_eq!(r["validity"]["drain_complete"], true, "{}", notes(&r));
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "kill");
    // The role resolved to the broker producer 0 was connected to, and the kill cut that
    // connection: the gateway saw the broker's side end it.
    let target = f["target"].as_str().unwrap();
    assert!(["t1", "t2", "t3"].contains(&target), "{f}");
    let notes = notes(&r);
    let gateway = notes
        .lines()
        .find(|l| l.starts_with("client gateway 127.0.0.1:19092"))
        .unwrap_or_else(|| panic!("no gateway note: {notes}"));
    let entry = gateway
        .split(", ")
        .find(|e| e.contains(&format!("{target} ")))
        .unwrap_or_else(|| panic!("{gateway}"));
    assert!(
        !entry.contains("(0 ended by the broker's side)"),
        "{gateway}"
    );
    // The clients moved to a live broker through the shared address: the longest pause
    // between two acknowledgements in the fault is measured and short.
    let gap = f64_at(f, "/max_ack_gap_ms").expect("ack gap measured");
    assert!(gap < 5_000.0, "ack gap {gap} ms: {f}");
    // No metadata can show it: every tansu broker reports itself as the only one.
    assert!(f["detection_ms"].is_null(), "{f}");
    assert!(
        notes.contains("order: every producer's records are in send order"),
        "{notes}"
    );
}

#[test]
fn a_postgres_outage_stops_tansu_writes_and_the_idempotent_producer_never_recovers() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = run_scenario("scenarios/kafka/tansu-postgres-outage.yaml", out.path());
    let r = run
        .result
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    states_tansu_limits(&r);
    // Nothing acknowledged was lost: an acknowledgement means PostgreSQL committed the row.
    assert_eq!(r["messages"]["lost"], 0, "{}", r["messages"]);
    assert_eq!(r["messages"]["unexpected"], 0);
    assert_eq!(r["validity"]["drain_complete"], true, "{}", notes(&r));
    let f = &r["faults"][0];
    assert_eq!(f["target"], "pg");
    // The client saw the outage at once.
    let client_error = f64_at(f, "/client_error_ms").expect("client error measured");
    assert!(
        client_error < 2_000.0,
        "client error {client_error} ms: {f}"
    );
    // The finding, as measured with tansu 0.6.0 and librdkafka 2.12: after the outage the
    // broker refuses the producer's bumped epoch, so no record is acknowledged again, and the
    // run fails on that alone. If this changes, the scenario's comment must change with it.
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["verdict"], "fail");
    let failed = r["checks"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].as_str().unwrap().contains("failover"),
        "{failed:?}"
    );
    assert!(f["failover_ms"].is_null(), "{f}");
    assert!(
        notes(&r).contains("producer errors: UNKNOWN_SERVER_ERROR"),
        "{}",
        notes(&r)
    );
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
}

#[test]
fn a_consumer_group_reads_everything_when_its_broker_is_killed() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing("scenarios/kafka/tansu-consumer-group-kill.yaml", out.path());
    states_tansu_limits(&r);
    let m = &r["messages"];
    assert!(
        m["received"].as_u64().unwrap() >= m["acked"].as_u64().unwrap(),
        "{m}"
    );
    assert_eq!(r["validity"]["drain_complete"], true, "{}", notes(&r));
    let f = &r["faults"][0];
    // The role resolved to a broker, by the connections member 0 had open.
    let target = f["target"].as_str().unwrap();
    assert!(["t1", "t2", "t3"].contains(&target), "{f}");
    let notes = notes(&r);
    assert!(
        notes.contains("consumer group: 2 member(s) read"),
        "{notes}"
    );
    assert!(notes.contains("reached its end offset"), "{notes}");
    // Every rebalance is in the history as a probe event.
    let history = history_lines(out.path());
    assert!(history.contains("\"event\":\"group-assigned\""));
}

#[test]
fn kraft_partition_leader_kill_loses_nothing_with_two_in_sync_replicas() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = registry_only(
        "scenarios/kafka/kraft-leader-kill.yaml",
        "apache/kafka:3.9.0",
    ) {
        let f = &r["faults"][0];
        assert!(f64_at(f, "/detection_ms").is_some(), "{f}");
        assert!(f["new_leader"].is_string(), "{f}");
    }
}

#[test]
fn kraft_paused_follower_leaves_the_isr_and_writes_go_on() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = registry_only(
        "scenarios/kafka/kraft-isr-shrink.yaml",
        "apache/kafka:3.9.0",
    ) {
        assert!(r["messages"]["acked"].as_u64().unwrap() > 5_000);
    }
}

#[test]
fn zookeeper_mode_controller_kill_is_detected_by_the_new_controller() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = registry_only(
        "scenarios/kafka/zk-controller-kill.yaml",
        "confluentinc/cp-zookeeper:7.6.1",
    ) {
        let f = &r["faults"][0];
        let detection = f64_at(f, "/detection_ms").expect("detection measured");
        assert!(detection <= 30_000.0, "{f}");
    }
}

#[test]
fn brokers_advertising_only_themselves_leave_the_client_nowhere_to_go_and_faultline_says_why() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let run = run_scenario(
        "scenarios/kafka/tansu-advertised-own-address.yaml",
        out.path(),
    );
    let r = run
        .result
        .unwrap_or_else(|| panic!("no result.json (exit {}):\n{}", run.code, run.stderr));
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["messages"]["lost"], 0, "{}", r["messages"]);
    let failed = r["checks"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].as_str().unwrap().contains("failover"),
        "{failed:?}"
    );
    let notes = notes(&r);
    assert!(
        notes.contains("advertised listeners: every broker's Metadata lists only itself")
            && notes.contains("cannot fail over"),
        "{notes}"
    );
    // Producer 0 got acknowledgements again only once its broker was started again, 12 s
    // after the kill (what it sent meanwhile timed out after 5 s).
    let failover = f64_at(&r["faults"][0], "/failover_ms").expect("failover measured");
    assert!(failover > 8_000.0, "{}", r["faults"][0]);
    assert_eq!(leftovers(r["run_id"].as_str().unwrap()), 0);
}

#[test]
fn a_fault_free_tansu_run_has_no_failed_and_no_unknown_publish() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let r = fault_free("scenarios/kafka/tansu-no-fault.yaml");
    // librdkafka's own counters prove its broker thread does not spin while a partition waits
    // for an answer (vendor/rdkafka-sys): patched 2.3 wake-ups per message here, the library
    // as released 39 (2026-12-07).
    let notes = notes(&r);
    let line = notes
        .lines()
        .find(|l| l.starts_with("producers' librdkafka: "))
        .unwrap_or_else(|| panic!("no librdkafka counters in the notes:\n{notes}"));
    let per: f64 = line
        .rsplit_once("wake-ups (")
        .and_then(|(_, t)| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(per < 10.0, "the broker thread spins: {line}");
}
