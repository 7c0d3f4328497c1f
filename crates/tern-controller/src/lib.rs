//! tern's local controller runtime (one per chassis). Today: the OpenFlow connection to a bridge
//! ([`ofconn`]): handshake, echoes, requests matched to replies by xid while asynchronous messages
//! stream in, atomic bundles, flow dumps, and reconnection with backoff.

pub mod ofconn;
