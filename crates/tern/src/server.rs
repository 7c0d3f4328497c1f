//! `tern server`: the Neutron v2.0-compatible API over the NB store (see `tern-api`).

use crate::exit::Exit;
use anyhow::anyhow;
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tern_store::nb::Nb;
use tern_store::Dsn;

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on. A non-loopback address requires --auth keystone (or --token).
    #[arg(long, default_value = "127.0.0.1:9696")]
    listen: SocketAddr,
    /// The NB store: redb:PATH (this server becomes its one owner), memory:, etcd://HOST:PORT[,...]
    /// or etcds://HOST:PORT[,...]?ca=PATH&cert=PATH&key=PATH (TLS); with an etcd user,
    /// etcd[s]://USER:PASSWORD@HOST:PORT or ?user=NAME&password-file=PATH.
    #[arg(long, env = "TERN_NB", hide_env_values = true, default_value = Dsn::DEFAULT)]
    nb: String,
    /// How callers are authenticated: `keystone` validates each X-Auth-Token against Keystone
    /// (with the [keystone_authtoken] section of --config) and applies Neutron's policy per
    /// project; `noauth` makes every caller an administrator (loopback only).
    #[arg(long, value_enum, default_value_t = AuthMode::Noauth)]
    auth: AuthMode,
    /// An INI file with the sections known from neutron.conf: [keystone_authtoken] (for
    /// --auth keystone) and [nova] (tern then tells Nova about its ports).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Instead of Keystone: require `X-Auth-Token: TOKEN` on every request, and make its holder
    /// an administrator (the lab's; also from TERN_API_TOKEN).
    #[arg(long, env = "TERN_API_TOKEN", hide_env_values = true, conflicts_with = "auth")]
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
    /// Serve HTTPS with this certificate chain (PEM: the server's own certificate first, then any
    /// intermediates); needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM, unencrypted).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AuthMode {
    Noauth,
    Keystone,
}

pub async fn run(args: ServerArgs) -> Result<(), Exit> {
    let dsn: Dsn = args.nb.parse().map_err(Exit::bad_input)?;
    if args.token.as_deref() == Some("") {
        return Err(Exit::bad_input(anyhow!("--token (or TERN_API_TOKEN) must not be empty")));
    }
    let file = match &args.config {
        Some(path) => tern_api::config::FileConfig::load(path).map_err(Exit::bad_input)?,
        None => Default::default(),
    };
    let auth = match (args.auth, args.token) {
        (AuthMode::Keystone, _) => {
            let Some(ks) = file.keystone.clone() else {
                return Err(Exit::bad_input(anyhow!(
                    "--auth keystone needs --config FILE with a [keystone_authtoken] section"
                )));
            };
            let v = tern_api::auth::keystone::Validator::new(ks).map_err(Exit::failure)?;
            match v.check().await {
                Ok(()) => {}
                Err(e) if tern_api::auth::keystone::is_refusal(&e) => return Err(Exit::bad_input(e)),
                Err(e) => {
                    tracing::warn!("Keystone is not reachable yet (requests get 503 until it is): {e:#}")
                }
            }
            tern_api::Auth::Keystone(Arc::new(v))
        }
        (AuthMode::Noauth, Some(t)) => tern_api::Auth::Token(t),
        (AuthMode::Noauth, None) => tern_api::Auth::None,
    };
    if !args.listen.ip().is_loopback() && !auth.authenticates() {
        return Err(Exit::bad_input(anyhow!(
            "refusing to listen on non-loopback address {} with --auth noauth: the API would be open to the network",
            args.listen
        )));
    }
    if let Some(addr) = args.metrics_listen {
        crate::metrics::spawn(addr).await.map_err(Exit::bad_input)?;
    }
    let tls = args.tls_cert.zip(args.tls_key).map(|(cert, key)| tern_api::TlsFiles { cert, key });
    if let Some(files) = &tls {
        // Unusable files are bad input (exit status 2), found before the store is opened.
        tern_api::tls::server_config(files).map_err(Exit::bad_input)?;
    }
    let store = tern_store::open_dsn(&dsn)
        .await
        .map_err(|e| Exit::failure(anyhow!(e).context(format!("cannot open the NB store {dsn}"))))?;
    let nb = Nb::new(store);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let notifier = match &file.nova {
        Some(nova) => {
            let target = nova_target(nova).map_err(Exit::failure)?;
            let mut options = tern_api::nova::NovaOptions::default();
            if let Some(interval) = nova.send_events_interval {
                options.batch_interval = interval;
            }
            tracing::info!("telling Nova about ports (os-server-external-events)");
            Some(tokio::spawn(tern_api::nova::run(nb.clone(), target, options, stopped(stop_rx.clone()))))
        }
        None => None,
    };
    let config = tern_api::ApiConfig {
        auth,
        underlay_mtu: args.underlay_mtu,
        tls,
        ..tern_api::ApiConfig::new(args.listen, nb)
    };
    let served = tern_api::serve_with_shutdown(config, crate::signals::terminated()).await;
    let _ = stop_tx.send(true);
    if let Some(n) = notifier {
        if let Ok(Err(e)) = n.await {
            tracing::warn!("the Nova notifier stopped: {e:#}");
        }
    }
    served.map_err(Exit::failure)
}

/// Where the `[nova]` section says Nova is.
fn nova_target(nova: &tern_api::config::NovaConfig) -> anyhow::Result<Arc<dyn tern_api::nova::NovaTarget>> {
    Ok(match (&nova.credentials, &nova.endpoint_override) {
        (None, Some(url)) => Arc::new(tern_api::nova::StaticTarget { url: url.clone(), token: None }),
        (Some(c), url) => Arc::new(tern_api::auth::keystone::CatalogTarget::new(
            c.clone(),
            nova.interface.clone(),
            nova.region_name.clone(),
            url.clone(),
        )?),
        (None, None) => anyhow::bail!("[nova] needs credentials or endpoint_override"),
    })
}
