//! faultline: chaos and failover testing for message-broker clusters.
//!
//! A scenario (YAML) names a topology (a compose file), a workload and a fault schedule.
//! [`run::run`] starts the cluster in Docker, drives open-loop load through the broker's own
//! client, injects the faults, records everything in an append-only history, and the checkers
//! turn that history into a verdict and reports.
//!
//! The modules stand on floors, and each imports only from floors below it (tests/layers.rs
//! keeps this; docs/architecture.md explains it), from the ground up:
//! 1. the shared vocabulary: [`yaml`], [`schema`], [`http`], [`progress`], [`history`], [`rng`],
//!    [`payload`], [`endpoint`], [`fault_kind`], [`procstat`];
//! 2. [`target`] (who a fault hits), [`check`] (history -> findings), [`cluster`] (Docker);
//! 3. [`families`] (the family registry; driver and probes per broker family);
//! 4. [`faults`] (each fault with its own settings) and [`workload`] (open-loop generator);
//! 5. [`scenario`] (the file and its validation);
//! 6. [`schedule`] (faults at their times) and [`report`];
//! 7. [`run`] (one run, start to verdict);
//! 8. [`capacity`] (the rate search of `faultline capacity`).

pub mod capacity;
pub mod check;
pub mod cluster;
pub mod endpoint;
pub mod families;
pub mod fault_kind;
pub mod faults;
pub mod history;
pub mod http;

pub mod payload;
pub mod powerfs;
pub mod procstat;
pub mod progress;
pub mod render;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod schema;
pub mod target;
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
