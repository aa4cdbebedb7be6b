//! Snapshots of what the reporters write for a fixed, hand-written history (a stream leader
//! killed at 3 s and healed at 6 s, everything acknowledged read back): the terminal summary
//! and result.json. A change to either shows as a diff to review (`cargo insta review`, or
//! compare with the `.snap.new` file insta writes beside the snapshot).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use super::*;
use crate::check::fixtures::{fault_history, receive};
use crate::check::verdict::{judge, Outcome, Validity as Judged};
use crate::cluster::{Cluster, ClusterNode};
use crate::history::{Kind, Op};

fn result() -> RunResult {
    let mut history = fault_history();
    let acked: Vec<(u32, u64)> = history
        .iter()
        .filter(|r| r.op() == Op::Publish && r.kind() == Kind::Ok)
        .filter_map(|r| Some((r.producer?, r.seq?)))
        .collect();
    history.extend(acked.into_iter().map(|(p, seq)| receive(p, seq)));
    let analysis = crate::check::analyze(|| Ok(history.iter().cloned().map(Ok))).unwrap();
    let scenario =
        crate::scenario::load(Path::new("scenarios/nats/jetstream-leader-kill.yaml")).unwrap();
    let judgement = judge(
        &scenario.checks,
        &analysis,
        &Judged {
            drain_complete: true,
            stall_fraction: 0.0,
        },
    );
    let nodes = (1..=3)
        .map(|i| ClusterNode {
            name: format!("n{i}"),
            container: format!("container-n{i}"),
            ip: Ipv4Addr::new(10, 213, 7, 9 + i),
        })
        .collect();
    let cluster = Cluster::of("10.213.7.0/24", nodes);
    let images = BTreeMap::from([(
        "nats:2.15.1".to_string(),
        ResolvedImage {
            requested: "nats:2.15.1".into(),
            used: "faultline/nats:2.15.1".into(),
            source: "local equivalent".into(),
        },
    )]);
    let drain = DrainReport {
        received: 0,
        foreign: 0,
        complete: true,
        notes: vec![],
    };
    RunResult::new(RunFacts {
        scenario: &scenario,
        run_id: "fl-20261201t000000z-0001",
        seed: 7,
        started_at: "20261201T000000Z",
        cluster: &cluster,
        images: &images,
        analysis,
        judgement,
        drain,
        health_after: HealthAfter {
            healthy: true,
            detail: None,
        },
        stall_us: 0,
        harness_cpu_s: Some(4.2),
    })
}

#[test]
fn the_terminal_summary_of_a_leader_kill() {
    insta::assert_snapshot!(terminal::render(
        &result(),
        Path::new("reports/runs/20261201T000000Z-jetstream-leader-kill")
    ));
}

#[test]
fn result_json_of_a_leader_kill() {
    insta::assert_snapshot!(serde_json::to_string_pretty(&result()).unwrap());
}

#[test]
fn junit_of_a_leader_kill() {
    insta::assert_snapshot!(junit::render(&result()).unwrap());
}

#[test]
fn junit_fails_the_case_of_the_check_that_failed() {
    let mut r = result();
    let case = r
        .checks
        .cases
        .iter_mut()
        .find(|c| c.name == "lost")
        .unwrap();
    case.outcome = Outcome::Failed;
    case.message = "lost: 3 acknowledged message(s) never received (allowed 0)".into();
    let xml = junit::render(&r).unwrap();
    assert!(xml.contains(r#"failures="1""#), "{xml}");
    assert!(
        xml.contains(
            r#"<failure message="lost: 3 acknowledged message(s) never received (allowed 0)""#
        ),
        "{xml}"
    );
}

#[test]
fn markdown_summary_of_a_leader_kill() {
    insta::assert_snapshot!(markdown::render(&result()));
}

/// Counts the events it sees.
struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Reporter for Counting {
    fn on(&mut self, _: &RunEvent) -> std::io::Result<()> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn closing_does_not_wait_for_senders_an_interrupted_run_left_behind() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reporters = Reporters::start(vec![Box::new(Counting(seen.clone()))]);
    // A task of an interrupted run that still holds a progress handle.
    let left_behind = reporters.events().progress();
    left_behind.note("before the end");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(reporters.close());
    });
    let errors = done_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("close returned although a sender is still alive");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    left_behind.note("after the end: dropped, not an error");
}
