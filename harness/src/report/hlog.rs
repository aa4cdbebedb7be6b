//! `latency.hlog`: the run's latencies as an HdrHistogram interval log, one histogram per
//! second and outcome, for HdrHistogram's own tools (HistogramLogProcessor, the plotters) and
//! any reader of the format.
//!
//! Values are microseconds. Each publish counts in the second it completed (as the timeline
//! does): tag `ok` holds acknowledged publishes, from intended send to acknowledgement (the
//! latency of MEASUREMENT.md, so the `ok` histograms add up to the per-phase percentiles of
//! result.json); `fail` and `unknown` hold the time from intended send to the failure or the
//! give-up, so an outage shows in latency terms too. Interval timestamps are seconds since the
//! run's clock started, with the wall-clock start as BaseTime.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use super::{Reporter, RunEvent, RunResult};
use crate::check::new_histogram;
use crate::history::{self, Kind, Record};

/// The tags, in the order the intervals of one second are written.
pub const TAGS: [&str; 3] = ["ok", "fail", "unknown"];

fn slot(kind: Kind) -> Option<usize> {
    match kind {
        Kind::Ok => Some(0),
        Kind::Fail => Some(1),
        Kind::Info => Some(2),
        Kind::Invoke => None,
    }
}

/// The run's start on the wall clock, from its `started_at` stamp.
fn started_unix(started_at: &str) -> Option<f64> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(started_at, &fmt).ok()?;
    Some(t.assume_utc().unix_timestamp() as f64)
}

/// Writes the interval log of the history at `history_path` to `out`.
pub fn write(history_path: &Path, result: &RunResult, out: &mut impl Write) -> std::io::Result<()> {
    let mut seconds: Vec<[Option<Histogram<u64>>; 3]> = Vec::new();
    for record in history::read(history_path)? {
        let Record::Publish(p) = record? else {
            continue;
        };
        let (Some(i), Some(t_done)) = (slot(p.kind), p.t_done) else {
            continue;
        };
        let s = (t_done / 1_000_000) as usize;
        if s >= seconds.len() {
            seconds.resize_with(s + 1, Default::default);
        }
        let h = seconds[s][i].get_or_insert_with(new_histogram);
        h.saturating_record(t_done.saturating_sub(p.t_intended).max(1));
    }
    let mut builder = IntervalLogWriterBuilder::new();
    builder.add_comment(&format!(
        "faultline {}: scenario {}, run {}; values in microseconds from intended send to completion; tags: ok, fail, unknown",
        env!("CARGO_PKG_VERSION"),
        result.scenario,
        result.run_id
    ));
    if let Some(base) = started_unix(&result.started_at) {
        builder.with_start_time(std::time::UNIX_EPOCH + Duration::from_secs_f64(base));
        builder.with_base_time(std::time::UNIX_EPOCH + Duration::from_secs_f64(base));
    }
    let mut serializer = V2DeflateSerializer::new();
    let mut log = builder.begin_log_with(out, &mut serializer)?;
    for (s, hists) in seconds.iter().enumerate() {
        for (i, h) in hists.iter().enumerate() {
            let Some(h) = h else { continue };
            log.write_histogram(
                h,
                Duration::from_secs(s as u64),
                Duration::from_secs(1),
                Tag::new(TAGS[i]),
            )
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
    }
    Ok(())
}

/// Writes `latency.hlog` into the run directory, from its history.
pub struct HlogReport;

impl Reporter for HlogReport {
    fn on(&mut self, event: &RunEvent) -> std::io::Result<()> {
        let RunEvent::Finished { result, out_dir } = event else {
            return Ok(());
        };
        let path = out_dir.join("latency.hlog");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let history = history::in_dir(out_dir).unwrap_or_else(|| out_dir.join(history::FILE));
        write(&history, result, &mut out)
            .and_then(|()| out.flush())
            .map_err(|e| std::io::Error::new(e.kind(), format!("write {}: {e}", path.display())))
    }
}
