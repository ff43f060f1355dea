//! Making untrusted strings safe to print.
//!
//! Package names, paths, versions and error texts can come from the network. Before they
//! reach a terminal or a log, control characters and bidirectional overrides are escaped
//! so that a hostile name cannot rewrite what an admin reads.

/// Escapes control and bidi characters in `s` (as `\u{..}`), leaving everything else.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || is_bidi(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// `escape`, cut to at most `max` characters with a trailing `…`.
pub fn short(s: &str, max: usize) -> String {
    let e = escape(s);
    if e.chars().count() <= max {
        e
    } else {
        let mut t: String = e.chars().take(max).collect();
        t.push('…');
        t
    }
}

fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bidi() {
        assert_eq!(escape("a\x1b[31mb"), "a\\u{1b}[31mb");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape("plain é"), "plain é");
        assert_eq!(short("abcdef", 3), "abc…");
    }
}
