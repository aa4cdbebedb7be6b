//! The Docker backend, on bollard: networks, containers, signals, pause, and the reaping of
//! everything a run labelled.
//!
//! Every object carries `faultline.run=<run id>` (and `faultline.pid=<pid>` of the process that
//! made it), so teardown and `faultline clean` remove exactly what faultline created.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::Docker;

pub use super::backend::{Leftovers, Share};

pub const RUN_LABEL: &str = "faultline.run";
pub const PID_LABEL: &str = "faultline.pid";
/// When the process of [`PID_LABEL`] started (clock ticks since boot, from /proc): a pid alone
/// can be reused by another process after faultline died.
pub const PID_START_LABEL: &str = "faultline.pid_start";
pub const NODE_LABEL: &str = "faultline.node";
pub const SIDECAR_LABEL: &str = "faultline.sidecar";

/// A Docker call that failed, with what the harness was doing.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct DockerError {
    pub action: String,
    #[source]
    pub source: bollard::errors::Error,
}

fn ctx<T>(
    r: Result<T, bollard::errors::Error>,
    action: impl Into<String>,
) -> Result<T, DockerError> {
    r.map_err(|source| DockerError {
        action: action.into(),
        source,
    })
}

/// The Docker backend: a connection to the local daemon.
#[derive(Clone)]
pub struct DockerBackend {
    pub docker: Docker,
    /// Runs being torn down: no object of theirs is created any more. Every creation holds a
    /// read guard for its whole call and teardown takes the write lock to close a run, so once
    /// it has, the run's objects can be listed completely (a timed heal that runs during
    /// teardown cannot start a sidecar behind its back).
    closed: std::sync::Arc<tokio::sync::RwLock<std::collections::HashSet<String>>>,
    /// The runtime the backend was made on (the process's own): creations run there, so they
    /// outlive the run's runtime, which is shut down before teardown (`run::guarded`).
    spawner: tokio::runtime::Handle,
}

/// The faultline binary that runs this process, for sidecars that run its packet program
/// (mounted read-only; the tools image is Debian like the machine it was built on).
fn helper_binary() -> Result<String, DockerError> {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .map_err(|e| DockerError {
            action: "find faultline's own binary to mount in a sidecar".into(),
            source: bollard::errors::Error::IOError { err: e },
        })
}

/// The error of a creation refused because its run is being torn down.
fn closed_error(run_id: &str, what: &str) -> DockerError {
    DockerError {
        action: format!("{what}: run {run_id} is being torn down"),
        source: bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message: "no new objects during teardown".into(),
        },
    }
}

/// What to create for one node.
pub struct NodeSpec<'a> {
    pub run_id: &'a str,
    pub node: &'a str,
    pub hostname: &'a str,
    pub image: &'a str,
    pub command: &'a [String],
    pub environment: &'a [String],
    pub network: &'a str,
    pub ip: Ipv4Addr,
    /// tmpfs mounts: path -> options.
    pub tmpfs: HashMap<String, String>,
    /// Files written into the container before it starts: absolute path -> content.
    pub files: &'a [(String, String)],
    pub healthcheck: Option<&'a super::compose::Healthcheck>,
    /// Extra network aliases besides the hostname and the node name.
    pub aliases: &'a [String],
    /// The data directory to keep on faultline's durability layer (power-loss), if any.
    pub durable: Option<&'a super::compose::Durability>,
}

impl DockerBackend {
    /// Connects to the local daemon and agrees on an API version both sides speak (Debian's
    /// engine 20.10 refuses clients newer than API 1.41).
    pub async fn connect() -> Result<Self, DockerError> {
        let docker = ctx(
            Docker::connect_with_local_defaults(),
            "connect to the Docker daemon",
        )?;
        let docker = ctx(
            docker.negotiate_version().await,
            "reach the Docker daemon (is it running, and may this user use its socket?)",
        )?;
        Ok(DockerBackend {
            docker,
            closed: Default::default(),
            spawner: tokio::runtime::Handle::current(),
        })
    }

    /// Creates an object of run `run_id` in a task of its own, so that it runs to its end even
    /// when the caller is dropped (a request cut off mid-way can still create the object in
    /// the daemon, after teardown listed the run's objects). The task holds the run open while
    /// it runs, so teardown, which closes the run first, lists only once it is done; a closed
    /// run's creation is refused.
    async fn creating<T: Send + 'static>(
        &self,
        run_id: &str,
        what: String,
        create: impl std::future::Future<Output = Result<T, bollard::errors::Error>> + Send + 'static,
    ) -> Result<T, DockerError> {
        let closed = self.closed.clone();
        let run = run_id.to_string();
        let task = self.spawner.spawn(async move {
            let open = closed.read_owned().await;
            if open.contains(&run) {
                return Err(closed_error(&run, &what));
            }
            ctx(create.await, what)
        });
        task.await.unwrap_or_else(|e| {
            Err(DockerError {
                action: format!("create an object of run {run_id}"),
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: 500,
                    message: e.to_string(),
                },
            })
        })
    }

    pub fn labels(run_id: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (RUN_LABEL.to_string(), run_id.to_string()),
            (PID_LABEL.to_string(), std::process::id().to_string()),
        ]);
        if let Some(start) = process_start(std::process::id()) {
            labels.insert(PID_START_LABEL.to_string(), start.to_string());
        }
        for (k, v) in extra {
            labels.insert(k.to_string(), v.to_string());
        }
        labels
    }

    /// Subnets of every existing network, to pick one that does not overlap.
    pub async fn used_subnets(&self) -> Result<Vec<String>, DockerError> {
        let networks = ctx(
            self.docker
                .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
                .await,
            "list networks",
        )?;
        Ok(networks
            .into_iter()
            .filter_map(|n| n.ipam?.config)
            .flatten()
            .filter_map(|c| c.subnet)
            .collect())
    }

    pub async fn create_network(
        &self,
        run_id: &str,
        name: &str,
        subnet: &str,
    ) -> Result<String, DockerError> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(Self::labels(run_id, &[])),
            ..Default::default()
        };
        let docker = self.docker.clone();
        let created = self
            .creating(
                run_id,
                format!("create network {name} ({subnet})"),
                async move { docker.create_network(request).await },
            )
            .await?;
        Ok(created.id)
    }

    /// Creates a node's container at its fixed address, with its files in place, without
    /// starting it; returns the container id.
    pub async fn create_node(&self, spec: &NodeSpec<'_>) -> Result<String, DockerError> {
        let name = format!("{}-{}", spec.run_id, spec.node);
        let endpoint = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(spec.ip.to_string()),
                ..Default::default()
            }),
            aliases: Some(
                [spec.hostname, spec.node]
                    .into_iter()
                    .map(String::from)
                    .chain(spec.aliases.iter().cloned())
                    .collect(),
            ),
            ..Default::default()
        };
        // On the durability layer, faultline's binary is the entry point: it mounts the layer
        // over the data directory and runs the image's own entry point and command under it.
        // Mounting needs root: an image with a USER of its own starts as root, and the layer
        // runs the broker as that user.
        let mut host = HostConfig {
            network_mode: Some(spec.network.to_string()),
            tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.clone()),
            ..Default::default()
        };
        let mut run_as = None;
        let (entrypoint, cmd) = match spec.durable {
            Some(durability) => {
                let (command, user) = self.image_command(spec.image, spec.command).await?;
                let line = crate::powerfs::serve_line(
                    super::backend::HELPER,
                    &durability.path,
                    durability.writeback,
                    user.as_deref(),
                    &command,
                );
                if user.is_some() {
                    run_as = Some("0".to_string());
                }
                host.binds = Some(vec![format!(
                    "{}:{}:ro",
                    helper_binary()?,
                    super::backend::HELPER
                )]);
                host.devices = Some(vec![bollard::models::DeviceMapping {
                    path_on_host: Some("/dev/fuse".into()),
                    path_in_container: Some("/dev/fuse".into()),
                    cgroup_permissions: Some("rwm".into()),
                }]);
                host.cap_add = Some(vec!["SYS_ADMIN".into()]);
                (Some(line), Some(Vec::new()))
            }
            None => (
                None,
                (!spec.command.is_empty()).then(|| spec.command.to_vec()),
            ),
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.to_string()),
            hostname: Some(spec.hostname.to_string()),
            entrypoint,
            cmd,
            user: run_as,
            env: Some(spec.environment.to_vec()),
            labels: Some(Self::labels(spec.run_id, &[(NODE_LABEL, spec.node)])),
            healthcheck: spec.healthcheck.map(|h| bollard::models::HealthConfig {
                test: Some(h.test.clone()),
                interval: Some(h.interval.as_nanos() as i64),
                timeout: Some(h.timeout.as_nanos() as i64),
                retries: Some(h.retries as i64),
                start_period: Some(h.start_period.as_nanos() as i64),
                ..Default::default()
            }),
            host_config: Some(host),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(spec.network.to_string(), endpoint)])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let docker = self.docker.clone();
        let created = self
            .creating(
                spec.run_id,
                format!(
                    "create container for node {} from {}",
                    spec.node, spec.image
                ),
                async move { docker.create_container(Some(options), body).await },
            )
            .await?;
        if !spec.files.is_empty() {
            self.write_files(
                &created.id,
                spec.files,
                &format!("write the configs of node {} into its container", spec.node),
            )
            .await?;
        }
        Ok(created.id)
    }

    /// The image's entry point followed by `command` (the image's own command when empty),
    /// and the user the image runs as (its `USER`; `None` for root or none).
    pub async fn image_command(
        &self,
        image: &str,
        command: &[String],
    ) -> Result<(Vec<String>, Option<String>), DockerError> {
        let inspected = ctx(
            self.docker.inspect_image(image).await,
            format!("read the entry point of image {image}"),
        )?;
        let config = inspected.config.unwrap_or_default();
        let mut line = config.entrypoint.unwrap_or_default();
        if command.is_empty() {
            line.extend(config.cmd.unwrap_or_default());
        } else {
            line.extend(command.iter().cloned());
        }
        let user = config
            .user
            .filter(|u| !u.is_empty() && !matches!(u.as_str(), "root" | "0" | "0:0"));
        Ok((line, user))
    }

    /// The tar archive of `path` in a container (running or stopped), at most `limit` bytes.
    pub async fn get_archive(
        &self,
        id: &str,
        path: &str,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, DockerError> {
        use futures::StreamExt;
        let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = ctx(chunk, what.to_string())?;
            tar.extend_from_slice(&chunk);
            if tar.len() as u64 > limit {
                return Err(DockerError {
                    action: what.to_string(),
                    source: bollard::errors::Error::IOError {
                        err: std::io::Error::other(format!(
                            "{path} is larger than {} MiB",
                            limit >> 20
                        )),
                    },
                });
            }
        }
        Ok(tar)
    }

    /// Unpacks a tar archive into directory `dir` of a container (running or stopped).
    pub async fn put_archive(
        &self,
        id: &str,
        dir: &str,
        tar: Vec<u8>,
        what: &str,
    ) -> Result<(), DockerError> {
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        ctx(
            self.docker
                .upload_to_container(id, Some(options), bollard::body_full(tar.into()))
                .await,
            what.to_string(),
        )
    }

    /// Writes files (absolute path -> content) into a container, created or running.
    pub async fn write_files(
        &self,
        id: &str,
        files: &[(String, String)],
        what: &str,
    ) -> Result<(), DockerError> {
        let archive = tar_of(files).map_err(|e| DockerError {
            action: format!("pack the files to {what}"),
            source: bollard::errors::Error::IOError { err: e },
        })?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        ctx(
            self.docker
                .upload_to_container(id, Some(options), bollard::body_full(archive.into()))
                .await,
            what.to_string(),
        )
    }

    async fn inspect(
        &self,
        id: &str,
        node: &str,
    ) -> Result<bollard::models::ContainerInspectResponse, DockerError> {
        ctx(
            self.docker
                .inspect_container(
                    id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await,
            format!("inspect node {node}"),
        )
    }

    /// The container's health as Docker reports it ("starting", "healthy", "unhealthy"), or
    /// `None` when it has no health check.
    pub async fn health(&self, id: &str, node: &str) -> Result<Option<String>, DockerError> {
        let info = self.inspect(id, node).await?;
        Ok(info
            .state
            .and_then(|s| s.health)
            .and_then(|h| h.status)
            .map(|s| s.to_string()))
    }

    pub async fn start(&self, id: &str, node: &str) -> Result<(), DockerError> {
        ctx(
            self.docker
                .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
                .await,
            format!("start node {node}"),
        )
    }

    pub async fn kill(&self, id: &str, node: &str, signal: &str) -> Result<(), DockerError> {
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        ctx(
            self.docker.kill_container(id, Some(options)).await,
            format!("send {signal} to node {node}"),
        )
    }

    /// Stops gracefully (SIGTERM, then SIGKILL after `grace_s`).
    pub async fn stop(&self, id: &str, node: &str, grace_s: i32) -> Result<(), DockerError> {
        let options = StopContainerOptionsBuilder::new().t(grace_s).build();
        ctx(
            self.docker.stop_container(id, Some(options)).await,
            format!("stop node {node}"),
        )
    }

    pub async fn pause(&self, id: &str, node: &str) -> Result<(), DockerError> {
        ctx(
            self.docker.pause_container(id).await,
            format!("pause node {node}"),
        )
    }

    pub async fn unpause(&self, id: &str, node: &str) -> Result<(), DockerError> {
        ctx(
            self.docker.unpause_container(id).await,
            format!("unpause node {node}"),
        )
    }

    /// Starts a sidecar in `target`'s network namespace with NET_ADMIN only, so iptables and tc
    /// can change the target's network whatever image the target runs. It sleeps until
    /// removed; returns its id.
    /// Starts a sidecar joined to the target's namespaces: its network namespace with
    /// NET_ADMIN (`Share::Network`: iptables, tc), or its process namespace with no added
    /// capability and no network (`Share::Pid`: the node's files through /proc/1/root).
    pub async fn start_sidecar(
        &self,
        run_id: &str,
        target_container: &str,
        node: &str,
        purpose: &str,
        image: &str,
        share: Share,
    ) -> Result<String, DockerError> {
        let name = format!("{run_id}-{node}-{purpose}");
        let host_config = match share {
            Share::Network => HostConfig {
                network_mode: Some(format!("container:{target_container}")),
                cap_add: Some(vec!["NET_ADMIN".into()]),
                init: Some(true),
                ..Default::default()
            },
            Share::NetworkWithHelper => HostConfig {
                network_mode: Some(format!("container:{target_container}")),
                cap_add: Some(vec!["NET_ADMIN".into()]),
                init: Some(true),
                binds: Some(vec![format!(
                    "{}:{}:ro",
                    helper_binary()?,
                    super::backend::HELPER
                )]),
                ..Default::default()
            },
            Share::Pid => HostConfig {
                network_mode: Some("none".into()),
                pid_mode: Some(format!("container:{target_container}")),
                init: Some(true),
                ..Default::default()
            },
        };
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            labels: Some(Self::labels(
                run_id,
                &[(NODE_LABEL, node), (SIDECAR_LABEL, purpose)],
            )),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let docker = self.docker.clone();
        let created = self
            .creating(
                run_id,
                format!("create {purpose} sidecar for node {node}"),
                async move { docker.create_container(Some(options), body).await },
            )
            .await?;
        self.start(&created.id, &format!("{node}'s sidecar"))
            .await?;
        Ok(created.id)
    }

    /// Runs a command in a container; returns its exit code and combined output.
    pub async fn exec(
        &self,
        container: &str,
        cmd: &[&str],
        what: &str,
    ) -> Result<(i64, String), DockerError> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        use futures::StreamExt;
        let exec = ctx(
            self.docker
                .create_exec(
                    container,
                    CreateExecOptions {
                        cmd: Some(cmd.to_vec()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await,
            format!("prepare {what}"),
        )?;
        let started = ctx(
            self.docker.start_exec(&exec.id, None).await,
            format!("run {what}"),
        )?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(c) => text.push_str(&c.to_string()),
                    Err(e) => return ctx(Err(e), format!("read output of {what}")),
                }
            }
        }
        let inspect = ctx(
            self.docker.inspect_exec(&exec.id).await,
            format!("inspect {what}"),
        )?;
        Ok((inspect.exit_code.unwrap_or(-1), text))
    }

    /// The `ps` state (R, S, T...) of each process of the container, main process first.
    pub async fn process_states(&self, id: &str, node: &str) -> Result<Vec<String>, DockerError> {
        let options = bollard::query_parameters::TopOptionsBuilder::new()
            .ps_args("-o pid,stat")
            .build();
        let top = ctx(
            self.docker.top_processes(id, Some(options)).await,
            format!("list the processes of node {node}"),
        )?;
        let mut rows: Vec<(u64, String)> = top
            .processes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|row| Some((row.first()?.parse().ok()?, row.get(1)?.clone())))
            .collect();
        rows.sort();
        Ok(rows.into_iter().map(|(_, stat)| stat).collect())
    }

    /// CPU time the container has used since it started, in seconds (Docker's one-shot
    /// stats: the cgroup's total usage); `None` when the container is not running.
    pub async fn cpu_seconds(&self, id: &str, node: &str) -> Result<Option<f64>, DockerError> {
        use futures::StreamExt;
        let options = bollard::query_parameters::StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stats = self.docker.stats(id, Some(options));
        let Some(first) = stats.next().await else {
            return Ok(None);
        };
        let first = ctx(first, format!("read the CPU usage of node {node}"))?;
        Ok(first
            .cpu_stats
            .and_then(|c| c.cpu_usage)
            .and_then(|u| u.total_usage)
            .filter(|&ns| ns > 0)
            .map(|ns| ns as f64 / 1e9))
    }

    /// The container's state as Docker reports it: (running, paused).
    pub async fn state(&self, id: &str, node: &str) -> Result<(bool, bool), DockerError> {
        let info = self.inspect(id, node).await?;
        let state = info.state.unwrap_or_default();
        Ok((
            state.running.unwrap_or(false),
            state.paused.unwrap_or(false),
        ))
    }

    /// When the container has exited: its exit code and the last `lines` lines of its output.
    pub async fn exited(
        &self,
        id: &str,
        node: &str,
        lines: usize,
    ) -> Result<Option<(i64, String)>, DockerError> {
        use futures::StreamExt;
        let info = self.inspect(id, node).await?;
        let state = info.state.unwrap_or_default();
        if state.running.unwrap_or(false) {
            return Ok(None);
        }
        let options = bollard::query_parameters::LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => text.push_str(&c.to_string()),
                Err(e) => return ctx(Err(e), format!("read the output of node {node}")),
            }
        }
        Ok(Some((state.exit_code.unwrap_or(-1), text)))
    }

    /// Every container and network carrying the run label (any run when `run_id` is `None`).
    pub async fn leftovers(&self, run_id: Option<&str>) -> Result<Leftovers, DockerError> {
        let filter = match run_id {
            Some(id) => format!("{RUN_LABEL}={id}"),
            None => RUN_LABEL.to_string(),
        };
        let filters = HashMap::from([("label", vec![filter.as_str()])]);
        let containers = ctx(
            self.docker
                .list_containers(Some(
                    ListContainersOptionsBuilder::new()
                        .all(true)
                        .filters(&filters)
                        .build(),
                ))
                .await,
            "list faultline containers",
        )?;
        let networks = ctx(
            self.docker
                .list_networks(Some(
                    ListNetworksOptionsBuilder::new().filters(&filters).build(),
                ))
                .await,
            "list faultline networks",
        )?;
        // The pid of the process that made an object, only while that very process runs: the
        // pid exists and started when the label says (not a later process given the same pid).
        let run_and_pid = |labels: Option<HashMap<String, String>>| {
            let labels = labels.unwrap_or_default();
            let pid: Option<u32> = labels.get(PID_LABEL).and_then(|p| p.parse().ok());
            let start: Option<u64> = labels.get(PID_START_LABEL).and_then(|s| s.parse().ok());
            let live = pid.filter(|&pid| match (start, process_start(pid)) {
                (_, None) => false,
                (Some(labelled), Some(now)) => labelled == now,
                (None, Some(_)) => true,
            });
            (labels.get(RUN_LABEL).cloned().unwrap_or_default(), live)
        };
        let mut out = Leftovers::default();
        for c in containers {
            let (run, pid) = run_and_pid(c.labels);
            out.containers.push((c.id.unwrap_or_default(), run, pid));
        }
        for n in networks {
            let (run, pid) = run_and_pid(n.labels);
            out.networks.push((n.id.unwrap_or_default(), run, pid));
        }
        Ok(out)
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // Already gone: removal is idempotent.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => ctx(Err(e), format!("remove container {}", short(id))),
        }
    }

    pub async fn remove_network(&self, id: &str) -> Result<(), DockerError> {
        match self.docker.remove_network(id).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => ctx(Err(e), format!("remove network {}", short(id))),
        }
    }

    /// Removes every container, then every network, of one run (or of all runs). A run's
    /// teardown first closes it, so nothing of it is created afterwards. Removal goes on past
    /// an error; the error names every object that could not be removed.
    pub async fn remove_run(&self, run_id: Option<&str>) -> Result<(usize, usize), DockerError> {
        if let Some(id) = run_id {
            self.closed.write().await.insert(id.to_string());
        }
        let left = self.leftovers(run_id).await?;
        let mut failed = Vec::new();
        let mut last = None;
        for (id, name, _) in &left.containers {
            if let Err(e) = self.remove_container(id).await {
                failed.push(format!("container {name} ({e})"));
                last = Some(e.source);
            }
        }
        for (id, name, _) in &left.networks {
            if let Err(e) = self.remove_network(id).await {
                failed.push(format!("network {name} ({e})"));
                last = Some(e.source);
            }
        }
        match last {
            None => Ok((left.containers.len(), left.networks.len())),
            Some(source) => Err(DockerError {
                action: format!("could not remove {}", failed.join(", ")),
                source,
            }),
        }
    }
}

/// When process `pid` started, in clock ticks since boot (/proc/PID/stat, field 22); `None`
/// when there is no such process.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Picks a /24 for the run inside 10.213.0.0/16 that overlaps no existing network.
pub fn pick_subnet(used: &[String], salt: u32) -> Option<(String, Ipv4Addr)> {
    let parsed: Vec<(u32, u32)> = used
        .iter()
        .filter_map(|s| {
            let (addr, len) = s.split_once('/')?;
            Some((u32::from(addr.parse::<Ipv4Addr>().ok()?), len.parse().ok()?))
        })
        .collect();
    let overlaps = |net: u32, len: u32| {
        parsed.iter().any(|&(other, olen)| {
            let common = len.min(olen);
            let mask = if common == 0 {
                0
            } else {
                u32::MAX << (32 - common)
            };
            (net & mask) == (other & mask)
        })
    };
    (0..256u32).find_map(|i| {
        // Start at a run-dependent offset so concurrent runs rarely race for the same subnet.
        let third = (salt + i) % 256;
        let net = u32::from(Ipv4Addr::new(10, 213, third as u8, 0));
        (!overlaps(net, 24)).then(|| (format!("{}/24", Ipv4Addr::from(net)), Ipv4Addr::from(net)))
    })
}

/// A tar archive of `files` (absolute path -> content), rooted at `/`, mode 0644.
fn tar_of(files: &[(String, String)]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        // Now, not 0: a reader that watches the file (libfaketime's offset file) sees it change.
        header.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        header.set_cksum();
        builder.append_data(
            &mut header,
            path.trim_start_matches('/'),
            content.as_bytes(),
        )?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_avoids_existing_networks() {
        let used = vec!["172.17.0.0/16".to_string(), "10.213.5.0/24".to_string()];
        assert_eq!(pick_subnet(&used, 5).unwrap().0, "10.213.6.0/24");
        assert_eq!(pick_subnet(&used, 4).unwrap().0, "10.213.4.0/24");
        // A broader network covering the whole range leaves nothing.
        assert_eq!(pick_subnet(&["10.0.0.0/8".to_string()], 0), None);
    }
}
