//! Integration tests against Pulsar-protocol brokers in Docker.
//!
//! Offline: one pulsar-lite broker (PyPI `pulsar-lite`), imaged by faultline's own recipe,
//! driven through the `pulsar` crate. Real Pulsar (ZooKeeper, bookies, brokers) needs the
//! official images, so a container registry: on a machine without one those tests assert
//! that faultline says so (exit 3, "unavailable on this machine", the image named) and print
//! that they did not run the cluster; never a silent pass.

use serde_json::Value;

mod common;
use common::*;

fn notes(r: &Value) -> String {
    r["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

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
