//! The FUSE file system over a node's data directory: every operation goes through to the
//! directory underneath (reached by a descriptor opened before the mount hid it), and every
//! write is first noted in the undo [`Journal`] so a power loss can take back what was not
//! fsynced. Once cut, it answers nothing more: the node is killed right after.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::journal::{Journal, Rollback};

/// How long the kernel may keep attributes and names (the layer is the only writer).
const TTL: Duration = Duration::from_secs(1);

/// What the FUSE threads and the control socket share.
pub struct State {
    /// The directory underneath, as `/proc/self/fd/N` of a descriptor opened before the mount.
    root: PathBuf,
    /// Relative path of every inode the kernel knows (root: empty).
    paths: HashMap<u64, PathBuf>,
    handles: HashMap<u64, Arc<File>>,
    next_fh: u64,
    pub journal: Journal,
    /// Set by a power loss: from then on no request is answered.
    cut: bool,
}

impl State {
    /// True once the power was cut.
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// Sets an open file's length, the journal noting first what the change undoes.
    fn resize(&mut self, ino: u64, file: &File, len: u64) -> Result<(), Errno> {
        self.journal
            .before_truncate(ino, file, len)
            .map_err(errno)?;
        file.set_len(len).map_err(errno)
    }

    pub fn new(root: PathBuf, journal_limit: u64) -> Self {
        State {
            root,
            paths: HashMap::from([(INodeNo::ROOT.0, PathBuf::new())]),
            handles: HashMap::new(),
            next_fh: 1,
            journal: Journal::new(journal_limit),
            cut: false,
        }
    }

    /// The power loss: every file back to its last fsync, and no answer to anything after.
    pub fn cut(&mut self) -> Rollback {
        self.cut = true;
        let root = self.root.clone();
        let paths = self.paths.clone();
        self.journal.roll_back(|ino| {
            let rel = paths.get(&ino)?;
            let file = OpenOptions::new().write(true).open(root.join(rel)).ok()?;
            Some((file, rel.display().to_string()))
        })
    }

    /// Notes where inode `ino` is (a file made beside the mount, such as the probe).
    pub fn remember(&mut self, ino: u64, rel: PathBuf) {
        self.paths.insert(ino, rel);
    }

    fn full(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn rel(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.rel(parent)?.join(name))
    }

    /// Attributes of `rel`, remembering its inode's path.
    fn attr_of(&mut self, rel: PathBuf) -> Result<FileAttr, Errno> {
        // The root is a /proc magic link: followed, not described as a link.
        let (meta, ino) = if rel.as_os_str().is_empty() {
            let meta = std::fs::metadata(&self.root).map_err(errno)?;
            (meta, INodeNo::ROOT.0)
        } else {
            let meta = std::fs::symlink_metadata(self.full(&rel)).map_err(errno)?;
            let ino = meta.ino();
            (meta, ino)
        };
        self.paths.insert(ino, rel);
        Ok(attr(ino, &meta))
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.handles.get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn add_handle(&mut self, file: File) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Arc::new(file));
        fh
    }
}

/// The file system; `state` is shared with the control socket.
pub struct PowerFs {
    pub state: Arc<Mutex<State>>,
}

impl PowerFs {
    /// The state, or never returns once the power is cut (the node is about to be killed).
    fn lock(&self) -> MutexGuard<'_, State> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.cut {
            drop(s);
            loop {
                std::thread::park();
            }
        }
        s
    }
}

fn errno(e: io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn attr(ino: u64, m: &std::fs::Metadata) -> FileAttr {
    let kind = FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile);
    FileAttr {
        ino: INodeNo(ino),
        size: m.size(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: time(m.ctime(), m.ctime_nsec()),
        kind,
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: m.blksize() as u32,
        flags: 0,
    }
}

fn cpath(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            }
        }
    }
}

/// Gives a new file the caller's owner, as the kernel would (the layer runs as root).
fn own(path: &Path, req: &Request) -> Result<(), Errno> {
    std::os::unix::fs::lchown(path, Some(req.uid()), Some(req.gid())).map_err(errno)
}

fn reply_entry(r: Result<FileAttr, Errno>, reply: ReplyEntry) {
    match r {
        Ok(a) => reply.entry(&TTL, &a, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(r: Result<(), Errno>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.lock();
        let r = s.child(parent, name).and_then(|rel| s.attr_of(rel));
        reply_entry(r, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut s = self.lock();
        match s.rel(ino).and_then(|rel| s.attr_of(rel)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.lock();
        let r = (|| {
            let rel = s.rel(ino)?;
            let path = s.full(&rel);
            if let Some(mode) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&path, uid, gid).map_err(errno)?;
            }
            if let Some(size) = size {
                let file = match fh.and_then(|fh| s.handle(fh).ok()) {
                    Some(f) => f,
                    None => Arc::new(
                        OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(&path)
                            .map_err(errno)?,
                    ),
                };
                s.resize(ino.0, &file, size)?;
            }
            if atime.is_some() || mtime.is_some() {
                let times = [timespec(atime), timespec(mtime)];
                let c = cpath(&path)?;
                // SAFETY: a valid C string and two timespecs, as utimensat(2) takes them.
                let rc = unsafe {
                    libc::utimensat(
                        libc::AT_FDCWD,
                        c.as_ptr(),
                        times.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                if rc != 0 {
                    return Err(errno(io::Error::last_os_error()));
                }
            }
            s.attr_of(rel)
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let s = self.lock();
        match s
            .rel(ino)
            .and_then(|rel| std::fs::read_link(s.full(&rel)).map_err(errno))
        {
            Ok(target) => reply.data(target.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.lock();
        let r = (|| {
            let rel = s.child(parent, name)?;
            let path = s.full(&rel);
            std::fs::DirBuilder::new()
                .mode(mode & !umask)
                .create(&path)
                .map_err(errno)?;
            own(&path, req)?;
            s.attr_of(rel)
        })();
        reply_entry(r, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.lock();
        let r = (|| {
            let rel = s.child(parent, name)?;
            let path = s.full(&rel);
            let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
            std::fs::remove_file(&path).map_err(errno)?;
            if meta.nlink() <= 1 {
                s.journal.removed(meta.ino());
                s.paths.remove(&meta.ino());
            }
            Ok(())
        })();
        reply_empty(r, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.lock();
        let r = (|| {
            let rel = s.child(parent, name)?;
            let path = s.full(&rel);
            let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
            std::fs::remove_dir(&path).map_err(errno)?;
            s.paths.remove(&meta.ino());
            Ok(())
        })();
        reply_empty(r, reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let mut s = self.lock();
        let r = (|| {
            let rel = s.child(parent, link_name)?;
            let path = s.full(&rel);
            std::os::unix::fs::symlink(target, &path).map_err(errno)?;
            own(&path, req)?;
            s.attr_of(rel)
        })();
        reply_entry(r, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.lock();
        let r = (|| {
            if flags.bits() != 0 {
                return Err(Errno::EINVAL);
            }
            let from = s.child(parent, name)?;
            let to = s.child(newparent, newname)?;
            // A file the rename replaces is gone, and so is its undo.
            if let Ok(old) = std::fs::symlink_metadata(s.full(&to)) {
                if !old.is_dir() && old.nlink() <= 1 {
                    s.journal.removed(old.ino());
                    s.paths.remove(&old.ino());
                }
            }
            std::fs::rename(s.full(&from), s.full(&to)).map_err(errno)?;
            for p in s.paths.values_mut() {
                if let Ok(rest) = p.strip_prefix(&from) {
                    *p = if rest.as_os_str().is_empty() {
                        to.clone()
                    } else {
                        to.join(rest)
                    };
                }
            }
            Ok(())
        })();
        reply_empty(r, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut s = self.lock();
        let r = (|| {
            let from = s.rel(ino)?;
            let to = s.child(newparent, newname)?;
            std::fs::hard_link(s.full(&from), s.full(&to)).map_err(errno)?;
            let a = s.attr_of(to)?;
            // The inode keeps the path it had.
            s.paths.insert(ino.0, from);
            Ok(a)
        })();
        reply_entry(r, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.lock();
        let r = (|| {
            let rel = s.rel(ino)?;
            let writable = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
            // Always readable: the journal reads the bytes a write replaces.
            let file = OpenOptions::new()
                .read(true)
                .write(writable)
                .open(s.full(&rel))
                .map_err(errno)?;
            if writable && flags.0 & libc::O_TRUNC != 0 {
                s.resize(ino.0, &file, 0)?;
            }
            Ok(s.add_handle(file))
        })();
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let file = match self.lock().handle(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let mut buf = vec![0; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno(e)),
            }
        }
        reply.data(&buf[..done]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.lock();
        let r = (|| {
            let file = s.handle(fh)?;
            s.journal
                .before_write(ino.0, &file, offset, data.len() as u64)
                .map_err(errno)?;
            file.write_all_at(data, offset).map_err(errno)
        })();
        match r {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        drop(self.lock());
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Answered even after a cut: closing a file sends this asynchronously, and it changes
        // nothing on disk.
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.handles.remove(&fh.0);
        drop(s);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let file = match self.lock().handle(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let synced = if datasync {
            file.sync_data()
        } else {
            file.sync_all()
        };
        let r = synced
            .map_err(errno)
            .map(|()| self.lock().journal.synced(ino.0));
        reply_empty(r, reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut s = self.lock();
        let r = (|| {
            let rel = s.rel(ino)?;
            let mut entries: Vec<(u64, FileType, std::ffi::OsString)> = vec![
                (ino.0, FileType::Directory, ".".into()),
                (ino.0, FileType::Directory, "..".into()),
            ];
            for e in std::fs::read_dir(s.full(&rel)).map_err(errno)? {
                let e = e.map_err(errno)?;
                let kind = e
                    .file_type()
                    .ok()
                    .and_then(FileType::from_std)
                    .unwrap_or(FileType::RegularFile);
                use std::os::unix::fs::DirEntryExt;
                s.paths.insert(e.ino(), rel.join(e.file_name()));
                entries.push((e.ino(), kind, e.file_name()));
            }
            Ok(entries)
        })();
        match r {
            Ok(entries) => {
                for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let s = self.lock();
        let r = s
            .rel(ino)
            .and_then(|rel| File::open(s.full(&rel)).map_err(errno))
            .and_then(|d| d.sync_all().map_err(errno));
        reply_empty(r, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.lock();
        let c = match cpath(&s.root) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        // SAFETY: statvfs(2) fills the zeroed struct for a valid C string.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return reply.error(errno(io::Error::last_os_error()));
        }
        reply.statfs(
            st.f_blocks,
            st.f_bfree,
            st.f_bavail,
            st.f_files,
            st.f_ffree,
            st.f_bsize as u32,
            st.f_namemax as u32,
            st.f_frsize as u32,
        );
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        drop(self.lock());
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.lock();
        let r = (|| {
            let rel = s.child(parent, name)?;
            let path = s.full(&rel);
            let mut o = OpenOptions::new();
            o.read(true).write(true).mode(mode & !umask);
            if flags & libc::O_EXCL != 0 {
                o.create_new(true);
            } else {
                o.create(true);
            }
            let file = o.open(&path).map_err(errno)?;
            own(&path, req)?;
            let a = s.attr_of(rel)?;
            s.journal.created(a.ino.0);
            if flags & libc::O_TRUNC != 0 {
                s.resize(a.ino.0, &file, 0)?;
            }
            Ok((a, s.add_handle(file)))
        })();
        match r {
            Ok((a, fh)) => {
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut s = self.lock();
        let r = (|| {
            // Reserving space only; punching holes would destroy synced bytes unsaved.
            if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            let file = s.handle(fh)?;
            // Notes the length at the last fsync before the file grows.
            let len = file.metadata().map_err(errno)?.len();
            s.journal
                .before_truncate(ino.0, &file, len)
                .map_err(errno)?;
            use std::os::fd::AsRawFd;
            // SAFETY: fallocate(2) on an open descriptor.
            let rc = unsafe {
                libc::fallocate(
                    file.as_raw_fd(),
                    mode,
                    offset as libc::off_t,
                    length as libc::off_t,
                )
            };
            if rc != 0 {
                return Err(errno(io::Error::last_os_error()));
            }
            Ok(())
        })();
        reply_empty(r, reply);
    }
}
