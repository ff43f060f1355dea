//! Guarantee 3: killed at any moment, the daemon restarts onto a consistent cache (issue 6).
//!
//! kill -9 while several threads read a tree of many files and a few big chunked ones
//! (with one download kept in flight by a trickling origin, so a partial download exists
//! at every kill — in memory or in `tmp/`), while the cache evicts constantly under a small quota, and
//! during an index refresh. After every restart on the same cache: `tmp/` is empty, every
//! object file hashes to its name, the database lists exactly the files present; at the
//! end every file reads back identical to its source (`diff -r`) and `storkctl verify`
//! finds nothing to remove.
//!
//! And the restart story: after kill -9 the kernel answers ENOTCONN on the mount;
//! `storkctl` and `storkfs` then name the dead mount and the recovery (`umount -l`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use harness::{
    assert_contains, fixtures, wait_for, wait_until, Cmd, Mount, Origin, Pattern, Publisher, Repo,
    TestDir, SOON,
};
use policy::manifest::{Blob, FileData, Node};
use policy::Digest;

const MIB: usize = 1 << 20;
/// A rate at which a 1 MiB chunk takes about 30 s (above the daemon's 4 KiB/s floor).
const TRICKLE: u64 = 32 * 1024;

/// A tree of `small` files of 1–40 KiB in a few directories, and `big` files of 3–5 MiB
/// (chunked by the repository), all pseudo-random.
fn heavy_tree(dir: &Path, small: usize, big: usize) -> PathBuf {
    for i in 0..small {
        let len = 1024 + (i * 7919) % (40 * 1024);
        let p = dir.join(format!("d{}/f{i:04}", i % 12));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, fixtures::pseudo_random(10_000 + i as u64, len)).unwrap();
    }
    for i in 0..big {
        let p = dir.join(format!("big/blob{i}.bin"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(
            p,
            fixtures::pseudo_random(20_000 + i as u64, (3 + i % 3) * MIB),
        )
        .unwrap();
    }
    dir.to_path_buf()
}

/// Every regular file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, p: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                walk(root, &e, out);
            } else {
                out.push(e.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Every object file of a cache: (its name, its path).
fn cache_objects(cache: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for sub in fs::read_dir(cache.join("objects")).unwrap() {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            let f = f.unwrap();
            out.push((f.file_name().to_string_lossy().into_owned(), f.path()));
        }
    }
    out
}

fn tmp_files(cache: &Path) -> Vec<(PathBuf, u64)> {
    fs::read_dir(cache.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The cache of a freshly (re)started daemon is consistent: no temporary file left,
/// every object file hashes to its name, and the daemon counts exactly those files.
/// Returns how many objects it holds.
#[track_caller]
fn assert_consistent(m: &Mount, when: &str) -> usize {
    let cache = m.cache_dir();
    let tmp = tmp_files(cache);
    assert!(tmp.is_empty(), "{when}: left in tmp/: {tmp:?}");
    let objects = cache_objects(cache);
    for (name, path) in &objects {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("{when}: read {path:?}: {e}"));
        assert_eq!(
            &Digest::of(&bytes).to_hex(),
            name,
            "{when}: {path:?} does not hash to its name ({} bytes)",
            bytes.len()
        );
    }
    let s = m.status();
    assert_eq!(
        s["cache"]["objects"].as_u64(),
        Some(objects.len() as u64),
        "{when}: the daemon's count differs from the files in objects/\n{:#}",
        s["cache"]
    );
    objects.len()
}

/// `storkctl verify --json` (root) finds nothing damaged, missing or stray.
#[track_caller]
fn assert_verify_clean(m: &Mount) {
    let out = m.ctl().args(["verify", "--json"]).ok();
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["removed"], serde_json::json!([]), "{r:#}");
    assert_eq!(
        (r["missing"].as_u64(), r["orphans"].as_u64()),
        (Some(0), Some(0)),
        "{r:#}"
    );
    assert!(r["checked"].as_u64().unwrap() > 0, "{r:#}");
}

/// `diff -r` of the source against the mounted version `rel`.
#[track_caller]
fn assert_same_tree(src: &Path, m: &Mount, rel: &str) {
    let o = Cmd::new("diff").arg("-r").arg(src).arg(m.path(rel)).run();
    if !o.status.success() {
        let log = m.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "{o}\nlast lines of the daemon's log:\n{}\ncache: {:#}\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            m.status()["cache"],
            Cmd::new("ls").arg("-laR").arg(m.cache_dir()).ok()
        );
    }
}

/// Starts `n` threads reading every file of `rel_files` under `root` (each in its own
/// order) until one read fails (the daemon died) or `stop` is set.
fn readers<'s>(
    s: &'s thread::Scope<'s, '_>,
    n: usize,
    root: &'s Path,
    rel_files: &'s [PathBuf],
    stop: &'s AtomicBool,
) -> Vec<thread::ScopedJoinHandle<'s, usize>> {
    (0..n)
        .map(|k| {
            s.spawn(move || {
                let len = rel_files.len();
                let mut done = 0;
                for i in 0..len {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // A different stride per thread: each walks the files in its own order.
                    let f = &rel_files[(i * (2 * k + 1) + k * 37) % len];
                    if fs::read(root.join(f)).is_err() {
                        break;
                    }
                    done += 1;
                }
                done
            })
        })
        .collect()
}

fn publish_heavy(t: &TestDir, small: usize, big: usize) -> (Repo, Publisher, PathBuf) {
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let src = heavy_tree(&t.join("src"), small, big);
    repo.add(&alice, "heavy", "1.0", &src, &[]);
    repo.publish();
    (repo, alice, src)
}

/// The chunks of every chunked file of `name` `version`: (path, chunk size, blobs).
fn chunked(repo: &Repo, name: &str, version: &str) -> Vec<(String, u64, Vec<Blob>)> {
    repo.manifest(name, version)
        .entries
        .iter()
        .filter_map(|e| match &e.node {
            Node::File {
                data: FileData::Chunked { chunk_size, chunks },
                ..
            } => Some((e.path.as_str().to_string(), *chunk_size, chunks.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn five_kills_during_heavy_fetching_leave_a_consistent_cache_and_identical_files() {
    let t = TestDir::new();
    let (repo, alice, src) = publish_heavy(&t, 800, 4);
    let all = files(&src);
    let big = chunked(&repo, "heavy", "1.0");
    assert_eq!(big.len(), 4);
    let origin = Origin::serve(repo.dir());
    let mut m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    let root = m.path("heavy/1.0");

    const ROUNDS: usize = 6;
    for round in 0..ROUNDS {
        // One download that stays in flight: a chunk no one has fetched yet, trickled.
        let cache = m.cache_dir().to_path_buf();
        let (path, chunk_size, k, blob) = big
            .iter()
            .flat_map(|(p, cs, chunks)| {
                chunks.iter().enumerate().map(move |(k, b)| (p, *cs, k, *b))
            })
            .rev()
            .find(|(.., b)| !cache.join(b.sha256.object_path()).exists())
            .expect("an uncached chunk");
        let rule = origin.trickle(blob.sha256, TRICKLE);
        let stop = AtomicBool::new(false);
        let killed = thread::scope(|s| {
            let slow = {
                let p = m.path(&format!("heavy/1.0/{path}"));
                s.spawn(move || {
                    harness::read_uncached(&p, k as u64 * chunk_size, Some(4096)).is_ok()
                })
            };
            let workers = readers(s, 4, &root, &all, &stop);
            // Kill once fetching is well under way and the trickled chunk is in flight.
            let fetched = wait_for(SOON, format!("round {round}: fetching under way"), || {
                let s = m.status();
                let n = s["fetches"]["objects"].as_u64().unwrap_or(0);
                let partial = origin.requests(blob.sha256) > 0;
                if n >= 30 && partial {
                    Ok(n)
                } else {
                    Err(format!(
                        "{n} objects fetched, tmp/: {:?}\n{}",
                        tmp_files(&cache),
                        origin.describe()
                    ))
                }
            });
            let in_flight = tmp_files(&cache);
            m.kill9();
            stop.store(true, Ordering::Relaxed);
            let read: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
            assert!(
                !slow.join().unwrap(),
                "round {round}: the trickled chunk was read before the kill"
            );
            (fetched, read, in_flight)
        });
        origin.remove(rule);
        m.restart();
        let n = assert_consistent(&m, &format!("after kill {}", round + 1));
        eprintln!(
            "round {round}: killed after {} objects fetched ({} files read, in tmp/: {:?}); {n} objects in the cache after restart",
            killed.0, killed.1, killed.2
        );
    }

    // Every file reads back identical; the cache is still consistent, and verify agrees.
    assert_same_tree(&src, &m, "heavy/1.0");
    assert_consistent(&m, "after reading everything");
    assert_verify_clean(&m);
    let log = m.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn kills_during_constant_eviction_leave_a_consistent_cache() {
    let t = TestDir::new();
    let (repo, alice, src) = publish_heavy(&t, 150, 3);
    let all = files(&src);
    let origin = Origin::serve(repo.dir());
    // About 15 MB of content through an 8 MiB quota: fetches evict all the time.
    let mut m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option("quota=8M")
        .start();
    let root = m.path("heavy/1.0");
    for round in 0..3 {
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let workers = readers(s, 4, &root, &all, &stop);
            let evicted = m.status()["cache"]["evicted"].as_u64().unwrap_or(0);
            wait_for(SOON, format!("round {round}: eviction under way"), || {
                let s = m.status();
                let e = s["cache"]["evicted"].as_u64().unwrap_or(0);
                if e >= evicted + 20 {
                    Ok(())
                } else {
                    Err(format!("{:#}", s["cache"]))
                }
            });
            m.kill9();
            stop.store(true, Ordering::Relaxed);
            for w in workers {
                w.join().unwrap();
            }
        });
        m.restart();
        assert_consistent(&m, &format!("after kill {} under eviction", round + 1));
    }
    assert_same_tree(&src, &m, "heavy/1.0");
    assert_consistent(&m, "after reading everything under the quota");
    assert_verify_clean(&m);
}

#[test]
fn kills_during_a_refresh_keep_the_index_and_cache_consistent() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let one = fixtures::sample_tree(&t.join("one"));
    repo.add(&alice, "one", "1.0", &one, &[]);
    let v1 = repo.publish();
    let origin = Origin::serve(repo.dir());
    let mut m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    assert_same_tree(&one, &m, "one/1.0");

    // Killed while the new index is on its way (its request held at the origin).
    let two = heavy_tree(&t.join("two"), 20, 1);
    repo.add(&alice, "two", "1.0", &two, &[]);
    let v2 = repo.publish();
    {
        let gate = origin.hold("index.json");
        let ctl = m.ctl().arg("refresh");
        let refresh = thread::spawn(move || ctl.run());
        gate.wait_held(1, SOON);
        m.kill9();
        let o = refresh.join().unwrap();
        assert!(
            !o.status.success(),
            "refresh answered from a killed daemon\n{o}"
        );
        // The restarted daemon's own refresh is held too: it serves the old index.
        m.restart();
        assert_eq!(m.status()["index"]["version"], v1);
        assert_consistent(&m, "after a kill mid-refresh");
        assert_same_tree(&one, &m, "one/1.0");
    }
    // Released: the refresh completes, in the running daemon.
    m.ctl().arg("refresh").ok();
    wait_until(SOON, "index v2", || m.status()["index"]["version"] == v2);
    assert_same_tree(&two, &m, "two/1.0");

    // Killed after the index was accepted, while the new version's manifest is on its
    // way: the accepted index survives, and the manifest is fetched after the restart.
    let three = heavy_tree(&t.join("three"), 10, 0);
    repo.add(&alice, "three", "1.0", &three, &[]);
    let v3 = repo.publish();
    let manifest = repo.release("three", "1.0").manifest;
    {
        let gate = origin.hold(Pattern::from(manifest.sha256));
        m.ctl().arg("refresh").ok();
        gate.wait_held(1, SOON);
        m.kill9();
    }
    m.restart();
    assert_eq!(m.status()["index"]["version"], v3);
    assert_consistent(&m, "after a kill while fetching a new manifest");
    assert_same_tree(&three, &m, "three/1.0");
    assert_same_tree(&two, &m, "two/1.0");
    assert_same_tree(&one, &m, "one/1.0");
    assert_verify_clean(&m);
}

/// ENOTCONN after kill -9, and every tool then names the dead mount and the recovery.
#[test]
fn after_kill9_the_dead_mount_is_named_with_its_recovery() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let one = fixtures::sample_tree(&t.join("one"));
    repo.add(&alice, "one", "1.0", &one, &[]);
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let mut m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    assert_same_tree(&one, &m, "one/1.0");
    let mnt = m.root().display().to_string();

    // SIGKILL, leaving the mount in place (Mount::kill9 would also unmount it).
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child's.
    unsafe {
        libc::kill(m.pid() as libc::pid_t, libc::SIGKILL);
    }
    wait_for(
        SOON,
        "the mount to report ENOTCONN",
        || match fs::metadata(m.root()) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let e = fs::read(m.path("one/1.0/bin/tool")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN), "{e}");

    // storkctl: exit 3 (no daemon), naming the dead mount and what to run.
    let o = m.ctl().arg("status").run();
    assert_eq!(o.status.code(), Some(3), "{o}");
    assert_contains(
        &o.stderr,
        &[
            &mnt,
            "Transport endpoint is not connected",
            &format!("umount -l {mnt}"),
        ],
    );
    assert_eq!(o.stderr.trim().lines().count(), 1, "one line\n{o}");
    let o = m.ctl_as(4242).arg("list").run();
    assert_eq!(o.status.code(), Some(3), "{o}");
    assert_contains(&o.stderr, &[&format!("umount -l {mnt}")]);

    // storkfs on the dead mount point refuses, with the same advice.
    let other = TestDir::new();
    let err = Cmd::bin("storkfs")
        .arg(origin.url())
        .arg(m.root())
        .arg("-o")
        .arg(format!(
            "cache={},trust={},socket={}",
            other.join("cache").display(),
            m.scratch().join("trust.toml").display(),
            other.join("ctl.sock").display()
        ))
        .fails();
    assert_contains(
        &err,
        &[
            &mnt,
            "Transport endpoint is not connected",
            &format!("umount -l {mnt}"),
        ],
    );

    // The recovery as advised: umount -l, mount again on the same cache.
    m.kill9();
    m.restart();
    assert_same_tree(&one, &m, "one/1.0");
    assert_consistent(&m, "after recovering a dead mount");
    m.ctl().arg("status").ok();
}

#[test]
fn an_interrupted_download_is_never_kept() {
    // The smallest form of the loop above, deterministic: one download held half-way,
    // kill -9, restart; the partial file is gone and the object is fetched whole again.
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let src = t.join("src");
    fs::create_dir_all(&src).unwrap();
    let bytes = fixtures::pseudo_random(7, 900_000);
    fs::write(src.join("file"), &bytes).unwrap();
    repo.add(&alice, "p", "1.0", &src, &[]);
    repo.publish();
    let blob = match &repo.manifest("p", "1.0").entries[0].node {
        Node::File {
            data: FileData::Whole(b),
            ..
        } => *b,
        n => panic!("{n:?}"),
    };
    let origin = Origin::serve(repo.dir());
    let mut m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option("timeout=60")
        .start();
    let cache = m.cache_dir().to_path_buf();
    let rule = origin.trickle(blob.sha256, TRICKLE);
    let p = m.path("p/1.0/file");
    let reader = thread::spawn(move || fs::read(p).is_ok());
    // The download is under way (small objects land in memory, larger ones in tmp/).
    wait_for(SOON, "the download to be under way", || {
        if origin.requests(blob.sha256) > 0 && origin.bytes_sent() > 0 {
            Ok(())
        } else {
            Err(origin.describe())
        }
    });
    m.kill9();
    assert!(!reader.join().unwrap(), "read through a killed daemon");
    assert!(!cache.join(blob.sha256.object_path()).exists());
    origin.remove(rule);
    origin.reset_counts();
    m.restart();
    assert_consistent(&m, "after a kill mid-download");
    assert_eq!(fs::read(m.path("p/1.0/file")).unwrap(), bytes);
    assert_eq!(origin.requests(blob.sha256), 1, "{}", origin.describe());
    assert_consistent(&m, "after the re-fetch");
}
