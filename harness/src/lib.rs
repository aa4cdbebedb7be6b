//! faultline: chaos and failover testing for message-broker clusters.
//!
//! A scenario (YAML) names a topology (a compose file), a workload and a fault schedule.
//! [`run::run`] starts the cluster in Docker, drives open-loop load through the broker's own
//! client, injects the faults, records everything in an append-only history, and the checkers
//! turn that history into a verdict and reports.
//!
//! Layers, each talking to the next only through the types named here:
//! [`scenario`] (model and validation) -> [`cluster`] (Docker) -> [`families`] (driver and
//! probes per broker family) -> [`workload`] (open-loop generator) and [`faults`] ->
//! [`history`] -> [`check`] -> [`report`].

pub mod check;
pub mod cluster;
pub mod families;
pub mod faults;
pub mod history;
pub mod http;
pub mod progress;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod workload;
pub mod yaml;

/// Process exit codes: the contract CI jobs rely on.
pub mod exit {
    /// Every check held.
    pub const PASS: i32 = 0;
    /// A check did not hold, or could not be decided (verdict `fail` or `unknown`).
    pub const FAIL: i32 = 1;
    /// The scenario or the command line is invalid; nothing was started.
    pub const INVALID: i32 = 2;
    /// Infrastructure error: Docker unreachable, an image that cannot be built, a cluster that
    /// never became ready; also a run interrupted before its verdict.
    pub const INFRASTRUCTURE: i32 = 3;
}
