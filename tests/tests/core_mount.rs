//! The reliable core through a real mount: a published real tree reads back identical,
//! programs run from it, and the mount is read-only.

use std::fs;
use std::path::Path;

use harness::{fixtures, Cmd, Mount, Origin, Repo, TestDir};

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
        use std::os::unix::fs::MetadataExt;
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
