//! Test support shared by tests and benches (feature `testing`): a real etcd server (or a cluster
//! of them) started on free loopback ports with its own data directory and stopped by pid (plain,
//! or over TLS with client certificates from a test CA, [`TestCa`]), and the conformance suite
//! every backend must pass, etcd users ([`add_etcd_user`], [`enable_etcd_auth`]), and a store
//! wrapper that observes what is asked of the store.

pub mod conformance;
mod etcd_auth;
mod etcd_cluster;
mod etcd_server;
mod observed;
mod tls;

pub use etcd_auth::{add_etcd_user, enable_etcd_auth, ETCD_ROOT_PASSWORD};
pub use etcd_cluster::EtcdCluster;
pub use etcd_server::{EtcdServer, TlsFiles};
pub use observed::Observed;
pub use tls::{CertFiles, TestCa};
