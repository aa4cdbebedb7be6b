//! The generator's own ceiling (`faultline bench generator`): the open-loop generator, its
//! completion tasks and the history writer driving a producer that acknowledges at once, in
//! this process, with no broker. The highest rate it holds (achieved ≥ 99 % of offered, send lag
//! p99 ≤ 10 ms) is the most any capacity step can measure on this machine; a cluster's maximum
//! near it says more of the harness than of the cluster.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;

use super::measure::{self, Harness, Hold};
use super::search::MAX_SEND_LAG_MS;
use crate::families::{Completion, Producer, Sent};
use crate::history::{self, Clock};
use crate::procstat;
use crate::progress::Progress;
use crate::workload::{self, Counters, LoadSpec};

/// A producer that acknowledges every message at once, with a position, as a broker would.
struct InstantAck {
    position: u64,
}

#[async_trait]
impl Producer for InstantAck {
    async fn send(&mut self, _payload: Bytes) -> Sent {
        self.position += 1;
        let position = Some(self.position);
        Sent::Pending {
            node: None,
            ack: futures::future::ready(Completion::Ok {
                position,
                partition: None,
            })
            .boxed(),
        }
    }
}

/// One rate against the in-process sink.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CeilingStep {
    pub producers: u32,
    pub offered: f64,
    pub achieved: f64,
    pub send_lag_p99_ms: f64,
    /// The process's CPU over the step, in cores.
    pub cpu_cores: f64,
    /// Messages acknowledged per CPU-second of the whole process.
    pub per_cpu_second: f64,
    /// History bytes on disk per published message.
    pub history_bytes_per_message: f64,
    /// Achieved ≥ 99 % of offered with the send lag p99 within 10 ms.
    pub held: bool,
}

/// The generator at `rate` for `duration` (the first fifth left out as warm-up), its history
/// written in `dir`.
pub async fn step(producers: u32, rate: f64, duration: Duration, dir: &Path) -> CeilingStep {
    let file = dir.join(format!("ceiling-{producers}-{rate:.0}.bin"));
    let (sink, writer) = history::open(&file).expect("open the history");
    let clock = Clock::start();
    let list: Vec<Box<dyn Producer>> = (0..producers)
        .map(|_| Box::new(InstantAck { position: 0 }) as Box<dyn Producer>)
        .collect();
    let counters = Arc::new(Counters::default());
    let spec = LoadSpec {
        rate,
        duration,
        payload_bytes: 128,
        max_in_flight: 65_536,
        ack_timeout: Duration::from_secs(2),
    };
    let start = Instant::now() + Duration::from_millis(50);
    let warmup = duration / 5;
    let cpu_before = procstat::own_cpu_seconds().unwrap_or(0.0);
    let load = tokio::spawn(workload::run(
        list,
        spec,
        start,
        clock,
        sink.clone(),
        counters.clone(),
    ));
    if let Ok(Err(panic)) = load.await {
        panic!("the generator panicked: {panic}");
    }
    drop(sink);
    let _ = writer.finish().await;
    let wall = start.elapsed().as_secs_f64();
    let cpu = procstat::own_cpu_seconds().unwrap_or(0.0) - cpu_before;
    let records = history::read(&file)
        .expect("read the history")
        .map_while(Result::ok);
    let m = measure::measure(
        records,
        Hold {
            from_us: clock.us(start + warmup),
            to_us: clock.us(start + duration),
        },
        Harness::default(),
    );
    let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
    let published = (rate * duration.as_secs_f64()).max(1.0);
    let _ = std::fs::remove_file(&file);
    let cpu_cores = if wall > 0.0 { cpu / wall } else { 0.0 };
    CeilingStep {
        producers,
        offered: m.offered,
        achieved: m.achieved,
        send_lag_p99_ms: m.send_lag_p99_ms,
        cpu_cores,
        per_cpu_second: if cpu > 0.0 { published / cpu } else { 0.0 },
        history_bytes_per_message: bytes as f64 / published,
        held: m.achieved >= 0.99 * m.offered && m.send_lag_p99_ms <= MAX_SEND_LAG_MS,
    }
}

/// Doubles the rate from `start` until a step does not hold (or `max` held): every step.
pub async fn ceiling(
    producers: u32,
    start: f64,
    max: f64,
    duration: Duration,
    dir: &Path,
    progress: &Progress,
) -> Vec<CeilingStep> {
    let mut steps = Vec::new();
    let mut rate = start;
    loop {
        let s = step(producers, rate, duration, dir).await;
        progress.note(&format!(
            "{producers} producer(s) at {rate:.0}/s: achieved {:.0}/s, send lag p99 {:.2} ms, {:.2} cores, {:.0} msg per CPU-second, {:.1} history bytes/msg: {}",
            s.achieved,
            s.send_lag_p99_ms,
            s.cpu_cores,
            s.per_cpu_second,
            s.history_bytes_per_message,
            if s.held { "held" } else { "NOT held" }
        ));
        let held = s.held;
        steps.push(s);
        if !held || rate >= max {
            return steps;
        }
        rate = (rate * 2.0).min(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_message_due_is_acknowledged_by_the_in_process_sink() {
        // Whether the rate held depends on the machine (a figure for the bench, not a test);
        // that each message due was sent, acknowledged and written compactly does not.
        let dir = tempfile::tempdir().unwrap();
        let s = step(2, 2_000.0, Duration::from_millis(500), dir.path()).await;
        assert_eq!(s.achieved, s.offered, "{s:?}");
        assert!((s.offered - 2_000.0).abs() < 100.0, "{s:?}");
        assert!(s.history_bytes_per_message < 32.0, "{s:?}");
    }
}
