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
use std::os::unix::process::CommandExt;
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
/// Overwritten bytes the journal holds at most before it treats files as written back.
const JOURNAL_LIMIT: u64 = 256 << 20;

/// The answer to `cut`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CutReport {
    pub rollback: Rollback,
    /// The broker's files with writes not synced at the cut.
    pub dirty_files: u64,
}

/// Mounts the layer over `dir`, runs `command` as its child (signals forwarded), and returns
/// the child's exit code once it ended; the layer is unmounted then.
pub fn serve(dir: &Path, command: &[String]) -> io::Result<i32> {
    let Some((program, args)) = command.split_first() else {
        return Err(io::Error::other("no command to run on the layer"));
    };
    std::fs::create_dir_all(dir)?;
    // The directory underneath, reachable through this descriptor once the mount hides it.
    let under = File::open(dir)?;
    let root = PathBuf::from(format!("/proc/self/fd/{}", under.as_raw_fd()));
    let state = Arc::new(Mutex::new(fs::State::new(root.clone(), JOURNAL_LIMIT)));

    // The signals a stop sends go to the broker: blocked here (and so in every thread made
    // from now on), waited for by one thread, unblocked again in the child.
    let signals = forwarded_signals();
    // SAFETY: pthread_sigmask with a valid set, before any thread exists.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut()) };

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
    {
        let state = state.clone();
        std::thread::spawn(move || control(listener, state, root));
    }

    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &signals, std::ptr::null_mut());
            Ok(())
        })
    };
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: sigwait on the set blocked above.
        if unsafe { libc::sigwait(&signals, &mut sig) } == 0 {
            unsafe { libc::kill(pid, sig) };
        }
    });
    // As the container's first process, reap every orphan until the broker itself ends.
    let code = loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let got = unsafe { libc::waitpid(-1, &mut status, 0) };
        if got == pid {
            break if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
        }
        if got < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break 1;
        }
    };
    drop(session);
    let _ = std::fs::remove_file(SOCKET);
    Ok(code)
}

fn forwarded_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset on a zeroed set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Answers `cut` (the power loss) and `check` (the probe after it), one line each.
fn control(listener: UnixListener, state: Arc<Mutex<fs::State>>, root: PathBuf) {
    for conn in listener.incoming().flatten() {
        let mut line = String::new();
        if BufReader::new(&conn).read_line(&mut line).is_err() {
            continue;
        }
        let answer = match line.trim() {
            "cut" => cut(&state, &root),
            "check" => check(&root),
            other => Err(io::Error::other(format!("unknown request {other:?}"))),
        };
        let text = match answer {
            Ok(json) => json,
            Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
        };
        let mut conn = conn;
        let _ = writeln!(conn, "{text}");
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
