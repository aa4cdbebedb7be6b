//! What a power loss would take back: for every file written since its last fsync, its length
//! at that fsync and the bytes it held there that were overwritten or truncated away since.
//!
//! Writes go through to the backing file at once (so a process crash, which keeps the page
//! cache, loses nothing); a power loss rolls each file back to what it was at its last fsync.
//! Appends, what message logs do, cost only a length here; overwrites of synced bytes keep
//! those bytes until the next fsync of the file.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// One file's state at its last fsync, as far as writes since then changed it.
#[derive(Debug)]
struct Undo {
    /// When the file was first written after its last fsync (a kernel's `dirtied_when`).
    dirtied: Instant,
    /// The file's length at its last fsync (when it was first written after it).
    synced_len: u64,
    /// Synced bytes overwritten or cut since, in the order they were saved: (offset, bytes).
    /// Restored in reverse order, so where two overlap the older (synced) bytes win.
    saved: Vec<(u64, Vec<u8>)>,
    saved_bytes: u64,
}

impl Undo {
    /// A file dirtied now, `synced_len` long at its last fsync.
    fn new(synced_len: u64) -> Undo {
        Undo {
            dirtied: Instant::now(),
            synced_len,
            saved: Vec::new(),
            saved_bytes: 0,
        }
    }
}

/// What a rollback did, for the fault's notes.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rollback {
    /// Files rolled back to their last fsync.
    pub files: u64,
    /// Bytes written past a file's synced length and cut away again.
    pub appended_bytes_lost: u64,
    /// Synced bytes that had been overwritten or truncated and were put back.
    pub restored_bytes: u64,
    /// Files the journal treated as synced: written back by the writeback model (old enough),
    /// or to stay within its memory.
    pub written_back_files: u64,
    /// Files that could not be rolled back, with why.
    pub errors: Vec<String>,
    /// The files that lost the most (path under the data directory, bytes lost), at most
    /// [`Rollback::NAMED`], most first.
    #[serde(default)]
    pub most: Vec<(String, u64)>,
}

impl Rollback {
    /// How many files a rollback names.
    pub const NAMED: usize = 5;
}

/// The undo journal of every file written since its last fsync, keyed by inode.
#[derive(Debug)]
pub struct Journal {
    files: HashMap<u64, Undo>,
    /// Bytes of saved (overwritten) content held, and the most it may hold.
    held: u64,
    limit: u64,
    written_back: u64,
}

impl Journal {
    /// A journal that holds at most `limit` bytes of overwritten content; past it, the file
    /// holding the most is treated as written back (as a kernel's writeback would).
    pub fn new(limit: u64) -> Self {
        Journal {
            files: HashMap::new(),
            held: 0,
            limit,
            written_back: 0,
        }
    }

    /// Files with writes not synced.
    pub fn dirty_files(&self) -> usize {
        self.files.len()
    }

    /// Before `len` bytes are written at `offset` into `file` (inode `ino`): saves the synced
    /// bytes the write will replace.
    pub fn before_write(&mut self, ino: u64, file: &File, offset: u64, len: u64) -> io::Result<()> {
        let undo = self.entry(ino, file)?;
        let end = (offset + len).min(undo.synced_len);
        if offset < end {
            self.save(ino, file, offset, end - offset)?;
        }
        Ok(())
    }

    /// Before `file` is truncated (or extended) to `new_len`: saves the synced bytes it cuts.
    pub fn before_truncate(&mut self, ino: u64, file: &File, new_len: u64) -> io::Result<()> {
        let undo = self.entry(ino, file)?;
        let synced = undo.synced_len;
        if new_len < synced {
            self.save(ino, file, new_len, synced - new_len)?;
        }
        Ok(())
    }

    /// A file was created: nothing of it is synced yet (its name is: names are kept, as on a
    /// file system that commits metadata).
    pub fn created(&mut self, ino: u64) {
        self.files.entry(ino).or_insert_with(|| Undo::new(0));
    }

    /// Every file first written at least `age` before `now` counts as written back (synced), as
    /// a kernel's flusher writes back an inode dirty for longer than its expiry; returns how
    /// many.
    pub fn write_back_older_than(&mut self, age: Duration, now: Instant) -> usize {
        let old: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, u)| now.saturating_duration_since(u.dirtied) >= age)
            .map(|(ino, _)| *ino)
            .collect();
        for ino in &old {
            self.synced(*ino);
        }
        self.written_back += old.len() as u64;
        old.len()
    }

    /// The file was fsynced (or fdatasynced): what it holds now is what a power loss keeps.
    pub fn synced(&mut self, ino: u64) {
        if let Some(undo) = self.files.remove(&ino) {
            self.held -= undo.saved_bytes;
        }
    }

    /// The file's last name is gone: its removal is kept, so is nothing to roll back.
    pub fn removed(&mut self, ino: u64) {
        self.synced(ino);
    }

    /// Rolls every file back to its last fsync; `open` opens a file by inode for writing and
    /// names it (`None` when it no longer exists). The journal is empty afterwards.
    pub fn roll_back(&mut self, mut open: impl FnMut(u64) -> Option<(File, String)>) -> Rollback {
        let mut r = Rollback {
            written_back_files: self.written_back,
            ..Default::default()
        };
        let mut lost = Vec::new();
        for (ino, undo) in self.files.drain() {
            let Some((file, name)) = open(ino) else {
                continue;
            };
            match restore(&file, &undo) {
                Ok(appended) => {
                    r.files += 1;
                    r.appended_bytes_lost += appended;
                    r.restored_bytes += undo.saved_bytes;
                    lost.push((name, appended + undo.saved_bytes));
                }
                Err(e) => r.errors.push(format!("{name}: {e}")),
            }
        }
        lost.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        lost.truncate(Rollback::NAMED);
        r.most = lost;
        self.held = 0;
        r
    }

    fn entry(&mut self, ino: u64, file: &File) -> io::Result<&mut Undo> {
        Ok(match self.files.entry(ino) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Undo::new(file.metadata()?.len()))
            }
        })
    }

    fn save(&mut self, ino: u64, file: &File, offset: u64, len: u64) -> io::Result<()> {
        let mut bytes = vec![0; len as usize];
        let read = read_at_most(file, &mut bytes, offset)?;
        bytes.truncate(read);
        let undo = self.files.get_mut(&ino).expect("entry made first");
        undo.saved_bytes += bytes.len() as u64;
        self.held += bytes.len() as u64;
        undo.saved.push((offset, bytes));
        while self.held > self.limit {
            let Some((&biggest, _)) = self.files.iter().max_by_key(|(_, u)| u.saved_bytes) else {
                break;
            };
            self.synced(biggest);
            self.written_back += 1;
        }
        Ok(())
    }
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// Puts one file back as it was at its last fsync; returns the bytes cut past that length.
fn restore(file: &File, undo: &Undo) -> io::Result<u64> {
    let len = file.metadata()?.len();
    file.set_len(undo.synced_len)?;
    for (offset, bytes) in undo.saved.iter().rev() {
        file.write_all_at(bytes, *offset)?;
    }
    file.sync_all()?;
    Ok(len.saturating_sub(undo.synced_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fs::OpenOptions;
    use std::path::PathBuf;

    fn write(j: &mut Journal, ino: u64, f: &File, off: u64, data: &[u8]) {
        j.before_write(ino, f, off, data.len() as u64).unwrap();
        f.write_all_at(data, off).unwrap();
    }

    fn opener(paths: HashMap<u64, PathBuf>) -> impl FnMut(u64) -> Option<(File, String)> {
        move |ino| {
            let p = paths.get(&ino)?;
            let f = OpenOptions::new().write(true).open(p).ok()?;
            Some((f, p.file_name()?.to_string_lossy().into_owned()))
        }
    }

    #[test]
    fn writes_older_than_the_writeback_age_survive_a_roll_back_and_newer_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            OpenOptions::new()
                .create(true)
                .read(true)
                .write(true)
                .truncate(true)
                .open(dir.path().join(name))
                .unwrap()
        };
        let (old, new) = (open("old"), open("new"));
        let mut j = Journal::new(1 << 20);
        write(&mut j, 1, &old, 0, b"written long ago");
        let later = Instant::now() + Duration::from_secs(40);
        write(&mut j, 2, &new, 0, b"written just now");
        // 40 s on, with a 30 s writeback age: the first file was written back (its entry's
        // clock started at its first write), the second counts from its own write.
        j.files.get_mut(&2).unwrap().dirtied = later - Duration::from_secs(5);
        assert_eq!(j.write_back_older_than(Duration::from_secs(30), later), 1);
        assert_eq!(j.dirty_files(), 1);
        // Written again after its writeback, the first file is dirty again, from then on.
        write(&mut j, 1, &old, 16, b" and again");
        let soon = Instant::now() + Duration::from_secs(10);
        assert_eq!(j.write_back_older_than(Duration::from_secs(30), soon), 0);
        let r = j.roll_back(opener(HashMap::from([
            (1, dir.path().join("old")),
            (2, dir.path().join("new")),
        ])));
        assert_eq!(r.written_back_files, 1);
        assert_eq!(
            std::fs::read(dir.path().join("old")).unwrap(),
            b"written long ago"
        );
        assert_eq!(std::fs::read(dir.path().join("new")).unwrap(), b"");
    }

    #[test]
    fn a_roll_back_keeps_what_was_synced_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let f = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut j = Journal::new(1 << 20);
        j.created(7);
        write(&mut j, 7, &f, 0, b"synced-");
        j.synced(7);
        // Appended, then a synced byte overwritten twice, then cut and grown again.
        write(&mut j, 7, &f, 7, b"appended");
        write(&mut j, 7, &f, 0, b"X");
        write(&mut j, 7, &f, 0, b"Y");
        j.before_truncate(7, &f, 3).unwrap();
        f.set_len(3).unwrap();
        write(&mut j, 7, &f, 3, b"zzzzzzzzzz");
        assert_eq!(std::fs::read(&path).unwrap(), b"Yynzzzzzzzzzz");
        let r = j.roll_back(opener(HashMap::from([(7, path.clone())])));
        assert_eq!(std::fs::read(&path).unwrap(), b"synced-");
        assert_eq!(r.files, 1);
        assert_eq!(r.appended_bytes_lost, 13 - 7);
        assert_eq!(r.most, vec![("log".to_string(), 6 + 1 + 1 + 4)]);
        assert_eq!(j.dirty_files(), 0);
    }

    #[test]
    fn a_file_never_synced_comes_back_empty_and_a_gone_one_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new");
        let f = File::create(&path).unwrap();
        let mut j = Journal::new(1 << 20);
        j.created(1);
        write(&mut j, 1, &f, 0, b"never synced");
        j.created(2);
        let r = j.roll_back(opener(HashMap::from([(1, path.clone())])));
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!((r.files, r.appended_bytes_lost), (1, 12));
    }

    #[test]
    fn past_its_limit_the_journal_writes_back_the_biggest_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'a'; 64]).unwrap();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut j = Journal::new(32);
        write(&mut j, 3, &f, 0, &[b'b'; 48]);
        assert_eq!(j.dirty_files(), 0, "48 saved bytes > 32: written back");
        let r = j.roll_back(opener(HashMap::from([(3, path.clone())])));
        assert_eq!(r.written_back_files, 1);
        assert_eq!(&std::fs::read(&path).unwrap()[..48], &[b'b'; 48][..]);
    }
}
