//! Store benchmarks on the embedded redb backend and a real etcd (and memory, as a floor):
//! put, get, list of 10,000 objects, and the fan-out of one write to 100 watchers.
//! Run with `make bench` (or `cargo bench -p tern-store`); `TERN_BENCH_BACKENDS=redb,etcd` narrows.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::sync::Arc;
use std::time::Duration;
use tern_store::testing::EtcdServer;
use tern_store::{LocalStore, Store, WatchEvent};

const OBJECTS: usize = 10_000;
const WATCHERS: usize = 100;

/// A network object as the NB stores it (about 400 bytes of JSON).
fn network_json(i: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"{i:08x}-5b1c-4c9e-9d4e-3a2f1c0e{i:04x}","name":"net-{i}","description":"","project_id":"bench","admin_state_up":true,"status":"ACTIVE","shared":false,"mtu":1442,"segmentation_id":{i},"unique_key":{i},"port_security_enabled":true,"subnets":[],"revision_number":1,"created_at":"2026-11-24T00:00:00Z","updated_at":"2026-11-24T00:00:00Z"}}"#
    )
    .into_bytes()
}

struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    _guard: Box<dyn std::any::Any>,
}

fn backends(rt: &tokio::runtime::Runtime) -> Vec<Backend> {
    let wanted = std::env::var("TERN_BENCH_BACKENDS").unwrap_or_else(|_| "memory,redb,etcd".into());
    let mut out = Vec::new();
    for name in wanted.split(',') {
        let _enter = rt.enter();
        let backend = match name {
            "memory" => Backend {
                name: "memory",
                store: Arc::new(LocalStore::memory().unwrap()),
                _guard: Box::new(()),
            },
            "redb" => {
                let dir = tempfile::tempdir().unwrap();
                let store = LocalStore::open_redb(dir.path().join("nb.redb")).unwrap();
                Backend { name: "redb", store: Arc::new(store), _guard: Box::new(dir) }
            }
            "etcd" => {
                let server = EtcdServer::start().expect("start etcd");
                let store = rt.block_on(tern_store::etcd::EtcdStore::connect(&[server.endpoint()])).unwrap();
                Backend { name: "etcd", store: Arc::new(store), _guard: Box::new(server) }
            }
            other => panic!("unknown backend {other:?} in TERN_BENCH_BACKENDS"),
        };
        out.push(backend);
    }
    out
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for b in backends(&rt) {
        let store = b.store.clone();
        eprintln!("{}: loading {OBJECTS} objects", b.name);
        rt.block_on(async {
            // Load with a few concurrent writers so the setup itself does not take minutes on fsync.
            let mut tasks = Vec::new();
            for w in 0..8 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    for i in (w..OBJECTS).step_by(8) {
                        store.put(&format!("/tern/v1/network/{i:06}"), network_json(i), None).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });

        let mut group = c.benchmark_group(format!("store/{}", b.name));
        group.sample_size(30).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));

        let mut i = 0usize;
        group.throughput(Throughput::Elements(1));
        group.bench_function("put", |bench| {
            bench.to_async(&rt).iter(|| {
                i += 1;
                let store = store.clone();
                async move { store.put(&format!("/bench/put/{}", i % 1000), network_json(i), None).await.unwrap() }
            })
        });
        let mut j = 0usize;
        group.bench_function("get", |bench| {
            bench.to_async(&rt).iter(|| {
                j = (j + 7919) % OBJECTS;
                let store = store.clone();
                async move { store.get(&format!("/tern/v1/network/{j:06}")).await.unwrap().unwrap() }
            })
        });
        group.throughput(Throughput::Elements(OBJECTS as u64));
        group.sample_size(10);
        group.bench_function(BenchmarkId::new("list", OBJECTS), |bench| {
            bench.to_async(&rt).iter(|| {
                let store = store.clone();
                async move {
                    let listing = store.list("/tern/v1/network/").await.unwrap();
                    assert_eq!(listing.items.len(), OBJECTS);
                    listing
                }
            })
        });

        // One put, delivered to 100 watchers: time until the last one has it.
        let mut watches = rt.block_on(async {
            let mut ws = Vec::new();
            for _ in 0..WATCHERS {
                ws.push(store.watch("/bench/fan/", 0).await.unwrap());
            }
            ws
        });
        group.throughput(Throughput::Elements(WATCHERS as u64));
        group.sample_size(20);
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new("watch_fanout", WATCHERS), |bench| {
            bench.iter(|| {
                k += 1;
                rt.block_on(async {
                    let rev = store.put("/bench/fan/x", network_json(k), None).await.unwrap();
                    let waits = watches.iter_mut().map(|w| async move {
                        match w.next().await {
                            Some(Ok(WatchEvent::Put(kv))) => assert_eq!(kv.mod_revision, rev),
                            other => panic!("unexpected {other:?}"),
                        }
                    });
                    futures::future::join_all(waits).await;
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
