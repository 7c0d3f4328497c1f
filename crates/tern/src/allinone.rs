//! `tern allinone`: a one-machine cloud in one process — the Neutron API and this host's controller
//! sharing one embedded NB store (a redb file has one owner, so they must share the process).

use crate::exit::Exit;
use anyhow::anyhow;
use clap::Args;
use std::net::{Ipv4Addr, SocketAddr};
use tern_controller::agent::{self, ControllerConfig};
use tern_store::nb::Nb;
use tern_store::Dsn;

#[derive(Args)]
pub struct AllinoneArgs {
    /// Where the API listens. A non-loopback address requires --token.
    #[arg(long, default_value = "127.0.0.1:9696")]
    listen: SocketAddr,
    /// The NB store (the embedded one by default).
    #[arg(long, env = "TERN_NB", hide_env_values = true, default_value = Dsn::DEFAULT)]
    nb: String,
    /// Require `X-Auth-Token: TOKEN` on API requests.
    #[arg(long, env = "TERN_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// This chassis' name (what binding:host_id names).
    #[arg(long)]
    chassis: String,
    /// This host's tunnel endpoint address.
    #[arg(long, default_value = "127.0.0.1")]
    tunnel_ip: Ipv4Addr,
    #[arg(long, default_value = "unix:/var/run/openvswitch/db.sock")]
    ovsdb: String,
    /// The bridge's OpenFlow endpoint (default: <bridge>.mgmt beside the OVSDB socket).
    #[arg(long = "of")]
    openflow: Option<String>,
    #[arg(long, default_value = "br-int")]
    bridge: String,
    #[arg(long, default_value = "system")]
    datapath_type: String,
    /// Serve Prometheus metrics (the API's and the controller's) at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// The MTU of the network between the chassis (see `tern server --underlay-mtu`).
    #[arg(long, value_name = "BYTES", default_value_t = tern_api::DEFAULT_UNDERLAY_MTU,
          value_parser = clap::value_parser!(u32).range(tern_api::MIN_UNDERLAY_MTU as i64..=65535))]
    underlay_mtu: u32,
    /// Serve HTTPS with this certificate chain (PEM: the server's own certificate first, then any
    /// intermediates); needs --tls-key. See `tern server --tls-cert`.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM, unencrypted).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

pub async fn run(args: AllinoneArgs) -> Result<(), Exit> {
    let dsn: Dsn = args.nb.parse().map_err(Exit::bad_input)?;
    if !args.listen.ip().is_loopback() && args.token.is_none() {
        return Err(Exit::bad_input(anyhow!(
            "refusing to listen on non-loopback address {} without --token",
            args.listen
        )));
    }
    let openflow = match args.openflow {
        Some(of) => of,
        None => ControllerConfig::default_openflow(&args.ovsdb, &args.bridge).ok_or_else(|| {
            Exit::bad_input(anyhow!("--of is needed when --ovsdb is not a unix: socket ({})", args.ovsdb))
        })?,
    };
    if let Some(addr) = args.metrics_listen {
        crate::metrics::spawn(addr).await.map_err(Exit::bad_input)?;
    }
    let store = tern_store::open_dsn(&dsn)
        .await
        .map_err(|e| Exit::failure(anyhow!(e).context(format!("cannot open the NB store {dsn}"))))?;
    let nb = Nb::new(store);
    let controller = ControllerConfig {
        bridge: args.bridge,
        datapath_type: args.datapath_type,
        ..ControllerConfig::new(args.chassis, args.tunnel_ip, args.ovsdb, openflow)
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut api = tokio::spawn(tern_api::serve_with_shutdown(
        tern_api::ApiConfig {
            auth: args.token.map_or(tern_api::Auth::None, tern_api::Auth::Token),
            underlay_mtu: args.underlay_mtu,
            tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| tern_api::TlsFiles { cert, key }),
            ..tern_api::ApiConfig::new(args.listen, nb.clone())
        },
        stopped(stop_rx.clone()),
    ));
    let mut agent = tokio::spawn(agent::run(controller, nb, None, stopped(stop_rx)));
    // Run until ctrl-c, or until either half stops (then stop the other too).
    let first = tokio::select! {
        _ = crate::signals::terminated() => None,
        r = &mut api => Some(("API", r)),
        r = &mut agent => Some(("controller", r)),
    };
    let _ = stop_tx.send(true);
    let joined = |r: Result<anyhow::Result<()>, tokio::task::JoinError>| {
        r.map_err(anyhow::Error::from).and_then(|r| r)
    };
    match first {
        Some((what, r)) => {
            api.abort();
            agent.abort();
            joined(r).map_err(|e| Exit::failure(e.context(format!("the {what} stopped"))))?;
            Err(Exit::failure(anyhow!("the {what} stopped")))
        }
        None => {
            joined(api.await).map_err(Exit::failure)?;
            joined(agent.await).map_err(Exit::failure)
        }
    }
}
