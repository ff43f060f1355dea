//! Guarantee 4: with the network gone, everything already cached keeps working (issue 6).
//!
//! With every source gone (the origin stops listening): listing, reading what is cached,
//! pins and `current` work; an uncached read gives EIO within `timeout=` (and a margin);
//! the status says which source is down and since when. When the origin comes back on the
//! same port, fetching resumes without a restart. A daemon (re)started with the origin
//! down comes up from the cached index and manifests, like a node booting without network.
//!
//! Reads that must come from the daemon's cache go through [`read_uncached`]: the mount
//! keeps the kernel's page cache across opens, which would otherwise answer them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::{
    assert_contains, fixtures, margin, read_as, read_uncached, readlink_as, wait_for, Mount,
    Origin, Publisher, Repo, TestDir, SOON,
};

const TIMEOUT: Duration = Duration::from_secs(3);
const MIB: usize = 1 << 20;
const SLICE: u32 = 4301;
const OTHER_SLICE: u32 = 4302;

/// A repository with `tools` 1.0 and 2.0 (small files and a 3 MiB file of 3 chunks
/// each) and `extra` 1.0; returns the source trees by "name/version".
fn published(t: &TestDir) -> (Repo, Publisher, Vec<(String, PathBuf)>) {
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let mut trees = Vec::new();
    for (i, (name, version)) in [("tools", "1.0"), ("tools", "2.0"), ("extra", "1.0")]
        .into_iter()
        .enumerate()
    {
        let src = t.join(format!("src/{name}-{version}"));
        let seed = 100 * (i as u64 + 1);
        let w = |rel: &str, bytes: Vec<u8>| {
            let p = src.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, bytes).unwrap();
        };
        w("bin/tool", fixtures::pseudo_random(seed, 3000));
        w(
            "share/doc/README",
            format!("{name} {version}\n").into_bytes(),
        );
        w("share/doc/NOTES", fixtures::pseudo_random(seed + 1, 20_000));
        w("lib/big.so", fixtures::pseudo_random(seed + 2, 3 * MIB));
        repo.add(&alice, name, version, &src, &[]);
        trees.push((format!("{name}/{version}"), src));
    }
    repo.publish();
    (repo, alice, trees)
}

fn tree<'a>(trees: &'a [(String, PathBuf)], nv: &str) -> &'a Path {
    &trees.iter().find(|(k, _)| k == nv).unwrap().1
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {dir:?}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Asserts that reading `len` bytes of `path` at `offset` fails with EIO, within the
/// read timeout and a margin.
#[track_caller]
fn assert_eio_within_timeout(path: &Path, offset: u64, len: Option<usize>) {
    let start = Instant::now();
    let r = read_uncached(path, offset, len);
    let took = start.elapsed();
    match r {
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EIO),
            "{path:?} at {offset}: expected EIO, got {e}"
        ),
        Ok(b) => panic!("{path:?} at {offset}: read {} bytes offline", b.len()),
    }
    assert!(
        took <= margin(TIMEOUT),
        "{path:?}: EIO after {took:?}, timeout={TIMEOUT:?}"
    );
}

/// Reads the whole of `rel` from the mount and compares it with the source.
#[track_caller]
fn assert_reads_as_source(m: &Mount, trees: &[(String, PathBuf)], nv: &str, rel: &str) {
    let got = read_uncached(&m.path(&format!("{nv}/{rel}")), 0, None)
        .unwrap_or_else(|e| panic!("{nv}/{rel}: {e}\n{}", m.log()));
    let want = fs::read(tree(trees, nv).join(rel)).unwrap();
    assert!(got == want, "{nv}/{rel}: bytes differ from the source");
}

/// The origin's entry in the status.
fn origin_status(m: &Mount) -> serde_json::Value {
    let s = m.status();
    s["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "origin")
        .cloned()
        .unwrap_or_else(|| panic!("no origin in {s:#}"))
}

/// Reads the cached parts: the whole of tools 1.0, and of tools 2.0 its README and the
/// first chunk of lib/big.so; lists every version (loading each manifest).
fn warm(m: &Mount, trees: &[(String, PathBuf)]) {
    for rel in [
        "bin/tool",
        "share/doc/README",
        "share/doc/NOTES",
        "lib/big.so",
    ] {
        assert_reads_as_source(m, trees, "tools/1.0", rel);
    }
    assert_reads_as_source(m, trees, "tools/2.0", "share/doc/README");
    let head = read_uncached(&m.path("tools/2.0/lib/big.so"), 0, Some(4096)).unwrap();
    assert_eq!(
        head,
        fs::read(tree(trees, "tools/2.0").join("lib/big.so")).unwrap()[..4096]
    );
    for nv in ["tools/1.0", "tools/2.0", "extra/1.0"] {
        assert_eq!(names(&m.path(nv)), ["bin", "lib", "share"], "{nv}");
    }
}

/// Everything cached works with the origin gone; what is not cached gives EIO in time.
fn assert_offline_service(m: &Mount, trees: &[(String, PathBuf)]) {
    // Listing and stat.
    assert_eq!(names(m.root()), [".stork", "extra", "tools"]);
    assert_eq!(names(&m.path("tools")), ["1.0", "2.0", "current"]);
    assert_eq!(names(&m.path("extra/1.0/share/doc")), ["NOTES", "README"]);
    assert_eq!(
        fs::metadata(m.path("extra/1.0/lib/big.so")).unwrap().len(),
        3 * MIB as u64
    );
    // Reading what is cached, byte for byte, from the daemon's cache.
    for rel in [
        "bin/tool",
        "share/doc/README",
        "share/doc/NOTES",
        "lib/big.so",
    ] {
        assert_reads_as_source(m, trees, "tools/1.0", rel);
    }
    assert_reads_as_source(m, trees, "tools/2.0", "share/doc/README");
    let big2 = fs::read(tree(trees, "tools/2.0").join("lib/big.so")).unwrap();
    assert_eq!(
        read_uncached(&m.path("tools/2.0/lib/big.so"), 1000, Some(8000)).unwrap(),
        big2[1000..9000],
        "the cached first chunk"
    );
    // `current` per slice, from the pins, and pins themselves.
    assert_eq!(readlink_as(SLICE, &m.path("tools/current")), "1.0");
    assert_eq!(readlink_as(OTHER_SLICE, &m.path("tools/current")), "2.0");
    let o = read_as(SLICE, &m.path("tools/current/share/doc/README"));
    assert!(o.status.success(), "{o}");
    assert_eq!(o.stdout, "tools 1.0\n");
    let pins = m.ctl_as(SLICE).arg("pins").ok();
    assert_contains(&pins, &["tools", "1.0"]);
    assert_contains(&m.ctl_as(SLICE).arg("list").ok(), &["tools", "extra"]);

    // Not cached: EIO within the timeout, for a whole small file, another chunk of a
    // partly cached file, and a file of a version never read.
    assert_eio_within_timeout(&m.path("tools/2.0/bin/tool"), 0, None);
    assert_eio_within_timeout(&m.path("tools/2.0/lib/big.so"), 2 * MIB as u64, Some(4096));
    assert_eio_within_timeout(&m.path("extra/1.0/share/doc/NOTES"), 0, None);
    // ...and what is cached still reads after those failures.
    assert_reads_as_source(m, trees, "tools/1.0", "lib/big.so");
}

#[test]
fn with_the_origin_gone_the_cache_serves_and_fetching_resumes_when_it_returns() {
    let t = TestDir::new();
    let (repo, alice, trees) = published(&t);
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option(&format!("timeout={}", TIMEOUT.as_secs()))
        .start();
    warm(&m, &trees);
    m.ctl_as(SLICE).args(["pin", "tools@1.0"]).ok();
    assert_eq!(origin_status(&m)["healthy"], true);

    // A network that swallows requests (the origin accepts and never answers): an
    // uncached read still ends in EIO within the timeout.
    {
        let _black_hole = origin.hold(harness::Pattern::objects());
        assert_eio_within_timeout(&m.path("extra/1.0/bin/tool"), 0, None);
    }

    origin.stop();
    let gone = now();
    assert_offline_service(&m, &trees);
    // A slice pins offline too (the manifest is cached), and `current` follows.
    m.ctl_as(OTHER_SLICE).args(["pin", "tools@1.0"]).ok();
    assert_eq!(readlink_as(OTHER_SLICE, &m.path("tools/current")), "1.0");
    m.ctl_as(OTHER_SLICE).args(["unpin", "tools"]).ok();
    assert_eq!(readlink_as(OTHER_SLICE, &m.path("tools/current")), "2.0");

    // The status says which source is down, since when, and why.
    let src = origin_status(&m);
    assert_eq!(src["healthy"], false, "{src:#}");
    let since = src["down_since"]
        .as_u64()
        .unwrap_or_else(|| panic!("{src:#}"));
    assert!(
        gone <= since && since <= now(),
        "down_since {since}, stopped at {gone}"
    );
    assert_contains(src["last_error"].as_str().unwrap_or(""), &["connect"]);
    let text = m.ctl().arg("status").ok();
    assert_contains(&text, &[&origin.url(), "down since"]);
    // Looking for a new index fails, saying why, and the index is then stale.
    let err = m.ctl().arg("refresh").fails();
    assert_contains(&err, &[&origin.url()]);
    let s = m.status();
    assert_eq!(s["index"]["stale"], true, "{s:#}");

    // The origin returns on the same port: the next reads fetch again, without a
    // restart, although the origin is still within its back-off (it is the only source).
    origin.start();
    let before = origin.object_requests();
    let pid = m.pid();
    wait_for(SOON, "an uncached read to succeed again", || {
        read_uncached(&m.path("tools/2.0/bin/tool"), 0, None)
            .map_err(|e| format!("{e}\n{}", origin.describe()))
    });
    assert_reads_as_source(&m, &trees, "tools/2.0", "bin/tool");
    assert_reads_as_source(&m, &trees, "tools/2.0", "lib/big.so");
    assert_reads_as_source(&m, &trees, "extra/1.0", "share/doc/NOTES");
    assert!(origin.object_requests() > before, "{}", origin.describe());
    assert_eq!(m.pid(), pid, "the daemon was restarted");
    m.ctl().arg("refresh").ok();
    let src = origin_status(&m);
    assert_eq!(src["healthy"], true, "{src:#}");
    assert!(src["down_since"].is_null(), "{src:#}");
    assert_eq!(m.status()["index"]["stale"], false);
}

#[test]
fn a_restart_with_the_origin_down_comes_up_from_the_cached_index_and_manifests() {
    let t = TestDir::new();
    let (repo, alice, trees) = published(&t);
    let version = repo.index_version();
    let origin = Origin::serve(repo.dir());
    let mut m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option(&format!("timeout={}", TIMEOUT.as_secs()))
        .start();
    warm(&m, &trees);
    m.ctl_as(SLICE).args(["pin", "tools@1.0"]).ok();
    m.unmount();

    // A boot with the network down: the daemon mounts from what it cached.
    origin.stop();
    origin.reset_counts();
    m.restart();
    let s = m.status();
    assert_eq!(s["index"]["version"], version, "{s:#}");
    assert_offline_service(&m, &trees);
    wait_for(SOON, "the failed index refresh to show", || {
        let s = m.status();
        if s["index"]["stale"] == true && s["index"]["last_error"].is_string() {
            Ok(())
        } else {
            Err(format!("{s:#}"))
        }
    });
    assert_eq!(origin.total_requests(), 0);

    // The same after a crash (kill -9) with the origin still down.
    m.kill9();
    m.restart();
    assert_offline_service(&m, &trees);

    // The origin returns: fetching resumes in this very daemon, and so do refreshes.
    origin.start();
    wait_for(SOON, "an uncached read to succeed again", || {
        read_uncached(&m.path("extra/1.0/lib/big.so"), 0, None)
            .map_err(|e| format!("{e}\n{}", origin.describe()))
    });
    assert_reads_as_source(&m, &trees, "extra/1.0", "lib/big.so");
    assert_reads_as_source(&m, &trees, "tools/2.0", "bin/tool");
    m.ctl().arg("refresh").ok();
    let s = m.status();
    assert_eq!(s["index"]["stale"], false, "{s:#}");
    assert!(s["index"]["last_error"].is_null(), "{s:#}");
}
