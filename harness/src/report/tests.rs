//! Snapshots of what the reporters write for a fixed, hand-written history (a stream leader
//! killed at 3 s and healed at 6 s, everything acknowledged read back): the terminal summary
//! and result.json. A change to either shows as a diff to review (`cargo insta review`, or
//! compare with the `.snap.new` file insta writes beside the snapshot).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use super::*;
use crate::check::fixtures::{fault_history, receive};
use crate::check::verdict::Outcome;
use crate::cluster::{Cluster, ClusterNode};
use crate::history::{Kind, Record};

/// The fixture's history as a run writes it: the start record, the operations with every
/// acknowledged message read back, and (unless `killed`) the end record.
fn write_history(path: &Path, killed: bool) {
    let mut history = fault_history();
    let acked: Vec<(u32, u64)> = history
        .iter()
        .filter_map(|r| match r {
            Record::Publish(p) if p.kind == Kind::Ok => Some((p.producer, p.seq)),
            _ => None,
        })
        .collect();
    history.extend(acked.into_iter().map(|(p, seq)| receive(p, seq)));
    let scenario =
        crate::scenario::load(Path::new("scenarios/nats/jetstream-leader-kill.yaml")).unwrap();
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
    let mut start = RunStart::new(
        &scenario,
        "fl-20261201t000000z-0001",
        7,
        "20261201T000000Z",
        &cluster,
        &images,
    );
    // The fixture's few messages stand for the scenario's load.
    start.checks.min_acked = 1;
    let mut lines = vec![start_record(&start)];
    lines.extend(history);
    if !killed {
        lines.push(end_record(&RunEnd {
            drain: DrainReport {
                received: 0,
                foreign: 0,
                complete: true,
                notes: vec![],
            },
            health_after: HealthAfter {
                healthy: true,
                detail: None,
            },
            stall_us: 0,
            harness_cpu_s: Some(4.2),
        }));
    }
    let mut text: String = lines
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    if killed {
        text.push_str(r#"{"op":"publish","type":"invo"#);
    }
    std::fs::write(path, text).unwrap();
}

fn result() -> RunResult {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::history::FILE);
    write_history(&path, false);
    recheck(&path).unwrap()
}

#[test]
fn a_history_rechecked_gives_the_same_result_every_time() {
    let a = serde_json::to_string_pretty(&result()).unwrap();
    let b = serde_json::to_string_pretty(&result()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_killed_run_is_rechecked_undecided_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::history::FILE);
    write_history(&path, true);
    let r = recheck(&path).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.messages.acked, result().messages.acked);
    assert!(
        r.notes.iter().any(|n| n.contains("last line was cut")),
        "{:?}",
        r.notes
    );
    assert!(
        r.notes.iter().any(|n| n.contains("no end record")),
        "{:?}",
        r.notes
    );
    let run = r.checks.cases.iter().find(|c| c.name == "run").unwrap();
    assert_eq!(run.outcome, Outcome::Undecided, "{}", run.message);
}

#[test]
fn a_history_without_its_start_record_cannot_be_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::history::FILE);
    std::fs::write(
        &path,
        "{\"op\":\"phase\",\"type\":\"ok\",\"t_done\":0.0,\"phase\":\"baseline\"}\n",
    )
    .unwrap();
    let e = recheck(&path).unwrap_err();
    assert!(e.contains("no start record"), "{e}");
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
fn result_json_holds_to_its_schema() {
    let schema = result_schema();
    let validator = jsonschema::validator_for(schema.as_value()).unwrap();
    let mut json = serde_json::to_value(result()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(json["schema_version"], RESULT_SCHEMA_VERSION);
    // The schema is not a blank cheque: a verdict it does not know, a missing count.
    json["verdict"] = "maybe".into();
    assert!(!validator.is_valid(&json));
    let mut json = serde_json::to_value(result()).unwrap();
    json["messages"].as_object_mut().unwrap().remove("acked");
    assert!(!validator.is_valid(&json));
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

#[test]
fn a_baseline_with_a_far_faster_failover_fails_the_run_and_names_failover() {
    let dir = tempfile::tempdir().unwrap();
    let ours = serde_json::to_value(result()).unwrap();
    // Compared with itself, everything holds.
    let same = dir.path().join("same.json");
    std::fs::write(&same, ours.to_string()).unwrap();
    let mut r = result();
    baseline::gate(&mut r, &same).unwrap();
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.checks.failed);
    let g = r.regression.as_ref().unwrap();
    assert_eq!(g.comparisons.len(), 4, "{g:?}");
    // A baseline directory whose runs failed over in 100 and 120 ms.
    let faster = dir.path().join("faster");
    std::fs::create_dir(&faster).unwrap();
    for (i, ms) in [100.0, 120.0].iter().enumerate() {
        let mut b = ours.clone();
        b["faults"][0]["failover_ms"] = serde_json::json!(ms);
        std::fs::write(faster.join(format!("{i}.json")), b.to_string()).unwrap();
    }
    let mut r = result();
    baseline::gate(&mut r, &faster).unwrap();
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(
        r.checks.failed.len(),
        1,
        "only failover moved: {:?}",
        r.checks.failed
    );
    let xml = junit::render(&r).unwrap();
    assert!(
        xml.contains(r#"<testcase name="regression: fault 0 (kill): failover""#),
        "{xml}"
    );
    assert!(xml.contains(r#"failures="1""#), "{xml}");
    let md = markdown::render(&r);
    assert!(md.contains("### Against the baseline"), "{md}");
    assert!(md.contains("**REGRESSION**"), "{md}");
}

#[test]
fn a_baseline_that_is_not_a_result_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = baseline::load(&empty).unwrap_err();
    assert!(e.contains("holds no result"), "{e}");
    let other = dir.path().join("other.json");
    std::fs::write(&other, "{\"name\": 1}").unwrap();
    let e = baseline::load(&other).unwrap_err();
    assert!(e.contains("not a faultline result.json"), "{e}");
}

#[test]
fn latency_hlog_reads_back_with_the_counts_of_result_json() {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let dir = tempfile::tempdir().unwrap();
    write_history(&dir.path().join(crate::history::FILE), false);
    let r = recheck(&dir.path().join(crate::history::FILE)).unwrap();
    let event = RunEvent::Finished {
        result: Box::new(recheck(&dir.path().join(crate::history::FILE)).unwrap()),
        out_dir: dir.path().to_path_buf(),
    };
    hlog::HlogReport.on(&event).unwrap();
    let bytes = std::fs::read(dir.path().join("latency.hlog")).unwrap();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut max_us: u64 = 0;
    let mut intervals = 0;
    for entry in IntervalLogIterator::new(&bytes) {
        let LogEntry::Interval(h) = entry.unwrap() else {
            continue;
        };
        intervals += 1;
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            h.encoded_histogram(),
        )
        .unwrap();
        let hist: hdrhistogram::Histogram<u64> = Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(raw))
            .unwrap();
        *counts.entry(h.tag().unwrap().as_str().into()).or_default() += hist.len();
        if h.tag().unwrap().as_str() == "ok" {
            max_us = max_us.max(hist.max());
        }
    }
    let acked_with_latency: u64 = r.latency_ms.values().map(|l| l.count).sum();
    let fail: u64 = r.timeline.iter().map(|s| s.fail).sum();
    let info: u64 = r.timeline.iter().map(|s| s.info).sum();
    assert_eq!(counts["ok"], acked_with_latency);
    assert_eq!(counts["ok"], r.messages.acked);
    assert_eq!(counts["fail"], fail);
    assert_eq!(counts["unknown"], info);
    assert!(intervals >= 10, "{intervals} intervals for a 10 s run");
    // The slowest acknowledged message is as slow in the log as in the percentiles (3
    // significant digits).
    let max_ms = r
        .latency_ms
        .values()
        .filter_map(|l| l.max)
        .fold(0.0, f64::max);
    assert!((max_us as f64 / 1000.0 - max_ms).abs() <= max_ms * 0.001 + 0.001);
}

/// The page of the fixture's run.
fn page() -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::history::FILE);
    write_history(&path, false);
    html::render(&recheck(&path).unwrap(), &path).unwrap()
}

#[test]
fn report_html_fetches_nothing_and_draws_the_fault() {
    let page = page();
    for reference in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(!page.contains(reference), "{reference} in the page");
    }
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(page.contains(r#"<span class="verdict pass" id="verdict">PASS</span>"#));
    // The fault window (kill at 3 s, healed at 6 s) and its markers: detection 200 ms, new
    // leader 1 s, failover when the refusals stop.
    assert_eq!(
        page.matches(r#"class="fault-window""#).count(),
        3,
        "one per chart"
    );
    for marker in ["detection", "new-leader", "client-error", "failover"] {
        assert!(
            page.contains(&format!(r#"class="marker marker-{marker}""#)),
            "{marker}"
        );
    }
    // Failed and unknown publishes are drawn and counted beside the percentiles.
    assert!(page.contains(r#"<path class="points fail""#));
    assert!(page.contains(r#"<path class="points unknown""#));
    assert!(page.contains(r#"<td class="l">fault</td>"#));
    // n1 reported n2 down; n2 and then n3 led stream:S.
    assert!(page.contains("n1 reports it down"), "lane of n2");
    assert!(page.contains("leader of stream:S"));
    assert!(!page.contains(r#"id="downsampled""#));
}

#[test]
fn report_html_keeps_the_extremes_beyond_fifty_thousand_points() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(crate::history::FILE);
    write_history(&path, false);
    // 60 000 more acknowledged publishes, one of them 4 s slow.
    let mut more = String::new();
    for seq in 0..60_000u64 {
        let t = seq * 150; // µs
        let done = if seq == 30_000 {
            t + 4_000_000
        } else {
            t + 900
        };
        more.push_str(&format!(
            "{{\"op\":\"publish\",\"type\":\"ok\",\"producer\":1,\"seq\":{seq},\"t_intended\":{:.3},\"t_sent\":{:.3},\"t_done\":{:.3}}}\n",
            t as f64 / 1000.0,
            t as f64 / 1000.0,
            done as f64 / 1000.0
        ));
    }
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&more);
    std::fs::write(&path, text).unwrap();
    let page = html::render(&recheck(&path).unwrap(), &path).unwrap();
    assert!(page.contains(r#"id="downsampled""#));
    assert!(
        page.contains("61000 publishes: "),
        "the note counts every publish"
    );
    let drawn: usize = page.matches("h0").count();
    assert!(drawn < html::MAX_POINTS, "{drawn} points drawn");
    // The 4 s publish is still on the chart: the axis reaches 10 s.
    assert!(page.contains(">10.0 s</text>"), "the slowest point kept");
}
