//! Test support shared by tests and benches (feature `testing`): a real etcd server (or a cluster
//! of them) started on free loopback ports with its own data directory and stopped by pid, and the
//! conformance suite every backend must pass.

pub mod conformance;
mod etcd_cluster;
mod etcd_server;

pub use etcd_cluster::EtcdCluster;
pub use etcd_server::EtcdServer;
