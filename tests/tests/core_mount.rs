//! The reliable core through a real mount: a published real tree reads back identical,
//! programs run from it, and the mount is read-only.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use harness::{
    assert_contains, fixtures, free_port, is_mounted, mount_options, Cmd, Mount, Nginx, Origin,
    Repo, TestDir, SOON,
};

fn published_python(t: &TestDir) -> (Repo, harness::Publisher, std::path::PathBuf) {
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let tree = fixtures::python_subset(&t.join("py"), &["json", "email", "asyncio", "os.py"]);
    repo.add(&alice, "pylib", "3.11", &tree, &[]);
    repo.publish();
    (repo, alice, tree)
}

#[test]
fn a_real_tree_reads_back_identical_with_modes_and_symlinks() {
    let t = TestDir::new();
    let (repo, alice, tree) = published_python(&t);
    let sample = fixtures::sample_tree(&t.join("sample"));
    repo.add(&alice, "sample", "1.0", &sample, &[]);
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    Cmd::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(&tree)
        .arg(m.path("pylib/3.11"))
        .ok();
    Cmd::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(&sample)
        .arg(m.path("sample/1.0"))
        .ok();
    // Modes and symlink targets, entry by entry.
    let mut checked = 0;
    for entry in walk(&sample) {
        let rel = entry.strip_prefix(&sample).unwrap();
        let a = fs::symlink_metadata(&entry).unwrap();
        let b = fs::symlink_metadata(m.path("sample/1.0").join(rel)).unwrap();
        assert_eq!(a.mode() & 0o1777, b.mode() & 0o1777, "{rel:?}");
        assert_eq!(
            a.file_type().is_symlink(),
            b.file_type().is_symlink(),
            "{rel:?}"
        );
        if a.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&entry).unwrap(),
                fs::read_link(m.path("sample/1.0").join(rel)).unwrap()
            );
        }
        if a.is_file() {
            assert_eq!(a.len(), b.len(), "{rel:?}");
        }
        checked += 1;
    }
    assert!(checked > 5);
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        out.push(e.clone());
        if fs::symlink_metadata(&e).unwrap().is_dir() {
            out.extend(walk(&e));
        }
    }
    out
}

#[test]
fn a_program_runs_from_the_mount() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let deb_pub = repo.publisher("debian");
    let deb = fixtures::apt_download("hello", &t.join("debs"));
    repo.add(&deb_pub, "", "", &deb, &[]);
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&deb_pub, &["hello"])])).start();
    let out = Cmd::new(m.path("hello/current/usr/bin/hello"))
        .arg("-g")
        .arg("from stork")
        .ok();
    assert_eq!(out.trim(), "from stork");
    let out = harness::as_uid(4242)
        .arg(m.path("hello/current/usr/bin/hello"))
        .ok();
    assert_eq!(out.trim(), "Hello, world!");
}

// ---------------------------------------------------------------------------------------
// Read-only: every kind of write is EROFS

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `rc` as a `Result`, with errno on failure (for libc calls).
fn sys(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `open(2)` with raw flags; closes what it opened.
fn open_raw(p: &Path, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid C string and plain flags; the descriptor is ours to close.
    let fd = sys(unsafe { libc::open(cpath(p).as_ptr(), flags, 0o644 as libc::c_uint) })?;
    // SAFETY: fd was just opened by us.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Asserts that `r` failed with exactly `want`; describes the operation otherwise.
#[track_caller]
fn assert_errno<T: std::fmt::Debug>(what: &str, r: io::Result<T>, want: i32) {
    match r {
        Ok(v) => panic!(
            "{what}: succeeded ({v:?}); expected {}",
            io::Error::from_raw_os_error(want)
        ),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(want),
            "{what}: {e}; expected {}",
            io::Error::from_raw_os_error(want)
        ),
    }
}

#[test]
fn every_kind_of_write_is_erofs() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let sample = fixtures::sample_tree(&t.join("sample"));
    repo.add(&alice, "sample", "1.0", &sample, &[]);
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    let root = m.root().to_path_buf();
    let pkg = m.path("sample");
    let ver = m.path("sample/1.0");
    let file = m.path("sample/1.0/share/doc/README");
    let exe = m.path("sample/1.0/bin/tool");
    let link = m.path("sample/1.0/lib/libdemo.so");
    let empty_dir = m.path("sample/1.0/share/empty-dir");
    let status = m.path(".stork/status");
    // Read once so that writes meet a file the daemon has cached and opened before.
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(sample.join("share/doc/README")).unwrap()
    );
    let outside = t.write("outside.txt", b"not in the mount\n");
    let erofs = libc::EROFS;

    // Opening for writing, creating, truncating.
    for f in [&file, &exe, &status] {
        let w = OpenOptions::new().write(true).open(f);
        assert_errno(&format!("open O_WRONLY {f:?}"), w, erofs);
        let rw = OpenOptions::new().read(true).write(true).open(f);
        assert_errno(&format!("open O_RDWR {f:?}"), rw, erofs);
        let ap = OpenOptions::new().append(true).open(f);
        assert_errno(&format!("open O_APPEND {f:?}"), ap, erofs);
        let tr = OpenOptions::new().write(true).truncate(true).open(f);
        assert_errno(&format!("open O_WRONLY|O_TRUNC {f:?}"), tr, erofs);
        let tr = open_raw(f, libc::O_RDONLY | libc::O_TRUNC);
        assert_errno(&format!("open O_RDONLY|O_TRUNC {f:?}"), tr, erofs);
    }
    for dir in [&root, &pkg, &ver, &empty_dir] {
        let new = dir.join("new-file");
        let c = OpenOptions::new().write(true).create_new(true).open(&new);
        assert_errno(&format!("open O_CREAT|O_EXCL {new:?}"), c, erofs);
        let c = open_raw(&new, libc::O_RDONLY | libc::O_CREAT);
        assert_errno(&format!("open O_RDONLY|O_CREAT {new:?}"), c, erofs);
        let c = fs::File::create(&new);
        assert_errno(&format!("creat {new:?}"), c, erofs);
        let d = fs::create_dir(dir.join("new-dir"));
        assert_errno(&format!("mkdir in {dir:?}"), d, erofs);
        let s = std::os::unix::fs::symlink("README", dir.join("new-link"));
        assert_errno(&format!("symlink in {dir:?}"), s, erofs);
        let l = fs::hard_link(&file, dir.join("new-hardlink"));
        assert_errno(&format!("link into {dir:?}"), l, erofs);
        // SAFETY: a valid C string; mknod creates nothing on success we do not check.
        let n = sys(unsafe {
            libc::mknod(cpath(&dir.join("fifo")).as_ptr(), libc::S_IFIFO | 0o644, 0)
        });
        assert_errno(&format!("mknod FIFO in {dir:?}"), n, erofs);
        // SAFETY: as above.
        let n = sys(unsafe {
            libc::mknod(cpath(&dir.join("plain")).as_ptr(), libc::S_IFREG | 0o644, 0)
        });
        assert_errno(&format!("mknod regular in {dir:?}"), n, erofs);
    }

    // Removing.
    assert_errno(
        "rmdir of an empty directory",
        fs::remove_dir(&empty_dir),
        erofs,
    );
    assert_errno("rmdir of a version", fs::remove_dir(&ver), erofs);
    assert_errno("rmdir of a package", fs::remove_dir(&pkg), erofs);
    assert_errno("unlink of a file", fs::remove_file(&file), erofs);
    assert_errno("unlink of a symlink", fs::remove_file(&link), erofs);
    assert_errno(
        "unlink of current",
        fs::remove_file(m.path("sample/current")),
        erofs,
    );
    assert_errno("unlink of the status", fs::remove_file(&status), erofs);

    // Renaming within the mount.
    let r = fs::rename(&file, m.path("sample/1.0/share/doc/README.old"));
    assert_errno("rename of a file in its directory", r, erofs);
    let r = fs::rename(&file, m.path("sample/1.0/README"));
    assert_errno("rename of a file to another directory", r, erofs);
    let r = fs::rename(&file, &exe);
    assert_errno("rename of a file over another", r, erofs);
    let r = fs::rename(&ver, m.path("sample/2.0"));
    assert_errno("rename of a version", r, erofs);
    let r = fs::rename(&pkg, m.path("other"));
    assert_errno("rename of a package", r, erofs);
    // Renaming into (or out of) the mount crosses mounts: the kernel answers EXDEV
    // before asking any filesystem, and `mv` then falls back to creating a copy, which
    // must fail with EROFS and leave both sides as they were.
    let r = fs::rename(&outside, ver.join("outside.txt"));
    assert_errno("rename into the mount", r, libc::EXDEV);
    let o = Cmd::new("mv").arg(&outside).arg(&ver).run();
    o.assert_clean_failure();
    assert_contains(&o.stderr, &["Read-only file system"]);
    assert!(outside.exists(), "mv removed its source\n{o}");
    assert!(!ver.join("outside.txt").exists());
    let o = Cmd::new("cp").arg(&outside).arg(&ver).run();
    o.assert_clean_failure();
    assert_contains(&o.stderr, &["Read-only file system"]);

    // Changing attributes.
    for p in [&file, &exe, &ver, &pkg, &root, &status, &empty_dir] {
        let c = fs::set_permissions(p, fs::Permissions::from_mode(0o777));
        assert_errno(&format!("chmod {p:?}"), c, erofs);
        let c = std::os::unix::fs::chown(p, Some(4242), Some(4242));
        assert_errno(&format!("chown {p:?}"), c, erofs);
        let c = std::os::unix::fs::chown(p, None, Some(0));
        assert_errno(&format!("chgrp {p:?}"), c, erofs);
        // SAFETY: a valid C string; a null `times` means "now".
        let u =
            sys(unsafe { libc::utimensat(libc::AT_FDCWD, cpath(p).as_ptr(), std::ptr::null(), 0) });
        assert_errno(&format!("utimensat(now) {p:?}"), u, erofs);
        let times = [
            libc::timespec {
                tv_sec: 1,
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: 2,
                tv_nsec: 0,
            },
        ];
        // SAFETY: a valid C string and two timespecs.
        let u =
            sys(unsafe { libc::utimensat(libc::AT_FDCWD, cpath(p).as_ptr(), times.as_ptr(), 0) });
        assert_errno(&format!("utimensat(1, 2) {p:?}"), u, erofs);
        let (name, value) = (c"user.stork-test", b"x");
        // SAFETY: valid C strings and a buffer with its length.
        let x = sys(unsafe {
            libc::setxattr(
                cpath(p).as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        });
        assert_errno(&format!("setxattr {p:?}"), x, erofs);
        // SAFETY: valid C strings.
        let x = sys(unsafe { libc::removexattr(cpath(p).as_ptr(), name.as_ptr()) });
        assert_errno(&format!("removexattr {p:?}"), x, erofs);
    }
    for f in [&file, &exe] {
        // SAFETY: a valid C string.
        let tr = sys(unsafe { libc::truncate(cpath(f).as_ptr(), 0) });
        assert_errno(&format!("truncate {f:?}"), tr, erofs);
        // SAFETY: as above.
        let tr = sys(unsafe { libc::truncate(cpath(f).as_ptr(), 1 << 20) });
        assert_errno(&format!("truncate (grow) {f:?}"), tr, erofs);
    }
    let c = std::os::unix::fs::lchown(&link, Some(4242), Some(4242));
    assert_errno("lchown of a symlink", c, erofs);
    // The tools people type report the same.
    for (tool, args) in [
        ("touch", vec![file.clone()]),
        ("touch", vec![ver.join("touched")]),
        ("chmod", vec!["u+s".into(), exe.clone()]),
        ("truncate", vec!["-s0".into(), file.clone()]),
        ("ln", vec!["-s".into(), "x".into(), ver.join("x")]),
        ("mkdir", vec![ver.join("d")]),
        ("rm", vec!["-f".into(), file.clone()]),
    ] {
        let o = Cmd::new(tool).args(&args).run();
        o.assert_clean_failure();
        assert_contains(&o.stderr, &["Read-only file system"]);
    }

    // A write through an fd opened read-only fails too (EBADF: not open for writing).
    let mut f = fs::File::open(&file).unwrap();
    assert_errno("write to a read-only fd", f.write(b"x"), libc::EBADF);

    // Nothing changed.
    Cmd::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(&sample)
        .arg(&ver)
        .ok();
    let names: BTreeSet<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([".stork".to_string(), "sample".to_string()]),
        "the root gained or lost entries"
    );
    assert!(
        !m.log().contains("panicked"),
        "the daemon panicked:\n{}",
        m.log()
    );
}

// ---------------------------------------------------------------------------------------
// Any static web server serves a repository

/// Publishes a real Python tree and the sample tree; returns the repository, the
/// publisher and both sources.
fn published_both(t: &TestDir) -> (Repo, harness::Publisher, PathBuf, PathBuf) {
    let (repo, alice, tree) = published_python(t);
    let sample = fixtures::sample_tree(&t.join("sample"));
    repo.add(&alice, "sample", "1.0", &sample, &[]);
    repo.publish();
    (repo, alice, tree, sample)
}

fn assert_identical(m: &Mount, tree: &Path, sample: &Path) {
    for (src, rel) in [(tree, "pylib/3.11"), (sample, "sample/1.0")] {
        Cmd::new("diff")
            .arg("-r")
            .arg("--no-dereference")
            .arg(src)
            .arg(m.path(rel))
            .ok();
    }
}

#[test]
fn a_real_tree_served_by_nginx_reads_back_identical() {
    let t = TestDir::new();
    let (repo, alice, tree, sample) = published_both(&t);
    let mut nginx = Nginx::serve(repo.dir());
    let m = Mount::new(&nginx.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    assert_identical(&m, &tree, &sample);
    // It really came from nginx.
    let log = nginx.access_log();
    assert!(
        log.contains("GET /index.json") && log.contains("GET /objects/"),
        "nginx served no index or objects\n{}",
        nginx.describe()
    );
}

#[test]
fn a_real_tree_served_by_stork_repo_serve_reads_back_identical() {
    let t = TestDir::new();
    let (repo, alice, tree, sample) = published_both(&t);
    let (mut server, url) = repo.serve();
    let m = Mount::new(&url, &repo.trust_toml(&[(&alice, &["*"])])).start();
    assert_identical(&m, &tree, &sample);
    server.assert_running();
    assert!(m.fetched_objects() > 0, "status: {}", m.status());
}

// ---------------------------------------------------------------------------------------
// Large directories and link counts

#[test]
fn a_directory_of_10000_files_is_listed_completely_with_right_link_counts() {
    let t = TestDir::new();
    let src = t.mkdir("src");
    let mut want: Vec<String> = (0..10_000).map(|i| format!("file-{i:05}.txt")).collect();
    for (i, name) in want.iter().enumerate() {
        t.write(format!("src/big/{name}"), format!("file {i}\n"));
    }
    // Nested directories with known numbers of subdirectories.
    for d in ["a/b1/c", "a/b2", "a/b3", "x/y/z", "e"] {
        t.mkdir(format!("src/{d}"));
    }
    t.write("src/a/b1/c/f", b"f\n");
    t.write("src/x/file", b"x\n");
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    repo.add(&alice, "many", "1", &src, &[]);
    repo.add(&alice, "many", "2", &t.join("src/x"), &[]);
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();

    let mut got: Vec<String> = fs::read_dir(m.path("many/1/big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "readdir returned {} entries",
        got.len()
    );
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // `ls -f` (getdents, unsorted, with . and ..) agrees.
    let ls = Cmd::new("ls").arg("-f").arg(m.path("many/1/big")).ok();
    assert_eq!(ls.lines().count(), 10_002);
    // And each entry is there to stat, with the right size.
    for (i, name) in want.iter().enumerate().step_by(997) {
        let md = fs::metadata(m.path(&format!("many/1/big/{name}"))).unwrap();
        assert_eq!(md.len(), format!("file {i}\n").len() as u64, "{name}");
    }

    // A directory's link count is 2 + its subdirectories, as on the source tree.
    let mut checked = 0;
    for dir in walk(&src)
        .into_iter()
        .chain([src.clone()])
        .filter(|p| p.is_dir())
    {
        let rel = dir.strip_prefix(&src).unwrap();
        let subdirs = fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
            .count() as u64;
        let mounted = fs::metadata(m.path("many/1").join(rel)).unwrap();
        assert_eq!(mounted.nlink(), 2 + subdirs, "nlink of many/1/{rel:?}");
        assert_eq!(
            fs::metadata(&dir).unwrap().nlink(),
            mounted.nlink(),
            "{rel:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 11);
    for (p, n) in [("many/2", 3), ("many", 2 + 2), ("", 2 + 2)] {
        // many/2 holds y/; many holds 1/ and 2/; the root holds many/ and .stork/.
        assert_eq!(fs::metadata(m.path(p)).unwrap().nlink(), n, "nlink of /{p}");
    }
    assert_eq!(fs::metadata(m.path(".stork")).unwrap().nlink(), 2);
    // Files: one link each.
    assert_eq!(fs::metadata(m.path("many/1/x/file")).unwrap().nlink(), 1);
}

// ---------------------------------------------------------------------------------------
// Starting and stopping

fn small_repo(t: &TestDir) -> (Repo, harness::Publisher) {
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let src = t.mkdir("src");
    t.write("src/hello.txt", b"hello\n");
    repo.add(&alice, "hello", "1.0", &src, &[]);
    repo.publish();
    (repo, alice)
}

#[test]
fn umount_ends_the_daemon_with_status_0() {
    let t = TestDir::new();
    let (repo, alice) = small_repo(&t);
    let origin = Origin::serve(repo.dir());
    let mut m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    assert_eq!(fs::read(m.path("hello/1.0/hello.txt")).unwrap(), b"hello\n");
    let mnt = m.root().to_path_buf();
    Cmd::new("umount").arg(&mnt).ok();
    let s = m.wait_exit(SOON);
    assert!(
        s.success(),
        "storkfs exited with {s} after umount\n{}",
        m.log()
    );
    assert!(!is_mounted(&mnt));
    assert!(!m.socket().exists(), "the control socket was left behind");
}

#[test]
fn fusermount3_u_ends_the_daemon_with_status_0() {
    let t = TestDir::new();
    let (repo, alice) = small_repo(&t);
    let origin = Origin::serve(repo.dir());
    let mut m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    assert_eq!(fs::read(m.path("hello/1.0/hello.txt")).unwrap(), b"hello\n");
    let mnt = m.root().to_path_buf();
    Cmd::new("fusermount3").arg("-u").arg(&mnt).ok();
    let s = m.wait_exit(SOON);
    assert!(
        s.success(),
        "storkfs exited with {s} after fusermount3 -u\n{}",
        m.log()
    );
    assert!(!is_mounted(&mnt));
}

#[test]
fn sigterm_unmounts_and_exits_0() {
    let t = TestDir::new();
    let (repo, alice) = small_repo(&t);
    let origin = Origin::serve(repo.dir());
    let mut m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    assert_eq!(fs::read(m.path("hello/1.0/hello.txt")).unwrap(), b"hello\n");
    let mnt = m.root().to_path_buf();
    m.signal(libc::SIGTERM);
    let s = m.wait_exit(SOON);
    assert!(
        s.success(),
        "storkfs exited with {s} after SIGTERM\n{}",
        m.log()
    );
    assert!(!is_mounted(&mnt));
}

#[test]
fn sigterm_with_a_file_open_detaches_and_exits_0_once_it_is_closed() {
    let t = TestDir::new();
    let (repo, alice) = small_repo(&t);
    let origin = Origin::serve(repo.dir());
    let mut m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    let mut open = fs::File::open(m.path("hello/1.0/hello.txt")).unwrap();
    let mnt = m.root().to_path_buf();
    m.signal(libc::SIGTERM);
    // The mount leaves the namespace at once, although a file is open ...
    harness::wait_until(SOON, "the busy mount to be detached after SIGTERM", || {
        !is_mounted(&mnt)
    });
    // ... the open file still reads ...
    let mut got = String::new();
    io::Read::read_to_string(&mut open, &mut got).unwrap();
    assert_eq!(got, "hello\n");
    // ... and closing it ends the daemon, cleanly.
    drop(open);
    let s = m.wait_exit(SOON);
    assert!(
        s.success(),
        "storkfs exited with {s} after SIGTERM\n{}",
        m.log()
    );
}

#[test]
fn without_f_storkfs_returns_once_the_mount_is_ready() {
    let t = TestDir::new();
    let (repo, alice) = small_repo(&t);
    let origin = Origin::serve(repo.dir());
    // background() asserts that the mount is listed the moment storkfs returns.
    let (mut m, o) = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).background();
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{o}");
    // Ready means serving: no waiting.
    assert_eq!(fs::read(m.path("hello/1.0/hello.txt")).unwrap(), b"hello\n");
    assert_eq!(
        m.status()["index"]["version"].as_u64(),
        Some(repo.index_version())
    );
    let opts = mount_options(m.root()).expect("mounted");
    let opts: BTreeSet<&str> = opts.split(',').collect();
    for o in ["ro", "nosuid", "nodev"] {
        assert!(opts.contains(o), "mount options {opts:?} lack {o}");
    }
    m.unmount();
}

#[test]
fn the_foreground_mount_is_ro_nosuid_nodev() {
    let t = TestDir::new();
    let (repo, alice) = small_repo(&t);
    let origin = Origin::serve(repo.dir());
    // Even when asked for the opposite.
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option("rw,suid,dev")
        .start();
    let opts = mount_options(m.root()).expect("mounted");
    let set: BTreeSet<&str> = opts.split(',').collect();
    for o in ["ro", "nosuid", "nodev"] {
        assert!(set.contains(o), "mount options {opts} lack {o}");
    }
    assert!(!set.contains("rw"), "{opts}");
}

/// Asserts `storkfs` printed exactly one line, `storkfs: ...`, containing every needle.
#[track_caller]
fn assert_one_line(o: &harness::Outcome, needles: &[&str]) {
    o.assert_clean_failure();
    let lines: Vec<&str> = o.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr\n{o}");
    assert!(lines[0].starts_with("storkfs: "), "{o}");
    assert_contains(lines[0], needles);
    assert!(o.stdout.is_empty(), "{o}");
}

#[test]
fn without_f_an_unknown_option_fails_naming_it() {
    let t = TestDir::new();
    let (repo, alice) = small_repo(&t);
    let origin = Origin::serve(repo.dir());
    let o = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option("colour=blue")
        .start_fails();
    assert_one_line(&o, &["colour"]);
    let o = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option("timeout=soon")
        .start_fails();
    assert_one_line(&o, &["timeout"]);
}

#[test]
fn without_f_a_broken_trust_file_fails_naming_the_line() {
    let t = TestDir::new();
    let (repo, alice) = small_repo(&t);
    let origin = Origin::serve(repo.dir());
    // Line 6 has a key that is not 32 bytes.
    let good = repo.trust_toml(&[(&alice, &["*"])]);
    let bad: String = good
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 5 {
                assert!(l.starts_with("key = "), "line 6 of {good}");
                "key = \"ed25519:AAAA\"\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let o = Mount::new(&origin.url(), &bad).start_fails();
    assert_one_line(&o, &["trust", "trust.toml:6:", "32 bytes"]);
    assert_eq!(origin.total_requests(), 0, "{}", origin.describe());
}

#[test]
fn without_f_an_unreachable_repository_without_a_cached_index_fails() {
    let t = TestDir::new();
    let (repo, alice) = small_repo(&t);
    let url = format!("http://127.0.0.1:{}/", free_port());
    let o = Mount::new(&url, &repo.trust_toml(&[(&alice, &["*"])]))
        .option("timeout=5")
        .start_fails();
    assert_one_line(&o, &["no cached index", &url]);
}

#[test]
fn without_f_a_missing_mount_point_fails_naming_it() {
    let t = TestDir::new();
    let (repo, alice) = small_repo(&t);
    let origin = Origin::serve(repo.dir());
    let trust = repo.write_trust(t.join("trust.toml"), &[(&alice, &["*"])]);
    let missing = t.join("no/such/dir");
    let o = Cmd::bin("storkfs")
        .arg(origin.url())
        .arg(&missing)
        .arg("-o")
        .arg(format!(
            "cache={},trust={},socket={},log={}",
            t.join("cache").display(),
            trust.display(),
            t.join("ctl.sock").display(),
            t.join("storkfs.log").display()
        ))
        .run();
    assert_one_line(&o, &[&missing.display().to_string()]);
    assert!(!is_mounted(&missing));
}

/// Credentials in the repository URL are used for requests but never shown: not in
/// /proc/mounts (every slice reads it), the status file, storkctl status or the log.
#[test]
fn credentials_in_the_repository_url_are_never_shown() {
    let t = TestDir::new();
    let (repo, alice) = small_repo(&t);
    let origin = Origin::serve(repo.dir());
    let url = origin.url().replace("http://", "http://reader:s3cr3t-pw@");
    let m = Mount::new(&url, &repo.trust_toml(&[(&alice, &["*"])])).start();
    assert_eq!(fs::read(m.path("hello/1.0/hello.txt")).unwrap(), b"hello\n");
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let status = fs::read_to_string(m.path(".stork/status")).unwrap();
    let ctl = m.ctl().arg("status").ok();
    for (what, text) in [
        ("/proc/self/mounts", &mounts),
        ("status", &status),
        ("storkctl status", &ctl),
        ("log", &m.log()),
    ] {
        assert!(
            !text.contains("s3cr3t-pw"),
            "{what} shows the password:\n{text}"
        );
    }
    assert!(status.contains(&origin.url()), "{status}");
}
