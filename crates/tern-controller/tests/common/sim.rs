//! What the two migration simulations share: the seeded generator that drives their schedules,
//! the chassis' tunnel addresses, the number of seeds to run, and reading where a chassis' flows
//! deliver a port (its DISPATCH flow).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use tern_openflow::Flow;
use tern_pipeline::cookie::Object;
use tern_pipeline::App;

/// SplitMix64: small, fast and good enough to drive a schedule from a seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Chassis `hv{i}`'s tunnel address.
pub fn tunnel_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 31, 0, i as u8 + 1)
}

/// The seeds to run: `TERN_SIM_SEEDS` of them (else `default`) from `TERN_SIM_FIRST_SEED` (0).
pub fn seeds(default: u64) -> std::ops::Range<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let first = var("TERN_SIM_FIRST_SEED").unwrap_or(0);
    first..first + var("TERN_SIM_SEEDS").unwrap_or(default)
}

/// Where the DISPATCH flow of the port with key `key` among `flows` (those of chassis `me`, one
/// of `chassis` chassis `hv0`..) delivers: `me` for a local delivery, other chassis by their
/// tunnel address. `None` when there is no such flow.
pub fn dispatch_targets<'a>(
    flows: impl IntoIterator<Item = &'a Flow>,
    key: u32,
    me: &str,
    chassis: usize,
) -> Option<BTreeSet<String>> {
    let flow = flows.into_iter().find(|f| {
        f.table_id == tern_pipeline::tables::DISPATCH
            && App::from_cookie(f.cookie) == Some((App::Dispatch, Object::Port(key)))
    })?;
    let by_ip: BTreeMap<String, String> =
        (0..chassis).map(|k| (tunnel_ip(k).to_string(), format!("hv{k}"))).collect();
    let text = flow.to_string();
    let mut at: BTreeSet<String> = text
        .split("set_field:")
        .filter_map(|s| s.split_once("->tun_dst").map(|(ip, _)| ip))
        .filter_map(|ip| by_ip.get(ip).cloned())
        .collect();
    if text.contains(&format!("resubmit(,{})", tern_pipeline::tables::INGRESS_ACL)) {
        at.insert(me.to_string());
    }
    Some(at)
}
