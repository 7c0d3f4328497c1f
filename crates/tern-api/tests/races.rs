//! Two requests racing against one store, many times over, on the memory and the redb store: the
//! races of issue 14 that used to leave contradictory state. Each case sends both requests at
//! once, lets either (or both) win, and then checks that the NB says one consistent thing:
//!
//! * add and remove of the same router interface: never an interface whose port is gone, nor an
//!   interface port its router does not list;
//! * two floating IPs associated with the same fixed IP: at most one succeeds;
//! * a port created while its network is deleted: never both;
//! * two overlapping subnets created on one network: never both;
//! * a port updated to use a security group while the group is deleted: never both.
//!
//! Every check goes through the HTTP API (and plain NB reads), so this file also runs unchanged
//! against releases before the fix, where each case finds violations.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Rounds of each race per store.
const ROUNDS: usize = 60;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// Runs `a` and `b` at the same time (each a request on its own connection), one of them
/// starting later by `shift` (positive: `b` later, negative: `a` later).
async fn race<A, B, FA, FB>(shift: i64, a: A, b: B) -> ((u16, Value), (u16, Value))
where
    A: FnOnce() -> FA,
    B: FnOnce() -> FB,
    FA: std::future::Future<Output = (u16, Value)> + Send + 'static,
    FB: std::future::Future<Output = (u16, Value)> + Send + 'static,
{
    async fn after<T>(delay: Duration, f: impl std::future::Future<Output = T>) -> T {
        let start = Instant::now();
        while start.elapsed() < delay {
            tokio::task::yield_now().await;
        }
        f.await
    }
    let (da, db) =
        (Duration::from_micros((-shift).max(0) as u64), Duration::from_micros(shift.max(0) as u64));
    let (fa, fb) = (a(), b());
    let tb = tokio::spawn(after(db, fb));
    let ta = tokio::spawn(after(da, fa));
    (ta.await.unwrap(), tb.await.unwrap())
}

/// Start shifts for the rounds of a race whose first request alone takes `span`: the rounds
/// sweep from `b` starting a whole `span` later to `a` starting half a `span` later, through
/// starting together, so that they try many interleavings.
struct Sweep {
    span_us: i64,
}

impl Sweep {
    /// Times `first` (the first request alone, whose effect the caller undoes).
    async fn calibrate<F: std::future::Future<Output = (u16, Value)>>(first: F) -> Sweep {
        let start = Instant::now();
        let (st, v) = first.await;
        assert!(st < 300, "calibration request failed: {st} {v}");
        Sweep { span_us: start.elapsed().as_micros().max(1) as i64 }
    }

    fn shift(&self, round: usize) -> i64 {
        let step = (round * 37 % ROUNDS) as i64; // a permutation of 0..ROUNDS
        self.span_us * 3 / 2 * step / ROUNDS as i64 - self.span_us / 2
    }
}

/// Fails with every violation seen, naming the store and the round.
fn verdict(store: &str, case: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{case} on {store}: {} violation(s) in {ROUNDS} rounds:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

async fn ports_of_router(s: &Server, router: &str) -> Vec<Value> {
    let (_, v) =
        s.get(&format!("/v2.0/ports?device_id={router}&device_owner=network:router_interface")).await;
    v["ports"].as_array().cloned().unwrap_or_default()
}

async fn router_add_remove_interface(store: &str) {
    let (s, _dir) = server_on(store).await;
    let net = s.network("n").await;
    let sub = id(&s.subnet(&net, "10.0.0.0/24").await);
    let r = id(&s.create("routers", "router", json!({"name": "r"})).await);
    let add_path = format!("/v2.0/routers/{r}/add_router_interface");
    let sweep = Sweep::calibrate(s.put(&add_path, json!({"subnet_id": sub}))).await;
    let (st, v) =
        s.put(&format!("/v2.0/routers/{r}/remove_router_interface"), json!({"subnet_id": sub})).await;
    assert_eq!(st, 200, "{v}");
    let mut violations = Vec::new();
    for round in 0..ROUNDS {
        let path = |op: &str| format!("/v2.0/routers/{r}/{op}_router_interface");
        let (add, remove) = race(
            sweep.shift(round),
            {
                let (s, p, sub) = (s.clone(), path("add"), sub.clone());
                move || async move { s.put(&p, json!({"subnet_id": sub})).await }
            },
            {
                let (s, p, sub) = (s.clone(), path("remove"), sub.clone());
                move || async move { s.put(&p, json!({"subnet_id": sub})).await }
            },
        )
        .await;
        assert_eq!(add.0, 200, "round {round}: add: {}", add.1);
        assert!([200, 404].contains(&remove.0), "round {round}: remove: {remove:?}");
        // The router's interfaces and the interface ports agree.
        let (_, rv) = s.get(&format!("/v2.0/routers/{r}")).await;
        let listed: Vec<String> = ports_listed_by(&s, &r).await;
        let ports: Vec<String> = ports_of_router(&s, &r).await.iter().map(id).collect();
        let mut l = listed.clone();
        let mut p = ports.clone();
        l.sort();
        p.sort();
        if l != p {
            violations.push(format!(
                "round {round}: router lists interface ports {listed:?}, the interface ports are {ports:?} (add {}, remove {}; router {})",
                add.0, remove.0, rv["router"]
            ));
        }
        // Back to no interface: removing what is there must work.
        if !listed.is_empty() || !ports.is_empty() {
            let (st, v) = s.put(&path("remove"), json!({"subnet_id": sub})).await;
            if st != 200 {
                violations.push(format!("round {round}: cleanup remove: {st} {v}"));
            }
        }
        let (st, v) = s.put(&path("add"), json!({"subnet_id": sub})).await;
        if st != 200 {
            violations.push(format!("round {round}: adding the interface again: {st} {v}"));
        }
        let (st, v) = s.put(&path("remove"), json!({"subnet_id": sub})).await;
        if st != 200 {
            violations.push(format!("round {round}: removing it again: {st} {v}"));
            break;
        }
    }
    verdict(store, "add vs remove router interface", violations);
}

/// The port ids a router's stored interfaces name (the NB object: the API does not show them).
async fn ports_listed_by(s: &Server, router: &str) -> Vec<String> {
    let r = s.nb.get(tern_model::Kind::Router, router).await.unwrap().expect("router");
    match r.object {
        tern_model::Object::Router(r) => r.interfaces.iter().map(|i| i.port_id.clone()).collect(),
        _ => unreachable!(),
    }
}

async fn two_floating_ips_one_fixed_ip(store: &str) {
    let (s, _dir) = server_on(store).await;
    let ext = s.external_network("public").await;
    s.subnet(&ext, "172.24.4.0/24").await;
    let net = s.network("private").await;
    let sub = id(&s.subnet(&net, "10.0.0.0/24").await);
    let r = id(&s
        .create("routers", "router", json!({"name": "r", "external_gateway_info": {"network_id": ext["id"]}}))
        .await);
    let (st, v) = s.put(&format!("/v2.0/routers/{r}/add_router_interface"), json!({"subnet_id": sub})).await;
    assert_eq!(st, 200, "{v}");
    let port = id(&s.port(&net, json!({})).await);
    let mut fips = Vec::new();
    for _ in 0..2 {
        fips.push(id(&s
            .create("floatingips", "floatingip", json!({"floating_network_id": ext["id"]}))
            .await));
    }
    let fip0 = format!("/v2.0/floatingips/{}", fips[0]);
    let sweep = Sweep::calibrate(s.put(&fip0, json!({"floatingip": {"port_id": port}}))).await;
    let (st, v) = s.put(&fip0, json!({"floatingip": {"port_id": null}})).await;
    assert_eq!(st, 200, "{v}");
    let mut violations = Vec::new();
    for round in 0..ROUNDS {
        let assoc = |fip: &String| {
            let (s, path, port) = (s.clone(), format!("/v2.0/floatingips/{fip}"), port.clone());
            move || async move { s.put(&path, json!({"floatingip": {"port_id": port}})).await }
        };
        let (a, b) = race(sweep.shift(round), assoc(&fips[0]), assoc(&fips[1])).await;
        for (name, got) in [("first", &a), ("second", &b)] {
            assert!([200, 409].contains(&got.0), "round {round}: {name}: {got:?}");
        }
        let (_, v) = s.get(&format!("/v2.0/floatingips?port_id={port}")).await;
        let on_port = v["floatingips"].as_array().map_or(0, Vec::len);
        if a.0 == 200 && b.0 == 200 || on_port != 1 {
            violations.push(format!(
                "round {round}: {} and {} associating one fixed IP; {on_port} floating IPs point at it",
                a.0, b.0
            ));
        }
        for fip in &fips {
            let (st, v) =
                s.put(&format!("/v2.0/floatingips/{fip}"), json!({"floatingip": {"port_id": null}})).await;
            assert_eq!(st, 200, "round {round}: disassociate: {v}");
        }
    }
    verdict(store, "two floating IPs on one fixed IP", violations);
}

async fn port_create_vs_network_delete(store: &str) {
    let (s, _dir) = server_on(store).await;
    let calibration = s.network("calibration").await;
    s.subnet(&calibration, "10.0.0.0/24").await;
    let sweep =
        Sweep::calibrate(s.post("/v2.0/ports", json!({"port": {"network_id": calibration["id"]}}))).await;
    let mut violations = Vec::new();
    for round in 0..ROUNDS {
        let net = s.network(&format!("n{round}")).await;
        s.subnet(&net, "10.0.0.0/24").await;
        let n = id(&net);
        let (create, delete) = race(
            sweep.shift(round),
            {
                let (s, n) = (s.clone(), n.clone());
                move || async move { s.post("/v2.0/ports", json!({"port": {"network_id": n}})).await }
            },
            {
                let (s, n) = (s.clone(), n.clone());
                move || async move { s.delete(&format!("/v2.0/networks/{n}")).await }
            },
        )
        .await;
        assert!([201, 404].contains(&create.0), "round {round}: create: {create:?}");
        assert!([204, 409].contains(&delete.0), "round {round}: delete: {delete:?}");
        let (net_status, _) = s.get(&format!("/v2.0/networks/{n}")).await;
        let (_, ports) = s.get(&format!("/v2.0/ports?network_id={n}")).await;
        let ports: Vec<String> = ports["ports"].as_array().unwrap().iter().map(id).collect();
        if create.0 == 201 && delete.0 == 204 || (net_status == 404 && !ports.is_empty()) {
            violations.push(format!(
                "round {round}: port create {} and network delete {}; network {net_status}, its ports {ports:?}",
                create.0, delete.0
            ));
        }
        for p in ports {
            s.delete(&format!("/v2.0/ports/{p}")).await;
        }
        s.delete(&format!("/v2.0/networks/{n}")).await;
    }
    verdict(store, "port create vs network delete", violations);
}

async fn overlapping_subnets(store: &str) {
    let (s, _dir) = server_on(store).await;
    let calibration = s.network("calibration").await;
    let sweep = Sweep::calibrate(s.post(
        "/v2.0/subnets",
        json!({"subnet": {"network_id": calibration["id"], "cidr": "10.7.0.0/24", "ip_version": 4}}),
    ))
    .await;
    let mut violations = Vec::new();
    for round in 0..ROUNDS {
        let n = id(&s.network(&format!("n{round}")).await);
        let create = |cidr: &'static str| {
            let (s, n) = (s.clone(), n.clone());
            move || async move {
                s.post("/v2.0/subnets", json!({"subnet": {"network_id": n, "cidr": cidr, "ip_version": 4}}))
                    .await
            }
        };
        let (a, b) = race(sweep.shift(round), create("10.7.0.0/24"), create("10.7.0.0/16")).await;
        for got in [&a, &b] {
            // The loser's overlap is a 400 (as Neutron); a lost race retried out is a 409.
            assert!([201, 400, 409].contains(&got.0), "round {round}: {got:?}");
        }
        let (_, v) = s.get(&format!("/v2.0/subnets?network_id={n}")).await;
        let cidrs: Vec<&str> =
            v["subnets"].as_array().unwrap().iter().filter_map(|s| s["cidr"].as_str()).collect();
        if a.0 == 201 && b.0 == 201 || cidrs.len() != 1 {
            violations.push(format!("round {round}: {} and {}; the network has subnets {cidrs:?}", a.0, b.0));
        }
        let (st, v) = s.delete(&format!("/v2.0/networks/{n}")).await;
        assert_eq!(st, 204, "{v}");
    }
    verdict(store, "overlapping subnets", violations);
}

async fn port_security_group_vs_group_delete(store: &str) {
    let (s, _dir) = server_on(store).await;
    let net = s.network("n").await;
    s.subnet(&net, "10.0.0.0/24").await;
    let port = id(&s.port(&net, json!({"security_groups": []})).await);
    let sweep =
        Sweep::calibrate(s.put(&format!("/v2.0/ports/{port}"), json!({"port": {"name": "calibrated"}})))
            .await;
    let mut violations = Vec::new();
    for round in 0..ROUNDS {
        let g =
            id(&s.create("security-groups", "security_group", json!({"name": format!("g{round}")})).await);
        let (update, delete) = race(
            sweep.shift(round),
            {
                let (s, port, g) = (s.clone(), port.clone(), g.clone());
                move || async move {
                    s.put(&format!("/v2.0/ports/{port}"), json!({"port": {"security_groups": [g]}})).await
                }
            },
            {
                let (s, g) = (s.clone(), g.clone());
                move || async move { s.delete(&format!("/v2.0/security-groups/{g}")).await }
            },
        )
        .await;
        assert!([200, 404].contains(&update.0), "round {round}: update: {update:?}");
        assert!([204, 409].contains(&delete.0), "round {round}: delete: {delete:?}");
        let (group_status, _) = s.get(&format!("/v2.0/security-groups/{g}")).await;
        let (_, pv) = s.get(&format!("/v2.0/ports/{port}")).await;
        let uses = pv["port"]["security_groups"].as_array().unwrap().iter().any(|x| x == &json!(g));
        if update.0 == 200 && delete.0 == 204 || (uses && group_status == 404) {
            violations.push(format!(
                "round {round}: port update {} and group delete {}; the port uses it: {uses}, the group: {group_status}",
                update.0, delete.0
            ));
        }
        let (st, v) = s.put(&format!("/v2.0/ports/{port}"), json!({"port": {"security_groups": []}})).await;
        assert_eq!(st, 200, "round {round}: {v}");
        s.delete(&format!("/v2.0/security-groups/{g}")).await;
    }
    verdict(store, "port update vs security group delete", violations);
}

macro_rules! on_every_store {
    ($($case:ident),*) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case("memory").await;
                }
            )*
        }
        mod redb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case("redb").await;
                }
            )*
        }
    };
}

on_every_store!(
    router_add_remove_interface,
    two_floating_ips_one_fixed_ip,
    port_create_vs_network_delete,
    overlapping_subnets,
    port_security_group_vs_group_delete
);
