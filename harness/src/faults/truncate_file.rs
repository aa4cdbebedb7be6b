//! Truncate-file (Jepsen's truncate): on each target, stopped gracefully, the last `bytes`
//! bytes cut off every file matching `files` under the data directory `path`, then started
//! again (the mechanism is `data_files.rs`). The description names every file and its sizes.

use super::data_files::{read_where, Damage, Spec};
use super::Settings;
use crate::yaml::{self, Diagnostics, Fields};

/// The settings only a truncate-file (or a corrupt-file, for `files` and `path`) takes.
pub const KEYS: &[&str] = &["files", "bytes", "path"];

// What `read` takes, described for the scenario's JSON Schema.
/// The settings of a truncate-file fault.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct Keys {
    /// The files to shorten: a glob relative to the data directory (`*` within a name, `**`
    /// across directories, `?` one character), such as "jetstream/**/msgs/*.blk".
    pub files: String,
    /// How many bytes to cut off the end of each matching file (all of a shorter one).
    #[schemars(range(min = 1))]
    pub bytes: u64,
    /// The node's data directory in the container (default /data).
    #[serde(default)]
    pub path: Option<String>,
}

/// Reads `files`, `bytes` and `path` (/data when absent).
pub fn read(f: &Fields, d: &mut Diagnostics) -> Settings {
    let bytes = f
        .require("bytes", "how many bytes to cut off each matching file", d)
        .and_then(|n| yaml::integer(n, &f.path_of("bytes"), 1, 1 << 40, d));
    match (read_where(f, d), bytes) {
        (Some((path, files)), Some(bytes)) => Settings::DataFiles(Spec {
            path,
            files,
            damage: Damage::Cut { bytes },
        }),
        _ => Settings::None,
    }
}
