//! fstab (issue 6): the line of PRODUCT.md works through `mount -T FILE MOUNTPOINT`
//! (mount(8) → mount.fuse3 → storkfs) and `umount` ends the daemon; an unknown option is
//! refused with its name and nothing is mounted; `nofail` with an unreachable repository
//! and no cache never hangs.
//!
//! mount.fuse3 runs the helper with a fixed PATH, so it finds `storkfs` in /usr/local/bin
//! (where `tests/setup.sh` links it), not in target/: [`storkfs_on_path`] points that link
//! at the binary under test first.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use harness::{
    assert_contains, fixtures, is_mounted, margin, mount_options, read_as, wait_for, Cmd, Origin,
    Publisher, Repo, TestDir, SOON,
};

/// Makes /usr/local/bin/storkfs a symlink to the binary under test (`harness::bin`), so
/// that mount.fuse3, which runs `storkfs` with its own fixed PATH, starts this build and
/// not whatever was linked there before. Replaced atomically (a new link renamed over the
/// old one), once per test process.
fn storkfs_on_path() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let target = harness::bin("storkfs");
        let link = Path::new("/usr/local/bin/storkfs");
        if fs::read_link(link).ok().as_deref() == Some(target.as_path()) {
            return;
        }
        let tmp = link.with_file_name(format!(".storkfs.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)
            .unwrap_or_else(|e| panic!("symlink {tmp:?} -> {target:?}: {e}"));
        fs::rename(&tmp, link).unwrap_or_else(|e| panic!("rename {tmp:?} to {link:?}: {e}"));
    });
}

/// A mount point that is lazily unmounted on drop, whatever the test did.
struct MountPoint {
    t: TestDir,
    mnt: PathBuf,
}

impl MountPoint {
    fn new() -> MountPoint {
        let t = TestDir::new();
        let mnt = t.mkdir("stork");
        MountPoint { t, mnt }
    }
}

impl Drop for MountPoint {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let _ = Cmd::new("umount").arg("-l").arg(&self.mnt).run();
        }
    }
}

fn published(t: &TestDir) -> (Repo, Publisher, PathBuf) {
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let tree = fixtures::sample_tree(&t.join("sample"));
    repo.add(&alice, "sample", "1.0", &tree, &[]);
    repo.publish();
    (repo, alice, tree)
}

/// The process `pid` has exited (gone, or a zombie waiting for its reaper).
fn exited(pid: u64) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// `mount ARGS...`, killed after a minute if it hangs; returns the outcome and how long it
/// took.
fn mount(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (harness::Outcome, Duration) {
    let mut c = Cmd::new("timeout").arg("60").arg("mount");
    for a in args {
        c = c.arg(a);
    }
    let start = Instant::now();
    let o = c.run();
    (o, start.elapsed())
}

/// What the backgrounded daemon logged: without /dev/log, `log=syslog` (the default in
/// the background) falls back to `CACHE/storkfs.log`.
fn daemon_log(cache: &Path) -> String {
    fs::read_to_string(cache.join("storkfs.log")).unwrap_or_else(|e| format!("(no log: {e})"))
}

#[test]
fn the_product_fstab_line_mounts_through_mount_and_umount_ends_the_daemon() {
    storkfs_on_path();
    let t = TestDir::new();
    let (repo, alice, tree) = published(&t);
    let origin = Origin::serve(repo.dir());
    let trust = repo.write_trust(t.join("trust.toml"), &[(&alice, &["*"])]);
    let mp = MountPoint::new();
    let cache = mp.t.join("cache");
    let socket = mp.t.join("ctl.sock");
    // The line of PRODUCT.md, with nofail, and paths of this test.
    let line = format!(
        "{} {} fuse.storkfs ro,allow_other,_netdev,nofail,cache={},trust={},socket={} 0 0\n",
        origin.url(),
        mp.mnt.display(),
        cache.display(),
        trust.display(),
        socket.display()
    );
    let fstab = mp.t.write("fstab", &line);
    let (o, _) = mount(&[&"-T", &fstab, &mp.mnt]);
    assert!(
        o.status.success(),
        "mount -T failed\nfstab: {line}\n{o}\nlog:\n{}",
        daemon_log(&cache)
    );
    // mount(8) returned: the mount is ready, no waiting.
    assert!(is_mounted(&mp.mnt), "{o}");
    let opts = mount_options(&mp.mnt).unwrap_or_default();
    for want in ["ro", "nosuid", "nodev", "allow_other"] {
        assert!(
            opts.split(',').any(|o| o == want),
            "{want} missing from the mount's options {opts:?}"
        );
    }

    // It serves, to root and (allow_other) to a slice.
    let want = fs::read(tree.join("lib/libdemo.so.1")).unwrap();
    assert_eq!(
        fs::read(mp.mnt.join("sample/1.0/lib/libdemo.so.1")).unwrap(),
        want
    );
    let o = read_as(4242, &mp.mnt.join("sample/current/share/doc/README"));
    assert!(o.status.success(), "{o}");
    assert_eq!(
        o.stdout_bytes,
        fs::read(tree.join("share/doc/README")).unwrap()
    );
    let status: serde_json::Value =
        serde_json::from_slice(&fs::read(mp.mnt.join(".stork/status")).unwrap()).unwrap();
    let pid = status["pid"].as_u64().expect("pid in status");
    let out = Cmd::bin("storkctl")
        .arg("--socket")
        .arg(&socket)
        .arg("status")
        .ok();
    assert_contains(&out, &[&mp.mnt.display().to_string(), &origin.url()]);

    // umount ends the daemon, cleanly: it logs so and removes its socket.
    Cmd::new("umount").arg(&mp.mnt).ok();
    assert!(!is_mounted(&mp.mnt));
    wait_for(SOON, "storkfs to exit after umount", || {
        if exited(pid) {
            Ok(())
        } else {
            Err(format!(
                "pid {pid} still running\nlog:\n{}",
                daemon_log(&cache)
            ))
        }
    });
    let log = daemon_log(&cache);
    assert_contains(&log, &["mounted", "unmounted"]);
    assert!(!socket.exists(), "the daemon left its socket behind\n{log}");
    // The cache stays for the next mount.
    assert!(cache.join("stork.db").is_file());

    // And it mounts again from the same line.
    let (o, _) = mount(&[&"-T", &fstab, &mp.mnt]);
    assert!(o.status.success(), "{o}\n{}", daemon_log(&cache));
    assert_eq!(
        fs::read(mp.mnt.join("sample/1.0/lib/libdemo.so.1")).unwrap(),
        want
    );
    Cmd::new("umount").arg(&mp.mnt).ok();
}

#[test]
fn an_unknown_option_in_fstab_is_refused_by_name_and_nothing_is_mounted() {
    storkfs_on_path();
    let t = TestDir::new();
    let (repo, alice, _) = published(&t);
    let origin = Origin::serve(repo.dir());
    let trust = repo.write_trust(t.join("trust.toml"), &[(&alice, &["*"])]);
    let mp = MountPoint::new();
    let cache = mp.t.join("cache");
    let socket = mp.t.join("ctl.sock");
    let line = format!(
        "{} {} fuse.storkfs ro,allow_other,_netdev,colour=blue,cache={},trust={},socket={} 0 0\n",
        origin.url(),
        mp.mnt.display(),
        cache.display(),
        trust.display(),
        socket.display()
    );
    let fstab = mp.t.write("fstab", &line);
    let (o, _) = mount(&[&"-T", &fstab, &mp.mnt]);
    assert!(!o.status.success(), "mount accepted colour=blue\n{o}");
    assert_ne!(o.status.code(), Some(124), "mount hung\n{o}");
    assert_contains(&o.both(), &["colour=blue"]);
    assert!(!is_mounted(&mp.mnt), "{o}");
    assert!(!socket.exists(), "a daemon started anyway\n{o}");
    // Refused before anything: no cache was even made, no request sent.
    assert!(!cache.exists(), "{o}");
    assert_eq!(origin.total_requests(), 0, "{}", origin.describe());
}

#[test]
fn nofail_with_an_unreachable_repository_and_no_cache_never_hangs() {
    storkfs_on_path();
    let t = TestDir::new();
    let (repo, alice, _) = published(&t);
    let trust = repo.write_trust(t.join("trust.toml"), &[(&alice, &["*"])]);
    // Two ways to be unreachable: an origin that never answers (a black hole: every
    // index request is held), and a port where nothing listens.
    let origin = Origin::serve(repo.dir());
    let _black_hole = origin.hold("index.json");
    let closed = format!("http://127.0.0.1:{}/", harness::free_port());
    let healthy = Origin::serve(repo.dir());
    let timeout = Duration::from_secs(3);
    let holes = MountPoint::new();
    let refused = MountPoint::new();
    let good = MountPoint::new();
    let line = |url: &str, mp: &MountPoint| {
        format!(
            "{url} {} fuse.storkfs ro,allow_other,_netdev,nofail,timeout={},cache={},trust={},socket={} 0 0\n",
            mp.mnt.display(),
            timeout.as_secs(),
            mp.t.join("cache").display(),
            trust.display(),
            mp.t.join("ctl.sock").display()
        )
    };
    let fstab = t.write(
        "fstab",
        line(&origin.url(), &holes) + &line(&closed, &refused) + &line(&healthy.url(), &good),
    );

    for (mp, url) in [(&holes, origin.url()), (&refused, closed.clone())] {
        // Mounting one line by hand: it fails (no index to serve) with the reason, within
        // timeout= and a margin, and leaves nothing mounted or running.
        let (o, took) = mount(&[&"-T", &fstab, &mp.mnt]);
        assert!(!o.status.success(), "mounted without an index\n{o}");
        assert!(
            took <= margin(timeout),
            "mount took {took:?} (timeout={timeout:?})\n{o}"
        );
        assert_contains(&o.both(), &["no cached index", &url]);
        assert!(!is_mounted(&mp.mnt), "{o}");
        assert!(!mp.t.join("ctl.sock").exists(), "{o}");
    }

    // `mount -a` (what a boot without systemd does): the unreachable lines are given up
    // on within their timeouts, each with its reason, and the healthy line is mounted all
    // the same. (mount(8)'s exit status is its own business: its `nofail` only hides
    // missing devices; at boot, systemd reads `nofail` as "do not hold the boot for it".)
    let (o, took) = mount(&[&"-a", &"-T", &fstab]);
    assert!(took <= margin(timeout * 2), "mount -a took {took:?}\n{o}");
    assert_ne!(o.status.code(), Some(124), "mount -a hung\n{o}");
    assert_contains(&o.both(), &[&origin.url(), &closed]);
    assert!(!is_mounted(&holes.mnt) && !is_mounted(&refused.mnt), "{o}");
    assert!(
        is_mounted(&good.mnt),
        "the healthy line was not mounted\n{o}"
    );
    assert!(good.mnt.join("sample/1.0/bin/tool").is_file());
    Cmd::new("umount").arg(&good.mnt).ok();
    // Nothing was fetched for the unreachable lines.
    for mp in [&holes, &refused] {
        let objects = mp.t.join("cache/objects");
        // (The 256 fan-out directories exist from the start; no object is in them.)
        let n: usize = fs::read_dir(&objects)
            .map(|rd| {
                rd.flatten()
                    .map(|d| fs::read_dir(d.path()).map(|f| f.count()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(n, 0, "{objects:?}");
    }
}
