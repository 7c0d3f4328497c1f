//! tern's NB store: the [`Store`] trait (revisioned get / put / compare-and-swap / delete /
//! list-at-revision / watch-from-revision / leases) and its backends:
//! `memory` (tests, simulation), `redb` (embedded, durable, the default) and `etcd` (multi-node).
//! [`open`] picks one from a DSN; [`nb`] stores typed, validated NB objects on top of any of them.

mod dsn;
pub mod etcd;
pub mod liveness;
mod local;
pub mod nb;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use dsn::{open, open_dsn, Dsn, EtcdPassword, EtcdTls, EtcdUser};
pub use local::LocalStore;
pub use store::{
    Compare, KeyValue, LeaseId, Listing, Result, Revision, Store, StoreError, Txn, TxnOp, Watch, WatchEvent,
    MAX_TXN_OPS,
};
