//! Through a real caching proxy (squid), as sites run it in front of a repository:
//! `proxy=` sends every request through it, immutable objects are cached by the proxy so a
//! second node fetches them from it, and the index is always revalidated.

use harness::{fixtures, wait_for, Mount, Origin, Repo, Squid, TestDir, SOON};

#[test]
fn a_second_node_is_served_from_the_proxy_cache() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let tree = fixtures::python_subset(&t.join("py"), &["json", "email"]);
    repo.add(&alice, "pylib", "1", &tree, &[]);
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let squid = Squid::start();
    let trust = repo.trust_toml(&[(&alice, &["*"])]);
    let proxy = format!("proxy={}", squid.proxy_url());

    let a = Mount::new(&origin.url(), &trust).option(&proxy).start();
    harness::Cmd::new("diff")
        .arg("-r")
        .arg(&tree)
        .arg(a.path("pylib/1"))
        .ok();
    let from_a = origin.object_requests();
    assert!(
        from_a > 0,
        "node A fetched nothing from the origin:\n{}",
        origin.describe()
    );
    let log = squid.requests_logged();
    assert!(
        log.requests() as u64 >= from_a,
        "node A's requests did not go through squid: {} proxied, {} at the origin",
        log.requests(),
        from_a
    );

    // Node B, with its own empty cache, reads the same tree: the objects come from squid.
    let b = Mount::new(&origin.url(), &trust).option(&proxy).start();
    harness::Cmd::new("diff")
        .arg("-r")
        .arg(&tree)
        .arg(b.path("pylib/1"))
        .ok();
    assert_eq!(
        origin.object_requests(),
        from_a,
        "node B's objects should have been served by squid's cache\n{}",
        origin.describe()
    );
    let log = wait_for(SOON, "squid to log node B's hits", || {
        let l = squid.requests_logged();
        if l.hits() as u64 >= from_a {
            Ok(l)
        } else {
            Err(format!("{} hits of {} requests", l.hits(), l.requests()))
        }
    });
    // The index is never answered from the proxy's cache without asking the origin.
    for e in log.for_url("index.json") {
        assert!(
            !e.result.contains("TCP_HIT") && !e.result.contains("MEM_HIT"),
            "index.json served from cache without revalidation: {e:?}"
        );
    }
    assert!(origin.index_requests() >= 2, "{}", origin.describe());
}

/// A repository with Python's json package as `pylib 1`.
fn python_json(t: &TestDir) -> (Repo, harness::Publisher, std::path::PathBuf) {
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let tree = fixtures::python_subset(&t.join("py"), &["json"]);
    repo.add(&alice, "pylib", "1", &tree, &[]);
    repo.publish();
    (repo, alice, tree)
}

/// The proxy is a faster path, never a requirement: a dead one is bypassed.
#[test]
fn a_dead_proxy_falls_back_to_the_origin() {
    let t = TestDir::new();
    let (repo, alice, tree) = python_json(&t);
    let origin = Origin::serve(repo.dir());
    let dead = format!("proxy=http://127.0.0.1:{}/", harness::free_port());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option(&dead)
        .start();
    harness::Cmd::new("diff")
        .arg("-r")
        .arg(&tree)
        .arg(m.path("pylib/1"))
        .ok();
    assert!(origin.object_requests() > 0);
    let status = m.status();
    let proxy = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "proxy")
        .unwrap_or_else(|| panic!("no proxy in status: {status:#}"));
    assert_eq!(proxy["healthy"], false, "{status:#}");
    assert!(m.log().contains("the proxy failed"), "{}", m.log());
}

/// A proxy that hands out bad bytes (say, a poisoned cache) is bypassed for that object:
/// the same URL is asked of the source directly, and only verified bytes are stored.
#[test]
fn bad_bytes_through_the_proxy_are_refetched_directly() {
    let t = TestDir::new();
    let (repo, alice, tree) = python_json(&t);
    let origin = Origin::serve(repo.dir());
    // A "proxy" that serves the same files but flips a byte in every object: the test
    // HTTP server accepts absolute-form requests as a proxy receives them.
    let evil = Origin::serve(repo.dir());
    evil.corrupt(harness::Pattern::objects());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]))
        .option(&format!("proxy={}", evil.url()))
        .start();
    harness::Cmd::new("diff")
        .arg("-r")
        .arg(&tree)
        .arg(m.path("pylib/1"))
        .ok();
    assert!(
        evil.object_requests() > 0,
        "the proxy was not used:\n{}",
        evil.describe()
    );
    assert!(
        origin.object_requests() > 0,
        "the origin was not asked directly:\n{}",
        origin.describe()
    );
    assert!(
        m.log().contains("bad bytes through the proxy"),
        "{}",
        m.log()
    );
    assert!(m.status()["fetches"]["refused"].as_u64().unwrap_or(0) > 0);
}
