//! Clock skew: the nodes' wall clock moves by an offset, through libfaketime.
//!
//! When a scenario has a clock-skew fault, every node is started with libfaketime preloaded
//! (see [`control_environment`]), reading its offset from a file that says `+0`. Injecting
//! writes the offset into that file on the targets (libfaketime rereads it every second);
//! healing writes `+0` back. Both are verified by reading the clock inside the container
//! (`date`, which inherits the preload) against the harness's own. The monotonic clock is left
//! alone (`FAKETIME_DONT_FAKE_MONOTONIC`): brokers' timers and Erlang's VM must never see
//! monotonic time step, only the time of day they log, stamp and expire things by.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::{on_all, Fault, FaultCtx, FaultError};
use crate::cluster::ClusterNode;

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

/// libfaketime's relative offset, in whole seconds: `+30`, `-120`.
pub fn offset_text(offset_s: f64) -> String {
    format!("{:+}\n", offset_s.round() as i64)
}

pub struct ClockSkew {
    pub nodes: Vec<ClusterNode>,
    pub offset_s: f64,
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
        let (code, out) = ctx
            .backend
            .exec(
                &node.container,
                &["date", "+%s.%N"],
                &format!("read the clock of node {}", node.name),
            )
            .await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        match out.trim().parse::<f64>() {
            Ok(theirs) if code == 0 => {
                let seen = theirs - now;
                if (seen - offset_s).abs() <= TOLERANCE_S {
                    return Ok(());
                }
                last = format!("{seen:+.1} s");
            }
            _ => last = format!("`date` answered {code}: {}", out.trim()),
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
        on_all(&self.nodes, |node| async move {
            let applied = set(ctx, node, offset).await?;
            verify(ctx, node, offset).await?;
            Ok(applied)
        })
        .await
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
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
        Some(format!(
            "wall clock {:+.0} s (libfaketime; monotonic clock untouched)",
            self.offset_s
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_as_libfaketime_reads_them() {
        assert_eq!(offset_text(30.0), "+30\n");
        assert_eq!(offset_text(-120.0), "-120\n");
        assert_eq!(offset_text(0.0), "+0\n");
        let env = control_environment("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1");
        assert!(env.contains(&"FAKETIME_DONT_FAKE_MONOTONIC=1".to_string()));
        assert!(env
            .iter()
            .any(|e| e == &format!("FAKETIME_TIMESTAMP_FILE={OFFSET_FILE}")));
    }
}
