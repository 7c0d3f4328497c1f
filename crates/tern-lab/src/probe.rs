//! A minimal UDP echo and sequence-numbered UDP probe (blocking std sockets), run inside VM
//! namespaces through the `tern-lab-udp` helper binary (`ip netns exec <vm> tern-lab-udp ...`).
//! Proves UDP crosses the lab (tx checksum offload off); the seed of the migration downtime probe.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"tern";

/// What a probe run saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub sent: u32,
    pub received: u32,
}

/// Echoes every datagram back to its sender until nothing arrived for `idle`.
pub fn echo(bind: SocketAddr, idle: Duration) -> std::io::Result<u64> {
    let sock = UdpSocket::bind(bind)?;
    sock.set_read_timeout(Some(idle))?;
    let mut buf = [0u8; 2048];
    let mut echoed = 0;
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                sock.send_to(&buf[..n], from)?;
                echoed += 1;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Ok(echoed)
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends `count` numbered datagrams to `target` every `interval` and counts the distinct ones
/// echoed back, waiting `wait` after the last send.
pub fn probe(
    target: SocketAddr,
    count: u32,
    interval: Duration,
    wait: Duration,
) -> std::io::Result<ProbeResult> {
    let bind: SocketAddr = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    let sock = UdpSocket::bind(bind)?;
    sock.connect(target)?;
    let mut seen = BTreeSet::new();
    let mut buf = [0u8; 2048];
    let mut drain = |sock: &UdpSocket, until: Instant, seen: &mut BTreeSet<u32>| -> std::io::Result<()> {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            sock.set_read_timeout(Some(left))?;
            match sock.recv(&mut buf) {
                Ok(n) if n >= 8 && &buf[..4] == MAGIC => {
                    seen.insert(u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]));
                }
                Ok(_) => {}
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    return Ok(())
                }
                // ICMP port unreachable (no echo yet) surfaces as ConnectionRefused: keep going.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
    };
    for seq in 0..count {
        let mut msg = MAGIC.to_vec();
        msg.extend_from_slice(&seq.to_be_bytes());
        msg.resize(64, 0);
        match sock.send(&msg) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e),
        }
        drain(&sock, Instant::now() + interval, &mut seen)?;
    }
    drain(&sock, Instant::now() + wait, &mut seen)?;
    Ok(ProbeResult { sent: count, received: seen.len() as u32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_against_local_echo() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        drop(server);
        let t = std::thread::spawn(move || echo(addr, Duration::from_millis(500)));
        // The echo may not be bound yet for the first datagrams; retry until it answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = probe(addr, 5, Duration::from_millis(5), Duration::from_millis(200)).unwrap();
            if r.received == 5 {
                break;
            }
            assert!(Instant::now() < deadline, "no echo: {r:?}");
        }
        assert!(t.join().unwrap().unwrap() >= 5);
    }
}
