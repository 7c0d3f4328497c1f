//! [`OvsdbWatcher`]: a task that keeps a local [`Replica`] of monitored tables. It reconnects with
//! backoff when the server goes away, re-issues the monitor, replaces the replica and reports the
//! difference to the old one, so consumers always see one consistent stream of changes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::OvsdbError;
use crate::protocol::MonitorTable;
use crate::replica::{Replica, RowChange};

/// What to watch and how to reconnect.
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// `unix:PATH` or `tcp:HOST:PORT`.
    pub target: String,
    /// The database (`Open_vSwitch`).
    pub db: String,
    /// The tables and columns to replicate.
    pub tables: Vec<MonitorTable>,
    /// First reconnect delay; doubles per failed attempt up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Send an `echo` this often and drop the connection if it is not answered within the same
    /// time (detects a dead TCP peer). `None` disables probing.
    pub probe_interval: Option<Duration>,
}

impl WatcherConfig {
    /// Watches the Open_vSwitch tables tern needs ([`crate::vswitch::monitored_tables`]).
    pub fn new(target: &str) -> Self {
        WatcherConfig {
            target: target.to_string(),
            db: crate::vswitch::DB.to_string(),
            tables: crate::vswitch::monitored_tables(),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(3),
            probe_interval: Some(Duration::from_secs(15)),
        }
    }
}

/// What the watcher reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// A connection is up (the monitor follows: `Synced` comes next).
    Connected { target: String },
    /// The monitor's initial contents replaced the replica; `changes` is the difference from the
    /// previous replica (the whole contents on the first sync). `resync` is false only for the
    /// first sync.
    Synced { changes: Vec<RowChange>, resync: bool },
    /// A monitor update was applied.
    Changed { changes: Vec<RowChange> },
    /// The connection is down (or could not be made); the replica keeps its last contents until
    /// the next `Synced`.
    Disconnected { target: String, reason: String, retry_in: Duration },
}

/// The replica as last published.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub replica: Arc<Replica>,
    /// A monitor is live.
    pub connected: bool,
    /// Bumped on every change of the replica or the connection state.
    pub generation: u64,
    /// How many times the monitor was (re-)established.
    pub syncs: u64,
}

/// A running watcher. Dropping it stops the task and closes its connection.
pub struct OvsdbWatcher {
    target: String,
    snapshots: watch::Receiver<Snapshot>,
    client: watch::Receiver<Option<Client>>,
    task: JoinHandle<()>,
}

impl Drop for OvsdbWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OvsdbWatcher {
    /// Starts the watcher task; the receiver gets every [`WatchEvent`].
    pub fn spawn(config: WatcherConfig) -> (OvsdbWatcher, mpsc::UnboundedReceiver<WatchEvent>) {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (snap_tx, snapshots) = watch::channel(Snapshot::default());
        let (client_tx, client) = watch::channel(None);
        let target = config.target.clone();
        let task = tokio::spawn(run(config, snap_tx, client_tx, events_tx));
        (OvsdbWatcher { target, snapshots, client, task }, events)
    }

    /// The target being watched.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The current replica.
    pub fn replica(&self) -> Arc<Replica> {
        self.snapshots.borrow().replica.clone()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshots.borrow().clone()
    }

    /// A receiver of snapshots, for any number of observers.
    pub fn snapshots(&self) -> watch::Receiver<Snapshot> {
        self.snapshots.clone()
    }

    /// The live connection, if any (usable for transactions).
    pub fn client(&self) -> Option<Client> {
        self.client.borrow().clone()
    }

    /// Waits (up to `timeout`) until the monitor is live and returns its connection.
    pub async fn connected(&self, timeout: Duration) -> Result<Client, OvsdbError> {
        let mut rx = self.client.clone();
        let what = format!("a connection to {}", self.target);
        let fut = async {
            match rx.wait_for(|c| c.as_ref().is_some_and(|c| !c.is_closed())).await {
                Ok(c) => c.clone().ok_or_else(|| OvsdbError::Disconnected {
                    target: self.target.clone(),
                    method: String::new(),
                }),
                Err(_) => {
                    Err(OvsdbError::Disconnected { target: self.target.clone(), method: String::new() })
                }
            }
        };
        tokio::time::timeout(timeout, fut).await.map_err(|_| OvsdbError::Timeout { what, after: timeout })?
    }

    /// Waits (up to `timeout`) until `f` finds something in the replica.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        f: impl FnMut(&Replica) -> Option<T>,
    ) -> Result<T, OvsdbError> {
        wait_for_replica(self.snapshots.clone(), what, timeout, f).await
    }
}

/// Waits (up to `timeout`) until `f` finds something in the replica published on `rx`.
pub async fn wait_for_replica<T>(
    mut rx: watch::Receiver<Snapshot>,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut(&Replica) -> Option<T>,
) -> Result<T, OvsdbError> {
    let fut = async {
        loop {
            if let Some(v) = f(&rx.borrow_and_update().replica) {
                return Ok(v);
            }
            if rx.changed().await.is_err() {
                return Err(OvsdbError::Disconnected { target: String::new(), method: what.to_string() });
            }
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| OvsdbError::Timeout { what: what.to_string(), after: timeout })?
}

async fn run(
    config: WatcherConfig,
    snapshots: watch::Sender<Snapshot>,
    client_tx: watch::Sender<Option<Client>>,
    events: mpsc::UnboundedSender<WatchEvent>,
) {
    let target = config.target.clone();
    let mut backoff = config.backoff_min;
    // Report the first failure, then only transitions.
    let mut report_down = true;
    loop {
        let reason = match session(&config, &snapshots, &client_tx, &events).await {
            Ok(reason) => {
                backoff = config.backoff_min;
                report_down = true;
                reason
            }
            Err(e) => e.to_string(),
        };
        client_tx.send_replace(None);
        snapshots.send_if_modified(|s| {
            let was = s.connected;
            s.connected = false;
            if was {
                s.generation += 1;
            }
            was
        });
        if report_down {
            tracing::warn!(%target, %reason, retry_in = ?backoff, "OVSDB connection down; reconnecting");
            let _ =
                events.send(WatchEvent::Disconnected { target: target.clone(), reason, retry_in: backoff });
            report_down = false;
        } else {
            tracing::debug!(%target, %reason, retry_in = ?backoff, "OVSDB reconnect attempt failed");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.backoff_max.max(config.backoff_min));
    }
}

/// One connection's life: `Err` if it never got its monitor up, `Ok(reason)` when a live
/// monitor ended.
async fn session(
    config: &WatcherConfig,
    snapshots: &watch::Sender<Snapshot>,
    client_tx: &watch::Sender<Option<Client>>,
    events: &mpsc::UnboundedSender<WatchEvent>,
) -> Result<String, OvsdbError> {
    let client = Client::connect(&config.target).await?;
    let (initial, mut updates) = client.monitor(&config.db, &config.tables).await?;
    let fresh = Replica::from_initial(&initial);
    let mut changes = Vec::new();
    let mut resync = false;
    snapshots.send_modify(|s| {
        changes = Replica::diff(&s.replica, &fresh);
        resync = s.syncs > 0;
        s.replica = Arc::new(fresh);
        s.connected = true;
        s.generation += 1;
        s.syncs += 1;
    });
    client_tx.send_replace(Some(client.clone()));
    tracing::info!(target = %config.target, resync, changes = changes.len(), "OVSDB monitor synced");
    let _ = events.send(WatchEvent::Connected { target: config.target.clone() });
    let _ = events.send(WatchEvent::Synced { changes, resync });

    let probe_every = config.probe_interval.unwrap_or(Duration::from_secs(3600));
    let mut probe = tokio::time::interval_at(tokio::time::Instant::now() + probe_every, probe_every);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            upd = updates.recv() => {
                let Some(upd) = upd else {
                    return Ok(client.closed().await);
                };
                let mut changes = Vec::new();
                snapshots.send_if_modified(|s| {
                    changes = Arc::make_mut(&mut s.replica).apply(&upd);
                    if !changes.is_empty() {
                        s.generation += 1;
                    }
                    !changes.is_empty()
                });
                if !changes.is_empty() {
                    let _ = events.send(WatchEvent::Changed { changes });
                }
            }
            _ = probe.tick(), if config.probe_interval.is_some() => {
                match tokio::time::timeout(probe_every, client.echo()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Ok(format!("echo failed: {e}")),
                    Err(_) => return Ok(format!("no echo reply within {probe_every:?}")),
                }
            }
        }
    }
}
