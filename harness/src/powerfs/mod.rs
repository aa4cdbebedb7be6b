//! faultline's durability layer (LazyFS's idea, done as an undo journal): a node that opts in
//! (`x-faultline.durability` in its topology) starts with faultline's binary as its entry
//! point, which mounts a FUSE file system over the node's data directory and then runs the
//! broker as its child. Writes go through to the directory underneath at once, so a process
//! crash (`kill`) loses nothing, as with a kernel's page cache; the layer only remembers, per
//! file, its length at its last fsync and the synced bytes overwritten since. A `power-loss`
//! fault asks the layer over its control socket to cut the power: every file goes back to its
//! last fsync and no file operation is answered any more, and the node is killed right after.
//!
//! Before the cut the layer writes a probe file (synced) and appends to it (not synced); after
//! the node is started again, `check` reads it back: the synced write must be there and the
//! other gone, or the fault did not do what it says.
//!
//! Names (create, rename, unlink) are kept as they are at the cut, as on a file system that
//! commits metadata: a file created and never fsynced comes back empty.

mod fs;
mod journal;

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use journal::Rollback;

/// The control socket, inside the node's container.
pub const SOCKET: &str = "/tmp/faultline-powerfs.sock";
/// The probe file, at the top of the data directory.
pub const PROBE: &str = ".faultline-power-probe";
const SYNCED: &[u8] = b"synced\n";
const UNSYNCED: &[u8] = b"not synced\n";
/// How often the writeback model looks for writes old enough (Linux's flusher: 5 s).
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// Overwritten bytes the journal holds at most before it treats files as written back.
const JOURNAL_LIMIT: u64 = 256 << 20;

/// The answer to `cut`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CutReport {
    pub rollback: Rollback,
    /// The broker's files with writes not synced at the cut.
    pub dirty_files: u64,
}

/// The command line that runs `command` on the layer over `dir`: faultline's binary at
/// `binary`, `powerfs serve` with the layer's options, then the command. The Docker backend and
/// the Kubernetes objects both start a durable node with it.
pub fn serve_line(
    binary: &str,
    dir: &str,
    writeback: Option<Duration>,
    user: Option<&str>,
    command: &[String],
) -> Vec<String> {
    let mut line = vec![
        binary.to_string(),
        "powerfs".into(),
        "serve".into(),
        "--dir".into(),
        dir.to_string(),
    ];
    if let Some(w) = writeback {
        line.extend(["--writeback-ms".to_string(), w.as_millis().to_string()]);
    }
    if let Some(user) = user {
        line.extend(["--user".to_string(), user.to_string()]);
    }
    line.push("--".into());
    line.extend(command.iter().cloned());
    line
}

/// Mounts the layer over `dir` from a process of its own, then becomes `command` (exec): the
/// broker stays the container's main process, so signals (a kill, a graceful stop, SIGSTOP)
/// reach it exactly as without the layer. Returns only on an error.
///
/// With `writeback`, un-synced writes older than that count as written back, as a kernel's
/// flusher writes back dirty pages (checked every [`FLUSH_EVERY`]).
///
/// With `user` (an image's `USER`: a name or uid, optionally `:group`), the layer is mounted as
/// root and the command runs as that user, with its group and home directory.
pub fn serve(
    dir: &Path,
    user: Option<&str>,
    writeback: Option<Duration>,
    command: &[String],
) -> io::Result<std::convert::Infallible> {
    let Some((program, args)) = command.split_first() else {
        return Err(io::Error::other("no command to run on the layer"));
    };
    let user = user.map(Account::find).transpose()?;
    std::fs::create_dir_all(dir)?;
    let mut fds = [0; 2];
    // SAFETY: pipe(2) into a two-element array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fork(2) before this process made any thread (main() runs this before anything
    // else); the child only goes on with its own code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // SAFETY: the read end is the parent's.
            unsafe { libc::close(fds[0]) };
            let status = match layer(dir, writeback) {
                Ok(_session) => {
                    // SAFETY: one byte to the write end: the layer is up.
                    unsafe { libc::write(fds[1], b"1".as_ptr().cast(), 1) };
                    // The session's threads serve until the container ends.
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    eprintln!("faultline powerfs: mount over {}: {e}", dir.display());
                    1
                }
            };
            std::process::exit(status)
        }
        _ => {
            // SAFETY: the write end is the child's.
            unsafe { libc::close(fds[1]) };
            let mut up = [0u8; 1];
            // SAFETY: reads at most one byte into `up`; 0 means the child ended first.
            let n = unsafe { libc::read(fds[0], up.as_mut_ptr().cast(), 1) };
            unsafe { libc::close(fds[0]) };
            if n != 1 {
                return Err(io::Error::other("the layer did not come up"));
            }
            let mut broker = std::process::Command::new(program);
            broker.args(args);
            if let Some(a) = user {
                broker
                    .uid(a.uid)
                    .gid(a.gid)
                    .env("HOME", a.home)
                    .env("USER", &a.name)
                    .env("LOGNAME", &a.name);
            }
            Err(broker.exec())
        }
    }
}

/// A user the broker runs as, from the container's user database.
struct Account {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl Account {
    /// `spec` as Docker takes it: `name`, `uid`, `name:group` or `uid:gid`.
    fn find(spec: &str) -> io::Result<Account> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let entry = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 6 && (f[0] == user || f[2] == user));
        let mut account = match entry {
            Some(f) => Account {
                name: f[0].to_string(),
                uid: f[2]
                    .parse()
                    .map_err(|_| io::Error::other(format!("user {user}: bad uid")))?,
                gid: f[3]
                    .parse()
                    .map_err(|_| io::Error::other(format!("user {user}: bad gid")))?,
                home: PathBuf::from(f[5]),
            },
            None => {
                let uid = user.parse().map_err(|_| {
                    io::Error::other(format!("user {user:?} is not in the image's /etc/passwd"))
                })?;
                Account {
                    name: user.to_string(),
                    uid,
                    gid: uid,
                    home: PathBuf::from("/"),
                }
            }
        };
        if let Some(group) = group {
            let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
            account.gid = match groups
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == group)
            {
                Some(f) => f[2]
                    .parse()
                    .map_err(|_| io::Error::other(format!("group {group}: bad gid")))?,
                None => group.parse().map_err(|_| {
                    io::Error::other(format!("group {group:?} is not in the image's /etc/group"))
                })?,
            };
        }
        Ok(account)
    }
}

/// Mounts the layer over `dir` and starts its control socket; serving goes on until the
/// returned session is dropped.
fn layer(dir: &Path, writeback: Option<Duration>) -> io::Result<fuser::BackgroundSession> {
    // The directory underneath, reachable through this descriptor once the mount hides it
    // (kept open for the process's life).
    let under = File::open(dir)?;
    let root = PathBuf::from(format!("/proc/self/fd/{}", under.as_raw_fd()));
    std::mem::forget(under);
    let state = Arc::new(Mutex::new(fs::State::new(root.clone(), JOURNAL_LIMIT)));
    if let Some(age) = writeback {
        let flushed = Arc::clone(&state);
        std::thread::spawn(move || loop {
            std::thread::sleep(FLUSH_EVERY);
            let mut s = flushed.lock().unwrap_or_else(|e| e.into_inner());
            if s.is_cut() {
                return;
            }
            s.journal.write_back_older_than(age, Instant::now());
        });
    }
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("faultline-powerfs".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    config.acl = fuser::SessionACL::All;
    let session = fuser::spawn_mount(
        fs::PowerFs {
            state: state.clone(),
        },
        dir,
        &config,
    )?;
    let _ = std::fs::remove_file(SOCKET);
    let listener = UnixListener::bind(SOCKET)?;
    std::thread::spawn(move || control(listener, state, root));
    Ok(session)
}

/// Answers `cut` (the power loss) and `check` (the probe after it), one line each.
fn control(listener: UnixListener, state: Arc<Mutex<fs::State>>, root: PathBuf) {
    for conn in listener.incoming().flatten() {
        let mut line = String::new();
        if BufReader::new(&conn).read_line(&mut line).is_err() {
            continue;
        }
        let request = line.trim();
        let answer = match request {
            "cut" => cut(&state, &root),
            "check" => check(&root),
            other => Err(io::Error::other(format!("unknown request {other:?}"))),
        };
        let cut_done = request == "cut" && answer.is_ok();
        let text = match answer {
            Ok(json) => json,
            Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
        };
        let mut conn = conn;
        let _ = writeln!(conn, "{text}");
        if cut_done {
            // The power is off: the layer's process ends, the kernel aborts every request
            // to it (the broker's next file operation fails), and the broker, the node's main
            // process, can be killed; were the layer to wait, the broker's exit would wait
            // on it (closing its files) and never end.
            drop(conn);
            std::process::exit(0);
        }
    }
}

fn cut(state: &Mutex<fs::State>, root: &Path) -> io::Result<String> {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    // The probe: a synced write and one not synced, both through the journal.
    let path = root.join(PROBE);
    let probe = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let ino = std::os::unix::fs::MetadataExt::ino(&probe.metadata()?);
    probe.write_all_at(SYNCED, 0)?;
    probe.sync_all()?;
    s.journal.synced(ino);
    s.journal
        .before_write(ino, &probe, SYNCED.len() as u64, UNSYNCED.len() as u64)?;
    probe.write_all_at(UNSYNCED, SYNCED.len() as u64)?;
    drop(probe);
    let dirty_files = s.journal.dirty_files().saturating_sub(1) as u64;
    s.remember(ino, PathBuf::from(PROBE));
    let mut rollback = s.cut();
    // The report is about the broker's files: the probe is checked on its own after restart.
    if let Some(i) = rollback.most.iter().position(|(name, _)| name == PROBE) {
        rollback.most.remove(i);
    }
    rollback.files = rollback.files.saturating_sub(1);
    rollback.appended_bytes_lost = rollback
        .appended_bytes_lost
        .saturating_sub(UNSYNCED.len() as u64);
    serde_json::to_string(&CutReport {
        rollback,
        dirty_files,
    })
    .map_err(io::Error::other)
}

/// Reads the probe a cut left and removes it: `kept` when only its synced write survived.
fn check(root: &Path) -> io::Result<String> {
    let path = root.join(PROBE);
    let found = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(serde_json::json!({"probe": "absent"}).to_string())
        }
        Err(e) => return Err(e),
    };
    std::fs::remove_file(&path)?;
    let verdict = if found == SYNCED {
        "kept"
    } else if found.starts_with(SYNCED) {
        "not synced write survived"
    } else {
        "synced write lost"
    };
    Ok(serde_json::json!({"probe": verdict}).to_string())
}

/// Sends one request to the layer's control socket and returns its answer line; retries
/// connecting for `wait` (the layer may be starting).
pub fn request(what: &str, wait: Duration) -> io::Result<String> {
    let deadline = Instant::now() + wait;
    let conn = loop {
        match UnixStream::connect(SOCKET) {
            Ok(c) => break c,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = &conn;
    writeln!(w, "{what}")?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    Ok(line.trim().to_string())
}

#[cfg(test)]
mod tests;
