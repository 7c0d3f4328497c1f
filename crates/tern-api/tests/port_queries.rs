//! `GET /v2.0/ports` from the NB's port index (`port_lists`) and address allocation through the
//! API, on the memory store:
//! * every listing answers exactly what a scan of every port does: the same query sent to a
//!   server whose store has no index marker (so it scans, as before the index) gives the same
//!   body, for filters by network and device (odd device ids too), other filters, sort keys,
//!   pages forward and backward, fields and errors;
//! * `limit`/`marker` pages cover every port once; under concurrent creates and deletes a
//!   listing by device or network returns only matching ports and every port that exists
//!   throughout;
//! * a page of 100 ports of 2,000, or the ports of one device, reads about as many keys;
//! * a store from before the index is indexed when a server starts on it; `tern db check`
//!   finds index entries that disagree with the ports, and `repair` fixes them;
//! * addresses: 8 concurrent clients never share one, pools hold, a full subnet is a 409.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use serde_json::{json, Value};
use tern_api::invariants::{check, repair};
use tern_store::nb::{Nb, PORT_INDEX_MARKER, PORT_INDEX_PREFIX};
use tern_store::testing::Observed;
use tern_store::LocalStore;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

/// A second server on the same store that scans: a fresh `Nb` on a store whose index marker is
/// gone (the main server's `Nb` has seen it, and keeps using the index).
async fn scanning_twin(s: &Server) -> Server {
    s.nb.store().delete(PORT_INDEX_MARKER).await.unwrap();
    let nb = Nb::new(s.nb.store().clone());
    assert!(!nb.port_index_ready().await.unwrap());
    serve_as_is(nb, None).await
}

/// The body of a GET, with the Host of links made neutral (two servers, two ports).
async fn body(s: &Server, path: &str) -> (u16, String) {
    let (st, v) = s.get(path).await;
    (st, v.to_string().replace(&s.addr.to_string(), "HOST"))
}

/// A cloud of ports with every kind of device id, on three networks.
async fn cloud(s: &Server) -> (Vec<String>, Vec<Value>) {
    let mut nets = Vec::new();
    for (i, cidr) in ["10.10.0.0/24", "10.11.0.0/24", "10.12.0.0/24"].iter().enumerate() {
        let n = s.network(&format!("n{i}")).await;
        s.subnet(&n, cidr).await;
        nets.push(n);
    }
    let devices = ["vm-1", "vm-2", "a/b c%&=?", "", "ünicode", "vm-1 "];
    let owners = ["compute:nova", "", "network:dhcp"];
    let mut ports = Vec::new();
    for i in 0..40 {
        let p = s
            .port(
                &nets[i % 3],
                json!({"device_id": devices[i % devices.len()], "device_owner": owners[i % owners.len()],
                       "name": format!("p{}", i % 7), "admin_state_up": i % 5 != 0}),
            )
            .await;
        ports.push(p);
    }
    (nets.iter().map(id).collect(), ports)
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_answer_what_a_scan_answers() {
    let s = start().await;
    let (nets, ports) = cloud(&s).await;
    let twin = scanning_twin(&s).await;
    let all: Vec<String> = ports.iter().map(id).collect::<BTreeSet<_>>().into_iter().collect();
    let (n0, n1) = (&nets[0], &nets[1]);
    let mut queries = vec![
        String::new(),
        format!("network_id={n0}"),
        format!("network_id={n0}&network_id={n1}"),
        format!("network_id={n0}&network_id={n0}"),
        "network_id=nope".into(),
        "device_id=vm-1".into(),
        format!("device_id={}", enc("a/b c%&=?")),
        format!("device_id={}", enc("ünicode")),
        format!("device_id={}", enc("vm-1 ")),
        "device_id=".into(),
        "device_id=vm-1&device_id=vm-2".into(),
        format!("device_id=vm-1&network_id={n1}"),
        "device_id=vm-2&device_owner=network:dhcp".into(),
        format!("network_id={n0}&admin_state_up=false"),
        format!("network_id={n0}&name=p3&name=p4"),
        format!("id={}&id={}&id=missing", all[3], all[7]),
        format!("network_id={n0}&fields=id&fields=device_id"),
        format!("network_id={n0}&sort_key=name&sort_dir=desc"),
        "sort_key=device_id&sort_dir=asc&limit=5".into(),
        "sort_key=name&limit=4&marker=nope".into(),
        "bogus=1".into(),
        "device_id=vm-1&bogus=1".into(),
        "limit=x".into(),
        "limit=0".into(),
        "status=DOWN&limit=3".into(),
        "tags=x".into(),
    ];
    for limit in [1, 4, 13, 40, 100] {
        queries.push(format!("limit={limit}"));
        queries.push(format!("limit={limit}&page_reverse=true"));
        queries.push(format!("network_id={n1}&limit={limit}"));
        queries.push(format!("device_id=vm-1&limit={limit}&page_reverse=True"));
        queries.push(format!("device_id=vm-2&network_id={n1}&limit={limit}&fields=id"));
        queries.push(format!("admin_state_up=false&limit={limit}&page_reverse=true"));
        queries.push(format!("name=p6&limit={limit}"));
        for marker in
            [&all[0], &all[17], &all[39], &"0".to_string(), &"zzz".to_string(), &format!("{}x", all[20])]
        {
            queries.push(format!("limit={limit}&marker={marker}"));
            queries.push(format!("limit={limit}&marker={marker}&page_reverse=true"));
            queries.push(format!("network_id={n0}&limit={limit}&marker={marker}"));
            queries.push(format!("device_id=&limit={limit}&marker={marker}&page_reverse=1"));
            queries.push(format!("admin_state_up=true&limit={limit}&marker={marker}"));
            // Sparse filters the index does not serve: reads of several chunks.
            queries.push(format!("admin_state_up=false&limit={limit}&marker={marker}&page_reverse=true"));
            queries.push(format!("name=p3&limit={limit}&marker={marker}"));
            queries.push(format!("network_id={n1}&name=p2&limit={limit}&marker={marker}&page_reverse=true"));
        }
    }
    queries.push(format!("marker={}", all[5]));
    queries.push(format!("marker={}&page_reverse=true", all[5]));
    for q in &queries {
        let path = format!("/v2.0/ports?{q}");
        let (ours, theirs) = (body(&s, &path).await, body(&twin, &path).await);
        assert_eq!(ours, theirs, "GET {path}: the index answers differently from a scan");
    }
    twin.stop().await;
    s.stop().await;
}

/// Follows the `next` (or `previous`) links of a listing; the ids of every page, in order.
async fn follow(s: &Server, first: &str, rel: &str) -> Vec<String> {
    let mut url = first.to_string();
    let mut out = Vec::new();
    for _ in 0..1000 {
        let (st, v) = s.get(&url).await;
        assert_eq!(st, 200, "{url}: {v}");
        let page = ids(&v, "ports");
        if rel == "previous" {
            let mut p = page.clone();
            p.extend(out);
            out = p;
        } else {
            out.extend(page.clone());
        }
        let next = v["ports_links"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["rel"] == rel))
            .and_then(|l| l["href"].as_str())
            .map(str::to_owned);
        match next {
            Some(href) if !page.is_empty() => url = href.replacen(&format!("http://{}", s.addr), "", 1),
            _ => return out,
        }
    }
    panic!("no end to the pages of {first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_cover_every_port_once() {
    let s = start().await;
    let (nets, ports) = cloud(&s).await;
    let mut all: Vec<String> = ports.iter().map(id).collect();
    all.sort();
    for limit in [1, 3, 7, 40] {
        assert_eq!(follow(&s, &format!("/v2.0/ports?limit={limit}"), "next").await, all, "limit {limit}");
        assert_eq!(
            follow(&s, &format!("/v2.0/ports?limit={limit}&page_reverse=true"), "previous").await,
            all,
            "limit {limit}, backward"
        );
        let of_n2: Vec<String> = all
            .iter()
            .filter(|p| ports.iter().any(|q| id(q) == **p && q["network_id"] == nets[2]))
            .cloned()
            .collect();
        assert_eq!(
            follow(&s, &format!("/v2.0/ports?network_id={}&limit={limit}", nets[2]), "next").await,
            of_n2
        );
        let vm1: Vec<String> = all
            .iter()
            .filter(|p| ports.iter().any(|q| id(q) == **p && q["device_id"] == "vm-1"))
            .cloned()
            .collect();
        assert_eq!(follow(&s, &format!("/v2.0/ports?device_id=vm-1&limit={limit}"), "next").await, vm1);
    }
    // A marker whose port is gone: the page still starts after it.
    let gone = all[10].clone();
    s.delete(&format!("/v2.0/ports/{gone}")).await;
    let (_, v) = s.get(&format!("/v2.0/ports?limit=3&marker={gone}")).await;
    assert_eq!(ids(&v, "ports"), all[11..14].to_vec());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listings_stay_exact_under_concurrent_creates_and_deletes() {
    let s = Arc::new(start().await);
    let net = s.network("busy").await;
    s.subnet(&net, "10.20.0.0/22").await;
    let other = s.network("other").await;
    s.subnet(&other, "10.21.0.0/22").await;
    let mut stable = BTreeSet::new();
    for _ in 0..15 {
        stable.insert(id(&s.port(&net, json!({"device_id": "stable"})).await));
    }
    let (netid, otherid) = (id(&net), id(&other));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut churn = Vec::new();
    for c in 0..4 {
        let (s, stop, net, other) = (s.clone(), stop.clone(), net.clone(), other.clone());
        churn.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n < 10 {
                let on = if n % 2 == 0 { &net } else { &other };
                let device = if n % 3 == 0 { "stable" } else { "churn" };
                let p = s.port(on, json!({"device_id": device, "name": format!("c{c}")})).await;
                if n % 4 != 3 {
                    let (st, v) = s.delete(&format!("/v2.0/ports/{}", id(&p))).await;
                    assert_eq!(st, 204, "{v}");
                }
                n += 1;
            }
        }));
    }
    for round in 0..25 {
        let (_, v) = s.get("/v2.0/ports?device_id=stable").await;
        let got: Vec<&Value> = v["ports"].as_array().unwrap().iter().collect();
        assert!(got.iter().all(|p| p["device_id"] == "stable"), "round {round}: {v}");
        let got_ids: HashSet<String> = got.iter().map(|p| id(p)).collect();
        assert_eq!(got_ids.len(), got.len(), "round {round}: a port twice");
        assert!(stable.iter().all(|p| got_ids.contains(p)), "round {round}: a stable port is missing");
        let (_, v) = s.get(&format!("/v2.0/ports?network_id={netid}&limit=4")).await;
        let page = v["ports"].as_array().unwrap();
        assert!(page.len() <= 4 && page.iter().all(|p| p["network_id"] == netid.as_str()), "{v}");
        let (_, v) = s.get(&format!("/v2.0/ports?network_id={otherid}")).await;
        assert!(v["ports"].as_array().unwrap().iter().all(|p| p["network_id"] == otherid.as_str()), "{v}");
    }
    stop.store(true, Ordering::Relaxed);
    for c in churn {
        c.await.unwrap();
    }
    // Quiet again: exactly what a scan says, and the store holds no violation.
    let twin = scanning_twin(&s).await;
    for q in [
        "device_id=stable".to_string(),
        "device_id=churn".into(),
        format!("network_id={netid}"),
        format!("network_id={otherid}&limit=5"),
        "limit=10&page_reverse=true".into(),
    ] {
        let path = format!("/v2.0/ports?{q}");
        assert_eq!(body(&s, &path).await, body(&twin, &path).await, "GET {path}");
    }
    let report = check(&s.nb).await.unwrap();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    twin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_reads_about_as_many_keys_as_it_returns() {
    let counting = Observed::new(Arc::new(LocalStore::memory().unwrap()));
    let s = start_with(Nb::new(counting.clone()), None).await;
    let net = s.network("big").await;
    let small = s.network("small").await;
    // 2,000 ports written through the NB (quicker than HTTP), 10 of them on device vm-x.
    let nb = s.nb.clone();
    for i in 0..2000 {
        let (n, device) = if i % 200 == 0 { (&small, "vm-x") } else { (&net, "vm") };
        let json = format!(r#"{{"network_id":"{}","device_id":"{device}"}}"#, id(n));
        nb.put_json(tern_model::Kind::Port, &json).await.unwrap();
    }
    let mut all: Vec<String> =
        nb.list(tern_model::Kind::Port).await.unwrap().0.iter().map(|p| p.object.id().to_owned()).collect();
    all.sort();
    let read = |path: String| {
        let (s, counting) = (&s, &counting);
        async move {
            counting.take_reads();
            let (st, v) = s.get(&path).await;
            assert_eq!(st, 200, "{path}: {v}");
            let (listed, keys) = counting.take_reads();
            (v, (keys, listed))
        }
    };
    let (v, (keys, _)) = read("/v2.0/ports?limit=100".into()).await;
    assert_eq!(ids(&v, "ports"), all[..100].to_vec());
    assert!(keys <= 120, "a first page of 100 read {keys} keys");
    let (v, (keys, _)) = read(format!("/v2.0/ports?limit=100&marker={}", all[1500])).await;
    assert_eq!(ids(&v, "ports"), all[1501..1601].to_vec());
    assert!(keys <= 120, "a page of 100 read {keys} keys");
    let (v, (keys, _)) = read(format!("/v2.0/ports?limit=100&marker={}&page_reverse=true", all[1500])).await;
    assert_eq!(ids(&v, "ports"), all[1400..1500].to_vec());
    assert!(keys <= 120, "a page of 100 backward read {keys} keys");
    let (v, (keys, _)) = read("/v2.0/ports?device_id=vm-x".into()).await;
    assert_eq!(ids(&v, "ports").len(), 10);
    assert!(keys <= 30, "the 10 ports of a device read {keys} keys");
    let (v, (keys, _)) = read(format!("/v2.0/ports?network_id={}&limit=5", id(&small))).await;
    assert_eq!(ids(&v, "ports").len(), 5);
    assert!(keys <= 20, "5 ports of a network read {keys} keys");
    // What still reads every port, as documented: sorting by another key.
    let (_, (keys, _)) = read("/v2.0/ports?sort_key=name&limit=100".into()).await;
    assert!(keys >= 2000, "sorting by name read only {keys} keys");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_before_the_index_is_indexed_at_start() {
    let s = start().await;
    let (nets, _) = cloud(&s).await;
    let store = s.nb.store().clone();
    s.stop().await;
    // Make it old: no entries, no marker, and a stale entry.
    for kv in store.list(PORT_INDEX_PREFIX).await.unwrap().items {
        store.delete(&kv.key).await.unwrap();
    }
    store.delete(PORT_INDEX_MARKER).await.unwrap();
    store.put(&format!("{PORT_INDEX_PREFIX}device_id/vm-1/no-such-port"), Vec::new(), None).await.unwrap();
    let report = check(&Nb::new(store.clone())).await.unwrap();
    let rules: BTreeSet<&str> = report.violations.iter().map(|v| v.rule).collect();
    assert_eq!(
        rules,
        BTreeSet::from(["missing-index-entry", "stale-index-entry"]),
        "{:#?}",
        report.violations
    );

    // Before it is built, listings scan (and are right); a server's start builds it.
    let old = serve_as_is(Nb::new(store.clone()), None).await;
    let (_, before) = old.get("/v2.0/ports?device_id=vm-1").await;
    assert_eq!(ids(&before, "ports").len(), 7);
    old.stop().await;
    let s = start_with(Nb::new(store.clone()), None).await;
    assert!(s.nb.port_index_ready().await.unwrap());
    assert!(check(&s.nb).await.unwrap().violations.is_empty());
    let (_, after) = s.get("/v2.0/ports?device_id=vm-1").await;
    assert_eq!(before, after);
    let (_, v) = s.get(&format!("/v2.0/ports?network_id={}", nets[1])).await;
    assert_eq!(ids(&v, "ports").len(), 13);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_check_finds_and_repair_fixes_a_corrupted_index() {
    let s = start().await;
    let (nets, ports) = cloud(&s).await;
    let store = s.nb.store().clone();
    let (p0, p1) = (id(&ports[0]), id(&ports[1]));
    // A lost entry, an entry naming the wrong device, one of a port that is not there, a
    // malformed one, and the allocation cursor of a subnet that is not there.
    store.delete(&format!("{PORT_INDEX_PREFIX}network_id/{}/{p0}", nets[0])).await.unwrap();
    store.delete(&format!("{PORT_INDEX_PREFIX}device_id/vm-2/{p1}")).await.unwrap();
    store.put(&format!("{PORT_INDEX_PREFIX}device_id/vm-9/{p1}"), Vec::new(), None).await.unwrap();
    store.put(&format!("{PORT_INDEX_PREFIX}device_id/vm-1/ghost"), Vec::new(), None).await.unwrap();
    store.put(&format!("{PORT_INDEX_PREFIX}colour/red/{p0}"), Vec::new(), None).await.unwrap();
    store.put("/tern/index/ipam/no-such-subnet", b"10.0.0.9".to_vec(), None).await.unwrap();

    let report = check(&s.nb).await.unwrap();
    let found: BTreeSet<(&str, &str)> =
        report.violations.iter().map(|v| (v.rule, v.subject.as_str())).collect();
    let p0_subject = format!("port/{p0}");
    let p1_subject = format!("port/{p1}");
    let ghost = format!("{PORT_INDEX_PREFIX}device_id/vm-1/ghost");
    let wrong = format!("{PORT_INDEX_PREFIX}device_id/vm-9/{p1}");
    let malformed = format!("{PORT_INDEX_PREFIX}colour/red/{p0}");
    let expected = BTreeSet::from([
        ("missing-index-entry", p0_subject.as_str()),
        ("missing-index-entry", p1_subject.as_str()),
        ("stale-index-entry", wrong.as_str()),
        ("stale-index-entry", ghost.as_str()),
        ("stale-index-entry", malformed.as_str()),
        ("orphan-ipam-cursor", "/tern/index/ipam/no-such-subnet"),
    ]);
    assert_eq!(found, expected, "{:#?}", report.violations);
    // What a listing shows meanwhile: only ports that match (a stale entry shows nothing).
    let (_, v) = s.get("/v2.0/ports?device_id=vm-9").await;
    assert!(ids(&v, "ports").is_empty(), "{v}");

    for done in repair(&s.nb, &report.violations).await {
        assert!(done.error.is_none(), "{done}");
    }
    let after = check(&s.nb).await.unwrap();
    assert!(after.violations.is_empty(), "{:#?}", after.violations);
    let (_, v) = s.get("/v2.0/ports?device_id=vm-2").await;
    assert!(ids(&v, "ports").contains(&p1), "{v}");
    let (_, v) = s.get(&format!("/v2.0/ports?network_id={}", nets[0])).await;
    assert!(ids(&v, "ports").contains(&p0), "{v}");
    s.stop().await;
}

fn address(p: &Value) -> String {
    p["fixed_ips"][0]["ip_address"].as_str().unwrap_or_else(|| panic!("no address: {p}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn addresses_are_distinct_in_their_pools_and_run_out_with_a_409() {
    let s = Arc::new(start().await);
    let net = s.network("n").await;
    let sub = s
        .create(
            "subnets",
            "subnet",
            json!({"network_id": net["id"], "cidr": "10.30.0.0/24", "ip_version": 4,
                   "allocation_pools": [{"start": "10.30.0.100", "end": "10.30.0.179"}]}),
        )
        .await;
    // The first ports of a fresh subnet: its lowest addresses, in order.
    let first: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(address(&s.port(&net, json!({})).await));
        }
        v
    };
    assert_eq!(first, ["10.30.0.100", "10.30.0.101", "10.30.0.102"]);
    // 8 concurrent clients take the 77 addresses left, and some more.
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (s, net, sub) = (s.clone(), net.clone(), sub.clone());
        clients.push(tokio::spawn(async move {
            let (mut got, mut full) = (Vec::new(), 0);
            for _ in 0..11 {
                let (st, v) = s
                    .post(
                        "/v2.0/ports",
                        json!({"port": {"network_id": net["id"], "fixed_ips": [{"subnet_id": sub["id"]}]}}),
                    )
                    .await;
                match st {
                    201 => got.push(address(&v["port"])),
                    409 => {
                        assert_eq!(err_type(&v), "IpAddressGenerationFailure", "{v}");
                        full += 1;
                    }
                    _ => panic!("{st}: {v}"),
                }
            }
            (got, full)
        }));
    }
    let mut seen: HashSet<String> = first.into_iter().collect();
    let mut refused = 0;
    for c in clients {
        let (got, full) = c.await.unwrap();
        refused += full;
        for a in got {
            let last: u32 = a.rsplit('.').next().unwrap().parse().unwrap();
            assert!(a.starts_with("10.30.0.") && (100..=179).contains(&last), "{a} is outside the pool");
            assert!(seen.insert(a.clone()), "{a} handed out twice");
        }
    }
    assert_eq!(seen.len(), 80, "the pool is full");
    assert_eq!(refused, 8 * 11 - 77, "each create past the end is a 409");
    let got = s.post("/v2.0/ports", json!({"port": {"network_id": net["id"]}})).await;
    assert_eq!(got.0, 409, "{}", got.1);
    assert_eq!(err_type(&got.1), "IpAddressGenerationFailure");
}
