//! The NB's invariants ([`tern_api::invariants`]) under random concurrent operations: several
//! clients run random mixes of every operation that touches several objects or checks
//! references (ports, networks, subnets, security groups, router interfaces, floating IPs)
//! against one store, on memory and on redb; afterwards the store must hold no violation, and no
//! request may have failed with a 5xx. Also: the check finds the states the old races and crashes
//! left behind, and `repair` fixes the unambiguous ones.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use tern_api::invariants::{check, repair};
use tern_store::nb::Nb;
use tern_store::LocalStore;

/// One request of a client; object arguments pick from what exists when it runs (modulo).
#[derive(Clone, Debug)]
enum Op {
    CreateNetwork,
    DeleteNetwork(usize),
    CreateSubnet(usize, usize),
    DeleteSubnet(usize),
    CreatePort(usize),
    DeletePort(usize),
    PortGroups(usize, Option<usize>),
    CreateGroup,
    DeleteGroup(usize),
    RemoteRule(usize, usize),
    AddInterface(usize),
    RemoveInterface(usize),
    CreateFip(Option<usize>),
    AssociateFip(usize, Option<usize>),
    DeleteFip(usize),
    RouterGateway(bool),
}

/// CIDRs a subnet picks from: several overlap.
const CIDRS: [&str; 6] =
    ["10.7.0.0/24", "10.7.0.0/16", "10.7.1.0/24", "10.8.0.0/24", "10.8.0.0/23", "10.9.0.0/24"];

fn op() -> impl Strategy<Value = Op> {
    let i = 0usize..8;
    prop_oneof![
        1 => Just(Op::CreateNetwork),
        1 => i.clone().prop_map(Op::DeleteNetwork),
        1 => (i.clone(), 0..CIDRS.len()).prop_map(|(n, c)| Op::CreateSubnet(n, c)),
        1 => i.clone().prop_map(Op::DeleteSubnet),
        2 => i.clone().prop_map(Op::CreatePort),
        1 => i.clone().prop_map(Op::DeletePort),
        1 => (i.clone(), proptest::option::of(i.clone())).prop_map(|(p, g)| Op::PortGroups(p, g)),
        1 => Just(Op::CreateGroup),
        1 => i.clone().prop_map(Op::DeleteGroup),
        1 => (i.clone(), i.clone()).prop_map(|(a, b)| Op::RemoteRule(a, b)),
        2 => i.clone().prop_map(Op::AddInterface),
        2 => i.clone().prop_map(Op::RemoveInterface),
        1 => proptest::option::of(i.clone()).prop_map(Op::CreateFip),
        2 => (i.clone(), proptest::option::of(i.clone())).prop_map(|(f, p)| Op::AssociateFip(f, p)),
        1 => i.clone().prop_map(Op::DeleteFip),
        1 => any::<bool>().prop_map(Op::RouterGateway),
    ]
}

/// The ids the clients pick from (what was created; deleted ones stay, and then 404).
#[derive(Default)]
struct Pool {
    networks: Vec<String>,
    subnets: Vec<String>,
    ports: Vec<String>,
    groups: Vec<String>,
    fips: Vec<String>,
}

fn pick(v: &[String], i: usize) -> Option<String> {
    (!v.is_empty()).then(|| v[i % v.len()].clone())
}

struct World {
    s: Server,
    pool: Mutex<Pool>,
    router: String,
    external: String,
}

fn id(v: &Value) -> Option<String> {
    v["id"].as_str().map(str::to_string)
}

impl World {
    async fn new(nb: Nb) -> World {
        let s = start_with(nb, None).await;
        let ext = s.external_network("public").await;
        s.subnet(&ext, "172.24.0.0/16").await;
        let external = id(&ext).unwrap();
        let router = id(&s
            .create(
                "routers",
                "router",
                json!({"name": "r", "external_gateway_info": {"network_id": external}}),
            )
            .await)
        .unwrap();
        let mut pool = Pool::default();
        for (n, cidr) in [("a", "10.1.0.0/24"), ("b", "10.2.0.0/24")] {
            let net = s.network(n).await;
            pool.subnets.push(id(&s.subnet(&net, cidr).await).unwrap());
            pool.networks.push(id(&net).unwrap());
        }
        let (st, v) = s
            .put(
                &format!("/v2.0/routers/{router}/add_router_interface"),
                json!({"subnet_id": pool.subnets[0]}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        pool.groups
            .push(id(&s.create("security-groups", "security_group", json!({"name": "g"})).await).unwrap());
        World { s, pool: Mutex::new(pool), router, external }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap()
    }

    /// Runs one op; returns (what, status) of its request, `None` when it had nothing to act on.
    async fn run(&self, op: &Op) -> Option<(String, u16, Value)> {
        let s = &self.s;
        let r = &self.router;
        let got = match op {
            Op::CreateNetwork => {
                let got = s.post("/v2.0/networks", json!({"network": {"name": "x"}})).await;
                if let Some(i) = id(&got.1["network"]) {
                    self.pool().networks.push(i);
                }
                got
            }
            Op::DeleteNetwork(i) => {
                let n = pick(&self.pool().networks, *i)?;
                s.delete(&format!("/v2.0/networks/{n}")).await
            }
            Op::CreateSubnet(i, c) => {
                let n = pick(&self.pool().networks, *i)?;
                let got =
                    s.post("/v2.0/subnets", json!({"subnet": {"network_id": n, "cidr": CIDRS[*c]}})).await;
                if let Some(i) = id(&got.1["subnet"]) {
                    self.pool().subnets.push(i);
                }
                got
            }
            Op::DeleteSubnet(i) => {
                let sub = pick(&self.pool().subnets, *i)?;
                s.delete(&format!("/v2.0/subnets/{sub}")).await
            }
            Op::CreatePort(i) => {
                let n = pick(&self.pool().networks, *i)?;
                let got = s.post("/v2.0/ports", json!({"port": {"network_id": n}})).await;
                if let Some(i) = id(&got.1["port"]) {
                    self.pool().ports.push(i);
                }
                got
            }
            Op::DeletePort(i) => {
                let p = pick(&self.pool().ports, *i)?;
                s.delete(&format!("/v2.0/ports/{p}")).await
            }
            Op::PortGroups(i, g) => {
                let p = pick(&self.pool().ports, *i)?;
                let groups: Vec<String> = g.and_then(|g| pick(&self.pool().groups, g)).into_iter().collect();
                s.put(&format!("/v2.0/ports/{p}"), json!({"port": {"security_groups": groups}})).await
            }
            Op::CreateGroup => {
                let got = s.post("/v2.0/security-groups", json!({"security_group": {"name": "x"}})).await;
                if let Some(i) = id(&got.1["security_group"]) {
                    self.pool().groups.push(i);
                }
                got
            }
            Op::DeleteGroup(i) => {
                let g = pick(&self.pool().groups, *i)?;
                s.delete(&format!("/v2.0/security-groups/{g}")).await
            }
            Op::RemoteRule(a, b) => {
                let a = pick(&self.pool().groups, *a)?;
                let b = pick(&self.pool().groups, *b)?;
                let rule = json!({"security_group_rule": {"security_group_id": a, "direction": "ingress",
                                  "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_group_id": b}});
                s.post("/v2.0/security-group-rules", rule).await
            }
            Op::AddInterface(i) => {
                let sub = pick(&self.pool().subnets, *i)?;
                s.put(&format!("/v2.0/routers/{r}/add_router_interface"), json!({"subnet_id": sub})).await
            }
            Op::RemoveInterface(i) => {
                let sub = pick(&self.pool().subnets, *i)?;
                s.put(&format!("/v2.0/routers/{r}/remove_router_interface"), json!({"subnet_id": sub})).await
            }
            Op::CreateFip(p) => {
                let port = p.and_then(|p| pick(&self.pool().ports, p));
                let got = s
                    .post(
                        "/v2.0/floatingips",
                        json!({"floatingip": {"floating_network_id": self.external, "port_id": port}}),
                    )
                    .await;
                if let Some(i) = id(&got.1["floatingip"]) {
                    self.pool().fips.push(i);
                }
                got
            }
            Op::AssociateFip(f, p) => {
                let fip = pick(&self.pool().fips, *f)?;
                let port = p.and_then(|p| pick(&self.pool().ports, p));
                s.put(&format!("/v2.0/floatingips/{fip}"), json!({"floatingip": {"port_id": port}})).await
            }
            Op::DeleteFip(i) => {
                let f = pick(&self.pool().fips, *i)?;
                s.delete(&format!("/v2.0/floatingips/{f}")).await
            }
            Op::RouterGateway(on) => {
                let gw = if *on { json!({"network_id": self.external}) } else { Value::Null };
                s.put(&format!("/v2.0/routers/{r}"), json!({"router": {"external_gateway_info": gw}})).await
            }
        };
        Some((format!("{op:?}"), got.0, got.1))
    }
}

/// Runs each client's ops concurrently against one store, then checks the invariants.
async fn run_case(redb: bool, clients: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let nb = if redb {
        Nb::new(Arc::new(LocalStore::open_redb(dir.path().join("nb.redb")).unwrap()))
    } else {
        Nb::new(Arc::new(LocalStore::memory().unwrap()))
    };
    let world = Arc::new(World::new(nb.clone()).await);
    let mut tasks = Vec::new();
    for ops in clients {
        let world = world.clone();
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for op in &ops {
                answers.extend(world.run(op).await);
            }
            answers
        }));
    }
    for t in tasks {
        for (what, status, body) in t.await.unwrap() {
            prop_assert!(status < 500, "{what}: {status} {body}");
        }
    }
    let report = check(&nb).await.unwrap();
    let lines: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    prop_assert!(lines.is_empty(), "violations after the run:\n{}", lines.join("\n"));
    Ok(())
}

fn clients() -> impl Strategy<Value = Vec<Vec<Op>>> {
    proptest::collection::vec(proptest::collection::vec(op(), 4..16), 2..5)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_concurrent_operations_keep_the_invariants_on_memory(clients in clients()) {
        runtime().block_on(run_case(false, clients))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, max_shrink_iters: 8, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_concurrent_operations_keep_the_invariants_on_redb(clients in clients()) {
        runtime().block_on(run_case(true, clients))?;
    }
}

/// The states the old races and crashes left behind, written directly into the store: the check
/// names each, the repair fixes the unambiguous ones, and a second check finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_and_repair_fixes_what_old_races_left() {
    let s = start().await;
    let nb = s.nb.clone();
    let store = nb.store().clone();
    let ext = s.external_network("public").await;
    s.subnet(&ext, "172.24.4.0/24").await;
    let net = s.network("n").await;
    let sub = id(&s.subnet(&net, "10.0.0.0/24").await).unwrap();
    let r = id(&s
        .create("routers", "router", json!({"name": "r", "external_gateway_info": {"network_id": ext["id"]}}))
        .await)
    .unwrap();
    let (st, itf) =
        s.put(&format!("/v2.0/routers/{r}/add_router_interface"), json!({"subnet_id": sub})).await;
    assert_eq!(st, 200, "{itf}");
    let g = id(&s.create("security-groups", "security_group", json!({"name": "g"})).await).unwrap();
    let port = s.port(&net, json!({"security_groups": [g]})).await;
    let fip = s.create("floatingips", "floatingip", json!({"floating_network_id": ext["id"]})).await;
    assert!(check(&nb).await.unwrap().violations.is_empty(), "a store the API wrote is consistent");

    // A router interface whose port is gone (add vs remove race): delete the port underneath.
    let itf_port = itf["port_id"].as_str().unwrap();
    store.delete(&format!("/tern/v1/port/{itf_port}")).await.unwrap();
    // A port referencing a deleted group (update vs delete race).
    store.delete(&format!("/tern/v1/security_group/{g}")).await.unwrap();
    // An orphan floating IP address port (kill -9 during floating IP delete).
    store.delete(&format!("/tern/v1/floatingip/{}", fip["id"].as_str().unwrap())).await.unwrap();
    // An interface port its router does not list (kill -9 during add router interface).
    let net2 = s.network("n2").await;
    let sub2 = id(&s.subnet(&net2, "10.2.0.0/24").await).unwrap();
    let stray = s
        .port(
            &net2,
            json!({"device_owner": "network:router_interface", "device_id": r,
                   "fixed_ips": [{"subnet_id": sub2, "ip_address": "10.2.0.1"}]}),
        )
        .await;
    // Two overlapping subnets (create vs create race), written behind the NB's back.
    let mut overlapping: Value =
        serde_json::from_slice(&store.get(&format!("/tern/v1/subnet/{sub2}")).await.unwrap().unwrap().value)
            .unwrap();
    overlapping["id"] = json!("overlapping-subnet");
    overlapping["cidr"] = json!("10.2.0.0/16");
    store
        .put("/tern/v1/subnet/overlapping-subnet", overlapping.to_string().into_bytes(), None)
        .await
        .unwrap();

    let report = check(&nb).await.unwrap();
    let rules: Vec<(&str, &str)> = report.violations.iter().map(|v| (v.rule, v.subject.as_str())).collect();
    let port_id = port["id"].as_str().unwrap();
    for expected in [
        ("dangling-reference", format!("router/{r}")),
        ("dangling-reference", format!("port/{port_id}")),
        ("orphan-floatingip-port", "port/".to_string()),
        ("unlisted-interface-port", format!("port/{}", stray["id"].as_str().unwrap())),
        ("overlapping-subnets", format!("network/{}", net2["id"].as_str().unwrap())),
        ("orphan-claim", "/tern/index/network/".to_string()),
        ("orphan-guard-key", format!("/tern/index/ref/security_group/{g}")),
    ] {
        assert!(
            rules.iter().any(|(rule, subject)| *rule == expected.0 && subject.starts_with(&expected.1)),
            "expected {expected:?} among {rules:#?}"
        );
    }

    let done = repair(&nb, &report.violations).await;
    for d in &done {
        assert!(d.error.is_none(), "{d}");
    }
    let after = check(&nb).await.unwrap();
    let left: Vec<(&str, &str)> = after.violations.iter().map(|v| (v.rule, v.subject.as_str())).collect();
    // Only the overlap is left: which subnet should go is not for a repair to decide.
    assert!(left.iter().all(|(rule, _)| *rule == "overlapping-subnets"), "{left:#?}");
    assert!(!left.is_empty());
    // What the repairs leave behaves: the interface can be added again, the port updated.
    let (st, v) = s.put(&format!("/v2.0/routers/{r}/add_router_interface"), json!({"subnet_id": sub})).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.put(&format!("/v2.0/ports/{port_id}"), json!({"port": {"name": "fine"}})).await;
    assert_eq!(st, 200, "{v}");
}
