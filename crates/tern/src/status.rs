//! `tern status`: the chassis and their liveness, read straight from the NB store (an operator
//! tool like `tern db`): name, tunnel IP, alive, last heartbeat and its age, the ports bound there
//! (`binding:host_id`) and the migrations in flight from or to it.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::SystemTime;

use anyhow::anyhow;
use clap::Args;
use serde_json::{json, Value};
use tern_model::{Chassis, Kind, Migration, Object, Port};
use tern_store::liveness::{self, Heartbeat};
use tern_store::nb::{Nb, NbError};
use tern_store::Dsn;

use crate::exit::Exit;

#[derive(Args)]
pub struct StatusArgs {
    /// The NB store: redb:PATH, memory:, etcd://HOST:PORT[,HOST:PORT] or, over TLS,
    /// etcds://HOST:PORT[,...]?ca=PATH&cert=PATH&key=PATH; with an etcd user,
    /// etcd[s]://USER:PASSWORD@HOST:PORT or ?user=NAME&password-file=PATH.
    #[arg(long, env = "TERN_NB", hide_env_values = true, default_value = Dsn::DEFAULT)]
    nb: String,
    /// Print a JSON array of objects instead of a table.
    #[arg(long)]
    json: bool,
    /// Only the chassis that are alive.
    #[arg(long, conflicts_with = "down")]
    alive: bool,
    /// Only the chassis that are down (no heartbeat).
    #[arg(long)]
    down: bool,
}

/// One chassis as `tern status` reports it.
struct Row {
    chassis: Chassis,
    heartbeat: Option<Heartbeat>,
    ports: usize,
    migrations: usize,
}

impl Row {
    fn age_s(&self, now_ms: u64) -> Option<f64> {
        self.heartbeat.as_ref().map(|h| now_ms.saturating_sub(h.heartbeat_at_ms) as f64 / 1000.0)
    }

    fn to_json(&self, now_ms: u64) -> Value {
        json!({
            "name": self.chassis.id,
            "hostname": self.chassis.hostname(),
            "tunnel_ip": self.chassis.tunnel_ip.to_string(),
            "alive": self.heartbeat.is_some(),
            "last_heartbeat": self.heartbeat.as_ref().map(|h| h.heartbeat_at.clone()),
            "heartbeat_age_s": self.age_s(now_ms).map(|a| (a * 10.0).round() / 10.0),
            "registered_at": self.chassis.registered_at,
            "ports": self.ports,
            "migrations": self.migrations,
        })
    }
}

pub(crate) fn nb_exit(e: NbError) -> Exit {
    if e.is_bad_input() {
        Exit::bad_input(e)
    } else {
        Exit::failure(e)
    }
}

/// Opens the NB store `dsn` names (a malformed DSN is bad input; an unreachable or busy store a
/// failure whose message says why, e.g. a redb file another process holds).
pub(crate) async fn open_nb(dsn: &str) -> Result<Nb, Exit> {
    let dsn: Dsn = dsn.parse().map_err(Exit::bad_input)?;
    let store = tern_store::open_dsn(&dsn)
        .await
        .map_err(|e| Exit::failure(anyhow!(e).context(format!("cannot open the NB store {dsn}"))))?;
    Ok(Nb::new(store))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn rows(nb: &Nb) -> Result<Vec<Row>, Exit> {
    let objects = |kind| async move { nb.list(kind).await.map(|(items, _)| items).map_err(nb_exit) };
    let chassis: Vec<Chassis> = objects(Kind::Chassis)
        .await?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Chassis(c) => Some(c),
            _ => None,
        })
        .collect();
    let ports: Vec<Port> = objects(Kind::Port)
        .await?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Port(p) => Some(p),
            _ => None,
        })
        .collect();
    let migrations: Vec<Migration> = objects(Kind::Migration)
        .await?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Migration(m) => Some(m),
            _ => None,
        })
        .filter(|m| !m.state.is_final())
        .collect();
    let mut alive = liveness::alive(&**nb.store()).await.map_err(|e| nb_exit(e.into()))?;
    // `binding:host_id` names a chassis by id, else by hostname (as the pipeline resolves it).
    let by_hostname: BTreeMap<&str, &str> =
        chassis.iter().filter(|c| c.hostname() != c.id).map(|c| (c.hostname(), c.id.as_str())).collect();
    let mut bound: BTreeMap<&str, usize> = BTreeMap::new();
    for p in ports.iter().filter(|p| !p.binding_host_id.is_empty()) {
        let host = p.binding_host_id.as_str();
        let id = if chassis.iter().any(|c| c.id == host) {
            host
        } else {
            by_hostname.get(host).copied().unwrap_or(host)
        };
        *bound.entry(id).or_default() += 1;
    }
    Ok(chassis
        .iter()
        .map(|c| Row {
            heartbeat: alive.remove(&c.id),
            ports: bound.get(c.id.as_str()).copied().unwrap_or(0),
            migrations: migrations.iter().filter(|m| m.source == c.id || m.destination == c.id).count(),
            chassis: c.clone(),
        })
        .collect())
}

pub async fn run(args: StatusArgs) -> Result<(), Exit> {
    let nb = open_nb(&args.nb).await?;
    let rows: Vec<Row> = rows(&nb)
        .await?
        .into_iter()
        .filter(|r| (!args.alive || r.heartbeat.is_some()) && (!args.down || r.heartbeat.is_none()))
        .collect();
    let now = now_ms();
    let mut out = std::io::stdout().lock();
    if args.json {
        let values: Vec<Value> = rows.iter().map(|r| r.to_json(now)).collect();
        serde_json::to_writer_pretty(&mut out, &Value::Array(values)).map_err(Exit::failure)?;
        return writeln!(out).map_err(Exit::failure);
    }
    let header = ["NAME", "TUNNEL IP", "ALIVE", "LAST HEARTBEAT", "AGE", "PORTS", "MIGRATIONS"];
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.chassis.id.clone(),
                r.chassis.tunnel_ip.to_string(),
                if r.heartbeat.is_some() { "yes" } else { "no" }.to_string(),
                r.heartbeat.as_ref().map_or("-".to_string(), |h| h.heartbeat_at.clone()),
                r.age_s(now).map_or("-".to_string(), |a| format!("{a:.1}s")),
                r.ports.to_string(),
                r.migrations.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| table.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let mut line = |cells: Vec<&str>| {
        let text: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:w$}")).collect();
        writeln!(out, "{}", text.join("  ").trim_end())
    };
    line(header.to_vec()).map_err(Exit::failure)?;
    for r in &table {
        line(r.iter().map(String::as_str).collect()).map_err(Exit::failure)?;
    }
    Ok(())
}
