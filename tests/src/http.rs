//! A minimal HTTP/1.1 client over `std::net::TcpStream` (no reqwest), and [`curl`].
//!
//! One request per connection (`Connection: close`); the body is read up to its
//! `Content-Length`, or to EOF, bounded by a byte limit and a timeout, and reported as it
//! came (`complete` tells whether it was whole), so tests can look at truncated, endless
//! or corrupt answers.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::Cmd;

/// An HTTP response as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body bytes received.
    pub body: Vec<u8>,
    /// Whether the body is whole: `Content-Length` bytes, or a close-delimited body that
    /// ended in a clean EOF within the limit.
    pub complete: bool,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request to send: `Request::get(url).header(..).send()`.
#[derive(Clone, Debug)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    proxy: Option<String>,
    timeout: Duration,
    limit: usize,
}

/// `http://HOST:PORT/PATH` split into (host:port, path).
fn split_url(url: &str) -> io::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("not http: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

impl Request {
    /// A GET of `url` (`http://host:port/path`, sent verbatim: no normalisation).
    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }

    /// A request with any method.
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            proxy: None,
            timeout: Duration::from_secs(10),
            limit: 256 << 20,
        }
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends through a forward proxy (`http://127.0.0.1:PORT`), absolute-form.
    pub fn proxy(mut self, proxy: &str) -> Request {
        self.proxy = Some(proxy.into());
        self
    }

    /// The longest the whole exchange may take (default 10 s); a body still arriving
    /// then is returned incomplete.
    pub fn timeout(mut self, t: Duration) -> Request {
        self.timeout = t;
        self
    }

    /// Reads at most `n` body bytes (default 256 MiB); more is returned incomplete.
    pub fn limit(mut self, n: usize) -> Request {
        self.limit = n;
        self
    }

    /// Sends it and reads the response.
    pub fn send(&self) -> io::Result<HttpResponse> {
        let (authority, path) = split_url(&self.url)?;
        let (connect_to, target) = match &self.proxy {
            Some(p) => (split_url(p)?.0, self.url.clone()),
            None => (authority.clone(), path),
        };
        let addr: SocketAddr = connect_to
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, connect_to.clone()))?;
        let deadline = Instant::now() + self.timeout;
        let mut s = TcpStream::connect_timeout(&addr, self.timeout)?;
        s.set_write_timeout(Some(self.timeout))?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {authority}\r\n",
            self.method, target
        );
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        s.write_all(head.as_bytes())?;

        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 << 10];
        let read = |s: &mut TcpStream, chunk: &mut [u8]| -> io::Result<Option<usize>> {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            s.set_read_timeout(Some(left))?;
            match s.read(chunk) {
                Ok(n) => Ok(Some(n)),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(Some(0)),
                Err(e) => Err(e),
            }
        };
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match read(&mut s, &mut chunk)? {
                None => return Err(io::Error::new(io::ErrorKind::TimedOut, "no response head")),
                Some(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed before a response head ({} bytes)",
                            buf.len()
                        ),
                    ))
                }
                Some(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut body = buf[end + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad status line {status_line:?}"),
                )
            })?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let length: Option<u64> = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok());
        let bodiless = self.method == "HEAD" || status == 204 || status == 304;
        let want = if bodiless { Some(0) } else { length };
        let complete = loop {
            if let Some(w) = want {
                if body.len() as u64 >= w {
                    body.truncate(w as usize);
                    break true;
                }
            }
            if body.len() >= self.limit {
                body.truncate(self.limit);
                break false;
            }
            match read(&mut s, &mut chunk)? {
                None => break false,
                Some(0) => break want.is_none(),
                Some(n) => body.extend_from_slice(&chunk[..n]),
            }
        };
        Ok(HttpResponse {
            status,
            headers,
            body,
            complete,
        })
    }
}

/// Runs `curl -sS -i URL EXTRA...` and parses its output (a transport failure fails the
/// test, printing curl's message). Use `--path-as-is` in `extra` to send `..` verbatim.
#[track_caller]
pub fn curl(url: &str, extra: &[&str]) -> HttpResponse {
    let o = Cmd::new("curl")
        .args(["-sS", "-i", "--max-time", "20"])
        .args(extra)
        .arg(url)
        .run();
    assert!(o.status.success(), "curl failed\n{o}");
    let out = o.stdout_bytes;
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no response head from curl {url}: {:?}",
                String::from_utf8_lossy(&out)
            )
        });
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line from curl {url}: {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: out[end + 4..].to_vec(),
        complete: true,
    }
}
