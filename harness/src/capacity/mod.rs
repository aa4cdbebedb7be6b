//! `faultline capacity`: the highest rate a topology sustains within a latency SLO, with all
//! nodes and with one fault held (N−1), and what a failover costs at the planned load.
//!
//! This far: the search over rates and the verdict of one step (`search.rs`), one step's
//! figures from its history (`measure.rs`), and capacity.json, .md and .csv (`report.rs`).
//! The runner that drives the steps on one cluster builds on them.

pub mod measure;
pub mod report;
pub mod search;
