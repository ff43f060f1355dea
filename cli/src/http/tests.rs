//! End-to-end tests over real TCP on 127.0.0.1, with std clients and curl.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

const INDEX: &[u8] = br#"{"version":1,"packages":[]}"#;

fn object() -> Vec<u8> {
    (0..100_000u32).map(|i| (i % 251) as u8).collect()
}

/// A repository tree with traps: hidden files, a directory, symlinks out.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(p.join("index.json"), INDEX).unwrap();
    std::fs::create_dir_all(p.join("objects/ab")).unwrap();
    std::fs::write(p.join("objects/ab/abcdef"), object()).unwrap();
    std::fs::write(p.join("objects/ab/empty"), b"").unwrap();
    std::fs::write(p.join(".lock"), b"SECRET-LOCK").unwrap();
    std::fs::create_dir_all(p.join(".tmp")).unwrap();
    std::fs::write(p.join(".tmp/partial"), b"SECRET-TMP").unwrap();
    std::fs::create_dir_all(p.join("sub")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p.join("passwd")).unwrap();
    std::os::unix::fs::symlink("/etc", p.join("etc")).unwrap();
    std::os::unix::fs::symlink("../index.json", p.join("objects/link.json")).unwrap();
    dir
}

fn start_with(handler: Arc<dyn Handler>, config: ServerConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    Server::spawn(listener, handler, config).expect("spawn")
}

fn start_repo() -> (tempfile::TempDir, Server) {
    let dir = repo();
    let files = StaticFiles::new(dir.path().to_path_buf()).expect("static files");
    let server = start_with(Arc::new(files), ServerConfig::default());
    (dir, server)
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    BufReader::new(s)
}

/// Read one response; the body per Content-Length, or to EOF without it.
fn read_resp(r: &mut BufReader<TcpStream>, head_only: bool) -> Resp {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let mut parts = line.split_whitespace();
    assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
    let status = parts.next().and_then(|s| s.parse().ok()).expect("status");
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("header");
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').expect("colon");
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 304 || status == 204 {
        return resp;
    }
    match resp.header("Content-Length") {
        Some(n) => {
            let mut body = vec![0; n.parse().expect("length")];
            r.read_exact(&mut body).expect("body");
            resp.body = body;
        }
        None => {
            r.read_to_end(&mut resp.body).expect("body to eof");
        }
    }
    resp
}

fn send(r: &mut BufReader<TcpStream>, raw: &str) {
    r.get_mut().write_all(raw.as_bytes()).expect("write");
}

/// One request on a fresh connection.
fn get(addr: SocketAddr, path: &str, extra: &str) -> Resp {
    let mut c = connect(addr);
    send(
        &mut c,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n"),
    );
    read_resp(&mut c, false)
}

fn raw_status(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut c = connect(addr);
    c.get_mut().write_all(raw).expect("write");
    read_resp(&mut c, false)
}

fn at_eof(c: &mut BufReader<TcpStream>) -> bool {
    let mut b = [0u8; 1];
    matches!(c.read(&mut b), Ok(0) | Err(_))
}

#[test]
fn get_and_head_lengths() {
    let (_d, srv) = start_repo();
    let mut c = connect(srv.local_addr());
    send(&mut c, "GET /index.json HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = read_resp(&mut c, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, INDEX);
    assert_eq!(r.header("Content-Length"), Some(&*INDEX.len().to_string()));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Server"), Some("stork-repo"));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert!(r.header("Date").and_then(parse_http_date).is_some());
    assert!(r
        .header("Last-Modified")
        .and_then(parse_http_date)
        .is_some());
    assert!(r.header("ETag").is_some_and(|e| e.starts_with('"')));
    // HEAD on the same connection: same length, no body (the next response
    // would be garbled if one were sent).
    send(
        &mut c,
        "HEAD /objects/ab/abcdef HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let h = read_resp(&mut c, true);
    assert_eq!(h.status, 200);
    assert_eq!(h.header("Content-Length"), Some("100000"));
    assert_eq!(h.header("Content-Type"), Some("application/octet-stream"));
    send(&mut c, "GET /objects/ab/abcdef HTTP/1.1\r\nHost: t\r\n\r\n");
    let g = read_resp(&mut c, false);
    assert_eq!(g.body, object());
    send(&mut c, "GET /objects/ab/empty HTTP/1.1\r\nHost: t\r\n\r\n");
    let e = read_resp(&mut c, false);
    assert_eq!((e.status, e.header("Content-Length")), (200, Some("0")));
}

#[test]
fn keep_alive_and_pipelining() {
    let (_d, srv) = start_repo();
    let mut c = connect(srv.local_addr());
    send(&mut c, "GET /index.json HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(read_resp(&mut c, false).body, INDEX);
    send(&mut c, "GET /index.json HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = read_resp(&mut c, false);
    assert_eq!((r.status, r.header("Connection")), (200, None));
    // Two pipelined requests in one write, the second asking to close.
    send(
        &mut c,
        "GET /index.json HTTP/1.1\r\n\r\nGET /objects/ab/abcdef HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(read_resp(&mut c, false).body, INDEX);
    let last = read_resp(&mut c, false);
    assert_eq!(last.body, object());
    assert_eq!(last.header("Connection"), Some("close"));
    assert!(at_eof(&mut c));

    // HTTP/1.0: close by default, keep-alive on request.
    let mut c = connect(srv.local_addr());
    send(
        &mut c,
        "GET /index.json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let r = read_resp(&mut c, false);
    assert_eq!(r.header("Connection"), Some("keep-alive"));
    send(&mut c, "GET /index.json HTTP/1.0\r\n\r\n");
    let r = read_resp(&mut c, false);
    assert_eq!((r.status, r.header("Connection")), (200, Some("close")));
    assert!(at_eof(&mut c));
}

#[test]
fn range_requests() {
    let (_d, srv) = start_repo();
    let a = srv.local_addr();
    let obj = object();
    let p = "/objects/ab/abcdef";
    let r = get(a, p, "Range: bytes=10-19\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 10-19/100000"));
    assert_eq!(r.body, &obj[10..20]);
    let r = get(a, p, "Range: bytes=99990-\r\n");
    assert_eq!(
        (r.status, r.header("Content-Range")),
        (206, Some("bytes 99990-99999/100000"))
    );
    assert_eq!(r.body, &obj[99990..]);
    let r = get(a, p, "Range: bytes=-5\r\n");
    assert_eq!(
        (r.status, r.header("Content-Range")),
        (206, Some("bytes 99995-99999/100000"))
    );
    assert_eq!(r.body, &obj[99995..]);
    let r = get(a, p, "Range: bytes=99999-200000\r\n");
    assert_eq!((r.status, r.body.len()), (206, 1));
    let r = get(a, p, "Range: bytes=100000-\r\n");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some("bytes */100000"));
    let r = get(a, "/objects/ab/empty", "Range: bytes=-1\r\n");
    assert_eq!(
        (r.status, r.header("Content-Range")),
        (416, Some("bytes */0"))
    );
    for ignored in ["bytes=0-1,5-9", "bytes=9-1", "bytes=abc", "lines=1-2"] {
        let r = get(a, p, &format!("Range: {ignored}\r\n"));
        assert_eq!((r.status, r.body.len()), (200, obj.len()), "{ignored}");
    }
    // HEAD ignores Range.
    let mut c = connect(a);
    send(
        &mut c,
        &format!("HEAD {p} HTTP/1.1\r\nRange: bytes=0-0\r\n\r\n"),
    );
    let h = read_resp(&mut c, true);
    assert_eq!(
        (h.status, h.header("Content-Length")),
        (200, Some("100000"))
    );
}

#[test]
fn conditional_requests() {
    let (_d, srv) = start_repo();
    let a = srv.local_addr();
    let first = get(a, "/index.json", "");
    let etag = first.header("ETag").expect("etag").to_string();
    let lm = first.header("Last-Modified").expect("lm").to_string();
    for inm in [
        etag.clone(),
        format!("\"nope\", {etag}"),
        format!("W/{etag}"),
        "*".into(),
    ] {
        let r = get(a, "/index.json", &format!("If-None-Match: {inm}\r\n"));
        assert_eq!(r.status, 304, "{inm}");
        assert!(r.header("Content-Length").is_none());
        assert_eq!(r.header("ETag"), Some(&*etag));
        assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    }
    // A 304 carries no body: the connection stays usable.
    let mut c = connect(a);
    send(
        &mut c,
        &format!("GET /index.json HTTP/1.1\r\nIf-None-Match: {etag}\r\n\r\n"),
    );
    assert_eq!(read_resp(&mut c, false).status, 304);
    send(&mut c, "GET /index.json HTTP/1.1\r\n\r\n");
    assert_eq!(read_resp(&mut c, false).body, INDEX);

    assert_eq!(
        get(a, "/index.json", "If-None-Match: \"other\"\r\n").status,
        200
    );
    let r = get(a, "/index.json", &format!("If-Modified-Since: {lm}\r\n"));
    assert_eq!(r.status, 304);
    let old = "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
    assert_eq!(get(a, "/index.json", old).status, 200);
    assert_eq!(
        get(a, "/index.json", "If-Modified-Since: garbage\r\n").status,
        200
    );
    // If-None-Match takes precedence over If-Modified-Since.
    let both = format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {lm}\r\n");
    assert_eq!(get(a, "/index.json", &both).status, 200);
}

#[test]
fn cache_control_per_path() {
    let (d, srv) = start_repo();
    std::fs::write(d.path().join("other.bin"), b"x").unwrap();
    let a = srv.local_addr();
    let r = get(a, "/objects/ab/abcdef", "");
    assert_eq!(
        r.header("Cache-Control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        get(a, "/index.json", "").header("Cache-Control"),
        Some("no-cache")
    );
    assert_eq!(
        get(a, "/other.bin", "").header("Cache-Control"),
        Some("no-cache")
    );
    assert_eq!(get(a, "/index.json?x=1", "").status, 200);
}

#[test]
fn path_escapes_never_serve() {
    let (_d, srv) = start_repo();
    let a = srv.local_addr();
    for path in [
        "/../etc/passwd",
        "/objects/../../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/%2E%2E%2Fetc%2Fpasswd",
        "/objects/..%2f..%2fetc/passwd",
        "/index.json%00",
        "/%00",
        "/..%5c..%5cetc%5cpasswd",
        "/./index.json",
        "/.lock",
        "/.tmp/partial",
        "/objects/%2elock",
        "/passwd",
        "/etc/passwd",
        "/objects/link.json",
        "/sub",
        "/sub/",
        "/",
        "/objects",
        "/missing",
        "/%ff%fe",
        "/a%zz",
        "http://evil/../etc/passwd",
    ] {
        let r = get(a, path, "");
        assert!(matches!(r.status, 400 | 404), "{path}: {}", r.status);
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("root:") && !body.contains("SECRET"),
            "{path}: {body}"
        );
    }
    // Absolute-form targets are accepted (proxies send them).
    let r = get(a, "http://repo.example:8080/index.json", "");
    assert_eq!((r.status, r.body.as_slice()), (200, INDEX));
}

#[test]
fn methods_bodies_and_bad_heads() {
    let (_d, srv) = start_repo();
    let a = srv.local_addr();
    let r = raw_status(a, b"PUT /index.json HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET, HEAD")));
    let r = raw_status(a, b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!((r.status, r.header("Connection")), (405, Some("close")));
    let r = raw_status(
        a,
        b"GET /index.json HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 413);
    let r = raw_status(
        a,
        b"GET /index.json HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 413);
    let r = raw_status(a, b"GET /index.json HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 200);
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(raw_status(a, big.as_bytes()).status, 431);
    let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    let r = raw_status(a, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes());
    assert_eq!(r.status, 431);
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    assert_eq!(raw_status(a, long.as_bytes()).status, 414);
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /index.json\r\n\r\n",
        b"GET /index.json HTTP/1.1 extra\r\n\r\n",
        b"GET index.json HTTP/1.1\r\n\r\n",
        b"GET /index.json HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"\xff\xfe / HTTP/1.1\r\n\r\n",
        b"GET * HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(
            raw_status(a, bad).status,
            400,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(raw_status(a, b"GET / HTTP/2.0\r\n\r\n").status, 505);
    // Leading blank lines are tolerated.
    assert_eq!(
        raw_status(a, b"\r\n\r\nGET /index.json HTTP/1.1\r\n\r\n").status,
        200
    );
    // After all that, the server still works.
    assert_eq!(get(a, "/index.json", "").status, 200);
}

#[test]
fn garbage_never_kills_the_server() {
    let (_d, srv) = start_repo();
    let a = srv.local_addr();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..200 {
        let mut junk = b"GET /".to_vec();
        for _ in 0..(i * 37 % 3000) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push((seed >> 24) as u8);
        }
        junk.extend_from_slice(b"\r\n\r\n");
        let mut s = TcpStream::connect(a).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&junk);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    // Clients that vanish mid-head.
    for _ in 0..20 {
        let mut s = TcpStream::connect(a).expect("connect");
        let _ = s.write_all(b"GET /index.json HTTP/1.1\r\nHo");
    }
    assert_eq!(get(a, "/index.json", "").body, INDEX);
}

#[test]
fn slow_head_times_out_with_408() {
    let dir = repo();
    let files = StaticFiles::new(dir.path().to_path_buf()).unwrap();
    let config = ServerConfig {
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let srv = start_with(Arc::new(files), config);
    let mut c = connect(srv.local_addr());
    send(&mut c, "GET /index.json HTTP/1.1\r\n");
    let t = Instant::now();
    assert_eq!(read_resp(&mut c, false).status, 408);
    assert!(t.elapsed() < Duration::from_secs(5));
    // Idle keep-alive connections are closed quietly.
    let mut c = connect(srv.local_addr());
    send(&mut c, "GET /index.json HTTP/1.1\r\n\r\n");
    assert_eq!(read_resp(&mut c, false).status, 200);
    assert!(at_eof(&mut c));
}

#[test]
fn fifty_concurrent_clients() {
    let (_d, srv) = start_repo();
    let a = srv.local_addr();
    let obj = Arc::new(object());
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let obj = Arc::clone(&obj);
            std::thread::spawn(move || {
                let mut c = connect(a);
                for _ in 0..3 {
                    send(&mut c, "GET /objects/ab/abcdef HTTP/1.1\r\nHost: t\r\n\r\n");
                    let r = read_resp(&mut c, false);
                    assert_eq!(r.status, 200, "client {i}");
                    assert_eq!(r.body, *obj, "client {i}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

/// A handler that blocks until released, to show other connections proceed.
struct Gate {
    release: Mutex<mpsc::Receiver<()>>,
    entered: AtomicUsize,
}

impl Handler for Gate {
    fn handle(&self, req: &Request) -> Response {
        if req.path == "/hold" {
            self.entered.fetch_add(1, Ordering::SeqCst);
            let rx = self.release.lock().unwrap_or_else(|e| e.into_inner());
            let _ = rx.recv_timeout(Duration::from_secs(20));
            return Response::text(200, "released");
        }
        Response::text(200, "quick")
    }
}

#[test]
fn blocking_handler_and_connection_limit() {
    let (tx, rx) = mpsc::channel();
    let gate = Arc::new(Gate {
        release: Mutex::new(rx),
        entered: AtomicUsize::new(0),
    });
    let config = ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    };
    let srv = start_with(gate.clone(), config);
    let a = srv.local_addr();
    let mut held = connect(a);
    send(&mut held, "GET /hold HTTP/1.1\r\n\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while gate.entered.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut quick = connect(a);
    send(&mut quick, "GET /quick HTTP/1.1\r\n\r\n");
    assert_eq!(read_resp(&mut quick, false).body, b"quick");
    assert_eq!(srv.active_connections(), 2);
    // A third connection is over the limit.
    let r = get(a, "/quick", "");
    assert_eq!((r.status, r.header("Connection")), (503, Some("close")));
    tx.send(()).unwrap();
    assert_eq!(read_resp(&mut held, false).body, b"released");
    drop((held, quick));
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.active_connections() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(get(a, "/quick", "").status, 200);
}

/// Sets a flag when dropped, to see that the server let go of a body.
struct Endless {
    dropped: Arc<AtomicBool>,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        buf.fill(b'z');
        Ok(buf.len())
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

struct Faulty {
    dropped: Arc<AtomicBool>,
}

impl Handler for Faulty {
    fn handle(&self, req: &Request) -> Response {
        match req.path.as_str() {
            // Promises 1000 bytes, delivers 100.
            "/short" => Response::new(200).with_body(Body::Reader {
                len: Some(1000),
                reader: Box::new(std::io::repeat(b's').take(100)),
            }),
            // Promises 10, delivers 20 (a lying server).
            "/long" => Response::new(200).with_body(Body::Reader {
                len: Some(10),
                reader: Box::new(std::io::repeat(b'l').take(20)),
            }),
            "/exact" => Response::new(200).with_body(Body::Reader {
                len: Some(5),
                reader: Box::new(&b"exact"[..]),
            }),
            "/endless" => Response::new(200).with_body(Body::Reader {
                len: None,
                reader: Box::new(Endless {
                    dropped: Arc::clone(&self.dropped),
                }),
            }),
            "/panic" => panic!("handler panic (expected by a test)"),
            _ => Response::new(404),
        }
    }
}

#[test]
fn reader_bodies_simulate_faults() {
    let dropped = Arc::new(AtomicBool::new(false));
    let srv = start_with(
        Arc::new(Faulty {
            dropped: Arc::clone(&dropped),
        }),
        ServerConfig::default(),
    );
    let a = srv.local_addr();

    let mut c = connect(a);
    send(&mut c, "GET /exact HTTP/1.1\r\n\r\n");
    assert_eq!(read_resp(&mut c, false).body, b"exact");
    send(&mut c, "GET /short HTTP/1.1\r\n\r\n");
    let r = read_resp(&mut c, true);
    assert_eq!(r.header("Content-Length"), Some("1000"));
    let mut body = Vec::new();
    c.read_to_end(&mut body).expect("read to close");
    assert_eq!(body.len(), 100);

    let mut c = connect(a);
    send(&mut c, "GET /long HTTP/1.1\r\n\r\n");
    let r = read_resp(&mut c, true);
    assert_eq!(r.header("Content-Length"), Some("10"));
    let mut body = Vec::new();
    c.read_to_end(&mut body).expect("read to close");
    assert_eq!(body.len(), 20);

    let mut c = connect(a);
    send(&mut c, "GET /endless HTTP/1.1\r\n\r\n");
    let r = read_resp(&mut c, true);
    assert_eq!(r.header("Content-Length"), None);
    assert_eq!(r.header("Connection"), Some("close"));
    let mut got = vec![0u8; 10 << 20];
    c.read_exact(&mut got).expect("10 MB");
    assert!(got.iter().all(|&b| b == b'z'));
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(dropped.load(Ordering::SeqCst) && srv.active_connections() == 0) {
        assert!(
            Instant::now() < deadline,
            "server still writing to a closed client"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    assert_eq!(get(a, "/panic", "").status, 500);
    // HEAD of a close-delimited body: no body, connection stays open.
    let mut c = connect(a);
    send(&mut c, "HEAD /endless HTTP/1.1\r\n\r\n");
    assert_eq!(read_resp(&mut c, true).status, 200);
    send(&mut c, "GET /exact HTTP/1.1\r\n\r\n");
    assert_eq!(read_resp(&mut c, false).body, b"exact");
}

#[test]
fn shutdown_closes_listener_and_idle_connections() {
    let (_d, srv) = start_repo();
    let a = srv.local_addr();
    let mut idle = connect(a);
    send(&mut idle, "GET /index.json HTTP/1.1\r\n\r\n");
    assert_eq!(read_resp(&mut idle, false).status, 200);
    srv.shutdown();
    assert!(at_eof(&mut idle));
    assert!(TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_err());
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "-"])
        .args(args)
        .output()
        .expect("curl must be installed to run these tests");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("curl output has a head");
    let head = String::from_utf8_lossy(&out.stdout[..split]).into_owned();
    (head, out.stdout[split + 4..].to_vec())
}

#[test]
fn curl_interoperates() {
    let (_d, srv) = start_repo();
    let base = format!("http://{}", srv.local_addr());
    let (head, body) = curl(&[&format!("{base}/index.json")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, INDEX);
    // Two URLs: curl reuses the connection.
    let out = Command::new("curl")
        .args(["-sS", "-v", "-o", "/dev/null", "-o", "/dev/null"])
        .arg(format!("{base}/index.json"))
        .arg(format!("{base}/objects/ab/abcdef"))
        .output()
        .expect("curl must be installed to run these tests");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("Re-using existing connection") || log.contains("Reusing existing"),
        "{log}"
    );
    let (head, body) = curl(&["-r", "100-199", &format!("{base}/objects/ab/abcdef")]);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(
        head.contains("Content-Range: bytes 100-199/100000"),
        "{head}"
    );
    assert_eq!(body, &object()[100..200]);
    let (head, body) = curl(&[
        "-I",
        "-o",
        "/dev/null",
        &format!("{base}/objects/ab/abcdef"),
    ]);
    assert!(head.contains("Content-Length: 100000"), "{head}");
    assert!(head.contains("immutable"), "{head}");
    assert!(body.is_empty());
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("ETag: "))
        .expect("etag")
        .to_string();
    let (head, _) = curl(&[
        "-H",
        &format!("If-None-Match: {etag}"),
        &format!("{base}/objects/ab/abcdef"),
    ]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
}

#[test]
fn curl_path_escapes_are_refused() {
    let (_d, srv) = start_repo();
    let base = format!("http://{}", srv.local_addr());
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/passwd",
        "/.lock",
    ] {
        let (head, body) = curl(&["--path-as-is", &format!("{base}{path}")]);
        assert!(
            head.starts_with("HTTP/1.1 400") || head.starts_with("HTTP/1.1 404"),
            "{path}: {head}"
        );
        let body = String::from_utf8_lossy(&body);
        assert!(
            !body.contains("root:") && !body.contains("SECRET"),
            "{path}"
        );
    }
    let (head, _) = curl(&["-X", "PUT", &format!("{base}/index.json")]);
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
}

#[test]
fn run_blocks_and_serves_with_logging() {
    let dir = repo();
    let files = StaticFiles::new(dir.path().to_path_buf()).expect("static files");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = listener.local_addr().unwrap();
    let config = ServerConfig {
        log: true,
        ..ServerConfig::default()
    };
    // The thread is left running; it ends with the test process.
    std::thread::spawn(move || run(listener, Arc::new(files), config));
    assert_eq!(get(a, "/index.json", "").body, INDEX);
    assert!(StaticFiles::new(dir.path().join("index.json")).is_err());
    assert!(StaticFiles::new(dir.path().join("nope")).is_err());
}
