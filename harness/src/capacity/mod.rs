//! `faultline capacity`: the highest rate a topology sustains within a latency SLO, with all
//! nodes and with one fault held (N−1), and what a failover costs at the planned load.
//!
//! This far: the search over rates and the verdict of one step (`search.rs`), and one step's
//! figures from its history (`measure.rs`). The runner that drives the steps on one cluster,
//! and the reports, build on them.

pub mod measure;
pub mod search;
