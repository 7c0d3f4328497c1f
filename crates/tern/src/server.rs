//! `tern server`: the Neutron v2.0-compatible API over the NB store (see `tern-api`).

use crate::exit::Exit;
use anyhow::anyhow;
use clap::Args;
use std::net::SocketAddr;
use tern_store::nb::Nb;
use tern_store::Dsn;

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on. A non-loopback address requires --token.
    #[arg(long, default_value = "127.0.0.1:9696")]
    listen: SocketAddr,
    /// The NB store: redb:PATH (this server becomes its one owner), memory:, etcd://HOST:PORT[,...]
    /// or etcds://HOST:PORT[,...]?ca=PATH&cert=PATH&key=PATH (TLS).
    #[arg(long, env = "TERN_NB", default_value = Dsn::DEFAULT)]
    nb: String,
    /// Require `X-Auth-Token: TOKEN` on every request (also from TERN_API_TOKEN).
    #[arg(long, env = "TERN_API_TOKEN")]
    token: Option<String>,
    /// Serve Prometheus metrics (request latency by route and status) at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// The MTU of the network between the chassis (Neutron's global_physnet_mtu): a geneve
    /// network's MTU is at most this minus 58 (IPv4 and Geneve headers), a flat network's at most
    /// this; a network created without an MTU gets that maximum.
    #[arg(long, value_name = "BYTES", default_value_t = tern_api::DEFAULT_UNDERLAY_MTU,
          value_parser = clap::value_parser!(u32).range(tern_api::MIN_UNDERLAY_MTU as i64..=65535))]
    underlay_mtu: u32,
}

pub async fn run(args: ServerArgs) -> Result<(), Exit> {
    let dsn: Dsn = args.nb.parse().map_err(Exit::bad_input)?;
    if args.token.as_deref() == Some("") {
        return Err(Exit::bad_input(anyhow!("--token (or TERN_API_TOKEN) must not be empty")));
    }
    if !args.listen.ip().is_loopback() && args.token.is_none() {
        return Err(Exit::bad_input(anyhow!(
            "refusing to listen on non-loopback address {} without --token: the API would be open to the network",
            args.listen
        )));
    }
    if let Some(addr) = args.metrics_listen {
        crate::metrics::spawn(addr).await.map_err(Exit::bad_input)?;
    }
    let store = tern_store::open(&dsn.to_string())
        .await
        .map_err(|e| Exit::failure(anyhow!(e).context(format!("cannot open the NB store {dsn}"))))?;
    let config = tern_api::ApiConfig {
        listen: args.listen,
        nb: Nb::new(store),
        token: args.token,
        underlay_mtu: args.underlay_mtu,
    };
    tern_api::serve_with_shutdown(config, crate::signals::terminated()).await.map_err(Exit::failure)
}
