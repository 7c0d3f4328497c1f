//! The NB layer's guarantees that span objects: unique IPs and MACs within a network (also under
//! concurrent writers, on memory and on a real etcd), no overlapping subnets, and deletes that
//! refuse to strand other objects.

use std::collections::HashSet;
use std::sync::Arc;
use tern_model::{Kind, Object};
use tern_store::nb::{Nb, NbError};
use tern_store::testing::EtcdServer;
use tern_store::{LocalStore, Store};

async fn network_and_subnet(nb: &Nb, cidr: &str) -> (String, String) {
    let net = nb.put_json(Kind::Network, r#"{"name":"n"}"#).await.unwrap();
    let net_id = net.object.id().to_owned();
    let sub = nb
        .put_json(Kind::Subnet, &format!(r#"{{"network_id":"{net_id}","ip_version":4,"cidr":"{cidr}"}}"#))
        .await
        .unwrap();
    (net_id, sub.object.id().to_owned())
}

fn port_ips(object: &Object) -> Vec<String> {
    match object {
        Object::Port(p) => p.fixed_ips.iter().filter_map(|f| f.ip_address).map(|ip| ip.to_string()).collect(),
        _ => panic!("not a port"),
    }
}

async fn uniqueness_and_integrity(store: Arc<dyn Store>) {
    let nb = Nb::new(store);
    let (net, sub) = network_and_subnet(&nb, "10.0.0.0/24").await;
    let p1 = nb
        .put_json(Kind::Port, &format!(r#"{{"network_id":"{net}","fixed_ips":[{{"subnet_id":"{sub}","ip_address":"10.0.0.5"}}],"mac_address":"fa:16:3e:00:00:05"}}"#))
        .await
        .unwrap();
    // The same IP, or the same MAC, on the same network: refused, naming the owner.
    let err = nb
        .put_json(
            Kind::Port,
            &format!(
                r#"{{"network_id":"{net}","fixed_ips":[{{"subnet_id":"{sub}","ip_address":"10.0.0.5"}}]}}"#
            ),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NbError::Duplicate { field, value, other, .. } if field == "fixed_ips" && value == "10.0.0.5" && other == p1.object.id()),
        "{err}"
    );
    let err = nb
        .put_json(Kind::Port, &format!(r#"{{"network_id":"{net}","mac_address":"fa:16:3e:00:00:05"}}"#))
        .await
        .unwrap_err();
    assert!(matches!(&err, NbError::Duplicate { field, .. } if field == "mac_address"), "{err}");
    // Automatic allocation skips the taken address.
    let p2 = nb
        .put_json(Kind::Port, &format!(r#"{{"network_id":"{net}","fixed_ips":[{{"subnet_id":"{sub}"}}]}}"#))
        .await
        .unwrap();
    assert_ne!(port_ips(&p2.object), ["10.0.0.5"]);
    // Overlapping subnets on one network are refused.
    let err = nb
        .put_json(Kind::Subnet, &format!(r#"{{"network_id":"{net}","ip_version":4,"cidr":"10.0.0.128/25"}}"#))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NbError::Duplicate { field, other, .. } if field == "cidr" && *other == sub),
        "{err}"
    );
    // Deletes that would strand ports are refused; nothing changes.
    assert!(matches!(nb.delete(Kind::Network, &net).await, Err(NbError::InUse { by_kind: Kind::Port, .. })));
    assert!(matches!(nb.delete(Kind::Subnet, &sub).await, Err(NbError::InUse { by_kind: Kind::Port, .. })));
    // Moving p1 to another IP frees 10.0.0.5 for others.
    let mut moved = match p1.object.clone() {
        Object::Port(p) => p,
        _ => unreachable!(),
    };
    moved.fixed_ips[0].ip_address = Some("10.0.0.6".parse().unwrap());
    if port_ips(&p2.object) == ["10.0.0.6"] {
        moved.fixed_ips[0].ip_address = Some("10.0.0.7".parse().unwrap());
    }
    nb.put(Object::Port(moved)).await.unwrap();
    let p3 = nb
        .put_json(
            Kind::Port,
            &format!(
                r#"{{"network_id":"{net}","fixed_ips":[{{"subnet_id":"{sub}","ip_address":"10.0.0.5"}}]}}"#
            ),
        )
        .await
        .unwrap();
    // Deleting every port frees the network; deleting it takes its subnet along.
    for p in [p1.object.id(), p2.object.id(), p3.object.id()] {
        nb.delete(Kind::Port, p).await.unwrap();
    }
    nb.delete(Kind::Network, &net).await.unwrap();
    assert!(nb.get(Kind::Subnet, &sub).await.unwrap().is_none());
    assert!(nb.store().list("/tern/index/").await.unwrap().items.is_empty(), "no claim left behind");
}

async fn concurrent_ports_get_distinct_addresses(store: Arc<dyn Store>) {
    let nb = Nb::new(store);
    // A /27 has 29 usable addresses besides the gateway-less ends; 24 ports race for them.
    let (net, sub) = network_and_subnet(&nb, "10.1.0.0/27").await;
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let nb = nb.clone();
        let json = format!(r#"{{"network_id":"{net}","fixed_ips":[{{"subnet_id":"{sub}"}}]}}"#);
        tasks.push(tokio::spawn(async move { nb.put_json(Kind::Port, &json).await }));
    }
    let mut ips = HashSet::new();
    for t in tasks {
        let port = t.await.unwrap().expect("every port gets an address");
        for ip in port_ips(&port.object) {
            assert!(ips.insert(ip.clone()), "{ip} handed out twice");
        }
    }
    assert_eq!(ips.len(), 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_uniqueness_and_integrity() {
    uniqueness_and_integrity(Arc::new(LocalStore::memory().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_concurrent_ports_get_distinct_addresses() {
    concurrent_ports_get_distinct_addresses(Arc::new(LocalStore::memory().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_uniqueness_and_integrity_across_clients() {
    let etcd = tokio::task::spawn_blocking(EtcdServer::start).await.unwrap().unwrap();
    let store = tern_store::etcd::EtcdStore::connect(&[etcd.endpoint()]).await.unwrap();
    uniqueness_and_integrity(Arc::new(store)).await;
    // Two API servers = two clients of one cluster, racing for the same addresses.
    let a = tern_store::etcd::EtcdStore::connect(&[etcd.endpoint()]).await.unwrap();
    let nb_a = Nb::new(Arc::new(a));
    let (net, sub) = network_and_subnet(&nb_a, "10.2.0.0/27").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let endpoint = etcd.endpoint();
        let json = format!(r#"{{"network_id":"{net}","fixed_ips":[{{"subnet_id":"{sub}"}}]}}"#);
        tasks.push(tokio::spawn(async move {
            let store = tern_store::etcd::EtcdStore::connect(&[endpoint]).await.unwrap();
            let nb = Nb::new(Arc::new(store));
            nb.put_json(Kind::Port, &json).await
        }));
    }
    let mut ips = HashSet::new();
    for t in tasks {
        for ip in port_ips(&t.await.unwrap().unwrap().object) {
            assert!(ips.insert(ip.clone()), "{ip} handed out twice");
        }
    }
}

/// Writers that contradict each other never both win, on every backend: each write guards what
/// it was decided from (see `nb`'s module documentation). Rounds of two racing writers each.
async fn contradicting_writers_never_both_win(store: Arc<dyn Store>) {
    let nb = Nb::new(store);
    let spawn = |f: std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>| tokio::spawn(f);
    for round in 0..15 {
        // A port created while its network is deleted.
        let (net, _) = network_and_subnet(&nb, "10.0.0.0/24").await;
        let (a, b) = (nb.clone(), nb.clone());
        let port = format!(r#"{{"network_id":"{net}"}}"#);
        let n = net.clone();
        let created = spawn(Box::pin(async move { a.put_json(Kind::Port, &port).await.is_ok() }));
        let deleted = spawn(Box::pin(async move { b.delete(Kind::Network, &n).await.is_ok() }));
        let (created, deleted) = (created.await.unwrap(), deleted.await.unwrap());
        assert!(!(created && deleted), "round {round}: a port was created on a network deleted at once");
        if created {
            for p in nb.list(Kind::Port).await.unwrap().0 {
                nb.delete(Kind::Port, p.object.id()).await.unwrap();
            }
            nb.delete(Kind::Network, &net).await.unwrap();
        }

        // Two overlapping subnets on one network.
        let net = nb.put_json(Kind::Network, r#"{"name":"n"}"#).await.unwrap().object.id().to_owned();
        let subnet = |cidr: &str| {
            let (nb, json) =
                (nb.clone(), format!(r#"{{"network_id":"{net}","ip_version":4,"cidr":"{cidr}"}}"#));
            spawn(Box::pin(async move { nb.put_json(Kind::Subnet, &json).await.is_ok() }))
        };
        let (a, b) = (subnet("10.7.0.0/24"), subnet("10.7.0.0/16"));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert!(a != b, "round {round}: exactly one of two overlapping subnets is created ({a}, {b})");
        nb.delete(Kind::Network, &net).await.unwrap();

        // A port starting to use a security group deleted at once.
        let (net, _) = network_and_subnet(&nb, "10.0.0.0/24").await;
        let g = nb.put_json(Kind::SecurityGroup, r#"{"name":"g"}"#).await.unwrap().object.id().to_owned();
        let p = nb.put_json(Kind::Port, &format!(r#"{{"network_id":"{net}"}}"#)).await.unwrap().object;
        let mut with_group = match p.clone() {
            Object::Port(p) => p,
            _ => unreachable!(),
        };
        with_group.security_groups = vec![g.clone()];
        let (a, b, gid) = (nb.clone(), nb.clone(), g.clone());
        let updated = spawn(Box::pin(async move { a.put(Object::Port(with_group)).await.is_ok() }));
        let deleted = spawn(Box::pin(async move { b.delete(Kind::SecurityGroup, &gid).await.is_ok() }));
        let (updated, deleted) = (updated.await.unwrap(), deleted.await.unwrap());
        assert!(!(updated && deleted), "round {round}: a port took a group deleted at once");
        assert!(updated || deleted, "round {round}: one of them wins");
        nb.delete(Kind::Port, p.id()).await.unwrap();
        nb.delete(Kind::Network, &net).await.unwrap();
        if updated {
            nb.delete(Kind::SecurityGroup, &g).await.unwrap();
        }

        // A network asking for a VNI while another is given the next unique key (the same
        // number): never two networks on one VNI.
        let next = nb.put_json(Kind::Network, r#"{"name":"probe"}"#).await.unwrap().object;
        let vni = next.unique_key().unwrap() + 1;
        nb.delete(Kind::Network, next.id()).await.unwrap();
        let network = |json: String| {
            let nb = nb.clone();
            spawn(Box::pin(async move { nb.put_json(Kind::Network, &json).await.is_ok() }))
        };
        let (a, b) = (network(format!(r#"{{"segmentation_id":{vni}}}"#)), network(r#"{}"#.into()));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert!(b, "round {round}: a network without a VNI asked for is always created");
        let vnis: Vec<u32> = nb
            .list(Kind::Network)
            .await
            .unwrap()
            .0
            .iter()
            .filter_map(|s| match &s.object {
                Object::Network(n) => n.vni(),
                _ => None,
            })
            .collect();
        assert_eq!(vnis.len(), 1 + usize::from(a), "round {round}");
        assert!(vnis.len() < 2 || vnis[0] != vnis[1], "round {round}: two networks on VNI {}", vnis[0]);
        for n in nb.list(Kind::Network).await.unwrap().0 {
            nb.delete(Kind::Network, n.object.id()).await.unwrap();
        }
    }
    // A transaction's reads are guarded: a commit after what it read changed is a conflict.
    let net = nb.put_json(Kind::Network, r#"{"name":"n"}"#).await.unwrap().object;
    let tx = nb.tx();
    let seen = tx.fetch(Kind::Network, net.id()).await.unwrap();
    nb.put(net.clone()).await.unwrap(); // someone else writes it
    tx.put(Object::Network(match seen.object {
        Object::Network(mut n) => {
            n.name = "stale".into();
            n
        }
        _ => unreachable!(),
    }));
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, NbError::Conflict { kind: Kind::Network, .. }), "{err}");
    let name = match nb.fetch(Kind::Network, net.id()).await.unwrap().object {
        Object::Network(n) => n.name,
        _ => unreachable!(),
    };
    assert_eq!(name, "n", "the stale write changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_contradicting_writers_never_both_win() {
    contradicting_writers_never_both_win(Arc::new(LocalStore::memory().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_contradicting_writers_never_both_win() {
    let etcd = tokio::task::spawn_blocking(EtcdServer::start).await.unwrap().unwrap();
    let store = tern_store::etcd::EtcdStore::connect(&[etcd.endpoint()]).await.unwrap();
    contradicting_writers_never_both_win(Arc::new(store)).await;
}
