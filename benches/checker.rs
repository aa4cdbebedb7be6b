//! How the checker scales: writes a synthetic history of N messages (publish invoke + ok +
//! receive per message, with a planted loss every 100 000 messages), then analyses it and
//! prints records per second and the process's peak memory.
//!
//! `cargo bench --bench checker` (N = 5 million); `FAULTLINE_BENCH_MESSAGES=20000000 cargo
//! bench --bench checker` for a longer run. The file goes to the system's temp directory.

use std::io::{BufWriter, Write};
use std::time::Instant;

use faultline::check;
use faultline::history::{self, Kind, Phase, Publish, Receive, Record};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let messages: u64 = std::env::var("FAULTLINE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let producers = 8u32;
    let per_producer = messages / producers as u64;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(history::FILE);

    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    out.write_all(history::binary::MAGIC).unwrap();
    let mut encoder = history::binary::Encoder::default();
    let mut frame = Vec::with_capacity(64);
    let mut line = |r: &Record| {
        frame.clear();
        encoder.encode(r, &mut frame);
        out.write_all(&frame).unwrap();
    };
    line(&Record::phase(Phase::Baseline, 0));
    let mut planted = 0u64;
    for seq in 0..per_producer {
        for p in 0..producers {
            let t = seq * 1000 + p as u64;
            let mut r = Publish {
                kind: Kind::Invoke,
                producer: p,
                seq,
                t_intended: t,
                t_sent: t + 5,
                node: Some("n1".into()),
                ..Default::default()
            };
            line(&Record::Publish(r.clone()));
            r.kind = Kind::Ok;
            r.t_done = Some(t + 900);
            r.position = Some(seq * producers as u64 + p as u64);
            line(&Record::Publish(r));
            if (seq * producers as u64 + p as u64) % 100_000 == 99_999 {
                planted += 1;
                continue;
            }
            line(&Record::Receive(Receive {
                id: Some((p, seq)),
                t_done: Some(t + 1000),
                ..Default::default()
            }));
        }
    }
    out.flush().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let total = per_producer * producers as u64;
    println!(
        "wrote {total} messages ({:.0} MiB of history, {:.1} bytes per message) in {:.1} s",
        size as f64 / (1 << 20) as f64,
        size as f64 / total as f64,
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let analysis = check::analyze(|| history::read(&path)).expect("analysis");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(analysis.messages.acked, total);
    assert_eq!(analysis.messages.lost, planted, "every planted loss found");
    let lines = 1 + total * 3 - planted;
    println!(
        "checked {total} messages ({lines} records, two passes) in {secs:.1} s: {:.2} M records/s per pass, lost {} (planted {planted})",
        2.0 * lines as f64 / secs / 1e6,
        analysis.messages.lost
    );
    match peak_rss_mib() {
        Some(mib) => println!("peak resident memory of the process: {mib:.0} MiB"),
        None => println!("peak resident memory: not available on this platform"),
    }
}
