//! `faultline capacity`: the highest rate a topology sustains within a latency SLO, with all
//! nodes and with one fault held (N−1), and what a failover costs at the planned load.
//!
//! The search over rates and the verdict of one step (`search.rs`), one step's figures from
//! its history (`measure.rs`), the runner that drives the steps on one cluster (`runner.rs`),
//! and what it writes: capacity.json, .md, .csv (`report.rs`) and .html (`html.rs`); the
//! generator's own ceiling against an in-process sink (`ceiling.rs`, `faultline bench
//! generator`), and against the tool a user would pick instead (`peers.rs`, `faultline bench
//! peers`).

pub mod ceiling;
pub mod html;
pub mod measure;
pub mod peers;
pub mod report;
pub mod runner;
pub mod search;
pub mod threads;
