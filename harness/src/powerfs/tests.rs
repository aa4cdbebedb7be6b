//! The layer mounted for real (FUSE, as root: what CI and the nodes have), driven through the
//! mount, cut in process, and the directory underneath read back.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::fs::{PowerFs, State};

fn append(path: &std::path::Path, bytes: &[u8], sync: bool) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
    if sync {
        f.sync_all().unwrap();
    }
}

#[test]
fn through_the_mount_a_cut_keeps_what_was_fsynced_and_nothing_else() {
    assert!(
        std::path::Path::new("/dev/fuse").exists(),
        "this test needs /dev/fuse (CONFIG_FUSE_FS) and root, as the nodes that opt in do"
    );
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("data");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::write(mnt.join("old"), b"before\n").unwrap();
    let under = File::open(&mnt).unwrap();
    let root = PathBuf::from(format!("/proc/self/fd/{}", under.as_raw_fd()));
    let state = Arc::new(Mutex::new(State::new(root.clone(), 1 << 20)));
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::DefaultPermissions];
    config.acl = fuser::SessionACL::All;
    let session = fuser::spawn_mount(
        PowerFs {
            state: state.clone(),
        },
        &mnt,
        &config,
    )
    .expect("mount the layer (needs /dev/fuse and CAP_SYS_ADMIN)");

    append(&mnt.join("old"), b"after\n", false);
    append(&mnt.join("log"), b"a", true);
    append(&mnt.join("log"), b"b", false);
    append(&mnt.join("new"), b"x", false);
    std::fs::create_dir(mnt.join("sub")).unwrap();
    append(&mnt.join("sub/f"), b"y", true);
    std::fs::rename(mnt.join("log"), mnt.join("log2")).unwrap();
    assert_eq!(std::fs::read(mnt.join("old")).unwrap(), b"before\nafter\n");
    assert_eq!(std::fs::read(mnt.join("log2")).unwrap(), b"ab");
    // A process crash keeps every write: they are in the directory underneath already.
    assert_eq!(std::fs::read(root.join("old")).unwrap(), b"before\nafter\n");

    let r = state.lock().unwrap().cut();
    assert_eq!(std::fs::read(root.join("old")).unwrap(), b"before\n");
    assert_eq!(std::fs::read(root.join("log2")).unwrap(), b"a");
    assert_eq!(std::fs::read(root.join("new")).unwrap(), b"");
    assert_eq!(std::fs::read(root.join("sub/f")).unwrap(), b"y");
    assert_eq!(r.files, 3, "{r:?}");
    assert_eq!(r.appended_bytes_lost, 6 + 1 + 1, "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    drop(session);
}
