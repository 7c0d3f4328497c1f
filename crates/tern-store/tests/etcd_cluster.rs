//! etcd member loss changes nothing (issue 14). On a real 3-member etcd cluster, while a writer
//! creates and updates keys through the store, a watcher follows their prefix and a chassis keeps
//! its heartbeat alive under a lease, one member is killed with SIGKILL: the leader (then, after
//! it is back, the new leader), or a follower. The store is given the victim as its first
//! endpoint, so its requests, its watch and its keep-alives are on the member that dies.
//!
//! Checked: no store operation fails (the retries absorb the election), the watcher receives every
//! write exactly once and in revision order, and the heartbeat key keeps its lease past the TTL.
//!
//! Whether a write's reply is lost in such a run is luck, so a second test loses replies on
//! purpose (a proxy in front of etcd holds them back): each guarded write must then be recognised
//! as applied ("was it ours") or, if it was refused, still be refused.
//! Waits poll with generous bounds; nothing sleeps hoping something happened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tern_store::etcd::EtcdStore;
use tern_store::liveness::{self, Heartbeater};
use tern_store::testing::{EtcdCluster, EtcdServer};
use tern_store::{Store, StoreError, Txn, WatchEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// How long anything that should happen may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);
const PREFIX: &str = "/cluster/";
/// Written once the writer has stopped: the watcher has everything when it sees this.
const END_KEY: &str = "/cluster/~end";
const CHASSIS: &str = "chassis-a";
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// The heartbeat lease's TTL.
const DOWN_TIME: Duration = Duration::from_secs(3);
/// Writes the writer must complete under the new leader before a phase ends.
const WRITES_AFTER_ELECTION: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Victim {
    Leader,
    Follower,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_leader_twice_changes_nothing() {
    member_loss_changes_nothing(&[Victim::Leader, Victim::Leader]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_a_follower_changes_nothing() {
    member_loss_changes_nothing(&[Victim::Follower]).await;
}

/// A write the writer made, as the watcher must see it.
type Write = (String, Vec<u8>, u64);

/// What the writer did so far.
#[derive(Default)]
struct Progress {
    writes: Vec<Write>,
    errors: Vec<String>,
    slowest: Duration,
}

async fn member_loss_changes_nothing(victims: &[Victim]) {
    let started = Instant::now();
    let mut cluster =
        tokio::task::spawn_blocking(|| EtcdCluster::start(3)).await.unwrap().expect("start etcd");
    let (leader, _) = agreed_leader(&cluster, &[0, 1, 2], None).await;
    let first_victim = pick(victims[0], leader);
    // The victim first: the store prefers it, so what dies is what the store uses.
    let mut endpoints = vec![cluster.endpoint(first_victim)];
    endpoints.extend((0..3).filter(|&i| i != first_victim).map(|i| cluster.endpoint(i)));
    let store: Arc<dyn Store> = Arc::new(EtcdStore::connect(&endpoints).await.expect("connect"));

    let mut watch = store.watch(PREFIX, 0).await.unwrap();
    let watcher = tokio::spawn(async move {
        let mut seen: Vec<Write> = Vec::new();
        loop {
            match watch.next().await {
                Some(Ok(WatchEvent::Put(kv))) if kv.key == END_KEY => return Ok(seen),
                Some(Ok(WatchEvent::Put(kv))) => seen.push((kv.key, kv.value, kv.mod_revision)),
                Some(Ok(other)) => return Err(format!("unexpected event {other:?}")),
                Some(Err(e)) => return Err(format!("watch failed after {} events: {e}", seen.len())),
                None => return Err(format!("watch ended after {} events", seen.len())),
            }
        }
    });
    let heartbeat_key = liveness::heartbeat_key(CHASSIS);
    let mut liveness_watch = store.watch(&heartbeat_key, 0).await.unwrap();
    let heartbeater = Heartbeater::start(store.clone(), CHASSIS.into(), REPORT_INTERVAL, DOWN_TIME)
        .await
        .expect("first heartbeat");
    let lease = store.get(&heartbeat_key).await.unwrap().expect("heartbeat key").lease;
    assert!(lease.is_some(), "the heartbeat key is under a lease");
    let (liveness_stop, mut liveness_stop_rx) = tokio::sync::watch::channel(());
    let liveness_watcher = tokio::spawn(async move {
        // Every delete of the heartbeat key (a lost lease shows as one), and the longest time
        // between two heartbeats; until told to stop.
        let (mut deletes, mut longest_gap, mut last_ms) = (Vec::new(), 0u64, None);
        loop {
            tokio::select! {
                event = liveness_watch.next() => match event {
                    Some(Ok(WatchEvent::Put(kv))) => {
                        let beat: liveness::Heartbeat = serde_json::from_slice(&kv.value).unwrap();
                        if let Some(last) = last_ms {
                            longest_gap = longest_gap.max(beat.heartbeat_at_ms.saturating_sub(last));
                        }
                        last_ms = Some(beat.heartbeat_at_ms);
                    }
                    other => deletes.push(format!("{other:?}")),
                },
                _ = liveness_stop_rx.changed() => return (deletes, Duration::from_millis(longest_gap)),
            }
        }
    });

    let progress = Arc::new(Mutex::new(Progress::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until_stopped(store.clone(), progress.clone(), stop.clone()));
    let writes = || progress.lock().unwrap().writes.len();
    wait_for("the writer's first 20 writes", || writes() >= 20).await;

    let mut leader = leader;
    let mut killed: Option<usize> = None;
    for (phase, &victim) in victims.iter().enumerate() {
        if let Some(i) = killed.take() {
            // Bring the last victim back, so the cluster can lose a member again.
            let restarted = Instant::now();
            tokio::task::block_in_place(|| cluster.restart(i)).expect("restart the killed member");
            eprintln!("phase {phase}: {} back after {:?}", cluster.name(i), restarted.elapsed());
            leader = agreed_leader(&cluster, &[0, 1, 2], None).await.0;
        }
        let target = pick(victim, leader);
        let leader_id = agreed_leader(&cluster, &[0, 1, 2], None).await.1;
        let before = writes();
        let killed_at = Instant::now();
        cluster.kill(target);
        killed = Some(target);
        let survivors: Vec<usize> = (0..3).filter(|&i| i != target).collect();
        let not = (victim == Victim::Leader).then_some(leader_id);
        let (new_leader, _) = agreed_leader(&cluster, &survivors, not).await;
        let elected_after = killed_at.elapsed();
        let at_election = writes();
        // Long enough for the lease to have expired had its keep-alives stopped, and enough
        // writes under the new leader.
        wait_for("writes under the new leader", || {
            writes() >= at_election + WRITES_AFTER_ELECTION && killed_at.elapsed() > 2 * DOWN_TIME
        })
        .await;
        eprintln!(
            "phase {phase}: killed {} ({victim:?}); leader {} after {elected_after:?}; writes: {before} before, \
             {at_election} at the election, {} now",
            cluster.name(target),
            cluster.name(new_leader),
            writes()
        );
        leader = new_leader;
    }

    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    store.put(END_KEY, b"end".to_vec(), None).await.expect("write the end marker");
    let seen = tokio::time::timeout(PATIENCE, watcher).await.expect("watcher done in time").unwrap();

    let progress = std::mem::take(&mut *progress.lock().unwrap());
    eprintln!(
        "{} writes, slowest operation {:?}, {:?} in all",
        progress.writes.len(),
        progress.slowest,
        started.elapsed()
    );
    assert!(progress.errors.is_empty(), "store operations failed:\n{}", progress.errors.join("\n"));
    let seen = seen.unwrap_or_else(|e| panic!("{e}"));
    if seen != progress.writes {
        let first = seen.iter().zip(&progress.writes).position(|(a, b)| a != b);
        panic!(
            "the watcher saw {} events for {} writes; first difference at {first:?}: saw {:?}, wrote {:?}",
            seen.len(),
            progress.writes.len(),
            first.map(|i| &seen[i]),
            first.map(|i| &progress.writes[i]),
        );
    }

    let kv = store.get(&heartbeat_key).await.unwrap().expect("heartbeat key still there");
    assert_eq!(kv.lease, lease, "the heartbeat kept its lease");
    assert!(liveness::is_alive(&*store, CHASSIS).await.unwrap());
    drop(heartbeater);
    liveness_stop.send(()).unwrap();
    let (deletes, longest_gap) = liveness_watcher.await.unwrap();
    eprintln!("longest time between two heartbeats: {longest_gap:?}");
    assert!(deletes.is_empty(), "the heartbeat key went away: {deletes:?}");
}

/// The member to kill: the leader, or the member after it.
fn pick(victim: Victim, leader: usize) -> usize {
    match victim {
        Victim::Leader => leader,
        Victim::Follower => (leader + 1) % 3,
    }
}

/// Creates a key, updates it (compare-and-swap on the create's revision), reads it back, lists
/// now and then; records each write and each failure, until `stop`.
async fn write_until_stopped(store: Arc<dyn Store>, progress: Arc<Mutex<Progress>>, stop: Arc<AtomicBool>) {
    let timed = |progress: &Mutex<Progress>, took: Duration| {
        let mut p = progress.lock().unwrap();
        p.slowest = p.slowest.max(took);
    };
    let fail = |progress: &Mutex<Progress>, what: String| progress.lock().unwrap().errors.push(what);
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{PREFIX}obj-{i:05}");
        let created = format!("{i} created").into_bytes();
        let t = Instant::now();
        let revision = match store.create(&key, created.clone(), None).await {
            Ok(revision) => revision,
            Err(e) => {
                fail(&progress, format!("create of {key} failed after {:?}: {e}", t.elapsed()));
                i += 1;
                continue;
            }
        };
        timed(&progress, t.elapsed());
        progress.lock().unwrap().writes.push((key.clone(), created, revision));

        let updated = format!("{i} updated").into_bytes();
        let t = Instant::now();
        match store.update(&key, updated.clone(), revision).await {
            Ok(revision) => {
                timed(&progress, t.elapsed());
                progress.lock().unwrap().writes.push((key.clone(), updated.clone(), revision));
            }
            Err(e) => fail(&progress, format!("update of {key} failed after {:?}: {e}", t.elapsed())),
        }

        let t = Instant::now();
        match store.get(&key).await {
            Ok(Some(kv)) if kv.value == updated => timed(&progress, t.elapsed()),
            other => fail(&progress, format!("get of {key} after {:?}: {other:?}", t.elapsed())),
        }
        if i.is_multiple_of(10) {
            let t = Instant::now();
            match store.list(PREFIX).await {
                Ok(listing) if listing.items.len() == i + 1 => timed(&progress, t.elapsed()),
                Ok(listing) => {
                    fail(&progress, format!("list found {} keys, expected {}", listing.items.len(), i + 1))
                }
                Err(e) => fail(&progress, format!("list failed after {:?}: {e}", t.elapsed())),
            }
        }
        i += 1;
    }
}

/// [`EtcdCluster::agreed_leader`] within [`PATIENCE`], or the test fails.
async fn agreed_leader(cluster: &EtcdCluster, among: &[usize], not: Option<u64>) -> (usize, u64) {
    cluster.agreed_leader(among, not, PATIENCE).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `done` until it holds; fails the test after [`PATIENCE`].
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP proxy in front of one etcd that passes requests on but, while `hold` is set, holds back
/// etcd's replies (they flow again once it is cleared): a write applied whose reply never comes,
/// as when a member dies between the two.
struct ReplyHolder {
    endpoint: String,
    hold: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplyHolder {
    async fn start(target: String) -> ReplyHolder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        let hold = Arc::new(AtomicBool::new(false));
        let held = hold.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else { return };
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut client_rx, &mut server_tx).await });
                let held = held.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_rx.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        // Checked after the read: a reply read while holding is held too.
                        while held.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        if client_tx.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        ReplyHolder { endpoint, hold, task }
    }

    /// A store whose preferred member is this proxy, with etcd itself as a second "member".
    async fn store(&self, direct: &str) -> EtcdStore {
        EtcdStore::connect(&[self.endpoint.clone(), direct.to_owned()]).await.expect("connect")
    }
}

impl Drop for ReplyHolder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_whose_reply_is_lost_is_recognised_by_its_guard() {
    let server = tokio::task::spawn_blocking(EtcdServer::start).await.unwrap().expect("start etcd");
    let proxy = ReplyHolder::start(server.endpoint()).await;
    let direct = server.endpoint();
    let plain = EtcdStore::connect(std::slice::from_ref(&direct)).await.unwrap();
    let started = Instant::now();

    // Each case: a fresh store (so the proxy is its preferred member), then one write whose
    // first attempt applies (or is refused) unheard; a retry on the direct "member" finds the
    // guard broken, and the history decides.
    let store = proxy.store(&direct).await;
    let created = reply_lost(&proxy, store.create("/lost/a", b"mine".to_vec(), None)).await.expect("create");
    let kv = plain.get("/lost/a").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.value.as_slice()), (created, &b"mine"[..]));

    let store = proxy.store(&direct).await;
    let updated =
        reply_lost(&proxy, store.update("/lost/a", b"mine 2".to_vec(), created)).await.expect("update");
    let kv = plain.get("/lost/a").await.unwrap().unwrap();
    assert_eq!((kv.mod_revision, kv.version, kv.value.as_slice()), (updated, 2, &b"mine 2"[..]));

    let r_t = plain.put("/lost/t", b"t0".to_vec(), None).await.unwrap();
    let store = proxy.store(&direct).await;
    let txn =
        Txn::new().compare("/lost/t", r_t).put("/lost/t", b"t1".to_vec()).put("/lost/u", b"u1".to_vec());
    let applied = reply_lost(&proxy, store.txn(txn)).await.expect("txn");
    assert_eq!(plain.get("/lost/u").await.unwrap().unwrap().mod_revision, applied);

    let store = proxy.store(&direct).await;
    let deleted = reply_lost(&proxy, store.delete_if("/lost/a", updated)).await.expect("delete_if");
    assert_eq!(plain.get("/lost/a").await.unwrap(), None);
    assert_eq!(plain.revision().await.unwrap(), deleted);

    // Writes refused the first time are still refused: the lost attempt was not theirs. (The
    // very same write by someone else would count as theirs: it is indistinguishable, and
    // equivalent.)
    let r_b = plain.put("/lost/b", b"theirs".to_vec(), None).await.unwrap();
    let store = proxy.store(&direct).await;
    assert_eq!(
        reply_lost(&proxy, store.create("/lost/b", b"mine".to_vec(), None)).await,
        Err(StoreError::AlreadyExists { key: "/lost/b".into() })
    );
    let r_b2 = plain.put("/lost/b", b"theirs 2".to_vec(), None).await.unwrap();
    let store = proxy.store(&direct).await;
    assert_eq!(
        reply_lost(&proxy, store.update("/lost/b", b"mine".to_vec(), r_b)).await,
        Err(StoreError::Conflict { key: "/lost/b".into(), expected: r_b, actual: r_b2 })
    );

    // A revocation whose reply is lost is done; a second one says the lease is gone.
    let lease = plain.grant_lease(60).await.unwrap();
    let store = proxy.store(&direct).await;
    reply_lost(&proxy, store.revoke_lease(lease)).await.expect("revocation");
    assert_eq!(plain.revoke_lease(lease).await, Err(StoreError::LeaseNotFound(lease)));
    eprintln!("7 lost replies resolved in {:?}", started.elapsed());
}

/// Runs `write` with the proxy holding replies back, and checks that its first attempt did go
/// unanswered (the store gave up on it and tried the direct member).
async fn reply_lost<T>(proxy: &ReplyHolder, write: impl std::future::Future<Output = T>) -> T {
    proxy.hold.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let result = write.await;
    proxy.hold.store(false, Ordering::Relaxed);
    assert!(started.elapsed() >= Duration::from_secs(1), "the reply was not held back");
    result
}
