//! What the controller's benchmarks share: their command line (sizes, repeats, JSON), a chassis
//! on an OVS sandbox, and the NB store they run on (a real etcd, or the embedded redb).

#![allow(dead_code)]

pub mod core;

/// The allocator `tern` runs with (see `crates/tern/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use tern_controller::agent::ControllerConfig;
use tern_store::Store;

/// The command line every benchmark takes, plus the flags of its own (`extra`: flag -> its
/// value, for the flags named in `own`).
pub struct Args {
    pub ports: Vec<usize>,
    pub repeat: usize,
    pub json: bool,
    pub extra: std::collections::BTreeMap<String, String>,
}

/// Parses `--ports A,B,C`, `--repeat N`, `--json` and the flags in `own` (each with one value);
/// `cargo bench`'s own `--bench` and a filter that does not select `name` (exit 0) are handled.
pub fn args(name: &str, ports: &[usize], repeat: usize, own: &[&str]) -> Result<Args, String> {
    let mut a = Args { ports: ports.to_vec(), repeat, json: false, extra: Default::default() };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--json" => a.json = true,
            "--ports" => {
                let v = it.next().ok_or("--ports needs a list, e.g. 1000,10000")?;
                a.ports = v.split(',').map(|s| count("--ports", s.trim())).collect::<Result<_, _>>()?;
            }
            "--repeat" => a.repeat = count("--repeat", &it.next().ok_or("--repeat needs a number")?)?,
            flag if own.contains(&flag) => {
                let v = it.next().ok_or(format!("{flag} needs a value"))?;
                a.extra.insert(flag.to_string(), v);
            }
            other if !other.starts_with('-') && name.contains(other) => {}
            other if !other.starts_with('-') => std::process::exit(0),
            other => {
                let mut known = vec!["--ports", "--repeat", "--json"];
                known.extend(own);
                return Err(format!("unknown argument {other:?} (expected {})", known.join(", ")));
            }
        }
    }
    Ok(a)
}

/// A whole number of at least 1, for `flag`.
pub fn count(flag: &str, v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(0) => Err(format!("{flag} must be at least 1")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{flag} {v:?}: {e}")),
    }
}

/// Parses the command line or exits with status 2 naming what was wrong.
pub fn args_or_exit(name: &str, ports: &[usize], repeat: usize, own: &[&str]) -> Args {
    args(name, ports, repeat, own).unwrap_or_else(|e| {
        eprintln!("{name}: {e}");
        std::process::exit(2)
    })
}

pub fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The `p`th percentile (0-100) of `v`, nearest rank; 0 for no values.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    match v.len() {
        0 => 0.0,
        n => v[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1],
    }
}

pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A chassis of the benchmarks: `tern controller`'s defaults on an OVS sandbox (userspace
/// datapath, OpenFlow on br-int's management socket beside the sandbox's OVSDB).
pub fn sandbox_chassis(chassis: &str, tunnel_ip: &str, ovsdb: String) -> ControllerConfig {
    let openflow = ControllerConfig::default_openflow(&ovsdb, "br-int").expect("a unix: OVSDB socket");
    ControllerConfig {
        datapath_type: "netdev".into(),
        ..ControllerConfig::new(chassis, tunnel_ip.parse().expect("an IPv4 tunnel address"), ovsdb, openflow)
    }
}

/// The NB store a benchmark runs on: a real etcd (kept running as long as this lives) or redb in
/// `dir`.
pub struct BenchStore {
    pub store: Arc<dyn Store>,
    _etcd: Option<tern_store::testing::EtcdServer>,
}

pub async fn store(backend: &str, dir: &std::path::Path) -> BenchStore {
    if backend == "etcd" {
        let server = tern_store::testing::EtcdServer::start().expect("start etcd");
        let s = tern_store::etcd::EtcdStore::connect(&[server.endpoint()]).await.expect("connect to etcd");
        BenchStore { store: Arc::new(s), _etcd: Some(server) }
    } else {
        let s = tern_store::LocalStore::open_redb(dir.join("nb.redb")).expect("open redb");
        BenchStore { store: Arc::new(s), _etcd: None }
    }
}
