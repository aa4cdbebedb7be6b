//! Scenario reading and validation on small files: every problem with its position.

use super::*;
use crate::faults::partition::ShapeSpec;
use crate::faults::Settings;

const COMPOSE: &str = "services:\n  n1: { image: nats:2.15.1 }\n  n2: { image: nats:2.15.1 }\n  n3: { image: nats:2.15.1 }\nx-faultline:\n  family: nats\n";

fn load_str(text: &str) -> Result<Scenario, Vec<String>> {
    load_with(COMPOSE, text)
}

fn load_with(compose: &str, text: &str) -> Result<Scenario, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("images/m")).unwrap();
    std::fs::write(dir.path().join("images/m/build.sh"), "true").unwrap();
    std::fs::write(dir.path().join("c.yml"), compose).unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, text).unwrap();
    load(&file).map_err(|errs| {
        errs.into_iter()
            .map(|e| {
                let file = e.file.file_name().unwrap().to_string_lossy().to_string();
                format!("{file}:{}:{}: {}", e.pos.line, e.pos.col, e.message)
            })
            .collect()
    })
}

const GOOD: &str = "name: ok
cluster:
  compose: c.yml
workload:
  rate: 100
  duration: 30s
  nats: { stream: S, replicas: 3, storage: file }
faults:
  - at: 10s
    kind: kill
    target: stream-leader
    for: 5s
checks:
  max_failover: 15s
";

#[test]
fn a_good_scenario_loads() {
    let s = load_str(GOOD).unwrap();
    assert_eq!(s.name, "ok");
    assert_eq!(
        s.faults[0].target,
        Some(Target::Role("stream-leader".into()))
    );
    assert_eq!(s.faults[0].heal_after, Some(Duration::from_secs(5)));
    assert_eq!(s.checks.max_failover, Some(Duration::from_secs(15)));
    assert_eq!(s.probe_interval, Duration::from_millis(100));
}

#[test]
fn every_problem_is_reported_at_once_with_its_position() {
    let errs = load_str(
        "name: bad
cluster:
  compose: c.yml
workload:
  rate: fast
  duration: 30
  colour: blue
  nats: { stream: S, replicas: 5, storage: tape }
faults:
  - at: 10s
    kind: explode
    target: n9
  - at: 40s
    kind: pause
    target: n1
",
    )
    .unwrap_err();
    assert_eq!(
            errs,
            vec![
                "s.yaml:7:3: workload: unknown key `colour`: expected one of rate, duration, producers, payload_bytes, max_in_flight, ack_timeout, drain_timeout, nats, mqtt, kafka, pulsar",
                "s.yaml:5:9: workload.rate: expected a number greater than zero, found \"fast\"",
                "s.yaml:6:13: workload.duration: expected a duration such as \"30s\", \"250ms\" or \"1m30s\", found \"30\"",
                "s.yaml:8:44: workload.nats.storage: expected one of file, memory, found \"tape\"",
                "s.yaml:11:11: faults[0].kind: expected one of kill, pause, stop, restart, rolling-restart, partition, loss, bandwidth, delay, reorder, duplicate, corrupt, disk-full, scale-out, scale-in, clock-skew, power-loss, corrupt-file, truncate-file, found \"explode\"",
                "s.yaml:12:13: faults[0].target: no node or role named \"n9\": expected one of n1, n2, n3, random, minority, majority, all, stream-leader, meta-leader",
            ]
        );
}

#[test]
fn cross_section_problems() {
    let errs = load_str(
        &GOOD
            .replace("for: 5s", "for: 25s")
            .replace("replicas: 3", "replicas: 4"),
    )
    .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with("s.yaml:9:5: fault at 10s heals at 35s"));
    assert!(errs[1].contains("4 replicas asked for, but the cluster starts with 3 node(s)"));
}

fn with_faults(faults: &str) -> Result<Scenario, Vec<String>> {
    let head = GOOD.split("faults:").next().unwrap();
    load_str(&format!("{head}faults:\n{faults}"))
}

#[test]
fn topology_and_disk_faults_are_checked_against_the_compose_file() {
    // The default compose file has no spare, no tmpfs and the scenario no system account.
    let errs = with_faults(
        "  - { at: 5s, kind: scale-out, target: n3 }
  - { at: 6s, kind: scale-in, target: n1 }
  - { at: 7s, kind: disk-full, target: n2, for: 2s }
  - { at: 8s, kind: slow-disk, target: n2 }
",
    )
    .unwrap_err();
    assert!(
        errs.iter().any(
            |e| e.contains("n3 is started with the cluster, not a spare")
                && e.contains("profiles: [spare]")
        ),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("scale-in on NATS") && e.contains("system_account")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("disk-full")
            && e.contains("not a size-limited tmpfs")
            && e.contains("/data:size=64m")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("slow-disk is not implemented") && e.contains("alternatives")),
        "{errs:?}"
    );
    assert_eq!(errs.len(), 4, "{errs:?}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
            dir.path().join("c.yml"),
            "configs:\n  acc: { content: \"x\" }\nservices:\n  n1: { image: nats:2.15.1, tmpfs: [\"/data:size=64m\"], configs: [acc] }\n  n2: { image: nats:2.15.1, tmpfs: /data:size=2g }\n  n3: { image: nats:2.15.1, profiles: [spare] }\nx-faultline:\n  family: nats\n",
        )
        .unwrap();
    let file = dir.path().join("s.yaml");
    let head = GOOD
        .split("faults:")
        .next()
        .unwrap()
        .replace("replicas: 3", "replicas: 2");
    std::fs::write(
            &file,
            format!("{head}faults:\n  - {{ at: 5s, kind: scale-out, target: n3 }}\n  - {{ at: 7s, kind: disk-full, target: n1, for: 2s }}\n  - {{ at: 9s, kind: disk-full, target: n2, for: 2s }}\n"),
        )
        .unwrap();
    let errs: Vec<String> = load(&file)
        .unwrap_err()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("the tmpfs holding /data on n2 is 2147483648 bytes"),
        "{errs:?}"
    );
}

#[test]
fn network_faults_and_repeats() {
    let s = with_faults(
        "  - { at: 5s, kind: partition, shape: isolate, target: stream-leader, for: 5s }
  - { at: 5s, kind: partition, shape: one-way, from: n1, to: [n2, n3], for: 2s }
  - { at: 2s, kind: loss, target: n2, percent: 20, peers: [n1], for: 3s }
  - { at: 1s, kind: bandwidth, target: all, rate: 1mbit, for: 2s, every: 5s, times: 4 }
  - { at: 3s, kind: rolling-restart }
",
    )
    .unwrap();
    assert_eq!(
        s.faults[0].settings,
        Settings::Partition(ShapeSpec::Isolate)
    );
    assert_eq!(
        s.faults[1].settings,
        Settings::Partition(ShapeSpec::OneWay {
            from: Target::Node("n1".into()),
            to: Target::Nodes(vec!["n2".into(), "n3".into()])
        })
    );
    assert_eq!(
        s.faults[2].settings,
        Settings::Loss {
            probability: 0.2,
            peers: vec!["n1".into()]
        }
    );
    let starts: Vec<u64> = s.faults[3]
        .occurrences(None)
        .iter()
        .map(|d| d.as_secs())
        .collect();
    assert_eq!(starts, vec![1, 6, 11, 16]);
    assert_eq!(s.faults[4].target, Some(Target::All));
}

#[test]
fn random_intervals_come_from_the_seed() {
    let s = with_faults(
        "  - { at: 1s, kind: pause, target: n1, for: 1s, every: 5s, jitter: 2s, times: 4 }\n",
    )
    .unwrap();
    let f = &s.faults[0];
    let a = f.occurrences(Some(&mut crate::rng::Rng::new(9)));
    let b = f.occurrences(Some(&mut crate::rng::Rng::new(9)));
    let c = f.occurrences(Some(&mut crate::rng::Rng::new(10)));
    assert_eq!(a, b, "the same seed gives the same schedule");
    assert_ne!(a, c);
    for pair in a.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_secs(3) && gap <= Duration::from_secs(7),
            "{gap:?}"
        );
    }
    // Validation bounds the latest possible schedule: 1 + 3 x 7 = 22 s.
    assert_eq!(f.occurrences(None).last(), Some(&Duration::from_secs(22)));
    let errs = with_faults(
        "  - { at: 1s, kind: pause, target: n1, for: 3s, every: 5s, jitter: 2s, times: 4 }\n",
    )
    .unwrap_err();
    assert!(
        errs[0].contains("each occurrence must heal before the next"),
        "{errs:?}"
    );
}

#[test]
fn faults_this_machine_cannot_do_are_refused_with_a_reason_and_an_alternative() {
    let errs = with_faults("  - { at: 5s, kind: clock-skew, target: n1 }\n").unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("s.yaml:"), "{errs:?}");
    assert!(
        errs[0].contains("clock-skew")
            && errs[0].contains("static Go binary")
            && errs[0].contains("alternative")
    );
    // Packet faults need NFQUEUE (this machine has it): accepted where it is, refused with
    // the reason and the alternatives where it is not.
    let duplicate = "  - { at: 5s, kind: duplicate, target: n1, percent: 10, for: 5s }\n";
    if crate::faults::packets::nfqueue_available() {
        let s = with_faults(duplicate).unwrap();
        assert_eq!(s.faults[0].kind, FaultKind::Duplicate);
    } else {
        let errs = with_faults(duplicate).unwrap_err();
        assert!(
            errs[0].contains("fault kind duplicate")
                && errs[0].contains("NFQUEUE")
                && errs[0].contains("alternative"),
            "{errs:?}"
        );
    }
}

#[test]
fn packet_faults_read_their_share_direction_and_hold() {
    if !crate::faults::packets::nfqueue_available() {
        return; // refused before their settings are read (the test above)
    }
    use crate::faults::packets::Action;
    let s = with_faults(
        "  - { at: 5s, kind: reorder, target: n1, percent: 25, delay: 30ms, direction: both, for: 5s }\n  - { at: 12s, kind: corrupt, target: n2, percent: 0.5, for: 2s }\n",
    )
    .unwrap();
    let Settings::Packets(reorder) = &s.faults[0].settings else {
        panic!("{:?}", s.faults[0].settings)
    };
    assert_eq!(
        reorder.action,
        Action::Reorder {
            share: 0.25,
            hold: Duration::from_millis(30)
        }
    );
    let Settings::Packets(corrupt) = &s.faults[1].settings else {
        panic!("{:?}", s.faults[1].settings)
    };
    assert_eq!(corrupt.action, Action::Corrupt { share: 0.005 });
    let errs = with_faults("  - { at: 5s, kind: duplicate, target: n1, for: 5s }\n").unwrap_err();
    assert!(
        errs[0].contains("missing key `percent`") && errs[0].contains("sent twice"),
        "{errs:?}"
    );
    let errs = with_faults("  - { at: 5s, kind: corrupt, target: n1, percent: 150, for: 5s }\n")
        .unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("expected at most 100")),
        "{errs:?}"
    );
    let errs =
        with_faults("  - { at: 5s, kind: reorder, target: n1, percent: 5, delay: 3s, for: 5s }\n")
            .unwrap_err();
    assert!(errs[0].contains("from 1ms to 1s"), "{errs:?}");
}

#[test]
fn clock_skew_needs_libfaketime_in_every_image() {
    let compose = |faketime: &str| {
        format!("services:\n  m1:\n    image: eclipse-mosquitto:2.0.11\n  m2:\n    image: eclipse-mosquitto:2.0.11\nx-faultline:\n  family: mqtt\n  broker: mosquitto\n  local-image:\n    \"eclipse-mosquitto:2.0.11\": {{ tag: local/m, recipe: images/m{faketime} }}\n")
    };
    let scenario = "name: skew\ncluster:\n  compose: c.yml\nworkload:\n  rate: 10\n  duration: 30s\n  mqtt: { topic: t }\nfaults:\n  - { at: 5s, kind: clock-skew, target: m1, offset: \"-90s\", for: 5s }\n";
    let s = load_with(&compose(", faketime: /lib/libfaketimeMT.so.1"), scenario).unwrap();
    assert_eq!(s.faults[0].kind, FaultKind::ClockSkew);
    assert_eq!(
        s.faults[0].settings,
        Settings::ClockSkew {
            offset_s: -90.0,
            drift_s: None
        }
    );
    let errs = load_with(&compose(""), scenario).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
            errs[0].starts_with("s.yaml:9:5: clock-skew needs libfaketime in every node's image, and node m1's image eclipse-mosquitto:2.0.11 has no local recipe that provides it")
                && errs[0].contains("alternative"),
            "{errs:?}"
        );
    let errs = load_with(
        &compose(", faketime: /lib/libfaketimeMT.so.1"),
        &scenario.replace("offset: \"-90s\"", "offset: soon"),
    )
    .unwrap_err();
    assert_eq!(
            errs,
            vec!["s.yaml:9:53: faults[0].offset: expected a signed duration such as \"+30s\" or \"-2m\", found \"soon\""]
        );
    let compose = compose(", faketime: /lib/libfaketimeMT.so.1");
    let s = load_with(
        &compose,
        &scenario.replace("offset: \"-90s\"", "drift: \"-250ms/s\""),
    )
    .unwrap();
    assert_eq!(
        s.faults[0].settings,
        Settings::ClockSkew {
            offset_s: 0.0,
            drift_s: Some(-0.25)
        },
        "a drift alone starts from the true time"
    );
    let errs = load_with(
        &compose,
        &scenario.replace("offset: \"-90s\"", "drift: \"+2s\""),
    )
    .unwrap_err();
    assert_eq!(
            errs,
            vec!["s.yaml:9:52: faults[0].drift: expected a signed duration per second such as \"+200ms/s\" or \"-1s/s\", found \"+2s\""]
        );
    let errs = load_with(&compose, &scenario.replace("offset: \"-90s\", ", "")).unwrap_err();
    assert!(
        errs[0].starts_with("s.yaml:9:5: faults[0]: a clock-skew needs `offset`"),
        "{errs:?}"
    );
}

#[test]
fn fault_settings_that_do_not_fit_the_kind() {
    let errs = with_faults(
        "  - { at: 5s, kind: partition, shape: ring, target: n1 }
  - { at: 5s, kind: kill, target: n1, rate: 1mbit }
  - { at: 5s, kind: loss, target: n1, percent: 120 }
  - { at: 5s, kind: partition, shape: isolate }
  - { at: 1s, kind: pause, target: n1, for: 6s, every: 5s, times: 2 }
",
    )
    .unwrap_err();
    let joined = errs.join("\n");
    for expected in [
        "faults[0].target: this partition shape takes no target",
        "faults[1].rate: only a bandwidth fault takes `rate`",
        "faults[2].percent: expected at most 100, found 120",
        "faults[3]: this partition shape needs a `target`",
        "each occurrence must heal before the next",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in\n{joined}"
        );
    }
}

#[test]
fn compose_problems_name_the_compose_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yml"),
        "services:\n  n1: { image: x, ports: [1] }\nx-faultline: { family: nats }\n",
    )
    .unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, GOOD).unwrap();
    let errs = load(&file).unwrap_err();
    assert!(errs[0].file.ends_with("c.yml"), "{errs:?}");
    assert_eq!((errs[0].pos.line, errs[0].pos.col), (2, 19));
}

#[test]
fn a_capacity_section_reads_with_its_defaults() {
    let s = load_str(&format!(
        "{GOOD}capacity:\n  slo: {{p99: 50ms, p999: 200ms, max_error_rate: 0.1%}}\n  search: {{start: 500, max: 8000}}\n  n_minus_1: {{kind: kill, target: stream-leader}}\n  planned_peak: 2000\n"
    ))
    .unwrap();
    let c = s.capacity.unwrap();
    assert_eq!(
        c.slo.latency,
        vec![
            (Percentile::P99, Duration::from_millis(50)),
            (Percentile::P999, Duration::from_millis(200))
        ]
    );
    assert!((c.slo.max_error_rate - 0.001).abs() < 1e-12);
    assert_eq!(c.slo.min_achieved, 0.99);
    assert_eq!(
        c.search,
        Search {
            start: 500.0,
            max: 8000.0,
            factor: 2.0,
            precision: 0.05
        }
    );
    assert_eq!(
        (c.warmup, c.hold),
        (Duration::from_secs(5), Duration::from_secs(20))
    );
    let held = c.n_minus_1.unwrap();
    assert_eq!(held.kind, FaultKind::Kill);
    assert_eq!(held.target, Some(Target::Role("stream-leader".into())));
    assert_eq!(c.planned_peak, Some(2000.0));
    assert_eq!(c.failover_load, 0.7);
    assert!(load_str(GOOD).unwrap().capacity.is_none());
}

#[test]
fn every_capacity_problem_is_reported_at_once_with_its_position() {
    let errs = load_str(&format!(
        "{GOOD}capacity:
  slo: {{max_error_rate: 1%}}
  search: {{start: 5000, max: 100, factor: 1}}
  step: {{hold: 10ms}}
  n_minus_1: {{kind: restart, target: n1}}
  failover_load: 0%
"
    ))
    .unwrap_err();
    assert_eq!(
        errs,
        vec![
            "s.yaml:16:8: capacity.slo: expected at least one latency bound (p50, p90, p99, p999 or max)",
            "s.yaml:17:43: capacity.search.factor: expected 1.1 to 10, found 1",
            "s.yaml:17:11: capacity.search: start (5000) is above max (100)",
            "s.yaml:18:16: capacity.step.hold: expected at least 1s",
            "s.yaml:19:21: capacity.n_minus_1.kind: a restart undoes itself; the N-1 condition needs a fault held for the whole search: kill, pause, stop, partition, loss, bandwidth, delay, reorder, duplicate, corrupt, disk-full, clock-skew, power-loss",
            "s.yaml:20:18: capacity.failover_load: expected more than 0%",
        ]
    );
    // A held fault is checked against the family and topology like any fault.
    let errs = load_str(&format!(
        "{GOOD}capacity:\n  slo: {{p99: 50ms}}\n  search: {{start: 1, max: 2}}\n  n_minus_1: {{kind: kill, target: n9, at: 3s}}\n"
    ))
    .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].contains("unknown key `at`"), "{errs:#?}");
}

#[test]
fn a_name_that_cannot_name_a_directory_is_refused() {
    for (name, col) in [("\"\"", 7), ("'.'", 7), ("..", 7)] {
        let errs = load_str(&GOOD.replacen("name: ok", &format!("name: {name}"), 1)).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].starts_with(&format!(
                "s.yaml:1:{col}: name: expected 1 to 64 characters"
            )),
            "{errs:#?}"
        );
    }
    let long = "n".repeat(65);
    assert!(load_str(&GOOD.replacen("name: ok", &format!("name: {long}"), 1)).is_err());
    let fine = "n".repeat(64);
    assert!(load_str(&GOOD.replacen("name: ok", &format!("name: {fine}"), 1)).is_ok());
}

#[test]
fn a_disk_path_that_would_reach_a_shell_as_code_is_refused() {
    for path in [
        "/data/$(touch /tmp/x)",
        "/data/'x'",
        "/data/../etc",
        "/data dir",
    ] {
        let text = GOOD.replace(
            "    kind: kill\n    target: stream-leader\n    for: 5s\n",
            &format!("    kind: disk-full\n    target: n1\n    for: 5s\n    path: \"{path}\"\n"),
        );
        let errs = load_str(&text).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("faults[0].path: expected the data directory's absolute path")),
            "{path}: {errs:#?}"
        );
    }
}

#[test]
fn nested_aliases_in_a_scenario_are_refused_with_their_position() {
    let errs = load_str(&format!("{}{GOOD}", crate::yaml::tests::laughs())).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("s.yaml:5:45:")
            && errs[0].contains("invalid YAML: more than 100000 nodes"),
        "{errs:#?}"
    );
}

#[test]
fn a_delay_reads_its_shape_direction_and_peers_and_says_what_is_wrong() {
    let s = with_faults(
        "  - { at: 5s, kind: delay, target: n1, delay: 100ms, jitter: 20ms, distribution: uniform, direction: both, peers: [n2], for: 5s }\n",
    );
    if !crate::faults::packets::nfqueue_available() && !crate::faults::netem_available() {
        let errs = s.unwrap_err();
        assert!(errs[0].contains("NFQUEUE"), "{errs:?}");
        return;
    }
    let s = s.unwrap();
    assert_eq!(s.faults[0].kind, FaultKind::Delay);
    let Settings::Packets(spec) = &s.faults[0].settings else {
        panic!("{:?}", s.faults[0].settings)
    };
    let crate::faults::packets::Action::Delay(shape) = spec.action else {
        panic!("{spec:?}")
    };
    assert_eq!(shape.delay, Duration::from_millis(100));
    assert_eq!(shape.jitter, Duration::from_millis(20));
    assert_eq!(spec.peers, ["n2"]);
    let errs = with_faults(
        "  - { at: 5s, kind: delay, target: n1, delay: 10ms, jitter: 20ms, direction: sideways, for: 5s }\n  - { at: 5s, kind: delay, target: n1, delay: 20s, for: 5s }\n  - { at: 5s, kind: delay, target: n1, for: 5s }\n",
    )
    .unwrap_err();
    let all = errs.join("\n");
    assert!(
        all.contains("faults[0].jitter: expected at most the delay (10ms), found 20ms"),
        "{all}"
    );
    assert!(
        all.contains(
            "faults[0].direction: expected one of egress, ingress, both, found \"sideways\""
        ),
        "{all}"
    );
    assert!(
        all.contains("faults[1].delay: expected a delay from 1ms to 10s, found 20s"),
        "{all}"
    );
    assert!(all.contains("faults[2]") && all.contains("delay"), "{all}");
}
