//! The conformance suite: what every [`Store`] backend must do, written once and run unchanged
//! against memory, redb and a real etcd (`tests/conformance.rs`). Each case gets a fresh store.
//!
//! Nothing here sleeps and hopes: waits are on watch events or polls, bounded by [`PATIENCE`].

use crate::{Revision, Store, StoreError, Txn, WatchEvent};
use std::sync::Arc;
use std::time::Duration;

/// How long a case waits for something that should happen (lease expiry included) before failing.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Calls `$m!($arg; case, case, ...)` with the name of every case, to make one test per case.
#[macro_export]
macro_rules! conformance_cases {
    ($m:ident, $arg:ident) => {
        $m!($arg;
            put_get_and_versions,
            create_only_if_absent,
            update_is_compare_and_swap,
            delete_and_delete_if,
            list_by_prefix_at_revision,
            list_from_and_before_read_pages_by_key,
            get_many_reads_keys_in_order_and_writes_nothing,
            watch_replays_from_revision,
            watch_live_with_prefix_filter,
            watch_from_future_revision_is_refused,
            compaction_makes_watch_relist,
            lease_expiry_deletes_keys_and_tells_watchers,
            lease_keep_alive_keeps_keys,
            lease_revoke_and_unknown_leases,
            update_keeps_lease,
            concurrent_writers_are_totally_ordered,
            slow_watcher_misses_nothing,
            txn_applies_everything_at_one_revision,
            txn_is_all_or_nothing,
            txn_guards_keys_it_only_reads
        );
    };
}

async fn next_event(w: &mut crate::Watch) -> WatchEvent {
    match tokio::time::timeout(PATIENCE, w.next()).await {
        Ok(Some(Ok(ev))) => ev,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended unexpectedly"),
        Err(_) => panic!("no watch event within {PATIENCE:?}"),
    }
}

fn put_of(ev: &WatchEvent) -> (&str, &[u8]) {
    match ev {
        WatchEvent::Put(kv) => (&kv.key, &kv.value),
        other => panic!("expected a put, got {other:?}"),
    }
}

pub async fn put_get_and_versions(s: Arc<dyn Store>) {
    assert_eq!(s.get("/t/a").await.unwrap(), None);
    let r0 = s.revision().await.unwrap();
    let r1 = s.put("/t/a", b"one".to_vec(), None).await.unwrap();
    assert!(r1 > r0, "a write moves the revision forward ({r0} -> {r1})");
    let kv = s.get("/t/a").await.unwrap().expect("stored");
    assert_eq!(
        (kv.value.as_slice(), kv.version, kv.create_revision, kv.mod_revision),
        (&b"one"[..], 1, r1, r1)
    );
    assert_eq!(kv.lease, None);
    let r2 = s.put("/t/a", b"two".to_vec(), None).await.unwrap();
    assert!(r2 > r1);
    let kv = s.get("/t/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.version, kv.create_revision, kv.mod_revision),
        (&b"two"[..], 2, r1, r2)
    );
    assert_eq!(s.revision().await.unwrap(), r2);
    // Values are bytes: empty and non-UTF-8 ones survive.
    s.put("/t/empty", Vec::new(), None).await.unwrap();
    s.put("/t/bin", vec![0, 255, 128], None).await.unwrap();
    assert_eq!(s.get("/t/empty").await.unwrap().unwrap().value, Vec::<u8>::new());
    assert_eq!(s.get("/t/bin").await.unwrap().unwrap().value, vec![0, 255, 128]);
}

pub async fn create_only_if_absent(s: Arc<dyn Store>) {
    let r = s.create("/t/c", b"first".to_vec(), None).await.unwrap();
    let before = s.revision().await.unwrap();
    assert_eq!(before, r);
    match s.create("/t/c", b"second".to_vec(), None).await {
        Err(StoreError::AlreadyExists { key }) => assert_eq!(key, "/t/c"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(s.get("/t/c").await.unwrap().unwrap().value, b"first");
    assert_eq!(s.revision().await.unwrap(), before, "a refused write writes nothing");
    // Absent again after a delete: create works again and starts a new life (version 1).
    s.delete("/t/c").await.unwrap();
    let r3 = s.create("/t/c", b"third".to_vec(), None).await.unwrap();
    let kv = s.get("/t/c").await.unwrap().unwrap();
    assert_eq!((kv.version, kv.create_revision), (1, r3));
}

pub async fn update_is_compare_and_swap(s: Arc<dyn Store>) {
    let r1 = s.put("/t/u", b"v1".to_vec(), None).await.unwrap();
    let r2 = s.update("/t/u", b"v2".to_vec(), r1).await.unwrap();
    assert!(r2 > r1);
    let before = s.revision().await.unwrap();
    match s.update("/t/u", b"stale".to_vec(), r1).await {
        Err(StoreError::Conflict { key, expected, actual }) => {
            assert_eq!((key.as_str(), expected, actual), ("/t/u", r1, r2));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    match s.update("/t/missing", b"x".to_vec(), r1).await {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, 0),
        other => panic!("expected Conflict on a missing key, got {other:?}"),
    }
    assert_eq!(s.get("/t/u").await.unwrap().unwrap().value, b"v2");
    assert_eq!(s.get("/t/missing").await.unwrap(), None);
    assert_eq!(s.revision().await.unwrap(), before, "refused updates write nothing");
}

pub async fn delete_and_delete_if(s: Arc<dyn Store>) {
    let r1 = s.put("/t/d", b"x".to_vec(), None).await.unwrap();
    let rd = s.delete("/t/d").await.unwrap().expect("deleted");
    assert!(rd > r1);
    assert_eq!(s.get("/t/d").await.unwrap(), None);
    let before = s.revision().await.unwrap();
    assert_eq!(s.delete("/t/d").await.unwrap(), None, "deleting nothing");
    assert_eq!(s.revision().await.unwrap(), before, "deleting nothing writes nothing");

    let r2 = s.put("/t/e", b"y".to_vec(), None).await.unwrap();
    match s.delete_if("/t/e", r2 - 1).await {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, r2),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(s.get("/t/e").await.unwrap().is_some());
    let r3 = s.delete_if("/t/e", r2).await.unwrap();
    assert!(r3 > r2);
    assert_eq!(s.get("/t/e").await.unwrap(), None);
}

pub async fn list_by_prefix_at_revision(s: Arc<dyn Store>) {
    for k in ["/l/b", "/l/a", "/l/c", "/lx/a", "/k/a"] {
        s.put(k, k.as_bytes().to_vec(), None).await.unwrap();
    }
    let listing = s.list("/l/").await.unwrap();
    let keys: Vec<&str> = listing.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/l/a", "/l/b", "/l/c"]);
    assert_eq!(listing.items[0].value, b"/l/a");
    assert_eq!(listing.revision, s.revision().await.unwrap());
    assert!(s.list("/nothing/").await.unwrap().items.is_empty());
    assert_eq!(s.list("/").await.unwrap().items.len(), 5);
}

fn keys(listing: &crate::Listing) -> Vec<&str> {
    listing.items.iter().map(|kv| kv.key.as_str()).collect()
}

/// Pages of a prefix: `list_from` after a key and `list_before` a key, each at most `limit` keys,
/// never beyond the prefix, also across the etcd backend's internal pages of 1,000 keys.
pub async fn list_from_and_before_read_pages_by_key(s: Arc<dyn Store>) {
    for k in ["/p/a", "/p/b", "/p/c", "/p/d", "/p/e", "/p0", "/o", "/p/f"] {
        s.put(k, k.as_bytes().to_vec(), None).await.unwrap();
    }
    let p = "/p/";
    let page = s.list_from(p, None, 2).await.unwrap();
    assert_eq!(keys(&page), ["/p/a", "/p/b"]);
    assert_eq!(page.items[0].value, b"/p/a");
    assert_eq!(page.revision, s.revision().await.unwrap());
    assert_eq!(keys(&s.list_from(p, Some("/p/b"), 3).await.unwrap()), ["/p/c", "/p/d", "/p/e"]);
    assert_eq!(keys(&s.list_from(p, Some("/p/bb"), 1).await.unwrap()), ["/p/c"], "after a missing key");
    assert_eq!(keys(&s.list_from(p, Some("/p/e"), 5).await.unwrap()), ["/p/f"], "never beyond the prefix");
    assert!(s.list_from(p, Some("/p/f"), 0).await.unwrap().items.is_empty());
    assert!(s.list_from(p, Some("/q"), 0).await.unwrap().items.is_empty());
    assert_eq!(s.list_from(p, Some("/a"), 0).await.unwrap().items.len(), 6, "a key before the prefix");
    assert_eq!(s.list_from(p, None, 0).await.unwrap().items.len(), 6, "0: no limit");
    assert_eq!(keys(&s.list_before(p, None, 2).await.unwrap()), ["/p/e", "/p/f"]);
    assert_eq!(keys(&s.list_before(p, Some("/p/d"), 2).await.unwrap()), ["/p/b", "/p/c"]);
    assert_eq!(keys(&s.list_before(p, Some("/p/b"), 5).await.unwrap()), ["/p/a"]);
    assert_eq!(keys(&s.list_before(p, Some("/p/bb"), 1).await.unwrap()), ["/p/b"]);
    assert!(s.list_before(p, Some("/p/a"), 0).await.unwrap().items.is_empty());
    assert!(s.list_before(p, Some("/a"), 0).await.unwrap().items.is_empty());
    assert_eq!(s.list_before(p, Some("/q"), 0).await.unwrap().items.len(), 6, "a key after the prefix");
    let all = s.list_before(p, None, 0).await.unwrap();
    assert_eq!(keys(&all), keys(&s.list(p).await.unwrap()));
    assert_eq!(all.revision, s.revision().await.unwrap());
    assert!(s.list_before("/none/", None, 3).await.unwrap().items.is_empty());

    // 1,100 keys: pages that span the etcd backend's pages.
    let big = |i: usize| format!("/pb/{i:05}");
    for chunk in (0..1100).collect::<Vec<_>>().chunks(crate::MAX_TXN_OPS) {
        let txn = chunk.iter().fold(Txn::new(), |t, i| t.put(big(*i), vec![b'x'; 8]));
        s.txn(txn).await.unwrap();
    }
    let page = s.list_from("/pb/", Some(&big(10)), 1050).await.unwrap();
    assert_eq!(page.items.len(), 1050);
    assert_eq!((page.items[0].key.clone(), page.items[1049].key.clone()), (big(11), big(1060)));
    let page = s.list_before("/pb/", Some(&big(1090)), 1050).await.unwrap();
    assert_eq!(page.items.len(), 1050);
    assert_eq!((page.items[0].key.clone(), page.items[1049].key.clone()), (big(40), big(1089)));
    assert!(page.items.windows(2).all(|w| w[0].key < w[1].key), "in key order");
    assert_eq!(s.list_from("/pb/", None, 0).await.unwrap().items.len(), 1100);
    assert_eq!(s.list_before("/pb/", None, 0).await.unwrap().items.len(), 1100);
}

/// `get_many`: each key's value or `None`, in the order asked (also more keys than one
/// transaction holds), without a new revision.
pub async fn get_many_reads_keys_in_order_and_writes_nothing(s: Arc<dyn Store>) {
    let r = s.put("/gm/a", b"a".to_vec(), None).await.unwrap();
    s.put("/gm/b", b"b".to_vec(), None).await.unwrap();
    let before = s.revision().await.unwrap();
    let asked: Vec<String> = ["/gm/b", "/gm/missing", "/gm/a", "/gm/b"].map(String::from).to_vec();
    let got = s.get_many(&asked).await.unwrap();
    let values: Vec<Option<&[u8]>> = got.iter().map(|kv| kv.as_ref().map(|kv| kv.value.as_slice())).collect();
    assert_eq!(values, [Some(&b"b"[..]), None, Some(&b"a"[..]), Some(&b"b"[..])]);
    assert_eq!(got[2].as_ref().unwrap().mod_revision, r);
    assert!(s.get_many(&[]).await.unwrap().is_empty());
    let many: Vec<String> =
        (0..300).map(|i| if i % 3 == 0 { "/gm/a".into() } else { format!("/gm/x{i}") }).collect();
    let got = s.get_many(&many).await.unwrap();
    assert_eq!(got.len(), 300);
    assert!(got.iter().enumerate().all(|(i, kv)| kv.is_some() == (i % 3 == 0)));
    assert_eq!(s.revision().await.unwrap(), before, "reads write nothing");
}

pub async fn watch_replays_from_revision(s: Arc<dyn Store>) {
    s.put("/w/a", b"1".to_vec(), None).await.unwrap();
    let listing = s.list("/w/").await.unwrap();
    let r_b = s.put("/w/b", b"2".to_vec(), None).await.unwrap();
    s.put("/other/x", b"x".to_vec(), None).await.unwrap();
    let r_del = s.delete("/w/a").await.unwrap().unwrap();
    let r_c = s.put("/w/c", b"3".to_vec(), None).await.unwrap();

    // list at R, watch from R + 1: exactly what happened after the listing, in order.
    let mut w = s.watch("/w/", listing.revision + 1).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!((put_of(&ev), ev.revision()), (("/w/b", &b"2"[..]), Some(r_b)));
    assert_eq!(next_event(&mut w).await, WatchEvent::Delete { key: "/w/a".into(), revision: r_del });
    let ev = next_event(&mut w).await;
    assert_eq!((put_of(&ev), ev.revision()), (("/w/c", &b"3"[..]), Some(r_c)));
    // ...and then live events on the same watch.
    let r_d = s.put("/w/d", b"4".to_vec(), None).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!((put_of(&ev), ev.revision()), (("/w/d", &b"4"[..]), Some(r_d)));

    // A watch may start exactly at the next revision (nothing yet) and get the next write.
    let next = s.revision().await.unwrap() + 1;
    let mut w2 = s.watch("/w/", next).await.unwrap();
    let r_e = s.put("/w/e", b"5".to_vec(), None).await.unwrap();
    assert_eq!(next_event(&mut w2).await.revision(), Some(r_e));
}

pub async fn watch_live_with_prefix_filter(s: Arc<dyn Store>) {
    s.put("/p/old", b"before".to_vec(), None).await.unwrap();
    let mut w = s.watch("/p/", 0).await.unwrap();
    s.put("/q/no", b"other prefix".to_vec(), None).await.unwrap();
    let r1 = s.put("/p/x", b"1".to_vec(), None).await.unwrap();
    let r2 = s.put("/p/x", b"2".to_vec(), None).await.unwrap();
    let r3 = s.delete("/p/old").await.unwrap().unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!((put_of(&ev), ev.revision()), (("/p/x", &b"1"[..]), Some(r1)));
    match next_event(&mut w).await {
        WatchEvent::Put(kv) => assert_eq!((kv.version, kv.mod_revision, kv.value), (2, r2, b"2".to_vec())),
        other => panic!("expected a put, got {other:?}"),
    }
    assert_eq!(next_event(&mut w).await, WatchEvent::Delete { key: "/p/old".into(), revision: r3 });
}

pub async fn watch_from_future_revision_is_refused(s: Arc<dyn Store>) {
    let current = s.revision().await.unwrap();
    match s.watch("/", current + 10).await {
        Err(StoreError::FutureRevision { requested, current: c }) => {
            assert_eq!((requested, c), (current + 10, current))
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

pub async fn compaction_makes_watch_relist(s: Arc<dyn Store>) {
    let first = s.put("/c/a", b"1".to_vec(), None).await.unwrap();
    let mut revs = vec![first];
    for i in 0..5 {
        revs.push(s.put("/c/a", format!("{i}").into_bytes(), None).await.unwrap());
    }
    let compact_at = revs[3];
    s.compact(compact_at).await.unwrap();
    // Below the compaction point: an explicit relist, then the watch ends. Never a silent gap.
    let mut w = s.watch("/c/", first).await.unwrap();
    match next_event(&mut w).await {
        WatchEvent::Relist { compact_revision } => assert_eq!(compact_revision, compact_at),
        other => panic!("expected Relist, got {other:?}"),
    }
    assert!(tokio::time::timeout(PATIENCE, w.next()).await.expect("watch ends").is_none());
    // At or above it: the kept history.
    let mut w = s.watch("/c/", compact_at).await.unwrap();
    for r in &revs[3..] {
        assert_eq!(next_event(&mut w).await.revision(), Some(*r));
    }
    // Compacting again at or below the same point is refused with the point named.
    match s.compact(compact_at).await {
        Err(StoreError::Compacted { requested, .. }) => assert_eq!(requested, compact_at),
        other => panic!("expected Compacted, got {other:?}"),
    }
}

/// Waits until `key` is deleted, as seen by `w`; returns the delete's revision.
async fn wait_delete(w: &mut crate::Watch, key: &str) -> Revision {
    loop {
        match next_event(w).await {
            WatchEvent::Delete { key: k, revision } if k == key => return revision,
            WatchEvent::Relist { .. } => panic!("unexpected relist"),
            _ => {}
        }
    }
}

pub async fn lease_expiry_deletes_keys_and_tells_watchers(s: Arc<dyn Store>) {
    match s.grant_lease(0).await {
        Err(StoreError::InvalidTtl(0)) => {}
        other => panic!("expected InvalidTtl, got {other:?}"),
    }
    let lease = s.grant_lease(1).await.unwrap();
    let mut w = s.watch("/lease/", 0).await.unwrap();
    s.put("/lease/a", b"alive".to_vec(), Some(lease)).await.unwrap();
    s.put("/lease/b", b"alive".to_vec(), Some(lease)).await.unwrap();
    s.put("/lease/keep", b"no lease".to_vec(), None).await.unwrap();
    assert_eq!(s.get("/lease/a").await.unwrap().unwrap().lease, Some(lease));
    let mut deleted = Vec::new();
    while deleted.len() < 2 {
        match next_event(&mut w).await {
            WatchEvent::Delete { key, .. } => deleted.push(key),
            WatchEvent::Put(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    deleted.sort();
    assert_eq!(deleted, ["/lease/a", "/lease/b"]);
    assert_eq!(s.get("/lease/a").await.unwrap(), None);
    assert!(s.get("/lease/keep").await.unwrap().is_some());
    match s.keep_alive(lease).await {
        Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, lease),
        other => panic!("expected LeaseNotFound after expiry, got {other:?}"),
    }
}

pub async fn lease_keep_alive_keeps_keys(s: Arc<dyn Store>) {
    let ttl = 2;
    let lease = s.grant_lease(ttl).await.unwrap();
    s.put("/ka/a", b"x".to_vec(), Some(lease)).await.unwrap();
    // Keep it alive for three TTLs, refreshing well within each; the key must stay.
    let until = tokio::time::Instant::now() + Duration::from_secs(3 * ttl as u64);
    while tokio::time::Instant::now() < until {
        s.keep_alive(lease).await.unwrap();
        assert!(s.get("/ka/a").await.unwrap().is_some(), "key lost while its lease was kept alive");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Then stop refreshing: it must go.
    let mut w = s.watch("/ka/", 0).await.unwrap();
    wait_delete(&mut w, "/ka/a").await;
}

pub async fn lease_revoke_and_unknown_leases(s: Arc<dyn Store>) {
    let lease = s.grant_lease(600).await.unwrap();
    s.put("/rv/a", b"x".to_vec(), Some(lease)).await.unwrap();
    let mut w = s.watch("/rv/", 0).await.unwrap();
    s.revoke_lease(lease).await.unwrap();
    let rev = wait_delete(&mut w, "/rv/a").await;
    assert!(rev > 0);
    assert_eq!(s.get("/rv/a").await.unwrap(), None);
    let before = s.revision().await.unwrap();
    for result in [
        s.put("/rv/b", b"x".to_vec(), Some(lease)).await.map(|_| ()),
        s.keep_alive(lease).await,
        s.revoke_lease(lease).await,
    ] {
        match result {
            Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, lease),
            other => panic!("expected LeaseNotFound, got {other:?}"),
        }
    }
    assert_eq!(s.get("/rv/b").await.unwrap(), None, "a put with a dead lease writes nothing");
    assert_eq!(s.revision().await.unwrap(), before);
}

pub async fn update_keeps_lease(s: Arc<dyn Store>) {
    let lease = s.grant_lease(600).await.unwrap();
    let r = s.put("/ul/a", b"1".to_vec(), Some(lease)).await.unwrap();
    s.update("/ul/a", b"2".to_vec(), r).await.unwrap();
    assert_eq!(s.get("/ul/a").await.unwrap().unwrap().lease, Some(lease));
    // A plain put detaches the key from its lease (etcd semantics).
    s.put("/ul/b", b"1".to_vec(), Some(lease)).await.unwrap();
    s.put("/ul/b", b"2".to_vec(), None).await.unwrap();
    s.revoke_lease(lease).await.unwrap();
    assert_eq!(s.get("/ul/a").await.unwrap(), None, "updated key went with its lease");
    assert!(s.get("/ul/b").await.unwrap().is_some(), "detached key stayed");
}

pub async fn concurrent_writers_are_totally_ordered(s: Arc<dyn Store>) {
    const WRITERS: usize = 4;
    const EACH: usize = 40;
    let mut w = s.watch("/cw/", 0).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..WRITERS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..EACH {
                revs.push(s.put(&format!("/cw/{t}"), format!("{i}").into_bytes(), None).await.unwrap());
            }
            revs
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked.sort();
    let mut seen = Vec::new();
    let mut last_value = [None; WRITERS];
    while seen.len() < WRITERS * EACH {
        let ev = next_event(&mut w).await;
        let (key, value) = put_of(&ev);
        let writer: usize = key.trim_start_matches("/cw/").parse().unwrap();
        let value: usize = std::str::from_utf8(value).unwrap().parse().unwrap();
        // Each writer's own puts arrive in the order it made them.
        assert_eq!(last_value[writer].map_or(0, |v: usize| v + 1), value);
        last_value[writer] = Some(value);
        seen.push(ev.revision().unwrap());
    }
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "revisions strictly increase");
    assert_eq!(seen, acked, "the watcher saw exactly the acknowledged writes");
}

pub async fn slow_watcher_misses_nothing(s: Arc<dyn Store>) {
    const N: usize = 1500;
    let mut w = s.watch("/slow/", 0).await.unwrap();
    // The watcher reads nothing while all the writes happen.
    for i in 0..N {
        s.put(&format!("/slow/{}", i % 7), format!("{i}").into_bytes(), None).await.unwrap();
    }
    for i in 0..N {
        match next_event(&mut w).await {
            WatchEvent::Put(kv) => assert_eq!(kv.value, format!("{i}").into_bytes(), "event {i}"),
            WatchEvent::Relist { .. } => panic!("relist at event {i} though no history was compacted"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

pub async fn txn_applies_everything_at_one_revision(s: Arc<dyn Store>) {
    let r_c = s.put("/tx/c", b"old".to_vec(), None).await.unwrap();
    let mut w = s.watch("/tx/", 0).await.unwrap();
    let txn = Txn::new()
        .compare("/tx/a", 0)
        .compare("/tx/c", r_c)
        .put("/tx/a", b"1".to_vec())
        .put("/tx/b", b"2".to_vec())
        .delete("/tx/c")
        .delete("/tx/never-existed");
    let rev = s.txn(txn).await.unwrap();
    assert!(rev > r_c);
    assert_eq!(s.get("/tx/a").await.unwrap().unwrap().mod_revision, rev);
    assert_eq!(s.get("/tx/b").await.unwrap().unwrap().value, b"2");
    assert_eq!(s.get("/tx/c").await.unwrap(), None);
    assert_eq!(s.revision().await.unwrap(), rev, "one revision for the whole transaction");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = next_event(&mut w).await;
        assert_eq!(ev.revision(), Some(rev));
        seen.push(ev.key().unwrap().to_owned());
    }
    seen.sort();
    assert_eq!(seen, ["/tx/a", "/tx/b", "/tx/c"]);
    // A transaction of compares only writes nothing and returns the current revision.
    assert_eq!(s.txn(Txn::new().compare("/tx/a", rev)).await.unwrap(), rev);
}

pub async fn txn_is_all_or_nothing(s: Arc<dyn Store>) {
    let r_a = s.put("/ty/a", b"a".to_vec(), None).await.unwrap();
    let r_b = s.put("/ty/b", b"b".to_vec(), None).await.unwrap();
    let before = s.revision().await.unwrap();
    let txn = Txn::new()
        .compare("/ty/a", r_a)
        .compare("/ty/b", r_a) // stale
        .put("/ty/a", b"changed".to_vec())
        .put("/ty/new", b"x".to_vec());
    match s.txn(txn).await {
        Err(StoreError::Conflict { key, expected, actual }) => {
            assert_eq!((key.as_str(), expected, actual), ("/ty/b", r_a, r_b))
        }
        other => panic!("expected Conflict on /ty/b, got {other:?}"),
    }
    match s.txn(Txn::new().compare("/ty/a", 0).put("/ty/new", b"x".to_vec())).await {
        Err(StoreError::Conflict { key, actual, .. }) => assert_eq!((key.as_str(), actual), ("/ty/a", r_a)),
        other => panic!("expected Conflict on /ty/a, got {other:?}"),
    }
    assert_eq!(s.get("/ty/a").await.unwrap().unwrap().value, b"a");
    assert_eq!(s.get("/ty/new").await.unwrap(), None);
    assert_eq!(s.revision().await.unwrap(), before, "a refused transaction writes nothing");
    let too_big = (0..=crate::MAX_TXN_OPS).fold(Txn::new(), |t, i| t.put(format!("/ty/{i}"), vec![]));
    assert!(matches!(s.txn(too_big).await, Err(StoreError::TxnTooLarge(_))));
}

/// A compare guards a key the transaction does not write: the multi-key guard the NB builds on
/// (an object write that also compares what it was decided from). Two transactions decided from
/// the same reads of two keys, each writing a different one of them, never both commit, however
/// they race; nor do two that each require a third key to be absent while creating it.
pub async fn txn_guards_keys_it_only_reads(s: Arc<dyn Store>) {
    let r_g = s.put("/tg/guard", b"1".to_vec(), None).await.unwrap();
    let r_g2 = s.put("/tg/guard", b"2".to_vec(), None).await.unwrap();
    match s.txn(Txn::new().compare("/tg/guard", r_g).put("/tg/x", b"x".to_vec())).await {
        Err(StoreError::Conflict { key, expected, actual }) => {
            assert_eq!((key.as_str(), expected, actual), ("/tg/guard", r_g, r_g2))
        }
        other => panic!("expected Conflict on the guard, got {other:?}"),
    }
    assert_eq!(s.get("/tg/x").await.unwrap(), None);
    s.txn(Txn::new().compare("/tg/guard", r_g2).put("/tg/x", b"x".to_vec())).await.unwrap();
    assert_eq!(s.get("/tg/guard").await.unwrap().unwrap().mod_revision, r_g2, "a guard is not written");

    for round in 0..20 {
        let (a, b) = (format!("/tg/{round}/a"), format!("/tg/{round}/b"));
        let ra = s.put(&a, b"0".to_vec(), None).await.unwrap();
        let rb = s.put(&b, b"0".to_vec(), None).await.unwrap();
        // Write skew: each side writes one key, guarding both.
        let side = |own: &str, flag: String| {
            let (s, txn) = (
                s.clone(),
                Txn::new().compare(&a, ra).compare(&b, rb).put(own, b"1".to_vec()).put(flag, vec![]),
            );
            tokio::spawn(async move { s.txn(txn).await })
        };
        let t1 = side(&a, format!("/tg/{round}/won-a"));
        let t2 = side(&b, format!("/tg/{round}/won-b"));
        let results = [t1.await.unwrap(), t2.await.unwrap()];
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: exactly one side commits: {results:?}");
        assert!(results.iter().any(|r| matches!(r, Err(StoreError::Conflict { .. }))), "{results:?}");
        let flags = s.list(&format!("/tg/{round}/won-")).await.unwrap().items.len();
        assert_eq!(flags, 1, "round {round}: the loser wrote nothing");
        // Claims: both require /claim absent while creating it, each also writing its own key.
        let claim = format!("/tg/{round}/claim");
        let claimer = |who: &'static str| {
            let txn = Txn::new()
                .compare(&claim, 0)
                .put(&claim, who.as_bytes().to_vec())
                .put(format!("/tg/{round}/by-{who}"), vec![]);
            let s = s.clone();
            tokio::spawn(async move { s.txn(txn).await })
        };
        let (c1, c2) = (claimer("one"), claimer("two"));
        let results = [c1.await.unwrap(), c2.await.unwrap()];
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "round {round}: {results:?}");
        assert_eq!(s.list(&format!("/tg/{round}/by-")).await.unwrap().items.len(), 1);
    }
}
