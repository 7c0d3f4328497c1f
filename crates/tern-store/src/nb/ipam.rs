//! Picking a free address of a subnet for a port without reading the whole network's claims, so
//! that creating a port costs the same in an empty network and in one of 10,000 ports.
//!
//! Each subnet has an allocation cursor, `/tern/index/ipam/<subnet id>`: the address to try
//! first, written (as text) in the same transaction as the port that took the address before it.
//! A pick walks the subnet's candidates ([`tern_model::allocation_candidates`]: its pools in
//! order, from the cursor, wrapping around at the end) and asks for the claim key of each
//! (`/tern/index/network/<net>/ip/<ip>`, point reads in small batches) until one is free. On a
//! fresh subnet that is the lowest address, then the next, and so on; a released address is
//! found again once the cursor wraps around.
//!
//! The cursor is a hint, not a guard: the claim key the port writes with its address (compared
//! absent) is what makes an address one port's. Two creators that read the same cursor pick the
//! same address and one of them loses the race on its claim; it prepares again (the NB does that
//! on its own, without running the operation again) and then starts a random number of
//! candidates (below [`SPREAD`]) past the cursor, so that concurrent creators spread out instead
//! of colliding again. Only a pick that took the first free candidate moves the cursor, so the
//! picks that jumped ahead are walked over by the next in-order pick (a few claim reads) instead
//! of leaving holes behind. Not comparing the cursor keeps concurrent creates on one subnet from
//! conflicting on it (they would all serialize on one key).
//!
//! When [`PROBES`] candidates in a row are taken (a subnet nearly full around its cursor), the
//! pick lists the network's claims instead (what every pick did before: time in the number of
//! ports) and takes the first free candidate from the cursor. A subnet with nothing free is
//! [`NbError::Exhausted`] (Neutron's `IpAddressGenerationFailure`).

use super::{network_index, Nb, NbError, NbResult};
use crate::KeyValue;
use std::collections::HashSet;
use std::net::IpAddr;
use tern_model::Subnet;

/// Allocation cursors: `<prefix><subnet id>` holds the address to try first in that subnet.
pub const CURSOR_PREFIX: &str = "/tern/index/ipam/";
/// How many candidates are probed (one claim read each) before the claims are listed instead.
/// Under concurrent creators the run of taken addresses just past the cursor is about
/// [`SPREAD`] plus their number long (the picks that jumped ahead, which the next in-order pick
/// walks over): the probes must reach past it, or busy subnets would list their claims.
pub const PROBES: usize = 128;
/// After a lost race for an address, the next pick starts up to this many candidates on.
pub const SPREAD: usize = 32;
/// Claim keys read per request while probing, batch after batch (summing to [`PROBES`]): the
/// first free one is nearly always in the first, small batch.
const PROBE_BATCHES: [usize; 3] = [8, 24, 96];

/// The allocation cursor key of a subnet.
pub fn cursor_key(subnet_id: &str) -> String {
    format!("{CURSOR_PREFIX}{subnet_id}")
}

/// The subnet an allocation cursor key belongs to.
pub fn cursor_subnet(key: &str) -> Option<&str> {
    key.strip_prefix(CURSOR_PREFIX).filter(|id| !id.is_empty() && !id.contains('/'))
}

/// An address picked for a port, and the cursor write that goes with it (if the pick moves it).
pub(super) struct Picked {
    pub ip: IpAddr,
    pub cursor: Option<(String, String)>,
}

fn random_below(n: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % n.max(1) as u128) as usize
}

impl Nb {
    /// A free address of `subnet` (of network `network_id`) for port `port_id`: one no other port
    /// claims (a claim of `port_id` itself counts as free: a port rewritten keeps what it has)
    /// and not in `taken` (what the port or its transaction already holds). `spread`: the
    /// number of races for an address this pick already lost (0: take the first free one).
    pub(super) async fn pick_address(
        &self,
        port_id: &str,
        network_id: &str,
        subnet: &Subnet,
        spread: u32,
        taken: &HashSet<IpAddr>,
    ) -> NbResult<Picked> {
        let cursor_key = cursor_key(&subnet.id);
        let cursor: Option<IpAddr> = self
            .store
            .get(&cursor_key)
            .await?
            .and_then(|kv| std::str::from_utf8(&kv.value).ok().and_then(|s| s.parse().ok()));
        let claims = format!("{}ip/", network_index(network_id));
        let skip = if spread > 0 { random_below(SPREAD) } else { 0 };
        let free = |kv: &Option<KeyValue>| kv.as_ref().is_none_or(|kv| kv.value == port_id.as_bytes());
        let moved = |ip: IpAddr, in_order: bool| Picked {
            ip,
            cursor: in_order.then(|| {
                (cursor_key.clone(), tern_model::next_ip(ip).map(|n| n.to_string()).unwrap_or_default())
            }),
        };

        // The candidates from the cursor, the first `skip` of them last.
        let mut window: Vec<IpAddr> =
            tern_model::allocation_candidates(subnet, cursor).take(skip + PROBES).collect();
        // Fewer than asked for: the window is the whole subnet, and probing it all decides.
        let whole = window.len() < skip + PROBES;
        let skip = skip.min(window.len());
        window.rotate_left(skip);
        if !whole {
            window.truncate(PROBES);
        }
        window.retain(|ip| !taken.contains(ip));
        let mut rest = window.as_slice();
        for batch in PROBE_BATCHES.iter().chain(std::iter::repeat(&PROBES)) {
            if rest.is_empty() {
                break;
            }
            let (chunk, more) = rest.split_at((*batch).min(rest.len()));
            rest = more;
            let keys: Vec<String> = chunk.iter().map(|ip| format!("{claims}{ip}")).collect();
            let held = self.store.get_many(&keys).await?;
            if let Some(i) = held.iter().position(free) {
                return Ok(moved(chunk[i], skip == 0));
            }
        }
        let exhausted = || NbError::Exhausted { what: format!("IP address in subnet {}", subnet.id) };
        if whole {
            return Err(exhausted());
        }

        // Nearly full around the cursor: the first free candidates from the claims themselves.
        let listed = self.store.list(&claims).await?;
        let mut used: HashSet<IpAddr> = listed
            .items
            .iter()
            .filter(|c| c.value != port_id.as_bytes())
            .filter_map(|c| c.key.rsplit('/').next().and_then(|ip| ip.parse().ok()))
            .collect();
        used.extend(taken.iter().copied());
        let frees: Vec<IpAddr> = tern_model::allocation_candidates(subnet, cursor)
            .filter(|ip| !used.contains(ip))
            .take(if spread > 0 { SPREAD } else { 1 })
            .collect();
        let pick = if spread > 0 { random_below(frees.len()) } else { 0 };
        let ip = *frees.get(pick).ok_or_else(exhausted)?;
        Ok(moved(ip, pick == 0))
    }
}

/// Whether `key` is under the allocation cursors (well formed or not).
pub fn is_cursor_key(key: &str) -> bool {
    key.starts_with(CURSOR_PREFIX)
}
