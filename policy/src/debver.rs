//! Debian version ordering and Debian relation syntax.
//!
//! [`DebVersion`] parses `[epoch:]upstream[-revision]` strictly and orders versions exactly
//! as `dpkg --compare-versions` does. [`parse_relations`] parses the value of a binary
//! package's `Depends:`/`Pre-Depends:` field (Debian policy §7.1).
//!
//! Both take text from the network or from tenants, so they never panic, refuse anything
//! dpkg would refuse (and a little more, see below), and run in time linear in the input.
//!
//! Choices made where dpkg is lenient or where the brief asked for something dpkg refuses:
//!
//! * Versions: whitespace is never accepted (dpkg trims it around a version); characters
//!   dpkg only warns about (`_`, non-ASCII, ...) are errors; the epoch must be plain decimal
//!   digits no bigger than dpkg's limit, 2147483647 (`i32::MAX`). An upstream part that
//!   does not start with a digit is accepted (dpkg warns; [`crate::names::Version`] refuses).
//! * Relations: an empty or all-whitespace field has no clauses. Like dpkg (which refuses
//!   `Depends: a, b,` in `dpkg-deb --build`), an empty clause (`a,,b`, a leading or a
//!   trailing comma) and an empty alternative (`a | | b`, `a |`) are errors.
//! * The obsolete operators `<` and `>` are accepted and mean `<=` and `>=`, as in dpkg. A
//!   constraint without an operator (`a (1.0)`, an implicit `=` that dpkg only warns about)
//!   is refused.
//! * Architecture restriction lists (`[amd64 !i386]`) and build-profile lists
//!   (`<!nocheck> <stage1>`) belong to source packages; dpkg refuses them in a binary
//!   package. We accept them, after the version constraint and in that order, check their
//!   syntax strictly, and then drop them: they are not in [`Alternative`] and are not
//!   printed back.
//! * No whitespace is allowed between a package name and its `:arch` qualifier (dpkg
//!   refuses `a :any` too).

use std::cmp::Ordering;
use std::fmt;

use crate::error::NameError;
use crate::names::PackageName;

/// The largest epoch dpkg accepts.
const MAX_EPOCH: u32 = i32::MAX as u32;

/// How many characters of an offending clause an error message quotes.
const QUOTE_LEN: usize = 80;

/// A parsed Debian version: `[epoch:]upstream[-revision]`.
///
/// Equality and order follow `dpkg --compare-versions`, so `1.0`, `0:1.0` and `1.0-0` are
/// all equal although they print differently ([`fmt::Display`] gives the text as parsed).
#[derive(Clone, Debug)]
pub struct DebVersion {
    text: String,
    epoch: u32,
    upstream: String,
    revision: String,
}

impl DebVersion {
    /// Parses a version strictly. The error is a short human reason, such as
    /// `the epoch "x" is not a number`, `it contains ' '` or `the revision is empty`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("it is empty".into());
        }
        if let Some(c) = s.chars().find(|&c| !is_version_char(c) && c != ':') {
            return Err(format!("it contains {c:?}"));
        }
        let (epoch, rest) = match s.split_once(':') {
            None => (0, s),
            Some((e, rest)) => (parse_epoch(e)?, rest),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            None => (rest, ""),
            Some((_, "")) => return Err("the revision is empty".into()),
            Some((u, r)) => (u, r),
        };
        if upstream.is_empty() {
            return Err("the upstream version is empty".into());
        }
        // `upstream` may contain ':' (an epoch is then present, as the first ':' split it
        // off) and '-' (a revision is then present, as the last '-' split it off).
        if revision.contains(':') {
            return Err("the revision contains ':'".into());
        }
        Ok(DebVersion {
            text: s.to_string(),
            epoch,
            upstream: upstream.to_string(),
            revision: revision.to_string(),
        })
    }

    /// The epoch; 0 when absent.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The upstream part (never empty).
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision; `""` when absent.
    pub fn revision(&self) -> &str {
        &self.revision
    }
}

/// Characters allowed in an upstream version or a revision (`:` is handled separately).
fn is_version_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-')
}

fn parse_epoch(e: &str) -> Result<u32, String> {
    if e.is_empty() {
        return Err("the epoch is empty".into());
    }
    if !e.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the epoch {e:?} is not a number"));
    }
    match e.parse::<u32>() {
        Ok(n) if n <= MAX_EPOCH => Ok(n),
        _ => Err(format!("the epoch {e:?} is too big")),
    }
}

/// dpkg's `order()`: the weight of a non-digit character; 0 stands for "end of string"
/// (and digits, which never reach the comparison).
fn order(c: u8) -> i32 {
    if c.is_ascii_digit() {
        0
    } else if c.is_ascii_alphabetic() {
        i32::from(c)
    } else if c == b'~' {
        -1
    } else if c != 0 {
        i32::from(c) + 256
    } else {
        0
    }
}

/// dpkg's `verrevcmp()`, with digit runs compared without converting them to integers.
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() || j < b.len() {
        // Non-digit prefix: compare character by character; '~' sorts before the end,
        // which sorts before letters, which sort before everything else.
        while (i < a.len() && !at(a, i).is_ascii_digit())
            || (j < b.len() && !at(b, j).is_ascii_digit())
        {
            let (ac, bc) = (order(at(a, i)), order(at(b, j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            // Equal weights here mean two equal non-digit characters, so neither side
            // is at its end.
            i += 1;
            j += 1;
        }
        // Digit run: numerically, ignoring leading zeros.
        while at(a, i) == b'0' {
            i += 1;
        }
        while at(b, j) == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while at(a, i).is_ascii_digit() && at(b, j).is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = at(a, i).cmp(&at(b, j));
            }
            i += 1;
            j += 1;
        }
        if at(a, i).is_ascii_digit() {
            return Ordering::Greater;
        }
        if at(b, j).is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

impl PartialEq for DebVersion {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for DebVersion {}
impl PartialOrd for DebVersion {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for DebVersion {
    /// `dpkg --compare-versions` order: epoch, then upstream, then revision (an absent
    /// revision compares like `""`, hence like `0`).
    fn cmp(&self, o: &Self) -> Ordering {
        self.epoch
            .cmp(&o.epoch)
            .then_with(|| verrevcmp(self.upstream.as_bytes(), o.upstream.as_bytes()))
            .then_with(|| verrevcmp(self.revision.as_bytes(), o.revision.as_bytes()))
    }
}

impl fmt::Display for DebVersion {
    /// The version exactly as parsed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A relation field: every clause must hold (the clauses are separated by `,`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relations {
    /// The clauses, in order; none for an empty field.
    pub clauses: Vec<Clause>,
}

/// One clause: at least one of the alternatives must hold (they are separated by `|`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    /// The alternatives, in order; never empty when parsed.
    pub alternatives: Vec<Alternative>,
}

/// One package reference: `name[:arch] [(op version)]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alternative {
    /// The package name.
    pub name: PackageName,
    /// The architecture qualifier without its colon (`any`, `native`, `amd64`, ...).
    pub arch: Option<String>,
    /// The version constraint, if any.
    pub constraint: Option<Constraint>,
}

/// A version constraint such as `>= 1.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    /// The relation operator.
    pub op: Op,
    /// The version on the right of the operator.
    pub version: DebVersion,
}

/// A relation operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `<<`: strictly earlier.
    Lt,
    /// `<=` (also the obsolete `<`): earlier or equal.
    Le,
    /// `=`: equal.
    Eq,
    /// `>=` (also the obsolete `>`): later or equal.
    Ge,
    /// `>>`: strictly later.
    Gt,
}

impl Op {
    /// The canonical spelling: `<<`, `<=`, `=`, `>=` or `>>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

impl Constraint {
    /// Whether version `v` satisfies this constraint (`v op self.version`, in dpkg order).
    pub fn satisfied_by(&self, v: &DebVersion) -> bool {
        let o = v.cmp(&self.version);
        match self.op {
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Eq => o == Ordering::Equal,
            Op::Ge => o != Ordering::Less,
            Op::Gt => o == Ordering::Greater,
        }
    }
}

impl fmt::Display for Op {
    /// The canonical spelling (see [`Op::as_str`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Constraint {
    /// `>= 1.0`: operator and version, without the parentheses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.version)
    }
}

impl fmt::Display for Alternative {
    /// `name:arch (>= 1.0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name.as_str())?;
        if let Some(a) = &self.arch {
            write!(f, ":{a}")?;
        }
        if let Some(c) = &self.constraint {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}

impl fmt::Display for Clause {
    /// The alternatives joined by ` | `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.alternatives.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Relations {
    /// The clauses joined by `, `: `a (>= 1.0) | b, c:any`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Parses a binary package's relation field (`Depends:`, `Pre-Depends:`, ...).
///
/// The error names the offending clause, e.g. `in "foo (>= )": the version is empty`. See
/// the module documentation for what is accepted beyond (and refused within) dpkg's rules.
pub fn parse_relations(s: &str) -> Result<Relations, String> {
    if s.trim_matches(is_ws).is_empty() {
        return Ok(Relations {
            clauses: Vec::new(),
        });
    }
    let mut clauses = Vec::new();
    for (n, clause_text) in s.split(',').enumerate() {
        let clause_text = clause_text.trim_matches(is_ws);
        if clause_text.is_empty() {
            return Err(format!(
                "in {}: clause {} is empty (a stray, doubled or trailing ',')",
                quote(s),
                n + 1
            ));
        }
        let mut alternatives = Vec::new();
        for (k, alt_text) in clause_text.split('|').enumerate() {
            let alt_text = alt_text.trim_matches(is_ws);
            if alt_text.is_empty() {
                return Err(format!(
                    "in {}: alternative {} is empty (a stray, doubled or trailing '|')",
                    quote(clause_text),
                    k + 1
                ));
            }
            let alt = parse_alternative(alt_text)
                .map_err(|why| format!("in {}: {why}", quote(clause_text)))?;
            alternatives.push(alt);
        }
        clauses.push(Clause { alternatives });
    }
    Ok(Relations { clauses })
}

/// Whitespace allowed around tokens (folded control fields bring newlines).
fn is_ws(c: char) -> bool {
    c.is_ascii_whitespace()
}

/// `s` in double quotes, shortened if long, for error messages.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LEN) {
        None => format!("{s:?}"),
        Some((cut, _)) => {
            let head = s.get(..cut).unwrap_or("");
            format!("{head:?}... ({} bytes)", s.len())
        }
    }
}

/// A cursor over the text of one alternative.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start_matches(is_ws);
    }
    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }
    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }
    fn eat_str(&mut self, p: &str) -> bool {
        match self.rest.strip_prefix(p) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }
    /// Takes characters up to (not including) the first one for which `stop` holds.
    fn take_until(&mut self, stop: impl Fn(char) -> bool) -> &'a str {
        let end = self.rest.find(stop).unwrap_or(self.rest.len());
        let (tok, rest) = self.rest.split_at(end);
        self.rest = rest;
        tok
    }
}

fn parse_alternative(text: &str) -> Result<Alternative, String> {
    let mut cur = Cursor { rest: text };
    cur.skip_ws();
    let name = cur.take_until(|c| is_ws(c) || matches!(c, ':' | '(' | ')' | '[' | ']' | '<' | '>'));
    if name.is_empty() {
        return Err("the package name is missing".into());
    }
    let name = PackageName::new(name).map_err(|e| match e {
        NameError::Package { why, .. } => format!("the package name {}: {why}", quote(name)),
        other => other.to_string(),
    })?;

    let mut arch = None;
    if cur.eat(':') {
        let a = cur.take_until(|c| is_ws(c) || matches!(c, '(' | ')' | '[' | ']' | '<' | '>'));
        check_arch_name(a).map_err(|why| format!("the architecture qualifier {why}"))?;
        arch = Some(a.to_string());
    }

    cur.skip_ws();
    let mut constraint = None;
    if cur.eat('(') {
        constraint = Some(parse_constraint(&mut cur)?);
        cur.skip_ws();
    }

    if cur.eat('[') {
        parse_arch_list(&mut cur)?;
        cur.skip_ws();
    }

    while cur.eat('<') {
        parse_profile_list(&mut cur)?;
        cur.skip_ws();
    }

    match cur.peek() {
        None => Ok(Alternative {
            name,
            arch,
            constraint,
        }),
        Some(_) => Err(format!(
            "unexpected {} after the package reference",
            quote(cur.rest)
        )),
    }
}

/// Parses `op version)` after the `(`.
fn parse_constraint(cur: &mut Cursor<'_>) -> Result<Constraint, String> {
    cur.skip_ws();
    let op = if cur.eat_str("<<") {
        Op::Lt
    } else if cur.eat_str("<=") {
        Op::Le
    } else if cur.eat_str(">>") {
        Op::Gt
    } else if cur.eat_str(">=") {
        Op::Ge
    } else if cur.eat('=') {
        Op::Eq
    } else if cur.eat('<') {
        Op::Le // obsolete '<', which dpkg reads as '<='
    } else if cur.eat('>') {
        Op::Ge // obsolete '>', which dpkg reads as '>='
    } else if cur.peek().is_none() {
        return Err("the version constraint is not closed with ')'".into());
    } else {
        return Err("the relation operator is missing (one of << <= = >= >>)".into());
    };
    if matches!(cur.peek(), Some('<' | '>' | '=')) {
        return Err("the relation operator is not one of << <= = >= >>".into());
    }
    cur.skip_ws();
    let version = cur.take_until(|c| is_ws(c) || matches!(c, '(' | ')'));
    cur.skip_ws();
    if version.is_empty() {
        if cur.peek().is_none() {
            return Err("the version constraint is not closed with ')'".into());
        }
        return Err("the version is empty".into());
    }
    match cur.peek() {
        Some(')') => {}
        None => return Err("the version constraint is not closed with ')'".into()),
        Some(_) => {
            return Err(format!(
                "unexpected {} after the version in the constraint",
                quote(cur.rest)
            ))
        }
    }
    cur.eat(')');
    let version = DebVersion::parse(version)
        .map_err(|why| format!("the version {}: {why}", quote(version)))?;
    Ok(Constraint { op, version })
}

/// An architecture name or wildcard: a letter or digit, then letters, digits and `-`.
fn check_arch_name(a: &str) -> Result<(), String> {
    let mut chars = a.chars();
    match chars.next() {
        None => return Err("is empty".into()),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(format!("{} must start with a letter or a digit", quote(a)))
        }
        Some(_) => {}
    }
    if let Some(c) = chars.find(|&c| !(c.is_ascii_alphanumeric() || c == '-')) {
        return Err(format!("{} contains {c:?}", quote(a)));
    }
    Ok(())
}

/// Checks `arch !arch ...]` after the `[`; the contents are dropped.
fn parse_arch_list(cur: &mut Cursor<'_>) -> Result<(), String> {
    let body = cur.take_until(|c| c == ']');
    if !cur.eat(']') {
        return Err("the architecture list is not closed with ']'".into());
    }
    let mut negated = None;
    for term in body.split(is_ws).filter(|t| !t.is_empty()) {
        let (neg, a) = match term.strip_prefix('!') {
            Some(a) => (true, a),
            None => (false, term),
        };
        check_arch_name(a).map_err(|why| format!("in the architecture list, {why}"))?;
        if *negated.get_or_insert(neg) != neg {
            return Err("the architecture list mixes negated and plain names".into());
        }
    }
    if negated.is_none() {
        return Err("the architecture list is empty".into());
    }
    Ok(())
}

/// Checks `profile !profile ...>` after the `<`; the contents are dropped.
fn parse_profile_list(cur: &mut Cursor<'_>) -> Result<(), String> {
    let body = cur.take_until(|c| c == '>');
    if !cur.eat('>') {
        return Err("the build-profile list is not closed with '>'".into());
    }
    let mut any = false;
    for term in body.split(is_ws).filter(|t| !t.is_empty()) {
        let p = term.strip_prefix('!').unwrap_or(term);
        let mut chars = p.chars();
        match chars.next() {
            None => return Err("in the build-profile list, a profile name is empty".into()),
            Some(c) if !c.is_ascii_alphanumeric() => {
                return Err(format!(
                    "in the build-profile list, {} must start with a letter or a digit",
                    quote(p)
                ))
            }
            Some(_) => {}
        }
        if let Some(c) =
            chars.find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '+')))
        {
            return Err(format!(
                "in the build-profile list, {} contains {c:?}",
                quote(p)
            ));
        }
        any = true;
    }
    if !any {
        return Err("the build-profile list is empty".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> DebVersion {
        DebVersion::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn known_orderings() {
        use Ordering::*;
        let table: &[(&str, &str, Ordering)] = &[
            ("1.0", "1.0", Equal),
            ("1.0", "0:1.0", Equal),
            ("00:1.0", "1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("1.0", "1.00", Equal),
            ("1-1", "1-01", Equal),
            ("1.0-1", "1.0-1", Equal),
            ("1.00000000000000000000001", "1.1", Equal),
            ("1.00000000000000000000001", "1.2", Less),
            (
                "1.99999999999999999999999999",
                "1.100000000000000000000000000",
                Less,
            ),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567891",
                Less,
            ),
            ("1.0~rc1", "1.0", Less),
            ("1.0~", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~~", "1.0~~a", Less),
            ("1.0~~a", "1.0~", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~rc1-1", "1.0-1", Less),
            ("1.0-1~bpo1", "1.0-1", Less),
            ("1.0", "1.0+", Less),
            ("1.0", "1.0.", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0a", "1.0.", Less),
            ("1.0a", "1.0b", Less),
            ("1.0Z", "1.0a", Less),
            ("1.0+", "1.0.", Less),
            ("1.0+dfsg", "1.0.1", Less),
            ("1.0.1", "1.0+1", Greater),
            ("1.0", "1.0-1", Less),
            ("1.0-1", "1.0-2", Less),
            ("1.0-9", "1.0-10", Less),
            ("1.9", "1.10", Less),
            ("1:0.1", "9.9", Greater),
            ("1:1.0", "2:0.1", Less),
            ("2147483647:1", "2:9", Greater),
            ("1.0-1+deb12u1", "1.0-1", Greater),
            ("2:1.0~rc1-3+deb12u1", "2:1.0~rc1-3", Greater),
            ("1-2-3", "1-2", Greater),
            ("1-2-3", "1-3", Greater),
            ("1:2:3", "1:2:3", Equal),
            ("1:2:3", "1:2.3", Greater),
            ("a", "b", Less),
            ("a", "1", Greater),
        ];
        for &(a, b, want) in table {
            assert_eq!(v(a).cmp(&v(b)), want, "{a} vs {b}");
            assert_eq!(v(b).cmp(&v(a)), want.reverse(), "{b} vs {a}");
            assert_eq!(v(a) == v(b), want == Equal);
        }
    }

    #[test]
    fn raw_verrevcmp() {
        assert_eq!(verrevcmp(b"", b""), Ordering::Equal);
        assert_eq!(verrevcmp(b"~", b""), Ordering::Less);
        assert_eq!(verrevcmp(b"", b"0"), Ordering::Equal);
        assert_eq!(verrevcmp(b"", b"a"), Ordering::Less);
        assert_eq!(verrevcmp(b"", b"+"), Ordering::Less);
        assert_eq!(verrevcmp(b"0000", b"0"), Ordering::Equal);
        let long_a = format!("1.{}1", "0".repeat(100_000));
        let long_b = format!("1.{}2", "0".repeat(100_000));
        assert_eq!(
            verrevcmp(long_a.as_bytes(), long_b.as_bytes()),
            Ordering::Less
        );
    }

    #[test]
    fn parts() {
        let x = v("2:1.0-rc1-3+deb12u1");
        assert_eq!(x.epoch(), 2);
        assert_eq!(x.upstream(), "1.0-rc1");
        assert_eq!(x.revision(), "3+deb12u1");
        assert_eq!(x.to_string(), "2:1.0-rc1-3+deb12u1");
        let y = v("1.0");
        assert_eq!((y.epoch(), y.upstream(), y.revision()), (0, "1.0", ""));
        let z = v("0:1:2-3");
        assert_eq!((z.epoch(), z.upstream(), z.revision()), (0, "1:2", "3"));
        assert_eq!(v("007:1").to_string(), "007:1");
        assert_eq!(v("007:1").epoch(), 7);
        // The upstream part need not start with a digit here.
        assert_eq!(v("abc").upstream(), "abc");
        assert_eq!(v("~1").upstream(), "~1");
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "it is empty"),
            (" ", "it contains ' '"),
            ("1.0 ", "it contains ' '"),
            (" 1.0", "it contains ' '"),
            ("1.0\t", "it contains '\\t'"),
            ("1.0\n", "it contains '\\n'"),
            ("1\0", "it contains '\\0'"),
            ("1_2", "it contains '_'"),
            ("1/2", "it contains '/'"),
            ("1,2", "it contains ','"),
            ("1é", "it contains 'é'"),
            ("1.0)", "it contains ')'"),
            (":1", "the epoch is empty"),
            (":", "the epoch is empty"),
            ("x:1", "the epoch \"x\" is not a number"),
            ("1a:1", "the epoch \"1a\" is not a number"),
            ("-1:1", "the epoch \"-1\" is not a number"),
            ("+1:1", "the epoch \"+1\" is not a number"),
            ("1-2:3", "the epoch \"1-2\" is not a number"),
            ("2147483648:1", "the epoch \"2147483648\" is too big"),
            ("4294967296:1", "the epoch \"4294967296\" is too big"),
            ("99999999999999999999999:1", "is too big"),
            ("1:", "the upstream version is empty"),
            ("-1", "the upstream version is empty"),
            ("1:-1", "the upstream version is empty"),
            ("-", "the revision is empty"),
            ("1.0-", "the revision is empty"),
            ("1:1.0-", "the revision is empty"),
            ("1-2-", "the revision is empty"),
            ("1:2-3:4", "the revision contains ':'"),
        ];
        for &(input, want) in cases {
            match DebVersion::parse(input) {
                Ok(x) => panic!("{input:?} accepted as {x:?}"),
                Err(e) => assert!(e.contains(want), "{input:?}: got {e:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn relations_round_trip() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            (" \t\n ", ""),
            ("a", "a"),
            ("a (>= 1.0) | b, c:any", "a (>= 1.0) | b, c:any"),
            (
                "libc6 (>= 2.36), libssl3 (>= 3.0.0)",
                "libc6 (>= 2.36), libssl3 (>= 3.0.0)",
            ),
            ("a(>=1)", "a (>= 1)"),
            ("a ( >=  1 )", "a (>= 1)"),
            ("a\n (<< 2:1.0~rc1-1),\n b", "a (<< 2:1.0~rc1-1), b"),
            ("a (<1)|b (>1)", "a (<= 1) | b (>= 1)"),
            ("a (<= 1), b (= 2), c (>> 3)", "a (<= 1), b (= 2), c (>> 3)"),
            ("a:native (= 1)", "a:native (= 1)"),
            ("a:amd64", "a:amd64"),
            ("a [amd64 i386]", "a"),
            ("a [!amd64 !i386] | b", "a | b"),
            (
                "a (>= 1) [linux-any] <!nocheck> <stage1 !cross>",
                "a (>= 1)",
            ),
            ("a<!nocheck>", "a"),
            (
                "python3.11-minimal, g++ | clang",
                "python3.11-minimal, g++ | clang",
            ),
            ("Foo_Bar", "Foo_Bar"),
        ];
        for &(input, want) in cases {
            let r = parse_relations(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(r.to_string(), want, "{input:?}");
            let again = parse_relations(&r.to_string()).unwrap();
            assert_eq!(again, r, "{input:?}");
            assert_eq!(again.to_string(), want);
        }
        let r = parse_relations("a:any (>= 1:2.0-1) | b, c").unwrap();
        assert_eq!(r.clauses.len(), 2);
        let a = &r.clauses[0].alternatives[0];
        assert_eq!(a.name.as_str(), "a");
        assert_eq!(a.arch.as_deref(), Some("any"));
        let c = a.constraint.as_ref().unwrap();
        assert_eq!(c.op, Op::Ge);
        assert_eq!(c.version.to_string(), "1:2.0-1");
        assert_eq!(c.to_string(), ">= 1:2.0-1");
        assert_eq!(r.clauses[0].alternatives[1].constraint, None);
        assert_eq!(r.clauses[1].to_string(), "c");
        assert!(parse_relations("").unwrap().clauses.is_empty());
        for (op, s) in [
            (Op::Lt, "<<"),
            (Op::Le, "<="),
            (Op::Eq, "="),
            (Op::Ge, ">="),
            (Op::Gt, ">>"),
        ] {
            assert_eq!(op.to_string(), s);
        }
    }

    #[test]
    fn relation_errors() {
        let cases: &[(&str, &str)] = &[
            ("foo (>= )", "in \"foo (>= )\": the version is empty"),
            ("a, b,", "clause 3 is empty"),
            ("a,,b", "clause 2 is empty"),
            (",a", "clause 1 is empty"),
            (",", "clause 1 is empty"),
            ("a, ,b", "clause 2 is empty"),
            ("a | | b", "in \"a | | b\": alternative 2 is empty"),
            ("a |", "alternative 2 is empty"),
            ("| a", "alternative 1 is empty"),
            (
                "a, b | c (>= 1) |",
                "in \"b | c (>= 1) |\": alternative 3 is empty",
            ),
            ("a (1.0)", "the relation operator is missing"),
            ("a (>= 1.0", "not closed with ')'"),
            ("a (>=", "not closed with ')'"),
            ("a (", "not closed with ')'"),
            ("a ((>= 1))", "the relation operator is missing"),
            ("a (>= 1))", "unexpected \")\""),
            ("a >= 1)", "unexpected \">= 1)\""),
            ("a )", "unexpected \")\""),
            ("a (>= 1 2)", "unexpected \"2)\" after the version"),
            ("a (>= 1 (2))", "unexpected \"(2))\""),
            ("a (>= 1)x", "unexpected \"x\""),
            ("a (>= 1) (<< 2)", "unexpected \"(<< 2)\""),
            ("a b", "unexpected \"b\""),
            ("a (><1)", "operator is not one of"),
            ("a (=< 1)", "operator is not one of"),
            ("a (== 1)", "operator is not one of"),
            ("a (<<= 1)", "operator is not one of"),
            (
                "a (>= 1:)",
                "the version \"1:\": the upstream version is empty",
            ),
            ("a (>= 1_0)", "the version \"1_0\": it contains '_'"),
            ("a (>= a:1)", "is not a number"),
            ("(>= 1)", "the package name is missing"),
            (":any", "the package name is missing"),
            ("-a", "must start with a letter or a digit"),
            ("a/b", "contains '/'"),
            ("é", "must start with a letter or a digit"),
            ("aé", "contains 'é'"),
            ("a:", "the architecture qualifier is empty"),
            ("a :any", "unexpected \":any\""),
            ("a:!any", "must start with a letter or a digit"),
            ("a:an_y", "contains '_'"),
            ("a:any:any", "contains ':'"),
            ("a [amd64", "not closed with ']'"),
            ("a []", "the architecture list is empty"),
            ("a [ ]", "the architecture list is empty"),
            ("a [amd64 !i386]", "mixes negated and plain"),
            ("a [!]", "is empty"),
            ("a [am_d64]", "contains '_'"),
            ("a [amd64] [i386]", "unexpected \"[i386]\""),
            ("a [amd64] (>= 1)", "unexpected \"(>= 1)\""),
            ("a <!nocheck", "not closed with '>'"),
            ("a <>", "the build-profile list is empty"),
            ("a <!>", "a profile name is empty"),
            ("a <no_check>", "contains '_'"),
            ("a <nocheck> [amd64]", "unexpected \"[amd64]\""),
            ("a ]", "unexpected \"]\""),
            ("a >", "unexpected \">\""),
        ];
        for &(input, want) in cases {
            match parse_relations(input) {
                Ok(r) => panic!("{input:?} accepted as {r:?}"),
                Err(e) => assert!(e.contains(want), "{input:?}: got {e:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn satisfied_by_each_operator() {
        let c = |op, s| Constraint { op, version: v(s) };
        let (lo, mid, mid_eq, hi) = (v("1.0~rc1"), v("1.0"), v("0:1.0-0"), v("1.0+b1"));
        let table = [
            (Op::Lt, [true, false, false, false]),
            (Op::Le, [true, true, true, false]),
            (Op::Eq, [false, true, true, false]),
            (Op::Ge, [false, true, true, true]),
            (Op::Gt, [false, false, false, true]),
        ];
        for (op, want) in table {
            let k = c(op, "1.0");
            let got = [&lo, &mid, &mid_eq, &hi].map(|x| k.satisfied_by(x));
            assert_eq!(got, want, "{op}");
        }
        // Obsolete operators parse to the inclusive ones.
        let r = parse_relations("a (< 1.0), b (> 1.0)").unwrap();
        let lt = r.clauses[0].alternatives[0].constraint.as_ref().unwrap();
        let gt = r.clauses[1].alternatives[0].constraint.as_ref().unwrap();
        assert_eq!((lt.op, gt.op), (Op::Le, Op::Ge));
        assert!(lt.satisfied_by(&mid) && gt.satisfied_by(&mid));
    }

    /// Tiny deterministic PRNG for the hostile-input tests.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let long_digits = "9".repeat(1 << 20);
        let long_tilde = "~".repeat(1 << 20);
        assert!(DebVersion::parse(&long_digits).is_ok());
        assert!(DebVersion::parse(&format!("{long_digits}:1")).is_err());
        let a = v(&format!("1.{long_digits}"));
        let b = v(&format!("1.{long_digits}0"));
        assert!(a < b);
        let t = v(&long_tilde);
        assert!(t < v("~"));
        assert!(DebVersion::parse(&"-".repeat(100_000)).is_err());
        assert!(DebVersion::parse(&":".repeat(100_000)).is_err());

        let hostile = [
            "(".repeat(100_000),
            ")".repeat(100_000),
            "a ".to_string() + &"(".repeat(100_000),
            "a (>= 1".to_string() + &")".repeat(100_000),
            "[".repeat(100_000),
            "<".repeat(100_000),
            "a <".to_string() + &"<".repeat(100_000),
            ",".repeat(100_000),
            "|".repeat(100_000),
            "a | ".repeat(100_000),
            "a, ".repeat(100_000) + "a",
            "x".repeat(1 << 20),
            "a (>= ".to_string() + &long_digits + ")",
            "a:".to_string() + &"b".repeat(1 << 20),
        ];
        for h in &hostile {
            if let Err(e) = parse_relations(h) {
                assert!(e.len() < 1000, "error message too long: {} bytes", e.len());
            }
        }
        let r = parse_relations(&("a, ".repeat(100_000) + "a")).unwrap();
        assert_eq!(r.clauses.len(), 100_001);

        // Random strings over an alphabet rich in syntax characters.
        let alphabet: Vec<char> = "a1.0+~-:(<=>)[]!,| \t\n_é\0".chars().collect();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = rng.below(24);
            let s: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            if let Ok(x) = DebVersion::parse(&s) {
                assert_eq!(x.to_string(), s);
                assert_eq!(x.cmp(&x), Ordering::Equal);
            }
            if let Ok(r) = parse_relations(&s) {
                let again = parse_relations(&r.to_string())
                    .unwrap_or_else(|e| panic!("{s:?} -> {r} does not reparse: {e}"));
                assert_eq!(again, r);
            }
        }
    }

    #[test]
    fn order_is_consistent() {
        let pieces = [
            "0", "1", "01", "9", "10", ".", "+", "~", "a", "Z", "-1", "-0", "~~",
        ];
        let mut rng = XorShift(42);
        let mut vs = Vec::new();
        for _ in 0..300 {
            let mut s = String::from("1");
            for _ in 0..rng.below(5) {
                s.push_str(pieces[rng.below(pieces.len())]);
            }
            if rng.below(4) == 0 {
                s = format!("{}:{s}", rng.below(3));
            }
            if let Ok(x) = DebVersion::parse(&s) {
                vs.push(x);
            }
        }
        assert!(vs.len() > 100);
        for a in &vs {
            for b in &vs {
                assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{a} vs {b}");
            }
        }
        let mut sorted = vs.clone();
        sorted.sort();
        for w in sorted.windows(2) {
            assert!(w[0] <= w[1]);
        }
        for (i, a) in sorted.iter().enumerate() {
            for b in sorted.iter().skip(i) {
                assert!(a <= b, "{a} > {b} after sorting: not transitive");
            }
        }
    }
}
