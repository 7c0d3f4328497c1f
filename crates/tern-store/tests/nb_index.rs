//! The NB's port index and address allocation (`tern_store::nb`, its `index` and `ipam` parts)
//! on every backend (memory, redb, a real etcd):
//! * addresses: the first ports of a fresh subnet get its lowest addresses in order, pools are
//!   respected (in their order), a released address is given again once the cursor wraps around,
//!   a full subnet is `Exhausted`, concurrent creators never share an address, and creating a
//!   port lists nothing (its cost does not grow with the network);
//! * the index: entries follow creates, moves and deletes; pages in id order (forward and
//!   backward, of every port or of one value) cover every port once; a store without entries
//!   (from before the index) is rebuilt, also while writers change ports.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use tern_model::{Kind, Object, Port};
use tern_store::nb::{Nb, NbError, PortField, PortSource, PORT_INDEX_MARKER, PORT_INDEX_PREFIX};
use tern_store::testing::{EtcdServer, Observed};
use tern_store::{LocalStore, Store};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn network(nb: &Nb) -> String {
    nb.put_json(Kind::Network, r#"{"name":"n"}"#).await.unwrap().object.id().to_owned()
}

async fn subnet(nb: &Nb, net: &str, cidr: &str, gateway: &str, pools: &str) -> String {
    let json = format!(
        r#"{{"network_id":"{net}","ip_version":4,"cidr":"{cidr}","gateway_ip":"{gateway}","allocation_pools":{pools}}}"#
    );
    nb.put_json(Kind::Subnet, &json).await.unwrap().object.id().to_owned()
}

fn as_port(o: Object) -> Port {
    match o {
        Object::Port(p) => p,
        other => panic!("not a port: {other:?}"),
    }
}

/// A port on `sub` whose address the NB picks.
async fn auto_port(nb: &Nb, net: &str, sub: &str) -> std::result::Result<Port, NbError> {
    let json = format!(r#"{{"network_id":"{net}","fixed_ips":[{{"subnet_id":"{sub}"}}]}}"#);
    nb.put_json(Kind::Port, &json).await.map(|s| as_port(s.object))
}

fn address(p: &Port) -> IpAddr {
    p.fixed_ips[0].ip_address.expect("an address")
}

/// Lowest first, in order; pools in their order; the cursor moves on past released addresses and
/// finds them again after wrapping around; a full subnet is exhausted; explicit addresses are
/// skipped.
async fn allocation_order_pools_and_exhaustion(store: Arc<dyn Store>) {
    let nb = Nb::new(store);
    let net = network(&nb).await;
    let sub = subnet(&nb, &net, "10.5.0.0/24", "10.5.0.1", "[]").await;
    let mut ports = Vec::new();
    for _ in 0..5 {
        ports.push(auto_port(&nb, &net, &sub).await.unwrap());
    }
    let got: Vec<IpAddr> = ports.iter().map(address).collect();
    assert_eq!(got, ["10.5.0.2", "10.5.0.3", "10.5.0.4", "10.5.0.5", "10.5.0.6"].map(ip));
    nb.delete(Kind::Port, &ports[1].id).await.unwrap();
    // An explicit address ahead of the cursor is skipped over.
    let json =
        format!(r#"{{"network_id":"{net}","fixed_ips":[{{"subnet_id":"{sub}","ip_address":"10.5.0.7"}}]}}"#);
    nb.put_json(Kind::Port, &json).await.unwrap();
    assert_eq!(address(&auto_port(&nb, &net, &sub).await.unwrap()), ip("10.5.0.8"), "on past the cursor");

    // Pools in their order, exhaustion, reuse after wrapping around.
    let sub = subnet(
        &nb,
        &net,
        "10.6.0.0/28",
        "10.6.0.1",
        r#"[{"start":"10.6.0.10","end":"10.6.0.11"},{"start":"10.6.0.4","end":"10.6.0.5"}]"#,
    )
    .await;
    let mut ports = Vec::new();
    for _ in 0..4 {
        ports.push(auto_port(&nb, &net, &sub).await.unwrap());
    }
    let got: Vec<IpAddr> = ports.iter().map(address).collect();
    assert_eq!(got, ["10.6.0.10", "10.6.0.11", "10.6.0.4", "10.6.0.5"].map(ip));
    match auto_port(&nb, &net, &sub).await {
        Err(NbError::Exhausted { what }) => assert!(what.starts_with("IP address in subnet"), "{what}"),
        other => panic!("a full subnet must be exhausted: {other:?}"),
    }
    nb.delete(Kind::Port, &ports[1].id).await.unwrap();
    assert_eq!(address(&auto_port(&nb, &net, &sub).await.unwrap()), ip("10.6.0.11"), "found again");
    assert!(matches!(auto_port(&nb, &net, &sub).await, Err(NbError::Exhausted { .. })));

    // The cursors go with their subnets (with the network too).
    for p in nb.list(Kind::Port).await.unwrap().0 {
        nb.delete(Kind::Port, p.object.id()).await.unwrap();
    }
    nb.delete(Kind::Network, &net).await.unwrap();
    let left = nb.store().list("/tern/index/").await.unwrap().items;
    assert!(left.iter().all(|kv| kv.key.starts_with("/tern/index/usage/")), "nothing left behind: {left:?}");
}

/// Eight concurrent creators in one subnet: every port gets an address of the pool, no address
/// twice, and then the subnet is exactly full.
async fn concurrent_creators_get_distinct_addresses(store: Arc<dyn Store>) {
    let nb = Nb::new(store);
    let net = network(&nb).await;
    // 10.7.0.20 - 10.7.0.139: 120 addresses for 8 x 15 ports.
    let sub =
        subnet(&nb, &net, "10.7.0.0/24", "10.7.0.1", r#"[{"start":"10.7.0.20","end":"10.7.0.139"}]"#).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (nb, net, sub) = (nb.clone(), net.clone(), sub.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..15 {
                got.push(address(&auto_port(&nb, &net, &sub).await.expect("a free address")));
            }
            got
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for a in t.await.unwrap() {
            assert!(seen.insert(a), "{a} handed out twice");
            let n = u32::from(match a {
                IpAddr::V4(v4) => v4,
                IpAddr::V6(_) => panic!("{a}"),
            });
            assert!(
                (u32::from(ip4("10.7.0.20"))..=u32::from(ip4("10.7.0.139"))).contains(&n),
                "{a} is outside the pool"
            );
        }
    }
    assert_eq!(seen.len(), 120);
    assert!(matches!(auto_port(&nb, &net, &sub).await, Err(NbError::Exhausted { .. })));
}

fn ip4(s: &str) -> std::net::Ipv4Addr {
    s.parse().unwrap()
}

/// Creating a port lists nothing (no claims of the network, no ports): its reads do not grow
/// with the network.
async fn port_creation_lists_nothing(store: Arc<dyn Store>) {
    let counting = Observed::new(store);
    let nb = Nb::new(counting.clone());
    let net = network(&nb).await;
    let sub = subnet(&nb, &net, "10.8.0.0/16", "10.8.0.1", "[]").await;
    let mut reads = Vec::new();
    for i in 0..300 {
        counting.take_reads();
        auto_port(&nb, &net, &sub).await.unwrap();
        let (listed, keys) = counting.take_reads();
        let growing: Vec<&String> = listed
            .iter()
            .filter(|p| p.starts_with("/tern/index/network/") || p.starts_with("/tern/v1/"))
            .collect();
        // The first write of a project may count its usage once; none lists the network's claims.
        assert!(growing.is_empty() || i == 0, "port {i} listed {growing:?}");
        reads.push(keys);
    }
    let (first, last) = (reads[1..51].iter().sum::<usize>(), reads[250..].iter().sum::<usize>());
    assert!(last <= first + 50, "keys read per create grow with the network: {first} -> {last} per 50");
}

/// Entries follow the ports; pages in id order cover every port once, forward and backward.
async fn index_follows_ports_and_pages(store: Arc<dyn Store>) {
    let nb = Nb::new(store);
    let (n1, n2) = (network(&nb).await, network(&nb).await);
    let devices = ["vm-1", "a/b c%", "", "vm-2"];
    let mut ids = Vec::new();
    for i in 0..23 {
        let net = if i % 3 == 0 { &n2 } else { &n1 };
        let json = format!(r#"{{"network_id":"{net}","device_id":"{}"}}"#, devices[i % devices.len()]);
        ids.push(nb.put_json(Kind::Port, &json).await.unwrap().object.id().to_owned());
    }
    let ports: Vec<Port> =
        nb.list(Kind::Port).await.unwrap().0.into_iter().map(|s| as_port(s.object)).collect();
    let scan = |field: PortField, value: &str| -> Vec<String> {
        ports.iter().filter(|p| field.of(p) == value).map(|p| p.id.clone()).collect()
    };
    let by = |v: Vec<tern_store::nb::Stored>| -> Vec<String> {
        v.iter().map(|s| s.object.id().to_owned()).collect()
    };
    for (field, value) in [
        (PortField::NetworkId, n1.as_str()),
        (PortField::NetworkId, n2.as_str()),
        (PortField::NetworkId, "none"),
        (PortField::DeviceId, "vm-1"),
        (PortField::DeviceId, "a/b c%"),
        (PortField::DeviceId, ""),
        (PortField::DeviceId, "vm"),
    ] {
        assert_eq!(by(nb.ports_by(field, value).await.unwrap()), scan(field, value), "{field:?} {value:?}");
    }
    // A move between devices and a delete.
    let mut moved = ports.iter().find(|p| p.device_id == "vm-1").unwrap().clone();
    moved.device_id = "vm-2".into();
    nb.put(Object::Port(moved.clone())).await.unwrap();
    assert!(!by(nb.ports_by(PortField::DeviceId, "vm-1").await.unwrap()).contains(&moved.id));
    assert!(by(nb.ports_by(PortField::DeviceId, "vm-2").await.unwrap()).contains(&moved.id));
    nb.delete(Kind::Port, &moved.id).await.unwrap();
    assert!(!by(nb.ports_by(PortField::DeviceId, "vm-2").await.unwrap()).contains(&moved.id));
    let entries = nb.store().list(PORT_INDEX_PREFIX).await.unwrap().items;
    assert_eq!(entries.len(), 2 * 22, "two entries per port");

    // Pages of 5, forward and backward, of every port and of one network.
    let all: Vec<String> =
        nb.list(Kind::Port).await.unwrap().0.iter().map(|s| s.object.id().to_owned()).collect();
    let of_n1: Vec<String> = by(nb.ports_by(PortField::NetworkId, &n1).await.unwrap());
    for (source, expected) in [(PortSource::All, &all), (PortSource::By(PortField::NetworkId, &n1), &of_n1)] {
        let (mut forward, mut marker) = (Vec::new(), None::<String>);
        loop {
            let page = nb.port_page(source, marker.as_deref(), 5, false).await.unwrap();
            assert!(page.ids.len() <= 5);
            forward.extend(page.ports.iter().map(|s| s.object.id().to_owned()));
            match page.ids.last() {
                Some(last) if page.ids.len() == 5 => marker = Some(last.clone()),
                _ => break,
            }
        }
        assert_eq!(&forward, expected, "{source:?} forward");
        let (mut backward, mut marker) = (Vec::new(), None::<String>);
        loop {
            let page = nb.port_page(source, marker.as_deref(), 5, true).await.unwrap();
            let mut ids: Vec<String> = page.ports.iter().map(|s| s.object.id().to_owned()).collect();
            ids.extend(backward);
            backward = ids;
            match page.ids.first() {
                Some(first) if page.ids.len() == 5 => marker = Some(first.clone()),
                _ => break,
            }
        }
        assert_eq!(&backward, expected, "{source:?} backward");
    }
}

/// A store from before the index: ports without entries, a stale entry, no marker. The index
/// is rebuilt (while writers create, move and delete ports) and then matches the ports exactly.
async fn rebuild_on_an_old_store(store: Arc<dyn Store>) {
    let nb = Nb::new(store.clone());
    let net = network(&nb).await;
    for i in 0..150 {
        let json = format!(r#"{{"network_id":"{net}","device_id":"vm-{}"}}"#, i % 10);
        nb.put_json(Kind::Port, &json).await.unwrap();
    }
    // Make it old: no entries, no marker; and a stale entry of a port that is not there.
    for kv in store.list(PORT_INDEX_PREFIX).await.unwrap().items {
        store.delete(&kv.key).await.unwrap();
    }
    store.delete(PORT_INDEX_MARKER).await.unwrap();
    store.put(&format!("{PORT_INDEX_PREFIX}device_id/vm-1/gone-port"), Vec::new(), None).await.unwrap();
    let fresh = Nb::new(store.clone());
    assert!(!fresh.port_index_ready().await.unwrap());

    // Writers change ports while the index is rebuilt.
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (nb, net) = (Nb::new(store.clone()), net.clone());
            tokio::spawn(async move {
                for i in 0..20 {
                    let json = format!(r#"{{"network_id":"{net}","device_id":"w{w}-{}"}}"#, i % 3);
                    let p = as_port(nb.put_json(Kind::Port, &json).await.unwrap().object);
                    if i % 2 == 0 {
                        nb.delete(Kind::Port, &p.id).await.unwrap();
                    } else {
                        let mut moved = p.clone();
                        moved.device_id = format!("moved-{w}");
                        nb.put(Object::Port(moved)).await.unwrap();
                    }
                }
            })
        })
        .collect();
    let build = fresh.ensure_port_index().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    assert!(build.built);
    assert!(build.written >= 2 * 150, "{build:?}");
    assert!(build.deleted >= 1, "{build:?}");
    assert!(fresh.port_index_ready().await.unwrap());
    assert!(!fresh.ensure_port_index().await.unwrap().built, "built once");

    // Exactly the entries of the ports there are.
    let ports: Vec<Port> =
        nb.list(Kind::Port).await.unwrap().0.into_iter().map(|s| as_port(s.object)).collect();
    assert_eq!(ports.len(), 150 + 3 * 10);
    let wanted: BTreeSet<String> = ports.iter().flat_map(tern_store::nb::port_index_keys).collect();
    let held: BTreeSet<String> =
        store.list(PORT_INDEX_PREFIX).await.unwrap().items.into_iter().map(|kv| kv.key).collect();
    assert_eq!(held, wanted);
    let vm1: Vec<String> = fresh
        .ports_by(PortField::DeviceId, "vm-1")
        .await
        .unwrap()
        .iter()
        .map(|s| s.object.id().to_owned())
        .collect();
    assert_eq!(vm1.len(), 15);
}

async fn memory() -> (Arc<dyn Store>, Box<dyn std::any::Any>) {
    (Arc::new(LocalStore::memory().unwrap()), Box::new(()))
}

async fn redb() -> (Arc<dyn Store>, Box<dyn std::any::Any>) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open_redb(dir.path().join("nb.redb")).unwrap();
    (Arc::new(store), Box::new(dir))
}

async fn etcd() -> (Arc<dyn Store>, Box<dyn std::any::Any>) {
    let server = tokio::task::spawn_blocking(EtcdServer::start).await.unwrap().expect("start etcd");
    let store = tern_store::etcd::EtcdStore::connect(&[server.endpoint()]).await.expect("connect to etcd");
    (Arc::new(store), Box::new(server))
}

macro_rules! on_every_backend {
    ($($case:ident),*) => {
        mod memory { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { let (s, _g) = super::memory().await; super::$case(s).await; }
        )* }
        mod redb { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { let (s, _g) = super::redb().await; super::$case(s).await; }
        )* }
        mod etcd { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { let (s, _g) = super::etcd().await; super::$case(s).await; }
        )* }
    };
}

on_every_backend!(
    allocation_order_pools_and_exhaustion,
    concurrent_creators_get_distinct_addresses,
    port_creation_lists_nothing,
    index_follows_ports_and_pages,
    rebuild_on_an_old_store
);
