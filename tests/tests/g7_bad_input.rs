//! Guarantee 7, bad input gets a clear error and changes nothing, through a real mount:
//! trust files with an error, manifests that break the rules yet carry a trusted
//! publisher's valid signature, and indexes that are not indexes.

use std::fs;
use std::io;
use std::path::Path;

use harness::{
    assert_contains, assert_unchanged, snapshot, wait_for, Mount, Origin, Repo, TestDir, SOON,
};
use policy::index::{Release, INDEX_FILE};
use policy::manifest::Blob;
use policy::{canon, Digest, SecretKey};
use serde_json::Value;

/// Rehashes every object file in the cache: each must hash to its name.
#[track_caller]
fn assert_cache_verified(cache: &Path) -> usize {
    let mut n = 0;
    let Ok(dirs) = fs::read_dir(cache.join("objects")) else {
        return 0;
    };
    for d in dirs {
        for f in fs::read_dir(d.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let bytes = fs::read(f.path()).unwrap();
            assert_eq!(
                Digest::of(&bytes).to_hex(),
                f.file_name().to_string_lossy(),
                "{:?} does not hash to its name",
                f.path()
            );
            n += 1;
        }
    }
    n
}

#[track_caller]
fn assert_absent(p: &Path) {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => panic!("{p:?} should not exist, got {other:?}"),
    }
}

#[test]
fn a_trust_file_with_an_error_stops_the_mount_naming_the_line() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    t.write("src/README", b"hello\n");
    repo.add(&alice, "hello", "1.0", &t.join("src"), &[]);
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let good = repo.trust_toml(&[(&alice, &["hello"])]);
    // A node that has run, with its cache.
    let mut m = Mount::new(&origin.url(), &good).start();
    assert_eq!(fs::read(m.path("hello/1.0/README")).unwrap(), b"hello\n");
    m.unmount();
    let cache = m.cache_dir().to_path_buf();
    let before = snapshot(&cache);

    let repo_line = format!("[repository]\nkey = \"{}\"\n", repo.key().public);
    let publisher = |body: &str| format!("{repo_line}\n[[publisher]]\nname = \"alice\"\n{body}");
    let cases: Vec<(&str, String, usize, &str)> = vec![
        (
            "a bad repository key",
            "[repository]\nkey = \"ed25519:c2hvcnQ=\"\n".to_string(),
            2,
            "an ed25519 public key is 32 bytes",
        ),
        (
            "a bad publisher key",
            publisher("key = \"rsa:AAAA\"\npackages = [\"hello\"]\n"),
            6,
            "it must start with \"ed25519:\"",
        ),
        (
            "an unknown field",
            publisher(&format!(
                "key = \"{}\"\npackages = [\"hello\"]\nallow_all = true\n",
                alice.public
            )),
            8,
            "unknown field `allow_all`",
        ),
        (
            "an empty pattern",
            publisher(&format!(
                "key = \"{}\"\npackages = [\"hello\", \"\"]\n",
                alice.public
            )),
            7,
            "a package pattern is empty",
        ),
        (
            "revoked below a table",
            publisher(&format!(
                "key = \"{}\"\npackages = [\"hello\"]\nrevoked = []\n",
                alice.public
            )),
            8,
            "put `revoked = [...]` at the top of the file",
        ),
        (
            "a threshold above the number of keys",
            publisher(&format!(
                "keys = [\"{}\"]\nthreshold = 2\npackages = [\"hello\"]\n",
                alice.public
            )),
            7,
            "threshold 2 must be between 1 and its number of keys (1)",
        ),
    ];
    for (what, text, line, why) in cases {
        let o = Mount::new(&origin.url(), &text).cache(&cache).start_fails();
        assert_contains(&o.stderr, &[&format!("trust.toml:{line}: "), why]);
        assert_eq!(
            o.stderr.trim().lines().count(),
            1,
            "{what}: one line\n{}",
            o.stderr
        );
        // Nothing of it was applied, and the cache was not touched.
        assert_unchanged(&cache, &before, what);
    }
    // Fixed, the node comes back with what it had, without asking the network.
    origin.stop();
    m.restart();
    assert_eq!(fs::read(m.path("hello/1.0/README")).unwrap(), b"hello\n");
    assert_cache_verified(&cache);
}

/// A manifest rewritten by `edit` (on its canonical text), stored as a plain object, and
/// listed under `name` `version` with `key`'s valid signature. Returns its digest.
fn list_edited_manifest(
    repo: &Repo,
    key: &SecretKey,
    name: &str,
    version: &str,
    edit: impl Fn(&str) -> String,
) -> Digest {
    let r = repo.release(name, version);
    let text = String::from_utf8(repo.read_object(&r.manifest)).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text, "{name} {version}: the edit changed nothing");
    let bytes = edited.into_bytes();
    let blob = Blob {
        sha256: Digest::of(&bytes),
        size: bytes.len() as u64,
        zstd: None,
    };
    let obj = repo.dir().join(blob.repo_path());
    fs::create_dir_all(obj.parent().unwrap()).unwrap();
    fs::write(&obj, &bytes).unwrap();
    let mut listed = Release {
        manifest: blob,
        signatures: vec![],
        ..r
    };
    listed.add_signature(key);
    let path = repo
        .dir()
        .join("releases")
        .join(name)
        .join(format!("{version}.json"));
    fs::remove_file(&path).unwrap();
    fs::write(&path, canon::encode(&listed)).unwrap();
    blob.sha256
}

/// A change to a manifest's canonical text.
type Edit = Box<dyn Fn(&str) -> String>;

/// Replaces the first `from` in `s` (which must hold it).
fn once(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "{from:?} not in {s}");
    s.replacen(from, to, 1)
}

#[test]
fn a_signed_manifest_that_breaks_the_rules_is_refused() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let secret = SecretKey::read_file(&alice.key).unwrap();
    t.write("src/README", b"readme\n");
    t.write("src/dir/file", b"file\n");
    let src = t.join("src");
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "1-dotdot",
            Box::new(|s| once(s, "\"path\":\"README\"", "\"path\":\"../README\"")),
            "bad path \"../README\"",
        ),
        (
            "2-absolute",
            Box::new(|s| once(s, "\"path\":\"README\"", "\"path\":\"/etc/passwd\"")),
            "bad path \"/etc/passwd\"",
        ),
        (
            "3-device",
            Box::new(|s| once(s, "\"kind\":\"file\"", "\"kind\":\"chardev\"")),
            "unknown variant `chardev`",
        ),
        (
            "4-mode",
            Box::new(|s| {
                let at = s
                    .find("\"path\":\"README\",\"kind\":\"file\",\"mode\":")
                    .unwrap();
                let (head, tail) = s.split_at(at);
                let tail = once(tail, "\"mode\":", "\"mode\":9");
                format!("{head}{tail}")
            }),
            "bits above 0o7777",
        ),
        (
            "5-through-a-symlink",
            Box::new(|s| {
                let start = s.find("{\"path\":\"dir\",").unwrap();
                let end = start + s[start..].find('}').unwrap() + 1;
                format!(
                    "{}{{\"path\":\"dir\",\"kind\":\"symlink\",\"target\":\"/etc\"}}{}",
                    &s[..start],
                    &s[end..]
                )
            }),
            "entry \"dir/file\": its parent is not a directory listed before it",
        ),
        (
            "6-not-canonical",
            Box::new(|s| once(s, "{", "{ ")),
            "is not in canonical form",
        ),
    ];
    let good = t.join("good");
    t.write("good/README", b"good\n");
    repo.add(&alice, "good", "1.0", &good, &[]);
    let mut bad = Vec::new();
    for (version, edit, _) in &cases {
        repo.add(&alice, "bad", version, &src, &[]);
        bad.push(list_edited_manifest(&repo, &secret, "bad", version, edit).to_hex());
    }
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    // Manifests load in the background once the index is accepted.
    let status = wait_for(SOON, "every bad manifest to be refused", || {
        let s = m.status();
        let n = s["packages"]["refused"].as_array().map_or(0, |a| a.len());
        if n >= cases.len() {
            Ok(s)
        } else {
            Err(format!("{s:#}"))
        }
    });
    let ctl: Value = serde_json::from_str(&m.ctl().args(["status", "--json"]).ok()).unwrap();
    for (version, _, why) in &cases {
        for s in [&status, &ctl] {
            let r = s["packages"]["refused"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == "bad" && r["version"] == *version)
                .unwrap_or_else(|| panic!("bad {version} not refused: {s:#}"));
            assert_eq!(r["attack"], "malformed-metadata", "{r:#}");
            assert_contains(r["reason"].as_str().unwrap(), &["manifest of bad", why]);
        }
        assert!(
            m.log().lines().any(|l| l.contains("malformed-metadata")
                && l.contains(why)
                && l.contains(version)),
            "no log line for bad {version}:\n{}",
            m.log()
        );
    }
    assert_absent(&m.path("bad"));
    assert_eq!(fs::read(m.path("good/1.0/README")).unwrap(), b"good\n");
    // The refused manifests are not kept; every object in the cache verifies.
    let cached = assert_cache_verified(m.cache_dir());
    assert!(cached >= 2, "{cached} objects");
    for d in &bad {
        assert!(
            !m.cache_dir().join("objects").join(&d[..2]).join(d).exists(),
            "refused manifest {d} is in the cache"
        );
    }
}

#[test]
fn an_index_that_is_not_an_index_is_refused_with_a_clear_error() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    t.write("src/README", b"hello\n");
    repo.add(&alice, "hello", "1.0", &t.join("src"), &[]);
    repo.publish();
    let trust = repo.trust_toml(&[(&alice, &["hello"])]);
    let genuine = fs::read(repo.dir().join(INDEX_FILE)).unwrap();
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &trust).start();
    let serve = |bytes: &[u8]| {
        let tmp = repo.dir().join(".tmp/index.test");
        fs::write(&tmp, bytes).unwrap();
        fs::rename(&tmp, repo.dir().join(INDEX_FILE)).unwrap();
    };
    let manifest_bytes = repo.read_object(&repo.release("hello", "1.0").manifest);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage",
            b"<html>not found</html>".to_vec(),
            "the index is not a Stork document",
        ),
        ("empty", Vec::new(), "the index is not a Stork document"),
        (
            "a manifest in its place",
            manifest_bytes,
            "the index is a \"stork-manifest\" document, expected \"stork-index\"",
        ),
        (
            "a newer format",
            String::from_utf8(genuine.clone())
                .unwrap()
                .replacen("\"format\":1", "\"format\":2", 1)
                .into_bytes(),
            "upgrade Stork to read it",
        ),
        (
            "cut short",
            genuine[..genuine.len() / 2].to_vec(),
            "the index is not a Stork document",
        ),
    ];
    let before = m.status()["index"]["version"].as_u64();
    for (what, bytes, why) in &cases {
        serve(bytes);
        // A fresh node does not start on it.
        let o = Mount::new(&origin.url(), &trust).start_fails();
        assert_contains(&o.stderr, &["no cached index", why]);
        // A running node keeps what it has.
        let o = m.ctl().arg("refresh").run();
        o.assert_clean_failure();
        assert_contains(&o.stderr, &[why, "still serving index version"]);
        assert_eq!(m.status()["index"]["version"].as_u64(), before, "{what}");
        assert_eq!(fs::read(m.path("hello/1.0/README")).unwrap(), b"hello\n");
    }
    serve(&genuine);
    assert_cache_verified(m.cache_dir());
}
