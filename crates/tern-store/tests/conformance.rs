//! Runs the conformance suite (`tern_store::testing::conformance`) unchanged against every backend:
//! memory, redb (a file in a temporary directory), a real etcd started for each case, one
//! started with TLS and client-certificate authentication, opened through its `etcds://` DSN, and
//! one with etcd's authentication enabled, opened as an etcd user.

use std::any::Any;
use std::sync::Arc;
use tern_store::testing::{conformance, EtcdServer};
use tern_store::{LocalStore, Store};

/// A store for one case, and whatever must live as long as it (temp dir, etcd process).
type Fixture = (Arc<dyn Store>, Box<dyn Any>);

async fn memory() -> Fixture {
    (Arc::new(LocalStore::memory().unwrap()), Box::new(()))
}

async fn redb() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open_redb(dir.path().join("nb.redb")).unwrap();
    (Arc::new(store), Box::new(dir))
}

async fn etcd() -> Fixture {
    let server = tokio::task::spawn_blocking(EtcdServer::start).await.unwrap().expect("start etcd");
    let store = tern_store::etcd::EtcdStore::connect(&[server.endpoint()]).await.expect("connect to etcd");
    (Arc::new(store), Box::new(server))
}

/// A fresh TLS etcd, opened through its `etcds://` DSN (CA, client certificate and key).
async fn etcd_tls() -> Fixture {
    let server =
        tokio::task::spawn_blocking(EtcdServer::start_tls).await.unwrap().expect("start etcd with TLS");
    let dsn = server.dsn();
    assert!(dsn.starts_with("etcds://"), "{dsn}");
    let store = tern_store::open(&dsn).await.unwrap_or_else(|e| panic!("open {dsn}: {e}"));
    (store, Box::new(server))
}

/// A fresh etcd with its authentication enabled, opened as user `tern` (readwrite on every key)
/// through an `etcd://USER:PASSWORD@` DSN. Its tokens expire after 1 s unused, so the suite also
/// runs on renewed tokens.
async fn etcd_auth() -> Fixture {
    let start = || EtcdServer::start_with_flags(&["--auth-token-ttl", "1"]);
    let server = tokio::task::spawn_blocking(start).await.unwrap().expect("start etcd");
    tern_store::testing::add_etcd_user(&server, "tern", "tern-secret", b"").await.expect("add user tern");
    tern_store::testing::enable_etcd_auth(&server).await.expect("enable auth");
    let dsn = format!("etcd://tern:tern-secret@{}", server.endpoint());
    let store = tern_store::open(&dsn).await.unwrap_or_else(|e| panic!("open {dsn}: {e}"));
    (store, Box::new(server))
}

macro_rules! tests_for {
    ($backend:ident; $($case:ident),*) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _guard) = super::$backend().await;
                    super::conformance::$case(store).await;
                }
            )*
        }
    };
}

tern_store::conformance_cases!(tests_for, memory);
tern_store::conformance_cases!(tests_for, redb);
tern_store::conformance_cases!(tests_for, etcd);
tern_store::conformance_cases!(tests_for, etcd_tls);
tern_store::conformance_cases!(tests_for, etcd_auth);
