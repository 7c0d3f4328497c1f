//! The members of one etcd cluster, and which of them to ask: one single-endpoint client per
//! member, requests sent to a member believed healthy (the last one that answered first), a member
//! marked down when the transport or its raft state fails it, a background probe bringing it back.
//! [`Pool::run`] is the one place where a request moves on to another member.
//!
//! With an etcd user (etcd's authentication enabled), each member hands out its own token (a
//! "simple" token lives in that member's memory: it expires after `--auth-token-ttl` unused, 300 s
//! by default, and is gone when the member restarts). [`Member::with_token`] obtains it lazily (a
//! member down at start-up is authenticated when it is back) and again when etcd refuses it, then
//! repeats the request once: a refused token means the request was not carried out. etcd-client's
//! own `ConnectOptions::with_user` authenticates inside `Client::connect` (failing for a member
//! that is down) and its `with_auto_token_refresh` covers unary calls only, not a watch whose
//! creation etcd cancels for the token; so the pool does it, with `Client::update_user`.
//!
//! Why not etcd-client's own balancing over all endpoints: its balancer keeps a dead endpoint
//! "ready" and sends it a share of the calls, and nothing retries them.

use etcd_client::{
    Client, ConnectOptions, KvClient, LeaseClient, MaintenanceClient, TlsOptions, WatchClient,
};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

// etcd's authentication errors (its rpctypes, the same in 3.4 to 3.6).
const AUTH_FAILED: &str = "etcdserver: authentication failed";
const USER_NOT_FOUND: &str = "etcdserver: user name not found";
const USER_EMPTY: &str = "etcdserver: user name is empty";
const PERMISSION_DENIED: &str = "etcdserver: permission denied";
const INVALID_TOKEN: &str = "etcdserver: invalid auth token";
const AUTH_OLD_REVISION: &str = "etcdserver: revision of auth store is old";
const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";

/// An etcd user's name and password.
#[derive(Clone)]
pub(super) struct Credentials {
    pub user: String,
    pub password: String,
}

/// A member's token for the pool's user.
struct MemberAuth {
    credentials: Credentials,
    /// One authentication at a time: requests refused together for an expired token wait for one
    /// new token.
    lock: tokio::sync::Mutex<()>,
    /// How many tokens were obtained from this member; 0: none yet.
    generation: AtomicU64,
}

/// One etcd member: its own client, connected to its endpoint only.
pub(super) struct Member {
    pub endpoint: String,
    pub kv: KvClient,
    pub watch: WatchClient,
    pub lease: LeaseClient,
    maintenance: MaintenanceClient,
    /// Shares the token the clients above send (`Client::update_user` replaces it).
    client: Client,
    auth: Option<MemberAuth>,
    down: AtomicBool,
}

impl Member {
    async fn connect(
        endpoint: &str,
        tls: Option<&TlsOptions>,
        credentials: Option<&Credentials>,
    ) -> Result<Member, etcd_client::Error> {
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
        // (The user is not given here: see the module's comment.)
        let client = Client::connect([endpoint], Some(options)).await?;
        Ok(Member {
            endpoint: endpoint.to_owned(),
            kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE_BYTES),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE_BYTES),
            lease: client.lease_client(),
            maintenance: client.maintenance_client(),
            client,
            auth: credentials.map(|credentials| MemberAuth {
                credentials: credentials.clone(),
                lock: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
            }),
            down: AtomicBool::new(false),
        })
    }

    /// Runs `attempt` on this member with a token for the pool's user, if it has one: obtained
    /// first if the member gave none yet, and again if etcd refuses it (expired, or the member
    /// restarted), then `attempt` once more (etcd carried out nothing with a refused token).
    pub async fn with_token<T, F, Fut>(&self, attempt: &mut F) -> Result<T, etcd_client::Error>
    where
        F: FnMut(&Member) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let Some(auth) = &self.auth else {
            return attempt(self).await;
        };
        if auth.generation.load(Ordering::Acquire) == 0 {
            self.authenticate(auth, 0).await?;
        }
        let seen = auth.generation.load(Ordering::Acquire);
        match attempt(self).await {
            Err(e) if is_stale_token(&e) => {
                let error = describe(&e);
                tracing::debug!(member = %self.endpoint, %error, "etcd refused the token; authenticating again");
                self.authenticate(auth, seen).await?;
                attempt(self).await
            }
            other => other,
        }
    }

    /// Obtains a new token unless one was obtained since generation `seen` (by a concurrent
    /// request that found the same token refused).
    async fn authenticate(&self, auth: &MemberAuth, seen: u64) -> Result<(), etcd_client::Error> {
        let _one_at_a_time = auth.lock.lock().await;
        if auth.generation.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        let Credentials { user, password } = auth.credentials.clone();
        let mut client = self.client.clone();
        match client.update_user(Some((user, password))).await {
            Ok(()) => {}
            // etcd's authentication is off, so requests need no token (etcd's Go client does the
            // same). Should it be turned on later, etcd refuses requests without one: see
            // `is_stale_token`.
            Err(e) if has_text(&e, AUTH_NOT_ENABLED) => {}
            Err(e) => return Err(e),
        }
        auth.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Whether the member answers (authenticating the pool's user) and follows a leader.
    async fn healthy(&self, timeout: Duration) -> Result<(), Unhealthy> {
        let mut status = |member: &Member| {
            let mut maintenance = member.maintenance.clone();
            async move { maintenance.status().await }
        };
        let status = self.with_token(&mut status);
        match tokio::time::timeout(timeout, status).await {
            Ok(Ok(status)) if status.leader() != 0 => Ok(()),
            Ok(Ok(_)) => Err(Unhealthy::Down("no leader".to_owned())),
            Ok(Err(e)) if is_auth_error(&e) => Err(Unhealthy::Refused(e)),
            Ok(Err(e)) => Err(Unhealthy::Down(describe(&e))),
            Err(_) => Err(Unhealthy::Down(format!("no answer within {timeout:?}"))),
        }
    }
}

/// Why a member failed its health check.
enum Unhealthy {
    /// It refused the pool's user (wrong password, say): all members would.
    Refused(etcd_client::Error),
    /// It did not answer, or has no leader.
    Down(String),
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
    /// The etcd user requests are made as, if any (for error messages).
    user: Option<String>,
}

impl Pool {
    /// Builds one client per endpoint (over TLS with `tls`, as `credentials`' user) and checks
    /// that at least one member answers, within about [`CONNECT_TIMEOUT`]. Members that do not are
    /// marked down (the probe brings them back). A member refusing the user, or (without one)
    /// saying it requires one, fails the connection: that is etcd's answer for every member.
    pub async fn connect(
        endpoints: &[String],
        tls: Option<&TlsOptions>,
        credentials: Option<&Credentials>,
    ) -> Result<Arc<Pool>, String> {
        let mut members = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            members.push(
                Member::connect(endpoint, tls, credentials)
                    .await
                    .map_err(|e| format!("{endpoint}: {}", describe(&e)))?,
            );
        }
        let user = credentials.map(|c| c.user.clone());
        let pool = Arc::new(Pool { members, preferred: AtomicUsize::new(0), user });
        let checks = pool.members.iter().map(|m| m.healthy(CONNECT_TIMEOUT));
        let results = futures::future::join_all(checks).await;
        let mut failures = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(()) => {}
                Err(Unhealthy::Refused(e)) => return Err(pool.explain(&e)),
                Err(Unhealthy::Down(why)) => {
                    pool.members[i].down.store(true, Ordering::Relaxed);
                    failures.push(format!("{} ({why})", pool.members[i].endpoint));
                }
            }
        }
        if failures.len() == pool.members.len() {
            return Err(failures.join(", "));
        }
        // etcd answers a status without a user; a read tells whether it requires one (or denies
        // this one tern's keys), now rather than at the first request.
        let read = pool.run(|member| {
            let mut kv = member.kv.clone();
            async move { kv.get(super::PROBE_KEY, Some(super::count_only())).await }
        });
        if let Ok(Err(Failed::Refused { error, .. })) = tokio::time::timeout(CONNECT_TIMEOUT, read).await {
            if is_auth_error(&error) {
                return Err(pool.explain(&error));
            }
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
                let error = match tokio::time::timeout(limit, self.members[i].with_token(&mut attempt)).await
                {
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

    /// An etcd error as a message; etcd refusing the pool's user (or requiring one) says so in
    /// words, naming the user.
    pub fn explain(&self, e: &etcd_client::Error) -> String {
        let detail = describe(e);
        match self.user.as_deref() {
            Some(user) if has_text(e, AUTH_FAILED) || has_text(e, USER_NOT_FOUND) => {
                format!("etcd refused user {user:?}: wrong password or no such user ({detail})")
            }
            Some(user) if has_text(e, PERMISSION_DENIED) => format!(
                "etcd denied user {user:?} access to tern's keys: its roles must grant it readwrite on \
                 them ({detail})"
            ),
            Some(user) if is_auth_error(e) => format!("etcd refused user {user:?}: {detail}"),
            None if is_auth_error(e) => format!(
                "etcd requires a user (its authentication is enabled) and none was given: name one in \
                 the store address, as in etcd://USER:PASSWORD@HOST:PORT or \
                 etcd://HOST:PORT?user=NAME&password-file=PATH ({detail})"
            ),
            _ => detail,
        }
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
    if is_auth_error(e) {
        // The auth store is the cluster's: every member says the same.
        return false;
    }
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

/// The text etcd's verdict is in: a gRPC status's message, or the cancel reason of a watch (see
/// `open_watch`) or the error of a keep-alive.
fn error_text(e: &etcd_client::Error) -> Option<&str> {
    match e {
        etcd_client::Error::GRpcStatus(status) => Some(status.message()),
        etcd_client::Error::WatchError(text) | etcd_client::Error::LeaseKeepAliveError(text) => Some(text),
        _ => None,
    }
}

fn has_text(e: &etcd_client::Error, needle: &str) -> bool {
    error_text(e).is_some_and(|text| text.contains(needle))
}

/// Whether etcd refused the request for its user or token (or the lack of one).
pub(super) fn is_auth_error(e: &etcd_client::Error) -> bool {
    [AUTH_FAILED, USER_NOT_FOUND, USER_EMPTY, PERMISSION_DENIED, INVALID_TOKEN, AUTH_OLD_REVISION]
        .iter()
        .any(|m| has_text(e, m))
}

/// Whether etcd refused a request for its token, which a new token may cure: expired or unknown
/// (the member restarted), issued before a change to users or roles, or missing (authentication
/// was off when the pool authenticated). A watch's creation is canceled with the same words
/// (older etcd releases said "permission denied" for an expired token there: tried once too).
fn is_stale_token(e: &etcd_client::Error) -> bool {
    [INVALID_TOKEN, AUTH_OLD_REVISION, USER_EMPTY].iter().any(|m| has_text(e, m))
        || matches!(e, etcd_client::Error::WatchError(_)) && has_text(e, PERMISSION_DENIED)
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
