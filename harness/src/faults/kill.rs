//! Kill: a signal to the nodes' main process (SIGKILL by default: a crash, no clean shutdown).
//! Several targets are signalled at once (a coordinated crash). Heal starts them again with
//! their data intact.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{on_all, start_all, wait_state, Fault, FaultCtx, FaultError, Settings};
use crate::cluster::ClusterNode;
use crate::yaml::{self, Diagnostics, Fields};

/// The settings only a kill takes.
pub const KEYS: &[&str] = &["signal"];

const SIGNALS: &[&str] = &["SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT"];

// What `read` takes, described for the scenario's JSON Schema.
/// The settings of a kill fault.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct Keys {
    /// The signal sent to the nodes' main process (default SIGKILL: a crash).
    #[serde(default)]
    #[schemars(schema_with = "signal_schema")]
    pub signal: Option<String>,
}

fn signal_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::schema::one_of(SIGNALS, "The signal (default SIGKILL: a crash).")
}

/// Reads `signal` (SIGKILL when absent).
pub fn read(f: &Fields, d: &mut Diagnostics) -> Settings {
    let signal = match f.get("signal") {
        Some(n) => yaml::choice(n, &f.path_of("signal"), SIGNALS, d).unwrap_or("SIGKILL"),
        None => "SIGKILL",
    };
    Settings::Kill {
        signal: signal.to_string(),
    }
}

/// Sends `signal` to every node's main process at once and waits (up to `within`) until each
/// has stopped; returns when the last signal was sent.
pub async fn signal_all(
    ctx: &FaultCtx,
    nodes: &[ClusterNode],
    signal: &str,
    within: Duration,
) -> Result<Instant, FaultError> {
    on_all(nodes, |node| async move {
        ctx.backend
            .kill(&node.container, &node.name, signal)
            .await?;
        let applied = Instant::now();
        wait_state(&*ctx.backend, node, within, "stopped", |running, _| {
            !running
        })
        .await?;
        Ok(applied)
    })
    .await
}

pub struct Kill {
    pub signal: String,
    pub nodes: Vec<ClusterNode>,
}

#[async_trait]
impl Fault for Kill {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        // SIGKILL ends the process at once; a graceful signal gets time to shut down.
        let within = if self.signal == "SIGKILL" {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(30)
        };
        signal_all(ctx, &self.nodes, &self.signal, within).await
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        start_all(ctx, &self.nodes).await
    }
}
