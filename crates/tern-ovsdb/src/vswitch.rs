//! The Open_vSwitch operations tern needs: ensure the integration bridge, ensure one flow-based
//! tunnel port and learn its ofport, and derive the VIFs (interfaces with `external_ids:iface-id`)
//! from a replica, as a set and as a stream of added / changed / removed events. Each write is
//! one transaction, planned by a pure function from what a read transaction saw.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::client::Client;
use crate::datum::{
    self, column, named_uuid, read_opt_int, read_opt_str, read_str_map, read_str_set, read_uuid_set, row,
    row_uuid, Row,
};
use crate::error::OvsdbError;
use crate::protocol::{Condition, MonitorTable, Mutation, Op, OpResult, WaitUntil};
use crate::replica::Replica;
use crate::watcher::Snapshot;

/// The database of Open vSwitch.
pub const DB: &str = "Open_vSwitch";

/// How many times a write is re-planned when a concurrent writer got in between.
const ATTEMPTS: usize = 3;

/// The tables and columns the watcher replicates for tern.
pub fn monitored_tables() -> Vec<MonitorTable> {
    vec![
        MonitorTable::columns(
            "Open_vSwitch",
            &["bridges", "external_ids", "other_config", "cur_cfg", "next_cfg"],
        ),
        MonitorTable::columns(
            "Bridge",
            &[
                "name",
                "ports",
                "fail_mode",
                "datapath_type",
                "protocols",
                "other_config",
                "external_ids",
                "controller",
                "datapath_id",
            ],
        ),
        MonitorTable::columns("Port", &["name", "interfaces", "external_ids", "other_config"]),
        MonitorTable::columns(
            "Interface",
            &[
                "name",
                "type",
                "options",
                "external_ids",
                "ofport",
                "link_state",
                "admin_state",
                "mac_in_use",
                "error",
            ],
        ),
    ]
}

/// What the integration bridge must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    pub name: String,
    /// `netdev` (userspace) or `system`; the lab has no kernel datapath.
    pub datapath_type: String,
    /// `secure`: no fallback to NORMAL switching without a controller.
    pub fail_mode: String,
    /// OpenFlow versions the bridge speaks.
    pub protocols: Vec<String>,
    /// A controller target (`punix:...`, `tcp:127.0.0.1:6653`); `None` leaves controllers alone.
    pub controller: Option<String>,
    /// Keys set in `other_config` (other keys are left alone).
    pub other_config: BTreeMap<String, String>,
}

impl BridgeConfig {
    /// tern's br-int: fail_mode=secure, OpenFlow13-15, other_config:disable-in-band=true.
    pub fn br_int(datapath_type: &str, controller: Option<&str>) -> Self {
        BridgeConfig {
            name: "br-int".to_string(),
            datapath_type: datapath_type.to_string(),
            fail_mode: "secure".to_string(),
            protocols: ["OpenFlow13", "OpenFlow14", "OpenFlow15"].map(String::from).to_vec(),
            controller: controller.map(str::to_string),
            other_config: [("disable-in-band".to_string(), "true".to_string())].into_iter().collect(),
        }
    }
}

/// The result of an `ensure_*` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    /// The bridge's (or interface's) row uuid.
    pub uuid: Uuid,
    /// False when the database already held what was asked (nothing was written).
    pub changed: bool,
}

/// What a read transaction saw, for planning a bridge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BridgeView {
    /// The Open_vSwitch row: its uuid and bridges.
    pub ovs: Option<(Uuid, Vec<Uuid>)>,
    pub bridge: Option<Row>,
    /// The Port and Interface named like the bridge.
    pub port: Option<Row>,
    pub iface: Option<Row>,
    /// Controller uuid -> target.
    pub controllers: BTreeMap<Uuid, String>,
}

/// The planned write: its ops (empty = nothing to do) and where the results are.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub ops: Vec<Op>,
    /// The existing row's uuid, or the index of the op inserting it.
    pub target: PlanTarget,
    /// Index of a mutate op that must hit exactly one row.
    pub must_hit: Vec<usize>,
}

/// Where the uuid of the ensured row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanTarget {
    Existing(Uuid),
    Inserted(usize),
}

fn first_row(results: &[OpResult], i: usize) -> Option<Row> {
    results.get(i)?.rows.as_ref()?.first().cloned()
}

fn read_bridge_ops(name: &str) -> Vec<Op> {
    vec![
        Op::select("Open_vSwitch", vec![], Some(&["_uuid", "bridges"])),
        Op::select(
            "Bridge",
            vec![Condition::name(name)],
            Some(&[
                "_uuid",
                "name",
                "ports",
                "fail_mode",
                "datapath_type",
                "protocols",
                "other_config",
                "controller",
            ]),
        ),
        Op::select("Port", vec![Condition::name(name)], Some(&["_uuid", "name", "interfaces"])),
        Op::select("Interface", vec![Condition::name(name)], Some(&["_uuid", "name", "type"])),
        Op::select("Controller", vec![], Some(&["_uuid", "target"])),
    ]
}

fn bridge_view(results: &[OpResult]) -> BridgeView {
    let ovs = first_row(results, 0).and_then(|r| Some((row_uuid(&r)?, read_uuid_set(column(&r, "bridges")))));
    let controllers = results
        .get(4)
        .and_then(|r| r.rows.as_ref())
        .map(|rows| {
            rows.iter()
                .filter_map(|r| Some((row_uuid(r)?, column(r, "target").as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    BridgeView {
        ovs,
        bridge: first_row(results, 1),
        port: first_row(results, 2),
        iface: first_row(results, 3),
        controllers,
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let s: BTreeSet<&String> = v.iter().collect();
    s.into_iter().cloned().collect()
}

/// Plans the one transaction that makes the database hold `cfg` (pure).
pub fn plan_bridge(cfg: &BridgeConfig, view: &BridgeView) -> Result<Plan, OvsdbError> {
    let Some((ovs_uuid, ovs_bridges)) = &view.ovs else {
        return Err(OvsdbError::NotFound {
            what: "the Open_vSwitch row (database not initialized: run ovs-vsctl init)".into(),
        });
    };
    let name = cfg.name.as_str();
    let mut ops = Vec::new();
    let mut must_hit = Vec::new();
    let Some(bridge) = &view.bridge else {
        if view.port.is_some() {
            return Err(OvsdbError::Conflict { what: format!("port {name} exists on another bridge") });
        }
        // Still absent when we write (a concurrent creator makes this fail: we re-plan).
        ops.push(Op::wait(
            "Bridge",
            vec![Condition::name(name)],
            &["name"],
            WaitUntil::Equal,
            vec![],
            Some(0),
        ));
        ops.push(
            Op::insert("Interface", row([("name", json!(name)), ("type", json!("internal"))]))
                .with_uuid_name("iface"),
        );
        ops.push(
            Op::insert(
                "Port",
                row([("name", json!(name)), ("interfaces", datum::set([named_uuid("iface")]))]),
            )
            .with_uuid_name("port"),
        );
        let mut controllers = Vec::new();
        if let Some(target) = &cfg.controller {
            ops.push(Op::insert("Controller", row([("target", json!(target))])).with_uuid_name("ctrl"));
            controllers.push(named_uuid("ctrl"));
        }
        let bridge_row = row([
            ("name", json!(name)),
            ("ports", datum::set([named_uuid("port")])),
            ("fail_mode", json!(cfg.fail_mode)),
            ("datapath_type", json!(cfg.datapath_type)),
            ("protocols", datum::str_set(cfg.protocols.iter().cloned())),
            ("other_config", datum::str_map(cfg.other_config.clone())),
            ("controller", datum::set(controllers)),
        ]);
        let insert_at = ops.len();
        ops.push(Op::insert("Bridge", bridge_row).with_uuid_name("bridge"));
        must_hit.push(ops.len());
        ops.push(Op::mutate(
            "Open_vSwitch",
            vec![Condition::uuid(ovs_uuid)],
            vec![Mutation::insert("bridges", datum::set([named_uuid("bridge")]))],
        ));
        return Ok(Plan { ops, target: PlanTarget::Inserted(insert_at), must_hit });
    };

    let Some(bridge_uuid) = row_uuid(bridge) else {
        return Err(OvsdbError::protocol("select Bridge", "row without _uuid"));
    };
    let by_uuid = vec![Condition::uuid(&bridge_uuid)];
    let mut set_cols = Vec::new();
    if read_opt_str(column(bridge, "fail_mode")).as_deref() != Some(cfg.fail_mode.as_str()) {
        set_cols.push(("fail_mode", json!(cfg.fail_mode)));
    }
    if column(bridge, "datapath_type").as_str() != Some(cfg.datapath_type.as_str()) {
        set_cols.push(("datapath_type", json!(cfg.datapath_type)));
    }
    if sorted(&read_str_set(column(bridge, "protocols"))) != sorted(&cfg.protocols) {
        set_cols.push(("protocols", datum::str_set(cfg.protocols.iter().cloned())));
    }
    if let Some(target) = &cfg.controller {
        let have: Vec<&str> = read_uuid_set(column(bridge, "controller"))
            .iter()
            .map(|u| view.controllers.get(u).map_or("", String::as_str))
            .collect();
        if have != [target.as_str()] {
            ops.push(Op::insert("Controller", row([("target", json!(target))])).with_uuid_name("ctrl"));
            set_cols.push(("controller", datum::set([named_uuid("ctrl")])));
        }
    }
    if !set_cols.is_empty() {
        ops.push(Op::update("Bridge", by_uuid.clone(), row(set_cols)));
    }
    let other = read_str_map(column(bridge, "other_config"));
    let mut mutations = Vec::new();
    for (k, v) in &cfg.other_config {
        if other.get(k) != Some(v) {
            mutations.push(Mutation::delete("other_config", datum::str_set([k.clone()])));
            mutations.push(Mutation::insert("other_config", datum::str_map([(k.clone(), v.clone())])));
        }
    }
    if !mutations.is_empty() {
        ops.push(Op::mutate("Bridge", by_uuid.clone(), mutations));
    }

    // The bridge's own internal port.
    let ports = read_uuid_set(column(bridge, "ports"));
    match &view.port {
        Some(port) => {
            let port_uuid = row_uuid(port);
            if !port_uuid.is_some_and(|u| ports.contains(&u)) {
                return Err(OvsdbError::Conflict { what: format!("port {name} exists on another bridge") });
            }
            let iface_type = view.iface.as_ref().map(|i| column(i, "type").as_str().unwrap_or(""));
            if iface_type.is_some() && iface_type != Some("internal") {
                ops.push(Op::update(
                    "Interface",
                    vec![Condition::name(name)],
                    row([("type", json!("internal"))]),
                ));
            }
        }
        None => {
            ops.push(
                Op::insert("Interface", row([("name", json!(name)), ("type", json!("internal"))]))
                    .with_uuid_name("iface"),
            );
            ops.push(
                Op::insert(
                    "Port",
                    row([("name", json!(name)), ("interfaces", datum::set([named_uuid("iface")]))]),
                )
                .with_uuid_name("port"),
            );
            must_hit.push(ops.len());
            ops.push(Op::mutate(
                "Bridge",
                by_uuid.clone(),
                vec![Mutation::insert("ports", datum::set([named_uuid("port")]))],
            ));
        }
    }
    if !ovs_bridges.contains(&bridge_uuid) {
        must_hit.push(ops.len());
        ops.push(Op::mutate(
            "Open_vSwitch",
            vec![Condition::uuid(ovs_uuid)],
            vec![Mutation::insert("bridges", datum::uuid(&bridge_uuid))],
        ));
    }
    Ok(Plan { ops, target: PlanTarget::Existing(bridge_uuid), must_hit })
}

/// Runs a plan; `Ok(None)` if a concurrent writer invalidated it (re-plan).
async fn run_plan(client: &Client, plan: Plan, what: &str) -> Result<Option<Ensured>, OvsdbError> {
    if plan.ops.is_empty() {
        if let PlanTarget::Existing(uuid) = plan.target {
            return Ok(Some(Ensured { uuid, changed: false }));
        }
    }
    let mut ops = vec![Op::comment(&format!("tern: {what}"))];
    ops.extend(plan.ops);
    let results = match client.transact(DB, ops).await {
        Ok(r) => r,
        // A `wait` guard failed or a unique name was taken meanwhile.
        Err(OvsdbError::OpFailed { ref error, .. })
            if error == "timed out" || error == "constraint violation" =>
        {
            tracing::debug!(what, "concurrent change; re-planning");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    for i in plan.must_hit {
        if results.get(i + 1).and_then(|r| r.count) != Some(1) {
            return Ok(None);
        }
    }
    let uuid = match plan.target {
        PlanTarget::Existing(u) => u,
        PlanTarget::Inserted(i) => results
            .get(i + 1)
            .and_then(|r| r.uuid)
            .ok_or_else(|| OvsdbError::protocol("transact result", "insert without uuid"))?,
    };
    Ok(Some(Ensured { uuid, changed: true }))
}

/// Makes the database hold the bridge `cfg` describes, with its internal port, listed in
/// Open_vSwitch.bridges. One read and (only if something differs) one write transaction;
/// calling it again changes nothing.
pub async fn ensure_bridge(client: &Client, cfg: &BridgeConfig) -> Result<Ensured, OvsdbError> {
    for _ in 0..ATTEMPTS {
        let view = bridge_view(&client.transact(DB, read_bridge_ops(&cfg.name)).await?);
        let plan = plan_bridge(cfg, &view)?;
        if let Some(done) = run_plan(client, plan, &format!("ensure bridge {}", cfg.name)).await? {
            return Ok(done);
        }
    }
    Err(OvsdbError::Conflict { what: format!("bridge {} kept changing while being ensured", cfg.name) })
}

/// One port of a special interface type that tern owns on a bridge: the flow-based tunnel port
/// (`remote_ip=flow`, `key=flow`), or one end of a patch between br-int and a provider bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    pub bridge: String,
    /// Port and interface name.
    pub name: String,
    /// `geneve` (or `vxlan`, `gre`), or `patch`.
    pub tunnel_type: String,
    /// The interface options this port must have.
    options: BTreeMap<String, String>,
}

impl TunnelConfig {
    /// A flow-based Geneve port `name` on `bridge`.
    pub fn geneve(bridge: &str, name: &str) -> Self {
        TunnelConfig {
            bridge: bridge.to_string(),
            name: name.to_string(),
            tunnel_type: "geneve".to_string(),
            options: [("remote_ip", "flow"), ("key", "flow")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
        }
    }

    /// A patch port `name` on `bridge` whose other end is the patch port `peer` (on another
    /// bridge).
    pub fn patch(bridge: &str, name: &str, peer: &str) -> Self {
        TunnelConfig {
            bridge: bridge.to_string(),
            name: name.to_string(),
            tunnel_type: "patch".to_string(),
            options: BTreeMap::from([("peer".to_string(), peer.to_string())]),
        }
    }

    /// With `options:local_ip` (the tunnel source address).
    pub fn with_local_ip(mut self, ip: &str) -> Self {
        self.options.insert("local_ip".into(), ip.to_string());
        self
    }

    /// The interface options this port must have.
    pub fn options(&self) -> BTreeMap<String, String> {
        self.options.clone()
    }
}

/// What a read transaction saw, for planning a tunnel port.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TunnelView {
    pub bridge: Option<Row>,
    pub port: Option<Row>,
    pub iface: Option<Row>,
}

/// Plans the one transaction that makes the tunnel port exist as configured (pure).
pub fn plan_tunnel(cfg: &TunnelConfig, view: &TunnelView) -> Result<Plan, OvsdbError> {
    let Some(bridge) = &view.bridge else {
        return Err(OvsdbError::NotFound { what: format!("bridge {}", cfg.bridge) });
    };
    let Some(bridge_uuid) = row_uuid(bridge) else {
        return Err(OvsdbError::protocol("select Bridge", "row without _uuid"));
    };
    let name = cfg.name.as_str();
    let options = cfg.options();
    let mut ops = Vec::new();
    let mut must_hit = Vec::new();
    match (&view.port, &view.iface) {
        (Some(port), Some(iface)) => {
            if !row_uuid(port).is_some_and(|u| read_uuid_set(column(bridge, "ports")).contains(&u)) {
                return Err(OvsdbError::Conflict {
                    what: format!("port {name} exists but not on bridge {}", cfg.bridge),
                });
            }
            let iface_uuid = row_uuid(iface)
                .ok_or_else(|| OvsdbError::protocol("select Interface", "row without _uuid"))?;
            if column(iface, "type").as_str() != Some(cfg.tunnel_type.as_str())
                || read_str_map(column(iface, "options")) != options
            {
                ops.push(Op::update(
                    "Interface",
                    vec![Condition::uuid(&iface_uuid)],
                    row([("type", json!(cfg.tunnel_type)), ("options", datum::str_map(options))]),
                ));
            }
            Ok(Plan { ops, target: PlanTarget::Existing(iface_uuid), must_hit })
        }
        (Some(_), None) | (None, Some(_)) => Err(OvsdbError::Conflict {
            what: format!("port {name} and interface {name} do not match (one exists without the other)"),
        }),
        (None, None) => {
            ops.push(
                Op::insert(
                    "Interface",
                    row([
                        ("name", json!(name)),
                        ("type", json!(cfg.tunnel_type)),
                        ("options", datum::str_map(options)),
                    ]),
                )
                .with_uuid_name("iface"),
            );
            ops.push(
                Op::insert(
                    "Port",
                    row([("name", json!(name)), ("interfaces", datum::set([named_uuid("iface")]))]),
                )
                .with_uuid_name("port"),
            );
            must_hit.push(ops.len());
            ops.push(Op::mutate(
                "Bridge",
                vec![Condition::uuid(&bridge_uuid)],
                vec![Mutation::insert("ports", datum::set([named_uuid("port")]))],
            ));
            Ok(Plan { ops, target: PlanTarget::Inserted(0), must_hit })
        }
    }
}

/// The ensured tunnel port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPort {
    pub name: String,
    /// The Interface row.
    pub uuid: Uuid,
    /// The OpenFlow port number OVS assigned.
    pub ofport: u32,
    /// False when the database already held the port as configured.
    pub changed: bool,
}

/// Makes the tunnel port exist (one transaction if anything differs) and waits, up to `timeout`,
/// until OVS has assigned its ofport.
pub async fn ensure_tunnel_port(
    client: &Client,
    cfg: &TunnelConfig,
    timeout: Duration,
) -> Result<TunnelPort, OvsdbError> {
    let what = format!("ensure tunnel port {} on {}", cfg.name, cfg.bridge);
    for _ in 0..ATTEMPTS {
        let read = vec![
            Op::select("Bridge", vec![Condition::name(&cfg.bridge)], Some(&["_uuid", "ports"])),
            Op::select("Port", vec![Condition::name(&cfg.name)], Some(&["_uuid"])),
            Op::select("Interface", vec![Condition::name(&cfg.name)], Some(&["_uuid", "type", "options"])),
        ];
        let r = client.transact(DB, read).await?;
        let view = TunnelView { bridge: first_row(&r, 0), port: first_row(&r, 1), iface: first_row(&r, 2) };
        let plan = plan_tunnel(cfg, &view)?;
        if let Some(done) = run_plan(client, plan, &what).await? {
            let ofport = wait_for_ofport(client, &cfg.name, timeout).await?;
            return Ok(TunnelPort { name: cfg.name.clone(), uuid: done.uuid, ofport, changed: done.changed });
        }
    }
    Err(OvsdbError::Conflict { what: format!("port {} kept changing while being ensured", cfg.name) })
}

/// The ofport of an Interface row, when OVS has assigned one (1..=65279, or 65534 for LOCAL).
pub fn assigned_ofport(iface: &Row) -> Option<u32> {
    read_opt_int(column(iface, "ofport")).filter(|p| *p > 0).and_then(|p| u32::try_from(p).ok())
}

/// Waits (up to `timeout`) until OVS assigns interface `name` an ofport, watching a monitor of
/// the Interface table (no polling). Fails at once if OVS reports the interface failed.
pub async fn wait_for_ofport(client: &Client, name: &str, timeout: Duration) -> Result<u32, OvsdbError> {
    let check = |replica: &Replica| -> Option<Result<u32, OvsdbError>> {
        let (_, iface) = replica.by_name("Interface", name)?;
        if let Some(p) = assigned_ofport(iface) {
            return Some(Ok(p));
        }
        let err = read_opt_str(column(iface, "error"));
        if read_opt_int(column(iface, "ofport")) == Some(-1) {
            if let Some(error) = err {
                return Some(Err(OvsdbError::InterfaceFailed { name: name.to_string(), error }));
            }
        }
        None
    };
    let fut = async {
        let tables = [MonitorTable::columns("Interface", &["name", "ofport", "error"])];
        let (initial, mut updates) = client.monitor(DB, &tables).await?;
        let mut replica = Replica::from_initial(&initial);
        loop {
            if let Some(r) = check(&replica) {
                return r;
            }
            match updates.recv().await {
                Some(u) => {
                    replica.apply(&u);
                }
                None => {
                    return Err(OvsdbError::Disconnected {
                        target: client.target().to_string(),
                        method: format!("ofport of {name}"),
                    })
                }
            }
        }
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| OvsdbError::Timeout {
        what: format!("an ofport for interface {name}"),
        after: timeout,
    })?
}

/// A VIF: an interface carrying `external_ids:iface-id` (the Neutron port id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vif {
    /// The interface name (unique in OVS; the key of the VIF set).
    pub name: String,
    /// The Interface row.
    pub uuid: Uuid,
    pub iface_id: String,
    /// `external_ids:attached-mac`.
    pub attached_mac: Option<String>,
    /// Only once OVS has assigned one (> 0).
    pub ofport: Option<u32>,
    /// `up` / `down`, when OVS reports it.
    pub link_state: Option<String>,
}

impl Vif {
    /// Reads a VIF from an Interface row; `None` if the row has no `iface-id`.
    pub fn from_row(uuid: Uuid, iface: &Row) -> Option<Vif> {
        let ext = read_str_map(column(iface, "external_ids"));
        let iface_id = ext.get("iface-id").filter(|s| !s.is_empty())?.clone();
        Some(Vif {
            name: column(iface, "name").as_str()?.to_string(),
            uuid,
            iface_id,
            attached_mac: ext.get("attached-mac").cloned(),
            ofport: assigned_ofport(iface),
            link_state: read_opt_str(column(iface, "link_state")),
        })
    }
}

/// Every VIF in the replica, by interface name.
pub fn vifs(replica: &Replica) -> BTreeMap<String, Vif> {
    replica.rows("Interface").filter_map(|(u, r)| Vif::from_row(*u, r)).map(|v| (v.name.clone(), v)).collect()
}

/// The VIFs of one bridge (Bridge.ports -> Port.interfaces), by interface name.
pub fn vifs_on_bridge(replica: &Replica, bridge: &str) -> BTreeMap<String, Vif> {
    let Some((_, b)) = replica.by_name("Bridge", bridge) else {
        return BTreeMap::new();
    };
    read_uuid_set(column(b, "ports"))
        .iter()
        .filter_map(|p| replica.get("Port", p))
        .flat_map(|p| read_uuid_set(column(p, "interfaces")))
        .filter_map(|i| Vif::from_row(i, replica.get("Interface", &i)?))
        .map(|v| (v.name.clone(), v))
        .collect()
}

/// A change of the VIF set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VifEvent {
    Added(Vif),
    Changed { old: Vif, new: Vif },
    Removed(Vif),
}

impl VifEvent {
    /// The VIF as it is now (as it was, for removals).
    pub fn vif(&self) -> &Vif {
        match self {
            VifEvent::Added(v) | VifEvent::Removed(v) | VifEvent::Changed { new: v, .. } => v,
        }
    }
}

/// The events that turn VIF set `old` into `new` (pure).
pub fn diff_vifs(old: &BTreeMap<String, Vif>, new: &BTreeMap<String, Vif>) -> Vec<VifEvent> {
    let mut out = Vec::new();
    for (name, o) in old {
        match new.get(name) {
            None => out.push(VifEvent::Removed(o.clone())),
            Some(n) if n != o => out.push(VifEvent::Changed { old: o.clone(), new: n.clone() }),
            Some(_) => {}
        }
    }
    for (name, n) in new {
        if !old.contains_key(name) {
            out.push(VifEvent::Added(n.clone()));
        }
    }
    out
}

/// A stream of VIF events following a watcher's snapshots (`bridge: None` = all bridges). The
/// replica survives disconnects, so VIFs are not reported removed while OVSDB is away; after a
/// resync the stream reports the difference.
pub fn vif_events(
    mut snapshots: watch::Receiver<Snapshot>,
    bridge: Option<&str>,
) -> mpsc::UnboundedReceiver<VifEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    let bridge = bridge.map(str::to_string);
    tokio::spawn(async move {
        let mut current = BTreeMap::new();
        loop {
            let replica = snapshots.borrow_and_update().replica.clone();
            let next = match &bridge {
                Some(b) => vifs_on_bridge(&replica, b),
                None => vifs(&replica),
            };
            for ev in diff_vifs(&current, &next) {
                if tx.send(ev).is_err() {
                    return;
                }
            }
            current = next;
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { return },
                _ = tx.closed() => return,
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{RowUpdate, TableUpdates};
    use serde_json::Value;

    fn u(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn ovs_view() -> BridgeView {
        BridgeView { ovs: Some((u(1), vec![])), ..Default::default() }
    }

    #[test]
    fn new_bridge_is_one_transaction() {
        let cfg = BridgeConfig::br_int("netdev", Some("punix:/x/ctl"));
        let plan = plan_bridge(&cfg, &ovs_view()).unwrap();
        let names: Vec<&str> = plan.ops.iter().map(Op::name).collect();
        assert_eq!(names, ["wait", "insert", "insert", "insert", "insert", "mutate"]);
        assert_eq!(plan.target, PlanTarget::Inserted(4));
        assert_eq!(plan.must_hit, vec![5]);
        let b = plan.ops[4].to_json();
        assert_eq!(b["row"]["fail_mode"], json!("secure"));
        assert_eq!(b["row"]["other_config"], json!(["map", [["disable-in-band", "true"]]]));
        assert_eq!(b["row"]["protocols"], json!(["set", ["OpenFlow13", "OpenFlow14", "OpenFlow15"]]));
    }

    #[test]
    fn existing_bridge_as_asked_needs_nothing() {
        let cfg = BridgeConfig::br_int("netdev", Some("tcp:127.0.0.1:6653"));
        let view = BridgeView {
            ovs: Some((u(1), vec![u(2)])),
            bridge: Some(row([
                ("_uuid", datum::uuid(&u(2))),
                ("ports", datum::set([datum::uuid(&u(3))])),
                ("fail_mode", json!("secure")),
                ("datapath_type", json!("netdev")),
                ("protocols", json!(["set", ["OpenFlow15", "OpenFlow13", "OpenFlow14"]])),
                ("other_config", json!(["map", [["disable-in-band", "true"], ["x", "y"]]])),
                ("controller", datum::uuid(&u(4))),
            ])),
            port: Some(row([("_uuid", datum::uuid(&u(3)))])),
            iface: Some(row([("_uuid", datum::uuid(&u(5))), ("type", json!("internal"))])),
            controllers: [(u(4), "tcp:127.0.0.1:6653".to_string())].into(),
        };
        let plan = plan_bridge(&cfg, &view).unwrap();
        assert!(plan.ops.is_empty(), "{:?}", plan.ops);
        assert_eq!(plan.target, PlanTarget::Existing(u(2)));

        // Drifted: other fail mode, no in-band key, not in Open_vSwitch.bridges.
        let mut drift = view.clone();
        drift.ovs = Some((u(1), vec![]));
        let b = drift.bridge.as_mut().unwrap();
        b.insert("fail_mode".into(), json!(["set", []]));
        b.insert("other_config".into(), json!(["map", [["disable-in-band", "false"]]]));
        let plan = plan_bridge(&cfg, &drift).unwrap();
        let names: Vec<&str> = plan.ops.iter().map(Op::name).collect();
        assert_eq!(names, ["update", "mutate", "mutate"]);
        assert_eq!(plan.ops[0].to_json()["row"], json!({"fail_mode": "secure"}));
    }

    #[test]
    fn uninitialized_database_is_an_error() {
        let cfg = BridgeConfig::br_int("netdev", None);
        assert!(matches!(plan_bridge(&cfg, &BridgeView::default()), Err(OvsdbError::NotFound { .. })));
    }

    #[test]
    fn tunnel_plans() {
        let cfg = TunnelConfig::geneve("br-int", "tern-geneve").with_local_ip("172.31.0.1");
        assert!(matches!(plan_tunnel(&cfg, &TunnelView::default()), Err(OvsdbError::NotFound { .. })));
        let bridge = row([("_uuid", datum::uuid(&u(2))), ("ports", datum::set([datum::uuid(&u(3))]))]);
        let view = TunnelView { bridge: Some(bridge), ..Default::default() };
        let plan = plan_tunnel(&cfg, &view).unwrap();
        assert_eq!(plan.ops.len(), 3);
        assert_eq!(
            plan.ops[0].to_json()["row"]["options"],
            json!(["map", [["key", "flow"], ["local_ip", "172.31.0.1"], ["remote_ip", "flow"]]])
        );
        let done = TunnelView {
            port: Some(row([("_uuid", datum::uuid(&u(3)))])),
            iface: Some(row([
                ("_uuid", datum::uuid(&u(6))),
                ("type", json!("geneve")),
                ("options", datum::str_map(cfg.options())),
            ])),
            ..view
        };
        let plan = plan_tunnel(&cfg, &done).unwrap();
        assert!(plan.ops.is_empty());
        assert_eq!(plan.target, PlanTarget::Existing(u(6)));
    }

    fn iface(name: &str, ext: &[(&str, &str)], ofport: Value) -> Row {
        row([
            ("name", json!(name)),
            ("external_ids", datum::str_map(ext.iter().copied())),
            ("ofport", ofport),
            ("link_state", json!("up")),
        ])
    }

    #[test]
    fn vif_set_and_diff() {
        let mut rows = BTreeMap::new();
        let ins = |r: Row| RowUpdate { old: None, new: Some(r) };
        rows.insert(
            u(1),
            ins(iface(
                "vif1",
                &[("iface-id", "P1"), ("attached-mac", "fa:16:3e:00:00:01")],
                json!(["set", []]),
            )),
        );
        rows.insert(u(2), ins(iface("br-int", &[], json!(65534))));
        rows.insert(u(3), ins(iface("vif2", &[("iface-id", "P2")], json!(-1))));
        let mut replica = Replica::from_initial(&TableUpdates([("Interface".to_string(), rows)].into()));
        let a = vifs(&replica);
        assert_eq!(a.len(), 2);
        assert_eq!(a["vif1"].iface_id, "P1");
        assert_eq!(a["vif1"].ofport, None);
        assert_eq!(a["vif2"].ofport, None);
        assert_eq!(a["vif1"].attached_mac.as_deref(), Some("fa:16:3e:00:00:01"));

        let mut rows = BTreeMap::new();
        rows.insert(u(1), ins(iface("vif1", &[("iface-id", "P1")], json!(7))));
        rows.insert(u(3), RowUpdate { old: Some(Row::new()), new: None });
        replica.apply(&TableUpdates([("Interface".to_string(), rows)].into()));
        let b = vifs(&replica);
        let ev = diff_vifs(&a, &b);
        assert_eq!(ev.len(), 2);
        assert!(
            matches!(&ev[0], VifEvent::Changed { new, .. } if new.ofport == Some(7) && new.attached_mac.is_none())
        );
        assert!(matches!(&ev[1], VifEvent::Removed(v) if v.iface_id == "P2"));
        assert_eq!(diff_vifs(&b, &b), vec![]);
        assert!(matches!(&diff_vifs(&BTreeMap::new(), &b)[..], [VifEvent::Added(v)] if v.name == "vif1"));
        // Not on any bridge in this replica.
        assert!(vifs_on_bridge(&replica, "br-int").is_empty());
    }
}
