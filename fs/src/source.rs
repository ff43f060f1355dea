//! Where bytes come from: the origin, its mirrors (and later peers), behind one interface.
//!
//! Every source is untrusted: what it sends is checked against signed digests by the
//! caller, so a bad source can cost time, never integrity. This module bounds that time
//! and tracks each source's health:
//!
//! - the order is: the origin (`REPO_URL`), then each mirror, as configured;
//!   a source that failed is backed off (15 s, doubling to 5 min) and moved to the end of
//!   the order until then, so it is tried again later, never abandoned;
//! - every download is bounded before it starts by the size the signed metadata gives
//!   (endless data): a longer `Content-Length` is refused at once, and a body that runs
//!   past the bound is cut off at the first extra byte;
//! - slow retrieval: no response within [`Timeouts::first_byte`], no data for
//!   [`Timeouts::stall`], or an average rate below [`Timeouts::min_rate`] after
//!   [`Timeouts::rate_grace`] abandons the source so the next one is tried.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{StatusCode, Url};
use thiserror::Error;
use tracing::{debug, info};

use crate::options::MountOptions;

/// The network settings, with their defaults.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// Establishing a TCP connection (5 s).
    pub connect: Duration,
    /// From sending a request to the response headers (10 s).
    pub first_byte: Duration,
    /// Longest gap between two pieces of a body (10 s).
    pub stall: Duration,
    /// The slowest average rate accepted once `rate_grace` has passed (4 KiB/s).
    pub min_rate: u64,
    /// How long a transfer may run before its rate is judged (5 s).
    pub rate_grace: Duration,
    /// First back-off after a failure (15 s), doubling to `max_backoff`.
    pub backoff: Duration,
    /// Longest back-off (5 min).
    pub max_backoff: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(10),
            stall: Duration::from_secs(10),
            min_rate: 4096,
            rate_grace: Duration::from_secs(5),
            backoff: Duration::from_secs(15),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// What kind of source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Another node's verified cache.
    Peer,
    /// The repository URL.
    Origin,
    /// A mirror of the repository.
    Mirror,
    /// The HTTP proxy every source is reached through.
    Proxy,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Peer => "peer",
            Kind::Origin => "origin",
            Kind::Mirror => "mirror",
            Kind::Proxy => "proxy",
        }
    }
}

#[derive(Default)]
struct Health {
    failures: u32,
    down_since: Option<u64>,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

/// A URL without its user name and password, for logs, status and /proc/mounts (which
/// every slice can read).
pub fn redact(u: &Url) -> String {
    if u.username().is_empty() && u.password().is_none() {
        return u.to_string();
    }
    let mut v = u.clone();
    let _ = v.set_username("");
    let _ = v.set_password(None);
    v.to_string()
}

/// One source of bytes.
pub struct Source {
    /// Its base URL (ends with `/`), credentials included.
    pub url: Url,
    /// The URL as shown to people: without credentials.
    pub label: String,
    /// What it is.
    pub kind: Kind,
    health: Mutex<Health>,
    requests: AtomicU64,
    failures: AtomicU64,
    bytes: AtomicU64,
}

/// Why a download from one source failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SourceError {
    /// No connection (refused, unreachable, DNS, TLS).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// No response headers in time.
    #[error("no response within {0:?}")]
    NoResponse(Duration),
    /// An HTTP status other than success.
    #[error("HTTP status {0}")]
    Status(u16),
    /// More bytes than the signed size allows (endless data).
    #[error(
        "sent more than the {0} bytes allowed (the signed size, or the fixed cap for the index)"
    )]
    TooLarge(u64),
    /// Too slow (slow retrieval).
    #[error("too slow: {rate} bytes/s, below the minimum of {min} bytes/s")]
    TooSlow {
        /// The average rate.
        rate: u64,
        /// The minimum.
        min: u64,
    },
    /// The body stopped arriving.
    #[error("no data for {0:?}")]
    Stalled(Duration),
    /// The transfer broke.
    #[error("transfer failed: {0}")]
    Transfer(String),
    /// Writing what arrived failed locally (not the source's fault).
    #[error("cannot store what arrived: {0}")]
    Local(String),
    /// The cache's filesystem is full.
    #[error("cannot store what arrived: the cache's filesystem is full")]
    NoSpace,
}

impl SourceError {
    /// Whether the failure says something about the source (and should back it off).
    pub fn blames_source(&self) -> bool {
        !matches!(self, SourceError::Local(_) | SourceError::NoSpace)
    }
}

/// The result of a successful request.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    /// A full body was delivered to the sink.
    Body {
        /// Its ETag, for conditional requests next time.
        etag: Option<String>,
    },
    /// The conditional request says nothing changed.
    NotModified,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Source {
    fn new(url: Url, kind: Kind) -> Source {
        Source {
            label: redact(&url),
            url,
            kind,
            health: Mutex::new(Health::default()),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a success: the source is healthy again.
    pub fn succeeded(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut h = self.health();
        if h.down_since.is_some() {
            info!(source = %self.label, "source is answering again");
        }
        *h = Health::default();
    }

    /// Records a failure and backs the source off.
    pub fn failed(&self, err: &SourceError, t: &Timeouts) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if !err.blames_source() {
            return;
        }
        let mut h = self.health();
        h.failures = h.failures.saturating_add(1);
        let factor = 1u32 << (h.failures - 1).min(8);
        let backoff = (t.backoff * factor).min(t.max_backoff);
        h.retry_at = Some(Instant::now() + backoff);
        if h.down_since.is_none() {
            h.down_since = Some(now_secs());
        }
        h.last_error = Some(err.to_string());
    }

    fn backed_off(&self) -> Option<Instant> {
        self.health().retry_at.filter(|t| *t > Instant::now())
    }

    /// The status line for `storkctl status`.
    pub fn status(&self) -> policy::wire::SourceStatus {
        let h = self.health();
        policy::wire::SourceStatus {
            url: self.label.clone(),
            kind: self.kind.name().into(),
            healthy: h.retry_at.is_none_or(|t| t <= Instant::now()),
            down_since: h.down_since,
            last_error: h.last_error.clone(),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// How a request may travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Through the proxy when there is one and it is healthy, else direct.
    Auto,
    /// Straight to the source (after bad bytes came through the proxy).
    Direct,
}

struct ProxyRoute {
    client: reqwest::Client,
    health: Source,
}

/// Every source, and the HTTP clients they share.
pub struct Sources {
    list: Vec<Arc<Source>>,
    client: reqwest::Client,
    proxy: Option<ProxyRoute>,
    /// The timeouts in force.
    pub timeouts: Timeouts,
}

impl Sources {
    /// Builds the sources from the mount options.
    pub fn new(opts: &MountOptions, timeouts: Timeouts) -> Result<Sources, String> {
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(timeouts.connect)
                .redirect(reqwest::redirect::Policy::limited(5))
                .user_agent(concat!("storkfs/", env!("CARGO_PKG_VERSION")))
                .pool_max_idle_per_host(16)
                .tcp_nodelay(true)
        };
        let client = builder()
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot set up HTTP: {e}"))?;
        // proxy=, else the usual environment variables (reqwest reads them, NO_PROXY too).
        let env_proxy = [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        let proxy = match (&opts.proxy, env_proxy) {
            (Some(p), _) => Some((
                builder()
                    .proxy(reqwest::Proxy::all(p.as_str()).map_err(|e| format!("proxy {p}: {e}"))?)
                    .build(),
                p.to_string(),
            )),
            (None, Some(e)) => Some((builder().build(), e)),
            (None, None) => None,
        };
        let proxy = match proxy {
            None => None,
            Some((c, label)) => Some(ProxyRoute {
                client: c.map_err(|e| format!("cannot set up HTTP: {e}"))?,
                health: Source::new(
                    Url::parse(&label).map_err(|e| format!("proxy {label:?}: {e}"))?,
                    Kind::Proxy,
                ),
            }),
        };
        // peers= is accepted but peer sharing is not built yet: a node's cache stores plain
        // objects, not the repository's layout, so peers are not sources (yet).
        let mut list: Vec<Arc<Source>> = Vec::new();
        list.push(Arc::new(Source::new(opts.repo.clone(), Kind::Origin)));
        for u in &opts.mirrors {
            list.push(Arc::new(Source::new(u.clone(), Kind::Mirror)));
        }
        Ok(Sources {
            list,
            client,
            proxy,
            timeouts,
        })
    }

    /// Sources in the order to try them now: healthy ones as configured, then backed-off
    /// ones, soonest first.
    pub fn order(&self) -> Vec<Arc<Source>> {
        let (mut ok, mut off): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
        for s in &self.list {
            match s.backed_off() {
                None => ok.push(s.clone()),
                Some(t) => off.push((t, s.clone())),
            }
        }
        off.sort_by_key(|(t, _)| *t);
        ok.extend(off.into_iter().map(|(_, s)| s));
        ok
    }

    /// Every source (for status).
    pub fn all(&self) -> &[Arc<Source>] {
        &self.list
    }

    /// The status of every source, and of the proxy when there is one.
    pub fn statuses(&self) -> Vec<policy::wire::SourceStatus> {
        let mut v: Vec<_> = self.list.iter().map(|s| s.status()).collect();
        if let Some(p) = &self.proxy {
            v.push(p.health.status());
        }
        v
    }

    /// Whether requests go through a healthy proxy now.
    pub fn proxied(&self) -> bool {
        self.proxy
            .as_ref()
            .is_some_and(|p| p.health.backed_off().is_none())
    }

    /// Downloads `path` from `src` into `sink`, at most `max` bytes, enforcing the
    /// timeouts above. With `etag`, asks only for a changed file.
    ///
    /// Through a proxy, a failure of the proxy itself (no connection, no answer, 502-504)
    /// backs the proxy off and the request goes straight to the source: the proxy is a
    /// faster path, never a requirement.
    pub async fn get(
        &self,
        src: &Source,
        path: &str,
        max: u64,
        etag: Option<&str>,
        route: Route,
        sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
    ) -> Result<Got, SourceError> {
        if let (Route::Auto, Some(p)) = (route, &self.proxy) {
            if p.health.backed_off().is_none() {
                let mut got = 0u64;
                let mut counting = |b: &[u8]| {
                    got += b.len() as u64;
                    sink(b)
                };
                match self
                    .get_via(&p.client, src, path, max, etag, &mut counting)
                    .await
                {
                    Err(e) if got == 0 && proxy_fault(&e) => {
                        p.health.requests.fetch_add(1, Ordering::Relaxed);
                        p.health.failed(&e, &self.timeouts);
                        tracing::warn!(proxy = %p.health.label, cause = %e, "the proxy failed; going straight to the sources until it recovers");
                    }
                    r => {
                        p.health.requests.fetch_add(1, Ordering::Relaxed);
                        if r.is_ok() {
                            p.health.succeeded(got);
                        }
                        return r;
                    }
                }
            }
        }
        self.get_via(&self.client, src, path, max, etag, sink).await
    }

    async fn get_via(
        &self,
        client: &reqwest::Client,
        src: &Source,
        path: &str,
        max: u64,
        etag: Option<&str>,
        sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
    ) -> Result<Got, SourceError> {
        let t = &self.timeouts;
        let url = src
            .url
            .join(path)
            .map_err(|e| SourceError::Connect(format!("bad URL for {path}: {e}")))?;
        src.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = client.get(url.clone());
        if let Some(e) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, e);
        }
        if path.ends_with(policy::index::INDEX_FILE) {
            // Caching proxies must revalidate the one mutable file.
            req = req.header(reqwest::header::CACHE_CONTROL, "no-cache");
        }
        let start = Instant::now();
        let resp = match tokio::time::timeout(t.first_byte, req.send()).await {
            Err(_) => return Err(SourceError::NoResponse(t.first_byte)),
            Ok(Err(e)) if e.is_connect() => return Err(SourceError::Connect(error_chain(&e))),
            Ok(Err(e)) => return Err(SourceError::Transfer(error_chain(&e))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Got::NotModified);
        }
        if status != StatusCode::OK {
            return Err(SourceError::Status(status.as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(SourceError::TooLarge(max));
        }
        let new_etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = resp.bytes_stream();
        let mut got: u64 = 0;
        // The rate is that of the body: the wait for the response is bounded apart
        // (first_byte), so a server slow to answer but quick to send is not "too slow".
        let body_start = Instant::now();
        loop {
            let next = match tokio::time::timeout(t.stall, body.next()).await {
                Err(_) => return Err(SourceError::Stalled(t.stall)),
                Ok(n) => n,
            };
            match next {
                None => break,
                Some(Err(e)) => return Err(SourceError::Transfer(error_chain(&e))),
                Some(Ok(chunk)) => {
                    got += chunk.len() as u64;
                    if got > max {
                        return Err(SourceError::TooLarge(max));
                    }
                    sink(&chunk).map_err(|e| {
                        if crate::store::is_no_space(&e) {
                            SourceError::NoSpace
                        } else {
                            SourceError::Local(e.to_string())
                        }
                    })?;
                }
            }
            let elapsed = body_start.elapsed();
            if elapsed > t.rate_grace {
                let rate = (got as f64 / elapsed.as_secs_f64()) as u64;
                if rate < t.min_rate {
                    return Err(SourceError::TooSlow {
                        rate,
                        min: t.min_rate,
                    });
                }
            }
        }
        debug!(url = %url, bytes = got, ms = start.elapsed().as_millis() as u64, "fetched");
        Ok(Got::Body { etag: new_etag })
    }
}

/// Failures that say the proxy, not the source, is at fault.
fn proxy_fault(e: &SourceError) -> bool {
    matches!(
        e,
        SourceError::Connect(_) | SourceError::NoResponse(_) | SourceError::Status(502..=504)
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_logs_or_status() {
        let u = Url::parse("https://alice:s3cret@repo.example.org/stork/").unwrap();
        let r = redact(&u);
        assert_eq!(r, "https://repo.example.org/stork/");
        let plain = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(redact(&plain), "http://127.0.0.1:8080/");
    }
}
