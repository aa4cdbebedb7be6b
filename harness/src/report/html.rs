//! `report.html`: one self-contained page per run, for a person. No script, style sheet, font
//! or image is fetched: the style is inline and the charts are SVG drawn here, so the page opens
//! offline in any browser and can be kept as a CI artefact.
//!
//! It shows what the run was (verdict, scenario, cluster, images, seed, validity), a timeline of
//! the whole run (acknowledged, failed and unknown per second), every publish's latency as a
//! point coloured by outcome on a log axis with p50/p99/max per second, the fault windows shaded
//! with markers for detection, new leader, first client error, end of failover and recovery, one
//! lane per node from the probes, and the tables: faults, latency per phase (failed and unknown
//! publishes beside the acknowledged ones), checks and notes.
//!
//! The page is drawn from the result and a pass over the history; `faultline report` draws it
//! again from the history alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;

use super::terminal::ms;
use super::{Reporter, RunEvent, RunResult};
use crate::check::new_histogram;
use crate::check::verdict::{Outcome, Verdict};
use crate::history::{self, Kind, Phase, ProbeKind, Record};

/// Beyond this many points the scatter keeps, per pixel column and outcome, the fastest and
/// the slowest publish, and says so.
pub const MAX_POINTS: usize = 50_000;

const W: f64 = 1100.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;

/// What the page needs from the history besides the result.
#[derive(Default)]
struct Drawn {
    /// (intended send, latency to completion, outcome 0 ok / 1 fail / 2 unknown), in µs.
    points: Vec<(u64, u64, u8)>,
    /// Acknowledged latencies per second of intended send.
    per_second: Vec<Option<Histogram<u64>>>,
    probes: Vec<history::Probe>,
    phases: Vec<(Phase, u64)>,
    /// Per phase of intended send: failed and unknown publishes, and their time to completion.
    failed_by_phase: BTreeMap<&'static str, (u64, u64, Option<Histogram<u64>>)>,
    end_us: u64,
}

fn phase_name(phases: &[(Phase, u64)], t: u64) -> &'static str {
    let at = |p: Phase| phases.iter().find(|(q, _)| *q == p).map(|(_, t)| *t);
    match (at(Phase::Fault), at(Phase::Recovery)) {
        (_, Some(r)) if t >= r => "recovery",
        (Some(f), _) if t >= f => "fault",
        _ => "baseline",
    }
}

fn read(path: &Path) -> std::io::Result<Drawn> {
    let mut d = Drawn::default();
    for r in history::read(path)? {
        match r? {
            Record::Phase(m) => d.phases.push((m.phase, m.t_done)),
            Record::Probe(p) => {
                d.end_us = d.end_us.max(p.t_done);
                d.probes.push(p)
            }
            Record::Publish(p) => {
                let Some(t_done) = p.t_done.filter(|_| p.kind != Kind::Invoke) else {
                    continue;
                };
                d.end_us = d.end_us.max(t_done);
                let outcome = match p.kind {
                    Kind::Ok => 0,
                    Kind::Fail => 1,
                    _ => 2,
                };
                let latency = t_done.saturating_sub(p.t_intended).max(1);
                d.points.push((p.t_intended, latency, outcome));
            }
            _ => {}
        }
    }
    // The phase of a publish is known from its intended send once every boundary is read.
    let new = new_histogram;
    for &(t, latency, outcome) in &d.points {
        if outcome == 0 {
            let s = (t / 1_000_000) as usize;
            if s >= d.per_second.len() {
                d.per_second.resize_with(s + 1, || None);
            }
            d.per_second[s]
                .get_or_insert_with(new)
                .saturating_record(latency);
        } else {
            let e = d
                .failed_by_phase
                .entry(phase_name(&d.phases, t))
                .or_default();
            if outcome == 1 {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
            e.2.get_or_insert_with(new).saturating_record(latency);
        }
    }
    Ok(d)
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The horizontal scale shared by every chart: seconds since the run's clock started.
struct Scale {
    end_s: f64,
}

impl Scale {
    fn x(&self, t_ms: f64) -> f64 {
        LEFT + (t_ms / 1000.0 / self.end_s).clamp(0.0, 1.0) * (W - LEFT - RIGHT)
    }

    /// Vertical grid lines and second labels along the bottom of a chart `h` high.
    fn axis(&self, svg: &mut String, top: f64, h: f64) {
        let step = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0]
            .into_iter()
            .find(|s| self.end_s / s <= 12.0)
            .unwrap_or(1200.0);
        let mut t = 0.0;
        while t <= self.end_s {
            let x = self.x(t * 1000.0);
            let _ = write!(
                svg,
                r##"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{t:.0} s</text>"##,
                top + h,
                top + h + 14.0
            );
            t += step;
        }
    }
}

/// Fault windows shaded with their label, and the markers of what was measured, over a chart
/// from `top` to `top + h`.
fn fault_overlay(svg: &mut String, r: &RunResult, sc: &Scale, top: f64, h: f64) {
    for f in &r.faults {
        let Some(tf) = f.t_fault_ms else { continue };
        let th = f.t_heal_ms.unwrap_or(sc.end_s * 1000.0);
        let (x0, x1) = (sc.x(tf), sc.x(th));
        let _ = write!(
            svg,
            r##"<rect class="fault-window" x="{x0:.1}" y="{top}" width="{:.1}" height="{h}"><title>fault {}: {} {} from {} to {}</title></rect><text class="fault-label" x="{:.1}" y="{:.1}">fault {}: {} {}</text>"##,
            (x1 - x0).max(1.0),
            f.index,
            esc(&f.kind),
            esc(&f.target),
            ms(Some(tf)),
            ms(f.t_heal_ms),
            x0 + 3.0,
            top + 11.0,
            f.index,
            esc(&f.kind),
            esc(&f.target)
        );
        let marks = [
            ("detection", f.detection_ms.map(|d| tf + d)),
            ("new-leader", f.new_leader_ms.map(|d| tf + d)),
            ("client-error", f.client_error_ms.map(|d| tf + d)),
            ("failover", f.failover_ms.map(|d| tf + d)),
            (
                "recovery",
                f.recovery_ms.zip(f.t_heal_ms).map(|(d, heal)| heal + d),
            ),
        ];
        for (what, at) in marks {
            let Some(at) = at else { continue };
            let x = sc.x(at);
            let _ = write!(
                svg,
                r##"<line class="marker marker-{what}" x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{:.1}"><title>fault {}: {} at {}</title></line>"##,
                top + h,
                f.index,
                what.replace('-', " "),
                ms(Some(at))
            );
        }
    }
}

fn timeline(r: &RunResult, sc: &Scale) -> String {
    let (top, h) = (10.0, 170.0);
    let peak = r
        .timeline
        .iter()
        .map(|s| s.ok.max(s.fail).max(s.info))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let y = |v: u64| top + h - v as f64 / peak * h;
    let mut svg = format!(
        r##"<svg class="chart" id="timeline" viewBox="0 0 {W} {:.0}" role="img" aria-label="messages per second">"##,
        top + h + 40.0
    );
    sc.axis(&mut svg, top, h);
    fault_overlay(&mut svg, r, sc, top, h);
    for (class, pick) in [
        (
            "ok",
            (|s: &crate::check::Second| s.ok) as fn(&crate::check::Second) -> u64,
        ),
        ("fail", |s| s.fail),
        ("unknown", |s| s.info),
    ] {
        let mut d = String::new();
        for s in &r.timeline {
            let x0 = sc.x(s.t_s as f64 * 1000.0);
            let x1 = sc.x((s.t_s + 1) as f64 * 1000.0);
            let _ = write!(
                d,
                "{}{x0:.1} {:.1}H{x1:.1}",
                if d.is_empty() { "M" } else { "L" },
                y(pick(s))
            );
        }
        let _ = write!(svg, r##"<path class="series {class}" d="{d}"/>"##);
    }
    let _ = write!(
        svg,
        r##"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{peak:.0}/s</text><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">0</text></svg>"##,
        LEFT - 6.0,
        top + 4.0,
        LEFT - 6.0,
        top + h
    );
    svg
}

fn latency_chart(r: &RunResult, d: &Drawn, sc: &Scale) -> (String, Option<String>) {
    let (top, h) = (10.0, 300.0);
    let lo = d.points.iter().map(|p| p.1).min().unwrap_or(100).max(10) as f64 / 1000.0;
    let hi = d.points.iter().map(|p| p.1).max().unwrap_or(1000) as f64 / 1000.0;
    let (lo_e, hi_e) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let y = |latency_ms: f64| {
        let v = latency_ms.max(10f64.powf(lo_e)).log10();
        top + h - (v - lo_e) / (hi_e - lo_e) * h
    };
    let mut svg = format!(
        r##"<svg class="chart" id="latency" viewBox="0 0 {W} {:.0}" role="img" aria-label="latency of every publish">"##,
        top + h + 40.0
    );
    sc.axis(&mut svg, top, h);
    let mut e = lo_e;
    while e <= hi_e {
        let v = 10f64.powf(e);
        let _ = write!(
            svg,
            r##"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            y(v),
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            ms(Some(v))
        );
        e += 1.0;
    }
    fault_overlay(&mut svg, r, sc, top, h);
    // The points, downsampled beyond MAX_POINTS to each column's extremes per outcome.
    let total = d.points.len();
    let mut kept: Vec<(u64, u64, u8)> = if total > MAX_POINTS {
        // (pixel column, outcome) -> the fastest and the slowest (send, latency) in it.
        type Extremes = ((u64, u64), (u64, u64));
        let mut cols: BTreeMap<(i64, u8), Extremes> = BTreeMap::new();
        for &(t, l, o) in &d.points {
            let col = sc.x(t as f64 / 1000.0).round() as i64;
            let e = cols.entry((col, o)).or_insert(((t, l), (t, l)));
            if l < e.0 .1 {
                e.0 = (t, l);
            }
            if l > e.1 .1 {
                e.1 = (t, l);
            }
        }
        cols.into_iter()
            .flat_map(|((_, o), (a, b))| [(a.0, a.1, o), (b.0, b.1, o)])
            .collect()
    } else {
        d.points.clone()
    };
    kept.sort_unstable();
    kept.dedup();
    let note = (total > MAX_POINTS).then(|| {
        format!(
            "{total} publishes: {} points drawn, the fastest and the slowest of each pixel column and outcome",
            kept.len()
        )
    });
    for (o, class) in [(0u8, "ok"), (1, "fail"), (2, "unknown")] {
        let mut path = String::new();
        for &(t, l, _) in kept.iter().filter(|p| p.2 == o) {
            let _ = write!(
                path,
                "M{:.1} {:.1}h0",
                sc.x(t as f64 / 1000.0),
                y(l as f64 / 1000.0)
            );
        }
        if !path.is_empty() {
            let _ = write!(svg, r##"<path class="points {class}" d="{path}"/>"##);
        }
    }
    // p50, p99 and max of the acknowledged publishes, per second of intended send.
    for (class, q) in [("p50", 50.0), ("p99", 99.0), ("max", 100.0)] {
        let mut path = String::new();
        for (s, h) in d.per_second.iter().enumerate() {
            let Some(h) = h else { continue };
            let v = if q >= 100.0 {
                h.max()
            } else {
                h.value_at_quantile(q / 100.0)
            } as f64
                / 1000.0;
            let _ = write!(
                path,
                "{}{:.1} {:.1}",
                if path.is_empty() { "M" } else { "L" },
                sc.x((s as f64 + 0.5) * 1000.0),
                y(v)
            );
        }
        let _ = write!(svg, r##"<path class="quantile {class}" d="{path}"/>"##);
    }
    svg.push_str("</svg>");
    (svg, note)
}

/// One lane per node: down (reported by a peer), unreachable (its own monitoring endpoint),
/// and the roles it led.
fn lanes(r: &RunResult, d: &Drawn, sc: &Scale) -> String {
    let nodes: Vec<&String> = r.cluster.nodes.keys().collect();
    let lane_h = 22.0;
    let top = 6.0;
    let h = nodes.len() as f64 * lane_h;
    let mut svg = format!(
        r##"<svg class="chart" id="lanes" viewBox="0 0 {W} {:.0}" role="img" aria-label="node states">"##,
        top + h + 24.0
    );
    sc.axis(&mut svg, top, h);
    let end = sc.end_s * 1000.0;
    for (i, node) in nodes.iter().enumerate() {
        let y0 = top + i as f64 * lane_h;
        let _ = write!(
            svg,
            r##"<text class="lane-name" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect class="lane up" x="{LEFT}" y="{:.1}" width="{:.1}" height="{:.1}"/>"##,
            LEFT - 6.0,
            y0 + 15.0,
            esc(node),
            y0 + 2.0,
            W - LEFT - RIGHT,
            lane_h - 4.0
        );
        // Intervals [from, to) of a state, opened and closed by probe events.
        let mut spans: Vec<(&str, f64, f64, String)> = Vec::new();
        let mut open: BTreeMap<String, (f64, String)> = BTreeMap::new();
        for p in &d.probes {
            let t = p.t_done as f64 / 1000.0;
            let about = p.subject.as_deref() == Some(node.as_str());
            let own = p.observer == **node;
            match &p.event {
                ProbeKind::PeerDown if about => {
                    open.entry("down".into())
                        .or_insert((t, format!("{} reports it down", p.observer)));
                }
                ProbeKind::PeerUp if about => {
                    if let Some((from, why)) = open.remove("down") {
                        spans.push(("down", from, t, why));
                    }
                }
                ProbeKind::Unreachable if own => {
                    open.entry("unreachable".into())
                        .or_insert((t, "its monitoring endpoint did not answer".into()));
                }
                ProbeKind::Reachable if own => {
                    if let Some((from, why)) = open.remove("unreachable") {
                        spans.push(("unreachable", from, t, why));
                    }
                }
                ProbeKind::Leader => {
                    let role = p.role.clone().unwrap_or_default();
                    let key = format!("leader {role}");
                    if about {
                        open.entry(key).or_insert((t, format!("leader of {role}")));
                    } else if let Some((from, why)) = open.remove(&key) {
                        spans.push(("leader", from, t, why));
                    }
                }
                _ => {}
            }
        }
        for (key, (from, why)) in open {
            let class = key.split(' ').next().unwrap_or("down").to_string();
            let class: &str = match class.as_str() {
                "leader" => "leader",
                "unreachable" => "unreachable",
                _ => "down",
            };
            spans.push((class, from, end, why));
        }
        // Leadership under the failures, so a down node's lane shows down.
        spans.sort_by_key(|s| (s.0 != "leader") as u8);
        for (class, from, to, why) in spans {
            let (x0, x1) = (sc.x(from), sc.x(to));
            let (dy, hh) = if class == "leader" {
                (lane_h - 8.0, 4.0)
            } else {
                (2.0, lane_h - 4.0)
            };
            let _ = write!(
                svg,
                r##"<rect class="lane {class}" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{hh:.1}"><title>{}: {} from {} to {}</title></rect>"##,
                y0 + dy,
                (x1 - x0).max(1.0),
                esc(node),
                esc(&why),
                ms(Some(from)),
                ms(Some(to))
            );
        }
    }
    fault_overlay(&mut svg, r, sc, top, h);
    svg.push_str("</svg>");
    svg
}

fn legend(items: &[(&str, &str)]) -> String {
    let mut s = String::from(r#"<p class="legend">"#);
    for (class, label) in items {
        let _ = write!(s, r#"<span class="key {class}"></span>{label} "#);
    }
    s.push_str("</p>");
    s
}

/// The pages' style sheet (capacity.html adds to it).
pub const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1160px;padding:16px 24px;color:#1d232b;background:#fff}
h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:26px 0 6px;border-bottom:1px solid #dde2e8;padding-bottom:3px}
.verdict{display:inline-block;padding:2px 12px;border-radius:4px;color:#fff;font-weight:700;margin-right:10px}
.verdict.pass{background:#1b7f3b}.verdict.fail{background:#b3261e}.verdict.unknown{background:#8a6d00}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:10px 0}.facts dt{color:#5a6470}.facts dd{margin:0}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}th,td{border-bottom:1px solid #e5e8ec;padding:3px 10px;text-align:right}
th{background:#f4f6f8;font-weight:600}td.l,th.l{text-align:left}
.held{color:#1b7f3b}.failed{color:#b3261e;font-weight:700}.undecided{color:#8a6d00;font-weight:700}
svg.chart{width:100%;height:auto;display:block}
.grid{stroke:#e8ebef;stroke-width:1}.tick{font-size:11px;fill:#5a6470}
.fault-window{fill:#f2b8b5;fill-opacity:.35}.fault-label{font-size:11px;fill:#8c1d18}
.marker{stroke-width:2;stroke-dasharray:4 3}.marker-detection{stroke:#6a1b9a}.marker-new-leader{stroke:#1565c0}
.marker-client-error{stroke:#e65100}.marker-failover{stroke:#2e7d32}.marker-recovery{stroke:#00838f}
.series{fill:none;stroke-width:1.6}.series.ok{stroke:#2e7d32}.series.fail{stroke:#c62828}.series.unknown{stroke:#ef6c00}
.points{fill:none;stroke-linecap:round;stroke-width:3}.points.ok{stroke:#2e7d32;stroke-opacity:.35}
.points.fail{stroke:#c62828;stroke-opacity:.8}.points.unknown{stroke:#ef6c00;stroke-opacity:.8}
.quantile{fill:none;stroke-width:1.6}.quantile.p50{stroke:#263238}.quantile.p99{stroke:#6a1b9a}.quantile.max{stroke:#6a1b9a;stroke-dasharray:2 2}
.lane.up{fill:#e3f2e6}.lane.down{fill:#c62828}.lane.unreachable{fill:#ef6c00}.lane.leader{fill:#1565c0}.lane-name{font-size:12px;fill:#1d232b}
.legend{font-size:12px;color:#5a6470;margin:2px 0 0}.key{display:inline-block;width:14px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
.key.ok{background:#2e7d32}.key.fail{background:#c62828}.key.unknown{background:#ef6c00}.key.fault{background:#f2b8b5}
.key.detection{background:#6a1b9a}.key.new-leader{background:#1565c0}.key.client-error{background:#e65100}.key.failover{background:#2e7d32}.key.recovery{background:#00838f}
.key.p50{background:#263238;height:2px}.key.p99{background:#6a1b9a;height:2px}.key.down{background:#c62828}.key.leader{background:#1565c0}.key.up{background:#e3f2e6}
.note{color:#5a6470}ul{margin:4px 0;padding-left:20px}
"#;

/// The page for `r`, whose history is at `history_path`.
pub fn render(r: &RunResult, history_path: &Path) -> std::io::Result<String> {
    let d = read(history_path)?;
    let end_ms = (d.end_us as f64 / 1000.0)
        .max(r.timeline.len() as f64 * 1000.0)
        .max(1000.0);
    let sc = Scale {
        end_s: (end_ms / 1000.0).ceil(),
    };
    let verdict = match r.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Unknown => "unknown",
    };
    let mut s = String::with_capacity(1 << 16);
    let _ = write!(
        s,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>faultline: {} — {}</title><style>{STYLE}</style></head><body>"#,
        esc(&r.scenario),
        verdict.to_uppercase()
    );
    let _ = write!(
        s,
        r#"<h1><span class="verdict {verdict}" id="verdict">{}</span>{}</h1>"#,
        verdict.to_uppercase(),
        esc(&r.scenario)
    );
    if let Some(desc) = &r.description {
        let _ = write!(s, r#"<p class="note">{}</p>"#, esc(desc));
    }
    let images: Vec<String> = r
        .cluster
        .images
        .iter()
        .map(|i| {
            format!(
                "<code>{}</code> ({}{})",
                esc(&i.used),
                esc(&i.source),
                if i.used != i.requested {
                    format!(", for <code>{}</code>", esc(&i.requested))
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let nodes: Vec<String> = r
        .cluster
        .nodes
        .iter()
        .map(|(n, ip)| format!("{} {}", esc(n), esc(ip)))
        .collect();
    let v = &r.validity;
    let m = &r.messages;
    let _ = write!(
        s,
        r#"<dl class="facts"><dt>run</dt><dd><code>{}</code>, started {} UTC, seed {}</dd><dt>scenario file</dt><dd><code>{}</code></dd><dt>cluster</dt><dd>{} from <code>{}</code>: {}</dd><dt>images</dt><dd>{}</dd><dt>workload</dt><dd>{} msg/s for {} s from {} producer(s), {} B payloads, at most {} in flight</dd><dt>validity</dt><dd>probe every {} (the error bar of detection), acknowledgement timeout {}, drain {}, generator stall {}, harness CPU {}</dd><dt>messages</dt><dd>published {}, acknowledged {}, lost {}, duplicated {}, unexpected {}, failed {}, unknown {}, received {}</dd><dt>health after</dt><dd>{}</dd></dl>"#,
        esc(&r.run_id),
        esc(&r.started_at),
        r.seed,
        esc(&r.scenario_file),
        esc(&r.cluster.family),
        esc(&r.cluster.compose),
        nodes.join(", "),
        images.join("; "),
        r.workload.rate,
        r.workload.duration_s,
        r.workload.producers,
        r.workload.payload_bytes,
        r.workload.max_in_flight,
        ms(Some(v.probe_interval_ms)),
        ms(Some(v.ack_timeout_ms)),
        if v.drain_complete {
            "complete"
        } else {
            "INCOMPLETE"
        },
        ms(Some(v.generator_stall_ms)),
        v.harness_cpu_percent
            .map_or("n/a".into(), |c| format!("{c:.1} % of one core")),
        m.invoked,
        m.acked,
        m.lost,
        m.duplicated,
        m.unexpected,
        m.failed,
        m.unknown,
        m.received,
        if r.health_after.healthy {
            "healthy".to_string()
        } else {
            format!(
                "NOT healthy: {}",
                esc(r.health_after.detail.as_deref().unwrap_or(""))
            )
        }
    );
    let marks = [
        ("fault", "fault window"),
        ("detection", "detection"),
        ("new-leader", "new leader"),
        ("client-error", "first client error"),
        ("failover", "end of failover"),
        ("recovery", "recovery"),
    ];
    let _ = write!(s, "<h2>Timeline: messages per second, by completion</h2>");
    s.push_str(&legend(&[
        ("ok", "acknowledged/s"),
        ("fail", "failed/s"),
        ("unknown", "unknown/s"),
    ]));
    s.push_str(&legend(&marks));
    s.push_str(&timeline(r, &sc));
    let (chart, note) = latency_chart(r, &d, &sc);
    let _ = write!(
        s,
        "<h2>Latency of every publish, intended send to completion (log scale)</h2>"
    );
    s.push_str(&legend(&[
        ("ok", "acknowledged"),
        ("fail", "failed (time to the failure)"),
        ("unknown", "unknown (time to giving up)"),
        ("p50", "p50 per second"),
        ("p99", "p99 per second (dashed: max)"),
    ]));
    s.push_str(&chart);
    if let Some(note) = note {
        let _ = write!(s, r#"<p class="note" id="downsampled">{}</p>"#, esc(&note));
    }
    let _ = write!(s, "<h2>Nodes, as the probes saw them</h2>");
    s.push_str(&legend(&[
        ("up", "no report against it"),
        ("down", "reported down by a peer, or unreachable"),
        ("leader", "leader (of a stream, partition, topic)"),
    ]));
    s.push_str(&lanes(r, &d, &sc));

    if !r.faults.is_empty() {
        let pm = ms(Some(v.probe_interval_ms));
        let _ = write!(
            s,
            r#"<h2>Faults</h2><table id="faults"><tr><th>#</th><th class="l">fault</th><th>at</th><th>healed</th><th>detection</th><th class="l">new leader</th><th>client error</th><th>failover</th><th>longest ack gap</th><th>recovery</th><th>acks/s in window</th><th>p99 in window</th></tr>"#
        );
        for f in &r.faults {
            let leader = match (&f.new_leader, f.new_leader_ms) {
                (Some(n), t) => format!("{} after {} ± {pm}", esc(n), ms(t)),
                _ => "n/a".into(),
            };
            let _ = write!(
                s,
                r#"<tr><td>{}</td><td class="l">{} {}</td><td>{}</td><td>{}</td><td>{} ± {pm}</td><td class="l">{leader}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                f.index,
                esc(&f.kind),
                esc(&f.target),
                ms(f.t_fault_ms),
                ms(f.t_heal_ms),
                ms(f.detection_ms),
                ms(f.client_error_ms),
                ms(f.failover_ms),
                ms(f.max_ack_gap_ms),
                ms(f.recovery_ms),
                f.window_acks_per_s
                    .map_or("n/a".into(), |a| format!("{a:.0}")),
                ms(f.window_latency_ms.p99)
            );
        }
        s.push_str("</table>");
        for f in &r.faults {
            let mut lines: Vec<String> = Vec::new();
            if let Some(d) = &f.description {
                lines.push(esc(d));
            }
            if let Some(sig) = &f.detection_signal {
                lines.push(format!("detected by: {}", esc(sig)));
            }
            lines.extend(f.notes.iter().map(|n| esc(n)));
            if !lines.is_empty() {
                let _ = write!(
                    s,
                    "<p><b>fault {}</b></p><ul><li>{}</li></ul>",
                    f.index,
                    lines.join("</li><li>")
                );
            }
        }
    }
    let _ = write!(
        s,
        r#"<h2>Latency per phase of intended send</h2><table id="latency-table"><tr><th class="l">phase</th><th>acknowledged</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>failed</th><th>unknown</th><th>p99 of failed and unknown, to completion</th></tr>"#
    );
    for phase in ["baseline", "fault", "recovery"] {
        let Some(l) = r.latency_ms.get(phase) else {
            continue;
        };
        let (fail, unknown, hist) = d
            .failed_by_phase
            .get(phase)
            .map(|(f, u, h)| (*f, *u, h.as_ref()))
            .unwrap_or((0, 0, None));
        let _ = write!(
            s,
            r#"<tr><td class="l">{phase}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{fail}</td><td>{unknown}</td><td>{}</td></tr>"#,
            l.count,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            ms(hist.map(|h| h.value_at_quantile(0.99) as f64 / 1000.0))
        );
    }
    s.push_str(r#"</table><p class="note">The percentiles are of acknowledged publishes only; the failed and unknown ones are counted beside them, with how long they took to fail, so an outage cannot hide behind a low p99.</p>"#);
    let _ = write!(
        s,
        r#"<h2>Checks</h2><table id="checks"><tr><th class="l">check</th><th class="l">outcome</th><th class="l">measured</th></tr>"#
    );
    for c in &r.checks.cases {
        let (class, word) = match c.outcome {
            Outcome::Held => ("held", "held"),
            Outcome::Failed => ("failed", "FAILED"),
            Outcome::Undecided => ("undecided", "undecided"),
        };
        let _ = write!(
            s,
            r#"<tr><td class="l">{}</td><td class="l {class}">{word}</td><td class="l">{}</td></tr>"#,
            esc(&c.name),
            esc(&c.message)
        );
    }
    s.push_str("</table>");
    if !r.notes.is_empty() {
        let notes: Vec<String> = r.notes.iter().map(|n| esc(n)).collect();
        let _ = write!(
            s,
            "<h2>Notes</h2><ul><li>{}</li></ul>",
            notes.join("</li><li>")
        );
    }
    let _ = write!(
        s,
        r#"<p class="note">faultline {}; every number here is recomputed from the run's history by <code>faultline report</code>.</p></body></html>"#,
        env!("CARGO_PKG_VERSION")
    );
    Ok(s)
}

/// Writes `report.html` into the run directory.
pub struct HtmlReport;

impl Reporter for HtmlReport {
    fn on(&mut self, event: &RunEvent) -> std::io::Result<()> {
        let RunEvent::Finished { result, out_dir } = event else {
            return Ok(());
        };
        let path = out_dir.join("report.html");
        let history = history::in_dir(out_dir).unwrap_or_else(|| out_dir.join(history::FILE));
        render(result, &history)
            .and_then(|page| std::fs::write(&path, page))
            .map_err(|e| std::io::Error::new(e.kind(), format!("write {}: {e}", path.display())))
    }
}
