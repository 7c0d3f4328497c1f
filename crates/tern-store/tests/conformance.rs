//! Runs the conformance suite (`tern_store::testing::conformance`) unchanged against every backend:
//! memory, redb (a file in a temporary directory), a real etcd started for each case, and one
//! started with TLS and client-certificate authentication, opened through its `etcds://` DSN.

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
