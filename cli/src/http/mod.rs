//! A small, robust HTTP/1.1 server: std only, one thread per connection.
//!
//! # Design
//!
//! The server core ([`Server`], [`run`]) knows nothing about files. It reads
//! and validates request heads, frames responses and manages connections;
//! everything else is decided by a [`Handler`]:
//!
//! ```text
//! TcpListener ─▶ accept loop ─▶ connection thread ─▶ parse head ─▶ Handler::handle(&Request) ─▶ Response ─▶ write
//! ```
//!
//! A handler sees only requests that are already known to be `GET` or `HEAD`
//! and to carry no body; the core answers 400/405/408/413/414/431/505 itself.
//! The core owns the framing: it computes `Content-Length` from the [`Body`]
//! (any `Content-Length`, `Transfer-Encoding` or `Connection` header set by a
//! handler is dropped), adds `Date` and `Server: stork-repo` unless the
//! handler set them, omits the body for `HEAD`, 204 and 304, and decides
//! keep-alive.
//!
//! Because `handle` runs on the connection's own thread it may block as long
//! as it likes (e.g. a test handler holding a reply until released); only that
//! connection waits.
//!
//! [`StaticFiles`] is the handler that serves a repository directory (ranges,
//! conditional requests, caching headers, no path escapes).
//!
//! # Building a fault-injecting test origin
//!
//! A test origin is just another [`Handler`] that wraps [`StaticFiles`] and
//! rewrites its [`Response`]:
//!
//! ```no_run
//! use std::sync::{atomic::{AtomicUsize, Ordering}, Arc};
//! use std::io::Read;
//! use stork_cli::http::{Body, Handler, Request, Response, Server, ServerConfig, StaticFiles};
//!
//! struct Faulty { inner: StaticFiles, hits: AtomicUsize }
//! impl Handler for Faulty {
//!     fn handle(&self, req: &Request) -> Response {
//!         self.hits.fetch_add(1, Ordering::SeqCst);           // count requests
//!         let mut resp = self.inner.handle(req);
//!         if req.path.ends_with(".deb") {
//!             // Truncate: promise the full length, deliver 100 bytes, then
//!             // the server closes the connection.
//!             let len = resp.body.len();
//!             if let Ok(r) = std::mem::replace(&mut resp.body, Body::Empty).into_reader() {
//!                 resp.body = Body::Reader { len, reader: Box::new(r.take(100)) };
//!             }
//!         }
//!         resp
//!     }
//! }
//! let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! let handler = Arc::new(Faulty { inner: StaticFiles::new("repo".into()).unwrap(), hits: AtomicUsize::new(0) });
//! let server = Server::spawn(listener, handler, ServerConfig::default()).unwrap();
//! println!("origin at http://{}/", server.local_addr());
//! ```
//!
//! Delays are a `std::thread::sleep` in `handle`; corruption is a `Read`
//! adapter flipping bytes; an endless body is `Body::Reader { len: None, .. }`
//! over `std::io::repeat`, which the server sends close-delimited until the
//! client goes away (the write then fails and the connection thread ends).
//!
//! # Limits and deliberate omissions
//!
//! Request heads are bounded (16 KiB, 100 header fields) and must arrive
//! within `header_timeout`; idle keep-alive connections are closed after
//! `idle_timeout`, which is also the longest a response write may make no
//! progress. Requests with a body are refused (413): a repository accepts no
//! uploads. `Host` is not required. `If-Range` is ignored by [`StaticFiles`]
//! (a `Range` is always honoured), which is allowed because our validators
//! are strong and the files are replaced, not modified, in place.

use std::io::{self, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::time::Duration;

mod date;
mod files;
mod parse;
mod server;
#[cfg(test)]
mod tests;

pub use date::{format_http_date, parse_http_date};
pub use files::{StaticFiles, CACHE_IMMUTABLE, CACHE_NO_CACHE};
pub use server::{run, Server};

/// One parsed request head. Requests never have bodies here.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method, exactly as sent (case-sensitive, e.g. `GET`).
    pub method: String,
    /// The raw request target in origin form, before percent-decoding:
    /// the path plus any `?query` (absolute-form targets such as
    /// `http://host/a?b` are reduced to `/a?b`).
    pub path: String,
    /// Header fields in the order received; names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The client's address.
    pub peer: SocketAddr,
}

impl Request {
    /// The first header field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// [`Request::path`] without its query string.
    pub fn path_only(&self) -> &str {
        match self.path.find(['?', '#']) {
            Some(i) => &self.path[..i],
            None => &self.path,
        }
    }
}

/// A response body. The server derives the framing from it.
pub enum Body {
    /// No body; `Content-Length: 0`.
    Empty,
    /// An in-memory body.
    Bytes(Vec<u8>),
    /// `len` bytes of `file` starting at `offset` (streamed, never loaded
    /// into memory). If the file turns out shorter, the connection is closed
    /// after what could be sent.
    File {
        file: std::fs::File,
        offset: u64,
        len: u64,
    },
    /// A streamed body.
    ///
    /// * `len: None` — close-delimited: the server sends `Connection: close`
    ///   and no `Content-Length`, copies the reader to EOF (or until the
    ///   client goes away) and closes the connection.
    /// * `len: Some(n)` — the server sends `Content-Length: n` and then copies
    ///   *exactly what the reader yields*, without clipping or padding. If
    ///   that differs from `n` (a reader that ends early, or one that yields
    ///   more), the connection is closed afterwards. This lets a test handler
    ///   simulate a lying or truncating server.
    Reader {
        len: Option<u64>,
        reader: Box<dyn Read + Send>,
    },
}

impl Body {
    /// The announced length (`None` for a close-delimited reader).
    pub fn len(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Bytes(b) => Some(b.len() as u64),
            Body::File { len, .. } => Some(*len),
            Body::Reader { len, .. } => *len,
        }
    }

    /// True for a body that announces length 0.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// Turn any body into a reader of its bytes (a `File` is positioned at
    /// its offset and limited to its length). Useful for handlers that wrap
    /// another handler and alter its body.
    pub fn into_reader(self) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Body::Empty => Box::new(io::empty()),
            Body::Bytes(b) => Box::new(io::Cursor::new(b)),
            Body::File {
                mut file,
                offset,
                len,
            } => {
                file.seek(SeekFrom::Start(offset))?;
                Box::new(file.take(len))
            }
            Body::Reader { reader, .. } => reader,
        })
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::File { offset, len, .. } => write!(f, "File {{ offset: {offset}, len: {len} }}"),
            Body::Reader { len, .. } => write!(f, "Reader {{ len: {len:?} }}"),
        }
    }
}

/// A response produced by a [`Handler`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Extra header fields. Framing fields (`Content-Length`,
    /// `Transfer-Encoding`, `Connection`) are ignored; the server sets them.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    /// A response with no headers and an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// A short `text/plain` response.
    pub fn text(status: u16, text: &str) -> Response {
        Response::new(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(Body::Bytes(text.as_bytes().to_vec()))
    }

    /// Append a header field.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Replace the body.
    pub fn with_body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    /// The first header field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers requests. Called on the connection's own thread; may block.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &Request) -> Response;
}

/// Server tuning.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connections served at once; further clients get 503 and are closed.
    pub max_connections: usize,
    /// Longest time for a whole request head to arrive once it has started
    /// (for the first request, from accept).
    pub header_timeout: Duration,
    /// Longest wait for the next request on a kept-alive connection, and the
    /// longest a response write may make no progress.
    pub idle_timeout: Duration,
    /// Log one line per request on stderr: `peer method path status bytes`.
    pub log: bool,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_connections: 256,
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            log: false,
        }
    }
}

/// The standard reason phrase for a status code ("" when unknown).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}
