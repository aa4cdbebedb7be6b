//! Disk full: fills the size-limited tmpfs holding a node's data directory with a ballast
//! file, from a sidecar in the node's process namespace (through `/proc/1/root`), so it works
//! with any broker image. Heal deletes the ballast and checks the space is back.
//!
//! Validation only accepts a target whose data directory is on a tmpfs of at most 1 GiB; the
//! fill script checks again that the filesystem it reaches is a tmpfs of that size, so a
//! mistake can never fill the host's disk.

use std::time::Instant;

use async_trait::async_trait;

use super::network::{quote, Sidecar};
use super::{on_all, read_data_dir, Fault, FaultCtx, FaultError, Planned, Settings};
use crate::cluster::backend::Share;
use crate::cluster::compose::Topology;
use crate::cluster::ClusterNode;
use crate::yaml::{Diagnostics, Fields};

/// The settings only a disk-full fault takes.
pub const KEYS: &[&str] = &["path"];

// What `read` takes, described for the scenario's JSON Schema.
/// The settings of a disk-full fault.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)] // described, never built: only its JSON Schema is used
pub struct Keys {
    /// The data directory's absolute path in the container (default /data), on the
    /// topology's size-limited volume.
    #[schemars(regex(pattern = "^/"))]
    pub path: Option<String>,
}

/// The data directory when `path` is not given.
use super::DEFAULT_PATH;

/// The largest tmpfs disk-full will fill (it takes that much memory): checked at validation
/// and again by the fill script in the container.
const MAX_DISK_FULL_BYTES: u64 = 1 << 30;

/// Reads `path`, the data directory's absolute path in the container.
pub fn read(f: &Fields, d: &mut Diagnostics) -> Settings {
    Settings::DiskFull {
        path: read_data_dir(f, d).unwrap_or_else(|| DEFAULT_PATH.into()),
    }
}

/// Disk-full fills only a size-limited tmpfs (never the host's disk), on every node it may hit.
pub fn check_topology(path: &str, planned: &Planned, topology: &Topology, d: &mut Diagnostics) {
    let checked = topology.services.iter().filter(|x| match &planned.named {
        Some(names) => names.contains(&x.name.as_str()),
        None => !x.is_spare(),
    });
    for service in checked {
        match service.tmpfs_holding(path).map(|t| t.size_bytes) {
            Some(Some(size)) if size <= MAX_DISK_FULL_BYTES => {}
            Some(Some(size)) => d.error(
                planned.pos,
                format!(
                    "disk-full: the tmpfs holding {path} on {} is {size} bytes; filling it would take that much memory: give it at most {} MiB (size=64m)",
                    service.name,
                    MAX_DISK_FULL_BYTES >> 20
                ),
            ),
            _ => d.error(
                planned.pos,
                format!(
                    "disk-full fills the filesystem holding {path} on the target, and on {} that is not a size-limited tmpfs, so faultline would fill the host's disk; give services.{}.tmpfs an entry such as \"{path}:size=64m\" (its contents then live in memory and do not survive a restart of the container)",
                    service.name, service.name
                ),
            ),
        }
    }
}

pub struct DiskFull {
    id: usize,
    nodes: Vec<ClusterNode>,
    path: String,
    /// Per node: the filesystem's size and the bytes the ballast took.
    filled: Vec<(String, u64, u64)>,
}

impl DiskFull {
    pub fn new(id: usize, nodes: Vec<ClusterNode>, path: String) -> Self {
        DiskFull {
            id,
            nodes,
            path,
            filled: Vec::new(),
        }
    }

    fn ballast(&self) -> String {
        format!("/proc/1/root{}/.faultline-disk-full-{}", self.path, self.id)
    }
}

/// Parses the `key=value` lines the scripts print.
fn field(output: &str, key: &str) -> Option<u64> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.trim().parse().ok())
}

#[async_trait]
impl Fault for DiskFull {
    async fn inject(&mut self, ctx: &FaultCtx) -> Result<Instant, FaultError> {
        // Every value reaches the script as a quoted assignment and is used only through
        // its variable (the path's characters are also checked when the scenario is read).
        let script = format!(
            r#"set -e
p={path}
d={dir}
b={ballast}
[ -d "$d" ] || {{ echo "no directory $p in the node"; exit 1; }}
fs=$(stat -f -c %T "$d")
# statfs through the magic link reaches the node's own mount (df would look in our mount table)
size=$(stat -f -c '%b %S' "$d" | awk '{{print $1 * $2}}')
[ "$fs" = tmpfs ] || {{ echo "$p is on $fs, not a tmpfs: refusing to fill it"; exit 1; }}
[ "$size" -le {MAX_DISK_FULL_BYTES} ] || {{ echo "the tmpfs holding $p is $size bytes, over {MAX_DISK_FULL_BYTES}: refusing to fill it"; exit 1; }}
dd if=/dev/zero of="$b" bs=1M 2>/dev/null || true
dd if=/dev/zero of="$b.tail" bs=4k 2>/dev/null || true
avail=$(stat -f -c '%a %S' "$d" | awk '{{print $1 * $2}}')
used=$(( $(stat -c %s "$b") + $(stat -c %s "$b.tail") ))
echo "size=$size"
echo "written=$used"
echo "avail=$avail"
[ "$avail" -lt 65536 ] || {{ echo "still $avail bytes free after filling"; exit 1; }}
"#,
            path = quote(&self.path),
            dir = quote(&format!("/proc/1/root{}", self.path)),
            ballast = quote(&self.ballast()),
        );
        let filled = std::sync::Mutex::new(Vec::new());
        let t = on_all(&self.nodes, |node| {
            let script = &script;
            let filled = &filled;
            async move {
                let sidecar = Sidecar::start_sharing(ctx, node, "disk", Share::Pid).await?;
                let result = sidecar.sh(ctx, script, "fill the data directory").await;
                let at = Instant::now();
                sidecar.remove(ctx).await?;
                let out = result?;
                filled.lock().unwrap_or_else(|e| e.into_inner()).push((
                    node.name.clone(),
                    field(&out, "size").unwrap_or(0),
                    field(&out, "written").unwrap_or(0),
                ));
                Ok(at)
            }
        })
        .await;
        self.filled = filled.into_inner().unwrap_or_else(|e| e.into_inner());
        t
    }

    async fn heal(&mut self, ctx: &FaultCtx) -> Result<(), FaultError> {
        let script = format!(
            "b={}\nrm -f \"$b\" \"$b.tail\"\n! ls \"$b\" \"$b.tail\" >/dev/null 2>&1\n",
            quote(&self.ballast())
        );
        on_all(&self.nodes, |node| {
            let script = &script;
            async move {
                // A stopped container's tmpfs is gone, and the ballast with it.
                let (running, _) = ctx.backend.state(&node.container, &node.name).await?;
                if running {
                    let sidecar = Sidecar::start_sharing(ctx, node, "disk", Share::Pid).await?;
                    let result = sidecar.sh(ctx, script, "free the data directory").await;
                    sidecar.remove(ctx).await?;
                    result?;
                }
                Ok(Instant::now())
            }
        })
        .await
        .map(|_| ())
    }

    fn describe(&self) -> Option<String> {
        let parts: Vec<String> = self
            .filled
            .iter()
            .map(|(node, size, written)| {
                format!(
                    "{} on {node} filled: {:.1} MiB written into its {:.0} MiB tmpfs",
                    self.path,
                    *written as f64 / 1048576.0,
                    *size as f64 / 1048576.0
                )
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}
