//! [`Origin`]: a repository served over HTTP on 127.0.0.1, with faults switched on and off
//! at run time, built on `stork_cli::http::{Server, StaticFiles, Handler}`.
//!
//! Rules apply to requests whose path (without query) matches a [`Pattern`]; they act in
//! the order they were added: a hold waits for its [`Gate`], a failure answers at once,
//! and body faults (truncate, corrupt, trickle, endless) wrap the body in turn.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use policy::Digest;
use stork_cli::http::{Body, Handler, Request, Response, Server, ServerConfig, StaticFiles};

use crate::wait_for;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which request paths a rule applies to: a substring (`"index.json"`, an object digest)
/// or any predicate ([`Pattern::matching`]).
#[derive(Clone)]
pub struct Pattern {
    test: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    text: String,
}

impl Pattern {
    /// Paths for which `f` holds; `text` describes it in messages.
    pub fn matching(text: &str, f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Pattern {
        Pattern {
            test: Arc::new(f),
            text: text.into(),
        }
    }

    /// Every path.
    pub fn any() -> Pattern {
        Pattern::matching("any path", |_| true)
    }

    /// Paths under `/objects/`.
    pub fn objects() -> Pattern {
        Pattern::matching("any object", |p| p.starts_with("/objects/"))
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        (self.test)(path)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<&str> for Pattern {
    fn from(s: &str) -> Pattern {
        let owned = s.to_string();
        Pattern::matching(&format!("paths containing {s:?}"), move |p| {
            p.contains(&owned)
        })
    }
}

impl From<String> for Pattern {
    fn from(s: String) -> Pattern {
        Pattern::from(s.as_str())
    }
}

impl From<&String> for Pattern {
    fn from(s: &String) -> Pattern {
        Pattern::from(s.as_str())
    }
}

impl From<&Digest> for Pattern {
    fn from(d: &Digest) -> Pattern {
        Pattern::from(d.to_hex())
    }
}

impl From<Digest> for Pattern {
    fn from(d: Digest) -> Pattern {
        Pattern::from(d.to_hex())
    }
}

/// Names a rule, for [`Origin::remove`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleId(u64);

#[derive(Clone)]
enum Action {
    Hold(Arc<GateInner>),
    Fail(u16),
    Truncate(u64),
    Corrupt,
    Endless,
    EndlessLyingLength,
    Trickle(u64),
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Hold(g) => {
                let s = lock(&g.status);
                write!(f, "hold (released: {}, held now: {})", s.released, s.held)
            }
            Action::Fail(c) => write!(f, "fail with {c}"),
            Action::Truncate(n) => write!(f, "truncate after {n} bytes"),
            Action::Corrupt => f.write_str("corrupt one byte"),
            Action::Endless => f.write_str("endless close-delimited body"),
            Action::EndlessLyingLength => f.write_str("endless body under a 1 TiB Content-Length"),
            Action::Trickle(b) => write!(f, "trickle at {b} bytes/s"),
        }
    }
}

struct Rule {
    id: u64,
    pattern: Pattern,
    action: Action,
}

#[derive(Default, Debug)]
struct Counts {
    per_path: BTreeMap<String, u64>,
    total: u64,
    objects: u64,
    index: u64,
    log: Vec<String>,
    answers: Vec<(String, u16)>,
}

struct State {
    files: StaticFiles,
    rules: Mutex<Vec<Rule>>,
    next_rule: AtomicU64,
    counts: Mutex<Counts>,
    bytes: Arc<AtomicU64>,
}

impl State {
    fn remove(&self, id: u64) {
        lock(&self.rules).retain(|r| r.id != id);
    }

    fn describe(&self) -> String {
        let c = lock(&self.counts);
        let rules: Vec<String> = lock(&self.rules)
            .iter()
            .map(|r| format!("#{} {:?}: {:?}", r.id, r.pattern, r.action))
            .collect();
        format!(
            "origin serving {}: {} requests ({} objects, {} index), {} body bytes sent\n  rules: {rules:?}\n  per path: {:?}\n  last requests: {:?}",
            self.files.root().display(),
            c.total,
            c.objects,
            c.index,
            self.bytes.load(Ordering::SeqCst),
            c.per_path,
            &c.log[c.log.len().saturating_sub(20)..]
        )
    }
}

impl Handler for State {
    fn handle(&self, req: &Request) -> Response {
        let path = req.path_only().to_string();
        {
            let mut c = lock(&self.counts);
            *c.per_path.entry(path.clone()).or_default() += 1;
            c.total += 1;
            if path.starts_with("/objects/") {
                c.objects += 1;
            }
            if path.ends_with("index.json") {
                c.index += 1;
            }
            let range = req
                .header("Range")
                .map(|r| format!(" Range: {r}"))
                .unwrap_or_default();
            c.log.push(format!("{} {}{range}", req.method, req.path));
        }
        let actions: Vec<Action> = lock(&self.rules)
            .iter()
            .filter(|r| r.pattern.matches(&path))
            .map(|r| r.action.clone())
            .collect();
        let mut resp = None;
        for a in &actions {
            match a {
                Action::Hold(g) => g.pass(),
                Action::Fail(code) => {
                    resp = Some(Response::text(
                        *code,
                        &format!("{code} injected by the test origin\n"),
                    ));
                    break;
                }
                _ => {}
            }
        }
        let mut resp = resp.unwrap_or_else(|| self.files.handle(req));
        lock(&self.counts).answers.push((path.clone(), resp.status));
        for a in &actions {
            resp = match a {
                Action::Hold(_) | Action::Fail(_) => resp,
                Action::Truncate(n) => map_body(resp, |len, r| (len, Box::new(r.take(*n)))),
                Action::Corrupt => map_body(resp, |len, r| {
                    let at = len.map_or(0, |l| l / 2);
                    (
                        len,
                        Box::new(FlipAt {
                            inner: r,
                            pos: 0,
                            at,
                        }),
                    )
                }),
                Action::Endless => map_body(resp, |_, _| (None, Box::new(io::repeat(b'x')))),
                Action::EndlessLyingLength => {
                    map_body(resp, |_, _| (Some(1 << 40), Box::new(io::repeat(b'x'))))
                }
                Action::Trickle(bps) => map_body(resp, |len, r| {
                    (
                        len,
                        Box::new(Trickle {
                            inner: r,
                            bps: (*bps).max(1),
                            start: Instant::now(),
                            sent: 0,
                        }),
                    )
                }),
            };
        }
        if req.method == "GET" {
            resp = map_body(resp, |len, r| {
                (
                    len,
                    Box::new(Counting {
                        inner: r,
                        bytes: Arc::clone(&self.bytes),
                    }),
                )
            });
        }
        resp
    }
}

type BoxRead = Box<dyn Read + Send>;

/// Rewrites a response body (given its announced length and its bytes).
fn map_body(
    mut resp: Response,
    f: impl FnOnce(Option<u64>, BoxRead) -> (Option<u64>, BoxRead),
) -> Response {
    let body = std::mem::replace(&mut resp.body, Body::Empty);
    let len = body.len();
    match body.into_reader() {
        Ok(r) => {
            let (len, reader) = f(len, r);
            resp.body = Body::Reader { len, reader };
            resp
        }
        Err(e) => Response::text(500, &format!("test origin: {e}\n")),
    }
}

struct FlipAt {
    inner: BoxRead,
    pos: u64,
    at: u64,
}

impl Read for FlipAt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let (start, end) = (self.pos, self.pos + n as u64);
        if (start..end).contains(&self.at) {
            buf[(self.at - start) as usize] ^= 0x01;
        }
        self.pos = end;
        Ok(n)
    }
}

struct Trickle {
    inner: BoxRead,
    bps: u64,
    start: Instant,
    sent: u64,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Pacing the stream is the fault itself, not synchronisation.
        let slice = (self.bps / 20).max(1);
        let due = Duration::from_secs_f64(self.sent as f64 / self.bps as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        let n = buf.len().min(slice as usize);
        let got = self.inner.read(&mut buf[..n])?;
        self.sent += got as u64;
        Ok(got)
    }
}

struct Counting {
    inner: BoxRead,
    bytes: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

#[derive(Default)]
struct GateStatus {
    released: bool,
    held: usize,
    total: u64,
}

struct GateInner {
    status: Mutex<GateStatus>,
    cv: Condvar,
}

impl GateInner {
    /// Blocks the calling request until the gate is released.
    fn pass(&self) {
        let mut s = lock(&self.status);
        if s.released {
            return;
        }
        s.held += 1;
        s.total += 1;
        self.cv.notify_all();
        while !s.released {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.held -= 1;
        self.cv.notify_all();
    }

    fn release(&self) {
        lock(&self.status).released = true;
        self.cv.notify_all();
    }
}

/// Holds matching requests until [`Gate::release`], or until the gate or its origin is
/// dropped. Requests arriving after the release pass at once.
pub struct Gate {
    inner: Arc<GateInner>,
    origin: Weak<State>,
    rule: u64,
}

impl Gate {
    /// Lets every held request (and any later one) through.
    pub fn release(&self) {
        self.inner.release();
    }

    /// How many requests are being held now.
    pub fn held(&self) -> usize {
        lock(&self.inner.status).held
    }

    /// How many requests this gate has held in all.
    pub fn total_held(&self) -> u64 {
        lock(&self.inner.status).total
    }

    /// Waits until at least `n` requests are being held at once; panics with the origin's
    /// whole state after `timeout`.
    pub fn wait_held(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut s = lock(&self.inner.status);
        while s.held < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let held = s.held;
                drop(s);
                let state = self
                    .origin
                    .upgrade()
                    .map_or("origin dropped".into(), |o| o.describe());
                panic!("timed out after {timeout:?} waiting for {n} held requests (held: {held})\n{state}");
            }
            s = self
                .inner
                .cv
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.inner.release();
        if let Some(o) = self.origin.upgrade() {
            o.remove(self.rule);
        }
    }
}

/// An HTTP server over a repository directory on `127.0.0.1`, with counters and
/// switchable faults. Thread-safe: share it by reference between test threads.
pub struct Origin {
    state: Arc<State>,
    server: Mutex<Option<Server>>,
    addr: SocketAddr,
}

impl Origin {
    /// Serves `dir` on a free port of 127.0.0.1.
    pub fn serve(dir: &Path) -> Origin {
        let files = StaticFiles::new(dir.to_path_buf())
            .unwrap_or_else(|e| panic!("cannot serve {}: {e}", dir.display()));
        let state = Arc::new(State {
            files,
            rules: Mutex::new(Vec::new()),
            next_rule: AtomicU64::new(1),
            counts: Mutex::new(Counts::default()),
            bytes: Arc::new(AtomicU64::new(0)),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let server =
            Server::spawn(listener, state.clone(), config()).expect("cannot start the origin");
        Origin {
            state,
            server: Mutex::new(Some(server)),
            addr,
        }
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory served.
    pub fn root(&self) -> PathBuf {
        self.state.files.root().to_path_buf()
    }

    /// Everything it knows (counts, rules, recent requests), for failure messages.
    pub fn describe(&self) -> String {
        self.state.describe()
    }

    // --- counters

    /// Requests for exactly `path` (e.g. `/index.json`).
    pub fn count(&self, path: &str) -> u64 {
        lock(&self.state.counts)
            .per_path
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Requests whose path matches `p`.
    pub fn requests(&self, p: impl Into<Pattern>) -> u64 {
        let p = p.into();
        lock(&self.state.counts)
            .per_path
            .iter()
            .filter(|(path, _)| p.matches(path))
            .map(|(_, n)| n)
            .sum()
    }

    /// Every request.
    pub fn total_requests(&self) -> u64 {
        lock(&self.state.counts).total
    }

    /// Requests under `/objects/`.
    pub fn object_requests(&self) -> u64 {
        lock(&self.state.counts).objects
    }

    /// Requests for `index.json`.
    pub fn index_requests(&self) -> u64 {
        lock(&self.state.counts).index
    }

    /// Body bytes handed to connections (GET only).
    pub fn bytes_sent(&self) -> u64 {
        self.state.bytes.load(Ordering::SeqCst)
    }

    /// Every request so far, `METHOD PATH [Range: ...]`, in arrival order.
    pub fn log(&self) -> Vec<String> {
        lock(&self.state.counts).log.clone()
    }

    /// The status codes answered to requests whose path matches `p`, in order (e.g. 304
    /// for a conditional request that found nothing new).
    pub fn answers(&self, p: impl Into<Pattern>) -> Vec<u16> {
        let p = p.into();
        lock(&self.state.counts)
            .answers
            .iter()
            .filter(|(path, _)| p.matches(path))
            .map(|(_, s)| *s)
            .collect()
    }

    /// Zeroes every counter and the log.
    pub fn reset_counts(&self) {
        *lock(&self.state.counts) = Counts::default();
        self.state.bytes.store(0, Ordering::SeqCst);
    }

    // --- faults

    fn add(&self, p: impl Into<Pattern>, action: Action) -> u64 {
        let id = self.state.next_rule.fetch_add(1, Ordering::SeqCst);
        lock(&self.state.rules).push(Rule {
            id,
            pattern: p.into(),
            action,
        });
        id
    }

    /// Holds matching requests until the returned gate is released or dropped.
    #[must_use = "dropping the gate releases it at once"]
    pub fn hold(&self, p: impl Into<Pattern>) -> Gate {
        let inner = Arc::new(GateInner {
            status: Mutex::new(GateStatus::default()),
            cv: Condvar::new(),
        });
        let rule = self.add(p, Action::Hold(Arc::clone(&inner)));
        Gate {
            inner,
            origin: Arc::downgrade(&self.state),
            rule,
        }
    }

    /// Answers matching requests with `status` (and a short text body).
    pub fn fail(&self, p: impl Into<Pattern>, status: u16) -> RuleId {
        RuleId(self.add(p, Action::Fail(status)))
    }

    /// Sends only the first `n` body bytes under the full `Content-Length`, then closes.
    pub fn truncate(&self, p: impl Into<Pattern>, n: u64) -> RuleId {
        RuleId(self.add(p, Action::Truncate(n)))
    }

    /// Flips one bit of the byte in the middle of the body (the first byte when the
    /// length is unknown).
    pub fn corrupt(&self, p: impl Into<Pattern>) -> RuleId {
        RuleId(self.add(p, Action::Corrupt))
    }

    /// Replaces the body with an endless close-delimited one (no `Content-Length`).
    pub fn endless(&self, p: impl Into<Pattern>) -> RuleId {
        RuleId(self.add(p, Action::Endless))
    }

    /// Replaces the body with an endless one under a lying `Content-Length` of 1 TiB.
    pub fn endless_lying_length(&self, p: impl Into<Pattern>) -> RuleId {
        RuleId(self.add(p, Action::EndlessLyingLength))
    }

    /// Sends the body at `bytes_per_sec`.
    pub fn trickle(&self, p: impl Into<Pattern>, bytes_per_sec: u64) -> RuleId {
        RuleId(self.add(p, Action::Trickle(bytes_per_sec)))
    }

    /// Removes one rule.
    pub fn remove(&self, id: RuleId) {
        self.state.remove(id.0);
    }

    /// Removes every rule, releasing every gate.
    pub fn clear(&self) {
        let rules = std::mem::take(&mut *lock(&self.state.rules));
        for r in rules {
            if let Action::Hold(g) = r.action {
                g.release();
            }
        }
    }

    // --- availability

    /// Closes the listener: new connections are refused until [`Origin::start`].
    /// Kept-alive idle connections are closed; requests in flight (held ones included)
    /// finish normally.
    pub fn stop(&self) {
        if let Some(server) = lock(&self.server).take() {
            server.shutdown();
        }
    }

    /// Listens again on the same port.
    pub fn start(&self) {
        let mut slot = lock(&self.server);
        if slot.is_some() {
            return;
        }
        // std's TcpListener::bind sets SO_REUSEADDR on Unix, so connections left in
        // TIME_WAIT do not block the port; another process taking it meanwhile would.
        let listener = wait_for(
            Duration::from_secs(10),
            format!("to listen on {} again", self.addr),
            || TcpListener::bind(self.addr).map_err(|e| e.to_string()),
        );
        *slot = Some(
            Server::spawn(listener, self.state.clone(), config())
                .expect("cannot restart the origin"),
        );
    }

    /// Whether it is listening.
    pub fn is_running(&self) -> bool {
        lock(&self.server).is_some()
    }
}

fn config() -> ServerConfig {
    ServerConfig {
        idle_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.clear();
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Request as Get;
    use crate::{curl, wait_until, TestDir, SOON};

    fn site() -> (TestDir, Vec<u8>) {
        let d = TestDir::new();
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        d.write("index.json", b"{\"v\":1}");
        d.write("objects/ab/abcdef", &big);
        d.write(".lock", b"");
        (d, big)
    }

    #[test]
    fn counts_and_serves() {
        let (d, big) = site();
        let o = Origin::serve(d.path());
        let r = curl(&format!("{}index.json", o.url()), &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"{\"v\":1}");
        let r = Get::get(&format!("{}objects/ab/abcdef", o.url()))
            .send()
            .unwrap();
        assert_eq!((r.status, r.complete), (200, true));
        assert_eq!(r.body, big);
        assert_eq!(
            Get::get(&format!("{}.lock", o.url()))
                .send()
                .unwrap()
                .status,
            404
        );
        assert_eq!(o.count("/index.json"), 1);
        assert_eq!(o.index_requests(), 1);
        assert_eq!(o.object_requests(), 1);
        assert_eq!(o.total_requests(), 3);
        assert_eq!(o.requests("abcdef"), 1);
        assert_eq!(o.bytes_sent(), 7 + 100_000 + "404 Not Found\n".len() as u64);
        assert_eq!(o.answers(Pattern::any()), [200, 200, 404]);
        o.reset_counts();
        assert_eq!((o.total_requests(), o.bytes_sent()), (0, 0));
    }

    #[test]
    fn faults() {
        let (d, big) = site();
        let o = Origin::serve(d.path());
        let url = format!("{}objects/ab/abcdef", o.url());

        let id = o.corrupt("abcdef");
        let r = Get::get(&url).send().unwrap();
        assert!(r.complete);
        let diff: Vec<usize> = (0..big.len()).filter(|&i| r.body[i] != big[i]).collect();
        assert_eq!(diff, vec![50_000]);
        o.remove(id);

        let id = o.truncate("abcdef", 1000);
        let r = Get::get(&url).send().unwrap();
        assert_eq!(r.header("Content-Length"), Some("100000"));
        assert!(!r.complete);
        assert_eq!(r.body, big[..1000]);
        o.remove(id);

        let id = o.fail(Pattern::objects(), 503);
        assert_eq!(Get::get(&url).send().unwrap().status, 503);
        assert_eq!(
            Get::get(&format!("{}index.json", o.url()))
                .send()
                .unwrap()
                .status,
            200
        );
        o.remove(id);

        let id = o.endless("abcdef");
        let r = Get::get(&url).limit(300_000).send().unwrap();
        assert_eq!((r.status, r.complete, r.body.len()), (200, false, 300_000));
        assert!(r.header("Content-Length").is_none());
        o.remove(id);

        let id = o.endless_lying_length("abcdef");
        let r = Get::get(&url).limit(200_000).send().unwrap();
        assert_eq!(r.header("Content-Length"), Some("1099511627776"));
        assert_eq!((r.complete, r.body.len()), (false, 200_000));
        o.remove(id);

        // 20 kB/s: 100 kB take about 5 s; in 1 s at most ~20 kB (plus one slice) arrive.
        let id = o.trickle("abcdef", 20_000);
        let r = Get::get(&url)
            .timeout(Duration::from_secs(1))
            .send()
            .unwrap();
        assert!(
            !r.complete && r.body.len() <= 25_000,
            "{} bytes",
            r.body.len()
        );
        o.remove(id);

        let r = Get::get(&url).send().unwrap();
        assert_eq!(r.body, big);
    }

    #[test]
    fn hold_and_release() {
        let (d, _) = site();
        let o = Origin::serve(d.path());
        let gate = o.hold("index.json");
        let url = format!("{}index.json", o.url());
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || Get::get(&url).send().unwrap())
            })
            .collect();
        gate.wait_held(3, SOON);
        assert_eq!(gate.held(), 3);
        // Other paths are not held.
        let r = Get::get(&format!("{}objects/ab/abcdef", o.url()))
            .send()
            .unwrap();
        assert_eq!(r.status, 200);
        assert!(clients.iter().all(|c| !c.is_finished()));
        gate.release();
        for c in clients {
            assert_eq!(c.join().unwrap().status, 200);
        }
        assert_eq!(gate.total_held(), 3);
        // Dropping a gate (unreleased) lets its requests go too.
        let gate = o.hold("index.json");
        let url2 = url.clone();
        let c = std::thread::spawn(move || Get::get(&url2).send().unwrap());
        gate.wait_held(1, SOON);
        drop(gate);
        assert_eq!(c.join().unwrap().status, 200);
    }

    #[test]
    fn stop_and_start_on_the_same_port() {
        let (d, _) = site();
        let o = Origin::serve(d.path());
        let url = format!("{}index.json", o.url());
        // A request in flight across the restart, to leave a connection on the port.
        let gate = o.hold("index.json");
        let u = url.clone();
        let held = std::thread::spawn(move || Get::get(&u).send().unwrap());
        gate.wait_held(1, SOON);
        o.stop();
        assert!(!o.is_running());
        let e = Get::get(&url).send().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        o.start();
        gate.release();
        assert_eq!(held.join().unwrap().status, 200);
        assert_eq!(Get::get(&url).send().unwrap().status, 200);
        // Many short connections leave TIME_WAIT sockets behind; restarting still works.
        for _ in 0..20 {
            Get::get(&url).send().unwrap();
        }
        o.stop();
        o.start();
        wait_until(SOON, "the restarted origin to answer", || {
            Get::get(&url).send().is_ok_and(|r| r.status == 200)
        });
    }
}
