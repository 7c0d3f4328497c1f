//! Every API operation is one store transaction, so a crash (`kill -9` of `tern server`) can
//! never leave half of one behind: a store wrapper records every write the store is asked for,
//! and each operation below (among them those that used to be several writes: floating IP create
//! and delete, router interface add and remove, gateway changes, port delete with its floating
//! IPs, bindings and migration, security group delete with the rules naming it, binding moves)
//! must make exactly one, holding all of its keys. The only other writes allowed are unique-key
//! allocations (`/tern/meta/unique_key/`): a counter bumped before the transaction, which a
//! crash can only make skip a number.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{json, Value};
use tern_store::nb::Nb;
use tern_store::testing::Observed;
use tern_store::LocalStore;

/// The writes since the last call, counter allocations left out.
fn take(rec: &Observed) -> Vec<Vec<String>> {
    rec.take_writes()
        .into_iter()
        .filter(|keys| !keys.iter().all(|k| k.starts_with("/tern/meta/unique_key/")))
        .collect()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

struct Bench {
    s: Server,
    rec: Arc<Observed>,
}

impl Bench {
    /// Runs a request that must answer `status`, and checks that it was one write holding every
    /// key in `keys` (each a key or a key prefix).
    async fn one(&self, what: &str, got: (u16, Value), status: u16, keys: &[String]) -> Value {
        assert_eq!(got.0, status, "{what}: {}", got.1);
        let writes = take(&self.rec);
        assert_eq!(writes.len(), 1, "{what}: expected one store write, got {}: {writes:#?}", writes.len());
        for k in keys {
            assert!(
                writes[0].iter().any(|w| w.starts_with(k.as_str())),
                "{what}: the write lacks {k}: {:#?}",
                writes[0]
            );
        }
        got.1
    }
}

fn key(kind: &str, id: &str) -> String {
    format!("/tern/v1/{kind}/{id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_one_store_write() {
    let rec = Observed::new(Arc::new(LocalStore::memory().unwrap()));
    let s = start_with(Nb::new(rec.clone()), None).await;
    // What the server wrote to ready the store (the port index's marker) is no operation's.
    take(&rec);
    let b = Bench { s, rec };
    let s = &b.s;

    // Networks, subnets.
    let ext = b
        .one(
            "network create",
            s.post("/v2.0/networks", json!({"network": {"name": "public", "router:external": true}})).await,
            201,
            &[],
        )
        .await["network"]
        .clone();
    let ext_id = id(&ext);
    b.one(
        "subnet create",
        s.post("/v2.0/subnets", json!({"subnet": {"network_id": ext_id, "cidr": "172.24.4.0/24"}})).await,
        201,
        &["/tern/index/subnets/".into()],
    )
    .await;
    let net = b
        .one("network create", s.post("/v2.0/networks", json!({"network": {"name": "n"}})).await, 201, &[])
        .await["network"]
        .clone();
    let net_id = id(&net);
    let sub = b
        .one(
            "subnet create",
            s.post("/v2.0/subnets", json!({"subnet": {"network_id": net_id, "cidr": "10.0.0.0/24"}})).await,
            201,
            &[],
        )
        .await["subnet"]
        .clone();
    let sub_id = id(&sub);

    // A port: created with its project's default security group.
    let port = b
        .one(
            "port create with the default group",
            s.post("/v2.0/ports", json!({"port": {"network_id": net_id, "tenant_id": "p1"}})).await,
            201,
            &["/tern/v1/security_group/".into(), "/tern/v1/port/".into()],
        )
        .await["port"]
        .clone();
    let port_id = id(&port);

    // A router: with its gateway port; interfaces by subnet and by port.
    let r = b
        .one(
            "router create with a gateway",
            s.post(
                "/v2.0/routers",
                json!({"router": {"name": "r", "external_gateway_info": {"network_id": ext_id}}}),
            )
            .await,
            201,
            &["/tern/v1/router/".into(), "/tern/v1/port/".into()],
        )
        .await["router"]
        .clone();
    let r_id = id(&r);
    let itf = b
        .one(
            "add router interface by subnet",
            s.put(&format!("/v2.0/routers/{r_id}/add_router_interface"), json!({"subnet_id": sub_id})).await,
            200,
            &[key("router", &r_id), "/tern/v1/port/".into()],
        )
        .await;
    let itf_port = itf["port_id"].as_str().unwrap().to_string();
    let net2 = s.network("n2").await;
    let sub2 = id(&s.subnet(&net2, "10.2.0.0/24").await);
    let spare =
        id(&s.port(&net2, json!({"fixed_ips": [{"subnet_id": sub2, "ip_address": "10.2.0.1"}]})).await);
    take(&b.rec);
    b.one(
        "add router interface by port",
        s.put(&format!("/v2.0/routers/{r_id}/add_router_interface"), json!({"port_id": spare})).await,
        200,
        &[key("router", &r_id), key("port", &spare)],
    )
    .await;

    // Floating IPs: create (address port + floating IP), associate, delete.
    let fip = b
        .one(
            "floating IP create, associated",
            s.post(
                "/v2.0/floatingips",
                json!({"floatingip": {"floating_network_id": ext_id, "port_id": port_id}}),
            )
            .await,
            201,
            &["/tern/v1/floatingip/".into(), "/tern/v1/port/".into(), "/tern/index/floatingip/".into()],
        )
        .await["floatingip"]
        .clone();
    let fip_id = id(&fip);
    b.one(
        "floating IP disassociate",
        s.put(&format!("/v2.0/floatingips/{fip_id}"), json!({"floatingip": {"port_id": null}})).await,
        200,
        &[key("floatingip", &fip_id)],
    )
    .await;
    b.one(
        "floating IP associate",
        s.put(&format!("/v2.0/floatingips/{fip_id}"), json!({"floatingip": {"port_id": port_id}})).await,
        200,
        &[key("floatingip", &fip_id), format!("/tern/index/ref/router/{r_id}")],
    )
    .await;
    let fip2 = id(&s.create("floatingips", "floatingip", json!({"floating_network_id": ext_id})).await);
    take(&b.rec);
    b.one(
        "floating IP delete",
        s.delete(&format!("/v2.0/floatingips/{fip2}")).await,
        204,
        &[key("floatingip", &fip2), "/tern/v1/port/".into()],
    )
    .await;

    // Bindings: bind, announce a migration, activate the destination, roll one back.
    b.one(
        "port bind",
        s.put(&format!("/v2.0/ports/{port_id}"), json!({"port": {"binding:host_id": "hv1"}})).await,
        200,
        &[key("port", &port_id)],
    )
    .await;
    b.one(
        "inactive binding (announces a migration)",
        s.post(&format!("/v2.0/ports/{port_id}/bindings"), json!({"binding": {"host": "hv2"}})).await,
        201,
        &[key("port_binding", &format!("{port_id}@hv2")), key("migration", &port_id)],
    )
    .await;
    b.one(
        "binding activate",
        s.put(&format!("/v2.0/ports/{port_id}/bindings/hv2/activate"), json!({})).await,
        200,
        &[
            key("port", &port_id),
            key("port_binding", &format!("{port_id}@hv1")),
            key("port_binding", &format!("{port_id}@hv2")),
            key("migration", &port_id),
        ],
    )
    .await;
    b.one(
        "inactive binding (announces a migration back)",
        s.post(&format!("/v2.0/ports/{port_id}/bindings"), json!({"binding": {"host": "hv3"}})).await,
        201,
        &[key("port_binding", &format!("{port_id}@hv3"))],
    )
    .await;
    b.one(
        "binding delete (rolls the migration back)",
        s.delete(&format!("/v2.0/ports/{port_id}/bindings/hv3")).await,
        204,
        &[key("port_binding", &format!("{port_id}@hv3")), key("migration", &port_id)],
    )
    .await;

    // Interface and gateway removal, router delete.
    b.one(
        "remove router interface",
        s.put(&format!("/v2.0/routers/{r_id}/remove_router_interface"), json!({"port_id": spare})).await,
        200,
        &[key("router", &r_id), key("port", &spare)],
    )
    .await;

    // Port delete: its floating IP disassociated, its bindings gone, in the same write.
    b.one(
        "port delete with a floating IP and bindings",
        s.delete(&format!("/v2.0/ports/{port_id}")).await,
        204,
        &[key("port", &port_id), key("floatingip", &fip_id), key("port_binding", &format!("{port_id}@hv1"))],
    )
    .await;
    b.one(
        "remove router interface by subnet",
        s.put(&format!("/v2.0/routers/{r_id}/remove_router_interface"), json!({"subnet_id": sub_id})).await,
        200,
        &[key("router", &r_id), key("port", &itf_port)],
    )
    .await;
    b.one(
        "floating IP delete",
        s.delete(&format!("/v2.0/floatingips/{fip_id}")).await,
        204,
        &[key("floatingip", &fip_id)],
    )
    .await;
    b.one(
        "router gateway removal",
        s.put(&format!("/v2.0/routers/{r_id}"), json!({"router": {"external_gateway_info": null}})).await,
        200,
        &[key("router", &r_id), "/tern/v1/port/".into()],
    )
    .await;
    b.one(
        "router gateway set",
        s.put(
            &format!("/v2.0/routers/{r_id}"),
            json!({"router": {"external_gateway_info": {"network_id": ext_id}}}),
        )
        .await,
        200,
        &[key("router", &r_id), "/tern/v1/port/".into()],
    )
    .await;
    b.one(
        "router delete with its gateway port",
        s.delete(&format!("/v2.0/routers/{r_id}")).await,
        204,
        &[key("router", &r_id), "/tern/v1/port/".into()],
    )
    .await;

    // Security groups: a delete takes the rules naming it as their remote group along.
    let a = id(&s.create("security-groups", "security_group", json!({"name": "a"})).await);
    let g = id(&s.create("security-groups", "security_group", json!({"name": "g"})).await);
    take(&b.rec);
    b.one(
        "rule create",
        s.post(
            "/v2.0/security-group-rules",
            json!({"security_group_rule": {"security_group_id": a, "direction": "ingress", "remote_group_id": g}}),
        )
        .await,
        201,
        &[key("security_group", &a), format!("/tern/index/ref/security_group/{g}")],
    )
    .await;
    b.one(
        "security group delete with the rules naming it",
        s.delete(&format!("/v2.0/security-groups/{g}")).await,
        204,
        &[key("security_group", &g), key("security_group", &a)],
    )
    .await;

    // A network delete takes its subnets along.
    s.delete(&format!("/v2.0/ports/{spare}")).await;
    take(&b.rec);
    b.one(
        "network delete with its subnets",
        s.delete(&format!("/v2.0/networks/{}", id(&net2))).await,
        204,
        &[key("network", &id(&net2)), key("subnet", &sub2)],
    )
    .await;
}
