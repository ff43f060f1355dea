//! Guarantee 5: each distinct file content is stored once per node, and fetched only
//! when read: listing fetches nothing, a small file costs one object, a range of a large
//! file a few chunks, and a second read nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use harness::{cache_objects, fixtures, wait_for, Cmd, Mount, Origin, Repo, TestDir, SOON};
use policy::manifest::{FileData, Node};
use policy::Digest;

const MIB: u64 = 1 << 20;

/// The request paths of the manifests of every published version.
fn manifest_paths(repo: &Repo, versions: &[(&str, &str)]) -> BTreeSet<String> {
    versions
        .iter()
        .map(|(n, v)| format!("/{}", repo.release(n, v).manifest.repo_path()))
        .collect()
}

/// The content objects (whole files and chunks) of a version, by plain digest.
fn content_digests(repo: &Repo, name: &str, version: &str) -> BTreeSet<Digest> {
    let mut out = BTreeSet::new();
    for e in repo.manifest(name, version).entries {
        match e.node {
            Node::File {
                data: FileData::Whole(b),
                ..
            } if b.size > 0 => {
                out.insert(b.sha256);
            }
            Node::File {
                data: FileData::Chunked { chunks, .. },
                ..
            } => out.extend(chunks.iter().map(|c| c.sha256)),
            _ => {}
        }
    }
    out
}

/// Object requests to the origin, by path (for messages and exact comparisons).
fn object_requests(origin: &Origin) -> BTreeMap<String, u64> {
    origin
        .log()
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with("/objects/"))
        .fold(BTreeMap::new(), |mut m, p| {
            *m.entry(p.to_string()).or_default() += 1;
            m
        })
}

/// Waits until the daemon has fetched and stored every manifest (it loads them in the
/// background once the index is accepted), and nothing else.
fn wait_for_manifests(m: &Mount, origin: &Origin, manifests: &BTreeSet<String>) {
    wait_for(SOON, "every manifest to be fetched", || {
        let got = object_requests(origin);
        let paths: BTreeSet<String> = got.keys().cloned().collect();
        let done = m.fetched_objects();
        if &paths == manifests && done == manifests.len() as u64 {
            Ok(())
        } else {
            Err(format!(
                "object requests: {got:?}\nmanifests: {manifests:?}\nfetched: {done}"
            ))
        }
    });
}

/// Waits until every object download that reached the origin since its counts were
/// reset (when the daemon had fetched `before` objects) has completed.
fn wait_for_downloads(m: &Mount, origin: &Origin, before: u64) {
    wait_for(SOON, "the downloads in flight to complete", || {
        let (asked, done) = (origin.object_requests(), m.fetched_objects() - before);
        if asked == done {
            Ok(())
        } else {
            Err(format!("{asked} object requests, {done} fetched"))
        }
    });
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(p).unwrap_or_else(|e| panic!("readdir {p:?}: {e}")) {
        let e = e.unwrap().path();
        out.push(e.clone());
        if fs::symlink_metadata(&e).unwrap().is_dir() {
            walk(&e, out);
        }
    }
}

#[test]
fn two_packages_and_two_versions_sharing_files_store_each_once() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let bob = repo.publisher("bob");
    let shared_bin = fixtures::pseudo_random(1, 40_000);
    let shared_txt = "text that compresses, shared by everyone\n".repeat(500);
    let shared_big = fixtures::pseudo_random(2, (2 * MIB + MIB / 3) as usize);
    t.write("alpha1/shared.bin", &shared_bin);
    t.write("alpha1/doc/shared.txt", &shared_txt);
    t.write("alpha1/lib/big.so", &shared_big);
    t.write("alpha1/only-alpha1", b"alpha 1\n");
    t.write("alpha2/lib/renamed.bin", &shared_bin);
    t.write("alpha2/doc/shared.txt", &shared_txt);
    t.write("alpha2/lib/big.so", &shared_big);
    t.write("alpha2/only-alpha2", b"alpha 2\n");
    t.write("beta/data/copy.bin", &shared_bin);
    t.write("beta/share/also.bin", &shared_bin);
    t.write("beta/share/shared.txt", &shared_txt);
    t.write("beta/big.so", &shared_big);
    repo.add(&alice, "alpha", "1.0", &t.join("alpha1"), &[]);
    repo.add(&alice, "alpha", "2.0", &t.join("alpha2"), &[]);
    repo.add(&bob, "beta", "1.0", &t.join("beta"), &[]);
    repo.publish();
    let versions = [("alpha", "1.0"), ("alpha", "2.0"), ("beta", "1.0")];
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(
        &origin.url(),
        &repo.trust_toml(&[(&alice, &["alpha"]), (&bob, &["beta"])]),
    )
    .start();

    // Read every file of every version, through the mount.
    let mut files = 0;
    for (src, rel) in [
        ("alpha1", "alpha/1.0"),
        ("alpha2", "alpha/2.0"),
        ("beta", "beta/1.0"),
    ] {
        Cmd::new("diff")
            .arg("-r")
            .arg(t.join(src))
            .arg(m.path(rel))
            .ok();
        let mut all = Vec::new();
        walk(&m.path(rel), &mut all);
        files += all.iter().filter(|p| p.is_file()).count();
    }
    assert_eq!(files, 12);

    // The cache holds each distinct content once: the union of the versions' content
    // objects, and their three manifests; nothing twice, nothing else.
    let content: BTreeSet<Digest> = versions
        .iter()
        .flat_map(|(n, v)| content_digests(&repo, n, v))
        .collect();
    // shared.bin, shared.txt, 3 chunks of big.so, two only-* files.
    assert_eq!(content.len(), 7, "{content:?}");
    let manifests: BTreeSet<Digest> = versions
        .iter()
        .map(|(n, v)| repo.release(n, v).manifest.sha256)
        .collect();
    let cached = cache_objects(m.cache_dir());
    let cached_digests: BTreeSet<Digest> = cached.keys().copied().collect();
    let want: BTreeSet<Digest> = content.union(&manifests).copied().collect();
    assert_eq!(cached_digests, want, "cache: {cached:?}");
    let on_disk: usize = fs::read_dir(m.cache_dir().join("objects"))
        .unwrap()
        .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(on_disk, content.len() + manifests.len());
    assert_eq!(
        m.status()["cache"]["objects"].as_u64(),
        Some(on_disk as u64)
    );

    // And each was downloaded once.
    for (path, n) in object_requests(&origin) {
        assert_eq!(
            n,
            1,
            "{path} was requested {n} times\n{}",
            origin.describe()
        );
    }
    assert_eq!(
        origin.object_requests(),
        (content.len() + manifests.len()) as u64
    );
}

fn published_trees(t: &TestDir) -> (Repo, harness::Publisher, Vec<(&'static str, &'static str)>) {
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let py = fixtures::python_subset(&t.join("py"), &["json", "email", "os.py"]);
    repo.add(&alice, "pylib", "3.11", &py, &[]);
    let sample = fixtures::sample_tree(&t.join("sample"));
    repo.add(&alice, "sample", "1.0", &sample, &[]);
    repo.add(&alice, "sample", "1.1", &sample, &[]);
    repo.publish();
    (
        repo,
        alice,
        vec![("pylib", "3.11"), ("sample", "1.0"), ("sample", "1.1")],
    )
}

#[test]
fn listing_and_stat_of_everything_fetch_no_file_content() {
    let t = TestDir::new();
    let (repo, alice, versions) = published_trees(&t);
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    let manifests = manifest_paths(&repo, &versions);
    wait_for_manifests(&m, &origin, &manifests);
    let fetched = m.fetched_objects();
    assert_eq!(fetched, manifests.len() as u64, "status: {}", m.status());

    // Every directory read, every entry stat'ed, every symlink read; by find and ls too.
    let mut all = Vec::new();
    walk(m.root(), &mut all);
    let mut files = 0;
    for p in &all {
        let md = fs::symlink_metadata(p).unwrap();
        if md.file_type().is_symlink() {
            fs::read_link(p).unwrap();
        } else if md.is_file() {
            files += 1;
        }
    }
    assert!(files > 50, "only {files} files listed");
    Cmd::new("find").arg(m.root()).arg("-ls").ok();
    Cmd::new("ls").arg("-laR").arg(m.root()).ok();
    Cmd::new("du").arg("-s").arg(m.root()).ok();

    let after = object_requests(&origin);
    let paths: BTreeSet<String> = after.keys().cloned().collect();
    assert_eq!(
        paths,
        manifests,
        "listing fetched content\n{}",
        origin.describe()
    );
    assert_eq!(origin.object_requests(), manifests.len() as u64);
    assert_eq!(m.fetched_objects(), fetched, "status: {}", m.status());
}

#[test]
fn reading_one_small_file_fetches_that_file_only() {
    let t = TestDir::new();
    let (repo, alice, versions) = published_trees(&t);
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    wait_for_manifests(&m, &origin, &manifest_paths(&repo, &versions));
    origin.reset_counts();
    let before = m.fetched_objects();

    let rel = "json/decoder.py";
    let got = fs::read(m.path(&format!("pylib/3.11/{rel}"))).unwrap();
    assert_eq!(got, fs::read(t.join("py").join(rel)).unwrap());
    let object = repo.object_for("pylib", "3.11", rel);
    let path = format!("/{}", object.strip_prefix(repo.dir()).unwrap().display());
    assert_eq!(
        object_requests(&origin),
        BTreeMap::from([(path, 1)]),
        "{}",
        origin.describe()
    );
    // About that file: the bytes of its one object (compressed or not), nothing more.
    assert_eq!(
        origin.bytes_sent(),
        fs::metadata(&object).unwrap().len(),
        "{}",
        origin.describe()
    );
    assert_eq!(m.fetched_objects(), before + 1);
}

#[test]
fn reading_1_mib_in_the_middle_of_a_64_mib_file_fetches_a_few_chunks() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let data = fixtures::pseudo_random(64, (64 * MIB) as usize);
    t.write("huge/data.bin", &data);
    t.write("huge/small.txt", b"small\n");
    repo.add(&alice, "huge", "1", &t.join("huge"), &[]);
    repo.publish();
    let chunks = repo.objects_for("huge", "1", "data.bin");
    assert_eq!(chunks.len(), 64);
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    wait_for_manifests(&m, &origin, &manifest_paths(&repo, &[("huge", "1")]));

    let f = fs::File::open(m.path("huge/1/data.bin")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 64 * MIB);
    // A range across two chunks (32 and 33), from the middle of the file.
    let at = 32 * MIB + 12_345;
    origin.reset_counts();
    let before = m.fetched_objects();
    let mut buf = vec![0u8; MIB as usize];
    f.read_exact_at(&mut buf, at).unwrap();
    assert!(
        buf == data[at as usize..(at + MIB) as usize],
        "wrong bytes at {at}"
    );
    // Count what this read started, read-ahead included, once it has landed.
    wait_for_downloads(&m, &origin, before);
    let reqs = object_requests(&origin);
    assert!(
        (2..=4).contains(&reqs.len()) && reqs.values().all(|n| *n == 1),
        "1 MiB at {at} fetched {reqs:?}\n{}",
        origin.describe()
    );
    // Only chunks of this range and just after it (read-ahead), by name.
    let near: BTreeSet<String> = chunks[32..36]
        .iter()
        .map(|c| format!("/{}", c.strip_prefix(repo.dir()).unwrap().display()))
        .collect();
    for p in reqs.keys() {
        assert!(near.contains(p), "{p} is not near offset {at}: {reqs:?}");
    }
    assert!(
        origin.bytes_sent() <= 4 * MIB,
        "{} bytes sent for 1 MiB",
        origin.bytes_sent()
    );
}

#[test]
fn a_second_read_of_a_file_causes_no_new_request() {
    let t = TestDir::new();
    let (repo, alice, versions) = published_trees(&t);
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    wait_for_manifests(&m, &origin, &manifest_paths(&repo, &versions));
    let small = m.path("pylib/3.11/json/encoder.py");
    let big = m.path("sample/1.0/lib/libdemo.so.1");
    let first = (fs::read(&small).unwrap(), fs::read(&big).unwrap());
    let requests = origin.total_requests();
    let fetched = m.fetched_objects();
    let hits = m.status()["cache"]["hits"].as_u64().unwrap();

    let second = (fs::read(&small).unwrap(), fs::read(&big).unwrap());
    assert!(first == second);
    // The same content under another version's path is the same object: no request.
    let same = fs::read(m.path("sample/1.1/lib/libdemo.so.1")).unwrap();
    assert!(same == first.1);
    assert_eq!(origin.total_requests(), requests, "{}", origin.describe());
    assert_eq!(m.fetched_objects(), fetched);
    // The small file's second open was answered from the cache.
    assert!(m.status()["cache"]["hits"].as_u64().unwrap() > hits);
}
