//! `storkctl status`: repository, index, sources, cache.

use anyhow::Result;
use policy::wire::{Answer, Command, Status};

use super::{print_json, safe, table, unexpected, Global};

/// Arguments of `status`.
#[derive(clap::Args, Debug)]
pub struct Args {}

fn ago(now: u64, t: Option<u64>) -> String {
    match t {
        None => "never".into(),
        Some(t) => human_secs(now.saturating_sub(t)) + " ago",
    }
}

fn human_secs(s: u64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// Renders a status for people.
pub fn render(s: &Status) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut o = String::new();
    o.push_str(&format!("repository  {}\n", safe(&s.repository)));
    o.push_str(&format!(
        "mounted on  {} (pid {})\n",
        safe(&s.mountpoint),
        s.pid
    ));
    let i = &s.index;
    match i.version {
        Some(v) => o.push_str(&format!(
            "index       version {v}, published {}, expires in {}{}, key {}\n",
            ago(now, i.published),
            human_secs(i.expires.unwrap_or(0).saturating_sub(now)),
            if i.stale { ", STALE" } else { "" },
            i.key
        )),
        None => o.push_str(&format!("index       none yet, key {}\n", i.key)),
    }
    o.push_str(&format!("checked     {}", ago(now, i.last_check)));
    if let Some(e) = &i.last_error {
        o.push_str(&format!(" (problem: {})", safe(e)));
    }
    o.push('\n');
    let c = &s.cache;
    o.push_str(&format!(
        "cache       {} of {} in {}, {} objects, hit ratio {:.0}% ({} hits, {} misses), {} evicted, {} kept by pins\n",
        human_bytes(c.bytes_used),
        human_bytes(c.quota),
        safe(&c.dir),
        c.objects,
        c.hit_ratio * 100.0,
        c.hits,
        c.misses,
        c.evicted,
        c.pinned_objects
    ));
    let f = &s.fetches;
    o.push_str(&format!(
        "fetched     {} objects, {}, {} failed attempts, {} refused\n",
        f.objects,
        human_bytes(f.bytes),
        f.failures,
        f.refused
    ));
    o.push_str(&format!(
        "packages    {} versions accepted, {} refused\n\n",
        s.packages.accepted,
        s.packages.refused.len()
    ));
    let mut rows = vec![vec![
        "SOURCE".into(),
        "KIND".into(),
        "STATE".into(),
        "REQUESTS".into(),
        "FAILED".into(),
        "BYTES".into(),
    ]];
    for src in &s.sources {
        let state = if src.healthy {
            "ok".to_string()
        } else {
            format!(
                "down since {}: {}",
                ago(now, src.down_since),
                safe(src.last_error.as_deref().unwrap_or("?"))
            )
        };
        rows.push(vec![
            safe(&src.url),
            src.kind.clone(),
            state,
            src.requests.to_string(),
            src.failures.to_string(),
            human_bytes(src.bytes),
        ]);
    }
    o.push_str(&table(&rows));
    if !s.packages.refused.is_empty() {
        o.push('\n');
        let mut rows = vec![vec![
            "REFUSED".into(),
            "VERSION".into(),
            "ATTACK".into(),
            "REASON".into(),
        ]];
        for r in &s.packages.refused {
            rows.push(vec![
                safe(&r.name),
                safe(&r.version),
                r.attack.clone(),
                safe(&r.reason),
            ]);
        }
        o.push_str(&table(&rows));
    }
    o
}

impl Args {
    /// Runs the command.
    pub fn run(&self, g: &Global) -> Result<()> {
        let a = g.call(Command::Status, &mut |_| {})?;
        let Answer::Status(s) = a else {
            return Err(unexpected(&a));
        };
        if g.json {
            return print_json(&s);
        }
        print!("{}", render(&s));
        Ok(())
    }
}
