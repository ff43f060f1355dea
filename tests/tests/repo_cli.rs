//! `stork-repo` end to end: the built binary, real archives and .debs, real HTTP servers.
//!
//! Needs `cargo build --workspace` first (see the harness docs), and `tar`, `xz`, `zstd`,
//! `dpkg-deb`, `apt-get` (with a fetched package list), `curl` and `nginx`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::fixtures::{
    apt_download, build_deb, deb_field, hostile_tars, pseudo_random, python_subset, sample_tree,
    system_archives,
};
use harness::{assert_contains, assert_unchanged, curl, snapshot, Cmd, Nginx, Repo, TestDir};
use policy::index::IndexDoc;
use policy::manifest::{Manifest, Node};
use stork_cli::http::{CACHE_IMMUTABLE, CACHE_NO_CACHE};

/// A fresh repository in `t/repo`.
fn repo(t: &TestDir) -> Repo {
    Repo::new(t.join("repo"))
}

/// The path of an object file relative to the repository (as verify names it).
fn rel(repo: &Repo, p: &Path) -> String {
    p.strip_prefix(repo.dir()).unwrap().display().to_string()
}

fn flip_byte(p: &Path, at: usize) {
    let mut b = fs::read(p).unwrap();
    let at = at.min(b.len() - 1);
    b[at] ^= 0x01;
    fs::write(p, b).unwrap();
}

// ---------------------------------------------------------------------------------------
// keygen, init

#[test]
fn keygen_writes_a_private_key_pair_and_keys_must_stay_private() {
    let t = TestDir::new();
    let k = t.join("alice.key");
    let out = Cmd::bin("stork-repo")
        .arg("keygen")
        .arg("--out")
        .arg(&k)
        .ok();
    let public = out.trim();
    assert!(public.starts_with("ed25519:"), "{out}");
    assert_eq!(
        fs::read_to_string(t.join("alice.key.pub")).unwrap().trim(),
        public
    );
    let mode = fs::metadata(&k).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(fs::read_to_string(&k)
        .unwrap()
        .starts_with("ed25519-secret:"));

    // Never overwrites a key.
    let before = fs::read(&k).unwrap();
    let err = Cmd::bin("stork-repo")
        .arg("keygen")
        .arg("--out")
        .arg(&k)
        .fails();
    assert_contains(&err, &["alice.key"]);
    assert_eq!(fs::read(&k).unwrap(), before);

    // A secret others can read is refused wherever it is used, naming the fix.
    t.chmod("alice.key", 0o644);
    let err = Cmd::bin("stork-repo")
        .arg("init")
        .arg(t.join("r"))
        .arg("--key")
        .arg(&k)
        .fails();
    assert_contains(&err, &["chmod 600", "alice.key"]);
    assert!(!t.join("r").exists(), "init made {:?} anyway", t.join("r"));

    let r = repo(&t);
    let p = r.publisher("bob");
    fs::set_permissions(&p.key, fs::Permissions::from_mode(0o640)).unwrap();
    let src = t.write("src/f", "x");
    let before = snapshot(r.dir());
    let err = r
        .add_cmd(&p, "pkg", "1", src.parent().unwrap(), &[])
        .fails();
    assert_contains(&err, &["chmod 600"]);
    assert_unchanged(r.dir(), &before, "add with a readable key");
}

#[test]
fn init_makes_an_empty_signed_repository_and_refuses_a_non_empty_dir() {
    let t = TestDir::new();
    let r = repo(&t);
    for d in ["objects", "releases", "withdrawals"] {
        assert!(r.dir().join(d).is_dir(), "{d}");
    }
    let idx = r.index();
    assert_eq!(idx.signed.version, 1);
    assert!(idx.signed.packages.is_empty());
    assert_eq!(idx.signed.key.to_string(), r.key().public);
    assert_contains(&r.verify(), &["ok: index version 1, 0 package versions"]);

    // Into a non-empty directory: refused, nothing touched.
    t.write("full/keep.txt", "mine");
    let before = snapshot(&t.join("full"));
    let err = Cmd::bin("stork-repo")
        .arg("init")
        .arg(t.join("full"))
        .arg("--key")
        .arg(&r.key().path)
        .fails();
    assert_contains(&err, &["not empty"]);
    assert_unchanged(&t.join("full"), &before, "init into a non-empty dir");

    // Over an existing repository: refused too.
    let before = snapshot(r.dir());
    r.cmd("init").arg("--key").arg(&r.key().path).fails();
    assert_unchanged(r.dir(), &before, "init over a repository");
}

// ---------------------------------------------------------------------------------------
// add: every kind of source

#[test]
fn every_source_kind_gives_the_same_manifest() {
    let t = TestDir::new();
    let tree = sample_tree(&t.join("tree"));
    let mut sources = vec![tree.clone()];
    sources.extend(system_archives(&tree, t.path(), "sample"));
    let r = repo(&t);
    let alice = r.publisher("alice");

    let mut manifests: Vec<(String, Manifest)> = Vec::new();
    let mut objects_after = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let version = format!("1.{i}");
        let added = r.add(&alice, "sample", &version, src, &["libc6 (>= 2.36)"]);
        assert_eq!(added["files"], 7, "{added}");
        manifests.push((src.display().to_string(), r.manifest("sample", &version)));
        objects_after.push(r.object_paths().len());
    }

    // Identical apart from the version and the creation time.
    let (_, first) = &manifests[0];
    for (src, m) in &manifests[1..] {
        let mut m = m.clone();
        m.version = first.version.clone();
        m.created = first.created;
        assert_eq!(
            &m, first,
            "the manifest from {src} differs from the directory's"
        );
    }
    assert_eq!(first.depends, "libc6 (>= 2.36)");
    assert_eq!(first.publisher.to_string(), alice.public);

    // What the manifest says, entry by entry.
    let kinds: Vec<(String, String)> = first
        .entries
        .iter()
        .map(|e| {
            let k = match &e.node {
                Node::Dir { mode } => format!("dir {mode:o}"),
                Node::File { mode, size, .. } => format!("file {mode:o} {size}"),
                Node::Symlink { target } => format!("-> {target}"),
            };
            (e.path.as_str().to_string(), k)
        })
        .collect();
    let want = [
        ("bin", "dir 755"),
        ("bin/tool", "file 755 3000"),
        ("bin/tool-again", "file 755 3000"),
        ("etc", "dir 755"),
        ("etc/secret.conf", "file 600 12"),
        ("lib", "dir 755"),
        ("lib/libdemo.so", "-> libdemo.so.1"),
        ("lib/libdemo.so.1", "file 644 2500000"),
        ("share", "dir 755"),
        ("share/abs", "-> /usr/share/doc"),
        ("share/doc", "dir 755"),
        ("share/doc/COPY", "file 644 1100"),
        ("share/doc/README", "file 644 1100"),
        ("share/doc/empty", "file 644 0"),
        ("share/empty-dir", "dir 755"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(kinds, want);

    // The bytes come back whole from the objects.
    for f in [
        "bin/tool",
        "lib/libdemo.so.1",
        "share/doc/README",
        "share/doc/empty",
        "etc/secret.conf",
    ] {
        assert_eq!(
            r.file_bytes("sample", "1.0", f),
            fs::read(tree.join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(
        r.objects_for("sample", "1.0", "lib/libdemo.so.1").len(),
        3,
        "2.5 MB in 1 MiB chunks"
    );

    // Stored once: tool + 3 chunks + README (= COPY) + secret.conf, the empty file is no
    // object, plus the manifest; every later source only adds its own manifest.
    assert_eq!(objects_after[0], 7, "{:#?}", r.object_paths());
    let want: Vec<usize> = (0..sources.len()).map(|i| 7 + i).collect();
    assert_eq!(objects_after, want);

    assert_eq!(r.publish(), 2);
    assert_contains(&r.verify(), &["ok: index version 2, 5 package versions"]);
}

#[test]
fn hard_links_and_identical_files_are_stored_once() {
    let t = TestDir::new();
    let r = repo(&t);
    let alice = r.publisher("alice");
    let shared = pseudo_random(7, 300_000);

    // A hard link in a tar archive (GNU tar writes a link entry).
    t.write("a/shared.bin", &shared);
    t.hard_link("a/again.bin", "a/shared.bin");
    t.write("a/only-a", pseudo_random(8, 1000));
    let tar = t.join("a.tar");
    Cmd::new("tar")
        .arg("-C")
        .arg(t.join("a"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .ok();
    let listing = Cmd::new("tar").arg("-tvf").arg(&tar).ok();
    assert!(
        listing.contains("link to"),
        "no hard link in the archive:\n{listing}"
    );
    r.add(&alice, "a", "1", &tar, &[]);
    assert_eq!(
        r.object_for("a", "1", "shared.bin"),
        r.object_for("a", "1", "again.bin")
    );
    let after_a = r.object_paths().len();
    assert_eq!(
        after_a,
        3,
        "shared, only-a, manifest: {:#?}",
        r.object_paths()
    );

    // The same file in another package.
    t.write("b/copy-of-shared", &shared);
    t.write("b/only-b", pseudo_random(9, 1000));
    r.add(&alice, "b", "1", &t.join("b"), &[]);
    assert_eq!(
        r.object_for("a", "1", "shared.bin"),
        r.object_for("b", "1", "copy-of-shared")
    );
    assert_eq!(
        r.object_paths().len(),
        after_a + 2,
        "only-b and b's manifest"
    );
    r.publish();
    r.verify();
}

#[test]
fn a_deb_built_by_dpkg_deb_names_itself_and_brings_its_depends() {
    let t = TestDir::new();
    let r = repo(&t);
    let alice = r.publisher("alice");
    let depends = "libc6 (>= 2.36), python3 (>= 3.11~) | python3-minimal";
    let script = b"#!/bin/sh\necho demo\n";
    let deb = build_deb(
        t.path(),
        "stork-demo",
        "1.2-1",
        depends,
        &[
            ("usr/bin/stork-demo", script, 0o755),
            ("usr/share/doc/stork-demo/README", b"demo\n", 0o644),
        ],
    );
    let added = r.add(&alice, "", "", &deb, &[]);
    assert_eq!(added["name"], "stork-demo", "{added}");
    assert_eq!(added["version"], "1.2-1");
    let m = r.manifest("stork-demo", "1.2-1");
    assert_eq!(m.depends, depends);
    assert_eq!(m.relations().clauses.len(), 2);
    assert!(
        m.entries
            .iter()
            .all(|e| !e.path.as_str().starts_with("DEBIAN")),
        "{m:?}"
    );
    assert_eq!(
        r.file_bytes("stork-demo", "1.2-1", "usr/bin/stork-demo"),
        script
    );
    assert!(matches!(
        m.entries
            .iter()
            .find(|e| e.path.as_str() == "usr/bin/stork-demo")
            .unwrap()
            .node,
        Node::File { mode: 0o755, .. }
    ));

    // --depends overrides the control file; --name/--version override its fields.
    r.add(&alice, "renamed", "9", &deb, &["base-files"]);
    assert_eq!(r.manifest("renamed", "9").depends, "base-files");

    // The same .deb again: refused (name and version from the control file), unchanged.
    let before = snapshot(r.dir());
    let err = r.add_cmd(&alice, "", "", &deb, &[]).fails();
    assert_contains(&err, &["stork-demo 1.2-1 already exists"]);
    assert_unchanged(r.dir(), &before, "re-adding a .deb");

    r.publish();
    r.verify();
}

#[test]
fn a_deb_downloaded_with_apt_get() {
    let t = TestDir::new();
    let deb = apt_download("hello", &t.join("apt"));
    let r = repo(&t);
    let alice = r.publisher("alice");
    let added = r.add(&alice, "", "", &deb, &[]);
    let version = deb_field(&deb, "Version");
    assert_eq!(
        (added["name"].as_str(), added["version"].as_str()),
        (Some("hello"), Some(version.as_str()))
    );
    let m = r.manifest("hello", &version);
    assert_eq!(m.depends, deb_field(&deb, "Depends"));
    assert!(!m.depends.is_empty());

    // Every file is what dpkg-deb extracts.
    let x = t.join("extracted");
    Cmd::new("dpkg-deb").arg("-x").arg(&deb).arg(&x).ok();
    let mut files = 0;
    for e in &m.entries {
        let on_disk = x.join(e.path.as_str());
        let md = fs::symlink_metadata(&on_disk).unwrap_or_else(|err| panic!("{}: {err}", e.path));
        match &e.node {
            Node::File { mode, .. } => {
                files += 1;
                assert_eq!(
                    r.file_bytes("hello", &version, e.path.as_str()),
                    fs::read(&on_disk).unwrap()
                );
                assert_eq!(*mode, md.permissions().mode() & 0o7777, "{}", e.path);
            }
            Node::Dir { .. } => assert!(md.is_dir(), "{}", e.path),
            Node::Symlink { target } => {
                assert_eq!(
                    Path::new(target),
                    fs::read_link(&on_disk).unwrap(),
                    "{}",
                    e.path
                )
            }
        }
    }
    assert!(files > 5, "{files} files");
    r.publish();
    r.verify();
}

#[test]
fn a_real_python_library_round_trips() {
    let t = TestDir::new();
    let tree = python_subset(&t.join("py"), &["json", "email", "collections", "os.py"]);
    let tar = system_archives(&tree, t.path(), "py").remove(3);
    let r = repo(&t);
    let alice = r.publisher("alice");
    r.add(&alice, "python3-stdlib-part", "3.11", &tree, &["python3"]);
    r.add(
        &alice,
        "python3-stdlib-part",
        "3.11+zst",
        &tar,
        &["python3"],
    );
    let m = r.manifest("python3-stdlib-part", "3.11");
    let mut files = 0;
    for e in &m.entries {
        if let Node::File { .. } = e.node {
            files += 1;
            let want = fs::read(tree.join(e.path.as_str())).unwrap();
            assert_eq!(
                r.file_bytes("python3-stdlib-part", "3.11", e.path.as_str()),
                want,
                "{}",
                e.path
            );
        }
    }
    let on_disk = walk_files(&tree);
    assert_eq!(files, on_disk, "files in the manifest vs on disk");
    let mut z = r.manifest("python3-stdlib-part", "3.11+zst");
    z.version = m.version.clone();
    z.created = m.created;
    assert_eq!(
        z, m,
        "the .tar.zst gives another manifest than the directory"
    );
    r.publish();
    r.verify();
}

fn walk_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk_files(&e.path())
            } else {
                usize::from(ft.is_file())
            }
        })
        .sum()
}

// ---------------------------------------------------------------------------------------
// Refusals leave the repository unchanged

#[test]
fn hostile_archives_are_refused_and_change_nothing() {
    let t = TestDir::new();
    let r = repo(&t);
    let alice = r.publisher("alice");
    r.add(&alice, "existing", "1", &sample_tree(&t.join("tree")), &[]);
    r.publish();
    for h in hostile_tars() {
        let path = t.write(format!("hostile-{}.tar", h.entry.replace('/', "_")), &h.tar);
        let before = snapshot(r.dir());
        let err = r.add_cmd(&alice, "evil", "1", &path, &[]).fails();
        assert!(
            err.contains(&format!("{:?}", h.entry)),
            "{}: the refusal does not name entry {:?}:\n{err}",
            h.name,
            h.entry
        );
        assert_unchanged(r.dir(), &before, h.name);
        let spill: Vec<PathBuf> = fs::read_dir(r.spill_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            spill.is_empty(),
            "{}: spill files left behind: {spill:?}",
            h.name
        );
    }
    // A directory source holding a FIFO.
    t.write("with-fifo/ok.txt", "fine");
    Cmd::new("mkfifo").arg(t.join("with-fifo/pipe")).ok();
    let before = snapshot(r.dir());
    let err = r
        .add_cmd(&alice, "evil", "1", &t.join("with-fifo"), &[])
        .fails();
    assert_contains(&err, &["\"pipe\"", "FIFO"]);
    assert_unchanged(r.dir(), &before, "a directory with a FIFO");

    assert!(!Path::new("/etc/stork-evil").exists());
    assert!(!t.path().parent().unwrap().join("escaped").exists());
    r.verify();
}

#[test]
fn adding_an_existing_version_is_refused_and_changes_nothing() {
    let t = TestDir::new();
    let r = repo(&t);
    let alice = r.publisher("alice");
    t.write("v1/file", "one");
    t.write("v1b/file", "another one");
    r.add(&alice, "pkg", "1.0", &t.join("v1"), &[]);
    for publish in [false, true] {
        if publish {
            r.publish();
        }
        let before = snapshot(r.dir());
        let err = r.add_cmd(&alice, "pkg", "1.0", &t.join("v1b"), &[]).fails();
        assert_contains(&err, &["pkg 1.0 already exists", "new version"]);
        assert_unchanged(r.dir(), &before, "re-adding pkg 1.0");
    }
    assert_eq!(r.file_bytes("pkg", "1.0", "file"), b"one");
}

// ---------------------------------------------------------------------------------------
// verify catches tampering

/// A copy of a repository directory, verified with `stork-repo verify`.
fn verify_copy(src: &Path, t: &TestDir, name: &str, tamper: impl FnOnce(&Path)) -> String {
    let dst = t.join(name);
    Cmd::new("cp").arg("-a").arg(src).arg(&dst).ok();
    tamper(&dst);
    let o = Cmd::bin("stork-repo").arg("verify").arg(&dst).run();
    o.assert_clean_failure();
    o.both()
}

#[test]
fn verify_names_every_damaged_object() {
    let t = TestDir::new();
    let r = repo(&t);
    let alice = r.publisher("alice");
    r.add(&alice, "pkg", "1.0", &sample_tree(&t.join("tree")), &[]);
    r.publish();
    r.verify();
    let tool = r.object_for("pkg", "1.0", "bin/tool");
    let chunk = r.objects_for("pkg", "1.0", "lib/libdemo.so.1")[1].clone();
    let manifest = r.manifest_object("pkg", "1.0");
    assert!(
        tool.to_string_lossy().ends_with(".zst"),
        "{tool:?} should be stored compressed"
    );
    assert!(
        !chunk.to_string_lossy().ends_with(".zst"),
        "{chunk:?} should be stored plain"
    );

    let inside = |p: &Path, dst: &Path| dst.join(p.strip_prefix(r.dir()).unwrap());

    // A compressed content object.
    let out = verify_copy(r.dir(), &t, "t1", |d| flip_byte(&inside(&tool, d), 20));
    assert_contains(
        &out,
        &[
            &rel(&r, &tool),
            "pkg 1.0 bin/tool",
            "hash mismatch",
            "1 problem",
        ],
    );

    // A plain chunk.
    let out = verify_copy(r.dir(), &t, "t2", |d| flip_byte(&inside(&chunk, d), 12345));
    assert_contains(
        &out,
        &[
            &rel(&r, &chunk),
            "pkg 1.0 lib/libdemo.so.1 chunk 1",
            "hash mismatch",
        ],
    );

    // The manifest object.
    let out = verify_copy(r.dir(), &t, "t3", |d| flip_byte(&inside(&manifest, d), 30));
    assert_contains(
        &out,
        &[&rel(&r, &manifest), "manifest of pkg 1.0", "hash mismatch"],
    );

    // index.json: one byte inside the signed body (a digit of the expiry time), and one
    // that breaks the JSON.
    let idx = fs::read_to_string(r.dir().join("index.json")).unwrap();
    let at = idx.find("\"expires\":").unwrap() + "\"expires\":".len() + 3;
    let out = verify_copy(r.dir(), &t, "t4", |d| flip_byte(&d.join("index.json"), at));
    assert_contains(&out, &["index.json"]);
    let out = verify_copy(r.dir(), &t, "t5", |d| flip_byte(&d.join("index.json"), 0));
    assert_contains(&out, &["index.json"]);

    // A deleted object.
    let out = verify_copy(r.dir(), &t, "t6", |d| {
        fs::remove_file(inside(&tool, d)).unwrap()
    });
    assert_contains(&out, &[&rel(&r, &tool), "pkg 1.0 bin/tool", "cannot read"]);

    // The original is still fine.
    r.verify();
}

// ---------------------------------------------------------------------------------------
// publish

#[test]
fn publish_increments_the_version_and_sets_the_expiry() {
    let t = TestDir::new();
    let r = repo(&t);
    let alice = r.publisher("alice");
    assert_eq!(r.index_version(), 1);
    t.write("src/f", "x");
    r.add(&alice, "pkg", "1", &t.join("src"), &[]);
    // Not listed until published.
    assert!(r.index().signed.packages.is_empty());
    assert_eq!(r.publish(), 2);
    let b = r.index().signed;
    assert_eq!(b.packages.len(), 1);
    assert_eq!(b.expires - b.timestamp, 30 * 86400, "default expiry");
    assert_eq!(r.publish_expires(Duration::from_secs(3600)), 3);
    let b = r.index().signed;
    assert_eq!((b.version, b.expires - b.timestamp), (3, 3600));

    // Refused: a bad duration, a key that is not the repository's. Nothing changes.
    let before = snapshot(r.dir());
    let err = r
        .cmd("publish")
        .arg("--key")
        .arg(&r.key().path)
        .args(["--expires", "0s"])
        .fails();
    assert_contains(&err, &["duration"]);
    let err = r.cmd("publish").arg("--key").arg(&alice.key).fails();
    assert_contains(&err, &["signed by key", "repository key"]);
    assert_unchanged(r.dir(), &before, "refused publishes");
    r.verify();
}

#[test]
fn concurrent_publishers_are_serialised() {
    let t = TestDir::new();
    let r = repo(&t);
    let alice = r.publisher("alice");
    t.write("src/f", "x");
    r.add(&alice, "pkg", "1", &t.join("src"), &[]);
    let start = r.index_version();
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| r.publish_cmd(None).run()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut versions: Vec<u64> = outcomes
        .iter()
        .map(|o| {
            assert!(o.status.success(), "a concurrent publish failed\n{o}");
            serde_json::from_str::<serde_json::Value>(&o.stdout).unwrap()["version"]
                .as_u64()
                .unwrap()
        })
        .collect();
    versions.sort();
    assert_eq!(versions, ((start + 1)..=(start + 8)).collect::<Vec<_>>());
    assert_eq!(r.index_version(), start + 8);
    assert_contains(&r.verify(), &[&format!("index version {}", start + 8)]);
    let tmp: Vec<_> = fs::read_dir(r.dir().join(".tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "staging files left: {tmp:?}");
}

#[test]
fn a_reader_never_sees_a_partial_index() {
    let t = TestDir::new();
    let r = repo(&t);
    let alice = r.publisher("alice");
    // A few dozen package versions, so the index is several kilobytes.
    t.write("src/f", "x");
    for i in 0..20 {
        r.add(&alice, "pkg", &format!("1.{i}"), &t.join("src"), &[]);
    }
    r.publish();
    let stop = Arc::new(AtomicBool::new(false));
    let index = r.dir().join("index.json");
    let reader = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut reads, mut last) = (0u64, 0u64);
            loop {
                // One last read after the writers are done, to see the final version.
                let stopping = stop.load(Ordering::SeqCst);
                let bytes = fs::read(&index).unwrap();
                let doc = IndexDoc::parse(&bytes).unwrap_or_else(|e| {
                    panic!(
                        "read {} bytes of a partial index: {e}\n{}",
                        bytes.len(),
                        String::from_utf8_lossy(&bytes)
                    )
                });
                assert!(doc.signed.version >= last, "index version went back");
                last = doc.signed.version;
                reads += 1;
                if stopping {
                    break;
                }
            }
            (reads, last)
        })
    };
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let c: Vec<Cmd> = (0..10).map(|_| r.publish_cmd(None)).collect();
            std::thread::spawn(move || {
                for cmd in c {
                    cmd.ok();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let (reads, last) = reader.join().unwrap();
    assert_eq!(last, 22);
    assert!(reads >= 20, "only {reads} reads during 20 publishes");
}

#[test]
fn sign_withdraw_and_rotate() {
    let t = TestDir::new();
    let mut r = repo(&t);
    let (alice, bob) = (r.publisher("alice"), r.publisher("bob"));
    t.write("src/f", "x");
    r.add(&alice, "pkg", "1", &t.join("src"), &[]);
    r.add(&alice, "pkg", "2", &t.join("src"), &[]);
    r.sign(&bob, "pkg", "1");
    r.publish();
    let b = r.index().signed;
    let signers = |v: &str| {
        let rel = b.packages.iter().find(|p| p.version.as_str() == v).unwrap();
        rel.valid_signers()
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
    };
    let mut s1 = signers("1");
    s1.sort();
    let mut want = vec![alice.public.clone(), bob.public.clone()];
    want.sort();
    assert_eq!(s1, want);
    assert_eq!(signers("2"), vec![alice.public.clone()]);

    r.withdraw(&alice, "pkg", "1");
    r.publish();
    let b = r.index().signed;
    assert_eq!(
        b.packages
            .iter()
            .map(|p| p.version.as_str())
            .collect::<Vec<_>>(),
        ["2"]
    );
    assert_eq!(b.withdrawn.len(), 1);
    assert_eq!(b.withdrawn[0].valid_signers()[0].to_string(), alice.public);

    let v = r.index_version();
    let old = r.rotate();
    let b = r.index().signed;
    assert_eq!(b.version, v + 1);
    assert_eq!(b.key.to_string(), r.key().public);
    assert_eq!(b.rotations.len(), 1);
    assert_eq!(b.rotations[0].from.to_string(), old.public);
    r.verify();
    let err = r.cmd("publish").arg("--key").arg(&old.path).fails();
    assert_contains(&err, &["rotate"]);
    assert_eq!(r.publish(), v + 2);
    r.verify();

    // The trust file the harness writes is one policy accepts.
    let toml = r.trust_toml(&[(&alice, &["pkg*"]), (&bob, &["other"])]);
    let policy = policy::trust::TrustPolicy::parse("trust.toml", &toml)
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(policy.repository_key.to_string(), r.key().public);
    assert_eq!(policy.publishers.len(), 2);
}

// ---------------------------------------------------------------------------------------
// Serving over HTTP

/// A published repository with one package, for the HTTP tests.
fn served_repo(t: &TestDir) -> Repo {
    let r = repo(t);
    let alice = r.publisher("alice");
    r.add(&alice, "pkg", "1.0", &sample_tree(&t.join("tree")), &[]);
    r.publish();
    r
}

/// What any server of a repository must do: the right bytes and caching headers, ranges,
/// and never a file outside the repository or a hidden one.
fn check_http(r: &Repo, url: &str, what: &str) {
    let index = fs::read(r.dir().join("index.json")).unwrap();
    let got = curl(&format!("{url}index.json"), &[]);
    assert_eq!(got.status, 200, "{what}: index.json");
    assert_eq!(got.body, index, "{what}: index.json bytes");
    assert_eq!(
        got.header("Cache-Control"),
        Some(CACHE_NO_CACHE),
        "{what}: {got:?}"
    );

    let objects = r.object_paths();
    assert!(objects.len() > 3);
    for obj in &objects {
        let got = curl(&format!("{url}{}", rel(r, obj)), &[]);
        assert_eq!(got.status, 200, "{what}: {obj:?}");
        assert_eq!(got.body, fs::read(obj).unwrap(), "{what}: {obj:?} bytes");
        assert_eq!(
            got.header("Cache-Control"),
            Some(CACHE_IMMUTABLE),
            "{what}: {got:?}"
        );
    }

    // A range of the biggest object.
    let big = objects
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let bytes = fs::read(big).unwrap();
    let got = curl(&format!("{url}{}", rel(r, big)), &["-r", "1000-1999"]);
    assert_eq!(got.status, 206, "{what}: range");
    assert_eq!(got.body, bytes[1000..2000], "{what}: range bytes");
    assert_eq!(
        got.header("Content-Range"),
        Some(format!("bytes 1000-1999/{}", bytes.len()).as_str()),
        "{what}"
    );

    // Escapes and hidden files.
    for (path, how) in [
        ("../../../etc/passwd", "--path-as-is"),
        ("objects/../../../../etc/passwd", "--path-as-is"),
        ("objects/..%2f..%2fetc/passwd", "--path-as-is"),
        ("objects/..%2f..%2f..%2f..%2fetc/passwd", "--path-as-is"),
        ("%2e%2e/%2e%2e/etc/passwd", "--path-as-is"),
        (".lock", "--path-as-is"),
        (".tmp/", "--path-as-is"),
    ] {
        let got = curl(&format!("{url}{path}"), &[how]);
        assert!(
            matches!(got.status, 400 | 403 | 404),
            "{what}: /{path} answered {}: {}",
            got.status,
            got.text()
        );
        assert!(
            !got.text().contains("root:x:0:0"),
            "{what}: /{path} served /etc/passwd"
        );
    }
}

#[test]
fn stork_repo_serve() {
    let t = TestDir::new();
    let r = served_repo(&t);
    let (mut server, url) = r.serve();
    check_http(&r, &url, "stork-repo serve");
    // The escape attempts were answered by the server itself, which is still up.
    server.assert_running();
    assert_eq!(curl(&format!("{url}index.json"), &[]).status, 200);
}

#[test]
fn nginx_serves_a_repository_the_same_way() {
    let t = TestDir::new();
    let r = served_repo(&t);
    let mut nginx = Nginx::serve(r.dir());
    let url = nginx.url();
    check_http(&r, &url, "nginx");
    let log = nginx.access_log();
    assert!(log.contains("GET /index.json"), "{}", nginx.describe());
}

#[test]
fn sign_and_withdraw_need_an_existing_name_at_version_and_change_nothing_otherwise() {
    let t = TestDir::new();
    let r = repo(&t);
    let alice = r.publisher("alice");
    let bob = r.publisher("bob");
    let src = t.mkdir("src");
    t.write("src/f", b"x");
    r.add(&alice, "p", "1.0", &src, &[]);
    let before = snapshot(r.dir());
    for (sub, verb) in [("sign", "co-sign"), ("withdraw", "withdraw")] {
        let e = r.cmd(sub).arg("--key").arg(&bob.key).arg("p").fails();
        assert_contains(&e, &[&format!("give the version to {verb}: p@VERSION")]);
        let e = r.cmd(sub).arg("--key").arg(&bob.key).arg("p@9.9").fails();
        assert_contains(&e, &["p 9.9 is not in", "add it first"]);
        assert_unchanged(r.dir(), &before, sub);
    }
    // The existing version: a co-signature is added, a withdrawal recorded.
    r.cmd("sign").arg("--key").arg(&bob.key).arg("p@1.0").ok();
    r.cmd("withdraw")
        .arg("--key")
        .arg(&alice.key)
        .arg("p@1.0")
        .ok();
    assert!(r.dir().join("withdrawals/p/1.0.json").is_file());
    r.publish();
    assert_eq!(r.index().signed.withdrawn.len(), 1);
}
