//! `tern controller`: the local controller of one chassis (see `tern-controller`). Settings come
//! from flags, then from `--config FILE` (TOML, same names with underscores), then defaults.

use crate::exit::Exit;
use anyhow::{anyhow, Context};
use clap::Args;
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;
use tern_controller::agent::{self, ControllerConfig};
use tern_store::liveness;
use tern_store::nb::Nb;
use tern_store::Dsn;

#[derive(Args)]
pub struct ControllerArgs {
    /// A TOML file with any of the settings below (e.g. `chassis = "hv1"`, `tunnel_ip = "10.0.0.1"`);
    /// flags given on the command line win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// This chassis' name: the hostname Nova puts in binding:host_id.
    #[arg(long)]
    chassis: Option<String>,
    /// The IPv4 address other chassis reach this one's tunnel endpoint at.
    #[arg(long)]
    tunnel_ip: Option<Ipv4Addr>,
    /// The NB store the API writes: etcd://HOST:PORT[,...] on a multi-node cloud, or over TLS
    /// etcds://HOST:PORT[,...]?ca=PATH&cert=PATH&key=PATH, either with an etcd user
    /// (etcd[s]://USER:PASSWORD@HOST:PORT or ?user=NAME&password-file=PATH) (required; there is no default, since a
    /// controller on a store of its own would see no ports and remove every flow).
    #[arg(long, env = "TERN_NB", hide_env_values = true)]
    nb: Option<String>,
    /// This host's OVSDB [default: unix:/var/run/openvswitch/db.sock].
    #[arg(long)]
    ovsdb: Option<String>,
    /// The bridge's OpenFlow endpoint [default: <bridge>.mgmt beside the OVSDB socket].
    #[arg(long = "of")]
    openflow: Option<String>,
    /// [default: br-int]
    #[arg(long)]
    bridge: Option<String>,
    /// `system` (kernel datapath) on real hypervisors, `netdev` (userspace) in the lab [default: system].
    #[arg(long)]
    datapath_type: Option<String>,
    /// How often the heartbeat is refreshed, e.g. `1s`, `500ms` [default: 1s].
    #[arg(long, value_parser = humantime::parse_duration)]
    report_interval: Option<Duration>,
    /// How long without a heartbeat before the chassis counts as down [default: 3s].
    #[arg(long, value_parser = humantime::parse_duration)]
    down_time: Option<Duration>,
    /// Move a migrating port's traffic only at activation (the original Dragonflow design), instead
    /// of delivering it to both ends from the destination plug on.
    #[arg(long)]
    no_dual_delivery: bool,
    /// Provider bridges by physical network, `physnet1:br-ex[,physnet2:br-x]` (Neutron's
    /// `bridge_mappings`): each bridge (made by the operator) is patched to br-int, and flat
    /// networks on its physical network (external networks, floating IPs) are reached through it.
    #[arg(long)]
    bridge_mappings: Option<String>,
    /// Serve Prometheus metrics (reconcile latency, batches, flows, bundles, NB revision lag,
    /// migrations by state, packet-ins by kind) at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Append where each port's traffic goes, whenever the flows change it, to this JSON-lines
    /// file (`tern_controller::flowlog`; the lab's migration timelines).
    #[arg(long, hide = true, value_name = "PATH")]
    flow_log: Option<std::path::PathBuf>,
    /// Fault injection for tests: ignore every Migration record (as if the NB watch missed them).
    #[arg(long, hide = true)]
    blind_to_migrations: bool,
}

/// The config file: every setting optional; unknown keys are an error naming them.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    chassis: Option<String>,
    tunnel_ip: Option<Ipv4Addr>,
    nb: Option<String>,
    ovsdb: Option<String>,
    of: Option<String>,
    bridge: Option<String>,
    datapath_type: Option<String>,
    report_interval: Option<String>,
    down_time: Option<String>,
    dual_delivery: Option<bool>,
    bridge_mappings: Option<String>,
}

/// Merges flags over the file over the defaults.
fn settings(args: ControllerArgs) -> anyhow::Result<(ControllerConfig, String)> {
    let file = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str::<FileConfig>(&text)
                .map_err(|e| anyhow!("invalid config file {}: {e}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let chassis = args
        .chassis
        .or(file.chassis)
        .ok_or_else(|| anyhow!("--chassis (or `chassis` in the config file) is required"))?;
    let tunnel_ip = args
        .tunnel_ip
        .or(file.tunnel_ip)
        .ok_or_else(|| anyhow!("--tunnel-ip (or `tunnel_ip` in the config file) is required"))?;
    let ovsdb = args.ovsdb.or(file.ovsdb).unwrap_or_else(|| "unix:/var/run/openvswitch/db.sock".into());
    let bridge = args.bridge.or(file.bridge).unwrap_or_else(|| "br-int".into());
    let openflow = match args.openflow.or(file.of) {
        Some(of) => of,
        None => ControllerConfig::default_openflow(&ovsdb, &bridge)
            .ok_or_else(|| anyhow!("--of is needed when --ovsdb is not a unix: socket ({ovsdb})"))?,
    };
    // No default: a controller on an empty store of its own would remove every VM's flows.
    let nb = args.nb.or(file.nb).ok_or_else(|| {
        anyhow!("--nb (or `nb` in the config file, or TERN_NB) is required: the NB store the API writes, e.g. etcd://10.0.0.1:2379")
    })?;
    let datapath_type = args.datapath_type.or(file.datapath_type).unwrap_or_else(|| "system".into());
    let duration =
        |flag: Option<Duration>, file: Option<String>, name: &str, default: Duration| match (flag, file) {
            (Some(d), _) => Ok(d),
            (None, Some(text)) => humantime::parse_duration(&text)
                .map_err(|e| anyhow!("invalid `{name}` {text:?} in the config file: {e}")),
            (None, None) => Ok(default),
        };
    let report_interval = duration(
        args.report_interval,
        file.report_interval,
        "report_interval",
        liveness::DEFAULT_REPORT_INTERVAL,
    )?;
    let down_time = duration(args.down_time, file.down_time, "down_time", liveness::DEFAULT_DOWN_TIME)?;
    let bridge_mappings = match args.bridge_mappings.or(file.bridge_mappings) {
        Some(text) => agent::parse_bridge_mappings(&text).map_err(|e| anyhow!("--bridge-mappings: {e}"))?,
        None => Default::default(),
    };
    if bridge_mappings.values().any(|b| *b == bridge) {
        return Err(anyhow!("--bridge-mappings: {bridge} is the integration bridge, not a provider bridge"));
    }
    if down_time <= report_interval {
        return Err(anyhow!(
            "down_time ({down_time:?}) must be longer than report_interval ({report_interval:?}), or a live chassis would flap"
        ));
    }
    Ok((
        ControllerConfig {
            chassis,
            tunnel_ip,
            ovsdb,
            openflow,
            bridge,
            datapath_type,
            report_interval,
            down_time,
            dual_delivery: !args.no_dual_delivery && file.dual_delivery.unwrap_or(true),
            blind_to_migrations: args.blind_to_migrations,
            bridge_mappings,
        },
        nb,
    ))
}

pub async fn run(args: ControllerArgs) -> Result<(), Exit> {
    let flow_log = args.flow_log.clone();
    let metrics_listen = args.metrics_listen;
    let (config, nb) = settings(args).map_err(Exit::bad_input)?;
    if let Some(addr) = metrics_listen {
        crate::metrics::spawn(addr).await.map_err(Exit::bad_input)?;
    }
    let reports = flow_log.map(|path| tern_controller::flowlog::spawn(path, config.chassis.clone()));
    let dsn: Dsn = nb.parse().map_err(Exit::bad_input)?;
    let store = tern_store::open_dsn(&dsn)
        .await
        .map_err(|e| Exit::failure(anyhow!(e).context(format!("cannot open the NB store {dsn}"))))?;
    // The signal also ends the start-up's waits (a store or OVSDB not there yet), not only the loop.
    tokio::select! {
        r = agent::run(config, Nb::new(store), reports, std::future::pending::<()>()) => r.map_err(Exit::failure),
        _ = crate::signals::terminated() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ControllerArgs,
    }

    fn parse(args: &[&str]) -> ControllerArgs {
        Cli::parse_from(std::iter::once("controller").chain(args.iter().copied())).args
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "chassis = \"from-file\"\ntunnel_ip = \"10.0.0.9\"\nbridge = \"br-x\"\novsdb = \"unix:/run/x/db.sock\"\n")
            .unwrap();
        let f = file.to_str().unwrap();
        let missing = settings(parse(&["--config", f])).unwrap_err().to_string();
        assert!(missing.contains("--nb"), "{missing}");
        let (c, nb) = settings(parse(&["--config", f, "--chassis", "from-flag", "--nb", "memory:"])).unwrap();
        assert_eq!(c.chassis, "from-flag");
        assert_eq!(c.tunnel_ip, "10.0.0.9".parse::<Ipv4Addr>().unwrap());
        assert_eq!(c.bridge, "br-x");
        assert_eq!(c.openflow, "unix:/run/x/br-x.mgmt");
        assert_eq!(c.datapath_type, "system");
        assert_eq!(nb, "memory:");
    }

    #[test]
    fn bad_config_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "chassis = \"a\"\ncolour = \"blue\"\n").unwrap();
        let err = settings(parse(&["--config", file.to_str().unwrap()])).err().unwrap().to_string();
        assert!(err.contains("colour") && err.contains("c.toml"), "{err}");
        let err = settings(parse(&["--chassis", "a"])).err().unwrap().to_string();
        assert!(err.contains("tunnel-ip"), "{err}");
        let base = ["--chassis", "a", "--tunnel-ip", "10.0.0.1", "--nb", "memory:", "--bridge-mappings"];
        for (bad, named) in [("physnet1", "physnet1"), ("p:br-ex,p:br-y", "twice"), ("p:br-int", "br-int")] {
            let args: Vec<&str> = base.iter().copied().chain([bad]).collect();
            let err = settings(parse(&args)).err().unwrap().to_string();
            assert!(err.contains("--bridge-mappings") && err.contains(named), "{err}");
        }
        let args: Vec<&str> = base.iter().copied().chain(["physnet1:br-ex, physnet2:br-x"]).collect();
        let (c, _) = settings(parse(&args)).unwrap();
        assert_eq!(c.bridge_mappings.get("physnet2").map(String::as_str), Some("br-x"));
    }
}
