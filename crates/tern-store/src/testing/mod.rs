//! Test support shared by tests and benches (feature `testing`): a real etcd server (or a cluster
//! of them) started on free loopback ports with its own data directory and stopped by pid (plain,
//! or over TLS with client certificates from a test CA, [`TestCa`]), and the conformance suite
//! every backend must pass, and a store wrapper that observes what is asked of the store.

pub mod conformance;
mod etcd_cluster;
mod etcd_server;
mod observed;
mod tls;

pub use etcd_cluster::EtcdCluster;
pub use etcd_server::{EtcdServer, TlsFiles};
pub use observed::Observed;
pub use tls::{CertFiles, TestCa};
