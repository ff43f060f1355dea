//! `DebVersion`'s order against the real `dpkg --compare-versions`.
//!
//! Thousands of version pairs come from a small deterministic PRNG drawing realistic pieces
//! (epochs, digit runs, `~`, `+`, `.`, letters, hyphenated upstreams, revisions); every pair
//! goes to dpkg through a few batched `sh` processes. dpkg is required: without it the test
//! fails, it never skips.

use std::cmp::Ordering;
use std::io::Write;
use std::process::{Command, Stdio};

use policy::debver::{Constraint, DebVersion, Op};

/// How many random pairs to check.
const RANDOM_PAIRS: usize = 3600;
/// How many `sh` processes run the dpkg calls in parallel.
const SHELLS: usize = 4;

/// Tiny deterministic xorshift64 PRNG.
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
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const EPOCHS: &[&str] = &["0", "1", "2", "10", "01", "00", "7"];
const DIGITS: &[&str] = &[
    "0",
    "1",
    "2",
    "9",
    "10",
    "01",
    "00",
    "123",
    "20240101",
    "99999999999999999999",
    "100000000000000000000",
    "000000000000000000001",
];
const UPSTREAM_PIECES: &[&str] = &[
    ".", ".", ".", "+", "~", "~~", "-", ":", "a", "b", "z", "A", "Z", "rc", "beta", "dfsg", "git",
    "+b1", "~rc1", ".0", "+dfsg", "~beta2", "really",
];
const REVISION_PIECES: &[&str] = &[
    "0", "1", "2", "10", "01", "ubuntu", "deb12u", "bpo", "+", "~", ".", "build", "a", "+b", "~exp",
];

/// A version as tokens, so that a second version can be made by a small mutation.
#[derive(Clone)]
struct Gen {
    epoch: Option<String>,
    upstream: Vec<String>,
    revision: Option<Vec<String>>,
}

impl Gen {
    fn random(r: &mut XorShift) -> Gen {
        let epoch = r.chance(25).then(|| r.pick(EPOCHS).to_string());
        let mut upstream = vec![r.pick(DIGITS).to_string()];
        for _ in 0..r.below(6) {
            upstream.push(Self::upstream_piece(r));
        }
        let revision = r.chance(55).then(|| {
            (0..1 + r.below(4))
                .map(|_| r.pick(REVISION_PIECES).to_string())
                .collect()
        });
        Gen {
            epoch,
            upstream,
            revision,
        }
    }

    fn upstream_piece(r: &mut XorShift) -> String {
        if r.chance(45) {
            r.pick(DIGITS).to_string()
        } else {
            r.pick(UPSTREAM_PIECES).to_string()
        }
    }

    /// A small random change: the interesting comparisons are between close versions.
    fn mutate(&self, r: &mut XorShift) -> Gen {
        let mut g = self.clone();
        for _ in 0..1 + r.below(2) {
            match r.below(9) {
                0 => g.epoch = r.chance(50).then(|| r.pick(EPOCHS).to_string()),
                1 => {
                    let i = r.below(g.upstream.len());
                    g.upstream[i] = if i == 0 {
                        r.pick(DIGITS).to_string()
                    } else {
                        Self::upstream_piece(r)
                    };
                }
                2 => {
                    let i = 1 + r.below(g.upstream.len());
                    g.upstream.insert(i, Self::upstream_piece(r));
                }
                3 if g.upstream.len() > 1 => {
                    let i = 1 + r.below(g.upstream.len() - 1);
                    g.upstream.remove(i);
                }
                4 => g
                    .upstream
                    .push(r.pick(&["~", "+", ".", "a", "0"]).to_string()),
                5 => g.revision = None,
                6 => {
                    let rev = g.revision.get_or_insert_with(Vec::new);
                    rev.push(r.pick(REVISION_PIECES).to_string());
                }
                7 => {
                    if let Some(rev) = g.revision.as_mut().filter(|v| !v.is_empty()) {
                        let i = r.below(rev.len());
                        rev[i] = r.pick(REVISION_PIECES).to_string();
                    }
                }
                _ => {
                    if let Some(d) = g
                        .upstream
                        .iter_mut()
                        .find(|t| t.starts_with(|c: char| c.is_ascii_digit()))
                    {
                        d.insert(0, '0');
                    }
                }
            }
        }
        g
    }

    /// The text, if it is a version both dpkg and we accept without complaint.
    fn render(&self) -> Option<String> {
        let mut s = String::new();
        if let Some(e) = &self.epoch {
            s.push_str(e);
            s.push(':');
        }
        let up: String = self.upstream.concat();
        if !up.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        if self.epoch.is_none() && up.contains(':') {
            return None;
        }
        s.push_str(&up);
        match &self.revision {
            Some(rev) if !rev.is_empty() => {
                s.push('-');
                s.push_str(&rev.concat());
            }
            _ if up.contains('-') => return None,
            _ => {}
        }
        DebVersion::parse(&s).ok().map(|_| s)
    }
}

fn random_pairs(n: usize) -> Vec<(String, String)> {
    let mut r = XorShift(0x5eed_d00d_cafe_f00d);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let a = Gen::random(&mut r);
        let b = if r.chance(20) {
            Gen::random(&mut r)
        } else {
            a.mutate(&mut r)
        };
        if let (Some(a), Some(b)) = (a.render(), b.render()) {
            out.push((a, b));
        }
    }
    out
}

/// Hand-picked pairs where an implementation typically goes wrong.
const TRICKY: &[(&str, &str)] = &[
    ("1.0", "1.0-0"),
    ("1.0", "0:1.0"),
    ("1.0~", "1.0"),
    ("1.0~~", "1.0~"),
    ("1.0~~", "1.0~~a"),
    ("1.0~~a", "1.0~"),
    ("1~", "1"),
    ("1~", "1~0"),
    ("1.0", "1.0+"),
    ("1.0", "1.0."),
    ("1.0a", "1.0+"),
    ("1.0a", "1.0."),
    ("1.0Z", "1.0a"),
    ("1.0+", "1.0."),
    ("1.0+dfsg", "1.0.1"),
    ("1.00000000000000000000001", "1.1"),
    ("1.00000000000000000000001", "1.2"),
    ("1.99999999999999999999999", "1.100000000000000000000000"),
    (
        "123456789012345678901234567890",
        "123456789012345678901234567891",
    ),
    ("18446744073709551616", "18446744073709551615"),
    ("1-1", "1-01"),
    ("1-2-3", "1-3"),
    ("1-2-3", "1-2"),
    ("1:2:3", "1:2.3"),
    ("1:2:3-4", "1:2:3"),
    ("2147483647:1", "2147483646:9"),
    ("1:0", "99999"),
    ("0:0", "0"),
    ("00", "0"),
    ("0.0", "0"),
    ("0.", "0"),
    ("0+", "0~"),
    ("1.0-1~bpo11+1", "1.0-1"),
    ("1.0-1+deb12u1", "1.0-1+b1"),
    ("2.36-9+deb12u4", "2.36-9+deb12u10"),
    ("3.0.11-1~deb12u2", "3.0.11-1"),
    ("1:2.39.2-1.1", "1:2.39.2-1"),
    ("9.2p1-2+deb12u2", "9.2p1-2"),
    ("1.2.3a", "1.2.3-a"),
    ("1a", "1-a"),
    ("1.0-0ubuntu1", "1.0-0"),
    ("1.0-a", "1.0-0"),
    ("1.0-~", "1.0"),
    ("1.0-~", "1.0-0"),
];

/// Runs `dpkg --compare-versions` on every pair, in batched `sh` processes, and returns
/// dpkg's verdict for each.
fn dpkg_compare(pairs: &[(String, String)]) -> Vec<Ordering> {
    // dpkg must be there: this test is the only guard that our order is dpkg's order.
    match Command::new("dpkg").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`dpkg --version` failed ({}): this test needs a working dpkg",
            o.status
        ),
        Err(e) => panic!(
            "cannot run dpkg ({e}): this test compares against `dpkg --compare-versions`, \
             so dpkg must be installed (apt-get install dpkg); it is not skipped"
        ),
    }
    for (a, b) in pairs {
        for v in [a, b] {
            assert!(
                v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c)),
                "{v:?} is not safe to put in a shell script"
            );
        }
    }
    const FUNC: &str = r#"
set -u
cmp() {
  for op in lt eq gt; do
    dpkg --compare-versions "$2" $op "$3"; r=$?
    if [ $r -eq 0 ]; then echo "$1 $op"; return; fi
    if [ $r -ne 1 ]; then echo "$1 error$r"; return; fi
  done
  echo "$1 none"
}
"#;
    let chunk = pairs.len().div_ceil(SHELLS).max(1);
    let handles: Vec<_> = pairs
        .chunks(chunk)
        .enumerate()
        .map(|(k, part)| {
            let mut script = String::from(FUNC);
            for (i, (a, b)) in part.iter().enumerate() {
                script.push_str(&format!("cmp {} '{a}' '{b}'\n", k * chunk + i));
            }
            std::thread::spawn(move || {
                let mut child = Command::new("sh")
                    .arg("-s")
                    .env("LC_ALL", "C")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("cannot run sh");
                let mut stdin = child.stdin.take().expect("sh stdin");
                let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
                let out = child.wait_with_output().expect("sh did not finish");
                writer
                    .join()
                    .expect("writer thread")
                    .expect("writing the script");
                assert!(out.status.success(), "sh failed: {}", out.status);
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    stderr.trim().is_empty(),
                    "dpkg complained about a generated version:\n{stderr}"
                );
                String::from_utf8(out.stdout).expect("dpkg output is not UTF-8")
            })
        })
        .collect();

    let mut verdicts: Vec<Option<Ordering>> = vec![None; pairs.len()];
    for h in handles {
        let out = h.join().expect("a dpkg batch panicked");
        for line in out.lines() {
            let (i, verdict) = line.split_once(' ').expect("malformed line from sh");
            let i: usize = i.parse().expect("malformed index from sh");
            let (a, b) = &pairs[i];
            let o = match verdict {
                "lt" => Ordering::Less,
                "eq" => Ordering::Equal,
                "gt" => Ordering::Greater,
                other => panic!("dpkg --compare-versions {a:?} {b:?}: {other}"),
            };
            verdicts[i] = Some(o);
        }
    }
    verdicts
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.unwrap_or_else(|| panic!("no dpkg verdict for pair {i}: {:?}", pairs[i])))
        .collect()
}

/// Compares every pair with dpkg and with `DebVersion`, and reports all disagreements.
fn check(pairs: &[(String, String)]) {
    let dpkg = dpkg_compare(pairs);
    let mut bad = Vec::new();
    for ((a, b), want) in pairs.iter().zip(dpkg) {
        let va = DebVersion::parse(a).unwrap_or_else(|e| panic!("{a:?}: {e}"));
        let vb = DebVersion::parse(b).unwrap_or_else(|e| panic!("{b:?}: {e}"));
        let got = va.cmp(&vb);
        if got != want || vb.cmp(&va) != want.reverse() || (va == vb) != (want == Ordering::Equal) {
            bad.push(format!(
                "{a} vs {b}: dpkg says {want:?}, DebVersion says {got:?}"
            ));
        }
        // The constraint operators agree with the order dpkg gave.
        for (op, holds) in [
            (Op::Lt, want == Ordering::Less),
            (Op::Le, want != Ordering::Greater),
            (Op::Eq, want == Ordering::Equal),
            (Op::Ge, want != Ordering::Less),
            (Op::Gt, want == Ordering::Greater),
        ] {
            let c = Constraint {
                op,
                version: vb.clone(),
            };
            if c.satisfied_by(&va) != holds {
                bad.push(format!("{a} {op} {b}: dpkg says {holds}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} disagreements with dpkg, e.g.:\n{}",
        bad.len(),
        bad.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn random_pairs_agree_with_dpkg() {
    let pairs = random_pairs(RANDOM_PAIRS);
    let equal = pairs
        .iter()
        .filter(|(a, b)| DebVersion::parse(a).ok() == DebVersion::parse(b).ok())
        .count();
    let tilde = pairs
        .iter()
        .filter(|(a, b)| a.contains('~') || b.contains('~'))
        .count();
    let epochs = pairs
        .iter()
        .filter(|(a, b)| a.contains(':') || b.contains(':'))
        .count();
    assert!(equal >= 50, "too few equal pairs generated ({equal})");
    assert!(tilde >= 500, "too few pairs with '~' ({tilde})");
    assert!(epochs >= 500, "too few pairs with an epoch ({epochs})");
    check(&pairs);
}

#[test]
fn tricky_pairs_agree_with_dpkg() {
    let pairs: Vec<(String, String)> = TRICKY
        .iter()
        .flat_map(|&(a, b)| {
            [
                (a.to_string(), b.to_string()),
                (b.to_string(), a.to_string()),
            ]
        })
        .collect();
    check(&pairs);
}

#[test]
fn versions_dpkg_refuses_are_refused() {
    for bad in ["1:", ":1", "1.0-", "a:1", "2147483648:1", "1 0"] {
        assert!(DebVersion::parse(bad).is_err(), "{bad:?} accepted");
        let st = Command::new("dpkg")
            .args(["--compare-versions", bad, "eq", "1"])
            .stderr(Stdio::null())
            .status()
            .expect("cannot run dpkg: this test needs dpkg installed");
        assert_eq!(st.code(), Some(2), "dpkg accepted {bad:?}");
    }
}
