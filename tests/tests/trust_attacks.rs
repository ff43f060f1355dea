//! The attacks on package managers (TUF's list, and "A Look in the Mirror"), one test
//! each, through a real mount (issue 4).
//!
//! Each test builds a repository that carries exactly its attack, and asserts both what a
//! reader sees (the version is invisible, a read gives EIO, or the old version is kept)
//! and that the cache holds nothing bad: every object file in `CACHE/objects` is rehashed
//! and must hash to its name, and the attacker's bytes are not among them.
//!
//! | attack | test |
//! | --- | --- |
//! | tampered content, from one source or every source | `tampered_content_from_the_origin_is_refused_and_a_good_mirror_serves_it`, `tampered_content_from_every_source_gives_eio_and_stores_nothing` |
//! | tampered metadata (manifest, index) | `tampered_manifest_gives_eio_and_stores_nothing`, `tampered_index_is_refused_by_a_fresh_and_a_running_node` |
//! | rollback | `rollback_to_an_older_index_is_refused_even_after_a_restart` |
//! | freeze | `freeze_an_expired_index_stops_a_fresh_mount`, `freeze_an_index_expiring_while_mounted_keeps_serving_and_says_stale` |
//! | mix-and-match | `mix_and_match_a_changed_manifest_for_an_accepted_version_is_refused`, `mix_and_match_the_same_index_version_with_other_content_is_refused` |
//! | dropped versions | `dropped_version_stays_and_current_does_not_move_back`, `withdrawal_signed_by_the_publisher_removes_the_version`, `withdrawal_signed_by_an_untrusted_key_is_ignored` |
//! | endless data | `endless_data_for_an_object_is_cut_off_and_nothing_is_stored`, `endless_data_for_the_index_is_cut_off_and_the_view_is_kept` |
//! | slow retrieval | `slow_retrieval_from_the_origin_is_abandoned_for_a_good_mirror` |
//! | untrusted signer | `untrusted_signer_package_is_invisible_and_listed_as_refused` |
//! | signer outside its patterns | `trusted_signer_outside_its_patterns_is_invisible` |
//! | threshold | `threshold_one_signature_of_two_is_not_enough_until_cosigned` |
//! | revoked key | `revoked_key_signs_nothing_even_what_was_accepted_before` |
//! | wrong index key | `wrong_index_key_stops_a_fresh_mount_naming_both_keys` |
//! | key rotation | `key_rotation_signed_by_the_trusted_key_is_followed`, `key_rotation_forged_by_another_key_is_refused` |
//! | fast-forward | `fast_forward_by_a_stolen_key_is_undone_by_a_rotation` |
//! | wrong software | `wrong_software_a_signed_manifest_listed_under_another_name_is_refused` |
//! | privilege (setuid, setgid, devices) | `privilege_setuid_and_setgid_bits_are_never_served` |

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::{
    as_uid, assert_contains, fixtures, margin, mount_options, wait_for, wait_until, Cmd, Mount,
    Origin, Publisher, Repo, TestDir, SOON,
};
use policy::index::{IndexBody, IndexDoc, Rotation, INDEX_FILE};
use policy::{Digest, PublicKey, SecretKey};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers

/// Writes small files under `t/dir`; returns the directory.
fn tree(t: &TestDir, dir: &str, files: &[(&str, &[u8])]) -> PathBuf {
    for (rel, bytes) in files {
        t.write(format!("{dir}/{rel}"), bytes);
    }
    t.join(dir)
}

/// The digest (hex) an object file of a repository is named by.
fn hex(object: &Path) -> String {
    let name = object.file_name().unwrap().to_str().unwrap();
    name.split('.').next().unwrap().to_string()
}

/// Rehashes every object file in the cache: each must hash to its name. Returns the names.
#[track_caller]
fn verified_cache(cache: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let top = cache.join("objects");
    let Ok(dirs) = fs::read_dir(&top) else {
        return names;
    };
    for d in dirs {
        let d = d.unwrap().path();
        for f in fs::read_dir(&d).unwrap_or_else(|e| panic!("read {d:?}: {e}")) {
            let f = f.unwrap();
            let p = f.path();
            let name = f.file_name().to_string_lossy().into_owned();
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("read {p:?}: {e}"));
            assert_eq!(
                Digest::of(&bytes).to_hex(),
                name,
                "{p:?} holds bytes that do not hash to its name"
            );
            names.insert(name);
        }
    }
    names
}

/// Asserts every cached object verifies, none of `bad` is among them, and no download is
/// left behind in `tmp/`.
#[track_caller]
fn assert_cache_clean(cache: &Path, bad: &[&str]) {
    let names = verified_cache(cache);
    for b in bad {
        assert!(
            !names.contains(*b),
            "the cache holds {b}, which was refused"
        );
    }
    let tmp = cache.join("tmp");
    wait_for(SOON, "the cache's tmp/ to be empty", || {
        let left: Vec<_> = fs::read_dir(&tmp)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
}

/// Asserts that `r` failed with EIO.
#[track_caller]
fn assert_eio<T: Debug>(r: io::Result<T>, what: &str) {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
        other => panic!("{what}: expected EIO, got {other:?}"),
    }
}

/// Asserts that `p` does not exist.
#[track_caller]
fn assert_absent(p: &Path) {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => panic!("{p:?} should not exist, got {other:?}"),
    }
}

/// Replaces the repository's index atomically (a new inode, so a new ETag).
fn serve_index(repo: &Repo, bytes: &[u8]) {
    let tmp = repo.dir().join(".tmp/index.json.test");
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, repo.dir().join(INDEX_FILE)).unwrap();
}

/// The index bytes on disk now.
fn index_bytes(repo: &Repo) -> Vec<u8> {
    fs::read(repo.dir().join(INDEX_FILE)).unwrap()
}

/// The repository's current secret key.
fn repo_secret(repo: &Repo) -> SecretKey {
    SecretKey::read_file(&repo.key().path).unwrap()
}

/// An index of `body`, signed by `key`.
fn signed(body: IndexBody, key: &SecretKey) -> Vec<u8> {
    IndexDoc::sign(body, key).encode()
}

fn key_id(public: &str) -> String {
    PublicKey::parse(public).unwrap().id().to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `storkctl refresh` (as root); returns the outcome.
fn refresh(m: &Mount) -> harness::Outcome {
    m.ctl().arg("refresh").run()
}

/// `storkctl refresh`, which must accept a new index.
#[track_caller]
fn refresh_ok(m: &Mount) {
    let o = refresh(m);
    assert!(o.status.success(), "refresh failed\n{o}\n{}", m.log());
}

/// `storkctl refresh`, which must refuse; returns its stderr.
#[track_caller]
fn refresh_refused(m: &Mount) -> String {
    let o = refresh(m);
    o.assert_clean_failure();
    o.stderr
}

/// The refused entry for `name` `version` in a status.
#[track_caller]
fn refusal(status: &Value, name: &str, version: &str) -> Value {
    status["packages"]["refused"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|r| r["name"] == name && r["version"] == version)
                .cloned()
        })
        .unwrap_or_else(|| panic!("{name} {version} is not listed as refused in {status:#}"))
}

/// Asserts `name` `version` is listed as refused for `attack`, with a reason holding every
/// needle, in both `/.stork/status` and `storkctl status --json`.
#[track_caller]
fn assert_refused(m: &Mount, name: &str, version: &str, attack: &str, needles: &[&str]) {
    let ctl: Value = serde_json::from_str(&m.ctl().args(["status", "--json"]).ok()).unwrap();
    for status in [m.status(), ctl] {
        let r = refusal(&status, name, version);
        assert_eq!(r["attack"], attack, "{r:#}");
        assert_contains(r["reason"].as_str().unwrap(), needles);
    }
}

/// Whether the log has a line naming `attack` and holding every needle.
#[track_caller]
fn assert_logged(m: &Mount, attack: &str, needles: &[&str]) {
    let log = m.log();
    let found = log.lines().any(|l| {
        (l.contains(&format!("attack=\"{attack}\"")) || l.contains(&format!("attack={attack}")))
            && needles.iter().all(|n| l.contains(n))
    });
    assert!(
        found,
        "no log line with attack={attack} and {needles:?} in:\n{log}"
    );
}

/// The daemon's resident memory, in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

fn readlink(p: &Path) -> String {
    fs::read_link(p)
        .unwrap_or_else(|e| panic!("readlink {p:?}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// A repository with `foo 1.0` by alice (trusted for `foo*`), published.
struct Fixture {
    t: TestDir,
    repo: Repo,
    alice: Publisher,
}

const FOO_1: &[(&str, &[u8])] = &[
    ("README", b"foo 1.0, the genuine one\n"),
    ("lib/data", b"genuine data of foo 1.0\n"),
];
const FOO_2: &[(&str, &[u8])] = &[
    ("README", b"foo 2.0, the genuine one\n"),
    ("lib/data", b"genuine data of foo 2.0\n"),
];

impl Fixture {
    fn new() -> Fixture {
        let t = TestDir::new();
        let repo = Repo::new(t.join("repo"));
        let alice = repo.publisher("alice");
        let src = tree(&t, "foo-1.0", FOO_1);
        repo.add(&alice, "foo", "1.0", &src, &[]);
        repo.publish();
        Fixture { t, repo, alice }
    }

    fn add_foo_2(&self) {
        let src = tree(&self.t, "foo-2.0", FOO_2);
        self.repo.add(&self.alice, "foo", "2.0", &src, &[]);
    }

    fn trust(&self) -> String {
        self.repo.trust_toml(&[(&self.alice, &["foo*"])])
    }
}

// ---------------------------------------------------------------------------------------
// Tampering

#[test]
fn tampered_content_from_the_origin_is_refused_and_a_good_mirror_serves_it() {
    let f = Fixture::new();
    let object = hex(&f.repo.object_for("foo", "1.0", "lib/data"));
    let origin = Origin::serve(f.repo.dir());
    let mirror = Origin::serve(f.repo.dir());
    origin.corrupt(object.as_str());
    let m = Mount::new(&origin.url(), &f.trust())
        .option(&format!("mirrors={}", mirror.url()))
        .start();
    assert_eq!(
        fs::read(m.path("foo/1.0/lib/data")).unwrap(),
        FOO_1[1].1,
        "the mirror's good copy is served"
    );
    assert!(
        origin.requests(object.as_str()) >= 1,
        "{}",
        origin.describe()
    );
    assert!(
        mirror.requests(object.as_str()) >= 1,
        "{}",
        mirror.describe()
    );
    assert_logged(
        &m,
        "tampering",
        &["foo", "1.0", "lib/data", &origin.url(), "hash mismatch"],
    );
    assert!(m.status()["fetches"]["refused"].as_u64().unwrap() >= 1);
    let cached = verified_cache(m.cache_dir());
    assert!(cached.contains(&object), "the verified copy is cached");
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn tampered_content_from_every_source_gives_eio_and_stores_nothing() {
    let f = Fixture::new();
    let object = hex(&f.repo.object_for("foo", "1.0", "lib/data"));
    let origin = Origin::serve(f.repo.dir());
    let mirror = Origin::serve(f.repo.dir());
    origin.corrupt(object.as_str());
    mirror.corrupt(object.as_str());
    let m = Mount::new(&origin.url(), &f.trust())
        .option(&format!("mirrors={}", mirror.url()))
        .option("timeout=5")
        .start();
    let start = Instant::now();
    assert_eio(
        fs::read(m.path("foo/1.0/lib/data")),
        "a file no source has good bytes of",
    );
    assert!(start.elapsed() < margin(Duration::from_secs(5)));
    assert_logged(&m, "tampering", &["lib/data", &origin.url()]);
    assert_logged(&m, "tampering", &["lib/data", &mirror.url()]);
    assert_cache_clean(m.cache_dir(), &[&object]);
    // The other file of the version is fine, and good bytes are served once a source has
    // them again: a refusal is not remembered as a verdict on the content.
    assert_eq!(fs::read(m.path("foo/1.0/README")).unwrap(), FOO_1[0].1);
    mirror.clear();
    assert_eq!(fs::read(m.path("foo/1.0/lib/data")).unwrap(), FOO_1[1].1);
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn tampered_manifest_gives_eio_and_stores_nothing() {
    let f = Fixture::new();
    let manifest = hex(&f.repo.manifest_object("foo", "1.0"));
    let origin = Origin::serve(f.repo.dir());
    origin.corrupt(manifest.as_str());
    let m = Mount::new(&origin.url(), &f.trust())
        .option("timeout=5")
        .start();
    // Listed by the index, but its tree cannot be had.
    assert!(m.path("foo").is_dir());
    assert_eio(
        fs::read_dir(m.path("foo/1.0")),
        "a version whose manifest is tampered",
    );
    assert_eio(fs::read(m.path("foo/1.0/README")), "a file of that version");
    assert_logged(&m, "tampering", &["foo", "(manifest)", &origin.url()]);
    assert_cache_clean(m.cache_dir(), &[&manifest]);
    origin.clear();
    assert_eq!(fs::read(m.path("foo/1.0/README")).unwrap(), FOO_1[0].1);
    assert!(verified_cache(m.cache_dir()).contains(&manifest));
}

#[test]
fn tampered_index_is_refused_by_a_fresh_and_a_running_node() {
    let f = Fixture::new();
    let genuine = index_bytes(&f.repo);
    // The attacker extends the expiry and adds a version without the repository key.
    let mut doc = f.repo.index();
    doc.signed.expires += 365 * 86400;
    doc.signed.version += 1;
    let tampered = doc.encode();
    serve_index(&f.repo, &tampered);
    let origin = Origin::serve(f.repo.dir());
    let repo_id = f.repo.key().public.clone();
    let o = Mount::new(&origin.url(), &f.trust()).start_fails();
    assert_contains(
        &o.stderr,
        &[
            "no cached index",
            "no valid signature by key",
            &key_id(&repo_id),
        ],
    );

    serve_index(&f.repo, &genuine);
    let m = Mount::new(&origin.url(), &f.trust()).start();
    let v = m.status()["index"]["version"].as_u64().unwrap();
    f.add_foo_2();
    f.repo.publish();
    let next = index_bytes(&f.repo);
    // The new index with one bit flipped in transit, then with its body changed after
    // signing: both refused, and the view stays as it was.
    origin.corrupt(INDEX_FILE);
    let e = refresh_refused(&m);
    assert_contains(&e, &[&format!("still serving index version {v}")]);
    origin.clear();
    let mut doc = IndexDoc::parse(&next).unwrap();
    doc.signed.expires += 1;
    serve_index(&f.repo, &doc.encode());
    let e = refresh_refused(&m);
    assert_contains(&e, &["no valid signature by key"]);
    assert_logged(&m, "tampering", &["no valid signature"]);
    assert_absent(&m.path("foo/2.0"));
    assert_eq!(m.status()["index"]["version"].as_u64(), Some(v));
    // The genuine index is taken.
    serve_index(&f.repo, &next);
    refresh_ok(&m);
    assert_eq!(fs::read(m.path("foo/2.0/README")).unwrap(), FOO_2[0].1);
    assert_cache_clean(m.cache_dir(), &[]);
}

// ---------------------------------------------------------------------------------------
// Rollback and freeze

#[test]
fn rollback_to_an_older_index_is_refused_even_after_a_restart() {
    let f = Fixture::new();
    let old = index_bytes(&f.repo);
    f.add_foo_2();
    let newest = f.repo.publish();
    let origin = Origin::serve(f.repo.dir());
    let mut m = Mount::new(&origin.url(), &f.trust()).start();
    assert_eq!(m.status()["index"]["version"].as_u64(), Some(newest));
    assert_eq!(readlink(&m.path("foo/current")), "2.0");

    // A mirror or a man in the middle replays the older, validly signed index.
    serve_index(&f.repo, &old);
    let e = refresh_refused(&m);
    let older = format!("older than version {newest}");
    assert_contains(
        &e,
        &[&older, &format!("still serving index version {newest}")],
    );
    assert_logged(&m, "rollback", &[&older]);
    assert_eq!(m.status()["index"]["version"].as_u64(), Some(newest));
    assert_eq!(fs::read(m.path("foo/2.0/README")).unwrap(), FOO_2[0].1);
    assert_eq!(readlink(&m.path("foo/current")), "2.0");

    // The highest version seen survives a restart on the same cache.
    m.unmount();
    m.restart();
    let e = refresh_refused(&m);
    assert_contains(&e, &[&older]);
    let s = m.status();
    assert_eq!(s["index"]["version"].as_u64(), Some(newest));
    assert_contains(s["index"]["last_error"].as_str().unwrap(), &[&older]);
    assert_eq!(fs::read(m.path("foo/2.0/lib/data")).unwrap(), FOO_2[1].1);
    assert_eq!(readlink(&m.path("foo/current")), "2.0");
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn freeze_an_expired_index_stops_a_fresh_mount() {
    let f = Fixture::new();
    f.repo.publish_expires(Duration::from_secs(1));
    let expires = f.repo.index().signed.expires;
    wait_until(SOON, "the index to expire", || now() >= expires);
    let origin = Origin::serve(f.repo.dir());
    let o = Mount::new(&origin.url(), &f.trust()).start_fails();
    assert_contains(
        &o.stderr,
        &[
            "no cached index",
            &format!("expired at {expires}"),
            "the repository must publish a fresh index",
        ],
    );
}

#[test]
fn freeze_an_index_expiring_while_mounted_keeps_serving_and_says_stale() {
    let f = Fixture::new();
    let ttl = Duration::from_secs(4);
    f.repo.publish_expires(ttl);
    let body = f.repo.index().signed;
    let origin = Origin::serve(f.repo.dir());
    let mut m = Mount::new(&origin.url(), &f.trust()).start();
    assert_eq!(fs::read(m.path("foo/1.0/README")).unwrap(), FOO_1[0].1);
    let s = m.status();
    assert_eq!(s["index"]["expires"].as_u64(), Some(body.expires));
    assert!(
        !s["index"]["stale"].as_bool().unwrap() || now() >= body.expires,
        "stale before expiry: {s:#}"
    );

    // The repository stops publishing (a frozen mirror keeps serving the same index).
    wait_until(margin(ttl), "the index to expire", || now() >= body.expires);
    // Unchanged (HTTP 304): no error to report, yet the index is stale by its expiry.
    refresh_ok(&m);
    let s = m.status();
    assert_eq!(s["index"]["stale"], true, "{s:#}");
    assert_eq!(s["index"]["last_error"], Value::Null, "{s:#}");
    // Served again in full, it is refused as new.
    serve_index(&f.repo, &index_bytes(&f.repo));
    let e = refresh_refused(&m);
    assert_contains(&e, &["expired at", "must publish a fresh index"]);
    assert_logged(&m, "freeze", &["expired at"]);
    for s in [
        m.status(),
        serde_json::from_str(&m.ctl().args(["status", "--json"]).ok()).unwrap(),
    ] {
        let i = &s["index"];
        assert_eq!(i["stale"], true, "{s:#}");
        assert_eq!(i["version"].as_u64(), Some(body.version));
        let age = i["age_seconds"].as_u64().unwrap();
        assert!(age >= ttl.as_secs(), "age {age} in {s:#}");
    }
    assert_contains(&m.ctl().arg("status").ok(), &["STALE"]);
    // Everything accepted keeps working: cached files, and files not read yet.
    assert_eq!(fs::read(m.path("foo/1.0/README")).unwrap(), FOO_1[0].1);
    assert_eq!(fs::read(m.path("foo/1.0/lib/data")).unwrap(), FOO_1[1].1);
    // A restart on the cache still mounts from the expired cached index, and says stale.
    m.unmount();
    m.restart();
    assert_eq!(m.status()["index"]["stale"], true);
    assert_eq!(fs::read(m.path("foo/1.0/lib/data")).unwrap(), FOO_1[1].1);
    assert_cache_clean(m.cache_dir(), &[]);
}

// ---------------------------------------------------------------------------------------
// Mix-and-match and dropped versions

#[test]
fn mix_and_match_a_changed_manifest_for_an_accepted_version_is_refused() {
    let f = Fixture::new();
    let genuine_manifest = f.repo.release("foo", "1.0").manifest.sha256;
    let origin = Origin::serve(f.repo.dir());
    let mut m = Mount::new(&origin.url(), &f.trust()).start();
    assert_eq!(fs::read(m.path("foo/1.0/README")).unwrap(), FOO_1[0].1);

    // Another foo 1.0, validly signed by the same publisher (a key used twice, or an old
    // build), is swapped into the repository under the same name and version.
    let other = Repo::new(f.t.join("other"));
    let swapped_src = tree(
        &f.t,
        "foo-1.0-swapped",
        &[("README", b"swapped\n"), ("lib/data", b"swapped data\n")],
    );
    other.add(&f.alice, "foo", "1.0", &swapped_src, &[]);
    let swapped = other.release("foo", "1.0");
    assert_ne!(swapped.manifest.sha256, genuine_manifest);
    let swapped_data = hex(&other.object_for("foo", "1.0", "lib/data"));
    Cmd::new("cp")
        .arg("-rn")
        .arg(other.dir().join("objects"))
        .arg(f.repo.dir())
        .ok();
    fs::copy(
        other.dir().join("releases/foo/1.0.json"),
        f.repo.dir().join("releases/foo/1.0.json"),
    )
    .unwrap();
    assert_eq!(f.repo.release("foo", "1.0"), swapped);
    let v = f.repo.publish();
    refresh_ok(&m);
    assert_eq!(m.status()["index"]["version"].as_u64(), Some(v));
    assert_refused(
        &m,
        "foo",
        "1.0",
        "mix-and-match",
        &[
            &swapped.manifest.sha256.to_hex(),
            &genuine_manifest.to_hex(),
            "keeping the accepted one",
        ],
    );
    assert_logged(&m, "mix-and-match", &["foo", "1.0"]);
    // The accepted version is kept, including files never read before.
    assert_eq!(fs::read(m.path("foo/1.0/lib/data")).unwrap(), FOO_1[1].1);
    m.unmount();
    m.restart();
    assert_eq!(fs::read(m.path("foo/1.0/lib/data")).unwrap(), FOO_1[1].1);
    assert_eq!(fs::read(m.path("foo/1.0/README")).unwrap(), FOO_1[0].1);
    assert_cache_clean(
        m.cache_dir(),
        &[&swapped.manifest.sha256.to_hex(), &swapped_data],
    );
}

#[test]
fn mix_and_match_the_same_index_version_with_other_content_is_refused() {
    let f = Fixture::new();
    let origin = Origin::serve(f.repo.dir());
    let m = Mount::new(&origin.url(), &f.trust()).start();
    let seen = f.repo.index();
    // The repository key signs a second, different index under the same version number
    // (say, two publishers racing, or a compromised server mixing two lists).
    f.add_foo_2();
    f.repo.publish();
    let mut body = f.repo.index().signed;
    body.version = seen.signed.version;
    serve_index(&f.repo, &signed(body, &repo_secret(&f.repo)));
    let e = refresh_refused(&m);
    assert_contains(
        &e,
        &[&format!(
            "index version {v} differs from the version {v} already seen",
            v = seen.signed.version
        )],
    );
    assert_logged(&m, "mix-and-match", &["differs"]);
    assert_absent(&m.path("foo/2.0"));
    assert_eq!(fs::read(m.path("foo/1.0/README")).unwrap(), FOO_1[0].1);
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn dropped_version_stays_and_current_does_not_move_back() {
    let f = Fixture::new();
    f.add_foo_2();
    f.repo.publish();
    let origin = Origin::serve(f.repo.dir());
    let mut m = Mount::new(&origin.url(), &f.trust()).start();
    assert_eq!(readlink(&m.path("foo/current")), "2.0");
    // The repository operator (or a mirror) drops foo 2.0 from a newer, validly signed
    // index, to push readers back to the older version.
    fs::remove_file(f.repo.dir().join("releases/foo/2.0.json")).unwrap();
    let v = f.repo.publish();
    assert!(f
        .repo
        .index()
        .signed
        .packages
        .iter()
        .all(|r| r.version.as_str() != "2.0"));
    refresh_ok(&m);
    assert_eq!(m.status()["index"]["version"].as_u64(), Some(v));
    assert_eq!(readlink(&m.path("foo/current")), "2.0");
    assert_eq!(fs::read(m.path("foo/2.0/lib/data")).unwrap(), FOO_2[1].1);
    assert_contains(&m.ctl().arg("list").ok(), &["2.0"]);
    assert_logged(
        &m,
        "dropped-version",
        &[
            "foo",
            "2.0",
            "only a publisher-signed withdrawal removes a version",
        ],
    );
    m.unmount();
    m.restart();
    assert_eq!(readlink(&m.path("foo/current")), "2.0");
    assert_eq!(fs::read(m.path("foo/2.0/README")).unwrap(), FOO_2[0].1);
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn withdrawal_signed_by_the_publisher_removes_the_version() {
    let f = Fixture::new();
    f.add_foo_2();
    f.repo.publish();
    let origin = Origin::serve(f.repo.dir());
    let m = Mount::new(&origin.url(), &f.trust()).start();
    assert_eq!(readlink(&m.path("foo/current")), "2.0");
    f.repo.withdraw(&f.alice, "foo", "2.0");
    f.repo.publish();
    refresh_ok(&m);
    assert_absent(&m.path("foo/2.0"));
    assert_eq!(readlink(&m.path("foo/current")), "1.0");
    assert!(!m.ctl().arg("list").ok().contains("2.0"));
    assert!(
        m.log()
            .lines()
            .any(|l| l.contains("version withdrawn by its publisher")
                && l.contains("foo")
                && l.contains("2.0")
                && l.contains("alice")),
        "{}",
        m.log()
    );
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn withdrawal_signed_by_an_untrusted_key_is_ignored() {
    let f = Fixture::new();
    f.add_foo_2();
    let bob = f.repo.publisher("bob");
    let bar = tree(&f.t, "bar", &[("bar.txt", b"bar\n")]);
    f.repo.add(&bob, "bar", "1.0", &bar, &[]);
    f.repo.publish();
    let origin = Origin::serve(f.repo.dir());
    let trust = f
        .repo
        .trust_toml(&[(&f.alice, &["foo*"]), (&bob, &["bar*"])]);
    let m = Mount::new(&origin.url(), &trust).start();
    assert_eq!(readlink(&m.path("foo/current")), "2.0");
    // A key the node does not know, then a trusted publisher outside its patterns.
    let mallory = f.repo.publisher("mallory");
    for (who, id) in [
        (&mallory, key_id(&mallory.public)),
        (&bob, key_id(&bob.public)),
    ] {
        f.repo.withdraw(who, "foo", "2.0");
        f.repo.publish();
        assert_eq!(f.repo.index().signed.withdrawn.len(), 1);
        refresh_ok(&m);
        assert_logged(&m, "untrusted-signer", &["ignoring a withdrawal", &id]);
        assert_eq!(readlink(&m.path("foo/current")), "2.0");
        assert_eq!(fs::read(m.path("foo/2.0/README")).unwrap(), FOO_2[0].1);
    }
    assert!(!m.log().contains("version withdrawn by its publisher"));
    assert_cache_clean(m.cache_dir(), &[]);
}

// ---------------------------------------------------------------------------------------
// Endless data and slow retrieval

#[test]
fn endless_data_for_an_object_is_cut_off_and_nothing_is_stored() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let src = t.join("blobs");
    t.write("blobs/a.bin", fixtures::pseudo_random(1, 200_000));
    t.write("blobs/b.bin", fixtures::pseudo_random(2, 3_000_000));
    repo.add(&alice, "blobs", "1.0", &src, &[]);
    repo.publish();
    let a = hex(&repo.object_for("blobs", "1.0", "a.bin"));
    let b = hex(&repo.object_for("blobs", "1.0", "b.bin"));
    let origin = Origin::serve(repo.dir());
    // No length, and a lying 1 TiB length: both must stop at the signed size.
    origin.endless(a.as_str());
    origin.endless_lying_length(b.as_str());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option("timeout=10")
        .start();
    assert!(m.path("blobs/1.0/a.bin").is_file());
    let rss_before = vm_rss_kib(m.pid());
    let start = Instant::now();
    assert_eio(fs::read(m.path("blobs/1.0/a.bin")), "an endless object");
    let mut f = fs::File::open(m.path("blobs/1.0/b.bin")).unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eio(
        std::io::Read::read(&mut f, &mut buf),
        "a chunk under a lying length",
    );
    assert!(
        start.elapsed() < margin(Duration::from_secs(10)),
        "cut off late: {:?}",
        start.elapsed()
    );
    let rss_after = vm_rss_kib(m.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "daemon RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // The connection was dropped soon after the signed size (socket buffers aside), not
    // read on and on.
    assert!(
        origin.bytes_sent() < 64 << 20,
        "{} bytes sent",
        origin.bytes_sent()
    );
    assert_logged(&m, "endless-data", &["a.bin"]);
    assert_cache_clean(m.cache_dir(), &[&a, &b]);
}

#[test]
fn endless_data_for_the_index_is_cut_off_and_the_view_is_kept() {
    let f = Fixture::new();
    let origin = Origin::serve(f.repo.dir());
    let m = Mount::new(&origin.url(), &f.trust()).start();
    let v = m.status()["index"]["version"].as_u64().unwrap();
    let rss_before = vm_rss_kib(m.pid());
    let cap = policy::index::MAX_INDEX_BYTES.to_string();
    for lying in [false, true] {
        // A new ETag, so that the node does ask for the body.
        serve_index(&f.repo, &index_bytes(&f.repo));
        let rule = if lying {
            origin.endless_lying_length(INDEX_FILE)
        } else {
            origin.endless(INDEX_FILE)
        };
        let e = refresh_refused(&m);
        assert_contains(&e, &[&cap, &format!("still serving index version {v}")]);
        origin.remove(rule);
    }
    let rss_after = vm_rss_kib(m.pid());
    assert!(
        rss_after < rss_before + 128 * 1024,
        "daemon RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_logged(&m, "endless-data", &["refused the index", &cap]);
    assert_eq!(m.status()["index"]["version"].as_u64(), Some(v));
    assert_eq!(fs::read(m.path("foo/1.0/README")).unwrap(), FOO_1[0].1);
    // A fresh node is not started by an endless index either.
    origin.endless(INDEX_FILE);
    let o = Mount::new(&origin.url(), &f.trust()).start_fails();
    assert_contains(&o.stderr, &["no cached index", &cap]);
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn slow_retrieval_from_the_origin_is_abandoned_for_a_good_mirror() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let size = 200_000;
    let content = fixtures::pseudo_random(7, size);
    t.write("slow/data.bin", &content);
    repo.add(&alice, "slow", "1.0", &t.join("slow"), &[]);
    repo.publish();
    let object = hex(&repo.object_for("slow", "1.0", "data.bin"));
    let origin = Origin::serve(repo.dir());
    let mirror = Origin::serve(repo.dir());
    // 1000 bytes/s: a steady trickle (never a stall) that would take 200 s.
    let bps = 1000;
    origin.trickle(object.as_str(), bps);
    let timeout = Duration::from_secs(30);
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option(&format!("mirrors={}", mirror.url()))
        .option(&format!("timeout={}", timeout.as_secs()))
        .start();
    assert!(m.path("slow/1.0/data.bin").is_file());
    let start = Instant::now();
    assert_eq!(fs::read(m.path("slow/1.0/data.bin")).unwrap(), content);
    let took = start.elapsed();
    let trickle = Duration::from_secs(size as u64 / bps);
    assert!(
        took < timeout && took < trickle / 4,
        "took {took:?} (timeout {timeout:?}, the trickle would take {trickle:?})"
    );
    assert!(
        origin.requests(object.as_str()) >= 1,
        "{}",
        origin.describe()
    );
    assert!(
        mirror.requests(object.as_str()) >= 1,
        "{}",
        mirror.describe()
    );
    let s = m.status();
    let src = s["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "origin")
        .unwrap()
        .clone();
    assert_contains(src["last_error"].as_str().unwrap_or(""), &["too slow"]);
    assert_logged(
        &m,
        "slow-retrieval",
        &["slow", "1.0", "data.bin", &origin.url(), "too slow"],
    );
    assert_cache_clean(m.cache_dir(), &[]);
}

// ---------------------------------------------------------------------------------------
// Who may sign what

#[test]
fn untrusted_signer_package_is_invisible_and_listed_as_refused() {
    let f = Fixture::new();
    let mallory = f.repo.publisher("mallory");
    let evil = tree(&f.t, "evil", &[("README", b"evil\n")]);
    f.repo.add(&mallory, "evil", "1.0", &evil, &[]);
    f.repo.add(&mallory, "foo", "9.0", &evil, &[]);
    f.repo.publish();
    let evil_manifest = f.repo.release("evil", "1.0").manifest.sha256.to_hex();
    let origin = Origin::serve(f.repo.dir());
    let m = Mount::new(&origin.url(), &f.trust()).start();
    assert_absent(&m.path("evil"));
    assert_absent(&m.path("foo/9.0"));
    assert_eq!(readlink(&m.path("foo/current")), "1.0");
    let names: Vec<String> = fs::read_dir(m.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.contains(&"evil".to_string()), "{names:?}");
    let id = key_id(&mallory.public);
    for (n, v) in [("evil", "1.0"), ("foo", "9.0")] {
        assert_refused(&m, n, v, "untrusted-signer", &[&id, "unknown keys"]);
        assert_logged(&m, "untrusted-signer", &[n, v, &id]);
    }
    assert_contains(&m.ctl().arg("status").ok(), &["REFUSED", "evil", &id]);
    assert!(!m.ctl().arg("list").ok().contains("evil"));
    assert_eq!(fs::read(m.path("foo/1.0/README")).unwrap(), FOO_1[0].1);
    assert_cache_clean(m.cache_dir(), &[&evil_manifest]);
}

#[test]
fn trusted_signer_outside_its_patterns_is_invisible() {
    let f = Fixture::new();
    let bob = f.repo.publisher("bob");
    let src = tree(&f.t, "bob", &[("README", b"by bob\n")]);
    f.repo.add(&bob, "bar", "1.0", &src, &[]);
    f.repo.add(&bob, "foo", "3.0", &src, &[]);
    f.repo.add(&bob, "foolish", "1.0", &src, &[]);
    f.repo.publish();
    let origin = Origin::serve(f.repo.dir());
    let trust = f
        .repo
        .trust_toml(&[(&f.alice, &["foo"]), (&bob, &["bar*", "baz"])]);
    let m = Mount::new(&origin.url(), &trust).start();
    assert_eq!(fs::read(m.path("bar/1.0/README")).unwrap(), b"by bob\n");
    assert_absent(&m.path("foo/3.0"));
    assert_absent(&m.path("foolish"));
    assert_eq!(readlink(&m.path("foo/current")), "1.0");
    let id = key_id(&bob.public);
    for (n, v) in [("foo", "3.0"), ("foolish", "1.0")] {
        assert_refused(
            &m,
            n,
            v,
            "untrusted-signer",
            &[&id, "(bob) may not sign", "bar*, baz"],
        );
        assert_logged(&m, "untrusted-signer", &[n, v, &id]);
    }
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn threshold_one_signature_of_two_is_not_enough_until_cosigned() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let (c1, c2, c3) = (
        repo.publisher("core-1"),
        repo.publisher("core-2"),
        repo.publisher("core-3"),
    );
    let src = tree(&t, "libz", &[("lib/libz.so", b"zlib\n")]);
    repo.add(&c1, "libz", "1.0", &src, &[]);
    repo.publish();
    let manifest = repo.release("libz", "1.0").manifest.sha256.to_hex();
    let trust = format!(
        "[repository]\nkey = \"{}\"\n\n[[publisher]]\nname = \"core\"\nkeys = [\"{}\", \"{}\", \"{}\"]\nthreshold = 2\npackages = [\"libz\"]\n",
        repo.key().public,
        c1.public,
        c2.public,
        c3.public
    );
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &trust).start();
    assert_absent(&m.path("libz"));
    assert_refused(
        &m,
        "libz",
        "1.0",
        "untrusted-signer",
        &[
            "core needs 2 signatures from its keys, found 1",
            "stork-repo sign",
        ],
    );
    assert_logged(&m, "untrusted-signer", &["libz", "needs 2 signatures"]);
    assert_cache_clean(m.cache_dir(), &[&manifest]);
    // The same key signing again is still one key.
    repo.sign(&c1, "libz", "1.0");
    repo.publish();
    refresh_ok(&m);
    assert_absent(&m.path("libz"));
    // A second key of the publisher co-signs.
    repo.sign(&c2, "libz", "1.0");
    repo.publish();
    refresh_ok(&m);
    assert_eq!(fs::read(m.path("libz/1.0/lib/libz.so")).unwrap(), b"zlib\n");
    assert!(m.status()["packages"]["refused"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn revoked_key_signs_nothing_even_what_was_accepted_before() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let old = repo.publisher("alice-old");
    let new = repo.publisher("alice-new");
    let v1 = tree(&t, "v1", &[("README", b"signed with the old key\n")]);
    let v2 = tree(&t, "v2", &[("README", b"signed with the new key\n")]);
    repo.add(&old, "foo", "1.0", &v1, &[]);
    repo.add(&new, "foo", "2.0", &v2, &[]);
    repo.publish();
    let trust = |revoked: &str| {
        format!(
            "{revoked}[repository]\nkey = \"{}\"\n\n[[publisher]]\nname = \"alice\"\nkeys = [\"{}\", \"{}\"]\npackages = [\"foo\", \"bar\"]\n",
            repo.key().public,
            old.public,
            new.public
        )
    };
    let origin = Origin::serve(repo.dir());
    let mut m = Mount::new(&origin.url(), &trust("")).start();
    assert_eq!(
        fs::read(m.path("foo/1.0/README")).unwrap(),
        b"signed with the old key\n"
    );
    // alice's old key leaks: the admin revokes it. What it signed goes, whenever it was
    // signed and even though this node accepted it before.
    m.unmount();
    fs::write(
        m.scratch().join("trust.toml"),
        trust(&format!("revoked = [\"{}\"]\n\n", old.public)),
    )
    .unwrap();
    m.restart();
    assert_absent(&m.path("foo/1.0"));
    assert_eq!(readlink(&m.path("foo/current")), "2.0");
    assert_eq!(
        fs::read(m.path("foo/2.0/README")).unwrap(),
        b"signed with the new key\n"
    );
    let id = key_id(&old.public);
    assert_refused(
        &m,
        "foo",
        "1.0",
        "revoked-key",
        &["signed by revoked key", &id],
    );
    // And what the thief signs next is refused too.
    let bar = tree(&t, "bar", &[("README", b"bar by the thief\n")]);
    repo.add(&old, "bar", "1.0", &bar, &[]);
    repo.publish();
    refresh_ok(&m);
    assert_absent(&m.path("bar"));
    assert_refused(&m, "bar", "1.0", "revoked-key", &[&id]);
    assert_logged(&m, "revoked-key", &["bar", &id]);
    assert_cache_clean(
        m.cache_dir(),
        &[&repo.release("bar", "1.0").manifest.sha256.to_hex()],
    );
}

// ---------------------------------------------------------------------------------------
// The repository key

#[test]
fn wrong_index_key_stops_a_fresh_mount_naming_both_keys() {
    let f = Fixture::new();
    let other = f.repo.keygen("another-repository");
    let trust = f.trust().replace(&f.repo.key().public, &other.public);
    assert_ne!(trust, f.trust());
    let origin = Origin::serve(f.repo.dir());
    let o = Mount::new(&origin.url(), &trust).start_fails();
    assert_contains(
        &o.stderr,
        &[
            "no cached index",
            &format!("signed by key {}", key_id(&f.repo.key().public)),
            &format!("this node trusts key {}", key_id(&other.public)),
            "check [repository] key in the trust file",
        ],
    );
}

#[test]
fn key_rotation_signed_by_the_trusted_key_is_followed() {
    let mut f = Fixture::new();
    let origin = Origin::serve(f.repo.dir());
    let mut m = Mount::new(&origin.url(), &f.trust()).start();
    let k1 = f.repo.key().clone();
    assert_eq!(m.status()["index"]["key"], key_id(&k1.public));
    f.repo.rotate();
    let k2 = f.repo.key().clone();
    f.add_foo_2();
    let v = f.repo.publish();
    refresh_ok(&m);
    assert_eq!(m.status()["index"]["version"].as_u64(), Some(v));
    assert_eq!(m.status()["index"]["key"], key_id(&k2.public));
    assert_eq!(fs::read(m.path("foo/2.0/README")).unwrap(), FOO_2[0].1);
    let log = m.log();
    assert!(
        log.lines().any(|l| l.contains("rotated")
            && l.contains(&key_id(&k1.public))
            && l.contains(&key_id(&k2.public))),
        "{log}"
    );
    // The old key no longer signs for this node, however high its version.
    let mut body = f.repo.index().signed;
    body.version += 100;
    body.rotations.clear();
    let k1_secret = SecretKey::read_file(&k1.path).unwrap();
    let current = index_bytes(&f.repo);
    serve_index(&f.repo, &signed(body, &k1_secret));
    let e = refresh_refused(&m);
    assert_contains(
        &e,
        &[
            &format!("signed by key {}", key_id(&k1.public)),
            &format!("trusts key {}", key_id(&k2.public)),
        ],
    );
    // The rotation is remembered across a restart.
    serve_index(&f.repo, &current);
    m.unmount();
    m.restart();
    refresh_ok(&m);
    assert_eq!(m.status()["index"]["key"], key_id(&k2.public));
    assert_eq!(fs::read(m.path("foo/2.0/lib/data")).unwrap(), FOO_2[1].1);
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn key_rotation_forged_by_another_key_is_refused() {
    let f = Fixture::new();
    let origin = Origin::serve(f.repo.dir());
    let m = Mount::new(&origin.url(), &f.trust()).start();
    let v = m.status()["index"]["version"].as_u64().unwrap();
    let k1 = PublicKey::parse(&f.repo.key().public).unwrap();
    let evil = SecretKey::read_file(&f.repo.keygen("evil").path).unwrap();
    // The attacker drops foo 1.0 and claims the trusted key handed over to its own.
    let mut body = f.repo.index().signed;
    body.version += 1;
    body.packages.clear();
    let mut forged = Rotation::sign(&evil, &evil.public());
    forged.from = k1;
    body.rotations.push(forged);
    serve_index(&f.repo, &signed(body.clone(), &evil));
    let e = refresh_refused(&m);
    let msg = format!(
        "key rotation from {} to {} is not validly signed by {}",
        k1.id(),
        evil.public().id(),
        k1.id()
    );
    assert_contains(&e, &[&msg]);
    assert_logged(&m, "tampering", &[&msg]);
    // Without any rotation, the unrelated key is just the wrong key.
    body.rotations.clear();
    serve_index(&f.repo, &signed(body, &evil));
    let e = refresh_refused(&m);
    assert_contains(
        &e,
        &[&format!(
            "signed by key {}, but this node trusts key {}",
            evil.public().id(),
            k1.id()
        )],
    );
    assert_logged(&m, "wrong-key", &[&evil.public().id().to_string()]);
    let s = m.status();
    assert_eq!(s["index"]["version"].as_u64(), Some(v));
    assert_eq!(s["index"]["key"], k1.id().to_string());
    assert_eq!(readlink(&m.path("foo/current")), "1.0");
    assert_eq!(fs::read(m.path("foo/1.0/README")).unwrap(), FOO_1[0].1);
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn fast_forward_by_a_stolen_key_is_undone_by_a_rotation() {
    let mut f = Fixture::new();
    let origin = Origin::serve(f.repo.dir());
    let m = Mount::new(&origin.url(), &f.trust()).start();
    let legit = index_bytes(&f.repo);
    // A thief with the repository key pushes the version number far ahead.
    let mut body = f.repo.index().signed;
    body.version = 1_000_000;
    serve_index(&f.repo, &signed(body, &repo_secret(&f.repo)));
    refresh_ok(&m);
    assert_eq!(m.status()["index"]["version"].as_u64(), Some(1_000_000));
    // The real repository's next index now looks like a rollback: the node is stuck.
    serve_index(&f.repo, &legit);
    f.add_foo_2();
    let stuck = f.repo.publish();
    let e = refresh_refused(&m);
    assert_contains(
        &e,
        &[&format!(
            "index version {stuck} is older than version 1000000"
        )],
    );
    assert_absent(&m.path("foo/2.0"));
    // The repository rotates to a new key: the floor, bound to the old key, resets, and
    // the much lower version is accepted.
    let old = f.repo.rotate();
    let v = f.repo.index_version();
    assert!(v < 1_000_000);
    refresh_ok(&m);
    let s = m.status();
    assert_eq!(s["index"]["version"].as_u64(), Some(v));
    assert_eq!(s["index"]["key"], key_id(&f.repo.key().public));
    assert_eq!(fs::read(m.path("foo/2.0/README")).unwrap(), FOO_2[0].1);
    assert!(
        m.log()
            .lines()
            .any(|l| l.contains("resetting the version floor") && l.contains(&key_id(&old.public))),
        "{}",
        m.log()
    );
    assert_cache_clean(m.cache_dir(), &[]);
}

// ---------------------------------------------------------------------------------------
// Wrong software and privilege

#[test]
fn wrong_software_a_signed_manifest_listed_under_another_name_is_refused() {
    let f = Fixture::new();
    let src = tree(&f.t, "foolib", &[("README", b"foolib 1.0\n")]);
    let trust = f.repo.trust_toml(&[(&f.alice, &["foo*"])]);
    f.repo.add(&f.alice, "foolib", "1.0", &src, &[]);
    f.repo.publish();
    // The index lists foolib's validly signed manifest (the signature covers only its
    // digest) as foo 1.5 and as foolib 2.0.
    let foolib = f.repo.release("foolib", "1.0");
    let mut body = f.repo.index().signed;
    let mut as_foo = foolib.clone();
    as_foo.name = policy::PackageName::new("foo").unwrap();
    as_foo.version = policy::Version::new("1.5").unwrap();
    let mut as_2 = foolib.clone();
    as_2.version = policy::Version::new("2.0").unwrap();
    body.packages.push(as_foo);
    body.packages.push(as_2);
    body.version += 1;
    serve_index(&f.repo, &signed(body, &repo_secret(&f.repo)));
    let origin = Origin::serve(f.repo.dir());
    let m = Mount::new(&origin.url(), &trust).start();
    // Manifests load in the background once the index is accepted; wait for the verdicts.
    wait_for(SOON, "both listings to be refused", || {
        let s = m.status();
        let r = s["packages"]["refused"].as_array().unwrap();
        if r.len() >= 2 {
            Ok(())
        } else {
            Err(format!("{s:#}"))
        }
    });
    assert_refused(
        &m,
        "foo",
        "1.5",
        "wrong-software",
        &["foo 1.5: the manifest is for foolib 1.0"],
    );
    assert_refused(
        &m,
        "foolib",
        "2.0",
        "wrong-software",
        &["foolib 2.0: the manifest is for foolib 1.0"],
    );
    assert_logged(&m, "wrong-software", &["foo", "1.5"]);
    assert_absent(&m.path("foo/1.5"));
    assert_absent(&m.path("foolib/2.0"));
    assert_eq!(readlink(&m.path("foo/current")), "1.0");
    assert_eq!(readlink(&m.path("foolib/current")), "1.0");
    assert_eq!(
        fs::read(m.path("foolib/1.0/README")).unwrap(),
        b"foolib 1.0\n"
    );
    assert_cache_clean(m.cache_dir(), &[]);
}

#[test]
fn privilege_setuid_and_setgid_bits_are_never_served() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let src = t.mkdir("priv");
    fs::copy("/usr/bin/id", src.join("id-setuid")).unwrap();
    t.chmod("priv/id-setuid", 0o4755);
    fs::copy("/usr/bin/id", src.join("id-setgid")).unwrap();
    t.chmod("priv/id-setgid", 0o6755);
    t.write("priv/shared/file", b"in a setgid directory\n");
    t.chmod("priv/shared", 0o2775);
    t.write("priv/sticky/file", b"in a sticky directory\n");
    t.chmod("priv/sticky", 0o1777);
    t.symlink("priv/link", "id-setuid");
    repo.add(&alice, "priv", "1.0", &src, &[]);
    repo.publish();
    // The fixture really carries the bits.
    let manifest = repo.manifest("priv", "1.0");
    let modes: Vec<u32> = manifest
        .entries
        .iter()
        .filter_map(|e| match e.node {
            policy::manifest::Node::File { mode, .. } | policy::manifest::Node::Dir { mode } => {
                Some(mode)
            }
            _ => None,
        })
        .collect();
    assert!(modes.iter().any(|m| m & 0o4000 != 0), "{modes:?}");
    assert!(modes.iter().any(|m| m & 0o2000 != 0), "{modes:?}");

    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    let opts = mount_options(m.root()).unwrap();
    for o in ["ro", "nosuid", "nodev"] {
        assert!(opts.split(',').any(|x| x == o), "{o} missing in {opts}");
    }
    let mode = |rel: &str| fs::symlink_metadata(m.path(rel)).unwrap().mode() & 0o7777;
    assert_eq!(mode("priv/1.0/id-setuid"), 0o755);
    assert_eq!(mode("priv/1.0/id-setgid"), 0o755);
    assert_eq!(mode("priv/1.0/shared"), 0o775);
    assert_eq!(
        mode("priv/1.0/sticky"),
        0o1777,
        "the sticky bit is harmless"
    );
    // Run as another user, the setuid-root program gains nothing.
    for prog in ["id-setuid", "id-setgid"] {
        let out = as_uid(4242).arg(m.path(&format!("priv/1.0/{prog}"))).ok();
        assert_eq!(out.trim(), "uid=4242 gid=4242 groups=4242", "{prog}");
    }
    // Only regular files, directories and symlinks exist, none with setuid or setgid.
    let mut seen = 0;
    let mut stack = vec![m.path("priv/1.0")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            assert!(
                ft.is_file() || ft.is_dir() || ft.is_symlink(),
                "{p:?} is {ft:?}"
            );
            assert_eq!(md.mode() & 0o6000, 0, "{p:?} mode {:o}", md.mode());
            if ft.is_dir() {
                stack.push(p);
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 7);
    let md = fs::metadata(m.path("priv/1.0/id-setuid")).unwrap();
    assert_eq!(md.permissions().mode() & 0o6000, 0);
    assert_cache_clean(m.cache_dir(), &[]);
}
