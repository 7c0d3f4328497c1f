//! The lab's Neutron client: what an operator and Nova send to `tern server` (reqwest, JSON).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use reqwest::Method;
use serde_json::{json, Value};

use super::control::ControlState;
use crate::exit::Exit;

pub struct Api {
    base: String,
    http: reqwest::Client,
}

/// A network with its (first IPv4) subnet.
pub struct Net {
    pub id: String,
    pub subnet_id: String,
    pub prefix_len: u8,
    /// The subnet's gateway (a router's address once one is attached).
    pub gateway: Option<Ipv4Addr>,
}

/// What the API gave the port.
pub struct NewPort {
    pub id: String,
    pub mac: String,
    pub ip: Ipv4Addr,
}

impl Api {
    /// The API of the lab in `dir` (from `control.json`).
    pub fn open(dir: &Path) -> anyhow::Result<Api> {
        let control = ControlState::read(dir)?;
        Ok(Api::new(&control.api))
    }

    pub fn new(base: &str) -> Api {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client builds");
        Api { base: base.trim_end_matches('/').to_owned(), http }
    }

    /// One request; a non-2xx answer is an error carrying Neutron's message. Returns the status
    /// and the body (Null when empty).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.with_context(|| format!("{method} {url}: reading the answer"))?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !(200..300).contains(&status) {
            let msg = value["NeutronError"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            bail!("{method} {path}: HTTP {status}: {msg}");
        }
        Ok((status, value))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.call(Method::GET, path, None).await?.1)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        Ok(self.call(Method::POST, path, Some(body)).await?.1)
    }

    /// The hosts of the registered chassis (`GET /v2.0/agents`).
    pub async fn chassis(&self) -> anyhow::Result<Vec<String>> {
        let v = self.get("/v2.0/agents").await?;
        let mut hosts: Vec<String> = v["agents"]
            .as_array()
            .ok_or_else(|| anyhow!("GET /v2.0/agents: no agents list in {v}"))?
            .iter()
            .filter_map(|a| a["host"].as_str().map(str::to_owned))
            .collect();
        hosts.sort();
        Ok(hosts)
    }

    /// The live migrations in flight (`GET /v2.0/migrations`), as the API shows them.
    pub async fn migrations(&self) -> anyhow::Result<Vec<Value>> {
        let v = self.get("/v2.0/migrations").await?;
        v["migrations"].as_array().cloned().ok_or_else(|| anyhow!("GET /v2.0/migrations: no list in {v}"))
    }

    /// Router `name` (created when absent) with an interface on each network's subnet.
    pub async fn ensure_router(&self, name: &str, networks: &[String]) -> anyhow::Result<String> {
        let routers = self.get("/v2.0/routers").await?;
        let existing = routers["routers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == name)
            .and_then(|r| r["id"].as_str().map(str::to_owned));
        let id = match existing {
            Some(id) => id,
            None => {
                let r = self.post("/v2.0/routers", json!({"router": {"name": name}})).await?;
                r["router"]["id"].as_str().ok_or_else(|| anyhow!("no router id in {r}"))?.to_owned()
            }
        };
        for network in networks {
            let net = self.ensure_network(network).await?;
            let body = json!({"subnet_id": net.subnet_id});
            let path = format!("/v2.0/routers/{id}/add_router_interface");
            match self.call(Method::PUT, &path, Some(body)).await {
                Ok(_) => super::progress(format!("router {name}: interface on {network}")),
                Err(e) if e.to_string().contains("HTTP 400") || e.to_string().contains("HTTP 409") => {
                    super::progress(format!("router {name}: interface on {network} already there ({e:#})"))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(id)
    }

    /// The lab's external network "public" (flat, on the hypervisors' `physnet1`, router:external)
    /// and its subnet (the external namespace's 172.24.4.0/24, gateway 172.24.4.1, floating IPs
    /// from .100), both created when absent; returns the network's id.
    pub async fn ensure_external_network(&self) -> anyhow::Result<String> {
        let nets = self.get("/v2.0/networks?name=public").await?;
        if let Some(id) = nets["networks"].as_array().into_iter().flatten().find_map(|n| n["id"].as_str()) {
            return Ok(id.to_owned());
        }
        let n = self
            .post(
                "/v2.0/networks",
                json!({"network": {"name": "public", "router:external": true,
                    "provider:network_type": "flat", "provider:physical_network": tern_lab::PHYSNET}}),
            )
            .await?;
        let id = n["network"]["id"].as_str().ok_or_else(|| anyhow!("no network id in {n}"))?.to_owned();
        let gateway = tern_lab::EXTERNAL_GATEWAY.to_string();
        self.post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": id, "ip_version": 4, "cidr": tern_lab::EXTERNAL_CIDR,
                "name": "public-v4", "gateway_ip": gateway, "enable_dhcp": false,
                "allocation_pools": [{"start": "172.24.4.100", "end": "172.24.4.250"}]}}),
        )
        .await?;
        super::progress(format!(
            "external network public ({}, {}) created",
            tern_lab::PHYSNET,
            tern_lab::EXTERNAL_CIDR
        ));
        Ok(id)
    }

    /// A floating IP on the external network for port `port`: the router with an interface on
    /// the port's network gets its gateway on the external network first (when it has none).
    /// Returns the floating address.
    pub async fn add_floating_ip(&self, port: &str) -> anyhow::Result<Ipv4Addr> {
        let external = self.ensure_external_network().await?;
        let p = self.get(&format!("/v2.0/ports/{port}")).await?;
        let network =
            p["port"]["network_id"].as_str().ok_or_else(|| anyhow!("port {port} has no network"))?;
        let interfaces = self
            .get(&format!("/v2.0/ports?network_id={network}&device_owner=network:router_interface"))
            .await?;
        let router = interfaces["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|i| i["device_id"].as_str())
            .ok_or_else(|| anyhow!("the VM's network has no router: add one with `tern lab router add`"))?
            .to_owned();
        let r = self.get(&format!("/v2.0/routers/{router}")).await?;
        if r["router"]["external_gateway_info"].is_null() {
            let body = json!({"router": {"external_gateway_info": {"network_id": external}}});
            self.call(Method::PUT, &format!("/v2.0/routers/{router}"), Some(body)).await?;
            super::progress(format!("router {router}: gateway on the external network"));
        }
        let f = self
            .post(
                "/v2.0/floatingips",
                json!({"floatingip": {"floating_network_id": external, "port_id": port}}),
            )
            .await?;
        f["floatingip"]["floating_ip_address"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| anyhow!("no floating address in {f}"))
    }

    /// The floating address of port `port`, if it has one.
    pub async fn floating_ip_of(&self, port: &str) -> anyhow::Result<Option<Ipv4Addr>> {
        let f = self.get(&format!("/v2.0/floatingips?port_id={port}")).await?;
        Ok(f["floatingips"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|f| f["floating_ip_address"].as_str()?.parse().ok()))
    }

    /// A security group with `rules` (each a JSON object of Neutron's rule attributes, without
    /// the group id); returns its id.
    pub async fn create_security_group(&self, name: &str, rules: &[Value]) -> anyhow::Result<String> {
        let g = self.post("/v2.0/security-groups", json!({"security_group": {"name": name}})).await?;
        let id = g["security_group"]["id"].as_str().ok_or_else(|| anyhow!("no group id in {g}"))?.to_owned();
        // A new group comes with Neutron's two egress rules; these are the ones asked for.
        for r in g["security_group"]["security_group_rules"].as_array().into_iter().flatten() {
            if let Some(rid) = r["id"].as_str() {
                self.call(Method::DELETE, &format!("/v2.0/security-group-rules/{rid}"), None).await?;
            }
        }
        for rule in rules {
            let mut r = rule.clone();
            r["security_group_id"] = json!(id);
            self.post("/v2.0/security-group-rules", json!({"security_group_rule": r})).await?;
        }
        Ok(id)
    }

    /// The ids of the security groups named `name`.
    pub async fn security_groups_named(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let g = self.get(&format!("/v2.0/security-groups?name={name}")).await?;
        Ok(g["security_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["id"].as_str().map(str::to_owned))
            .collect())
    }

    /// Port `port`'s security groups.
    pub async fn port_security_groups(&self, port: &str) -> anyhow::Result<Vec<String>> {
        let p = self.get(&format!("/v2.0/ports/{port}")).await?;
        Ok(p["port"]["security_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_owned))
            .collect())
    }

    /// Sets port `port`'s security groups.
    pub async fn set_port_security_groups(&self, port: &str, groups: &[String]) -> anyhow::Result<()> {
        let body = json!({"port": {"security_groups": groups}});
        self.call(Method::PUT, &format!("/v2.0/ports/{port}"), Some(body)).await.map(|_| ())
    }

    /// Network id -> name.
    async fn network_names(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let nets = self.get("/v2.0/networks").await?;
        Ok(nets["networks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| Some((n["id"].as_str()?.to_owned(), n["name"].as_str()?.to_owned())))
            .collect())
    }

    /// port id -> network name, for status.
    pub async fn port_networks(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let names = self.network_names().await?;
        let ports = self.get("/v2.0/ports").await?;
        Ok(ports["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let net = names.get(p["network_id"].as_str()?)?;
                Some((p["id"].as_str()?.to_owned(), net.clone()))
            })
            .collect())
    }

    /// Network name -> the ids of the routers with an interface on it.
    pub async fn routers_by_network(&self) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        let names = self.network_names().await?;
        let ports = self.get("/v2.0/ports?device_owner=network:router_interface").await?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in ports["ports"].as_array().into_iter().flatten() {
            let (Some(net), Some(router)) = (p["network_id"].as_str(), p["device_id"].as_str()) else {
                continue;
            };
            if let Some(name) = names.get(net) {
                out.entry(name.clone()).or_default().push(router.to_owned());
            }
        }
        Ok(out)
    }

    /// The network named `name` with an IPv4 subnet, both created when absent. A new subnet is
    /// 10.K.0.0/24, K the network's position in creation order (the next free K if taken).
    pub async fn ensure_network(&self, name: &str) -> anyhow::Result<Net> {
        let nets = self.get("/v2.0/networks").await?;
        let all = nets["networks"].as_array().cloned().unwrap_or_default();
        let found: Vec<&Value> = all.iter().filter(|n| n["name"].as_str() == Some(name)).collect();
        if found.len() > 1 {
            bail!("{} networks are named {name}; give each VM's network a unique name", found.len());
        }
        let (net_id, position) = match found.first() {
            Some(n) => {
                let id = n["id"].as_str().ok_or_else(|| anyhow!("network without id: {n}"))?.to_owned();
                let pos = ordered(&all).iter().position(|x| *x == id).unwrap_or(all.len()) + 1;
                (id, pos)
            }
            None => {
                let n = self.post("/v2.0/networks", json!({"network": {"name": name}})).await?;
                let id =
                    n["network"]["id"].as_str().ok_or_else(|| anyhow!("no network id in {n}"))?.to_owned();
                super::progress(format!("network {name} created ({id})"));
                (id, all.len() + 1)
            }
        };
        let subnets = self.get("/v2.0/subnets").await?;
        let subnets = subnets["subnets"].as_array().cloned().unwrap_or_default();
        let mine = subnets.iter().find(|s| s["network_id"].as_str() == Some(&net_id) && s["ip_version"] == 4);
        if let Some(s) = mine {
            let cidr = s["cidr"].as_str().unwrap_or_default();
            let prefix_len = cidr.split_once('/').and_then(|(_, l)| l.parse().ok()).unwrap_or(24);
            let id = s["id"].as_str().ok_or_else(|| anyhow!("subnet without id: {s}"))?.to_owned();
            let gateway = s["gateway_ip"].as_str().and_then(|g| g.parse().ok());
            return Ok(Net { id: net_id, subnet_id: id, prefix_len, gateway });
        }
        let used: Vec<&str> = subnets.iter().filter_map(|s| s["cidr"].as_str()).collect();
        // From the network's position on, then from 1 (a NB with many networks, e.g. a
        // background cloud's, puts a new one past 255).
        let k = (position.min(256)..=255)
            .chain(1..position.min(256))
            .find(|k| !used.contains(&format!("10.{k}.0.0/24").as_str()))
            .ok_or_else(|| anyhow!("no free 10.K.0.0/24 left for network {name}"))?;
        let cidr = format!("10.{k}.0.0/24");
        let s = self
            .post(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": cidr, "name": format!("{name}-v4")}}),
            )
            .await?;
        let id = s["subnet"]["id"].as_str().ok_or_else(|| anyhow!("no subnet id in {s}"))?.to_owned();
        super::progress(format!("subnet {cidr} created on network {name}"));
        let gateway = s["subnet"]["gateway_ip"].as_str().and_then(|g| g.parse().ok());
        Ok(Net { id: net_id, subnet_id: id, prefix_len: 24, gateway })
    }

    /// A port for VM `vm` bound to `host`, as Nova asks for one.
    pub async fn create_port(
        &self,
        net: &Net,
        vm: &str,
        host: &str,
        ip: Option<Ipv4Addr>,
    ) -> Result<NewPort, Exit> {
        let mut fixed = json!({"subnet_id": net.subnet_id});
        if let Some(ip) = ip {
            fixed["ip_address"] = json!(ip.to_string());
        }
        let body = json!({"port": {
            "network_id": net.id,
            "name": vm,
            "device_owner": "compute:nova",
            "device_id": vm,
            "binding:host_id": host,
            "fixed_ips": [fixed],
        }});
        let (_, p) = match self.call(Method::POST, "/v2.0/ports", Some(body)).await {
            Ok(r) => r,
            // A bad fixed IP or a taken address is the caller's input.
            Err(e) if e.to_string().contains("HTTP 4") => return Err(Exit::bad_input(e)),
            Err(e) => return Err(Exit::failure(e)),
        };
        let p = &p["port"];
        let id = p["id"].as_str().ok_or_else(|| Exit::failure(anyhow!("no port id in {p}")))?.to_owned();
        let mac = p["mac_address"].as_str().unwrap_or_default().to_owned();
        let ip = p["fixed_ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["ip_address"].as_str()?.parse::<Ipv4Addr>().ok())
            .next()
            .ok_or_else(|| Exit::failure(anyhow!("port {id} got no IPv4 address: {p}")))?;
        Ok(NewPort { id, mac, ip })
    }

    /// Deletes a port; one that is gone already is fine.
    pub async fn delete_port(&self, id: &str) -> anyhow::Result<()> {
        match self.call(Method::DELETE, &format!("/v2.0/ports/{id}"), None).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("HTTP 404") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Network ids in creation order (created_at, then id).
fn ordered(nets: &[Value]) -> Vec<String> {
    let mut v: Vec<(String, String)> = nets
        .iter()
        .filter_map(|n| {
            Some((n["created_at"].as_str().unwrap_or_default().to_owned(), n["id"].as_str()?.to_owned()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}
