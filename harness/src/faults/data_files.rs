//! Damage to a stopped node's data files (Jepsen's bitflip and truncate), shared by
//! `corrupt-file` and `truncate-file`: each target is stopped gracefully, the files matching a
//! glob under its data directory are read out of the container (Docker's archive API, which
//! works on a stopped container and runs nothing in it), changed, written back, read again to
//! check every change is there, and the node is started. The damage stays: heal only makes
//! sure the node runs. Positions come from the run's seed, so a seed repeats the same damage.

use std::io::Read;
use std::time::Instant;

use super::{ensure_running, on_all, read_data_dir, stop_gracefully, Fault, FaultCtx, FaultError};
use crate::cluster::ClusterNode;
use crate::rng::Rng;
use crate::yaml::{self, Diagnostics, Fields};

/// The most a data directory read out of a container may weigh.
const ARCHIVE_LIMIT: u64 = 1 << 30;

/// What is done to the matching files.
#[derive(Clone, Debug, PartialEq)]
pub enum Damage {
    /// Flip this many bits, each at a position drawn uniformly over the matching bytes.
    Flip { bits: u64 },
    /// Cut this many bytes off the end of every matching file (all of a shorter one).
    Cut { bytes: u64 },
}

/// A damage and where: the data directory and a glob relative to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub path: String,
    pub files: String,
    pub damage: Damage,
}

/// Reads `path` (default /data) and `files`, the settings both kinds share.
pub fn read_where(f: &Fields, d: &mut Diagnostics) -> Option<(String, String)> {
    let path = read_data_dir(f, d);
    let files = f
        .require("files", "a glob under the data directory, such as \"**/*.blk\"", d)
        .and_then(|n| {
            let g = yaml::string(n, &f.path_of("files"), d)?;
            if g.is_empty() || g.starts_with('/') || g.split('/').any(|x| x == "..") || g.contains('\0')
            {
                d.error(
                    n.pos,
                    format!(
                        "{}: expected a glob relative to the data directory (`*` within a name, `**` across directories, `?` one character; no leading '/', no \"..\"), found {g:?}",
                        f.path_of("files")
                    ),
                );
                return None;
            }
            Some(g.to_string())
        });
    Some((path?, files?))
}

/// `*` (any run within one name), `**` (any run of names, also none), `?` (one character
/// but '/'); everything else literally.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        if p.is_empty() {
            return s.is_empty();
        }
        if p.starts_with(b"**") {
            let rest = &p[2..];
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            if rest.is_empty() {
                return true;
            }
            // Zero directories, or skip through each '/'.
            if go(rest, s) {
                return true;
            }
            return s
                .iter()
                .enumerate()
                .any(|(i, &c)| c == b'/' && go(rest, &s[i + 1..]));
        }
        match p[0] {
            b'*' => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| go(&p[1..], &s[i..])),
            b'?' => !s.is_empty() && s[0] != b'/' && go(&p[1..], &s[1..]),
            c => !s.is_empty() && s[0] == c && go(&p[1..], &s[1..]),
        }
    }
    go(pattern.as_bytes(), path.as_bytes())
}

/// One regular file of the archive: its name in the archive, its name under the data
/// directory, its header, its bytes.
struct Entry {
    archive_name: String,
    rel: String,
    header: tar::Header,
    bytes: Vec<u8>,
}

/// The regular files of a data directory's archive whose path under it matches `glob`.
fn matching(tar_bytes: &[u8], glob: &str) -> std::io::Result<Vec<Entry>> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut found = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let archive_name = entry.path()?.to_string_lossy().into_owned();
        // Docker names entries from the directory's own name down: "data/jetstream/...".
        let Some((_, rel)) = archive_name.split_once('/') else {
            continue;
        };
        if !glob_match(glob, rel) {
            continue;
        }
        let rel = rel.to_string();
        let header = entry.header().clone();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        found.push(Entry {
            archive_name,
            rel,
            header,
            bytes,
        });
    }
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(found)
}

/// Damages `files` in place; returns one line per change.
fn damage(files: &mut [Entry], what: &Damage, rng: &mut Rng) -> Vec<String> {
    match what {
        Damage::Flip { bits } => {
            let total: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
            if total == 0 {
                return Vec::new();
            }
            let mut done = Vec::new();
            for _ in 0..*bits {
                let mut at = rng.next_u64() % total;
                let file = files
                    .iter_mut()
                    .find(|f| {
                        let len = f.bytes.len() as u64;
                        if at < len {
                            true
                        } else {
                            at -= len;
                            false
                        }
                    })
                    .expect("a position below the total lies in a file");
                let bit = rng.below(8) as u8;
                file.bytes[at as usize] ^= 1 << bit;
                done.push(format!("{} byte {at} bit {bit}", file.rel));
            }
            done
        }
        Damage::Cut { bytes } => files
            .iter_mut()
            .map(|f| {
                let before = f.bytes.len() as u64;
                let after = before.saturating_sub(*bytes);
                f.bytes.truncate(after as usize);
                format!("{} {before} -> {after} bytes", f.rel)
            })
            .collect(),
    }
}

/// The archive that writes the damaged files back (same names, owners and modes).
fn archive_of(files: &[Entry]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for f in files {
        let mut header = f.header.clone();
        header.set_size(f.bytes.len() as u64);
        builder.append_data(&mut header, &f.archive_name, f.bytes.as_slice())?;
    }
    builder.into_inner()
}

pub struct DataFiles {
    id: usize,
    nodes: Vec<ClusterNode>,
    spec: Spec,
    /// Per node, the changes made.
    done: Vec<(String, Vec<String>)>,
}

impl DataFiles {
    pub fn new(id: usize, nodes: Vec<ClusterNode>, spec: Spec) -> Self {
        DataFiles {
            id,
            nodes,
            spec,
            done: Vec::new(),
        }
    }
}

/// The node's data directory's parent and the archive read from it.
async fn read(ctx: &FaultCtx, node: &ClusterNode, path: &str) -> Result<Vec<u8>, FaultError> {
    Ok(ctx
        .backend
        .get_archive(
            &node.container,
            path,
            ARCHIVE_LIMIT,
            &format!("read {path} out of node {}", node.name),
        )
        .await?)
}

/// Stops the node, damages its files, checks the damage is there, starts it; the instant the
/// stop returned (the node's outage starts there) and the changes.
async fn damage_node(
    ctx: &FaultCtx,
    node: &ClusterNode,
    spec: &Spec,
    seed: u64,
) -> Result<(Instant, Vec<String>), FaultError> {
    let stopped = stop_gracefully(ctx, node).await?;
    let result = async {
        let tar = read(ctx, node, &spec.path).await?;
        let mut files = matching(&tar, &spec.files).map_err(|e| {
            FaultError::NotApplied(format!("node {}: read {}: {e}", node.name, spec.path))
        })?;
        if files.iter().all(|f| f.bytes.is_empty()) {
            return Err(FaultError::NotApplied(format!(
                "node {}: no file with data under {} matches {:?} ({} matching)",
                node.name,
                spec.path,
                spec.files,
                files.len()
            )));
        }
        let changes = damage(&mut files, &spec.damage, &mut Rng::new(seed));
        let parent = match spec.path.rsplit_once('/') {
            Some(("", _)) | None => "/".to_string(),
            Some((parent, _)) => parent.to_string(),
        };
        let archive = archive_of(&files)
            .map_err(|e| FaultError::NotApplied(format!("pack the damaged files: {e}")))?;
        ctx.backend
            .put_archive(
                &node.container,
                &parent,
                archive,
                &format!("write the damaged files back into node {}", node.name),
            )
            .await?;
        // In effect only once read back as written.
        let again = read(ctx, node, &spec.path).await?;
        let now = matching(&again, &spec.files).map_err(|e| {
            FaultError::NotApplied(format!("node {}: read {} again: {e}", node.name, spec.path))
        })?;
        for f in &files {
            if !now.iter().any(|n| n.rel == f.rel && n.bytes == f.bytes) {
                return Err(FaultError::NotApplied(format!(
                    "node {}: {} does not read back as damaged",
                    node.name, f.rel
                )));
            }
        }
        Ok(changes)
    }
    .await;
    // Started again whatever happened: a damage that failed must not leave the node down.
    ensure_running(&*ctx.backend, node).await?;
    Ok((stopped, result?))
}

/// At most this many changes per node are named in the description.
const NAMED: usize = 8;

#[async_trait::async_trait]
impl Fault for DataFiles {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        let done = std::sync::Mutex::new(Vec::new());
        let spec = &self.spec;
        let id = self.id as u64;
        let t = on_all(&self.nodes, |node| {
            let done = &done;
            let seed = ctx.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ fnv(&node.name);
            async move {
                let (t, changes) = damage_node(ctx, node, spec, seed).await?;
                done.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((node.name.clone(), changes));
                Ok(t)
            }
        })
        .await;
        let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
        done.sort();
        self.done = done;
        t
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        on_all(&self.nodes, |node| async move {
            ensure_running(&*ctx.backend, node).await?;
            Ok(Instant::now())
        })
        .await
        .map(|_| ())
    }

    fn describe(&self) -> Option<String> {
        if self.done.is_empty() {
            return None;
        }
        let verb = match self.spec.damage {
            Damage::Flip { bits } => format!("flipped {bits} bit(s) in"),
            Damage::Cut { bytes } => format!("cut {bytes} byte(s) off"),
        };
        let nodes: Vec<String> = self
            .done
            .iter()
            .map(|(node, changes)| {
                let mut named: Vec<&str> = changes.iter().take(NAMED).map(String::as_str).collect();
                let more = changes.len().saturating_sub(NAMED);
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                named.sort();
                format!("{node}: {}{more}", named.join(", "))
            })
            .collect();
        Some(format!(
            "stopped, {verb} {} under {} (read back as written), started: {}",
            self.spec.files,
            self.spec.path,
            nodes.join("; ")
        ))
    }
}

/// A stable hash of a node's name (each node of one fault gets its own positions).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_within_and_across_directories() {
        assert!(glob_match("**/*.blk", "jetstream/$G/streams/S/msgs/1.blk"));
        assert!(glob_match("**/*.blk", "1.blk"));
        assert!(glob_match(
            "jetstream/**/msgs/*.blk",
            "jetstream/a/b/msgs/12.blk"
        ));
        assert!(glob_match(
            "jetstream/**/msgs/*.blk",
            "jetstream/msgs/1.blk"
        ));
        assert!(!glob_match(
            "jetstream/*/msgs/*.blk",
            "jetstream/a/b/msgs/1.blk"
        ));
        assert!(glob_match("*.db", "mosquitto.db"));
        assert!(!glob_match("*.db", "sub/mosquitto.db"));
        assert!(glob_match("m?.db", "m1.db"));
        assert!(!glob_match("m?.db", "m/.db"));
        assert!(glob_match("**", "anything/at/all"));
    }

    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        dir.set_mode(0o755);
        b.append_data(&mut dir, "data/", &[][..]).unwrap();
        for (name, bytes) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o640);
            h.set_uid(1000);
            b.append_data(&mut h, format!("data/{name}"), *bytes)
                .unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn flips_land_in_matching_files_at_seeded_positions() {
        let tar = archive(&[
            ("a/1.blk", &[0u8; 100]),
            ("a/2.blk", &[0u8; 50]),
            ("meta.inf", b"x"),
        ]);
        let mut files = matching(&tar, "**/*.blk").unwrap();
        assert_eq!(
            files.iter().map(|f| f.rel.as_str()).collect::<Vec<_>>(),
            ["a/1.blk", "a/2.blk"]
        );
        let changes = damage(&mut files, &Damage::Flip { bits: 5 }, &mut Rng::new(7));
        assert_eq!(changes.len(), 5);
        let ones: u32 = files
            .iter()
            .flat_map(|f| f.bytes.iter())
            .map(|b| b.count_ones())
            .sum();
        // Five flips of zero bits: five ones, unless two landed on the same bit.
        assert!(ones == 5 || ones == 3, "{ones}");
        // The same seed, the same positions.
        let mut again = matching(&tar, "**/*.blk").unwrap();
        assert_eq!(
            damage(&mut again, &Damage::Flip { bits: 5 }, &mut Rng::new(7)),
            changes
        );
        // Written back with the same names, owners and modes.
        let back = archive_of(&files).unwrap();
        let mut a = tar::Archive::new(&back[..]);
        let first = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(first.path().unwrap().to_str().unwrap(), "data/a/1.blk");
        assert_eq!(first.header().uid().unwrap(), 1000);
        assert_eq!(first.header().mode().unwrap(), 0o640);
    }

    #[test]
    fn a_cut_shortens_every_matching_file() {
        let tar = archive(&[("x.log", b"0123456789"), ("y.log", b"01")]);
        let mut files = matching(&tar, "*.log").unwrap();
        let changes = damage(&mut files, &Damage::Cut { bytes: 4 }, &mut Rng::new(1));
        assert_eq!(changes, ["x.log 10 -> 6 bytes", "y.log 2 -> 0 bytes"]);
        assert_eq!(files[0].bytes, b"012345");
        assert!(files[1].bytes.is_empty());
    }
}
