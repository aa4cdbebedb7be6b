//! `summary.md`: the terminal summary as Markdown tables, for a CI job's page. Appended to
//! `$GITHUB_STEP_SUMMARY` as well when that variable is set (GitHub Actions shows it on the
//! run's page).

use std::fmt::Write;
use std::io::Write as _;

use super::terminal::{latency_rows, ms};
use super::{Reporter, RunEvent, RunResult};
use crate::check::verdict::Outcome;

/// The Markdown summary of a result.
pub fn render(r: &RunResult) -> String {
    let mut s = String::new();
    let verdict = r.verdict.word();
    let _ = writeln!(s, "## faultline: {} — {verdict}\n", r.scenario);
    let images: Vec<String> = r
        .cluster
        .images
        .iter()
        .map(|i| format!("`{}` ({})", i.used, i.source))
        .collect();
    let _ = writeln!(
        s,
        "Run `{}`, seed {}, {} cluster of {} nodes; images {}.\n",
        r.run_id,
        r.seed,
        r.cluster.family,
        r.cluster.nodes.len(),
        images.join(", ")
    );
    let m = &r.messages;
    let _ = writeln!(
        s,
        "| published | acked | lost | duplicated | unexpected | recovered | failed | unknown | received |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        m.invoked,
        m.acked,
        m.lost,
        m.duplicated,
        m.unexpected,
        m.recovered,
        m.failed,
        m.unknown,
        m.received
    );
    if !r.faults.is_empty() {
        let _ = writeln!(
            s,
            "### Faults\n\n| # | fault | at | detection (± {}) | new leader | client error | failover | longest ack gap | recovery |",
            ms(Some(r.validity.probe_interval_ms))
        );
        let _ = writeln!(s, "|---:|---|---:|---:|---|---:|---:|---:|---:|");
        for f in &r.faults {
            let leader = match (&f.new_leader, f.new_leader_ms) {
                (Some(n), t) => format!("{n} after {}", ms(t)),
                _ => "n/a".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} {} | {} | {} | {leader} | {} | {} | {} | {} |",
                f.index,
                f.kind,
                f.target,
                ms(f.t_fault_ms),
                ms(f.detection_ms),
                ms(f.client_error_ms),
                ms(f.failover_ms),
                ms(f.max_ack_gap_ms),
                ms(f.recovery_ms)
            );
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "### Latency, intended send to acknowledgement\n\n| phase | count | p50 | p90 | p99 | p99.9 | max |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for (phase, count, [p50, p90, p99, p999, max]) in latency_rows(r) {
        let _ = writeln!(
            s,
            "| {phase} | {count} | {p50} | {p90} | {p99} | {p999} | {max} |"
        );
    }
    let _ = writeln!(
        s,
        "\nOnly acknowledged publishes are in these percentiles; {} failed and {} with an unknown outcome are counted above.\n",
        m.failed, m.unknown
    );
    if let Some(g) = &r.regression {
        let _ = writeln!(
            s,
            "### Against the baseline\n\n`{}`, {} run(s).\n\n| number | baseline median | baseline spread | this run | limit | |",
            g.baseline, g.baseline_runs
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
        for c in &g.comparisons {
            let _ = writeln!(
                s,
                "| {} | {:.1} {u} | {:.1}–{:.1} {u} | {:.1} {u} | {:.1} {u} | {} |",
                c.name,
                c.baseline_median,
                c.baseline_min,
                c.baseline_max,
                c.value,
                c.limit,
                if c.regressed {
                    "**REGRESSION**"
                } else {
                    "held"
                },
                u = c.unit
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "### Checks\n\n| check | outcome | measured |");
    let _ = writeln!(s, "|---|---|---|");
    for case in &r.checks.cases {
        let outcome = match case.outcome {
            Outcome::Held => "held",
            Outcome::Failed => "**FAILED**",
            Outcome::Undecided => "*undecided*",
        };
        let _ = writeln!(
            s,
            "| {} | {outcome} | {} |",
            case.name,
            case.message.replace('|', "\\|")
        );
    }
    if !r.notes.is_empty() {
        let _ = writeln!(s, "\n### Notes\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

/// Writes `summary.md` into the run directory, and appends it to `$GITHUB_STEP_SUMMARY`.
pub struct MarkdownReport;

impl Reporter for MarkdownReport {
    fn on(&mut self, event: &RunEvent) -> std::io::Result<()> {
        let RunEvent::Finished { result, out_dir } = event else {
            return Ok(());
        };
        let text = render(result);
        let path = out_dir.join("summary.md");
        std::fs::write(&path, &text)
            .map_err(|e| std::io::Error::new(e.kind(), format!("write {}: {e}", path.display())))?;
        if let Some(step_summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&step_summary)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("append to $GITHUB_STEP_SUMMARY: {e}"))
                })?;
        }
        Ok(())
    }
}
