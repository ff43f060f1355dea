//! Guarantee 6 and issue #5: slices share one mount, yet each holds its own versions, and
//! no slice can read or change another's pins, nor the node's, through `storkctl` or by
//! talking to the socket itself.
//!
//! Every test runs the real `storkfs` and `storkctl`, as several real uids (`setpriv`).
//! Raw socket clients are a few lines of python3 run as the slice's uid, so the daemon
//! sees that uid in the socket's peer credentials, as it would from any program.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::{
    as_uid, assert_contains, bin, fixtures, margin, readlink_as, wait_until, Cmd, Mount, Origin,
    Outcome, Publisher, Repo, TestDir, SOON,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Set-up

/// A package version's source tree: its name and version in files, and `size` bytes of
/// pseudo-random data (chunked above 1 MiB).
fn package_tree(t: &TestDir, name: &str, version: &str, size: usize) -> PathBuf {
    let rel = format!("src/{name}-{version}");
    t.write(format!("{rel}/VERSION"), format!("{name} {version}\n"));
    t.write(
        format!("{rel}/bin/{name}"),
        format!("#!/bin/sh\necho {name} {version}\n"),
    );
    t.write(format!("{rel}/share/empty"), "");
    if size > 0 {
        let seed = format!("{name} {version}")
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
        t.write(
            format!("{rel}/share/data.bin"),
            fixtures::pseudo_random(seed, size),
        );
    }
    t.join(rel)
}

/// Regular files below `dir`, and their bytes.
fn tree_size(dir: &Path) -> (u64, u64) {
    let mut out = (0, 0);
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let md = fs::symlink_metadata(e.path()).unwrap();
        if md.is_dir() {
            let (f, b) = tree_size(&e.path());
            out = (out.0 + f, out.1 + b);
        } else if md.is_file() {
            out = (out.0 + 1, out.1 + md.len());
        }
    }
    out
}

/// A repository, its origin and a mount of it (fields drop in this order).
struct Node {
    m: Mount,
    origin: Origin,
    repo: Repo,
    alice: Publisher,
    t: TestDir,
}

/// Publishes `packages` (name, version, depends) and mounts the repository.
fn node(packages: &[(&str, &str, &[&str])], options: &[&str]) -> Node {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    for (name, version, depends) in packages {
        let src = package_tree(&t, name, version, 0);
        repo.add(&alice, name, version, &src, depends);
    }
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let mut b = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])]));
    for o in options {
        b = b.option(o);
    }
    let m = b.start();
    Node {
        m,
        origin,
        repo,
        alice,
        t,
    }
}

const TOOL: &[(&str, &str, &[&str])] = &[
    ("tool", "1.0", &[]),
    ("tool", "2.0", &[]),
    ("tool", "3.0", &[]),
];

/// `current` of `pkg` as `uid` sees it.
fn current(m: &Mount, uid: u32, pkg: &str) -> String {
    readlink_as(uid, &m.path(&format!("{pkg}/current")))
}

/// Runs a storkctl command expected to fail with exit 1 and one line on stderr
/// (`storkctl: ...`); returns that line.
#[track_caller]
fn fails_one_line(c: Cmd) -> String {
    let o = c.run();
    o.assert_clean_failure();
    assert_eq!(o.status.code(), Some(1), "expected exit 1\n{o}");
    one_line(&o)
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

#[track_caller]
fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// `storkctl pins --json` as `uid`: name -> (version, automatic).
fn pins_of(m: &Mount, uid: u32) -> BTreeMap<String, (String, bool)> {
    pin_map(&json(&m.ctl_as(uid).args(["pins", "--json"]).ok()))
}

/// The node's pins, as root.
fn node_pins(m: &Mount) -> BTreeMap<String, (String, bool)> {
    pin_map(&json(&m.ctl().args(["pins", "--node", "--json"]).ok()))
}

fn pin_map(set: &Value) -> BTreeMap<String, (String, bool)> {
    set["pins"]
        .as_array()
        .unwrap_or_else(|| panic!("no pins array in {set}"))
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                (
                    p["version"].as_str().unwrap().to_string(),
                    p["automatic"].as_bool().unwrap(),
                ),
            )
        })
        .collect()
}

fn pins(list: &[(&str, &str, bool)]) -> BTreeMap<String, (String, bool)> {
    list.iter()
        .map(|(n, v, a)| (n.to_string(), (v.to_string(), *a)))
        .collect()
}

/// Pins `spec` as `uid` with `--json`; returns the pin set it answers.
#[track_caller]
fn pin(m: &Mount, uid: u32, spec: &str) -> Value {
    json(&m.ctl_as(uid).args(["pin", "--json", spec]).ok())
}

/// The row of `pkg` in `storkctl list --json` as `uid`.
fn listed(m: &Mount, uid: u32, pkg: &str) -> Value {
    let all = json(&m.ctl_as(uid).args(["list", "--json"]).ok());
    all.as_array()
        .expect("list --json is an array")
        .iter()
        .find(|p| p["name"] == pkg)
        .unwrap_or_else(|| panic!("{pkg} not listed: {all}"))
        .clone()
}

/// A raw control-socket client run as `uid`: sends `request` as is, then reads until the
/// daemon closes; prints what it answered.
fn raw_as(uid: u32, socket: &Path, request: &[u8]) -> String {
    const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read())
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.buffer.write(out)
"#;
    // The system's python3: a per-user install (pyenv shims under /root) is not for
    // other uids.
    as_uid(uid)
        .arg("/usr/bin/python3")
        .arg("-c")
        .arg(CLIENT)
        .arg(socket)
        .stdin(request)
        .ok()
}

/// The one reply line of a refused request: its message.
#[track_caller]
fn refused(reply: &str) -> String {
    let lines: Vec<&str> = reply.lines().collect();
    assert_eq!(lines.len(), 1, "expected one reply line, got {reply:?}");
    let v = json(lines[0]);
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error reply, got {reply:?}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Views

#[test]
fn each_slice_sees_its_own_current_and_the_node_pin_fills_in_where_a_slice_has_none() {
    let n = node(TOOL, &[]);
    let m = &n.m;
    for uid in [0, 1001, 1002, 1003] {
        assert_eq!(current(m, uid, "tool"), "3.0", "uid {uid}, nothing pinned");
    }

    let set = pin(m, 1001, "tool@1.0");
    assert_eq!(set["owner"], "uid 1001");
    assert_eq!(pin_map(&set), pins(&[("tool", "1.0", false)]));
    let o = m.ctl_as(1002).args(["pin", "tool@2.0"]).run();
    assert!(o.status.success(), "{o}");
    assert_contains(&o.stderr, &["pinned tool 2.0"]);

    assert_eq!(current(m, 1001, "tool"), "1.0");
    assert_eq!(current(m, 1002, "tool"), "2.0");
    assert_eq!(current(m, 1003, "tool"), "3.0");
    assert_eq!(current(m, 0, "tool"), "3.0");
    // Through `current`, each slice reads its own version's files.
    for (uid, want) in [
        (1001, "tool 1.0\n"),
        (1002, "tool 2.0\n"),
        (1003, "tool 3.0\n"),
    ] {
        let got = as_uid(uid)
            .arg("cat")
            .arg(m.path("tool/current/VERSION"))
            .ok();
        assert_eq!(got, want, "uid {uid}");
    }

    // The node pin (root, --node) applies to every slice without a pin of its own.
    let set = json(&m.ctl().args(["pin", "--node", "--json", "tool@2.0"]).ok());
    assert_eq!(set["owner"], "node");
    assert_eq!(node_pins(m), pins(&[("tool", "2.0", false)]));
    m.ctl().args(["pin", "--node", "tool@1.0"]).ok();
    assert_eq!(node_pins(m), pins(&[("tool", "1.0", false)]));
    m.ctl_as(1001).args(["pin", "tool@3.0"]).ok();
    assert_eq!(current(m, 1001, "tool"), "3.0", "the slice pin overrides");
    assert_eq!(current(m, 1002, "tool"), "2.0", "the slice pin overrides");
    assert_eq!(current(m, 1003, "tool"), "1.0", "no slice pin: the node's");
    assert_eq!(
        current(m, 0, "tool"),
        "1.0",
        "root without a pin: the node's"
    );
    assert_eq!(
        pins_of(m, 1003),
        pins(&[]),
        "the node pin is not the slice's"
    );

    // `list` marks the slice's pin and the node's, as table and as JSON.
    let row = listed(m, 1001, "tool");
    assert_eq!(row["versions"], serde_json::json!(["1.0", "2.0", "3.0"]));
    assert_eq!(
        (&row["current"], &row["pinned"], &row["node_pin"]),
        (
            &Value::from("3.0"),
            &Value::from("3.0"),
            &Value::from("1.0")
        )
    );
    let row = listed(m, 1003, "tool");
    assert_eq!(
        (&row["current"], &row["pinned"], &row["node_pin"]),
        (&Value::from("1.0"), &Value::Null, &Value::from("1.0"))
    );
    let table = m.ctl_as(1003).args(["list"]).ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("PACKAGE") && lines[0].contains("PIN"));
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["tool", "1.0", "1.0", "(node)", "1.0", "2.0", "3.0"],
        "{table}"
    );
    let table = m.ctl_as(1002).args(["list", "to*"]).ok();
    assert_eq!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["tool", "2.0", "2.0", "1.0", "2.0", "3.0"],
        "{table}"
    );
    let table = m.ctl_as(1002).args(["pins"]).ok();
    assert_contains(&table, &["PACKAGE", "tool", "2.0", "pinned"]);
    let o = m.ctl_as(1002).args(["list", "nothing*"]).run();
    assert!(o.status.success() && o.stdout.is_empty(), "{o}");

    // Unpinning falls back to the node pin, then (node pin gone) to the newest.
    let set = json(&m.ctl_as(1001).args(["unpin", "--json", "tool"]).ok());
    assert_eq!(set["removed"], serde_json::json!(["tool"]));
    assert_eq!(current(m, 1001, "tool"), "1.0");
    m.ctl().args(["unpin", "--node", "tool"]).ok();
    assert_eq!(node_pins(m), pins(&[]));
    assert_eq!(current(m, 1001, "tool"), "3.0");
    assert_eq!(current(m, 1003, "tool"), "3.0");
    assert_eq!(current(m, 1002, "tool"), "2.0");

    // Pinning a version that does not exist: one line naming what there is.
    let err = fails_one_line(m.ctl_as(1001).args(["pin", "tool@9.9"]));
    assert_contains(&err, &["tool 9.9", "1.0, 2.0, 3.0"]);
    let err = fails_one_line(m.ctl_as(1001).args(["pin", "nosuch"]));
    assert_contains(&err, &["nosuch", "not in the repository"]);
    assert_eq!(pins_of(m, 1001), pins(&[]));
}

#[test]
fn a_slice_cannot_set_node_pins_nor_read_or_remove_another_slices_pins() {
    let n = node(TOOL, &[]);
    let m = &n.m;
    pin(m, 1001, "tool@1.0");
    m.ctl().args(["pin", "--node", "tool@2.0"]).ok();

    // Node pins are root's.
    let err = fails_one_line(m.ctl_as(1001).args(["pin", "--node", "tool@3.0"]));
    assert_contains(&err, &["only root", "--node", "uid 1001"]);
    let err = fails_one_line(m.ctl_as(1003).args(["unpin", "--node", "tool"]));
    assert_contains(&err, &["only root", "--node"]);
    let err = fails_one_line(m.ctl_as(1003).args(["pins", "--node"]));
    assert_contains(&err, &["only root"]);
    assert_eq!(node_pins(m), pins(&[("tool", "2.0", false)]));
    assert_eq!(current(m, 1003, "tool"), "2.0");

    // Another slice's pins are invisible: `pins` shows one's own, and there is no way to
    // name someone else.
    let set = json(&m.ctl_as(1002).args(["pins", "--json"]).ok());
    assert_eq!(set["owner"], "uid 1002");
    assert_eq!(pin_map(&set), pins(&[]));
    let o = m.ctl_as(1002).args(["pins"]).run();
    assert!(o.status.success(), "{o}");
    assert_eq!(o.stdout, "");
    assert_contains(&o.stderr, &["no pins for uid 1002"]);
    assert!(!o.stderr.contains("1001"), "{o}");
    let row = listed(m, 1002, "tool");
    assert_eq!(row["pinned"], Value::Null, "{row}");
    assert_eq!(row["current"], "2.0", "{row}");
    for args in [
        &["pins", "--uid", "1001"][..],
        &["pins", "--owner", "1001"][..],
        &["unpin", "tool", "--uid", "1001"][..],
    ] {
        let o = m.ctl_as(1002).args(args).run();
        o.assert_clean_failure();
        assert_eq!(o.status.code(), Some(2), "a usage error\n{o}");
    }

    // Unpinning what only another slice pinned: "not pinned", that pin intact.
    let err = fails_one_line(m.ctl_as(1002).args(["unpin", "tool"]));
    assert_contains(&err, &["tool is not pinned for uid 1002"]);
    assert_eq!(pins_of(m, 1001), pins(&[("tool", "1.0", false)]));
    assert_eq!(current(m, 1001, "tool"), "1.0");
    // Pinning in one's own slice leaves the other's alone.
    pin(m, 1002, "tool@3.0");
    assert_eq!(pins_of(m, 1001), pins(&[("tool", "1.0", false)]));
    m.ctl_as(1002).args(["unpin", "tool"]).ok();
    assert_eq!(pins_of(m, 1001), pins(&[("tool", "1.0", false)]));
    assert_eq!(current(m, 1001, "tool"), "1.0");
    assert_eq!(current(m, 1002, "tool"), "2.0");

    // Root-only maintenance commands are refused to slices too.
    let err = fails_one_line(m.ctl_as(1001).args(["verify"]));
    assert_contains(&err, &["only root"]);
    let err = fails_one_line(m.ctl_as(1001).args(["log-level", "trace"]));
    assert_contains(&err, &["only root"]);
}

#[test]
fn a_forged_identity_inside_a_request_changes_nothing() {
    let n = node(TOOL, &[]);
    let m = &n.m;
    let sock = m.socket();
    // The same raw client can act: a plain request as uid 1001 pins for uid 1001.
    let ok = raw_as(
        1001,
        sock,
        br#"{"protocol":1,"command":{"pin":{"name":"tool","version":"2.0","node":false}}}
"#,
    );
    let v = json(ok.lines().last().unwrap());
    assert_eq!(v["ok"]["pins"]["owner"], "uid 1001", "{ok}");
    assert_eq!(pins_of(m, 1001), pins(&[("tool", "2.0", false)]));

    let forged: &[&[u8]] = &[
        // An identity field beside the command, or inside it.
        br#"{"protocol":1,"uid":0,"command":{"pin":{"name":"tool","version":"1.0","node":true}}}"#,
        br#"{"uid":1002,"protocol":1,"command":{"pin":{"name":"tool","version":"1.0","node":false}}}"#,
        br#"{"protocol":1,"command":{"pin":{"name":"tool","version":"1.0","node":false,"uid":1002}}}"#,
        br#"{"protocol":1,"command":{"pin":{"name":"tool","version":"1.0","node":false,"owner":"node"}}}"#,
        br#"{"protocol":1,"command":{"unpin":{"name":"tool","node":false,"uid":1002}}}"#,
        br#"{"protocol":1,"command":{"pins":{"node":false,"uid":1002}}}"#,
        // The node flag from a slice.
        br#"{"protocol":1,"command":{"pin":{"name":"tool","version":"1.0","node":true}}}"#,
        br#"{"protocol":1,"command":{"unpin":{"name":"tool","node":true}}}"#,
        br#"{"protocol":1,"command":{"pins":{"node":true}}}"#,
        br#"{"protocol":1,"uid":0,"command":"verify"}"#,
        br#"{"protocol":1,"command":"verify"}"#,
        br#"{"protocol":1,"command":{"log-level":{"level":"trace"}}}"#,
        // The same key twice: serde takes neither silently.
        br#"{"protocol":1,"command":{"pin":{"name":"tool","version":"1.0","node":false,"node":true}}}"#,
    ];
    m.ctl_as(1002).args(["pin", "tool@3.0"]).ok();
    for req in forged {
        let mut line = req.to_vec();
        line.push(b'\n');
        let reply = raw_as(1001, sock, &line);
        let msg = refused(&reply);
        let text = String::from_utf8_lossy(req);
        if text.contains("\"uid\"") || text.contains("\"owner\"") {
            assert_contains(&msg, &["malformed request", "unknown field"]);
        } else if text.contains("\"node\":false,\"node\"") {
            assert_contains(&msg, &["malformed request", "duplicate field"]);
        } else {
            assert_contains(&msg, &["only root", "uid 1001"]);
        }
    }
    // Nothing changed: the node has no pins, 1002 keeps its own, 1001 keeps its own.
    assert_eq!(node_pins(m), pins(&[]));
    assert_eq!(pins_of(m, 1001), pins(&[("tool", "2.0", false)]));
    assert_eq!(pins_of(m, 1002), pins(&[("tool", "3.0", false)]));
    assert_eq!(current(m, 1001, "tool"), "2.0");
    assert_eq!(current(m, 1002, "tool"), "3.0");
    assert_eq!(current(m, 1003, "tool"), "3.0");
    assert_eq!(current(m, 0, "tool"), "3.0");
    assert_eq!(pins_of(m, 0), pins(&[]));
}

// ---------------------------------------------------------------------------------------
// Bad clients

/// Sends `bytes` on a fresh connection (as root; the uid plays no part here), closes the
/// writing side, and returns every line the daemon answered before closing.
fn send_raw(sock: &Path, bytes: &[u8]) -> Vec<String> {
    let s = UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(SOON)).unwrap();
    let mut w = s.try_clone().unwrap();
    let bytes = bytes.to_vec();
    // The daemon may stop reading (and close) before it has everything; so write on the
    // side, ignoring EPIPE.
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&bytes);
        let _ = w.shutdown(std::net::Shutdown::Write);
    });
    let mut lines = Vec::new();
    let mut r = BufReader::new(&s);
    loop {
        let mut l = String::new();
        match r.read_line(&mut l) {
            Ok(0) => break,
            Ok(_) => lines.push(l),
            // Data the daemon did not read makes the close a reset, after its reply.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the reply: {e} (so far {lines:?})"),
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    lines
}

#[test]
fn garbage_and_oversized_requests_get_an_error_and_leave_the_daemon_serving() {
    let n = node(TOOL, &[]);
    let m = &n.m;
    pin(m, 1001, "tool@1.0");
    let mut random = fixtures::pseudo_random(6, 5000);
    random.push(b'\n');
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("random bytes", random, "malformed request"),
        (
            "random bytes, no end of line",
            fixtures::pseudo_random(7, 3000)
                .into_iter()
                .filter(|b| *b != b'\n')
                .collect(),
            "ended before its end of line",
        ),
        ("an empty line", b"\n".to_vec(), "malformed request"),
        (
            "invalid JSON",
            b"{\"protocol\":1,\"command\":{\"pin\":\n".to_vec(),
            "malformed request",
        ),
        ("not an object", b"[1,2,3]\n".to_vec(), "malformed request"),
        (
            "an unknown command",
            b"{\"protocol\":1,\"command\":{\"frobnicate\":{}}}\n".to_vec(),
            "unknown variant",
        ),
        (
            "a name that is a path",
            b"{\"protocol\":1,\"command\":{\"pin\":{\"name\":\"../../etc\",\"version\":null,\"node\":false}}}\n"
                .to_vec(),
            "malformed request",
        ),
        (
            "another protocol",
            b"{\"protocol\":99,\"command\":\"status\"}\n".to_vec(),
            "protocol 99",
        ),
        (
            "a NUL byte",
            b"{\"protocol\":1,\0\"command\":\"status\"}\n".to_vec(),
            "malformed request",
        ),
        (
            "over 64 KiB without an end of line",
            vec![b'a'; 200 * 1024],
            "longer than 65536 bytes",
        ),
        (
            "a valid request padded over 64 KiB",
            {
                let mut v = b"{\"protocol\":1,\"command\":\"status\"".to_vec();
                v.extend(std::iter::repeat_n(b' ', 70 * 1024));
                v.extend(b"}\n");
                v
            },
            "longer than 65536 bytes",
        ),
        (
            "two requests on one line",
            b"{\"protocol\":1,\"command\":\"status\"}{\"protocol\":1,\"command\":\"status\"}\n"
                .to_vec(),
            "malformed request",
        ),
    ];
    for (what, bytes, expect) in &cases {
        let lines = send_raw(m.socket(), bytes);
        assert_eq!(
            lines.len(),
            1,
            "{what}: expected one error line, got {lines:?}"
        );
        let msg = refused(&lines[0]);
        assert_contains(&msg, &[expect]);
        assert!(
            msg.len() < 400 && !msg.contains('\n'),
            "{what}: the message should be one short line: {msg:?}"
        );
        // The daemon still answers other clients, and the mount still works.
        let st = json(&m.ctl_as(1002).args(["status", "--json"]).ok());
        assert_eq!(st["index"]["version"], 2, "{what}");
    }
    // A client that connects and leaves at once, many times.
    for _ in 0..50 {
        drop(UnixStream::connect(m.socket()).unwrap());
    }
    m.ctl_as(1003).arg("status").ok();
    assert_eq!(current(m, 1001, "tool"), "1.0");
    assert_eq!(pins_of(m, 1001), pins(&[("tool", "1.0", false)]));
    assert_eq!(
        fs::read_to_string(m.path("tool/2.0/VERSION")).unwrap(),
        "tool 2.0\n"
    );
    assert!(!m.log().contains("panicked"), "{}", m.log());
}

#[test]
fn a_half_sent_request_is_dropped_after_10s_and_others_are_served_meanwhile() {
    let n = node(TOOL, &[]);
    let m = &n.m;
    let started = Instant::now();
    let mut half = UnixStream::connect(m.socket()).unwrap();
    half.write_all(br#"{"protocol":1,"command":{"pin":{"name":"to"#)
        .unwrap();
    // Another slice, and root, are served while it dangles.
    let st = json(&m.ctl_as(1002).args(["status", "--json"]).ok());
    assert_eq!(st["index"]["version"], 2);
    pin(m, 1002, "tool@1.0");
    m.ctl().args(["pins", "--node"]).ok();
    assert_eq!(current(m, 1002, "tool"), "1.0");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the other clients were not served at once ({:?})",
        started.elapsed()
    );
    // The dangling client gets an error line, then the connection closes.
    half.set_read_timeout(Some(margin(Duration::from_secs(10))))
        .unwrap();
    let mut got = String::new();
    let r = half.read_to_string(&mut got);
    let waited = started.elapsed();
    assert!(
        r.is_ok(),
        "the daemon did not close it: {r:?} after {waited:?}"
    );
    let msg = refused(&got);
    assert_contains(&msg, &["not complete within 10s"]);
    assert!(
        waited >= Duration::from_secs(9) && waited <= margin(Duration::from_secs(10)),
        "dropped after {waited:?}, not about 10 s"
    );
    m.ctl_as(1003).arg("status").ok();
    assert_eq!(pins_of(m, 1002), pins(&[("tool", "1.0", false)]));
}

#[test]
fn a_slice_holding_many_half_sent_requests_does_not_lock_out_the_others() {
    let n = node(TOOL, &[]);
    let m = &n.m;
    // uid 1001 opens 100 connections (more than the daemon serves at once), sends half a
    // request on each, and keeps them open until it is killed (dropped).
    const FLOOD: &str = r#"
import socket, sys, time
held = []
for i in range(100):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    try:
        s.sendall(b'{"protocol":1,"comm')
    except OSError:
        pass  # refused at once: over this uid's share
    held.append(s)
print("holding", len(held), flush=True)
time.sleep(600)
"#;
    let mut flood = as_uid(1001)
        .arg("/usr/bin/python3")
        .arg("-c")
        .arg(FLOOD)
        .arg(m.socket())
        .spawn();
    wait_until(SOON, "uid 1001 to hold its connections", || {
        flood.stdout().contains("holding 100")
    });
    let started = Instant::now();
    // Other slices and root are served meanwhile, at once.
    let st = json(&m.ctl_as(1002).args(["status", "--json"]).ok());
    assert_eq!(st["index"]["version"], 2);
    pin(m, 1003, "tool@2.0");
    m.ctl().arg("status").ok();
    // The flooding slice itself is told why.
    let err = fails_one_line(m.ctl_as(1001).arg("status"));
    assert_contains(&err, &["uid 1001 already has 8 requests open"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "others waited {:?}",
        started.elapsed()
    );
    flood.assert_running();
    drop(flood);
    harness::wait_for(SOON, "uid 1001 to be served again", || {
        let o = m.ctl_as(1001).arg("status").run();
        if o.status.success() {
            Ok(())
        } else {
            Err(o.to_string())
        }
    });
}

// ---------------------------------------------------------------------------------------
// Dependencies

const DEPS: &[(&str, &str, &[&str])] = &[
    ("lib", "1.0", &[]),
    ("lib", "2.0", &[]),
    ("lib", "3.0", &[]),
    ("c", "1.0", &[]),
    ("app", "1.0", &["lib (>= 2)"]),
    ("old", "1.0", &["lib (<< 3)"]),
    ("either", "1.0", &["c | lib"]),
    ("fallback", "1.0", &["c (>= 5) | lib (<< 2)"]),
    ("sys", "1.0", &["libc6 (>= 2.30), lib (= 2.0)"]),
    ("bad", "1.0", &["lib (>= 4)"]),
    ("top", "1.0", &["bad"]),
];

#[test]
fn pinning_resolves_dependencies_to_the_newest_allowed_versions() {
    let n = node(DEPS, &[]);
    let m = &n.m;

    // lib (>= 2): the newest, 3.0, pinned as automatic.
    let set = pin(m, 1001, "app");
    assert_eq!(
        pin_map(&set),
        pins(&[("app", "1.0", false), ("lib", "3.0", true)])
    );
    assert_eq!(
        pin_map(&serde_json::json!({"pins": set["added"]})),
        pins(&[("app", "1.0", false), ("lib", "3.0", true)])
    );
    // lib (<< 3): the newest below, 2.0.
    let o = m.ctl_as(1002).args(["pin", "old"]).run();
    assert!(o.status.success(), "{o}");
    assert_contains(
        &o.stderr,
        &["pinned old 1.0", "pinned lib 2.0 (automatic, a dependency)"],
    );
    assert_eq!(
        pins_of(m, 1002),
        pins(&[("old", "1.0", false), ("lib", "2.0", true)])
    );
    assert_eq!(current(m, 1001, "lib"), "3.0");
    assert_eq!(current(m, 1002, "lib"), "2.0");
    assert_eq!(current(m, 1003, "lib"), "3.0");
    let table = m.ctl_as(1002).arg("pins").ok();
    assert_contains(&table, &["automatic", "pinned"]);

    // Alternatives: the first that can be satisfied.
    assert_eq!(
        pin_map(&pin(m, 1003, "either")),
        pins(&[("either", "1.0", false), ("c", "1.0", true)])
    );
    assert_eq!(
        pin_map(&pin(m, 1004, "fallback")),
        pins(&[("fallback", "1.0", false), ("lib", "1.0", true)])
    );
    // An alternative already pinned is used rather than pinning another.
    pin(m, 1005, "lib@2.0");
    assert_eq!(
        pin_map(&pin(m, 1005, "either")),
        pins(&[("either", "1.0", false), ("lib", "2.0", false)])
    );

    // A dependency the repository does not have is left to the system, and said so.
    let set = pin(m, 1006, "sys");
    assert_eq!(
        pin_map(&set),
        pins(&[("sys", "1.0", false), ("lib", "2.0", true)])
    );
    assert_eq!(set["external"], serde_json::json!(["libc6 (>= 2.30)"]));
    let o = m.ctl_as(1007).args(["pin", "sys"]).run();
    assert!(o.status.success(), "{o}");
    assert_contains(
        &o.stderr,
        &["libc6 (>= 2.30)", "assumed provided by the system"],
    );

    // A version that satisfies every pinned constraint at once: app wants lib >= 2, old
    // wants lib << 3; 2.0 satisfies both, so pinning both gives lib 2.0.
    pin(m, 1008, "app");
    let set = pin(m, 1008, "old");
    assert_eq!(
        pin_map(&set),
        pins(&[
            ("app", "1.0", false),
            ("old", "1.0", false),
            ("lib", "2.0", true)
        ]),
        "{set}"
    );
}

#[test]
fn an_unsatisfiable_dependency_is_refused_naming_it_and_changes_nothing() {
    let n = node(DEPS, &[]);
    let m = &n.m;

    // No version of lib is >= 4: the clause and what there is are named.
    let err = fails_one_line(m.ctl_as(1003).args(["pin", "bad"]));
    assert_contains(
        &err,
        &[
            "cannot pin bad 1.0",
            "\"lib (>= 4)\"",
            "no accepted version of lib",
            "1.0, 2.0, 3.0",
        ],
    );
    assert_eq!(pins_of(m, 1003), pins(&[]));
    // Through a chain: named from the top.
    let err = fails_one_line(m.ctl_as(1003).args(["pin", "top"]));
    assert_contains(
        &err,
        &[
            "cannot pin top 1.0",
            "top 1.0 needs bad 1.0",
            "\"lib (>= 4)\"",
        ],
    );
    assert_eq!(pins_of(m, 1003), pins(&[]));
    // With pins already held, they stay exactly as they were.
    pin(m, 1001, "app");
    let before = pins_of(m, 1001);
    for spec in ["bad", "top", "top@1.0"] {
        let err = fails_one_line(m.ctl_as(1001).args(["pin", spec]));
        assert_contains(&err, &["\"lib (>= 4)\"", "and lib (>= 2) of app 1.0"]);
        assert_eq!(pins_of(m, 1001), before);
    }
    // A pin by hand that breaks what an earlier pin needs: that one is named.
    let err = fails_one_line(m.ctl_as(1001).args(["pin", "lib@1.0"]));
    assert_contains(
        &err,
        &[
            "cannot pin lib 1.0",
            "app 1.0 (pinned before) depends on \"lib (>= 2)\"",
            "lib 1.0 is pinned",
        ],
    );
    assert_eq!(pins_of(m, 1001), before);
    // Against a version pinned by hand: lib 3.0 is pinned, old needs lib << 3.
    pin(m, 1002, "lib@3.0");
    let err = fails_one_line(m.ctl_as(1002).args(["pin", "old"]));
    assert_contains(
        &err,
        &["cannot pin old 1.0", "\"lib (<< 3)\"", "lib 3.0 is pinned"],
    );
    assert_eq!(pins_of(m, 1002), pins(&[("lib", "3.0", false)]));
    // And the refused versions never became current for anyone.
    assert_eq!(current(m, 1001, "lib"), "3.0");
    assert_eq!(pins_of(m, 1001), before);
    assert_eq!(node_pins(m), pins(&[]));
    // Root's node pin gets the same treatment.
    let err = fails_one_line(m.ctl().args(["pin", "--node", "top"]));
    assert_contains(&err, &["\"lib (>= 4)\""]);
    assert_eq!(node_pins(m), pins(&[]));
}

#[test]
fn unpin_removes_automatic_pins_nothing_needs_any_more() {
    let n = node(DEPS, &[]);
    let m = &n.m;
    pin(m, 1001, "either@1.0");
    pin(m, 1001, "old");
    // c came with `either` (its first alternative); lib 2.0 with `old`.
    assert_eq!(
        pins_of(m, 1001),
        pins(&[
            ("old", "1.0", false),
            ("lib", "2.0", true),
            ("either", "1.0", false),
            ("c", "1.0", true)
        ])
    );
    assert_eq!(current(m, 1001, "lib"), "2.0");
    // An automatic pin something needs cannot go alone.
    let err = fails_one_line(m.ctl_as(1001).args(["unpin", "lib"]));
    assert_contains(&err, &["lib was pinned as a dependency of old 1.0"]);
    // Dropping `old` drops lib (nothing else needs it); c stays for `either`.
    let set = json(&m.ctl_as(1001).args(["unpin", "--json", "old"]).ok());
    let mut removed: Vec<&str> = set["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    removed.sort();
    assert_eq!(removed, ["lib", "old"]);
    assert_eq!(
        pins_of(m, 1001),
        pins(&[("either", "1.0", false), ("c", "1.0", true)])
    );
    assert_eq!(current(m, 1001, "lib"), "3.0");
    let o = m.ctl_as(1001).args(["unpin", "either"]).run();
    assert!(o.status.success(), "{o}");
    assert_contains(&o.stderr, &["unpinned either", "unpinned c"]);
    assert_eq!(pins_of(m, 1001), pins(&[]));

    // A dependency shared by two pins stays until the last one goes.
    pin(m, 1002, "sys");
    pin(m, 1002, "app");
    assert_eq!(
        pins_of(m, 1002),
        pins(&[
            ("app", "1.0", false),
            ("sys", "1.0", false),
            ("lib", "2.0", true)
        ])
    );
    m.ctl_as(1002).args(["unpin", "sys"]).ok();
    assert_eq!(
        pins_of(m, 1002),
        pins(&[("app", "1.0", false), ("lib", "2.0", true)])
    );
    m.ctl_as(1002).args(["unpin", "app"]).ok();
    assert_eq!(pins_of(m, 1002), pins(&[]));
    // A pin made by hand is never removed as garbage.
    pin(m, 1003, "lib@2.0");
    pin(m, 1003, "app");
    m.ctl_as(1003).args(["unpin", "app"]).ok();
    assert_eq!(pins_of(m, 1003), pins(&[("lib", "2.0", false)]));
}

// ---------------------------------------------------------------------------------------
// Restart, prefetch, no daemon

#[test]
fn pins_survive_a_restart() {
    let n = node(DEPS, &[]);
    let mut m = n.m;
    pin(&m, 1001, "lib@1.0");
    pin(&m, 1002, "old");
    m.ctl().args(["pin", "--node", "app"]).ok();
    let snapshot = |m: &Mount| {
        let mut s = BTreeMap::new();
        for uid in [0, 1001, 1002, 1003] {
            s.insert(
                uid,
                (
                    pins_of(m, uid),
                    current(m, uid, "lib"),
                    current(m, uid, "app"),
                ),
            );
        }
        (s, node_pins(m))
    };
    let before = snapshot(&m);
    assert_eq!(before.0[&1001].1, "1.0");
    assert_eq!(before.0[&1002].1, "2.0");
    assert_eq!(
        before.0[&1003].1, "3.0",
        "the node pins app, and lib 3.0 with it"
    );
    assert_eq!(
        before.1,
        pins(&[("app", "1.0", false), ("lib", "3.0", true)])
    );

    m.unmount();
    m.restart();
    assert_eq!(snapshot(&m), before, "after umount and a restart");
    // And across a kill -9 with the origin gone.
    n.origin.stop();
    m.kill9();
    m.restart();
    assert_eq!(snapshot(&m), before, "after kill -9 and an offline restart");
}

#[test]
fn prefetch_fetches_a_whole_version_and_its_dependencies_for_offline_use() {
    let t = TestDir::new();
    let repo = Repo::new(t.join("repo"));
    let alice = repo.publisher("alice");
    let mut trees = BTreeMap::new();
    for (name, version, size, deps) in [
        ("lib", "2.0", 1000, &[][..]),
        ("lib", "3.0", 2_500_000, &[][..]),
        ("app", "1.0", 300_000, &["lib (>= 2), libc6"][..]),
        ("other", "1.0", 1000, &[][..]),
    ] {
        let src = package_tree(&t, name, version, size);
        repo.add(&alice, name, version, &src, deps);
        trees.insert(format!("{name} {version}"), src);
    }
    repo.publish();
    let origin = Origin::serve(repo.dir());
    let m = Mount::new(&origin.url(), &repo.trust_toml(&[(&alice, &["*"])])).start();
    origin.reset_counts();

    let r = json(&m.ctl_as(1001).args(["prefetch", "--json", "app"]).ok());
    let mut versions: Vec<&str> = r["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    versions.sort();
    assert_eq!(versions, ["app 1.0", "lib 3.0"], "{r}");
    let (files, bytes) = ["app 1.0", "lib 3.0"]
        .iter()
        .map(|nv| tree_size(&trees[*nv]))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!(
        (r["files"].as_u64(), r["bytes"].as_u64()),
        (Some(files), Some(bytes)),
        "{r}"
    );
    assert!(r["fetched_bytes"].as_u64().unwrap() > 0, "{r}");
    // Every content object of both versions came from the origin: 3 chunks of lib's
    // data, app's data, 2 VERSION files, 2 scripts (the empty file has none).
    let r_ = &repo;
    let want: Vec<PathBuf> = ["lib 3.0", "app 1.0"]
        .iter()
        .flat_map(|nv| {
            let (n, v) = nv.split_once(' ').unwrap();
            ["VERSION", &format!("bin/{n}"), "share/data.bin"]
                .into_iter()
                .flat_map(move |p| r_.objects_for(n, v, p))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(want.len(), 8);
    for o in &want {
        let name = format!("/{}", o.strip_prefix(repo.dir()).unwrap().display());
        assert!(
            origin.count(&name) >= 1,
            "{name} was not fetched\n{}",
            origin.describe()
        );
    }
    // Nothing of what was not asked for.
    for p in repo.objects_for("lib", "2.0", "share/data.bin") {
        let name = format!("/{}", p.strip_prefix(repo.dir()).unwrap().display());
        assert_eq!(
            origin.count(&name),
            0,
            "{name} fetched\n{}",
            origin.describe()
        );
    }
    // Prefetched is cached: again, nothing is downloaded; the human report says so.
    let o = m.ctl_as(1001).args(["prefetch", "app@1.0"]).run();
    assert!(o.status.success(), "{o}");
    assert_contains(&o.stderr, &["app 1.0", "8 files", "(0 bytes downloaded)"]);
    assert!(
        !o.stderr.contains('\r'),
        "no progress bar off a terminal\n{o}"
    );

    // Offline: every file of both versions reads back identical.
    origin.stop();
    for nv in ["app 1.0", "lib 3.0"] {
        let (n, v) = nv.split_once(' ').unwrap();
        Cmd::new("diff")
            .arg("-r")
            .arg(&trees[nv])
            .arg(m.path(&format!("{n}/{v}")))
            .ok();
    }
    as_uid(1001)
        .arg("sh")
        .arg(m.path("app/current/bin/app"))
        .ok();
    // What was not prefetched is not there: a one-line error, exit 1.
    let err = fails_one_line(m.ctl_as(1001).args(["prefetch", "other"]));
    assert_contains(&err, &["other 1.0"]);
    let err = fails_one_line(m.ctl_as(1001).args(["prefetch", "nosuch"]));
    assert_contains(&err, &["nosuch is not in the repository"]);
}

#[test]
fn storkctl_never_succeeds_silently_when_the_daemon_hangs_up() {
    // A "daemon" that accepts and closes at once, without reading or answering: storkctl
    // must say so, whether its request went out before the close or not (a broken pipe
    // on the socket is not a closed stdout).
    let t = TestDir::new();
    let sock = t.join("rude.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..40 {
            let (s, _) = l.accept().unwrap();
            drop(s);
        }
    });
    for _ in 0..40 {
        let o = Cmd::bin("storkctl")
            .arg("--socket")
            .arg(&sock)
            .arg("status")
            .run();
        o.assert_clean_failure();
        let line = one_line(&o);
        assert!(
            line.contains("closed the connection without answering")
                || line.contains("cannot send the request")
                || line.contains("no answer from the daemon"),
            "{o}"
        );
    }
    server.join().unwrap();
}

#[test]
fn storkctl_without_a_daemon_exits_3_with_one_line() {
    let t = TestDir::new();
    let check = |o: Outcome| {
        assert_eq!(o.status.code(), Some(3), "expected exit 3\n{o}");
        let line = one_line(&o);
        assert_contains(&line, &["cannot reach the Stork daemon"]);
        assert!(!line.contains("exit code"), "{o}");
        line
    };
    // No socket at all.
    let sock = t.join("none.sock");
    for args in [
        &["status"][..],
        &["pins"],
        &["pin", "x"],
        &["list", "--json"],
    ] {
        let line = check(
            Cmd::bin("storkctl")
                .arg("--socket")
                .arg(&sock)
                .args(args)
                .run(),
        );
        assert_contains(&line, &[sock.to_str().unwrap(), "--socket"]);
    }
    // From the environment, as a slice.
    check(
        as_uid(1001)
            .arg(bin("storkctl"))
            .arg("status")
            .env("STORK_SOCKET", &sock)
            .run(),
    );
    // A socket file nobody listens on (a daemon that died).
    let l = std::os::unix::net::UnixListener::bind(t.join("dead.sock")).unwrap();
    drop(l);
    check(
        Cmd::bin("storkctl")
            .arg("--socket")
            .arg(t.join("dead.sock"))
            .arg("status")
            .run(),
    );
    // A daemon that was unmounted removed its socket.
    let mut n = node(TOOL, &[]);
    n.m.ctl_as(1001).arg("status").ok();
    n.m.unmount();
    check(n.m.ctl_as(1001).arg("status").run());
    let _ = (&n.repo, &n.alice, &n.t);
    // A name refused before anything is sent: one line too.
    let o = Cmd::bin("storkctl").args(["pin", "../etc"]).run();
    assert_eq!(o.status.code(), Some(1), "{o}");
    one_line(&o);
}
