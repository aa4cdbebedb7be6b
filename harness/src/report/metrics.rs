//! `--metrics ADDR`: the live state of a run or a capacity sweep in Prometheus's text format
//! (prometheus-client), served at `http://ADDR/metrics` while faultline runs: the load's
//! counters, the last second's throughput and latency, the offered rate, and the current phase
//! (a capacity step says its condition and rate there). A reporter like the others, fed by the
//! progress events; a small HTTP/1.1 server on the runtime answers the scrapes.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Reporter, RunEvent};
use crate::progress::ProgressEvent;

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

/// The metrics, shared between the reporter (which sets them) and the server (which encodes
/// them on each scrape).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    acked: Gauge,
    failed: Gauge,
    unknown: Gauge,
    in_flight: Gauge,
    acked_per_second: Gauge,
    offered_rate: FloatGauge,
    latency_p50: FloatGauge,
    latency_p99: FloatGauge,
    load_elapsed: FloatGauge,
    phase: Family<PhaseLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("faultline");
        let m = Metrics {
            registry: Arc::new(Mutex::new(Registry::default())),
            acked: Gauge::default(),
            failed: Gauge::default(),
            unknown: Gauge::default(),
            in_flight: Gauge::default(),
            acked_per_second: Gauge::default(),
            offered_rate: FloatGauge::default(),
            latency_p50: FloatGauge::default(),
            latency_p99: FloatGauge::default(),
            load_elapsed: FloatGauge::default(),
            phase: Family::default(),
        };
        r.register(
            "acked",
            "Publishes acknowledged in the current load (a capacity step's own)",
            m.acked.clone(),
        );
        r.register(
            "failed",
            "Publishes refused in the current load",
            m.failed.clone(),
        );
        r.register(
            "unknown",
            "Publishes whose outcome is unknown (timed out, connection lost) in the current load",
            m.unknown.clone(),
        );
        r.register(
            "in_flight",
            "Publishes sent and not yet completed",
            m.in_flight.clone(),
        );
        r.register(
            "acked_per_second",
            "Acknowledgements in the last second",
            m.acked_per_second.clone(),
        );
        r.register(
            "offered_rate",
            "The rate the load offers, messages per second",
            m.offered_rate.clone(),
        );
        r.register(
            "latency_p50_milliseconds",
            "Median latency from the intended send time of the last second's acknowledgements (to within a tenth)",
            m.latency_p50.clone(),
        );
        r.register(
            "latency_p99_milliseconds",
            "99th percentile latency from the intended send time of the last second's acknowledgements (to within a tenth)",
            m.latency_p99.clone(),
        );
        r.register(
            "load_elapsed_seconds",
            "Seconds since the current load started",
            m.load_elapsed.clone(),
        );
        r.register(
            "phase",
            "The current phase (1), as the progress display names it",
            m.phase.clone(),
        );
        *m.registry.lock().unwrap_or_else(|e| e.into_inner()) = r;
        m
    }

    /// The metrics in Prometheus's text format (version 0.0.4).
    pub fn text(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }

    fn on(&self, event: &ProgressEvent) {
        match event {
            ProgressEvent::Phase(name) => {
                self.phase.clear();
                // The text format's label values are written as given: nothing in them may
                // end the quoted value or the line.
                let phase: String = name
                    .chars()
                    .take(200)
                    .map(|c| match c {
                        '"' => '\'',
                        '\\' => '/',
                        c if c.is_control() => ' ',
                        c => c,
                    })
                    .collect();
                self.phase.get_or_create(&PhaseLabel { phase }).set(1);
            }
            ProgressEvent::Load(s) => {
                let int = |v: u64| v.min(i64::MAX as u64) as i64;
                self.acked.set(int(s.acked));
                self.failed.set(int(s.failed));
                self.unknown.set(int(s.unknown));
                self.in_flight.set(int(s.in_flight));
                self.acked_per_second.set(int(s.acked_per_s));
                self.offered_rate.set(s.rate);
                self.latency_p50.set(s.latency_p50_ms.unwrap_or(f64::NAN));
                self.latency_p99.set(s.latency_p99_ms.unwrap_or(f64::NAN));
                self.load_elapsed.set(s.elapsed_s);
            }
            ProgressEvent::Note(_) | ProgressEvent::Status(_) => {}
        }
    }
}

/// The reporter that keeps [`Metrics`] current.
pub struct MetricsReport(pub Metrics);

impl Reporter for MetricsReport {
    fn on(&mut self, event: &RunEvent) -> std::io::Result<()> {
        if let RunEvent::Progress(stamped) = event {
            self.0.on(&stamped.event);
        }
        Ok(())
    }
}

/// Answers every HTTP request on `listener` with the metrics (any path; `/metrics` is what
/// Prometheus asks for), until the task is dropped. A request is read up to its blank line,
/// at most 8 KiB, within 5 s.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut read = 0;
            let head = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while read < buf.len() {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => read += n,
                    }
                    if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        return true;
                    }
                }
                false
            })
            .await;
            if head != Ok(true) {
                return;
            }
            let body = metrics.text();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::LoadStatus;

    #[test]
    fn the_metrics_follow_the_progress_events() {
        let m = Metrics::new();
        m.on(&ProgressEvent::Phase("n step 3: 4000 msg/s".into()));
        m.on(&ProgressEvent::Load(LoadStatus {
            elapsed_s: 2.0,
            duration_s: 13.0,
            acked: 8_000,
            acked_per_s: 4_000,
            failed: 1,
            unknown: 2,
            in_flight: 12,
            rate: 4_000.0,
            latency_p50_ms: Some(1.5),
            latency_p99_ms: Some(9.0),
        }));
        let text = m.text();
        for line in [
            "faultline_acked 8000",
            "faultline_acked_per_second 4000",
            "faultline_failed 1",
            "faultline_unknown 2",
            "faultline_in_flight 12",
            "faultline_offered_rate 4000.0",
            "faultline_latency_p99_milliseconds 9.0",
            "faultline_phase{phase=\"n step 3: 4000 msg/s\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        m.on(&ProgressEvent::Phase("a \"quoted\" \\ phase\nsplit".into()));
        assert!(m
            .text()
            .contains("faultline_phase{phase=\"a 'quoted' / phase split\"} 1"));
        m.on(&ProgressEvent::Phase("teardown".into()));
        let text = m.text();
        assert!(text.contains("faultline_phase{phase=\"teardown\"} 1"));
        assert!(!text.contains("n step 3"), "only the current phase: {text}");
    }

    #[tokio::test]
    async fn a_scrape_over_http_gets_the_text() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Metrics::new();
        m.on(&ProgressEvent::Phase("baseline".into()));
        let server = tokio::spawn(serve(listener, m));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        server.abort();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("text/plain; version=0.0.4"));
        assert!(
            out.contains("faultline_phase{phase=\"baseline\"} 1"),
            "{out}"
        );
    }
}
