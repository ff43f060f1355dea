//! The server core: accept loop, connection threads, response framing.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use super::parse::{self, Head, MAX_HEAD};
use super::{format_http_date, reason_phrase, Body, Handler, Request, Response, ServerConfig};

/// How long a refused (503) or failed connection is drained before closing,
/// so that unread request bytes do not turn our close into a reset that
/// destroys the error response on its way.
const LINGER: Duration = Duration::from_secs(1);
/// Copy buffer for bodies (std's `io::copy` would use 8 KiB and, for
/// file → socket, plain read/write anyway: bigger chunks mean fewer syscalls).
const COPY_BUF: usize = 128 * 1024;

struct Shared {
    handler: Arc<dyn Handler>,
    config: ServerConfig,
    stopping: AtomicBool,
    active: AtomicUsize,
    rejecting: AtomicUsize,
    next_id: AtomicU64,
    /// Clones of live connections, to wake idle ones at shutdown.
    conns: Mutex<HashMap<u64, TcpStream>>,
}

impl Shared {
    fn new(handler: Arc<dyn Handler>, config: ServerConfig) -> Shared {
        Shared {
            handler,
            config,
            stopping: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            rejecting: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
        }
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running server; its accept loop has its own thread.
///
/// [`Server::shutdown`] (or dropping the `Server`) stops accepting, closes
/// the listener and closes kept-alive connections once their current
/// response (if any) is written. A handler that is blocked keeps its own
/// connection thread alive until it returns.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Start serving `listener` on a new thread.
    pub fn spawn(
        listener: TcpListener,
        handler: Arc<dyn Handler>,
        config: ServerConfig,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(handler, config));
        let s = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("stork-http-accept".into())
            .spawn(move || {
                if let Err(e) = accept_loop(&listener, &s) {
                    eprintln!("stork-repo: accept loop on {addr} ended: {e}");
                }
            })?;
        Ok(Server {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections currently being served (not counting 503 refusals).
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Stop accepting and close the listener (also done on drop).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let woke = TcpStream::connect_timeout(&wake, Duration::from_secs(2)).is_ok();
        // Idle keep-alive connections see EOF; busy ones finish their reply.
        for conn in self.shared.conns().values() {
            let _ = conn.shutdown(Shutdown::Read);
        }
        if woke {
            let _ = accept.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serve `listener` on the calling thread, forever (for the CLI).
/// Returns only if the listener becomes unusable.
pub fn run(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    config: ServerConfig,
) -> io::Result<()> {
    let shared = Arc::new(Shared::new(handler, config));
    accept_loop(&listener, &shared)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) -> io::Result<()> {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        match accepted {
            Ok((stream, peer)) => admit(shared, stream, peer),
            Err(e) => match e.kind() {
                io::ErrorKind::Interrupted
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset => {}
                // Not a listening socket: nothing will ever work.
                io::ErrorKind::InvalidInput => return Err(e),
                // Out of file descriptors or memory: back off, then retry.
                _ => {
                    if shared.config.log {
                        eprintln!("stork-repo: accept: {e}");
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            },
        }
    }
}

/// Decrements the connection count and unregisters the connection, even if
/// the connection thread panics or never starts.
struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.conns().remove(&self.id);
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let accepted_at = Instant::now();
    if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.config.max_connections {
        shared.active.fetch_sub(1, Ordering::SeqCst);
        refuse(shared, stream);
        return;
    }
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    if let Ok(clone) = stream.try_clone() {
        shared.conns().insert(id, clone);
    }
    let guard = ConnGuard {
        shared: Arc::clone(shared),
        id,
    };
    // If the thread cannot be created, the closure (and with it the guard
    // and the stream) is dropped: the client just sees a close.
    let _ = thread::Builder::new()
        .name("stork-http-conn".into())
        .spawn(move || {
            let shared = Arc::clone(&guard.shared);
            serve_connection(&shared, stream, peer, accepted_at);
            drop(guard);
        });
}

/// Answer 503 to a client beyond `max_connections`, on a short-lived thread
/// (at most `max_connections` of those at once; beyond that, just close).
fn refuse(shared: &Arc<Shared>, stream: TcpStream) {
    let limit = shared.config.max_connections.max(16);
    if shared.rejecting.fetch_add(1, Ordering::SeqCst) >= limit {
        shared.rejecting.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let s = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("stork-http-503".into())
        .spawn(move || {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(LINGER));
            let _ = stream.set_write_timeout(Some(LINGER));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while parse::find_head_end(&buf).is_none() && buf.len() < MAX_HEAD {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let resp =
                Response::text(503, "too many connections\n").with_header("Retry-After", "1");
            let _ = write_response(&mut stream, false, 1, resp, false);
            linger_close(stream);
            s.rejecting.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        shared.rejecting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Half-close, then drain what the client still sends for a short while.
fn linger_close(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let until = Instant::now() + LINGER;
    let mut chunk = [0u8; 4096];
    while Instant::now() < until {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

enum HeadErr {
    /// The client closed (or stayed silent) between requests.
    Closed,
    /// A head was started but not finished in time.
    Timeout,
    /// 414 or 431.
    TooLarge(u16),
    Io,
}

fn at_least_1ms(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// Read one request head into a new vector, keeping any following
/// (pipelined) bytes in `buf`.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    mut deadline: Option<Instant>,
    config: &ServerConfig,
) -> Result<Vec<u8>, HeadErr> {
    let mut chunk = [0u8; 4096];
    loop {
        parse::skip_leading_blank_lines(buf);
        if let Some(end) = parse::find_head_end(buf) {
            return Ok(buf.drain(..end).collect());
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadErr::TooLarge(parse::too_large_status(buf)));
        }
        let now = Instant::now();
        let wait = match deadline {
            None if buf.is_empty() => config.idle_timeout,
            _ => {
                let d = *deadline.get_or_insert(now + config.header_timeout);
                d.saturating_duration_since(now)
            }
        };
        if wait.is_zero() {
            return Err(if buf.is_empty() {
                HeadErr::Closed
            } else {
                HeadErr::Timeout
            });
        }
        stream
            .set_read_timeout(Some(at_least_1ms(wait)))
            .map_err(|_| HeadErr::Io)?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(if buf.is_empty() {
                    HeadErr::Closed
                } else {
                    HeadErr::Io
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(if buf.is_empty() {
                    HeadErr::Closed
                } else {
                    HeadErr::Timeout
                })
            }
            Err(_) => return Err(HeadErr::Io),
        }
    }
}

fn error_response(status: u16) -> Response {
    let resp = Response::text(status, &format!("{} {}\n", status, reason_phrase(status)));
    if status == 405 {
        resp.with_header("Allow", "GET, HEAD")
    } else {
        resp
    }
}

fn log_line(shared: &Shared, peer: SocketAddr, method: &str, path: &str, status: u16, bytes: u64) {
    if shared.config.log {
        eprintln!("{peer} {method} {path} {status} {bytes}");
    }
}

fn serve_connection(
    shared: &Shared,
    mut stream: TcpStream,
    peer: SocketAddr,
    accepted_at: Instant,
) {
    let config = &shared.config;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(at_least_1ms(config.idle_timeout)));
    let mut buf = Vec::new();
    let mut deadline = Some(accepted_at + config.header_timeout);
    loop {
        let bytes = match read_head(&mut stream, &mut buf, deadline.take(), config) {
            Ok(b) => b,
            Err(HeadErr::Closed | HeadErr::Io) => return,
            Err(HeadErr::Timeout) => return fail(shared, stream, peer, 408),
            Err(HeadErr::TooLarge(code)) => return fail(shared, stream, peer, code),
        };
        let head = match parse::parse_head(&bytes) {
            Ok(h) => h,
            Err(code) => return fail(shared, stream, peer, code),
        };
        let body_ok = parse::check_no_body(&head.headers);
        let mut keep = parse::wants_keep_alive(head.minor, &head.headers);
        let is_head = head.method == "HEAD";
        let resp = if !is_head && head.method != "GET" {
            keep &= body_ok.is_ok();
            error_response(405)
        } else if let Err(code) = body_ok {
            keep = false;
            error_response(code)
        } else if head.path == "*" {
            error_response(400)
        } else {
            call_handler(shared, &head, peer)
        };
        let keep = keep && !shared.stopping.load(Ordering::SeqCst);
        let (status, sent, keep) = write_response(&mut stream, is_head, head.minor, resp, keep);
        log_line(shared, peer, &head.method, &head.path, status, sent);
        if !keep {
            if body_ok.is_err() {
                linger_close(stream);
            }
            return;
        }
    }
}

/// Answer a broken request with `status` and close.
fn fail(shared: &Shared, mut stream: TcpStream, peer: SocketAddr, status: u16) {
    let (status, sent, _) = write_response(&mut stream, false, 1, error_response(status), false);
    log_line(shared, peer, "-", "-", status, sent);
    linger_close(stream);
}

fn call_handler(shared: &Shared, head: &Head, peer: SocketAddr) -> Response {
    let req = Request {
        method: head.method.clone(),
        path: head.path.clone(),
        headers: head.headers.clone(),
        peer,
    };
    catch_unwind(AssertUnwindSafe(|| shared.handler.handle(&req)))
        .unwrap_or_else(|_| error_response(500))
}

fn header_ok(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// Write `resp`; returns (status sent, body bytes sent, connection reusable).
fn write_response(
    stream: &mut TcpStream,
    is_head: bool,
    minor: u8,
    resp: Response,
    keep_alive: bool,
) -> (u16, u64, bool) {
    let Response {
        status,
        headers,
        mut body,
    } = resp;
    // Interim (1xx) responses are not supported: they would break framing.
    let status = if (200..=999).contains(&status) {
        status
    } else {
        500
    };
    // Position a file body first, so a failure can still become a 500.
    if let Body::File { file, offset, .. } = &mut body {
        if file.seek(SeekFrom::Start(*offset)).is_err() {
            return write_response(stream, is_head, minor, error_response(500), keep_alive);
        }
    }
    let bodiless = status == 204 || status == 304;
    let len = body.len();
    let send_body = !is_head && !bodiless;
    let keep = keep_alive && !(send_body && len.is_none());

    let mut out = format!("HTTP/1.1 {} {}\r\n", status, reason_phrase(status));
    let has = |n: &str| headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n));
    if !has("date") {
        out.push_str(&format!(
            "Date: {}\r\n",
            format_http_date(SystemTime::now())
        ));
    }
    if !has("server") {
        out.push_str("Server: stork-repo\r\n");
    }
    for (name, value) in &headers {
        let framing = [
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
        ]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f));
        if !framing && header_ok(name, value) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if let (Some(n), false) = (len, bodiless) {
        out.push_str(&format!("Content-Length: {n}\r\n"));
    }
    if !keep {
        out.push_str("Connection: close\r\n");
    } else if minor == 0 {
        out.push_str("Connection: keep-alive\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();

    if !send_body {
        let ok = stream.write_all(&out).is_ok();
        return (status, 0, keep && ok);
    }
    match body {
        Body::Empty => {
            let ok = stream.write_all(&out).is_ok();
            (status, 0, keep && ok)
        }
        Body::Bytes(b) => {
            out.extend_from_slice(&b);
            let ok = stream.write_all(&out).is_ok();
            (status, if ok { b.len() as u64 } else { 0 }, keep && ok)
        }
        Body::File { file, len, .. } => {
            if stream.write_all(&out).is_err() {
                return (status, 0, false);
            }
            let (n, _) = copy_body(&mut file.take(len), stream);
            (status, n, keep && n == len)
        }
        Body::Reader { len, mut reader } => {
            if stream.write_all(&out).is_err() {
                return (status, 0, false);
            }
            let (n, complete) = copy_body(&mut *reader, stream);
            (status, n, keep && complete && Some(n) == len)
        }
    }
}

/// Copy until EOF, a read error or a write error; returns (bytes written,
/// whether the reader reached EOF cleanly).
fn copy_body(reader: &mut dyn Read, stream: &mut TcpStream) -> (u64, bool) {
    let mut buf = vec![0u8; COPY_BUF];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return (total, true),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return (total, false),
        };
        if stream.write_all(&buf[..n]).is_err() {
            return (total, false);
        }
        total += n as u64;
    }
}
