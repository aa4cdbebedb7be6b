//! Corrupt-file (Jepsen's bitflip): on each target, stopped gracefully, `bits` random bits
//! flipped in the files matching `files` under the data directory `path`, then started again
//! (the mechanism is `data_files.rs`). The description names every file, byte and bit.

use super::data_files::{read_where, Damage, Spec};
use super::Settings;
use crate::yaml::{self, Diagnostics, Fields};

/// The settings only a corrupt-file (or a truncate-file, for `files` and `path`) takes.
pub const KEYS: &[&str] = &["files", "bits", "path"];

// What `read` takes, described for the scenario's JSON Schema.
/// The settings of a corrupt-file fault.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct Keys {
    /// The files to damage: a glob relative to the data directory (`*` within a name, `**`
    /// across directories, `?` one character), such as "jetstream/**/msgs/*.blk".
    pub files: String,
    /// How many bits to flip, each at a position drawn from the run's seed over all the
    /// matching bytes (default 1).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub bits: Option<u64>,
    /// The node's data directory in the container (default /data).
    #[serde(default)]
    pub path: Option<String>,
}

/// Reads `files`, `bits` (1 when absent) and `path` (/data when absent).
pub fn read(f: &Fields, d: &mut Diagnostics) -> Settings {
    let bits = match f.get("bits") {
        Some(n) => yaml::integer(n, &f.path_of("bits"), 1, 1_000_000, d).unwrap_or(1),
        None => 1,
    };
    match read_where(f, d) {
        Some((path, files)) => Settings::DataFiles(Spec {
            path,
            files,
            damage: Damage::Flip { bits },
        }),
        None => Settings::None,
    }
}
