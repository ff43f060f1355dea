//! Guarantee 1: no unverified byte is ever served or stored.
//!
//! Bytes changed on the server (on the wire, or in the repository's files), cut short,
//! or endless: the read gives EIO, the neighbours read fine, the refusal is logged once
//! with package, version, path, URL and both digests, and every object file in the
//! cache still hashes to its name, with none of the bad bytes among them.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use harness::{
    assert_contains, cache_holds_bytes, cache_objects, cache_tmp_files, fixtures, wait_for, Mount,
    Origin, Publisher, Repo, TestDir, SOON,
};
use policy::manifest::{FileData, Node};
use policy::Digest;

const CHUNK: u64 = 1 << 20;

/// The source tree of package `app` 1.0: small random files (stored plain), compressible
/// text (stored zstd), and a 2.5 MiB file (three chunks).
fn app_tree(t: &TestDir) -> PathBuf {
    for (i, name) in [
        "bad.bin",
        "good.bin",
        "trunc.bin",
        "endless.bin",
        "lying.bin",
    ]
    .iter()
    .enumerate()
    {
        t.write(
            format!("app/{name}"),
            fixtures::pseudo_random(100 + i as u64, 20_000 + i * 1000),
        );
    }
    t.write(
        "app/doc/text.txt",
        "Compressible text, stored as zstd by stork-repo.\n".repeat(1000),
    );
    t.write("app/doc/other.txt", "Another text file.\n".repeat(1000));
    t.write(
        "app/lib/big.so",
        fixtures::pseudo_random(7, (2 * CHUNK + CHUNK / 2) as usize),
    );
    t.join("app")
}

fn published(t: &TestDir) -> (Repo, Publisher, PathBuf) {
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let src = app_tree(t);
    repo.add(&alice, "app", "1.0", &src, &[]);
    t.write("other/readme.txt", b"a neighbour package\n");
    repo.add(&alice, "other", "1.0", &t.join("other"), &[]);
    repo.publish();
    (repo, alice, src)
}

/// The request path of an object file of the repository.
fn url_path(repo: &Repo, object: &Path) -> String {
    format!("/{}", object.strip_prefix(repo.dir()).unwrap().display())
}

/// The plain digest of file `path` of app 1.0, as the manifest signs it.
fn file_digest(repo: &Repo, path: &str) -> Digest {
    let m = repo.manifest("app", "1.0");
    let e = m.entries.iter().find(|e| e.path.as_str() == path).unwrap();
    match &e.node {
        Node::File { sha256, .. } => *sha256,
        n => panic!("{path} is not a file: {n:?}"),
    }
}

#[track_caller]
fn assert_eio<T>(what: &str, r: io::Result<T>) {
    match r {
        Ok(_) => panic!("{what}: read succeeded; expected EIO"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{what}: {e}"),
    }
}

/// Every file of `src` except those in `skip` reads back identical through `root`.
#[track_caller]
fn neighbours_read_fine(src: &Path, root: &Path, skip: &[&str]) {
    let mut n = 0;
    for (rel, want) in files_of(src) {
        if skip.contains(&rel.as_str()) {
            continue;
        }
        let got = fs::read(root.join(&rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"));
        assert!(got == want, "{rel}: wrong bytes");
        n += 1;
    }
    assert!(n >= 3, "only {n} neighbours");
}

fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Nothing unverified in the cache: every object hashes to its name, no download is
/// left in tmp/, and `absent` digests are not there.
#[track_caller]
fn assert_cache_clean(m: &Mount, absent: &[Digest]) {
    let objects = cache_objects(m.cache_dir());
    assert!(!objects.is_empty(), "the cache holds no objects at all");
    for d in absent {
        assert!(
            !objects.contains_key(d),
            "{d} (refused) is in the cache: {objects:?}"
        );
    }
    wait_for(SOON, "no download left in the cache's tmp/", || {
        let left = cache_tmp_files(m.cache_dir());
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
}

/// The log lines that mention `needle`.
fn lines_with(log: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_file_changed_on_the_wire_gives_eio_and_is_never_stored() {
    let t = TestDir::new();
    let (repo, alice, src) = published(&t);
    let origin = Origin::serve(repo.dir());
    let object = repo.object_for("app", "1.0", "bad.bin");
    let stored = fs::read(&object).unwrap();
    let mut tampered = stored.clone();
    tampered[stored.len() / 2] ^= 0x01; // what Origin::corrupt sends
    origin.corrupt(url_path(&repo, &object).as_str());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();

    assert_eio("app/1.0/bad.bin", fs::read(m.path("app/1.0/bad.bin")));
    neighbours_read_fine(&src, &m.path("app/1.0"), &["bad.bin"]);
    assert_eq!(
        fs::read(m.path("other/1.0/readme.txt")).unwrap(),
        b"a neighbour package\n"
    );

    // One line says what, where from, and both digests.
    let log = m.log();
    let expected = file_digest(&repo, "bad.bin");
    let refusals: Vec<String> = lines_with(&log, "hash mismatch")
        .into_iter()
        .filter(|l| l.contains("attack="))
        .collect();
    assert_eq!(refusals.len(), 1, "expected one refusal line:\n{log}");
    let url = format!(
        "{}{}",
        origin.url().trim_end_matches('/'),
        url_path(&repo, &object)
    );
    assert_contains(
        &refusals[0],
        &[
            "app",
            "1.0",
            "bad.bin",
            &url,
            &expected.to_hex(),
            &Digest::of(&tampered).to_hex(),
            "tampering",
        ],
    );
    assert!(m.status()["fetches"]["refused"].as_u64() >= Some(1));

    // Nothing unverified stored: not the object, not the tampered bytes.
    assert_cache_clean(&m, &[expected, Digest::of(&tampered)]);
    assert!(!cache_holds_bytes(m.cache_dir(), &tampered));

    // Still refused on a second try; served once the server is honest again.
    assert_eio("app/1.0/bad.bin again", fs::read(m.path("app/1.0/bad.bin")));
    origin.clear();
    assert_eq!(
        fs::read(m.path("app/1.0/bad.bin")).unwrap(),
        fs::read(src.join("bad.bin")).unwrap()
    );
    assert_cache_clean(&m, &[]);
}

#[test]
fn a_chunk_changed_on_the_wire_gives_eio_for_that_range_only() {
    let t = TestDir::new();
    let (repo, alice, src) = published(&t);
    let origin = Origin::serve(repo.dir());
    let chunks = repo.objects_for("app", "1.0", "lib/big.so");
    assert_eq!(chunks.len(), 3);
    origin.corrupt(url_path(&repo, &chunks[1]).as_str());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    let want = fs::read(src.join("lib/big.so")).unwrap();
    let f = fs::File::open(m.path("app/1.0/lib/big.so")).unwrap();
    let read = |at: u64| {
        let mut buf = vec![0u8; 4096];
        f.read_exact_at(&mut buf, at).map(|_| buf)
    };
    assert!(read(0).unwrap() == want[..4096], "chunk 0");
    let at2 = 2 * CHUNK + 100;
    assert!(
        read(at2).unwrap() == want[at2 as usize..at2 as usize + 4096],
        "chunk 2"
    );
    assert_eio("chunk 1 of lib/big.so", read(CHUNK + 4096));
    let log = m.log();
    let lines = lines_with(&log, "lib/big.so chunk 1");
    assert!(
        lines.iter().any(|l| l.contains("hash mismatch")),
        "no refusal of chunk 1 logged:\n{log}"
    );
    let bad = fs::read(&chunks[1]).unwrap();
    assert_cache_clean(&m, &[Digest::of(&bad)]);
    let mut tampered = bad.clone();
    tampered[bad.len() / 2] ^= 0x01;
    assert!(!cache_holds_bytes(m.cache_dir(), &tampered));
}

#[test]
fn a_compressed_object_changed_in_the_repository_gives_eio() {
    let t = TestDir::new();
    let (repo, alice, src) = published(&t);
    let m_doc = repo.manifest("app", "1.0");
    let blob = m_doc
        .entries
        .iter()
        .find_map(|e| match &e.node {
            Node::File {
                data: FileData::Whole(b),
                ..
            } if e.path.as_str() == "doc/text.txt" => Some(*b),
            _ => None,
        })
        .unwrap();
    let z = blob.zstd.expect("doc/text.txt is stored compressed");
    // The repository's file itself is changed, as by someone with write access to the
    // web server: same length, one byte different.
    let object = repo.dir().join(blob.repo_path());
    let mut bytes = fs::read(&object).unwrap();
    let at = bytes.len() / 2;
    bytes[at] = bytes[at].wrapping_add(1);
    fs::write(&object, &bytes).unwrap();
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();

    assert_eio(
        "app/1.0/doc/text.txt",
        fs::read(m.path("app/1.0/doc/text.txt")),
    );
    neighbours_read_fine(&src, &m.path("app/1.0"), &["doc/text.txt"]);

    let log = m.log();
    let refusals: Vec<String> = lines_with(&log, "hash mismatch")
        .into_iter()
        .filter(|l| l.contains("attack="))
        .collect();
    assert_eq!(refusals.len(), 1, "expected one refusal line:\n{log}");
    assert_contains(
        &refusals[0],
        &[
            "app",
            "1.0",
            "doc/text.txt",
            &url_path(&repo, &object),
            &z.sha256.to_hex(),
            &Digest::of(&bytes).to_hex(),
        ],
    );
    assert_cache_clean(&m, &[blob.sha256, Digest::of(&bytes)]);
    assert!(!cache_holds_bytes(m.cache_dir(), &bytes));
    if let Ok(plain) = zstd::bulk::decompress(&bytes, blob.size as usize * 2) {
        assert!(!cache_holds_bytes(m.cache_dir(), &plain));
    }
}

#[test]
fn truncated_and_endless_bodies_give_eio_and_store_nothing() {
    let t = TestDir::new();
    let (repo, alice, src) = published(&t);
    let origin = Origin::serve(repo.dir());
    let trunc = repo.object_for("app", "1.0", "trunc.bin");
    let endless = repo.object_for("app", "1.0", "endless.bin");
    let lying = repo.object_for("app", "1.0", "lying.bin");
    origin.truncate(url_path(&repo, &trunc).as_str(), 5000);
    origin.endless(url_path(&repo, &endless).as_str());
    origin.endless_lying_length(url_path(&repo, &lying).as_str());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    let before = origin.bytes_sent();

    for name in ["trunc.bin", "endless.bin", "lying.bin"] {
        assert_eio(name, fs::read(m.path(&format!("app/1.0/{name}"))));
        // The daemon is still serving others after each.
        assert_eq!(
            fs::read(m.path("app/1.0/good.bin")).unwrap(),
            fs::read(src.join("good.bin")).unwrap(),
            "after {name}"
        );
    }
    neighbours_read_fine(
        &src,
        &m.path("app/1.0"),
        &["trunc.bin", "endless.bin", "lying.bin"],
    );
    // Endless bodies were cut off near the signed size, not read on and on.
    let sent = origin.bytes_sent() - before;
    assert!(
        sent < 64 << 20,
        "the origin sent {sent} bytes\n{}",
        origin.describe()
    );
    let log = m.log();
    for name in ["trunc.bin", "endless.bin", "lying.bin"] {
        assert!(
            !lines_with(&log, &format!("app 1.0 {name}")).is_empty(),
            "the log does not name {name}:\n{log}"
        );
    }
    let absent: Vec<Digest> = ["trunc.bin", "endless.bin", "lying.bin"]
        .iter()
        .map(|n| file_digest(&repo, n))
        .collect();
    assert_cache_clean(&m, &absent);
    let short = &fs::read(&trunc).unwrap()[..5000];
    assert!(!cache_holds_bytes(m.cache_dir(), short));
    // Still serving: status answers and lists the failures.
    let status = m.status();
    assert!(
        status["fetches"]["failures"].as_u64() >= Some(3),
        "{status}"
    );
}

#[test]
fn a_tampered_manifest_serves_nothing_of_its_version() {
    let t = TestDir::new();
    let (repo, alice, _src) = published(&t);
    let manifest = repo.release("app", "1.0").manifest;
    let object = repo.manifest_object("app", "1.0");
    let mut bytes = fs::read(&object).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    fs::write(&object, &bytes).unwrap();
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();

    for p in ["app/1.0/good.bin", "app/1.0/doc/text.txt"] {
        match fs::read(m.path(p)) {
            Ok(_) => panic!("{p} was served from a tampered manifest"),
            Err(e) => assert!(
                matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::ENOENT)),
                "{p}: {e}"
            ),
        }
    }
    assert!(
        fs::read_dir(m.path("app/1.0")).is_err(),
        "the tree of a tampered manifest was listed"
    );
    assert_eq!(
        fs::read(m.path("other/1.0/readme.txt")).unwrap(),
        b"a neighbour package\n"
    );
    let status = m.status();
    let refused_listed = status["packages"]["refused"].as_array().is_some_and(|r| {
        r.iter()
            .any(|v| v["name"] == "app" && v["version"] == "1.0")
    });
    let log = m.log();
    let logged = log
        .lines()
        .any(|l| l.contains("app") && l.contains("1.0") && l.contains("(manifest)"));
    assert!(
        refused_listed || logged,
        "neither the status nor the log names app 1.0's manifest\nstatus: {status}\nlog:\n{log}"
    );
    assert_cache_clean(&m, &[manifest.sha256, Digest::of(&bytes)]);
}
