//! Clock skew: the nodes' wall clock moves by an offset, through libfaketime.
//!
//! When a scenario has a clock-skew fault, every node is started with libfaketime preloaded
//! (see [`control_environment`]), reading its offset from a file that says `+0`. Injecting
//! writes the offset into that file on the targets (libfaketime rereads it every second);
//! healing writes `+0` back. Both are verified by reading the clock inside the container
//! (`date`, which inherits the preload) against the harness's own. The monotonic clock is left
//! alone (`FAKETIME_DONT_FAKE_MONOTONIC`): brokers' timers and Erlang's VM must never see
//! monotonic time step, only the time of day they log, stamp and expire things by.
//!
//! Drift: libfaketime's own rate (`x1.2`) counts from each process's start, so faultline does
//! not use it; it steps the offset file itself once a second (libfaketime's reread interval),
//! to `offset + drift × elapsed`. The nodes' clock therefore runs away in one-second steps, and
//! at heal the clock read in the container is compared with the offset last written.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::{on_all, Fault, FaultCtx, FaultError, Planned, Settings};
use crate::cluster::compose::{ConfigFile, Topology};
use crate::cluster::images::ResolvedImage;
use crate::cluster::ClusterNode;
use crate::yaml::{self, Diagnostics, Fields};

/// The settings only a clock-skew takes.
pub const KEYS: &[&str] = &["offset", "drift"];

// What `read` takes, described for the scenario's JSON Schema.
/// The settings of a clock-skew fault: offset, drift or both.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Keys {
    /// Added to the nodes' wall clock, such as "+30s" or "-2m".
    pub offset: Option<crate::schema::SignedDurationText>,
    /// What the wall clock gains per real second while in effect, such as "+200ms/s".
    pub drift: Option<crate::schema::DriftText>,
}

/// Reads `offset` (a signed duration) and `drift` (a signed duration per second); at least one.
pub fn read(f: &Fields, path: &str, d: &mut Diagnostics) -> Settings {
    let signed = |key: &str, suffix: &str, example: &str, d: &mut Diagnostics| {
        let n = f.get(key)?;
        let text = yaml::string(n, &f.path_of(key), d)?;
        let (sign, rest) = match text.strip_prefix('-') {
            Some(rest) => (-1.0, rest),
            None => (1.0, text.strip_prefix('+').unwrap_or(text)),
        };
        match rest.strip_suffix(suffix).and_then(yaml::parse_duration) {
            Some(v) if !v.is_zero() => Some(sign * v.as_secs_f64()),
            _ => {
                d.error(
                    n.pos,
                    format!("{}: expected {example}, found {text:?}", f.path_of(key)),
                );
                None
            }
        }
    };
    let offset_s = signed(
        "offset",
        "",
        "a signed duration such as \"+30s\" or \"-2m\"",
        d,
    );
    let drift_s = signed(
        "drift",
        "/s",
        "a signed duration per second such as \"+200ms/s\" or \"-1s/s\"",
        d,
    );
    if f.get("offset").is_none() && f.get("drift").is_none() {
        d.error(
            f.pos,
            format!("{path}: a clock-skew needs `offset` (how far the clock jumps, such as \"+30s\"), `drift` (how fast it runs away, such as \"+200ms/s\"), or both"),
        );
    }
    Settings::ClockSkew {
        offset_s: offset_s.unwrap_or(0.0),
        drift_s,
    }
}

/// A clock-skew needs libfaketime in every node's image (every node is started with it
/// preloaded, see [`control_environment`]).
pub fn check_topology(planned: &Planned, topology: &Topology, d: &mut Diagnostics) {
    for service in topology.services.iter().filter(|x| !x.is_spare()) {
        let local = topology.local_images.get(&service.image);
        if local.is_none_or(|l| l.faketime.is_none()) {
            d.error(
                planned.pos,
                format!(
                    "clock-skew needs libfaketime in every node's image, and node {}'s image {} has no local recipe that provides it (x-faultline.local-image.\"{}\".faketime); alternative: pause or stop the node to make its timers fall behind",
                    service.name, service.image, service.image
                ),
            );
        }
    }
}

/// The file libfaketime reads the offset from, in every node.
pub const OFFSET_FILE: &str = "/etc/faultline-faketime";

/// How far the clock read in the container may be from the one asked for: the time to run
/// `date` through `docker exec`, and libfaketime's one-second cache.
const TOLERANCE_S: f64 = 1.5;

/// The environment that puts a node's clock under faultline's control, for a node whose image
/// has libfaketime's multi-threaded library at `library`.
pub fn control_environment(library: &str) -> Vec<String> {
    vec![
        format!("LD_PRELOAD={library}"),
        format!("FAKETIME_TIMESTAMP_FILE={OFFSET_FILE}"),
        "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
        "FAKETIME_CACHE_DURATION=1".into(),
    ]
}

/// How often a drifting clock's offset is stepped: libfaketime rereads the file once a second.
const STEP: Duration = Duration::from_secs(1);

/// libfaketime's relative offset in seconds (it reads fractions too): `+30`, `-120`, `+1.250`.
pub fn offset_text(offset_s: f64) -> String {
    let ms = (offset_s * 1000.0).round() as i64;
    if ms % 1000 == 0 {
        format!("{:+}\n", ms / 1000)
    } else {
        format!("{:+.3}\n", ms as f64 / 1000.0)
    }
}

pub struct ClockSkew {
    pub nodes: Vec<ClusterNode>,
    pub offset_s: f64,
    /// Seconds gained per real second while in effect (negative: lost).
    pub drift_s: Option<f64>,
    stepper: Option<Stepper>,
    healed: Option<String>,
}

impl ClockSkew {
    pub fn new(nodes: Vec<ClusterNode>, offset_s: f64, drift_s: Option<f64>) -> Self {
        ClockSkew {
            nodes,
            offset_s,
            drift_s,
            stepper: None,
            healed: None,
        }
    }
}

/// The task that steps a drifting clock; stopped when the fault heals or is dropped (an
/// interrupted run).
struct Stepper {
    task: tokio::task::JoinHandle<()>,
    /// The offset last written to every node.
    last: Arc<Mutex<f64>>,
}

impl Drop for Stepper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn step_offsets(ctx: &FaultCtx, nodes: Vec<ClusterNode>, offset_s: f64, drift_s: f64) -> Stepper {
    let last = Arc::new(Mutex::new(offset_s));
    let written = last.clone();
    let ctx = ctx.clone();
    let task = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for k in 1u32.. {
            tokio::time::sleep_until(start + STEP * k).await;
            let offset = offset_s + drift_s * (STEP * k).as_secs_f64();
            let writes = nodes.iter().map(|node| set(&ctx, node, offset));
            // A node another fault stopped cannot be written to; it reads the file when it
            // starts again, and the next step writes it.
            if futures::future::join_all(writes)
                .await
                .iter()
                .all(Result::is_ok)
            {
                *written.lock().unwrap_or_else(|e| e.into_inner()) = offset;
            }
        }
    });
    Stepper { task, last }
}

/// The container's clock minus the harness's, in seconds.
async fn read_offset(ctx: &FaultCtx, node: &ClusterNode) -> Result<f64, String> {
    let (code, out) = ctx
        .backend
        .exec(
            &node.container,
            &["date", "+%s.%N"],
            &format!("read the clock of node {}", node.name),
        )
        .await
        .map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    match out.trim().parse::<f64>() {
        Ok(theirs) if code == 0 => Ok(theirs - now),
        _ => Err(format!("`date` answered {code}: {}", out.trim())),
    }
}

/// Sets the offset on `node`; returns when the file was written.
async fn set(ctx: &FaultCtx, node: &ClusterNode, offset_s: f64) -> Result<Instant, FaultError> {
    ctx.backend
        .write_files(
            &node.container,
            &[(OFFSET_FILE.to_string(), offset_text(offset_s))],
            &format!("set the clock offset of node {}", node.name),
        )
        .await?;
    Ok(Instant::now())
}

/// Waits until the container's clock is `offset_s` away from the harness's, within the
/// tolerance.
async fn verify(ctx: &FaultCtx, node: &ClusterNode, offset_s: f64) -> Result<(), FaultError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = String::from("not read");
    while Instant::now() < deadline {
        match read_offset(ctx, node).await {
            Ok(seen) if (seen - offset_s).abs() <= TOLERANCE_S => return Ok(()),
            Ok(seen) => last = format!("{seen:+.1} s"),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(FaultError::NotApplied(format!(
        "node {}'s clock is not {offset_s:+.0} s from the harness's (last seen: {last}); is libfaketime preloaded in its image?",
        node.name
    )))
}

#[async_trait]
impl Fault for ClockSkew {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        let offset = self.offset_s;
        let applied = on_all(&self.nodes, |node| async move {
            let applied = set(ctx, node, offset).await?;
            verify(ctx, node, offset).await?;
            Ok(applied)
        })
        .await?;
        if let Some(drift) = self.drift_s {
            self.stepper = Some(step_offsets(ctx, self.nodes.clone(), offset, drift));
        }
        Ok(applied)
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        if let Some(mut stepper) = self.stepper.take() {
            stepper.task.abort();
            let _ = (&mut stepper.task).await;
            let last = *stepper.last.lock().unwrap_or_else(|e| e.into_inner());
            // How far the clocks ran away, read in the containers before they are set back.
            let mut seen = Vec::new();
            for node in &self.nodes {
                match read_offset(ctx, node).await {
                    Ok(o) => seen.push(format!("{} {o:+.1} s", node.name)),
                    Err(e) => seen.push(format!("{} not read ({e})", node.name)),
                }
            }
            self.healed = Some(format!(
                "the clock had drifted to {} when healed (offset last written {last:+.1} s)",
                seen.join(", ")
            ));
        }
        on_all(&self.nodes, |node| async move {
            let (running, _) = ctx.backend.state(&node.container, &node.name).await?;
            set(ctx, node, 0.0).await?;
            // A node that is down (killed by another fault) reads the file when it starts.
            if running {
                verify(ctx, node, 0.0).await?;
            }
            Ok(Instant::now())
        })
        .await
        .map(|_| ())
    }

    fn describe(&self) -> Option<String> {
        let jump = format!("wall clock {:+.0} s", self.offset_s);
        Some(match self.drift_s {
            Some(drift) => format!(
                "{jump}, then drifting {:+.0} ms per second, stepped every second (libfaketime; monotonic clock untouched)",
                drift * 1000.0
            ),
            None => format!("{jump} (libfaketime; monotonic clock untouched)"),
        })
    }

    fn healed_detail(&self) -> Option<String> {
        self.healed.clone()
    }
}

/// The topology with every node's clock under faultline's control (libfaketime preloaded,
/// offset +0), for scenarios with clock-skew faults. Validation made sure each image has a
/// local recipe providing libfaketime; here the image really used must be that local one.
pub fn controlled(
    topology: &Topology,
    images: &BTreeMap<String, ResolvedImage>,
) -> Result<Topology, String> {
    let mut t = topology.clone();
    for service in &mut t.services {
        let local = topology.local_images.get(&service.image);
        let library = local.and_then(|l| l.faketime.clone());
        let used = images.get(&service.image).map(|r| r.used.as_str());
        match (local, library) {
            (Some(local), Some(library)) if used == Some(local.tag.as_str()) => {
                service
                    .environment
                    .extend(control_environment(&library));
                service.files.push(ConfigFile {
                    target: OFFSET_FILE.into(),
                    content: offset_text(0.0),
                });
            }
            (Some(local), Some(_)) => {
                return Err(format!(
                    "clock-skew needs libfaketime, which faultline's local image {} has but node {}'s image {} (used as is: present or pulled) may not; remove {} from Docker so the local equivalent is built, or drop the clock-skew fault",
                    local.tag,
                    service.name,
                    service.image,
                    service.image
                ))
            }
            _ => {
                return Err(format!(
                    "clock-skew needs libfaketime in node {}'s image {}, and no local recipe provides it",
                    service.name, service.image
                ))
            }
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_as_libfaketime_reads_them() {
        assert_eq!(offset_text(30.0), "+30\n");
        assert_eq!(offset_text(-120.0), "-120\n");
        assert_eq!(offset_text(0.0), "+0\n");
        assert_eq!(offset_text(1.25), "+1.250\n");
        assert_eq!(offset_text(-0.2), "-0.200\n");
        let env = control_environment("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1");
        assert!(env.contains(&"FAKETIME_DONT_FAKE_MONOTONIC=1".to_string()));
        assert!(env
            .iter()
            .any(|e| e == &format!("FAKETIME_TIMESTAMP_FILE={OFFSET_FILE}")));
    }
}
