//! The members of one etcd cluster, and which of them to ask: one single-endpoint client per
//! member, requests sent to a member believed healthy (the last one that answered first), a member
//! marked down when the transport or its raft state fails it, a background probe bringing it back.
//! [`Pool::run`] is the one place where a request moves on to another member.
//!
//! Why not etcd-client's own balancing over all endpoints: its balancer keeps a dead endpoint
//! "ready" and sends it a share of the calls, and nothing retries them.

use etcd_client::{
    Client, ConnectOptions, KvClient, LeaseClient, MaintenanceClient, TlsOptions, WatchClient,
};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// How long connecting (and the first round trip) may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may wait for one member before the pool tries the next. A healthy member
/// answers within milliseconds, one on a slow disk within a second; but a write that a follower
/// forwarded to a leader that has just died is never answered (etcd gives up after its 7 s
/// proposal timeout). Giving up sooner than tern's shortest lease TTL (3 s) keeps a heartbeat
/// stuck behind such a write from losing its lease.
pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may take in all, over every member and attempt, before it fails.
pub(super) const RETRY_BUDGET: Duration = Duration::from_secs(12);
/// How often members marked down are asked whether they are back.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Pauses between rounds over all members (while a new leader is elected, say).
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// HTTP/2 pings detect a dead etcd under a long-lived watch. etcd refuses pings more often than
/// every 5 s (`--grpc-keepalive-min-time`), so stay above that.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest gRPC message we accept (a big listing page or a watch response carrying a large
/// transaction). tonic's default of 4 MiB is too small for either.
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// The gRPC status codes (fixed by the gRPC specification) that mean "this member, not the
/// request": the call may succeed on another member.
const CANCELLED: i32 = 1;
const UNKNOWN: i32 = 2;
const DEADLINE_EXCEEDED: i32 = 4;
const ABORTED: i32 = 10;
const INTERNAL: i32 = 13;
const UNAVAILABLE: i32 = 14;

/// etcd's own errors that are about the member's raft state, not the request (stable since 3.0):
/// no leader, leader lost or changed mid-request, proposal timeouts, overload.
const ETCD_TRANSIENT: [&str; 8] = [
    "etcdserver: no leader",
    "etcdserver: not leader",
    "etcdserver: leader changed",
    "etcdserver: not capable",
    "etcdserver: server stopped",
    "etcdserver: request timed out",
    "etcdserver: unhealthy cluster",
    "etcdserver: too many requests",
];

/// One etcd member: its own client, connected to its endpoint only.
pub(super) struct Member {
    pub endpoint: String,
    pub kv: KvClient,
    pub watch: WatchClient,
    pub lease: LeaseClient,
    maintenance: MaintenanceClient,
    down: AtomicBool,
}

impl Member {
    async fn connect(endpoint: &str, tls: Option<&TlsOptions>) -> Result<Member, etcd_client::Error> {
        // Every request requires a leader: a member cut off from the others refuses instead of
        // answering from stale state or holding a watch that will never see another event.
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            .with_require_leader(true);
        // With TLS options a "HOST:PORT" endpoint is reached as https://HOST:PORT.
        if let Some(tls) = tls {
            options = options.with_tls(tls.clone());
        }
        // With one endpoint and no user this only builds the channel; it connects on first use.
        let client = Client::connect([endpoint], Some(options)).await?;
        Ok(Member {
            endpoint: endpoint.to_owned(),
            kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE_BYTES),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE_BYTES),
            lease: client.lease_client(),
            maintenance: client.maintenance_client(),
            down: AtomicBool::new(false),
        })
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Whether the member answers and follows a leader.
    async fn healthy(&self, timeout: Duration) -> Result<(), String> {
        let mut maintenance = self.maintenance.clone();
        match tokio::time::timeout(timeout, maintenance.status()).await {
            Ok(Ok(status)) if status.leader() != 0 => Ok(()),
            Ok(Ok(_)) => Err("no leader".to_owned()),
            Ok(Err(e)) => Err(describe(&e)),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }
}

/// A request's result, and whether an earlier attempt of it may have taken effect too (it failed
/// after it may have reached a member). Writes that are not idempotent look at `uncertain`.
pub(super) struct Done<T> {
    pub value: T,
    pub uncertain: bool,
}

/// Why a request failed.
pub(super) enum Failed {
    /// A member answered with an error about the request itself (not found, compacted, ...),
    /// which any member would repeat. `uncertain` as in [`Done`].
    Refused { error: etcd_client::Error, uncertain: bool },
    /// No member answered within [`RETRY_BUDGET`]; says which were tried and how each failed.
    Unreachable(String),
}

/// The pool. Cheap to share (`Arc`); dropping the last handle stops the probe task.
pub(super) struct Pool {
    members: Vec<Member>,
    /// The member tried first: the last one that answered.
    preferred: AtomicUsize,
}

impl Pool {
    /// Builds one client per endpoint (over TLS with `tls`) and checks that at least one member
    /// answers, within about [`CONNECT_TIMEOUT`]. Members that do not are marked down (the probe
    /// brings them back).
    pub async fn connect(endpoints: &[String], tls: Option<&TlsOptions>) -> Result<Arc<Pool>, String> {
        let mut members = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            members.push(
                Member::connect(endpoint, tls).await.map_err(|e| format!("{endpoint}: {}", describe(&e)))?,
            );
        }
        let pool = Arc::new(Pool { members, preferred: AtomicUsize::new(0) });
        let checks = pool.members.iter().map(|m| m.healthy(CONNECT_TIMEOUT));
        let results = futures::future::join_all(checks).await;
        let mut failures = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            if let Err(why) = result {
                pool.members[i].down.store(true, Ordering::Relaxed);
                failures.push(format!("{} ({why})", pool.members[i].endpoint));
            }
        }
        if failures.len() == pool.members.len() {
            return Err(failures.join(", "));
        }
        if let Some(first_up) = pool.members.iter().position(|m| !m.is_down()) {
            pool.preferred.store(first_up, Ordering::Relaxed);
        }
        for failure in &failures {
            tracing::warn!(member = %failure, "etcd member not answering; using the others");
        }
        tokio::spawn(probe_down_members(Arc::downgrade(&pool)));
        Ok(pool)
    }

    /// Runs `attempt` on one member after another until one answers: the preferred member first,
    /// then the others believed healthy, then those marked down; then again after a pause, until
    /// [`RETRY_BUDGET`] is spent. An answer (even an error about the request) ends it; a transport
    /// or raft-state failure marks the member down and moves on. Only call this with requests
    /// that may be sent again; the caller deals with [`Done::uncertain`].
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<Done<T>, Failed>
    where
        F: FnMut(&Member) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + RETRY_BUDGET;
        let mut uncertain = false;
        // The last failure of each member, for the final error.
        let mut failures: Vec<Option<String>> = vec![None; self.members.len()];
        let mut pause = FIRST_PAUSE;
        loop {
            for i in self.order() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let limit = left.min(ATTEMPT_TIMEOUT);
                let error = match tokio::time::timeout(limit, attempt(&self.members[i])).await {
                    Ok(Ok(value)) => {
                        self.answered(i);
                        return Ok(Done { value, uncertain });
                    }
                    Ok(Err(e)) if !is_member_failure(&e) => {
                        self.answered(i);
                        return Err(Failed::Refused { error: e, uncertain });
                    }
                    Ok(Err(e)) => describe(&e),
                    Err(_) => format!("no answer within {limit:?}"),
                };
                // Only a refused connection proves the request went nowhere.
                uncertain |= !is_connect_failure(&error);
                self.failed(i, &error);
                failures[i] = Some(error);
            }
            if Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
        let tried: Vec<String> = self
            .members
            .iter()
            .zip(failures)
            .map(|(m, why)| format!("{} ({})", m.endpoint, why.as_deref().unwrap_or("not tried")))
            .collect();
        Err(Failed::Unreachable(format!(
            "no etcd member answered within {RETRY_BUDGET:?}: {}",
            tried.join(", ")
        )))
    }

    /// Member indexes in the order to try them: the preferred one, the others believed healthy
    /// (in ring order after it), then the ones marked down.
    fn order(&self) -> Vec<usize> {
        let n = self.members.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let ring = (0..n).map(|k| (first + k) % n);
        let (mut up, down): (Vec<usize>, Vec<usize>) = ring.partition(|&i| !self.members[i].is_down());
        up.extend(down);
        up
    }

    fn answered(&self, i: usize) {
        self.preferred.store(i, Ordering::Relaxed);
        self.mark_up(i);
    }

    fn failed(&self, i: usize, why: &str) {
        let member = &self.members[i];
        if !member.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(member = %member.endpoint, error = %why, "etcd member marked down; using the others");
        }
    }

    fn mark_up(&self, i: usize) {
        let member = &self.members[i];
        if member.down.swap(false, Ordering::Relaxed) {
            tracing::info!(member = %member.endpoint, "etcd member answering again");
        }
    }
}

/// Every [`PROBE_INTERVAL`], asks each member marked down for its status; one that answers and
/// has a leader is marked up. Ends when the pool is dropped.
async fn probe_down_members(pool: Weak<Pool>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let down: Vec<usize> = (0..pool.members.len()).filter(|&i| pool.members[i].is_down()).collect();
        let checks = down.iter().map(|&i| pool.members[i].healthy(PROBE_INTERVAL));
        let results = futures::future::join_all(checks).await;
        for (&i, result) in down.iter().zip(results) {
            if result.is_ok() {
                pool.mark_up(i);
            }
        }
    }
}

/// Whether `e` is about the member rather than the request, so another member may do better.
fn is_member_failure(e: &etcd_client::Error) -> bool {
    use etcd_client::Error;
    match e {
        Error::GRpcStatus(status) => {
            let message = status.message();
            if message.starts_with("etcdserver:") {
                ETCD_TRANSIENT.iter().any(|m| message.starts_with(m))
            } else {
                [CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, ABORTED, INTERNAL, UNAVAILABLE]
                    .contains(&(status.code() as i32))
            }
        }
        Error::TransportError(_) | Error::IoError(_) => true,
        // A stream that ended before its first response (watch, lease keep-alive).
        Error::WatchError(_) => true,
        Error::LeaseKeepAliveError(why) => !why.contains("lease not found"),
        _ => false,
    }
}

/// Whether a failure (its text) proves the request never left: the connection was refused or
/// could not be made. tonic reports those as "tcp connect error" (hyper's connector) or
/// "error trying to connect".
fn is_connect_failure(error: &str) -> bool {
    ["tcp connect error", "error trying to connect", "Connection refused"].iter().any(|m| error.contains(m))
}

/// An etcd client error with the causes under it: a TLS failure (unknown CA, certificate
/// required, bad certificate) is only in the sources of the transport error or gRPC status,
/// which `Display` leaves out.
pub(super) fn describe(e: &etcd_client::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut cause = match e {
        etcd_client::Error::TransportError(t) => t.source(),
        etcd_client::Error::GRpcStatus(s) => s.source(),
        _ => None,
    };
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}
