//! tern's local controller runtime (one per chassis): the controller's decisions without IO
//! ([`core`]), its IO shell ([`agent`]), and the OpenFlow connection to the bridge ([`ofconn`]:
//! handshake, echoes, requests matched to replies by xid while asynchronous messages stream in,
//! atomic bundles, flow dumps, reconnection with backoff).

pub mod agent;
pub mod cache;
pub mod core;
pub mod dhcp;
pub mod external;
pub mod flowlog;
pub mod metrics;
pub mod migration;
pub mod ofconn;
pub mod synthetic;
pub mod view;
