//! `tern allinone`: the Neutron API and a controller in one process on the embedded store, against
//! a real OVS. A port created through the API and plugged as os-vif does becomes ACTIVE and gets
//! its flows on br-int; `/metrics` shows the controller's and the API's work.

use serde_json::{json, Value};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tern_ovsdb::testing::OvsSandbox;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_created_through_the_api_gets_active_and_its_flows() {
    let sbx = OvsSandbox::start_isolated().expect("start OVS");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_port = free_port();
    let base = format!("http://127.0.0.1:{port}/v2.0");
    let _tern = Killed(
        Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["allinone", "--chassis", "hv1", "--tunnel-ip", "172.31.0.1", "--datapath-type", "netdev"])
            .args(["--ovsdb", &sbx.db_sock(), "--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .arg("--nb")
            .arg(format!("redb:{}", dir.path().join("nb.redb").display()))
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{base}/{path}")).json(&body);
        async move {
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success(), "POST {}", resp.status());
            resp.json::<Value>().await.unwrap()
        }
    };
    eventually("the API", || {
        let r = http.get(format!("{base}/networks")).send();
        async move { r.await.ok().filter(|r| r.status().is_success()) }
    })
    .await;
    let net = post("networks", json!({"network": {"name": "n"}})).await["network"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sub =
        post("subnets", json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/24"}})).await;
    let sub = sub["subnet"]["id"].as_str().unwrap().to_owned();
    let p = post(
        "ports",
        json!({"port": {"network_id": net, "fixed_ips": [{"subnet_id": sub}], "binding:host_id": "hv1"}}),
    )
    .await;
    let port_id = p["port"]["id"].as_str().unwrap().to_owned();
    let mac = p["port"]["mac_address"].as_str().unwrap().to_owned();

    // The controller made br-int; plug the VIF.
    eventually("br-int", || {
        let ok = sbx.vsctl(&["br-exists", "br-int"]).is_ok();
        async move { ok.then_some(()) }
    })
    .await;
    sbx.vsctl(&[
        "add-port",
        "br-int",
        "vm1",
        "--",
        "set",
        "interface",
        "vm1",
        "type=internal",
        &format!("external_ids:iface-id={port_id}"),
        &format!("external_ids:attached-mac={mac}"),
    ])
    .unwrap();
    eventually("the port ACTIVE in the API", || {
        let r = http.get(format!("{base}/ports/{port_id}")).send();
        async move {
            let v: Value = r.await.ok()?.json().await.ok()?;
            (v["port"]["status"] == "ACTIVE").then_some(())
        }
    })
    .await;
    let mgmt = format!("unix:{}", sbx.mgmt_sock("br-int").display());
    eventually("the port's L2 flow", || {
        let flows = sbx.ofctl(&["-O", "OpenFlow13", "dump-flows", &mgmt, "--no-stats"]).unwrap_or_default();
        let found = flows.lines().any(|l| l.contains(&format!("dl_dst={mac}")));
        async move { found.then_some(()) }
    })
    .await;
    // The chassis shows up as an agent.
    let agents: Value = http.get(format!("{base}/agents")).send().await.unwrap().json().await.unwrap();
    assert_eq!(agents["agents"][0]["host"], "hv1", "{agents}");

    // The metrics: the controller's flows and bundles, the API's requests by route and status.
    let metrics = http.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await.unwrap();
    assert!(metrics.status().is_success());
    let text = metrics.text().await.unwrap();
    let value = |prefix: &str| -> f64 {
        let line =
            text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("tern_controller_flows{chassis=\"hv1\"}") > 0.0);
    assert!(value("tern_controller_bundle_flow_mods_count{chassis=\"hv1\"}") >= 1.0);
    assert!(value("tern_controller_reconcile_seconds_count{chassis=\"hv1\"}") >= 1.0);
    assert!(value("tern_controller_nb_revision_lag{chassis=\"hv1\"}") >= 0.0);
    assert!(
        value("tern_api_request_seconds_count{method=\"POST\",route=\"/v2.0/ports\",status=\"201\"}") >= 1.0
    );
}
