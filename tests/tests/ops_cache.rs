//! The cache under pressure (issue 6): a quota that holds while far more is read, evicted
//! files fetched again correctly, pinned content kept; a cache on a tiny filesystem that
//! gives EIO for what does not fit and keeps serving the rest; a cache damaged on disk
//! that is detected and never served.
//!
//! How damage is found, as `fs/src/store/mod.rs` designs it: `storkctl verify` (root)
//! rehashes everything; the daemon rehashes an object whose size or modification time
//! differs from its database row before serving it. A change that keeps both size and
//! mtime is found only by `verify`.
//!
//! Re-reads go through [`read_uncached`], since the mount keeps the kernel's page cache.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, SystemTime};

use harness::{
    assert_contains, fixtures, read_as, read_uncached, wait_for, Cmd, Mount, Origin, Publisher,
    Repo, TestDir, SOON,
};
use policy::manifest::{FileData, Node};
use policy::Digest;

const MIB: usize = 1 << 20;
const SLICE: u32 = 4401;

/// Writes `files` of the given sizes under `dir` (pseudo-random, distinct); returns `dir`.
fn tree(dir: &Path, seed: u64, sizes: &[usize]) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    for (i, len) in sizes.iter().enumerate() {
        fs::write(
            dir.join(format!("f{i:02}")),
            fixtures::pseudo_random(seed + i as u64, *len),
        )
        .unwrap();
    }
    dir.to_path_buf()
}

/// The content objects (plain digests) of every file of `name` `version`.
fn objects_of(repo: &Repo, name: &str, version: &str) -> Vec<Digest> {
    let mut out = Vec::new();
    for e in repo.manifest(name, version).entries {
        if let Node::File { data, .. } = e.node {
            match data {
                FileData::Whole(b) if b.size > 0 => out.push(b.sha256),
                FileData::Whole(_) => {}
                FileData::Chunked { chunks, .. } => out.extend(chunks.iter().map(|c| c.sha256)),
            }
        }
    }
    out
}

fn cached(m: &Mount, d: &Digest) -> bool {
    m.cache_dir().join(d.object_path()).exists()
}

/// `du -s -B1 DIR`: bytes the directory takes on disk, everything included.
fn du(dir: &Path) -> u64 {
    // While the daemon evicts, a file can vanish between du's readdir and its stat; du
    // then complains and exits 1 but still prints the total of what it saw, which is
    // what we sample.
    let o = Cmd::new("du").arg("-s").arg("-B1").arg(dir).run();
    o.stdout
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("du printed no total\n{o}"))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every file of `src` read through the mount at `rel` equals its source.
#[track_caller]
fn assert_reads_back(m: &Mount, rel: &str, src: &Path) {
    for f in names(src) {
        let got = read_uncached(&m.path(&format!("{rel}/{f}")), 0, None)
            .unwrap_or_else(|e| panic!("{rel}/{f}: {e}\n{}", m.log()));
        assert!(
            got == fs::read(src.join(&f)).unwrap(),
            "{rel}/{f} differs from its source"
        );
    }
}

#[test]
fn a_25m_quota_holds_while_60mb_are_read_evicted_files_come_back_and_pins_are_kept() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    // 20 files of 1 to 5 MiB: 60 MiB that cannot all stay in 25 MiB.
    let sizes: Vec<usize> = (0..20).map(|i| (1 + i % 5) * MIB - 1000 * i).collect();
    let bulk = tree(&t.join("bulk"), 1000, &sizes);
    // Two small versions of ~3 MiB: one a slice pins, one nobody pins.
    let small = [100_000, 2 * MIB + MIB / 2, 500_000];
    let keep = tree(&t.join("keep"), 2000, &small);
    let loose = tree(&t.join("loose"), 3000, &small);
    repo.add(&alice, "bulk", "1.0", &bulk, &[]);
    repo.add(&alice, "keep", "1.0", &keep, &[]);
    repo.add(&alice, "loose", "1.0", &loose, &[]);
    repo.publish();
    let keep_objects = objects_of(&repo, "keep", "1.0");
    let loose_objects = objects_of(&repo, "loose", "1.0");
    let bulk_objects = objects_of(&repo, "bulk", "1.0");
    let origin = Origin::serve(repo.dir());
    const QUOTA: u64 = 25 << 20;
    // What the daemon does not count: the directories of objects/ (up to 256 of 4 KiB)
    // and the lock file; and what may grow between two of its checks.
    const SLACK: u64 = 2 << 20;
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option("quota=25M")
        .start();
    assert_eq!(m.status()["cache"]["quota"], QUOTA);

    // The pinned version is read first, so it is the least recently used of all.
    assert_reads_back(&m, "keep/1.0", &keep);
    assert_reads_back(&m, "loose/1.0", &loose);
    assert!(keep_objects
        .iter()
        .chain(&loose_objects)
        .all(|d| cached(&m, d)));
    m.ctl_as(SLICE).args(["pin", "keep@1.0"]).ok();
    // The daemon recomputes what pins protect every couple of seconds.
    wait_for(SOON, "the pinned objects to be protected", || {
        let s = m.status();
        match s["cache"]["pinned_objects"].as_u64() {
            Some(n) if n >= keep_objects.len() as u64 => Ok(()),
            _ => Err(format!("{:#}", s["cache"])),
        }
    });

    // A file held open is never evicted either.
    let open_file = fs::File::open(m.path("loose/1.0/f00")).unwrap();
    let open_object = Digest::of(&fs::read(loose.join("f00")).unwrap());
    assert!(loose_objects.contains(&open_object));

    // Read everything twice, while du watches the cache.
    let stop = AtomicBool::new(false);
    let samples = Mutex::new(Vec::<u64>::new());
    let cache = m.cache_dir().to_path_buf();
    let refetched = thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                samples.lock().unwrap().push(du(&cache));
            }
        });
        assert_reads_back(&m, "bulk/1.0", &bulk);
        origin.reset_counts();
        assert_reads_back(&m, "bulk/1.0", &bulk);
        let refetched = bulk_objects
            .iter()
            .filter(|d| origin.requests(**d) > 0)
            .count();
        stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap();
        refetched
    });
    let samples = samples.into_inner().unwrap();
    let max = *samples.iter().max().unwrap();
    eprintln!(
        "du of the cache: {} samples, at most {max} bytes (quota {QUOTA}); {refetched} of {} objects fetched again",
        samples.len(),
        bulk_objects.len()
    );
    assert!(samples.len() > 10, "du ran only {} times", samples.len());
    assert!(
        max <= QUOTA + SLACK,
        "the cache took {max} bytes on disk at most, quota {QUOTA}\n{:#}",
        m.status()["cache"]
    );
    // At most 25 of the 60 MiB could still be cached for the second pass.
    assert!(
        refetched >= bulk_objects.len() - 25,
        "only {refetched} of {} objects fetched again\n{}",
        bulk_objects.len(),
        origin.describe()
    );
    let s = m.status();
    assert!(
        s["cache"]["evicted"].as_u64().unwrap() >= 35,
        "{:#}",
        s["cache"]
    );
    let after = du(&cache);
    assert!(after <= QUOTA + SLACK, "{after} bytes after reading");

    // The pinned version kept every object, although it was the oldest content; the
    // unpinned one, read just after it, lost content (but not the file held open).
    let gone: Vec<_> = keep_objects.iter().filter(|d| !cached(&m, d)).collect();
    assert!(gone.is_empty(), "pinned objects evicted: {gone:?}");
    assert!(
        loose_objects.iter().any(|d| !cached(&m, d)),
        "nothing of the unpinned version was evicted"
    );
    assert!(
        cached(&m, &open_object),
        "an open file's object was evicted"
    );
    drop(open_file);
    // The slice reads its pinned version from the cache, without the network.
    origin.reset_counts();
    let o = read_as(SLICE, &m.path("keep/current/f01"));
    assert!(o.status.success(), "{o}");
    assert!(o.stdout_bytes == fs::read(keep.join("f01")).unwrap());
    assert_reads_back(&m, "keep/1.0", &keep);
    assert_eq!(origin.object_requests(), 0, "{}", origin.describe());
    // And the evicted unpinned content comes back, correct.
    assert_reads_back(&m, "loose/1.0", &loose);
}

/// A tmpfs, lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        fs::create_dir_all(&dir).unwrap();
        Cmd::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700"))
            .arg("tmpfs")
            .arg(&dir)
            .ok();
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Cmd::new("umount").arg("-l").arg(&self.0).run();
    }
}

/// Every object of the cache hashes to its name, and `tmp/` holds nothing.
#[track_caller]
fn assert_cache_sound(cache: &Path) {
    let tmp: Vec<_> = fs::read_dir(cache.join("tmp")).unwrap().flatten().collect();
    assert!(tmp.is_empty(), "left in tmp/: {tmp:?}");
    for sub in fs::read_dir(cache.join("objects")).unwrap() {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let bytes = fs::read(f.path()).unwrap();
            assert_eq!(
                Digest::of(&bytes).to_hex(),
                f.file_name().to_string_lossy(),
                "{:?} does not hash to its name",
                f.path()
            );
        }
    }
}

/// A package of eight small files and one of a 12 MiB file, mounted with its cache on an
/// 8 MiB tmpfs and a quota larger than that filesystem (so the disk fills first).
struct Small {
    fits: PathBuf,
    huge: PathBuf,
    // Fields drop in order: unmount before the origin stops and the tmpfs goes.
    m: Mount,
    _origin: Origin,
    cache_fs: Tmpfs,
}

fn small_on_8m_tmpfs(t: &TestDir) -> Small {
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let fits = tree(&t.join("fits"), 4000, &[200_000; 8]);
    let huge = tree(&t.join("huge"), 5000, &[12 * MIB]);
    repo.add(&alice, "fits", "1.0", &fits, &[]);
    repo.add(&alice, "huge", "1.0", &huge, &[]);
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let cache_fs = Tmpfs::mount(t.join("cache"), "8M");
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .cache(&cache_fs.0)
        .option("quota=64M,timeout=5")
        .start();
    Small {
        fits,
        huge,
        m,
        _origin: origin,
        cache_fs,
    }
}

#[test]
fn a_disk_that_fills_before_the_quota_is_made_room_on_like_the_quota() {
    let t = TestDir::new();
    // Bound in this order so the mount goes first, then the origin and the tmpfs.
    let Small {
        fits,
        huge,
        _origin,
        cache_fs,
        m,
    } = small_on_8m_tmpfs(&t);
    assert_reads_back(&m, "fits/1.0", &fits);
    // 12 MiB through an 8 MiB filesystem: least-recently-used content makes room, as it
    // would for the quota, and every byte is right.
    let got = read_uncached(&m.path("huge/1.0/f00"), 0, None).expect("read the 12 MiB file");
    assert!(got == fs::read(huge.join("f00")).unwrap(), "wrong bytes");
    assert_contains(&m.log(), &["filesystem is full; evicted"]);
    assert_cache_sound(&cache_fs.0);
    // Evicted content comes back when read again.
    assert_reads_back(&m, "fits/1.0", &fits);
    assert_cache_sound(&cache_fs.0);
}

#[test]
fn a_full_cache_filesystem_gives_eio_for_what_does_not_fit_and_serves_the_rest() {
    let t = TestDir::new();
    // Bound in this order so the mount goes first, then the origin and the tmpfs.
    let Small {
        fits,
        huge,
        _origin,
        cache_fs,
        mut m,
    } = small_on_8m_tmpfs(&t);
    let pid = m.pid();
    // Everything cached is pinned by a slice, so nothing may be evicted...
    m.ctl_as(1001).args(["pin", "fits"]).ok();
    assert_reads_back(&m, "fits/1.0", &fits);
    wait_for(SOON, "the pinned objects to be protected", || {
        let s = m.status();
        match s["cache"]["pinned_objects"].as_u64() {
            Some(n) if n >= 8 => Ok(()),
            _ => Err(format!("{s:#}")),
        }
    });
    // ...and other data fills the filesystem.
    let filler = cache_fs.0.join("filler");
    {
        let mut f = fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
    }
    let big = m.path("huge/1.0/f00");
    for _ in 0..2 {
        match read_uncached(&big, 0, Some(1000)) {
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}"),
            Ok(b) => panic!("read {} bytes with a full cache filesystem", b.len()),
        }
    }
    assert_contains(&m.log(), &["the cache's filesystem is full"]);
    // What was cached before is still served, byte for byte, by the same daemon.
    assert_reads_back(&m, "fits/1.0", &fits);
    assert_eq!(m.pid(), pid);
    assert_eq!(m.status()["pid"], pid);
    // Whatever the full disk did, the cache holds only whole, verified objects.
    assert_cache_sound(&cache_fs.0);
    // A restart onto the full filesystem comes up (making a little room for its database
    // if it must) and serves what it still holds; nothing it serves is wrong.
    m.unmount();
    m.restart();
    for f in names(&fits) {
        match read_uncached(&m.path(&format!("fits/1.0/{f}")), 0, None) {
            Ok(b) => assert!(b == fs::read(fits.join(&f)).unwrap(), "fits/1.0/{f}"),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "fits/1.0/{f}: {e}"),
        }
    }
    assert_cache_sound(&cache_fs.0);
    // Once there is room again, everything reads, after a crash too.
    fs::remove_file(&filler).unwrap();
    m.kill9();
    m.restart();
    assert_reads_back(&m, "fits/1.0", &fits);
    assert_cache_sound(&cache_fs.0);
    let got = read_uncached(&big, 0, None).expect("read after space was freed");
    assert!(got == fs::read(huge.join("f00")).unwrap());
}

/// A repository with one small file and one 3-chunk file; returns it and the sources.
fn two_files(t: &TestDir) -> (Repo, Publisher, PathBuf) {
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let src = tree(&t.join("src"), 6000, &[50_000, 3 * MIB - 7, 30_000]);
    repo.add(&alice, "p", "1.0", &src, &[]);
    repo.publish();
    (repo, alice, src)
}

/// Flips one byte in the middle of a cache object. With `keep_mtime`, puts its
/// modification time back: size and time then look untouched.
fn flip_byte(path: &Path, keep_mtime: bool) {
    let before = fs::metadata(path).unwrap();
    let mut bytes = fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(&bytes).unwrap();
    if keep_mtime {
        f.set_times(fs::FileTimes::new().set_modified(before.modified().unwrap()))
            .unwrap();
    } else {
        // A time distinctly different from the original, whatever the clock's grain.
        f.set_modified(before.modified().unwrap() + Duration::from_secs(10))
            .unwrap();
    }
    drop(f);
    let after = fs::metadata(path).unwrap();
    assert_eq!(after.len(), before.len());
    assert_eq!(
        after.modified().unwrap() == before.modified().unwrap(),
        keep_mtime
    );
}

#[test]
fn storkctl_verify_finds_and_drops_a_damaged_object_of_unchanged_size_and_time() {
    let t = TestDir::new();
    let (repo, alice, src) = two_files(&t);
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    assert_reads_back(&m, "p/1.0", &src);
    let objects = objects_of(&repo, "p", "1.0");
    assert_eq!(objects.len(), 5);
    // Damage the small file and the middle chunk, leaving size and mtime as they were
    // (what bit rot does).
    let (small, chunk) = (objects[0], objects[2]);
    for d in [small, chunk] {
        flip_byte(&m.cache_dir().join(d.object_path()), true);
    }

    // Only root may verify.
    let e = m.ctl_as(SLICE).arg("verify").fails();
    assert_contains(&e, &["root"]);
    let o = m.ctl().arg("verify").run();
    o.assert_clean_failure();
    for d in [small, chunk] {
        assert_contains(
            &o.stdout,
            &[&format!("removed damaged object {}", d.to_hex())],
        );
        assert!(!cached(&m, &d), "{} still in the cache", d.short());
    }
    assert_contains(&o.stderr, &["2 damaged and removed"]);
    assert_contains(&m.log(), &["does not match its digest"]);

    // Fetched again, correct; and a second verify finds nothing.
    origin.reset_counts();
    assert_reads_back(&m, "p/1.0", &src);
    assert_eq!((origin.requests(small), origin.requests(chunk)), (1, 1));
    assert_eq!(origin.object_requests(), 2, "{}", origin.describe());
    let out = m.ctl().args(["verify", "--json"]).ok();
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["removed"], serde_json::json!([]), "{r:#}");
    assert_eq!(
        r["checked"],
        objects.len() as u64 + 1,
        "objects and the manifest\n{r:#}"
    );
}

#[test]
fn an_object_changed_on_disk_in_size_or_time_is_rehashed_and_never_served() {
    let t = TestDir::new();
    let (repo, alice, src) = two_files(&t);
    let origin = Origin::serve(repo.dir());
    let mut m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    assert_reads_back(&m, "p/1.0", &src);
    let objects = objects_of(&repo, "p", "1.0");
    let cache = m.cache_dir().to_path_buf();
    let path = |d: &Digest| cache.join(d.object_path());
    m.unmount();

    // While the daemon is down: one object gets a byte flipped (its mtime changes), one
    // is cut short, and one is only touched (new mtime, same bytes).
    let (flipped, cut, touched) = (objects[0], objects[3], objects[4]);
    flip_byte(&path(&flipped), false);
    let f = fs::OpenOptions::new().write(true).open(path(&cut)).unwrap();
    f.set_len(1000).unwrap();
    drop(f);
    let f = fs::File::options()
        .write(true)
        .open(path(&touched))
        .unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    drop(f);

    origin.reset_counts();
    m.restart();
    assert_reads_back(&m, "p/1.0", &src);
    // The damaged ones were fetched again; the touched one rehashed fine and was kept.
    assert_eq!(origin.requests(flipped), 1, "{}", origin.describe());
    assert_eq!(origin.requests(cut), 1, "{}", origin.describe());
    assert_eq!(origin.requests(touched), 0, "{}", origin.describe());
    assert_eq!(origin.object_requests(), 2, "{}", origin.describe());
    let log = m.log();
    assert_contains(&log, &["changed on disk", "damaged on disk"]);
    let out = m.ctl().args(["verify", "--json"]).ok();
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["removed"], serde_json::json!([]), "{r:#}");
}

#[test]
fn an_object_changed_on_disk_while_mounted_is_never_served() {
    let t = TestDir::new();
    let (repo, alice, src) = two_files(&t);
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    assert_reads_back(&m, "p/1.0", &src);
    let objects = objects_of(&repo, "p", "1.0");
    let (flipped, cut) = (objects[0], objects[2]);
    flip_byte(&m.cache_dir().join(flipped.object_path()), false);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.cache_dir().join(cut.object_path()))
        .unwrap();
    f.set_len(1000).unwrap();
    drop(f);

    origin.reset_counts();
    assert_reads_back(&m, "p/1.0", &src);
    assert_eq!(origin.requests(flipped), 1, "{}", origin.describe());
    assert_eq!(origin.requests(cut), 1, "{}", origin.describe());
    assert_contains(&m.log(), &["changed on disk", "damaged on disk"]);
}
