//! Index refresh (issue #5): a newly published version appears after `storkctl refresh`
//! or by itself every `refresh=` seconds, switching atomically while files already open
//! keep reading; a refresh with nothing new costs a conditional request and no index
//! body; `status` shows the index version, its age and the last check.

use std::fs::{self, File};
use std::io::Read;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use harness::{
    as_uid, assert_contains, fixtures, readlink_as, wait_for, Mount, Origin, Outcome, Publisher,
    Repo, TestDir, SOON,
};
use serde_json::Value;

/// A version's tree: `VERSION`, and `size` pseudo-random bytes in `data.bin` (chunked
/// above 1 MiB).
fn package_tree(t: &TestDir, name: &str, version: &str, size: usize) -> PathBuf {
    let rel = format!("src/{name}-{version}");
    t.write(format!("{rel}/VERSION"), format!("{name} {version}\n"));
    let seed = format!("{name} {version}")
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    t.write(
        format!("{rel}/data.bin"),
        fixtures::pseudo_random(seed, size),
    );
    t.join(rel)
}

struct Node {
    m: Mount,
    origin: Origin,
    repo: Repo,
    alice: Publisher,
    t: TestDir,
}

impl Node {
    /// Adds and publishes `tool` `version`; returns the new index version.
    fn publish(&self, version: &str, size: usize) -> u64 {
        let src = package_tree(&self.t, "tool", version, size);
        self.repo.add(&self.alice, "tool", version, &src, &[]);
        self.repo.publish()
    }
}

/// `tool` 1.0 (with `size` bytes of data) published and mounted with `options`.
fn node(size: usize, options: &[&str]) -> Node {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let src = package_tree(&t, "tool", "1.0", size);
    repo.add(&alice, "tool", "1.0", &src, &[]);
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let mut b = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]));
    for o in options {
        b = b.option(o);
    }
    Node {
        m: b.start(),
        origin,
        repo,
        alice,
        t,
    }
}

fn current(m: &Mount, uid: u32) -> String {
    readlink_as(uid, &m.path("tool/current"))
}

#[track_caller]
fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn versions(m: &Mount) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(m.path("tool"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[track_caller]
fn one_line(o: &Outcome) -> String {
    let err = o.stderr.trim_end_matches('\n');
    assert!(
        !err.is_empty() && !err.contains('\n') && err.starts_with("storkctl: "),
        "expected one line `storkctl: ...` on stderr\n{o}"
    );
    err.to_string()
}

#[test]
fn a_new_version_appears_after_refresh_while_an_open_old_file_keeps_reading() {
    let n = node(3 << 20, &["refresh=3600"]);
    let m = &n.m;
    m.ctl_as(1001).args(["pin", "tool@1.0"]).ok();
    let want = fs::read(n.t.join("src/tool-1.0/data.bin")).unwrap();
    // Open a file of 1.0 and read only its start (its first chunk).
    let mut f = File::open(m.path("tool/1.0/data.bin")).unwrap();
    let mut head = vec![0u8; 4096];
    f.read_exact(&mut head).unwrap();
    assert_eq!(head, want[..4096]);

    let v = n.publish("2.0", 1000);
    assert!(!m.path("tool/2.0").exists(), "2.0 before any refresh");
    assert_eq!(versions(m), ["1.0", "current"]);
    assert_eq!(current(m, 1003), "1.0");

    // Any slice may ask for a refresh.
    let o = m.ctl_as(1003).arg("refresh").run();
    assert!(o.status.success(), "{o}");
    assert_contains(&o.stderr, &[&format!("index version {v} accepted")]);
    assert_eq!(versions(m), ["1.0", "2.0", "current"]);
    assert_eq!(
        fs::read_to_string(m.path("tool/2.0/VERSION")).unwrap(),
        "tool 2.0\n"
    );
    assert_eq!(current(m, 1003), "2.0", "unpinned: the newest");
    assert_eq!(current(m, 0), "2.0", "unpinned: the newest");
    assert_eq!(current(m, 1001), "1.0", "pinned: unmoved");
    assert_eq!(
        as_uid(1003)
            .arg("cat")
            .arg(m.path("tool/current/VERSION"))
            .ok(),
        "tool 2.0\n"
    );
    let st = json(&m.ctl().args(["status", "--json"]).ok());
    assert_eq!(st["index"]["version"], v);

    // The file opened before the refresh reads on to its end, identical (its other
    // chunks are fetched now, after the switch).
    let mut rest = Vec::new();
    f.read_to_end(&mut rest).unwrap();
    head.extend(rest);
    assert!(
        head == want,
        "the open file of 1.0 changed across the refresh"
    );
    // And it can be opened again, by path, as ever.
    assert!(fs::read(m.path("tool/1.0/data.bin")).unwrap() == want);

    // Asking again: nothing new, said so, as text and JSON.
    let o = m.ctl_as(1002).arg("refresh").run();
    assert!(o.status.success(), "{o}");
    assert_contains(&o.stderr, &[&format!("index version {v} is the newest")]);
    let r = json(&m.ctl_as(1002).args(["refresh", "--json"]).ok());
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["index_version"], v, "{r}");
    assert_eq!(r["problem"], Value::Null, "{r}");
}

#[test]
fn the_index_refreshes_by_itself_every_refresh_seconds() {
    let n = node(100, &["refresh=2"]);
    let m = &n.m;
    let first = json(&m.ctl().args(["status", "--json"]).ok())["index"]["last_check"]
        .as_u64()
        .expect("a last check at start");
    let v = n.publish("2.0", 100);
    wait_for(SOON, "2.0 to appear without storkctl", || {
        let c = current(m, 1001);
        if c == "2.0" {
            Ok(())
        } else {
            Err(format!("current is {c}; status {}", m.status()["index"]))
        }
    });
    assert_eq!(
        fs::read_to_string(m.path("tool/2.0/VERSION")).unwrap(),
        "tool 2.0\n"
    );
    let st = m.status();
    assert_eq!(st["index"]["version"], v, "{st}");
    assert!(
        st["index"]["last_check"].as_u64().unwrap() > first,
        "the last check did not move on: {st}"
    );
    // It keeps looking: two more checks go by, each a conditional request answered 304.
    n.origin.reset_counts();
    wait_for(SOON, "two more periodic checks", || {
        let a = n.origin.answers("index.json");
        if a.len() >= 2 {
            Ok(())
        } else {
            Err(format!("answers so far: {a:?}"))
        }
    });
    assert!(
        n.origin.answers("index.json").iter().all(|s| *s == 304),
        "{}",
        n.origin.describe()
    );
}

#[test]
fn a_refresh_with_nothing_new_is_a_conditional_request_without_a_body() {
    let n = node(100, &["refresh=3600"]);
    let m = &n.m;
    n.origin.reset_counts();
    for _ in 0..3 {
        m.ctl_as(1001).arg("refresh").ok();
    }
    assert_eq!(n.origin.answers("index.json"), [304, 304, 304]);
    assert_eq!(n.origin.total_requests(), 3, "{}", n.origin.describe());
    assert_eq!(n.origin.bytes_sent(), 0, "{}", n.origin.describe());

    // Something new is one full answer, then conditional again.
    let v = n.repo.publish();
    let new_size = fs::metadata(n.repo.dir().join("index.json")).unwrap().len();
    assert_ne!(new_size, 0);
    n.origin.reset_counts();
    let r = json(&m.ctl_as(1001).args(["refresh", "--json"]).ok());
    assert_eq!(
        (r["changed"].as_bool(), r["index_version"].as_u64()),
        (Some(true), Some(v))
    );
    m.ctl_as(1001).arg("refresh").ok();
    assert_eq!(n.origin.answers("index.json"), [200, 304]);
    assert_eq!(n.origin.bytes_sent(), new_size, "{}", n.origin.describe());
}

#[test]
fn status_shows_the_index_version_its_age_and_the_last_check() {
    let n = node(100, &["refresh=3600"]);
    let m = &n.m;
    let published = n.repo.index().signed.timestamp;
    let st = json(&m.ctl_as(1001).args(["status", "--json"]).ok());
    let i = &st["index"];
    assert_eq!(i["version"], 2, "{st}");
    assert_eq!(i["published"], published, "{st}");
    let age = i["age_seconds"].as_u64().expect("age");
    assert!(age <= now() - published + 1, "{st}");
    assert!(i["last_check"].as_u64().is_some_and(|t| t <= now()), "{st}");
    assert_eq!(i["stale"], false, "{st}");
    assert_eq!(i["last_error"], Value::Null, "{st}");
    assert_eq!(st["repository"], n.origin.url(), "{st}");
    // /.stork/status shows the same.
    assert_eq!(m.status()["index"]["version"], 2);
    let human = m.ctl_as(1001).arg("status").ok();
    assert_contains(
        &human,
        &[
            "index       version 2, published ",
            " ago, expires in ",
            "checked     ",
        ],
    );

    // A check that fails: said in one line, the old index still served, shown in status.
    assert_eq!(
        fs::read_to_string(m.path("tool/1.0/VERSION")).unwrap(),
        "tool 1.0\n"
    );
    n.origin.stop();
    let before = now();
    let o = m.ctl_as(1001).arg("refresh").run();
    o.assert_clean_failure();
    let line = one_line(&o);
    assert_contains(
        &line,
        &[
            "no new index",
            "index.json",
            "still serving index version 2",
        ],
    );
    let st = json(&m.ctl_as(1001).args(["status", "--json"]).ok());
    assert!(
        st["index"]["last_check"].as_u64().unwrap() >= before,
        "{st}"
    );
    assert!(st["index"]["last_error"].as_str().is_some(), "{st}");
    assert_eq!(st["index"]["stale"], true, "{st}");
    assert_contains(&m.ctl_as(1001).arg("status").ok(), &["(problem: "]);
    let r = json(&m.ctl_as(1001).args(["refresh", "--json"]).ok());
    assert!(r["problem"].as_str().is_some(), "{r}");
    assert_eq!(r["index_version"], 2, "{r}");
    assert_eq!(
        fs::read_to_string(m.path("tool/1.0/VERSION")).unwrap(),
        "tool 1.0\n",
        "what is cached still reads"
    );
    assert_eq!(current(m, 1001), "1.0");
    // Back: the next check clears the problem.
    n.origin.start();
    m.ctl_as(1001).arg("refresh").ok();
    let st = json(&m.ctl_as(1001).args(["status", "--json"]).ok());
    assert_eq!(st["index"]["last_error"], Value::Null, "{st}");
    assert_eq!(st["index"]["stale"], false, "{st}");
}

#[test]
fn an_open_file_of_a_withdrawn_version_keeps_reading_after_the_refresh() {
    let n = node(3 << 20, &["refresh=3600"]);
    let m = &n.m;
    m.ctl_as(1001).args(["pin", "tool@1.0"]).ok();
    let want = fs::read(n.t.join("src/tool-1.0/data.bin")).unwrap();
    let mut f = File::open(m.path("tool/1.0/data.bin")).unwrap();
    let mut got = vec![0u8; 4096];
    f.read_exact(&mut got).unwrap();

    // The publisher withdraws 1.0 and publishes 2.0; the node takes it in.
    let src = package_tree(&n.t, "tool", "2.0", 100);
    n.repo.add(&n.alice, "tool", "2.0", &src, &[]);
    n.repo.withdraw(&n.alice, "tool", "1.0");
    let v = n.repo.publish();
    let r = json(&m.ctl_as(1002).args(["refresh", "--json"]).ok());
    assert_eq!(r["index_version"], v, "{r}");
    assert_eq!(versions(m), ["2.0", "current"]);
    assert_eq!(
        current(m, 1001),
        "2.0",
        "a pin on a withdrawn version falls through"
    );
    assert_eq!(current(m, 1002), "2.0");

    // The file opened before reads on to its end, identical.
    f.read_to_end(&mut got).unwrap();
    assert!(
        got == want,
        "the open file of 1.0 changed after its withdrawal"
    );
}
