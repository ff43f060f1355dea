//! [`StaticFiles`]: serve a repository directory.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{format_http_date, parse_http_date, Body, Handler, Request, Response};

/// Cache policy for content-addressed files under `objects/`.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache policy for everything else (notably `index.json`): always revalidate.
pub const CACHE_NO_CACHE: &str = "no-cache";

/// Serves regular files below a root directory, read-only.
///
/// * The request path is percent-decoded; `%00`, invalid UTF-8, backslashes,
///   bad `%` escapes and `.`/`..` components are refused with 400. Query
///   strings and fragments are ignored.
/// * Hidden components (starting with `.`), empty components (`a//b`,
///   trailing `/`), directories, anything that is not a regular file and any
///   path with a symlink component answer 404. The file opened is checked
///   to be the very inode that was checked (dev + inode).
/// * `GET` honours one `Range` (`a-b`, `a-`, `-n`) with 206, or 416 when
///   unsatisfiable; several ranges or a malformed `Range` give the full 200.
///   `If-Range` is ignored (ranges are always honoured).
/// * Validators: a strong `ETag` from (length, mtime in ns, inode) and
///   `Last-Modified`; `If-None-Match` (taking precedence) and
///   `If-Modified-Since` yield 304.
/// * `Cache-Control`: [`CACHE_IMMUTABLE`] below `objects/`, else [`CACHE_NO_CACHE`].
/// * `Content-Type`: `application/json` for `.json`, else
///   `application/octet-stream`.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    root: PathBuf,
}

/// What a `Range` header asks of a file of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeReq {
    /// No usable range: send everything.
    Full,
    /// Inclusive byte positions, both within the file.
    Part(u64, u64),
    Unsatisfiable,
}

impl StaticFiles {
    /// Serve `root`, which must be a directory (it is canonicalized).
    pub fn new(root: PathBuf) -> io::Result<StaticFiles> {
        let root = fs::canonicalize(&root)?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(StaticFiles { root })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Open the regular file a raw request path names, or the error status.
    fn open(&self, components: &[String]) -> Result<(File, Metadata), u16> {
        let mut path = self.root.clone();
        for (i, c) in components.iter().enumerate() {
            path.push(c);
            let md = fs::symlink_metadata(&path).map_err(|_| 404u16)?;
            let last = i + 1 == components.len();
            if md.file_type().is_symlink() || (!last && !md.is_dir()) || (last && !md.is_file()) {
                return Err(404);
            }
            if last {
                let file = File::open(&path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => 404u16,
                    _ => 500,
                })?;
                let fmd = file.metadata().map_err(|_| 500u16)?;
                if !fmd.is_file() || fmd.ino() != md.ino() || fmd.dev() != md.dev() {
                    return Err(404);
                }
                return Ok((file, fmd));
            }
        }
        Err(404)
    }
}

/// Percent-decode a raw request path into its components.
pub(crate) fn decode_path(raw: &str) -> Result<Vec<String>, u16> {
    let raw = raw.split(['?', '#']).next().unwrap_or("");
    let raw = raw.strip_prefix('/').ok_or(400u16)?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(400u16)?;
            let hex = std::str::from_utf8(hex).map_err(|_| 400u16)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(400);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| 400u16)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.contains(&0) || out.contains(&b'\\') {
        return Err(400);
    }
    let path = String::from_utf8(out).map_err(|_| 400u16)?;
    let components: Vec<String> = path.split('/').map(str::to_string).collect();
    // Refuse traversal first (400), then what merely is not served (404).
    if components.iter().any(|c| c == "." || c == "..") {
        return Err(400);
    }
    if components
        .iter()
        .any(|c| c.is_empty() || c.starts_with('.'))
    {
        return Err(404);
    }
    Ok(components)
}

fn all_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Only overflow can fail now: treat as "very large".
    Some(s.parse().unwrap_or(u64::MAX))
}

/// Interpret a `Range` header for a file of `len` bytes (RFC 9110 §14).
pub(crate) fn parse_range(value: &str, len: u64) -> RangeReq {
    let Some((unit, set)) = value.trim().split_once('=') else {
        return RangeReq::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeReq::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [spec] = specs.as_slice() else {
        return RangeReq::Full; // none, or several: send the whole file
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeReq::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let Some(n) = all_digits(last) else {
            return RangeReq::Full;
        };
        if n == 0 || len == 0 {
            return RangeReq::Unsatisfiable;
        }
        return RangeReq::Part(len.saturating_sub(n), len - 1);
    }
    let Some(first) = all_digits(first) else {
        return RangeReq::Full;
    };
    let last = if last.is_empty() {
        u64::MAX
    } else {
        match all_digits(last) {
            Some(l) if l >= first => l,
            _ => return RangeReq::Full,
        }
    };
    if first >= len {
        return RangeReq::Unsatisfiable;
    }
    RangeReq::Part(first, last.min(len - 1))
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison).
pub(crate) fn etag_matches(list: &str, etag: &str) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        rest = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(body) = rest.strip_prefix('"') else {
            return false; // malformed list
        };
        let Some(end) = body.find('"') else {
            return false;
        };
        if &rest[..end + 2] == etag {
            return true;
        }
        rest = &body[end + 1..];
    }
}

fn make_etag(md: &Metadata, mtime: SystemTime) -> String {
    let nanos = mtime
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("\"{:x}-{:x}-{:x}\"", md.len(), nanos, md.ino())
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn status_text(status: u16) -> Response {
    Response::text(
        status,
        &format!("{} {}\n", status, super::reason_phrase(status)),
    )
}

impl Handler for StaticFiles {
    fn handle(&self, req: &Request) -> Response {
        let is_get = req.method == "GET";
        if !is_get && req.method != "HEAD" {
            return status_text(405).with_header("Allow", "GET, HEAD");
        }
        let components = match decode_path(&req.path) {
            Ok(c) => c,
            Err(status) => return status_text(status),
        };
        let (file, md) = match self.open(&components) {
            Ok(f) => f,
            Err(status) => return status_text(status),
        };
        let len = md.len();
        let mtime = md.modified().unwrap_or(UNIX_EPOCH);
        let etag = make_etag(&md, mtime);
        let immutable = components.len() > 1 && components[0] == "objects";
        let content_type = if components.last().is_some_and(|c| c.ends_with(".json")) {
            "application/json"
        } else {
            "application/octet-stream"
        };
        let validators = |status: u16| {
            Response::new(status)
                .with_header("ETag", &etag)
                .with_header("Last-Modified", &format_http_date(mtime))
                .with_header(
                    "Cache-Control",
                    if immutable {
                        CACHE_IMMUTABLE
                    } else {
                        CACHE_NO_CACHE
                    },
                )
                .with_header("Accept-Ranges", "bytes")
        };

        // Conditional requests (RFC 9110 §13.2.2): If-None-Match wins.
        let inm: Vec<&str> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("if-none-match"))
            .map(|(_, v)| v.as_str())
            .collect();
        let not_modified = if !inm.is_empty() {
            inm.iter().any(|v| etag_matches(v, &etag))
        } else {
            req.header("If-Modified-Since")
                .and_then(parse_http_date)
                .is_some_and(|since| unix_secs(mtime) <= unix_secs(since))
        };
        if not_modified {
            return validators(304);
        }

        let range = match req.header("Range") {
            Some(r) if is_get => parse_range(r, len),
            _ => RangeReq::Full,
        };
        match range {
            RangeReq::Full => validators(200)
                .with_header("Content-Type", content_type)
                .with_body(Body::File {
                    file,
                    offset: 0,
                    len,
                }),
            RangeReq::Part(a, b) => validators(206)
                .with_header("Content-Type", content_type)
                .with_header("Content-Range", &format!("bytes {a}-{b}/{len}"))
                .with_body(Body::File {
                    file,
                    offset: a,
                    len: b - a + 1,
                }),
            RangeReq::Unsatisfiable => status_text(416)
                .with_header("Content-Range", &format!("bytes */{len}"))
                .with_header("Accept-Ranges", "bytes"),
        }
    }
}

#[cfg(test)]
mod files_tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeReq::*;
        for (v, want) in [
            ("bytes=0-9", Part(0, 9)),
            ("bytes=2-", Part(2, 99)),
            ("bytes=-10", Part(90, 99)),
            ("bytes=-1000", Part(0, 99)),
            ("bytes=90-1000", Part(90, 99)),
            ("BYTES = 5-5", Part(5, 5)),
            ("bytes=100-", Unsatisfiable),
            ("bytes=100-200", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=99999999999999999999999-", Unsatisfiable),
            ("bytes=0-1,5-6", Full),
            ("bytes=9-2", Full),
            ("bytes=x-2", Full),
            ("bytes=", Full),
            ("bytes=1", Full),
            ("items=0-1", Full),
            ("garbage", Full),
        ] {
            assert_eq!(parse_range(v, 100), want, "{v}");
        }
        assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn etags() {
        let t = "\"a-b-c\"";
        assert!(etag_matches("*", t));
        assert!(etag_matches("\"a-b-c\"", t));
        assert!(etag_matches("\"x\", W/\"a-b-c\"", t));
        assert!(etag_matches("\"x,y\",\"a-b-c\"", t));
        assert!(!etag_matches("\"x\"", t));
        assert!(!etag_matches("a-b-c", t));
        assert!(!etag_matches("\"a-b-c", t));
    }

    #[test]
    fn paths() {
        let ok = |p: &str| decode_path(p).unwrap();
        assert_eq!(ok("/index.json?x=1"), vec!["index.json"]);
        assert_eq!(ok("/objects/ab/c%20d"), vec!["objects", "ab", "c d"]);
        assert_eq!(ok("/%C3%A9"), vec!["é"]);
        for (p, code) in [
            ("/../x", 400),
            ("/%2e%2e/x", 400),
            ("/objects/..%2f..%2fetc/passwd", 400),
            ("/a/./b", 400),
            ("/a%00b", 400),
            ("/a%5cb", 400),
            ("/a\\b", 400),
            ("/%ff", 400),
            ("/%4", 400),
            ("/%zz", 400),
            ("x", 400),
            ("/.lock", 404),
            ("/.tmp/x", 404),
            ("/a//b", 404),
            ("/a/", 404),
            ("/", 404),
        ] {
            assert_eq!(decode_path(p), Err(code), "{p}");
        }
    }
}
