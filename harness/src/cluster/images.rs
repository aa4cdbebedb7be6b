//! Makes sure every image a topology names can be run, without a registry if need be.
//!
//! For each image, in order: use it if present; else try to pull it; else use the local
//! equivalent named in the topology's `x-faultline.local-image` if already built; else build
//! it with its recipe (`build.sh <tag>`, which makes a Debian base from the machine's own apt
//! mirror and adds the broker). The result says which image each node really ran.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::compose::Topology;
use super::docker::DockerBackend;
use crate::progress::Progress;

pub use super::backend::ResolvedImage;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("this topology is unavailable on this machine: image {image} is not present, cannot be pulled ({pull}), and the topology names no local recipe for it (it needs a container registry, or the image loaded with `docker load` beforehand)")]
    NoRecipe { image: String, pull: String },
    #[error("build image {tag} with {recipe}: {reason} (full log: {log})")]
    Build {
        tag: String,
        recipe: String,
        reason: String,
        log: String,
    },
}

/// How long a pull may go without any answer from the daemon (which asks the registry) before
/// faultline gives up and falls back to the local recipe: a registry that does not answer
/// fails the pull in seconds, not minutes, while a slow download that keeps reporting
/// progress goes on.
const PULL_QUIET: Duration = Duration::from_secs(20);

async fn present(backend: &DockerBackend, image: &str) -> bool {
    backend.docker.inspect_image(image).await.is_ok()
}

/// Splits "repo:tag" (a registry port is not a tag).
fn split_ref(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

async fn pull(backend: &DockerBackend, image: &str, progress: &Progress) -> Result<(), String> {
    let (repo, tag) = split_ref(image);
    let options = CreateImageOptionsBuilder::new()
        .from_image(repo)
        .tag(tag)
        .build();
    let mut stream = backend.docker.create_image(Some(options), None, None);
    loop {
        let item = tokio::time::timeout(PULL_QUIET, stream.next())
            .await
            .map_err(|_| format!("no answer from the registry for {PULL_QUIET:?}"))?;
        let Some(item) = item else { return Ok(()) };
        let info = item.map_err(|e| e.to_string())?;
        if let Some(status) = info.status {
            progress.status(&format!("pull {image}: {status}"));
        }
    }
}

/// Resolves every image of the topology; builds local equivalents when needed.
pub async fn ensure(
    backend: &DockerBackend,
    topology: &Topology,
    progress: &Progress,
    log: &Path,
) -> Result<BTreeMap<String, ResolvedImage>, ImageError> {
    let mut resolved = BTreeMap::new();
    for service in &topology.services {
        let image = &service.image;
        if resolved.contains_key(image) {
            continue;
        }
        let found = if present(backend, image).await {
            ResolvedImage {
                requested: image.clone(),
                used: image.clone(),
                source: "present".into(),
            }
        } else {
            match pull(backend, image, progress).await {
                Ok(()) => {
                    progress.note(&format!("pulled {image}"));
                    ResolvedImage {
                        requested: image.clone(),
                        used: image.clone(),
                        source: "pulled".into(),
                    }
                }
                Err(pull_error) => {
                    let Some(local) = topology.local_images.get(image) else {
                        return Err(ImageError::NoRecipe {
                            image: image.clone(),
                            pull: pull_error,
                        });
                    };
                    if present(backend, &local.tag).await {
                        ResolvedImage {
                            requested: image.clone(),
                            used: local.tag.clone(),
                            source: "local equivalent (no registry)".into(),
                        }
                    } else {
                        progress.phase(&format!(
                            "building image {} ({image} cannot be pulled: {pull_error})",
                            local.tag
                        ));
                        build(backend, &local.tag, &local.recipe, progress, log).await?;
                        ResolvedImage {
                            requested: image.clone(),
                            used: local.tag.clone(),
                            source: format!("built by recipe {}", local.recipe.display()),
                        }
                    }
                }
            }
        };
        progress.note(&format!(
            "image {} -> {} ({})",
            found.requested, found.used, found.source
        ));
        resolved.insert(image.clone(), found);
    }
    Ok(resolved)
}

/// The image network faults run their sidecars from (iptables, tc): the Debian base, built
/// by the `images/debian-base` recipe beside the topology when absent.
pub const TOOLS_IMAGE: &str = "faultline/debian-base:bookworm";

pub async fn ensure_tools(
    backend: &DockerBackend,
    topology: &Topology,
    progress: &Progress,
    log: &Path,
) -> Result<String, ImageError> {
    if !present(backend, TOOLS_IMAGE).await {
        let recipe = topology
            .file
            .parent()
            .unwrap_or(Path::new("."))
            .join("images/debian-base");
        progress.phase(&format!(
            "building image {TOOLS_IMAGE} for network-fault sidecars"
        ));
        build(backend, TOOLS_IMAGE, &recipe, progress, log).await?;
    }
    progress.note(&format!("network faults use sidecars from {TOOLS_IMAGE}"));
    Ok(TOOLS_IMAGE.to_string())
}

/// The longest an image recipe may run (the tansu recipe compiles a Rust workspace: 9 to 23
/// minutes on two cores).
const BUILD_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// A recipe's process group, ended (SIGTERM to every process in it: bash, and cargo,
/// debootstrap or `docker build` under it; the recipes' traps remove their work directories)
/// when the build is dropped before it finished: interrupted, timed out, failed.
struct ProcessGroup {
    pgid: Option<i32>,
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.filter(|&p| p > 1) {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory is shared.
            unsafe {
                libc::kill(-pgid, libc::SIGTERM);
            }
        }
    }
}

/// Runs `recipe/build.sh tag` in a process group of its own, its progress lines shown and
/// its stderr in `log`; when dropped before it ends, the whole group is ended.
async fn run_recipe(
    recipe: &Path,
    tag: &str,
    log: std::fs::File,
    started: Instant,
    progress: &Progress,
) -> Result<(), String> {
    let mut child = tokio::process::Command::new("bash")
        .arg(recipe.join("build.sh"))
        .arg(tag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        // Not kill_on_drop: SIGKILL would end bash before its traps remove its work
        // directory; the group's SIGTERM (ProcessGroup) ends it and what it started.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    let mut group = ProcessGroup {
        pgid: child.id().map(|id| id as i32),
    };
    let mut last_line = String::new();
    if let Some(out) = child.stdout.take() {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            progress.note(&format!(
                "[{:>4.0}s] {line}",
                started.elapsed().as_secs_f64()
            ));
            last_line = line;
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("recipe did not finish: {e}"))?;
    // bash has ended: what it started ended with it, or is orphaned in the group and ended now.
    if status.success() {
        group.pgid = None;
        return Ok(());
    }
    Err(format!("{status}; last step: {last_line}"))
}

/// Runs a recipe, showing its progress lines and keeping everything else in the log.
async fn build(
    backend: &DockerBackend,
    tag: &str,
    recipe: &Path,
    progress: &Progress,
    log: &Path,
) -> Result<(), ImageError> {
    let fail = |reason: String| ImageError::Build {
        tag: tag.to_string(),
        recipe: recipe.display().to_string(),
        reason,
        log: log.display().to_string(),
    };
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| fail(format!("cannot open the build log: {e}")))?;
    let started = Instant::now();
    let ran = tokio::time::timeout(
        BUILD_TIMEOUT,
        run_recipe(recipe, tag, log_file, started, progress),
    )
    .await
    .map_err(|_| {
        format!("the recipe did not finish within {BUILD_TIMEOUT:?} (its process group was ended)")
    })
    .and_then(|r| r);
    ran.map_err(fail)?;
    if !present(backend, tag).await {
        return Err(fail(
            "the recipe succeeded but the image does not exist".into(),
        ));
    }
    progress.note(&format!(
        "built {tag} in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_interrupted_recipe_ends_its_whole_process_group_and_its_traps_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("recipe");
        std::fs::create_dir(&recipe).unwrap();
        let work = dir.path().join("work");
        let pid_file = dir.path().join("sleeper.pid");
        // Like lib.sh: a work directory removed by an EXIT trap, TERM turned into an exit, and
        // a long child (cargo, debootstrap) the build waits on.
        std::fs::write(
            recipe.join("build.sh"),
            format!(
                "mkdir {work}\ntrap 'rm -rf {work}' EXIT\ntrap 'exit 130' INT TERM\necho started\nsleep 300 & echo $! > {pids}\nwait\n",
                work = work.display(),
                pids = pid_file.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("build.log")).unwrap();
        let progress = Progress::new(|_| {});
        let build = run_recipe(&recipe, "t", log, Instant::now(), &progress);
        // Interrupted (dropped) once the long child runs.
        let _ = tokio::time::timeout(Duration::from_millis(1500), build).await;
        let sleeper: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        // Alive: there, and not a zombie waiting for init to reap it.
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|st| {
                    st.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().to_string())
                })
                .is_some_and(|rest| !rest.starts_with('Z'))
        };
        while (alive(sleeper) || work.exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!alive(sleeper), "the recipe's child {sleeper} still runs");
        assert!(!work.exists(), "the recipe's work directory is left");
    }

    #[test]
    fn image_references() {
        assert_eq!(split_ref("nats:2.15.1"), ("nats", "2.15.1"));
        assert_eq!(split_ref("nats"), ("nats", "latest"));
        assert_eq!(
            split_ref("registry:5000/team/nats"),
            ("registry:5000/team/nats", "latest")
        );
        assert_eq!(
            split_ref("registry:5000/nats:2.15.1"),
            ("registry:5000/nats", "2.15.1")
        );
    }
}
