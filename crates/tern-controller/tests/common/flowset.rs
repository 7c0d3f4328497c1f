//! A synthetic but pipeline-shaped flow set, for the bundle tests and the bundle benchmark: the
//! kinds of flows a chassis with many ports holds (classify, L2 lookup, dispatch to a tunnel,
//! ingress lookup, output), each unique by its match.

use std::net::Ipv4Addr;
use tern_openflow::{Action, Field, Flow, Instruction, Match};

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0xfa, 0x16, 0x3e, b[1], b[2], b[3]]
}

/// `n` distinct flows over five tables; ofports 1 and 2 and the tunnel (3) must exist.
pub fn flows(n: u32) -> Vec<Flow> {
    (0..n)
        .map(|i| {
            let port = i / 5 + 1;
            let network = port % 512 + 1;
            let apply = |actions: Vec<Action>| vec![Instruction::ApplyActions(actions)];
            match i % 5 {
                0 => Flow::new(
                    0,
                    100,
                    Match::new().in_port(1).eth_src(mac(port)).reg(6, 0).metadata(u64::from(port)),
                    apply(vec![
                        Action::SetField { field: Field::Reg(6), value: port.into(), mask: None },
                        Action::SetField {
                            field: Field::Metadata,
                            value: u64::from(network).into(),
                            mask: None,
                        },
                        Action::Resubmit { in_port: None, table: Some(30) },
                    ]),
                ),
                1 => Flow::new(
                    30,
                    100,
                    Match::new().metadata(u64::from(network)).eth_dst(mac(port)),
                    apply(vec![
                        Action::SetField { field: Field::Reg(7), value: port.into(), mask: None },
                        Action::Resubmit { in_port: None, table: Some(50) },
                    ]),
                ),
                2 => Flow::new(
                    50,
                    100,
                    Match::new().reg(7, port),
                    apply(vec![
                        Action::SetField {
                            field: Field::TunnelId,
                            value: u64::from(network).into(),
                            mask: None,
                        },
                        Action::SetField {
                            field: Field::TunIpv4Dst,
                            value: Ipv4Addr::new(172, 31, (port >> 8) as u8, port as u8).into(),
                            mask: None,
                        },
                        Action::output(3),
                    ]),
                ),
                3 => Flow::new(
                    60,
                    100,
                    Match::new()
                        .metadata(u64::from(network))
                        .eth_type(0x0800)
                        .eth_dst(mac(port))
                        .ipv4_dst(Ipv4Addr::new(10, (port >> 16) as u8, (port >> 8) as u8, port as u8)),
                    apply(vec![
                        Action::SetField { field: Field::Reg(7), value: port.into(), mask: None },
                        Action::Resubmit { in_port: None, table: Some(70) },
                    ]),
                ),
                _ => Flow::new(70, 100, Match::new().reg(7, port), apply(vec![Action::output(1 + port % 2)])),
            }
        })
        .collect()
}
