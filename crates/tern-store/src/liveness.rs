//! Chassis liveness: each controller keeps a heartbeat key alive under a lease
//! (`/tern/liveness/<chassis>`, outside the NB objects' prefix). The key exists exactly while the
//! chassis is alive: a controller that stops refreshing loses its lease after `down_time`, and the
//! store deletes the key (watchers see it). Its value says when the last heartbeat was.

use crate::{LeaseId, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where heartbeats live.
pub const LIVENESS_PREFIX: &str = "/tern/liveness/";

/// Defaults that show a dead chassis within 3 s.
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_DOWN_TIME: Duration = Duration::from_secs(3);

/// The heartbeat key of a chassis.
pub fn heartbeat_key(chassis: &str) -> String {
    format!("{LIVENESS_PREFIX}{chassis}")
}

/// What a heartbeat says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub chassis: String,
    /// RFC 3339, seconds: Neutron's `heartbeat_timestamp`.
    pub heartbeat_at: String,
    /// Milliseconds since the Unix epoch, for arithmetic.
    pub heartbeat_at_ms: u64,
    pub report_interval_ms: u64,
    pub down_time_ms: u64,
}

/// The chassis alive now (those with a heartbeat key), by name.
pub async fn alive(store: &dyn Store) -> Result<BTreeMap<String, Heartbeat>, StoreError> {
    let listing = store.list(LIVENESS_PREFIX).await?;
    Ok(listing
        .items
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Heartbeat>(&kv.value).ok())
        .map(|h| (h.chassis.clone(), h))
        .collect())
}

/// Whether one chassis is alive now.
pub async fn is_alive(store: &dyn Store, chassis: &str) -> Result<bool, StoreError> {
    Ok(store.get(&heartbeat_key(chassis)).await?.is_some())
}

/// Keeps a chassis' heartbeat alive until dropped (or until `stop`), re-creating the lease if the
/// store lost it (e.g. after a long partition).
pub struct Heartbeater {
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeater {
    /// Beats once (so the chassis is alive when this returns), then keeps beating in a task.
    pub async fn start(
        store: Arc<dyn Store>,
        chassis: String,
        report_interval: Duration,
        down_time: Duration,
    ) -> Result<Heartbeater, StoreError> {
        let ttl = down_time.as_secs().max(1) as i64;
        let mut lease: Option<LeaseId> = None;
        // When the lease was last refreshed (or granted).
        let mut refreshed = tokio::time::Instant::now();
        beat(&*store, &chassis, &mut lease, &mut refreshed, ttl, report_interval, down_time).await?;
        let task = tokio::spawn(async move {
            let first = tokio::time::Instant::now() + report_interval;
            let mut tick = tokio::time::interval_at(first, report_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match beat(&*store, &chassis, &mut lease, &mut refreshed, ttl, report_interval, down_time)
                    .await
                {
                    Ok(()) => {}
                    // The store says the lease is gone: the chassis shows as down until the
                    // next beat grants a new one.
                    Err(StoreError::LeaseNotFound(id)) => {
                        tracing::warn!(%chassis, lease = id, "heartbeat lease lost; granting a new one");
                        lease = None;
                    }
                    // Anything else (the store unreachable for a while, say) says nothing about
                    // the lease: keep refreshing it. Unrefreshed past its TTL it has most likely
                    // expired (and the chassis shows as down): start over with a new one. (Were
                    // it still alive, the key just moves to the new lease.)
                    Err(e) if refreshed.elapsed() > Duration::from_secs(ttl as u64) => {
                        tracing::warn!(%chassis, error = %e, "heartbeat failing for longer than its lease \
                            TTL: the chassis is probably shown down; granting a new lease");
                        lease = None;
                    }
                    Err(e) => tracing::warn!(%chassis, error = %e, "heartbeat failed; retrying"),
                }
            }
        });
        Ok(Heartbeater { task })
    }

    /// Stops beating; the chassis shows as down once its lease runs out (or at once with `revoke`).
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Heartbeater {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn beat(
    store: &dyn Store,
    chassis: &str,
    lease: &mut Option<LeaseId>,
    refreshed: &mut tokio::time::Instant,
    ttl: i64,
    report_interval: Duration,
    down_time: Duration,
) -> Result<(), StoreError> {
    let id = match *lease {
        Some(id) => match store.keep_alive(id).await {
            Ok(()) => id,
            Err(StoreError::LeaseNotFound(_)) => store.grant_lease(ttl).await?,
            Err(e) => return Err(e),
        },
        None => store.grant_lease(ttl).await?,
    };
    *lease = Some(id);
    *refreshed = tokio::time::Instant::now();
    let now = SystemTime::now();
    let ms = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let hb = Heartbeat {
        chassis: chassis.to_owned(),
        heartbeat_at: humantime::format_rfc3339_seconds(now).to_string(),
        heartbeat_at_ms: ms,
        report_interval_ms: report_interval.as_millis() as u64,
        down_time_ms: down_time.as_millis() as u64,
    };
    let value = serde_json::to_vec(&hb).map_err(StoreError::backend)?;
    store.put(&heartbeat_key(chassis), value, Some(id)).await?;
    Ok(())
}
