//! The migration probe: one process per VM that echoes (and logs) the other side's sequence-numbered
//! UDP probes and sends its own at a fixed rate, every packet stamped with the shared wall clock
//! (all lab namespaces share one kernel), plus the pure analysis of what both sides logged.
//!
//! Run inside a VM namespace as `tern-lab-udp stream ...` (or `tern lab udp stream ...`); it
//! prints JSON lines on stdout: `{"event":"ready"}` once listening, `{"event":"first_rx"}` and
//! `{"event":"first_echo"}` the first time traffic flows each way, and on stop (a line or EOF on
//! stdin, or `--max-secs`) one [`StreamLog`] line with `"event":"done"`.

use std::io::{BufRead, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"tern";
/// Magic, sequence number (u32), send time (u64 µs since the epoch), padded.
const PROBE_LEN: usize = 64;
/// How often blocking receives look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// What one stream process saw, printed when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamLog {
    /// `[seq, sent_us]` of every probe handed to the kernel.
    pub sent: Vec<(u32, u64)>,
    /// Sends the kernel refused (no route while the VM's interface moves, ...).
    pub send_errors: u64,
    /// `[seq, sent_us, recv_us]` of every probe received from the other side (duplicates too).
    pub received: Vec<(u32, u64, u64)>,
    /// `[seq, recv_us]` of every echo of our own probes.
    pub echoes: Vec<(u32, u64)>,
}

/// Settings of [`run`].
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Where to listen for the other side's probes (and echo them).
    pub listen: SocketAddr,
    /// The other side's listener.
    pub target: SocketAddr,
    pub interval: Duration,
    /// A bound on the run, so a forgotten process ends by itself.
    pub max: Duration,
}

fn encode(seq: u32, sent_us: u64) -> [u8; PROBE_LEN] {
    let mut m = [0u8; PROBE_LEN];
    m[..4].copy_from_slice(MAGIC);
    m[4..8].copy_from_slice(&seq.to_be_bytes());
    m[8..16].copy_from_slice(&sent_us.to_be_bytes());
    m
}

fn decode(b: &[u8]) -> Option<(u32, u64)> {
    if b.len() < 16 || &b[..4] != MAGIC {
        return None;
    }
    let seq = u32::from_be_bytes(b[4..8].try_into().ok()?);
    let sent = u64::from_be_bytes(b[8..16].try_into().ok()?);
    Some((seq, sent))
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// Prints one JSON event line (stdout is shared by the threads).
fn event(out: &Mutex<std::io::Stdout>, name: &str) {
    let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(o, "{{\"event\":\"{name}\"}}");
    let _ = o.flush();
}

/// Runs until `stop` is set or `config.max` passes; returns the log.
pub fn run(config: &StreamConfig, stop: Arc<AtomicBool>) -> std::io::Result<StreamLog> {
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let listener = UdpSocket::bind(config.listen)?;
    listener.set_read_timeout(Some(POLL))?;
    let bind: SocketAddr =
        if config.target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    let sender = UdpSocket::bind(bind)?;
    sender.connect(config.target)?;
    let echo_rx = sender.try_clone()?;
    echo_rx.set_read_timeout(Some(POLL))?;
    event(&out, "ready");
    let deadline = Instant::now() + config.max;
    let done = move |stop: &AtomicBool| stop.load(Ordering::Relaxed) || Instant::now() >= deadline;

    // The other side's probes: log and echo back.
    let recv_thread = {
        let (stop, out) = (stop.clone(), out.clone());
        std::thread::spawn(move || -> std::io::Result<Vec<(u32, u64, u64)>> {
            let mut got = Vec::with_capacity(1 << 16);
            let mut buf = [0u8; 2048];
            while !done(&stop) {
                match listener.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let now = now_us();
                        if let Some((seq, sent)) = decode(&buf[..n]) {
                            if got.is_empty() {
                                event(&out, "first_rx");
                            }
                            got.push((seq, sent, now));
                        }
                        // The echo may fail while our own interface moves: the log is what counts.
                        let _ = listener.send_to(&buf[..n], from);
                    }
                    Err(e) if timed_out(&e) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(got)
        })
    };
    // Echoes of our own probes.
    let echo_thread = {
        let (stop, out) = (stop.clone(), out.clone());
        std::thread::spawn(move || -> std::io::Result<Vec<(u32, u64)>> {
            let mut got = Vec::with_capacity(1 << 16);
            let mut buf = [0u8; 2048];
            while !done(&stop) {
                match echo_rx.recv(&mut buf) {
                    Ok(n) => {
                        if let Some((seq, _)) = decode(&buf[..n]) {
                            if got.is_empty() {
                                event(&out, "first_echo");
                            }
                            got.push((seq, now_us()));
                        }
                    }
                    Err(e) if timed_out(&e) => {}
                    // ICMP errors from before the other side listened, or while a path moves.
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            Ok(got)
        })
    };
    // Our probes, on a fixed schedule (no bursts to catch up after a stall).
    let mut log = StreamLog { sent: Vec::with_capacity(1 << 16), ..StreamLog::default() };
    let start = Instant::now();
    let mut seq: u32 = 0;
    let mut next = start;
    while !done(&stop) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let sent_us = now_us();
        match sender.send(&encode(seq, sent_us)) {
            Ok(_) => log.sent.push((seq, sent_us)),
            Err(_) => log.send_errors += 1,
        }
        seq = seq.wrapping_add(1);
        next += config.interval;
        let now = Instant::now();
        if now > next + config.interval * 10 {
            next = now;
        }
    }
    stop.store(true, Ordering::Relaxed);
    log.received = recv_thread.join().map_err(|_| std::io::Error::other("receive thread panicked"))??;
    log.echoes = echo_thread.join().map_err(|_| std::io::Error::other("echo thread panicked"))??;
    Ok(log)
}

/// The `stream` command line: `LISTEN_PORT TARGET_ADDR:PORT [INTERVAL_US] [MAX_SECS]`. Stops on a
/// line or EOF on stdin; prints the events and the final log (see the module documentation).
pub fn cli(args: &[String]) -> Result<(), String> {
    let usage = "usage: stream LISTEN_PORT TARGET_ADDR:PORT [INTERVAL_US (1000)] [MAX_SECS (600)]";
    let port: u16 = args.first().ok_or(usage)?.parse().map_err(|_| format!("bad port {:?}", args[0]))?;
    let target: SocketAddr =
        args.get(1).ok_or(usage)?.parse().map_err(|e| format!("bad address {:?}: {e}", args[1]))?;
    let num = |i: usize, default: u64| -> Result<u64, String> {
        args.get(i).map_or(Ok(default), |s| s.parse().map_err(|_| format!("bad number {s:?}")))
    };
    let interval = Duration::from_micros(num(2, 1000)?.max(10));
    let max = Duration::from_secs(num(3, 600)?);
    let listen: SocketAddr =
        if target.is_ipv4() { format!("0.0.0.0:{port}") } else { format!("[::]:{port}") }
            .parse()
            .expect("valid");
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            stop.store(true, Ordering::Relaxed);
        });
    }
    let log = run(&StreamConfig { listen, target, interval, max }, stop).map_err(|e| e.to_string())?;
    let mut v = serde_json::to_value(&log).map_err(|e| e.to_string())?;
    v["event"] = "done".into();
    let mut o = std::io::stdout().lock();
    writeln!(o, "{v}").and_then(|_| o.flush()).map_err(|e| e.to_string())
}

/// One direction of a probe stream, judged over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionStats {
    /// Probes sent inside the window.
    pub sent: u64,
    /// Distinct ones of those that arrived.
    pub received: u64,
    pub lost: u64,
    /// Extra copies of probes that arrived more than once.
    pub duplicates: u64,
    /// From the end of the switchover to the first probe that crossed after it (sent after the
    /// switchover began, received after it ended); None if none did.
    pub blackout_ms: Option<f64>,
    /// The longest gap between consecutive arrivals during the migration (from the switchover's
    /// start to the window's `gap_to_us`): the switchover's own gap, or a later one the other
    /// steps caused, whichever is longer.
    pub max_gap_ms: Option<f64>,
    /// When that gap began, relative to the end of the switchover.
    pub max_gap_at_ms: Option<f64>,
}

/// Times (µs since the epoch) that frame a migration's measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Probes sent from here on count.
    pub from_us: u64,
    /// Probes sent after this do not (they may still be in flight when the probe stops).
    pub to_us: u64,
    /// The switchover began (the VM paused on the source).
    pub switch_start_us: u64,
    /// The switchover ended (the VM resumed on the destination): T0.
    pub t0_us: u64,
    /// The end of the span [`DirectionStats::max_gap_ms`] looks at (after the migration's last
    /// step).
    pub gap_to_us: u64,
}

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// Judges one direction: `sent` from the sender's log, `received` from the receiver's.
pub fn analyze(sent: &[(u32, u64)], received: &[(u32, u64, u64)], w: Window) -> DirectionStats {
    use std::collections::BTreeMap;
    let in_window = |t: u64| t >= w.from_us && t <= w.to_us;
    let sent_seqs: std::collections::BTreeSet<u32> =
        sent.iter().filter(|(_, t)| in_window(*t)).map(|(s, _)| *s).collect();
    let mut copies: BTreeMap<u32, u64> = BTreeMap::new();
    let mut arrivals: Vec<u64> = Vec::new();
    for (seq, sent_us, recv_us) in received {
        if in_window(*sent_us) && sent_seqs.contains(seq) {
            *copies.entry(*seq).or_default() += 1;
            arrivals.push(*recv_us);
        }
    }
    arrivals.sort_unstable();
    let received_n = copies.len() as u64;
    let duplicates = copies.values().map(|c| c - 1).sum();
    let blackout = received
        .iter()
        .filter(|(_, s, r)| *s >= w.switch_start_us && *r >= w.t0_us)
        .map(|(_, _, r)| *r)
        .min()
        .map(|r| ms(r as i64 - w.t0_us as i64));
    // Gaps that end after the switchover began and begin before the span ends.
    let gap = arrivals
        .windows(2)
        .filter(|p| p[1] >= w.switch_start_us && p[0] <= w.gap_to_us)
        .map(|p| (p[1] - p[0], p[0]))
        .max();
    DirectionStats {
        sent: sent_seqs.len() as u64,
        received: received_n,
        lost: (sent_seqs.len() as u64).saturating_sub(received_n),
        duplicates,
        blackout_ms: blackout,
        max_gap_ms: gap.map(|(g, _)| ms(g as i64)),
        max_gap_at_ms: gap.map(|(_, at)| ms(at as i64 - w.t0_us as i64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_round_trip_the_wire_format() {
        assert_eq!(decode(&encode(7, 1_700_000_000_123_456)), Some((7, 1_700_000_000_123_456)));
        assert_eq!(decode(b"nope"), None);
        assert_eq!(decode(&[0u8; 64]), None);
    }

    #[test]
    fn analysis_counts_loss_duplicates_blackout_and_gap() {
        // 1 ms probes from t=1000 µs; the switchover runs 10_000..12_000; probes 9..=14 are lost;
        // 20 arrives twice.
        let sent: Vec<(u32, u64)> = (0..40).map(|s| (s, 1000 + u64::from(s) * 1000)).collect();
        let mut received: Vec<(u32, u64, u64)> =
            sent.iter().filter(|(s, _)| !(9..=14).contains(s)).map(|(s, t)| (*s, *t, t + 100)).collect();
        received.push((20, 21_000, 21_300));
        let w = Window {
            from_us: 2000,
            to_us: 35_000,
            switch_start_us: 10_000,
            t0_us: 12_000,
            gap_to_us: 30_000,
        };
        let d = analyze(&sent, &received, w);
        // seqs 1..=34 are in the window.
        assert_eq!(d.sent, 34);
        assert_eq!(d.lost, 6);
        assert_eq!(d.received, 28);
        assert_eq!(d.duplicates, 1);
        // First crossing: seq 15, sent 16_000, received 16_100.
        assert_eq!(d.blackout_ms, Some(4.1));
        // The gap runs from seq 8's arrival (9_100) to seq 15's (16_100).
        assert_eq!(d.max_gap_ms, Some(7.0));
        assert_eq!(d.max_gap_at_ms, Some(-2.9));
    }

    #[test]
    fn a_stream_between_two_local_processes_flows_both_ways() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = |listen, target| StreamConfig {
            listen,
            target,
            interval: Duration::from_millis(1),
            max: Duration::from_secs(30),
        };
        let (ca, cb) = (cfg(a, b), cfg(b, a));
        let (sa, sb) = (stop.clone(), stop.clone());
        let ta = std::thread::spawn(move || run(&ca, sa).unwrap());
        let tb = std::thread::spawn(move || run(&cb, sb).unwrap());
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let (la, lb) = (ta.join().unwrap(), tb.join().unwrap());
        assert!(la.sent.len() > 50 && lb.sent.len() > 50, "{} {}", la.sent.len(), lb.sent.len());
        assert!(lb.received.len() > 50 && !la.echoes.is_empty());
        let w = Window { from_us: 0, to_us: u64::MAX, switch_start_us: 0, t0_us: 0, gap_to_us: u64::MAX };
        let d = analyze(&la.sent, &lb.received, w);
        assert_eq!(d.duplicates, 0);
        assert!(d.blackout_ms.is_some());
    }
}
