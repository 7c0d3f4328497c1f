//! tern tells Nova about its ports, as Neutron does (`neutron/notifiers/nova.py`):
//! `network-vif-plugged` / `-unplugged` when a server's port goes ACTIVE (or ERROR) / DOWN, or
//! when a live migration's destination VIF is plugged (so Nova starts the migration at once),
//! `network-changed` when its fixed or floating IPs change, `network-vif-deleted` when it goes;
//! batched into `POST /os-server-external-events` and retried until Nova answers.
//!
//! Nothing is lost to a Nova that is down nor to a restart, even a crash: each port's record in
//! the NB (`/tern/nova/notified/<port>`) holds what Nova knows of it and the events Nova has not
//! answered yet (written after each attempt: events that wait for Nova wait in the NB), and
//! `/tern/nova/cursor` the NB revision up to which every change is in the records. A notifier
//! loads the records (queueing their events again), watches the NB from the cursor on (the
//! store's history replays what happened since, a status flap included) and compares each port
//! with what Nova knows ([`core::changes`]); history compacted away means a listing and a
//! comparison instead (a flap inside the gap is then told as its end state). Delivery is at
//! least once: a crash between Nova's answer and the record write tells those events again.
//! One notifier runs at a time ([`LEADER_KEY`]).
//!
//! The shape: a pure core ([`core`]: the events of one port), the notifier's memory ([`state`]:
//! NB events in, queued events and record writes out), and this thin IO shell ([`run`]).

mod client;
pub mod core;
mod state;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use tern_store::nb::{Nb, NbEvent, NbWatch};
use tern_store::{LeaseId, Revision, StoreError, Txn};
use tokio::time::Instant;

pub use self::core::{Event, EventName, EventStatus, Facts, FloatingFact, Observed};
pub use self::state::NotifiedRecord;
use self::state::{RecordWrite, State};

/// Everything the notifier stores is under this prefix (outside the objects and the index, so
/// NB watches and `tern db check` leave it alone).
pub const NOVA_PREFIX: &str = "/tern/nova/";
/// `<prefix><port id>`: the port's [`NotifiedRecord`] as JSON.
pub const NOTIFIED_PREFIX: &str = "/tern/nova/notified/";
/// The NB revision up to which every change is in the records (told, or waiting there), as
/// decimal text.
pub const CURSOR_KEY: &str = "/tern/nova/cursor";
/// Held (with a lease) by the one notifier that runs: several `tern server`s configured alike
/// tell Nova each event once, not once each.
pub const LEADER_KEY: &str = "/tern/nova/leader";

/// The notified record key of a port.
pub fn notified_key(port_id: &str) -> String {
    format!("{NOTIFIED_PREFIX}{port_id}")
}

/// Records and the cursor are written in transactions of at most this many records (each is
/// compared and written: well under the store's [`tern_store::MAX_TXN_OPS`]).
const RECORDS_PER_TXN: usize = 60;
/// The cursor is moved this often at most when only other objects changed.
const CURSOR_IDLE: Duration = Duration::from_secs(10);
/// At most this many watch events are taken in before a due flush gets its turn.
const MAX_DRAIN: usize = 4096;

/// Where Nova is and the token to show it.
#[async_trait]
pub trait NovaTarget: Send + Sync {
    /// The compute endpoint (e.g. `http://nova:8774/v2.1`) and a token (`None`: send none).
    async fn endpoint(&self) -> anyhow::Result<(String, Option<String>)>;
    /// Nova answered 401 to `token`: get another next time.
    async fn refused(&self, token: &str);
}

/// A fixed endpoint and token (`[nova] endpoint_override` with `auth_type = none`, tests).
#[derive(Clone, Debug)]
pub struct StaticTarget {
    pub url: String,
    pub token: Option<String>,
}

#[async_trait]
impl NovaTarget for StaticTarget {
    async fn endpoint(&self) -> anyhow::Result<(String, Option<String>)> {
        Ok((self.url.clone(), self.token.clone()))
    }

    async fn refused(&self, _token: &str) {
        tracing::warn!(url = %self.url, "Nova refused the configured token (401)");
    }
}

/// How the notifier paces itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NovaOptions {
    /// Neutron's `send_events_interval`: after a request, the next waits this long, gathering
    /// the events meanwhile. An event after a quiet spell goes at once (as in Neutron's
    /// `BatchNotifier`). 0.5 s rather than Neutron's 2 s: a live migration waits for its
    /// `network-vif-plugged`, and two requests a second are nothing to Nova.
    pub batch_interval: Duration,
    /// At most this many events per request (Nova takes any number; its request body limit,
    /// oslo's 112 KiB by default, holds about 700).
    pub max_batch: usize,
    /// The first wait after Nova failed (5xx, no connection); doubled at each failure.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// The lease of [`LEADER_KEY`]: a notifier that dies without letting go (a crash) holds it
    /// this long, then another `tern server`'s notifier (or the restarted one) takes over.
    pub leader_ttl: Duration,
}

impl Default for NovaOptions {
    fn default() -> Self {
        NovaOptions {
            batch_interval: Duration::from_millis(500),
            max_batch: 200,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            leader_ttl: Duration::from_secs(10),
        }
    }
}

/// Tells Nova about the NB's compute ports until `shutdown` completes. Failures of the store or
/// of Nova are logged and retried (after a store failure from the stored records again); an
/// error is returned only when the notifier cannot start (no HTTP client).
pub async fn run(
    nb: Nb,
    target: Arc<dyn NovaTarget>,
    options: NovaOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(options.request_timeout)
        .build()
        .context("cannot build the HTTP client for Nova")?;
    let notifier = Notifier { nb, target, options, http, lease: Mutex::default() };
    tokio::pin!(shutdown);
    let mut wait = notifier.options.retry_initial;
    loop {
        let started = Instant::now();
        tokio::select! {
            _ = &mut shutdown => {
                notifier.let_go().await;
                return Ok(());
            }
            res = notifier.session() => {
                let e = res.err().unwrap_or_else(|| anyhow::anyhow!("the session ended"));
                if started.elapsed() > notifier.options.retry_max {
                    wait = notifier.options.retry_initial;
                }
                tracing::warn!(error = format!("{e:#}"), retry_in = ?wait, "Nova notifier: starting over from the stored records");
            }
        }
        tokio::select! {
            _ = &mut shutdown => {
                notifier.let_go().await;
                return Ok(());
            }
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(notifier.options.retry_max);
    }
}

struct Notifier {
    nb: Nb,
    target: Arc<dyn NovaTarget>,
    options: NovaOptions,
    http: reqwest::Client,
    /// The lease this notifier holds [`LEADER_KEY`] with.
    lease: Mutex<Option<LeaseId>>,
}

/// The stored cursor: its value and mod revision (0: absent).
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    value: Revision,
    mod_revision: Revision,
}

/// When the next flush may run.
struct Pace {
    /// No request before this (the batch interval after a request, a backoff after a failure).
    next_send: Instant,
    backoff: Option<Duration>,
    last_cursor_write: Instant,
}

impl Pace {
    fn due(&self, state: &State, cursor: Cursor) -> Option<Instant> {
        if !state.pending().is_empty() || state.needs_write() {
            Some(self.next_send)
        } else if state.processed() > cursor.value {
            Some(self.next_send.max(self.last_cursor_write + CURSOR_IDLE))
        } else {
            None
        }
    }

    fn failed(&mut self, options: &NovaOptions, why: &str) {
        let wait = self.backoff.map_or(options.retry_initial, |b| (b * 2).min(options.retry_max));
        tracing::warn!(error = why, retry_in = ?wait, "cannot tell Nova yet");
        self.backoff = Some(wait);
        self.next_send = Instant::now() + wait;
    }
}

/// Why a flush stopped.
enum FlushError {
    /// Another writer changed the records or the cursor: start over from the store.
    Lost(String),
}

impl Notifier {
    /// Loads the records, catches up and follows the NB until something forces a new start.
    async fn session(&self) -> anyhow::Result<()> {
        let lease = self.lead().await?;
        let mut keeper = KeepAlive::start(self.nb.store().clone(), lease, self.ttl() / 3);
        let (mut state, mut cursor, mut watch) = self.load().await?;
        if cursor.mod_revision == 0 {
            // The first start on this NB: the baseline (and the events of the listing) go to the
            // NB before anything is sent, so a crash from here on replays from a cursor.
            self.persist(&mut state, &mut cursor).await.context("writing the first notified records")?;
        }
        let mut pace = Pace { next_send: Instant::now(), backoff: None, last_cursor_write: Instant::now() };
        loop {
            let due = pace.due(&state, cursor);
            tokio::select! {
                biased;
                _ = sleep_until(due), if due.is_some() => {
                    if let Err(FlushError::Lost(why)) = self.flush(&mut state, &mut cursor, &mut pace).await {
                        anyhow::bail!("{why}");
                    }
                }
                lost = &mut keeper.lost => {
                    let why = lost.map_or_else(|_| "its keeper stopped".to_string(), |e| e.to_string());
                    anyhow::bail!("the notifier's lease is gone: {why}");
                }
                event = watch.next() => {
                    let mut event = event;
                    for _ in 0..MAX_DRAIN {
                        match event {
                            Some(Ok(NbEvent::Relist { compact_revision })) => {
                                tracing::warn!(compact_revision, "NB history compacted past the notifier's position; listing");
                                watch = self.relist(&mut state).await?;
                                break;
                            }
                            Some(Ok(e)) => state.apply(&e),
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "NB watch failed; watching again");
                                watch = self.rewatch(&mut state).await?;
                                break;
                            }
                            None => {
                                tracing::warn!("NB watch ended; watching again");
                                watch = self.rewatch(&mut state).await?;
                                break;
                            }
                        }
                        // Whatever the watch already holds (a transaction's other objects) goes
                        // in the same batch.
                        match tokio::time::timeout(Duration::ZERO, watch.next()).await {
                            Ok(next) => event = next,
                            Err(_) => break,
                        }
                    }
                }
            }
        }
    }

    fn ttl(&self) -> Duration {
        self.options.leader_ttl.max(Duration::from_secs(1))
    }

    /// Waits until this notifier holds [`LEADER_KEY`] (its earlier lease, if any, let go).
    async fn lead(&self) -> anyhow::Result<LeaseId> {
        self.let_go().await;
        let store = self.nb.store();
        let ttl = self.ttl();
        let me = format!("pid {}", std::process::id());
        let mut told = false;
        loop {
            let lease =
                store.grant_lease(ttl.as_secs() as i64).await.context("granting the notifier's lease")?;
            match store.create(LEADER_KEY, me.clone().into_bytes(), Some(lease)).await {
                Ok(_) => {
                    *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease);
                    if told {
                        tracing::info!("Nova notifier: taking over");
                    }
                    return Ok(lease);
                }
                Err(StoreError::AlreadyExists { .. }) => {
                    let _ = store.revoke_lease(lease).await;
                    if !told {
                        let holder = store.get(LEADER_KEY).await.ok().flatten();
                        let holder = holder.map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                        tracing::info!(holder, "another Nova notifier runs; waiting for its lease to go");
                        told = true;
                    }
                    tokio::time::sleep(ttl / 4).await;
                }
                Err(e) => {
                    let _ = store.revoke_lease(lease).await;
                    return Err(e).context("taking the notifier's lock");
                }
            }
        }
    }

    /// Gives up [`LEADER_KEY`] (another notifier may take over at once).
    async fn let_go(&self) {
        let lease = self.lease.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(lease) = lease {
            let revoke = self.nb.store().revoke_lease(lease);
            match tokio::time::timeout(Duration::from_secs(2), revoke).await {
                Ok(Ok(())) | Ok(Err(StoreError::LeaseNotFound(_))) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot let go of the notifier's lease"),
                Err(_) => tracing::warn!("letting go of the notifier's lease timed out"),
            }
        }
    }

    /// The stored records and cursor, the NB's floating IPs and migrations compared with them,
    /// and a watch from the cursor on (no cursor: the ports listed and compared too, a watch
    /// from the listing on).
    async fn load(&self) -> anyhow::Result<(State, Cursor, NbWatch)> {
        let store = self.nb.store();
        let listing = store.list(NOTIFIED_PREFIX).await.context("listing the notified records")?;
        let mut records = Vec::new();
        let mut unreadable = Vec::new();
        for kv in listing.items {
            let Some(port_id) = kv.key.strip_prefix(NOTIFIED_PREFIX) else { continue };
            match serde_json::from_slice::<NotifiedRecord>(&kv.value) {
                Ok(r) => records.push((port_id.to_owned(), r, kv.mod_revision)),
                Err(e) => {
                    tracing::warn!(key = %kv.key, error = %e, "unreadable notified record; it is written again");
                    unreadable.push((port_id.to_owned(), kv.mod_revision));
                }
            }
        }
        let cursor = match store.get(CURSOR_KEY).await.context("reading the notifier's cursor")? {
            Some(kv) => {
                let value = std::str::from_utf8(&kv.value).ok().and_then(|t| t.trim().parse().ok());
                if value.is_none() {
                    tracing::warn!(key = CURSOR_KEY, "unreadable cursor; listing the ports");
                }
                (value, kv.mod_revision)
            }
            None => (None, 0),
        };
        let (objects, listed) = self.nb.dump().await.context("listing the NB")?;
        let n = records.len();
        let mut state = State::from_records(records, cursor.0.unwrap_or(0));
        for (port_id, mod_revision) in unreadable {
            state.drop_record(&port_id, mod_revision);
        }
        match cursor.0.filter(|c| *c <= listed) {
            Some(c) => {
                state.apply_listing(&objects, listed, false);
                let watch = self.nb.watch(c + 1).await.context("watching the NB")?;
                tracing::info!(
                    records = n,
                    cursor = c,
                    revision = listed,
                    "Nova notifier: catching up from the cursor"
                );
                Ok((state, Cursor { value: c, mod_revision: cursor.1 }, watch))
            }
            None => {
                state.apply_listing(&objects, listed, true);
                let watch = self.nb.watch(listed + 1).await.context("watching the NB")?;
                tracing::info!(
                    records = n,
                    revision = listed,
                    "Nova notifier: compared every port with the records"
                );
                Ok((state, Cursor { value: cursor.0.unwrap_or(0), mod_revision: cursor.1 }, watch))
            }
        }
    }

    /// History is gone: compares the whole NB with what Nova knows, watches from there.
    async fn relist(&self, state: &mut State) -> anyhow::Result<NbWatch> {
        let (objects, listed) = self.nb.dump().await.context("listing the NB")?;
        state.apply_listing(&objects, listed, true);
        self.nb.watch(listed + 1).await.context("watching the NB")
    }

    /// A watch that failed: again from where it was.
    async fn rewatch(&self, state: &mut State) -> anyhow::Result<NbWatch> {
        let mut wait = Duration::from_millis(200);
        for _ in 0..5 {
            match self.nb.watch(state.processed() + 1).await {
                Ok(w) => return Ok(w),
                Err(e) => tracing::warn!(error = %e, "cannot watch the NB; retrying"),
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        self.nb.watch(state.processed() + 1).await.context("watching the NB")
    }

    /// Delivers the queued events, then writes the records (and the cursor) that say what Nova
    /// knows and what it has yet to hear: events Nova could not take wait in the records.
    async fn flush(&self, state: &mut State, cursor: &mut Cursor, pace: &mut Pace) -> Result<(), FlushError> {
        let mut failure = None;
        let mut sent = false;
        while !state.pending().is_empty() {
            let n = state.pending().len().min(self.options.max_batch.max(1));
            let batch: Vec<Event> = state.pending().iter().take(n).cloned().collect();
            sent = true;
            match self.deliver(&batch).await {
                Ok(()) => state.delivered(n),
                Err(why) => {
                    failure = Some(why);
                    break;
                }
            }
        }
        match &failure {
            Some(why) => pace.failed(&self.options, why),
            None if sent => {
                pace.backoff = None;
                pace.next_send = Instant::now() + self.options.batch_interval;
            }
            None => {}
        }
        match self.persist(state, cursor).await {
            Ok(()) => {
                pace.last_cursor_write = Instant::now();
                Ok(())
            }
            Err(StoreError::Conflict { key, .. }) => {
                Err(FlushError::Lost(format!("{key} was written by someone else (another notifier?)")))
            }
            Err(e) => {
                // Nothing is lost: the watch replays from the stored cursor after a restart.
                if failure.is_none() {
                    pace.failed(&self.options, &format!("cannot write the notified records: {e}"));
                }
                Ok(())
            }
        }
    }

    /// One batch to Nova: `Ok` once Nova answered for good, `Err` to retry later.
    async fn deliver(&self, batch: &[Event]) -> Result<(), String> {
        for attempt in 0..2 {
            let (url, token) =
                self.target.endpoint().await.map_err(|e| format!("no Nova endpoint: {e:#}"))?;
            match client::post(&self.http, &url, token.as_deref(), batch).await {
                client::Answer::Answered { failed } => {
                    for (i, code) in &failed {
                        let why = match code {
                            404 => "no such server",
                            422 => "the server is on no host",
                            _ => "refused",
                        };
                        tracing::warn!(event = %batch[*i], code, "Nova dropped the event: {why}");
                    }
                    tracing::info!(events = batch.len(), failed = failed.len(), "told Nova");
                    for e in batch {
                        tracing::debug!(event = %e, status = ?e.status, "told Nova");
                    }
                    return Ok(());
                }
                client::Answer::Refused(why) => {
                    tracing::error!(events = batch.len(), error = %why, "Nova refused the events; dropping them");
                    return Ok(());
                }
                client::Answer::Unauthorized => {
                    if let Some(t) = &token {
                        self.target.refused(t).await;
                    }
                    if attempt == 1 {
                        return Err("Nova refused the token (401), a new one too".into());
                    }
                }
                client::Answer::Retry(why) => return Err(why),
            }
        }
        Err("Nova refused the token (401)".into())
    }

    /// Writes the records of what Nova knows and, last, the cursor: each transaction compares
    /// the cursor and every record it writes with what this notifier last saw of them.
    async fn persist(&self, state: &mut State, cursor: &mut Cursor) -> Result<(), StoreError> {
        let writes = state.writes();
        let at = state.processed();
        if writes.is_empty() && at <= cursor.value && cursor.mod_revision != 0 {
            state.settle();
            return Ok(());
        }
        let chunks: Vec<&[RecordWrite]> =
            if writes.is_empty() { vec![&[]] } else { writes.chunks(RECORDS_PER_TXN).collect() };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut txn = Txn::new().compare(CURSOR_KEY, cursor.mod_revision);
            for w in chunk {
                let key = notified_key(&w.port_id);
                txn = txn.compare(&key, w.mod_revision);
                txn = match &w.record {
                    Some(r) => {
                        let value = serde_json::to_vec(r).map_err(|e| StoreError::Backend(e.to_string()))?;
                        txn.put(key, value)
                    }
                    None => txn.delete(key),
                };
            }
            if i == last {
                txn = txn.put(CURSOR_KEY, at.to_string().into_bytes());
            }
            let revision = self.nb.store().txn(txn).await?;
            state.written(chunk, revision);
            if i == last {
                *cursor = Cursor { value: at, mod_revision: revision };
            }
        }
        tracing::debug!(records = writes.len(), cursor = at, "notified records written");
        Ok(())
    }
}

/// Keeps the notifier's lease alive beside the session (a long request to Nova must not let it
/// lapse); stops with the session.
struct KeepAlive {
    task: tokio::task::JoinHandle<()>,
    /// Why the lease could not be kept.
    lost: tokio::sync::oneshot::Receiver<StoreError>,
}

impl KeepAlive {
    fn start(store: Arc<dyn tern_store::Store>, lease: LeaseId, every: Duration) -> KeepAlive {
        let (tx, lost) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = store.keep_alive(lease).await {
                    let _ = tx.send(e);
                    return;
                }
            }
        });
        KeepAlive { task, lost }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
