//! Smoke test of the etcd backend against a real etcd (feature `testing`, package etcd-server).

use std::time::Duration;
use tern_store::etcd::EtcdStore;
use tern_store::testing::EtcdServer;
use tern_store::{Store, StoreError, Watch, WatchEvent};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

async fn start() -> (EtcdServer, EtcdStore) {
    let server = tokio::task::spawn_blocking(EtcdServer::start).await.unwrap().unwrap();
    let store = EtcdStore::connect(&[server.endpoint()]).await.unwrap();
    (server, store)
}

async fn next_event(watch: &mut Watch) -> WatchEvent {
    tokio::time::timeout(EVENT_TIMEOUT, watch.next())
        .await
        .expect("no watch event in time")
        .expect("watch ended")
        .expect("watch error")
}

#[tokio::test]
async fn kv_operations() {
    let (_server, store) = start().await;
    assert_eq!(store.get("/a").await.unwrap(), None);

    let r1 = store.put("/a", b"1".to_vec(), None).await.unwrap();
    let kv = store.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision, kv.version),
        (&b"1"[..], r1, r1, 1)
    );
    assert_eq!(kv.lease, None);
    assert_eq!(store.revision().await.unwrap(), r1);

    assert_eq!(
        store.create("/a", b"x".to_vec(), None).await,
        Err(StoreError::AlreadyExists { key: "/a".into() })
    );
    let r2 = store.create("/b", b"2".to_vec(), None).await.unwrap();
    assert_eq!(r2, r1 + 1);

    assert_eq!(
        store.update("/a", b"x".to_vec(), r1 + 100).await,
        Err(StoreError::Conflict { key: "/a".into(), expected: r1 + 100, actual: r1 })
    );
    assert_eq!(
        store.update("/nope", b"x".to_vec(), 0).await,
        Err(StoreError::Conflict { key: "/nope".into(), expected: 0, actual: 0 })
    );
    assert!(store.get("/nope").await.unwrap().is_none());
    let r3 = store.update("/a", b"3".to_vec(), r1).await.unwrap();
    let kv = store.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision, kv.version),
        (&b"3"[..], r1, r3, 2)
    );

    store.put("/c/1", b"c1".to_vec(), None).await.unwrap();
    let last = store.put("/c/0", b"c0".to_vec(), None).await.unwrap();
    let listing = store.list("/c/").await.unwrap();
    assert_eq!(listing.revision, last);
    let keys: Vec<_> = listing.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/c/0", "/c/1"]);
    assert_eq!(store.list("").await.unwrap().items.len(), 4);

    assert_eq!(
        store.delete_if("/b", r2 + 100).await,
        Err(StoreError::Conflict { key: "/b".into(), expected: r2 + 100, actual: r2 })
    );
    let r4 = store.delete_if("/b", r2).await.unwrap();
    assert_eq!(store.delete("/b").await.unwrap(), None);
    assert_eq!(store.revision().await.unwrap(), r4);
    let r5 = store.delete("/a").await.unwrap().unwrap();
    assert_eq!(r5, r4 + 1);
    assert_eq!(
        store.delete_if("/a", r3).await,
        Err(StoreError::Conflict { key: "/a".into(), expected: r3, actual: 0 })
    );
}

#[tokio::test]
async fn list_pages_through_many_keys() {
    let (_server, store) = start().await;
    let n = 2500;
    let puts = (0..n).map(|i| {
        let store = store.clone();
        async move { store.put(&format!("/many/{i:05}"), vec![b'x'; 10], None).await }
    });
    for r in futures::future::join_all(puts).await {
        r.unwrap();
    }
    store.put("/other", b"o".to_vec(), None).await.unwrap();
    let listing = store.list("/many/").await.unwrap();
    assert_eq!(listing.items.len(), n);
    assert!(listing.items.windows(2).all(|w| w[0].key < w[1].key));
    assert_eq!(listing.revision, store.revision().await.unwrap());
}

#[tokio::test]
async fn watch_from_revision_then_live() {
    let (_server, store) = start().await;
    store.put("/w/a", b"a".to_vec(), None).await.unwrap();
    let rb = store.put("/w/b", b"b".to_vec(), None).await.unwrap();
    store.put("/x/ignored", b"x".to_vec(), None).await.unwrap();
    let rd = store.delete("/w/a").await.unwrap().unwrap();

    let mut watch = store.watch("/w/", rb).await.unwrap();
    match next_event(&mut watch).await {
        WatchEvent::Put(kv) => assert_eq!((kv.key.as_str(), kv.mod_revision, kv.version), ("/w/b", rb, 1)),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(next_event(&mut watch).await, WatchEvent::Delete { key: "/w/a".into(), revision: rd });

    // A watch "from now" sees writes made right after it is returned.
    let mut live = store.watch("/w/", 0).await.unwrap();
    let rc = store.put("/w/c", b"c".to_vec(), None).await.unwrap();
    for w in [&mut watch, &mut live] {
        assert_eq!(next_event(w).await.revision(), Some(rc));
    }

    // Watching from the next revision is fine; further ahead is refused.
    let current = store.revision().await.unwrap();
    store.watch("/w/", current + 1).await.unwrap();
    assert_eq!(
        store.watch("/w/", current + 2).await.unwrap_err(),
        StoreError::FutureRevision { requested: current + 2, current }
    );
}

#[tokio::test]
async fn leases() {
    let (server, store) = start().await;
    assert_eq!(store.grant_lease(0).await, Err(StoreError::InvalidTtl(0)));
    assert_eq!(store.put("/l/x", vec![], Some(12345)).await, Err(StoreError::LeaseNotFound(12345)));
    assert_eq!(store.create("/l/x", vec![], Some(12345)).await, Err(StoreError::LeaseNotFound(12345)));

    // Revoking a lease deletes all its keys in one revision: one etcd response, several events.
    let lease = store.grant_lease(60).await.unwrap();
    store.put("/l/a", b"a".to_vec(), Some(lease)).await.unwrap();
    let rb = store.create("/l/b", b"b".to_vec(), Some(lease)).await.unwrap();
    assert_eq!(store.get("/l/a").await.unwrap().unwrap().lease, Some(lease));
    // update keeps the lease.
    store.update("/l/b", b"b2".to_vec(), rb).await.unwrap();
    assert_eq!(store.get("/l/b").await.unwrap().unwrap().lease, Some(lease));
    store.keep_alive(lease).await.unwrap();
    let mut watch = store.watch("/l/", 0).await.unwrap();
    store.revoke_lease(lease).await.unwrap();
    let a = next_event(&mut watch).await;
    let b = next_event(&mut watch).await;
    assert!(matches!(&a, WatchEvent::Delete { key, .. } if key == "/l/a"), "{a:?}");
    assert!(matches!(&b, WatchEvent::Delete { key, .. } if key == "/l/b"), "{b:?}");
    assert_eq!(a.revision(), b.revision());
    assert_eq!(store.keep_alive(lease).await, Err(StoreError::LeaseNotFound(lease)));
    assert_eq!(store.revoke_lease(lease).await, Err(StoreError::LeaseNotFound(lease)));

    // Expiry: a short lease, not kept alive, deletes its key; the watcher sees it.
    let short = store.grant_lease(1).await.unwrap();
    let rs = store.put("/l/short", b"s".to_vec(), Some(short)).await.unwrap();
    let started = std::time::Instant::now();
    match next_event(&mut watch).await {
        WatchEvent::Put(kv) => assert_eq!((kv.mod_revision, kv.lease), (rs, Some(short))),
        other => panic!("unexpected {other:?}"),
    }
    match next_event(&mut watch).await {
        WatchEvent::Delete { key, revision } => assert_eq!((key.as_str(), revision), ("/l/short", rs + 1)),
        other => panic!("unexpected {other:?}"),
    }
    eprintln!("a 1 s lease expired after {:?}", started.elapsed());
    assert_eq!(store.keep_alive(short).await, Err(StoreError::LeaseNotFound(short)));

    // The TTL etcd actually grants for small requests.
    let mut client = etcd_client::Client::connect([server.endpoint()], None).await.unwrap();
    for ttl in [1, 2, 3] {
        let granted = client.lease_grant(ttl, None).await.unwrap().ttl();
        eprintln!("lease TTL requested {ttl}s, granted {granted}s");
    }
}

#[tokio::test]
async fn compaction_relists_watchers() {
    let (_server, store) = start().await;
    let r1 = store.put("/k/a", b"1".to_vec(), None).await.unwrap();
    store.put("/k/a", b"2".to_vec(), None).await.unwrap();
    let r3 = store.put("/k/a", b"3".to_vec(), None).await.unwrap();

    let mut watch = store.watch("/k/", r1).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(next_event(&mut watch).await.revision().unwrap());
    }
    assert_eq!(seen, [r1, r1 + 1, r3]);

    store.compact(r3).await.unwrap();
    assert_eq!(store.compact(r1).await, Err(StoreError::Compacted { requested: r1, compact_revision: r3 }));
    assert_eq!(store.compact(r3).await, Err(StoreError::Compacted { requested: r3, compact_revision: r3 }));
    assert_eq!(
        store.compact(r3 + 5).await,
        Err(StoreError::FutureRevision { requested: r3 + 5, current: r3 })
    );
    // A watcher that is caught up keeps going.
    let r4 = store.put("/k/a", b"4".to_vec(), None).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), Some(r4));

    // A new watch from before the compaction gets a relist, then ends.
    let mut stale = store.watch("/k/", r1).await.unwrap();
    assert_eq!(next_event(&mut stale).await, WatchEvent::Relist { compact_revision: r3 });
    assert!(tokio::time::timeout(EVENT_TIMEOUT, stale.next()).await.unwrap().is_none());
    // From the compaction revision itself, history is complete.
    let mut fresh = store.watch("/k/", r3).await.unwrap();
    assert_eq!(next_event(&mut fresh).await.revision(), Some(r3));
}

#[tokio::test]
async fn unreachable_endpoint_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let err = EtcdStore::connect(std::slice::from_ref(&endpoint)).await.unwrap_err();
    assert!(matches!(&err, StoreError::Backend(m) if m.contains(&endpoint)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
    eprintln!("{err} (after {:?})", started.elapsed());
}

#[tokio::test]
async fn server_stops_on_drop() {
    let (server, store) = start().await;
    let pid = server.pid();
    assert!(server.dsn().ends_with(&server.endpoint()));
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let mut watch = store.watch("/", 0).await.unwrap();
    drop(server);
    // The child is reaped by Drop, so its /proc entry is gone.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let started = std::time::Instant::now();
    let err = store.get("/a").await.unwrap_err();
    assert!(matches!(&err, StoreError::Backend(_)), "{err}");
    eprintln!("{err} (after {:?})", started.elapsed());
    // An open watch reports the loss, then ends.
    let event = tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await.unwrap();
    assert!(matches!(&event, Some(Err(StoreError::Backend(_)))), "{event:?}");
    assert!(tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await.unwrap().is_none());
}
