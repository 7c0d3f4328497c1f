//! tern's OpenFlow pipeline: pure functions from a chassis' view of the NB to the flows of its
//! br-int. Today: the table layout ([`tables`]); the apps arrive with the local controller.

pub mod tables;
