//! What the HTTP benchmarks of the API share (`api_scale` here, `api_auth` in crates/tern, which
//! includes this file by path): the API served in-process on loopback, a pool of concurrent
//! clients timing each request, nearest-rank percentiles, and the flag parsing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tern_api::{router, ApiState};

/// Concurrent clients.
pub const CLIENTS: usize = 8;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub fn count(flag: &str, v: Option<String>) -> Result<usize, String> {
    let v = v.ok_or(format!("{flag} needs a number"))?;
    match v.parse::<usize>() {
        Ok(0) => Err(format!("{flag} must be at least 1")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{flag} {v:?}: {e}")),
    }
}

/// The API served on a free loopback port until dropped.
pub struct Served {
    pub base: String,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn serve(state: ApiState) -> Result<Served, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = router(state);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Served { base: format!("http://{addr}"), stop: Some(stop) })
}

/// A client sending `token` (if any) as `X-Auth-Token` with every request.
pub fn http_client(token: Option<&str>) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        headers.insert("x-auth-token", t.parse().map_err(|e| format!("token header: {e}"))?);
    }
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(CLIENTS * 2)
        .default_headers(headers)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut req = client.request(method.clone(), url);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, v))
}

pub async fn create(client: &reqwest::Client, url: &str, body: Value, key: &str) -> Result<Value, String> {
    match call(client, reqwest::Method::POST, url, Some(&body)).await? {
        (201, v) => Ok(v[key].clone()),
        (s, v) => Err(format!("POST {url}: {s}: {v}")),
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 and p99 of some latencies, in ms.
#[derive(Clone, Copy, Default)]
pub struct Spread {
    pub p50: f64,
    pub p99: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(mut v: Vec<Duration>) -> Spread {
        v.sort();
        Spread { p50: ms(percentile(&v, 50.0)), p99: ms(percentile(&v, 99.0)), n: v.len() }
    }

    pub fn cell(&self) -> String {
        format!("{:.3} / {:.3}", self.p50, self.p99)
    }

    pub fn json(&self) -> Value {
        json!({"p50_ms": self.p50, "p99_ms": self.p99, "requests": self.n})
    }
}

/// Runs `n` requests spread over the clients, each made by `one(client, i)`; their latencies.
/// Progress on stderr every 5 s.
pub async fn timed<F, Fut>(
    label: String,
    client: &reqwest::Client,
    n: usize,
    one: F,
) -> Result<Vec<Duration>, String>
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("{label}: {} / {n}", done.load(Ordering::Relaxed));
            }
        })
    };
    let one = Arc::new(one);
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, next, done, one) = (client.clone(), next.clone(), done.clone(), one.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, String>(out);
                }
                let t0 = Instant::now();
                one(client.clone(), i).await?;
                out.push(t0.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut all = Vec::new();
    let mut failed = None;
    for t in tasks {
        match t.await.map_err(|e| format!("client task: {e}")).and_then(|r| r) {
            Ok(v) => all.extend(v),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    progress.abort();
    failed.map_or(Ok(all), Err)
}

/// A small deterministic generator (xorshift), for the queries' random picks.
pub fn pick(i: usize, n: usize) -> usize {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x % n as u64) as usize
}
