//! tern's small RFC 7047 OVSDB client. A sans-IO core (`framing`, `datum`, `protocol`, `replica`)
//! and a thin tokio shell (`client`, `watcher`); `vswitch` holds the Open_vSwitch operations tern
//! needs (br-int, the Geneve port, VIF discovery). `testing` runs private OVS daemons for tests.

pub mod client;
pub mod datum;
mod error;
pub mod framing;
pub mod protocol;
pub mod replica;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vswitch;
pub mod watcher;

pub use client::{Client, Target, Updates};
pub use datum::{Atom, Row};
pub use error::OvsdbError;
pub use framing::{FramingError, JsonFramer};
pub use protocol::{
    Condition, Incoming, MonitorTable, Mutation, Op, OpResult, RowUpdate, Session, TableUpdates, WaitUntil,
};
pub use replica::{Replica, RowChange};
pub use vswitch::{
    diff_vifs, ensure_bridge, ensure_tunnel_port, vif_events, vifs, vifs_on_bridge, wait_for_ofport,
    BridgeConfig, Ensured, TunnelConfig, TunnelPort, Vif, VifEvent,
};
pub use watcher::{OvsdbWatcher, Snapshot, WatchEvent, WatcherConfig};
