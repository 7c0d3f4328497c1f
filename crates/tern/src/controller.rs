//! `tern controller`: the local controller of one chassis (see `tern-controller`).

use crate::exit::Exit;
use anyhow::anyhow;
use clap::Args;
use std::net::Ipv4Addr;
use tern_controller::agent::{self, ControllerConfig};
use tern_store::nb::Nb;
use tern_store::Dsn;

#[derive(Args)]
pub struct ControllerArgs {
    /// This chassis' name: the hostname Nova puts in binding:host_id.
    #[arg(long)]
    chassis: String,
    /// The IPv4 address other chassis reach this one's tunnel endpoint at.
    #[arg(long)]
    tunnel_ip: Ipv4Addr,
    /// The NB store: etcd://HOST:PORT[,...] on a multi-node cloud, redb:PATH when this process owns it.
    #[arg(long, env = "TERN_NB", default_value = Dsn::DEFAULT)]
    nb: String,
    /// This host's OVSDB.
    #[arg(long, default_value = "unix:/var/run/openvswitch/db.sock")]
    ovsdb: String,
    /// The bridge's OpenFlow endpoint (default: <bridge>.mgmt beside the OVSDB socket).
    #[arg(long = "of")]
    openflow: Option<String>,
    #[arg(long, default_value = "br-int")]
    bridge: String,
    /// `system` (kernel datapath) on real hypervisors, `netdev` (userspace) in the lab.
    #[arg(long, default_value = "system")]
    datapath_type: String,
}

pub async fn run(args: ControllerArgs) -> Result<(), Exit> {
    let dsn: Dsn = args.nb.parse().map_err(Exit::bad_input)?;
    let openflow = match args.openflow {
        Some(of) => of,
        None => ControllerConfig::default_openflow(&args.ovsdb, &args.bridge).ok_or_else(|| {
            Exit::bad_input(anyhow!("--of is needed when --ovsdb is not a unix: socket ({})", args.ovsdb))
        })?,
    };
    let config = ControllerConfig {
        chassis: args.chassis,
        tunnel_ip: args.tunnel_ip,
        ovsdb: args.ovsdb,
        openflow,
        bridge: args.bridge,
        datapath_type: args.datapath_type,
    };
    let store = tern_store::open(&dsn.to_string())
        .await
        .map_err(|e| Exit::failure(anyhow!(e).context(format!("cannot open the NB store {dsn}"))))?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    agent::run(config, Nb::new(store), None, shutdown).await.map_err(Exit::failure)
}
