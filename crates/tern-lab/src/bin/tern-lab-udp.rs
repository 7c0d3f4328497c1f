//! `tern-lab-udp`: the UDP echo / probe helper run inside lab VM namespaces.
//!   tern-lab-udp echo ADDR:PORT [IDLE_MS]            echo until idle (default 10000 ms)
//!   tern-lab-udp probe ADDR:PORT COUNT [INTERVAL_MS] [WAIT_MS]   prints {"sent":N,"received":M}
//!   tern-lab-udp stream LISTEN_PORT ADDR:PORT [INTERVAL_US] [MAX_SECS]   the migration probe
//!                                                    (see `tern_lab::stream`)

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tern-lab-udp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn num(args: &[String], i: usize, default: u64) -> Result<u64, String> {
    args.get(i).map_or(Ok(default), |s| s.parse().map_err(|_| format!("bad number {s:?}")))
}

fn run(args: &[String]) -> Result<(), String> {
    if args.first().map(String::as_str) == Some("stream") {
        return tern_lab::stream::cli(&args[1..]);
    }
    let usage =
        "usage: tern-lab-udp echo ADDR:PORT [IDLE_MS] | probe ADDR:PORT COUNT [INTERVAL_MS] [WAIT_MS] | stream LISTEN_PORT ADDR:PORT [INTERVAL_US] [MAX_SECS]";
    let addr: SocketAddr =
        args.get(1).ok_or(usage)?.parse().map_err(|e| format!("bad address {:?}: {e}", args[1]))?;
    match args.first().map(String::as_str) {
        Some("echo") => {
            let n = tern_lab::probe::echo(addr, Duration::from_millis(num(args, 2, 10_000)?))
                .map_err(|e| e.to_string())?;
            println!("{{\"echoed\":{n}}}");
            Ok(())
        }
        Some("probe") => {
            let count = u32::try_from(num(args, 2, 10)?).map_err(|e| e.to_string())?;
            let r = tern_lab::probe::probe(
                addr,
                count,
                Duration::from_millis(num(args, 3, 10)?),
                Duration::from_millis(num(args, 4, 1000)?),
            )
            .map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            Ok(())
        }
        _ => Err(usage.into()),
    }
}
