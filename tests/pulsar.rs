//! Integration tests against Pulsar-protocol brokers in Docker.
//!
//! Offline: one pulsar-lite broker (PyPI `pulsar-lite`), imaged by faultline's own recipe,
//! driven through the `pulsar` crate. Real Pulsar (ZooKeeper, bookies, brokers) needs the
//! official images, so a container registry: on a machine without one those tests assert
//! that faultline says so (exit 3, "unavailable on this machine", the image named) and print
//! that they did not run the cluster; never a silent pass.

mod common;
use common::*;

#[test]
fn a_killed_pulsar_lite_broker_restarts_and_the_client_reconnects_losing_nothing() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let r = passing(
        "scenarios/pulsar/pulsar-lite-broker-restart.yaml",
        out.path(),
    );
    let m = &r["messages"];
    // Every publish got a receipt (the client reconnected and re-created its producers by
    // itself), and every one was read back from the topic after the restart.
    assert!(m["acked"].as_u64().unwrap() >= 5_000, "{m}");
    assert!(
        m["received"].as_u64().unwrap() >= m["acked"].as_u64().unwrap(),
        "{m}"
    );
    assert_eq!(r["validity"]["drain_complete"], true, "{}", notes(&r));
    let notes = notes(&r);
    assert!(
        notes.contains("drain: read to the broker's last message id"),
        "{notes}"
    );
    // The limits of pulsar-lite are stated in the result.
    assert!(
        notes.contains("pulsar-lite: one Pulsar-protocol broker"),
        "{notes}"
    );
    let limits = r["workload"]["settings"]["limits"].as_str().unwrap_or("");
    assert!(limits.contains("no BookKeeper"), "{}", r["workload"]);
    let f = &r["faults"][0];
    assert_eq!(f["kind"], "kill");
    assert_eq!(f["target"], "p1");
    // The reconnection gap: the broker was down 5 s, so no receipt can come sooner; the
    // client must be back well within the 15 s acknowledgement timeout.
    let gap = f64_at(f, "/max_ack_gap_ms").expect("ack gap measured");
    assert!((4_500.0..15_000.0).contains(&gap), "ack gap {gap} ms: {f}");
    // Nothing is left in a one-broker cluster to notice the death.
    assert!(f["detection_ms"].is_null(), "{f}");
}

#[test]
fn a_killed_bookie_at_three_three_two_loses_nothing_acknowledged() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = registry_only(
        "scenarios/pulsar/pulsar-bookie-kill.yaml",
        "apachepulsar/pulsar:3.3.2",
    ) {
        assert!(r["messages"]["acked"].as_u64().unwrap() > 5_000);
        // The other brokers' admin API stopped listing the bookie.
        let f = &r["faults"][0];
        assert!(f64_at(f, "/detection_ms").is_some(), "{f}");
    }
}

#[test]
fn with_fewer_live_bookies_than_the_ensemble_writes_are_refused_not_acknowledged() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = registry_only(
        "scenarios/pulsar/pulsar-bookie-kill-below-quorum.yaml",
        "apachepulsar/pulsar:3.3.2",
    ) {
        let m = &r["messages"];
        let refused = m["failed"].as_u64().unwrap() + m["unknown"].as_u64().unwrap();
        assert!(
            refused > 0,
            "no publish was refused while 2 of 3 bookies were down: {m}"
        );
    }
}

#[test]
fn killing_the_topic_owner_moves_the_topic_to_the_other_broker() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = registry_only(
        "scenarios/pulsar/pulsar-owner-broker-kill.yaml",
        "apachepulsar/pulsar:3.3.2",
    ) {
        let f = &r["faults"][0];
        assert!(f64_at(f, "/detection_ms").is_some(), "{f}");
        let new_owner = f["new_leader"].as_str().expect("new owner named");
        assert_ne!(new_owner, f["target"].as_str().unwrap(), "{f}");
        assert!(f64_at(f, "/failover_ms").is_some(), "{f}");
    }
}

#[test]
fn a_fault_free_pulsar_lite_run_has_no_failed_and_no_unknown_publish() {
    let _serial = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    fault_free("scenarios/pulsar/pulsar-lite-no-fault.yaml");
}
