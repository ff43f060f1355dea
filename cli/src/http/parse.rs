//! Request-head parsing: pure functions over bytes, no I/O.
//!
//! Errors are the HTTP status to answer with (the connection is then closed).

/// Most bytes a request head (request line + header fields) may take.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Most header fields in one request.
pub(crate) const MAX_HEADERS: usize = 100;

/// A syntactically valid request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub method: String,
    /// Origin-form target (`/path?query`), or `*`.
    pub path: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<(String, String)>,
}

/// Where a complete head ends in `buf` (index just past its blank line),
/// looking only at the first [`MAX_HEAD`] bytes. `buf` must not start with
/// blank lines (see [`skip_leading_blank_lines`]).
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    let buf = &buf[..buf.len().min(MAX_HEAD)];
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match buf.get(nl + 1..) {
            Some([b'\n', ..]) => return Some(nl + 2),
            Some([b'\r', b'\n', ..]) => return Some(nl + 3),
            _ => {}
        }
        i = nl + 1;
    }
    None
}

/// Drop CRLFs sent before a request line (RFC 9112 §2.2 allows them).
pub(crate) fn skip_leading_blank_lines(buf: &mut Vec<u8>) {
    let n = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    buf.drain(..n);
}

/// The status for a head that did not end within [`MAX_HEAD`] bytes:
/// 414 if even the request line is unfinished, else 431.
pub(crate) fn too_large_status(buf: &[u8]) -> u16 {
    if buf[..buf.len().min(MAX_HEAD)].contains(&b'\n') {
        431
    } else {
        414
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Parse a complete head (as delimited by [`find_head_end`]).
pub(crate) fn parse_head(bytes: &[u8]) -> Result<Head, u16> {
    let mut lines = bytes.split(|&b| b == b'\n').map(|l| match l {
        [rest @ .., b'\r'] => rest,
        l => l,
    });
    let request_line = lines.next().ok_or(400u16)?;
    let (method, path, minor) = parse_request_line(request_line)?;

    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(431);
        }
        headers.push(parse_header_line(line)?);
    }
    Ok(Head {
        method,
        path,
        minor,
        headers,
    })
}

fn parse_request_line(line: &[u8]) -> Result<(String, String, u8), u16> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !is_token(method) {
        return Err(400);
    }
    let minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            return Err(505)
        }
        _ => return Err(400),
    };
    if target.is_empty() || !target.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
        return Err(400);
    }
    // Both checked ASCII above.
    let method = String::from_utf8_lossy(method).into_owned();
    let target = String::from_utf8_lossy(target).into_owned();
    Ok((method, origin_form(&target).ok_or(400u16)?, minor))
}

/// Reduce a request target to origin form: `/p?q` stays, `http://h/p?q`
/// becomes `/p?q`, `*` stays; anything else is invalid.
fn origin_form(target: &str) -> Option<String> {
    if target.starts_with('/') || target == "*" {
        return Some(target.to_string());
    }
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return None;
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(match path.as_bytes().first() {
        Some(b'/') => path.to_string(),
        _ => format!("/{path}"),
    })
}

fn parse_header_line(line: &[u8]) -> Result<(String, String), u16> {
    let colon = line.iter().position(|&b| b == b':').ok_or(400u16)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // Also rejects obs-fold (a line starting with whitespace) and
    // whitespace before the colon.
    if !is_token(name) {
        return Err(400);
    }
    let value = value.trim_ascii();
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(400);
    }
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(value).into_owned(),
    ))
}

/// Refuse requests that carry a body: 413 for a positive `Content-Length`
/// or any `Transfer-Encoding`, 400 for an invalid or conflicting length.
pub(crate) fn check_no_body(headers: &[(String, String)]) -> Result<(), u16> {
    let mut length: Option<u64> = None;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(413);
        }
        if name.eq_ignore_ascii_case("content-length") {
            for v in value.split(',') {
                let v = v.trim();
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(400);
                }
                // All digits: failure can only be overflow, i.e. huge.
                let n = v.parse::<u64>().unwrap_or(u64::MAX);
                if length.is_some_and(|l| l != n) {
                    return Err(400);
                }
                length = Some(n);
            }
        }
    }
    match length {
        Some(n) if n > 0 => Err(413),
        _ => Ok(()),
    }
}

/// Whether the client wants the connection kept open after this exchange.
pub(crate) fn wants_keep_alive(minor: u8, headers: &[(String, String)]) -> bool {
    let mut close = false;
    let mut keep = false;
    for (_, value) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        for token in value.split(',') {
            let token = token.trim();
            close |= token.eq_ignore_ascii_case("close");
            keep |= token.eq_ignore_ascii_case("keep-alive");
        }
    }
    !close && (minor >= 1 || keep)
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    fn head(s: &str) -> Result<Head, u16> {
        let b = s.as_bytes();
        let end = find_head_end(b).ok_or(0u16)?;
        parse_head(&b[..end])
    }

    #[test]
    fn parses_heads() {
        let h = head("GET /a/b?c HTTP/1.1\r\nHost: x\r\nX-A:  v v \r\n\r\n").unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, "/a/b?c");
        assert_eq!(h.minor, 1);
        assert_eq!(h.headers[1], ("X-A".into(), "v v".into()));
        let h = head("HEAD http://example.com:8080/x/y HTTP/1.0\n\n").unwrap();
        assert_eq!((h.path.as_str(), h.minor), ("/x/y", 0));
        assert_eq!(head("GET http://h HTTP/1.1\r\n\r\n").unwrap().path, "/");
        assert_eq!(
            head("GET HTTPS://h?q HTTP/1.1\r\n\r\n").unwrap().path,
            "/?q"
        );
    }

    #[test]
    fn rejects_bad_heads() {
        for (s, code) in [
            ("GET / HTTP/1.1 x\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\n\r\n", 505),
            ("GET / HTTX/1.1\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\n\r\n", 400),
            ("GET foo HTTP/1.1\r\n\r\n", 400),
            ("GET http:/// HTTP/1.1\r\n\r\n", 400),
            ("GET /\x01 HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA : b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", 400),
        ] {
            assert_eq!(head(s), Err(code), "{s:?}");
        }
        let many: String = (0..101).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(head(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Err(431));
    }

    #[test]
    fn body_and_connection_rules() {
        let h = |n: &str, v: &str| vec![(n.to_string(), v.to_string())];
        assert_eq!(check_no_body(&h("Content-Length", "0")), Ok(()));
        assert_eq!(check_no_body(&h("content-length", "5")), Err(413));
        assert_eq!(check_no_body(&h("Content-Length", "-1")), Err(400));
        assert_eq!(check_no_body(&h("Content-Length", "0, 1")), Err(400));
        assert_eq!(check_no_body(&h("Transfer-Encoding", "chunked")), Err(413));
        assert!(wants_keep_alive(1, &[]));
        assert!(!wants_keep_alive(1, &h("Connection", "Close")));
        assert!(!wants_keep_alive(0, &[]));
        assert!(wants_keep_alive(0, &h("Connection", "keep-alive")));
    }

    #[test]
    fn head_boundaries() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nX"), Some(18));
        let mut v = b"\r\n\r\nGET".to_vec();
        skip_leading_blank_lines(&mut v);
        assert_eq!(v, b"GET");
        assert_eq!(too_large_status(&[b'a'; MAX_HEAD]), 414);
    }
}
