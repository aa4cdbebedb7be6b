//! capacity.html: one self-contained page (inline style, SVG drawn here, nothing fetched) with
//! latency against offered load per percentile, the SLO's bounds and each search's knee (the
//! highest rate that held the SLO) marked, N and N-1 overlaid; achieved against offered; the
//! steps' table and the failover run.

use std::fmt::Write as _;

use super::report::{condition_name, CapacityReport, Condition, Step};
use crate::report::html::{esc, STYLE};

const W: f64 = 1100.0;
const H: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 12.0;

const EXTRA_STYLE: &str = r#"
.n{stroke-dasharray:none}.n-1{stroke-dasharray:6 4}
.pct{fill:none;stroke-width:1.8}.pct.p50{stroke:#263238}.pct.p90{stroke:#1565c0}.pct.p99{stroke:#6a1b9a}.pct.p999{stroke:#c62828}.pct.max{stroke:#ef6c00}
.dot.pass{stroke:none}.dot.fail{fill:#fff;stroke-width:1.6}.dot.invalid{fill:#9e9e9e;stroke:#9e9e9e}
.dot.pass.p50{fill:#263238}.dot.pass.p90{fill:#1565c0}.dot.pass.p99{fill:#6a1b9a}.dot.pass.p999{fill:#c62828}.dot.pass.max{fill:#ef6c00}
.slo{stroke:#b3261e;stroke-width:1.2;stroke-dasharray:3 3}.slo-label{font-size:11px;fill:#b3261e}
.knee{stroke:#1b7f3b;stroke-width:1.6;stroke-dasharray:5 3}.knee-label{font-size:11px;fill:#1b7f3b}
.diag{stroke:#9e9e9e;stroke-width:1;stroke-dasharray:2 3}.ach{fill:none;stroke:#1565c0;stroke-width:1.8}
.big{font-size:28px;font-weight:700}.cards{display:flex;gap:28px;margin:8px 0}.cards div{min-width:180px}
"#;

/// One percentile's figure of a step.
type Figure = fn(&Step) -> Option<f64>;

/// Percentiles drawn: their colour class and their figure.
const PCTS: [(&str, Figure); 5] = [
    ("p50", |s| s.p50_ms),
    ("p90", |s| s.p90_ms),
    ("p99", |s| s.p99_ms),
    ("p999", |s| s.p999_ms),
    ("max", |s| s.max_ms),
];

struct Axes {
    x_max: f64,
    y_min: f64,
    y_max: f64,
    log: bool,
}

impl Axes {
    fn x(&self, v: f64) -> f64 {
        LEFT + (v / self.x_max).clamp(0.0, 1.0) * (W - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.y_min).log10() - self.y_min.log10())
                / (self.y_max.log10() - self.y_min.log10())
        } else {
            v / self.y_max
        };
        TOP + H - f.clamp(0.0, 1.0) * H
    }

    /// Grid and tick labels: rates along the bottom, `unit` up the side.
    fn draw(&self, svg: &mut String, unit: &str) {
        let step = nice_step(self.x_max / 8.0);
        let mut v = 0.0;
        while v <= self.x_max * 1.0001 {
            let x = self.x(v);
            let _ = write!(
                svg,
                r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                TOP + H,
                TOP + H + 14.0,
                rate_label(v)
            );
            v += step;
        }
        let ticks: Vec<f64> = if self.log {
            let mut t = Vec::new();
            let mut d = 10f64.powf(self.y_min.log10().floor());
            while d <= self.y_max * 1.0001 {
                for m in [1.0, 2.0, 5.0] {
                    if d * m >= self.y_min && d * m <= self.y_max {
                        t.push(d * m);
                    }
                }
                d *= 10.0;
            }
            t
        } else {
            let step = nice_step(self.y_max / 6.0);
            (0..=((self.y_max / step) as usize))
                .map(|i| i as f64 * step)
                .collect()
        };
        for t in ticks {
            let y = self.y(t);
            let _ = write!(
                svg,
                r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}{unit}</text>"#,
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                num_label(t)
            );
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn rate_label(v: f64) -> String {
    if v >= 1000.0 {
        format!("{}k/s", num_label(v / 1000.0))
    } else {
        format!("{v:.0}/s")
    }
}

fn num_label(v: f64) -> String {
    if v >= 10.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn steps_of(r: &CapacityReport, c: Condition) -> Vec<&Step> {
    let mut v: Vec<&Step> = r.steps.iter().filter(|s| s.condition == c).collect();
    v.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    v
}

fn verdict_class(s: &Step) -> &'static str {
    match (s.valid, s.pass) {
        (false, _) => "invalid",
        (true, true) => "pass",
        (true, false) => "fail",
    }
}

fn latency_chart(r: &CapacityReport) -> String {
    let values: Vec<f64> = r
        .steps
        .iter()
        .flat_map(|s| PCTS.iter().filter_map(|(_, f)| f(s)))
        .chain(r.slo_ms.values().copied())
        .filter(|v| *v > 0.0)
        .collect();
    let x_max = r
        .steps
        .iter()
        .map(|s| s.offered.max(s.rate))
        .fold(1.0, f64::max)
        * 1.05;
    let ax = Axes {
        x_max,
        y_min: values
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .max(0.01)
            / 1.5,
        y_max: values.iter().copied().fold(1.0, f64::max) * 1.5,
        log: true,
    };
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {}" role="img" aria-label="latency against offered load">"#,
        H + TOP + 24.0
    );
    ax.draw(&mut svg, " ms");
    for (key, ms) in &r.slo_ms {
        let y = ax.y(*ms);
        let _ = write!(
            svg,
            r#"<line class="slo" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="slo-label" x="{:.1}" y="{:.1}">SLO {key} {} ms</text>"#,
            W - RIGHT,
            W - RIGHT + 6.0,
            y + 4.0,
            num_label(*ms)
        );
    }
    for (max, c) in [
        (r.max_rate.n, Condition::N),
        (r.max_rate.n_minus_1, Condition::NMinus1),
    ] {
        if let Some(max) = max {
            let x = ax.x(max);
            let label = match c {
                Condition::N => "N",
                Condition::NMinus1 => "N-1",
            };
            // Near the right edge the label goes left of its line.
            let (lx, anchor) = if x > W - RIGHT - 120.0 {
                (x - 4.0, "end")
            } else {
                (x + 4.0, "start")
            };
            let _ = write!(
                svg,
                r#"<line class="knee {}" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}"/><text class="knee-label" x="{lx:.1}" y="{:.1}" text-anchor="{anchor}">{label} max {}</text>"#,
                condition_name(c),
                TOP + H,
                TOP + if c == Condition::N { 12.0 } else { 26.0 },
                rate_label(max)
            );
        }
    }
    for c in [Condition::N, Condition::NMinus1] {
        let steps = steps_of(r, c);
        for (key, f) in PCTS {
            let pts: Vec<String> = steps
                .iter()
                .filter(|s| s.valid)
                .filter_map(|s| Some(format!("{:.1},{:.1}", ax.x(s.offered), ax.y(f(s)?))))
                .collect();
            if pts.len() > 1 {
                let _ = write!(
                    svg,
                    r#"<polyline class="pct {key} {}" points="{}"/>"#,
                    condition_name(c),
                    pts.join(" ")
                );
            }
            for s in &steps {
                if let Some(v) = f(s) {
                    let _ = write!(
                        svg,
                        r#"<circle class="dot pct {key} {}" cx="{:.1}" cy="{:.1}" r="3.5"><title>{} {:.0}/s offered: {key} {v:.2} ms ({})</title></circle>"#,
                        verdict_class(s),
                        ax.x(s.offered),
                        ax.y(v),
                        condition_name(c),
                        s.offered,
                        verdict_class(s)
                    );
                }
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

fn achieved_chart(r: &CapacityReport) -> String {
    let x_max = r
        .steps
        .iter()
        .map(|s| s.offered.max(s.achieved).max(s.rate))
        .fold(1.0, f64::max)
        * 1.05;
    let ax = Axes {
        x_max,
        y_min: 0.0,
        y_max: x_max,
        log: false,
    };
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {}" role="img" aria-label="achieved against offered load">"#,
        H + TOP + 24.0
    );
    ax.draw(&mut svg, "/s");
    let _ = write!(
        svg,
        r#"<line class="diag" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/><text class="tick" x="{:.1}" y="{:.1}">achieved = offered</text>"#,
        ax.x(0.0),
        ax.y(0.0),
        ax.x(x_max),
        ax.y(x_max),
        W - RIGHT + 6.0,
        ax.y(x_max) + 4.0
    );
    for c in [Condition::N, Condition::NMinus1] {
        let steps = steps_of(r, c);
        let pts: Vec<String> = steps
            .iter()
            .map(|s| format!("{:.1},{:.1}", ax.x(s.offered), ax.y(s.achieved)))
            .collect();
        if pts.len() > 1 {
            let _ = write!(
                svg,
                r#"<polyline class="ach {}" points="{}"/>"#,
                condition_name(c),
                pts.join(" ")
            );
        }
        for s in steps {
            let _ = write!(
                svg,
                r##"<circle class="dot {}" fill="#1565c0" stroke="#1565c0" cx="{:.1}" cy="{:.1}" r="3.5"><title>{} {:.0}/s offered, {:.0}/s achieved ({})</title></circle>"##,
                verdict_class(s),
                ax.x(s.offered),
                ax.y(s.achieved),
                condition_name(c),
                s.offered,
                s.achieved,
                verdict_class(s)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn card(label: &str, value: Option<f64>, sub: &str) -> String {
    format!(
        r#"<div><div class="note">{}</div><div class="big">{}</div><div class="note">{}</div></div>"#,
        esc(label),
        value.map_or("none passed".into(), |v| format!("{v:.0} msg/s")),
        esc(sub)
    )
}

/// The page.
pub fn render(r: &CapacityReport) -> String {
    let mut s = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>faultline capacity: {}</title><style>{STYLE}{EXTRA_STYLE}</style></head><body>",
        esc(&r.scenario)
    );
    let _ = write!(s, "<h1>faultline capacity: {}</h1>", esc(&r.scenario));
    s.push_str(r#"<div class="cards">"#);
    s.push_str(&card(
        "all nodes (N)",
        r.max_rate.n,
        r.max_rate.n_bound.as_deref().unwrap_or(""),
    ));
    s.push_str(&card(
        "one fault held (N-1)",
        r.max_rate.n_minus_1,
        r.max_rate
            .n_minus_1_bound
            .as_deref()
            .or(r.held_fault.as_deref())
            .unwrap_or("no N-1 search"),
    ));
    if let (Some(peak), Some(h)) = (r.planned_peak, r.headroom) {
        let _ = write!(
            s,
            r#"<div><div class="note">headroom over the planned peak ({peak:.0} msg/s)</div><div class="big {}">{:+.0}%</div><div class="note">(N-1 maximum − peak) / peak</div></div>"#,
            if h < 0.0 { "failed" } else { "held" },
            h * 100.0
        );
    }
    s.push_str("</div>");
    if let Some(held) = &r.held_fault {
        let _ = write!(
            s,
            r#"<p class="note">N-1: <b>{}</b>, held for every N-1 step. Latency is measured from each message's intended send time (open loop); a step's first seconds (warm-up) are left out.</p>"#,
            esc(held)
        );
    }
    if let Some(note) = r.n_minus_1_above_n() {
        let _ = write!(s, r#"<p class="note">{}</p>"#, esc(&note));
    }
    s.push_str("<h2>Latency against offered load</h2>");
    s.push_str(&latency_chart(r));
    s.push_str(r#"<p class="legend"><span class="key p50"></span>p50 <span class="key" style="background:#1565c0;height:2px"></span>p90 <span class="key p99"></span>p99 <span class="key" style="background:#c62828;height:2px"></span>p99.9 <span class="key" style="background:#ef6c00;height:2px"></span>max · solid N, dashed N-1 · filled dot: held the SLO, hollow: failed it, grey: invalid (the harness was the limit)</p>"#);
    s.push_str("<h2>Achieved against offered</h2>");
    s.push_str(&achieved_chart(r));
    s.push_str("<h2>Steps</h2><table><tr><th class=\"l\">condition</th><th>offered/s</th><th>achieved/s</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th><th>harness CPU</th><th>broker CPU</th><th>machine CPU</th><th class=\"l\">verdict</th></tr>");
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
    for st in &r.steps {
        let verdict = match (st.valid, st.pass) {
            (false, _) => format!("invalid: {}", st.reasons.join("; ")),
            (true, true) => "pass".into(),
            (true, false) => format!("fail: {}", st.reasons.join("; ")),
        };
        let _ = write!(
            s,
            r#"<tr><td class="l">{}</td><td>{:.0}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}%</td><td>{:.2} cores</td><td>{}</td><td class="l {}">{}</td></tr>"#,
            condition_name(st.condition),
            st.offered,
            st.achieved,
            ms(st.p50_ms),
            ms(st.p99_ms),
            ms(st.p999_ms),
            ms(st.max_ms),
            st.errors,
            st.harness_cpu_share * 100.0,
            st.broker_cpu_cores.values().sum::<f64>(),
            st.machine_cpu_share
                .map_or("-".to_string(), |m| format!("{:.0}%", m * 100.0)),
            match verdict_class(st) {
                "pass" => "held",
                "fail" => "failed",
                _ => "undecided",
            },
            esc(&verdict)
        );
    }
    s.push_str("</table>");
    if let Some(f) = &r.failover {
        let h = &f.result;
        let _ = write!(
            s,
            r#"<h2>Failover at the planned load</h2><p>The scenario's faults at <b>{:.0} msg/s</b>, on a fresh cluster: <span class="verdict {}">{}</span> {} acknowledged, {} lost, {} unknown; failover {}, longest gap in acknowledgements {}. Its own report: <a href="{dir}/report.html">{dir}/report.html</a>.</p><table><tr><th class="l">phase</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th></tr>"#,
            f.load,
            h.verdict.word().to_lowercase(),
            h.verdict.word(),
            h.acked,
            h.lost,
            h.unknown,
            ms(h.failover_ms),
            ms(h.max_ack_gap_ms),
            dir = esc(&f.dir)
        );
        for (phase, l) in &h.latency_ms {
            let _ = write!(
                s,
                r#"<tr><td class="l">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(phase),
                ms(l.p50),
                ms(l.p99),
                ms(l.p999),
                ms(l.max)
            );
        }
        s.push_str("</table>");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Headline;

    #[test]
    fn the_page_draws_both_searches_the_slo_and_the_knees_and_fetches_nothing() {
        let mut r = crate::capacity::report::tests::report();
        r.slo_ms.insert("p99".into(), 50.0);
        r.held_fault = Some("kill n2".into());
        r.failover = Some(super::super::report::FailoverRun {
            load: 2_800.0,
            dir: "failover".into(),
            result: Headline {
                verdict: crate::check::verdict::Verdict::Pass,
                acked: 100,
                lost: 0,
                unknown: 1,
                failover_ms: Some(2_100.0),
                max_ack_gap_ms: Some(2_300.0),
                latency_ms: Default::default(),
            },
        });
        let page = render(&r);
        assert!(page.contains(">SLO p99 50 ms<"), "the SLO line");
        assert!(
            page.contains(">N max 6k/s<") && page.contains(">N-1 max 4k/s<"),
            "the knees"
        );
        // Five percentiles, one line each for N (two steps); N-1 has one step: dots only.
        assert_eq!(page.matches(r#"<polyline class="pct "#).count(), 5);
        assert_eq!(page.matches(r#"<polyline class="ach n""#).count(), 1);
        assert!(page.contains("kill n2"));
        assert!(page.contains("failover 2100.0 ms"));
        assert!(
            page.contains(r#"class="dot pct p99 fail""#),
            "the failed step's dots are hollow"
        );
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert_eq!(page.matches("<svg").count(), 2);
    }

    #[test]
    fn ticks_fall_on_round_numbers() {
        assert_eq!(nice_step(130.0), 200.0);
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(rate_label(1_500.0), "1.5k/s");
        assert_eq!(rate_label(800.0), "800/s");
        assert_eq!(rate_label(12_000.0), "12k/s");
    }
}
