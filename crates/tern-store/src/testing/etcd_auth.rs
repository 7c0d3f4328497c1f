//! etcd's own users for tests, set up through etcd's auth API (etcd-client, no etcdctl): users
//! with a role granting readwrite on some keys ([`add_etcd_user`]), then etcd's authentication
//! turned on ([`enable_etcd_auth`], which adds `root` as etcd requires).

use super::EtcdServer;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, Permission, TlsOptions};

/// The password of the `root` user [`enable_etcd_auth`] creates.
pub const ETCD_ROOT_PASSWORD: &str = "root-secret";

/// A client of `server` (over TLS with its client certificate if it serves TLS), as no user:
/// for setting up users before authentication is enabled.
async fn admin_client(server: &EtcdServer) -> Result<Client, String> {
    let mut options = ConnectOptions::new();
    if let Some(tls) = server.client_tls() {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let mut tls_options = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
        if let Some((cert, key)) = &tls.identity {
            tls_options = tls_options.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(tls_options);
    }
    Client::connect([server.endpoint()], Some(options))
        .await
        .map_err(|e| format!("cannot connect to etcd at {}: {e}", server.endpoint()))
}

/// Adds etcd user `name` with `password` and a role of its own (`NAME-rw`) granting readwrite on
/// every key starting with `prefix` (every key if it is empty). Call before
/// [`enable_etcd_auth`].
pub async fn add_etcd_user(
    server: &EtcdServer,
    name: &str,
    password: &str,
    prefix: &[u8],
) -> Result<(), String> {
    let mut client = admin_client(server).await?;
    let role = format!("{name}-rw");
    let permission = if prefix.is_empty() {
        Permission::read_write(vec![0]).with_from_key()
    } else {
        Permission::read_write(prefix).with_prefix()
    };
    let failed = |what: &str, e: etcd_client::Error| format!("etcd {what} for user {name:?}: {e}");
    client.role_add(role.as_str()).await.map_err(|e| failed("role add", e))?;
    client.role_grant_permission(role.as_str(), permission).await.map_err(|e| failed("role grant", e))?;
    client.user_add(name, password, None).await.map_err(|e| failed("user add", e))?;
    client.user_grant_role(name, role.as_str()).await.map_err(|e| failed("user grant-role", e))?;
    Ok(())
}

/// Adds the `root` user (password [`ETCD_ROOT_PASSWORD`], role `root`), which etcd requires,
/// and turns etcd's authentication on: from then on etcd refuses requests without a user.
pub async fn enable_etcd_auth(server: &EtcdServer) -> Result<(), String> {
    let mut client = admin_client(server).await?;
    let failed = |what: &str, e: etcd_client::Error| format!("etcd {what}: {e}");
    client.role_add("root").await.map_err(|e| failed("role add root", e))?;
    client.user_add("root", ETCD_ROOT_PASSWORD, None).await.map_err(|e| failed("user add root", e))?;
    client.user_grant_role("root", "root").await.map_err(|e| failed("user grant-role root", e))?;
    client.auth_enable().await.map_err(|e| failed("auth enable", e))?;
    Ok(())
}
