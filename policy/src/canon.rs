//! The canonical encoding of every signed or hashed document, and its strict decoder.
//!
//! A document is compact JSON (no spaces, fields in the order of the Rust struct that
//! defines it, absent optional fields left out). Decoding is strict in four steps, each
//! against a named threat:
//!
//! 1. endless data: the document must fit a fixed cap for its kind before parsing starts;
//! 2. confusion: `type` and `format` are read first, so a document of another kind or of
//!    a newer format is named as such rather than failing on some field;
//! 3. the content is parsed into checked types (`deny_unknown_fields`, checked names);
//! 4. parser differential: the parsed value is encoded again and must give back exactly
//!    the bytes received. Only one byte string is accepted per value, so what was signed
//!    or hashed is exactly what gets used (compare the Flatpak NUL-byte and APT InRelease
//!    bugs, where what was checked and what was used differed).

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::error::DocError;

/// The one format version this code reads and writes.
pub const FORMAT: u32 = 1;

/// Encodes a value canonically.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our documents hold only strings, integers, arrays and structs: serialising them to
    // a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "type")]
    doc_type: String,
    format: u64,
    #[serde(flatten)]
    _rest: std::collections::BTreeMap<String, IgnoredAny>,
}

/// Decodes a document of type `doc_type` named `what` (for messages), at most `max`
/// bytes long, checking each step above.
pub fn decode<T: DeserializeOwned + Serialize>(
    what: &str,
    doc_type: &'static str,
    bytes: &[u8],
    max: usize,
) -> Result<T, DocError> {
    if bytes.len() > max {
        return Err(DocError::TooLarge {
            what: what.to_string(),
            size: bytes.len() as u64,
            max: max as u64,
        });
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| DocError::NotADocument {
        what: what.to_string(),
        cause: crate::sanitize::short(&e.to_string(), 200),
    })?;
    if probe.doc_type != doc_type {
        return Err(DocError::WrongType {
            what: what.to_string(),
            found: crate::sanitize::short(&probe.doc_type, 40),
            expected: doc_type,
        });
    }
    if probe.format != u64::from(FORMAT) {
        return Err(DocError::UnsupportedFormat {
            what: what.to_string(),
            found: probe.format,
            supported: FORMAT,
        });
    }
    let value: T = serde_json::from_slice(bytes).map_err(|e| DocError::Invalid {
        what: what.to_string(),
        cause: crate::sanitize::short(&e.to_string(), 300),
    })?;
    if encode(&value) != bytes {
        return Err(DocError::NotCanonical {
            what: what.to_string(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[serde(rename = "type")]
        t: String,
        format: u32,
        n: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        o: Option<String>,
    }

    fn doc() -> Doc {
        Doc {
            t: "x".into(),
            format: 1,
            n: 5,
            o: None,
        }
    }

    #[test]
    fn round_trip() {
        let b = encode(&doc());
        assert_eq!(b, br#"{"type":"x","format":1,"n":5}"#);
        assert_eq!(decode::<Doc>("d", "x", &b, 100).unwrap(), doc());
    }

    #[test]
    fn each_step_refuses() {
        let err = |b: &[u8]| decode::<Doc>("d", "x", b, 100).unwrap_err();
        assert!(matches!(err(&[b' '; 101]), DocError::TooLarge { .. }));
        assert!(matches!(err(b"nope"), DocError::NotADocument { .. }));
        assert!(matches!(err(br#"{"n":1}"#), DocError::NotADocument { .. }));
        assert!(matches!(
            err(br#"{"type":"y","format":1,"n":5}"#),
            DocError::WrongType { .. }
        ));
        assert!(matches!(
            err(br#"{"type":"x","format":2,"n":5}"#),
            DocError::UnsupportedFormat { found: 2, .. }
        ));
        assert!(matches!(
            err(br#"{"type":"x","format":1,"n":5,"extra":1}"#),
            DocError::Invalid { .. }
        ));
        assert!(matches!(
            err(br#"{"type":"x","format":1,"n":-5}"#),
            DocError::Invalid { .. }
        ));
        // Same value, other spellings: spaces, field order, escapes, explicit null.
        for b in [
            &br#"{"type":"x", "format":1,"n":5}"#[..],
            br#"{"format":1,"type":"x","n":5}"#,
            br#"{"type":"\u0078","format":1,"n":5}"#,
            br#"{"type":"x","format":1,"n":5,"o":null}"#,
            br#"{"type":"x","format":1,"n":5}
"#,
        ] {
            assert!(
                matches!(err(b), DocError::NotCanonical { .. }),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn duplicate_fields_are_refused() {
        let e =
            decode::<Doc>("d", "x", br#"{"type":"x","format":1,"n":5,"n":6}"#, 100).unwrap_err();
        assert!(matches!(e, DocError::Invalid { .. }), "{e}");
    }
}
